//! The group-commit writer: concurrent jobs share transactions, each is answered with its own
//! result, and a failing job neither fails its batch-mates nor leaves a trace.

use super::super::group_commit::{BoxFuture, GroupCommit, Job};
use super::super::script::{self, Script, Value};
use super::*;

/// Appends one audit event, then fails when told to (after writing: its event must vanish).
struct AppendEvent {
    org_id: String,
    index: usize,
    fail: bool,
}

impl Job for AppendEvent {
    type Output = usize;
    type Error = Error;

    fn run<'a>(&'a self, tx: &'a mut Tx) -> BoxFuture<'a, Result<usize>> {
        Box::pin(async move {
            audit::append(
                tx,
                audit::NewEvent {
                    org_id: &self.org_id,
                    kind: "test.appended",
                    actor: &Actor::operator(),
                    subject_type: "test",
                    subject_id: &self.index.to_string(),
                    detail: serde_json::json!({ "index": self.index }),
                    created_at: crate::api::time::now(),
                },
            )
            .await?;
            if self.fail {
                return Err(Error::Conflict(format!("job {} refused", self.index)));
            }
            Ok(self.index)
        })
    }
}

#[tokio::test]
async fn concurrent_jobs_get_their_own_answers_and_failures_leave_no_trace() {
    for (store, _dir) in backends().await {
        let org = orgs::create(&store, &format!("org-{}", new_id()), &Actor::operator())
            .await
            .unwrap();
        let writer = GroupCommit::start(&store);
        let mut tasks = Vec::new();
        for index in 0..200 {
            let writer = writer.clone();
            let org_id = org.id.clone();
            tasks.push(tokio::spawn(async move {
                let job = AppendEvent {
                    org_id,
                    index,
                    fail: index % 25 == 7,
                };
                (
                    index,
                    writer.write(&format!("lane-{}", index % 7), job).await,
                )
            }));
        }
        let mut succeeded = Vec::new();
        for task in tasks {
            let (index, result) = task.await.unwrap();
            match result {
                Ok(answer) => {
                    assert_ne!(index % 25, 7, "job {index} should have failed");
                    assert_eq!(answer, index);
                    succeeded.push(index.to_string());
                }
                Err(error) => {
                    assert_eq!(index % 25, 7, "job {index} failed: {error}");
                    assert_eq!(error.to_string(), format!("job {index} refused"));
                }
            }
        }
        assert_eq!(succeeded.len(), 192);
        let events = audit::list(&store, &org.id).await.unwrap();
        let mut appended: Vec<String> = events
            .iter()
            .filter(|event| event.kind == "test.appended")
            .map(|event| event.subject_id.clone())
            .collect();
        appended.sort();
        succeeded.sort();
        assert_eq!(appended, succeeded, "exactly the successful jobs' events");
        assert_eq!(audit::verify(&store, &org.id).await.unwrap(), None);
        let sequence: Vec<i64> = events.iter().map(|event| event.seq).collect();
        assert_eq!(sequence, (1..=events.len() as i64).collect::<Vec<_>>());
    }
}

/// Takes one of `limit` slots of a counter, if one is left. On SQLite it speculates that one is:
/// reads the counter and takes a slot in one round trip with its batch-mates, and confirms only
/// if the value it read was below the limit.
struct TakeSlot {
    counter: String,
    limit: i64,
}

const SLOT_READ: &str = "SELECT value FROM slot_counters WHERE id = $1";
const SLOT_TAKE: &str = "UPDATE slot_counters SET value = value + 1 WHERE id = $1";

impl Job for TakeSlot {
    type Output = bool;
    type Error = Error;

    fn run<'a>(&'a self, tx: &'a mut Tx) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let value: i64 = on_tx!(tx, |conn| sqlx::query_scalar(SLOT_READ)
                .bind(&self.counter)
                .fetch_one(&mut *conn)
                .await?);
            if value >= self.limit {
                return Ok(false);
            }
            on_tx!(tx, |conn| {
                sqlx::query(SLOT_TAKE)
                    .bind(&self.counter)
                    .execute(&mut *conn)
                    .await?;
            });
            Ok(true)
        })
    }

    fn speculate(&self) -> Option<Script> {
        let mut script = Script::default();
        script.push(SLOT_READ, vec![Value::Text(self.counter.clone())]);
        script.push(SLOT_TAKE, vec![Value::Text(self.counter.clone())]);
        Some(script)
    }

    fn confirm<'a>(
        &'a self,
        _tx: &'a mut Tx,
        rows: Vec<Vec<script::Row>>,
    ) -> BoxFuture<'a, Option<Result<bool>>> {
        Box::pin(async move {
            let read = rows.first().and_then(|rows| rows.first())?;
            match script::column::<i64>(read, 0) {
                Ok(value) if value < self.limit => Some(Ok(true)),
                Ok(_) => None,
                Err(error) => Some(Err(error)),
            }
        })
    }
}

#[tokio::test]
async fn a_speculative_job_whose_assumption_fails_is_undone_and_runs_the_ordinary_way() {
    for (store, _dir) in backends().await {
        let counter = new_id();
        create_counter(&store, &counter).await.unwrap();
        let writer = GroupCommit::start(&store);
        // Enough at once that batches hold many jobs, most of them after the last free slot.
        let tasks: Vec<_> = (0..60)
            .map(|_| {
                let writer = writer.clone();
                let job = TakeSlot {
                    counter: counter.clone(),
                    limit: 5,
                };
                tokio::spawn(async move { writer.write("one lane", job).await })
            })
            .collect();
        let mut taken = 0;
        for task in tasks {
            if task.await.unwrap().unwrap() {
                taken += 1;
            }
        }
        assert_eq!(taken, 5, "exactly the free slots are taken");
        let value = read_counter(&store, &counter).await.unwrap();
        assert_eq!(value, 5, "no undone speculation left a slot taken");
    }
}

async fn create_counter(store: &Store, counter: &str) -> Result<()> {
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS slot_counters (id TEXT PRIMARY KEY, value BIGINT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        sqlx::query("INSERT INTO slot_counters (id, value) VALUES ($1, 0)")
            .bind(counter)
            .execute(&mut *conn)
            .await?;
    });
    tx.commit().await
}

async fn read_counter(store: &Store, counter: &str) -> Result<i64> {
    let mut tx = store.begin().await?;
    Ok(on_tx!(&mut tx, |conn| sqlx::query_scalar(SLOT_READ)
        .bind(counter)
        .fetch_one(&mut *conn)
        .await?))
}

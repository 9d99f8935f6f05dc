//! The group-commit writer: concurrent jobs share transactions, each is answered with its own
//! result, and a failing job neither fails its batch-mates nor leaves a trace.

use super::super::group_commit::{BoxFuture, GroupCommit, Job};
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

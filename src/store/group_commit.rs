//! Group commit: the hot writes (every decision a check records) are queued to a writer that
//! runs many requests' writes in one transaction and answers each request only once that
//! transaction is committed, so one commit — one `fsync` on SQLite with `synchronous=FULL`, one
//! round of the org's audit-chain head lock on PostgreSQL — serves a whole batch.
//!
//! A batch is whatever queued while the previous one was committing: nothing waits for a
//! batch to fill, so a lone request is written at once, and under load batches grow by
//! themselves. Inside a batch the jobs run one after the other in the order they arrived, on one
//! connection, so every counter, budget and uniqueness check sees the jobs before it exactly as
//! if each had its own transaction. The audit events of a batch are chained in that order at
//! commit ([`crate::store::audit::flush`]).
//!
//! A job may run twice: when any job of a batch fails, or the commit does (a PostgreSQL
//! deadlock with another replica, a full disk), the batch is rolled back and every job runs
//! again alone, in its own transaction, so one bad request never fails another and each gets
//! its own error. Jobs therefore keep no state between runs.
//!
//! Writes are spread over lanes by a key (the agent): SQLite has one writer connection and so
//! one lane; PostgreSQL runs a few lanes in parallel, and keeping one agent's writes on one lane
//! keeps their row locks in one queue on this replica.

use std::future::Future;
use std::hash::Hasher;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Db, Error, Store, Tx};

/// A boxed future that may borrow (the transaction a job runs in).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Most jobs one transaction carries: bounds the work a rollback throws away, and the wait of
/// the last job of a batch.
pub const MAX_BATCH: usize = 256;

/// Jobs queued per lane before a writer waits (back-pressure instead of unbounded memory).
const QUEUE_DEPTH: usize = 4096;

/// Lanes on PostgreSQL (each holds one pooled connection while it commits a batch).
const POSTGRES_LANES: usize = 4;

/// A write that can share a transaction with other requests' writes.
pub trait Job: Send + Sync + 'static {
    type Output: Send + 'static;
    type Error: From<Error> + Send + 'static;

    /// Runs the write in `tx`. It may run again in another transaction after a rollback (see
    /// the module docs), so it reads everything it decides on inside `tx`.
    fn run<'a>(&'a self, tx: &'a mut Tx) -> BoxFuture<'a, Result<Self::Output, Self::Error>>;
}

/// A queued job and where its answer goes, whatever its types.
trait Queued: Send {
    /// Runs the job, keeping its result; false when it failed.
    fn run<'a>(&'a mut self, tx: &'a mut Tx) -> BoxFuture<'a, bool>;
    /// Sends the kept result (the job's transaction committed, or the job failed).
    fn answer(self: Box<Self>);
    /// Sends `error` instead (the transaction could not begin or commit).
    fn fail(self: Box<Self>, error: Error);
}

struct Entry<J: Job> {
    job: J,
    result: Option<Result<J::Output, J::Error>>,
    reply: oneshot::Sender<Result<J::Output, J::Error>>,
}

impl<J: Job> Queued for Entry<J> {
    fn run<'a>(&'a mut self, tx: &'a mut Tx) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let result = self.job.run(tx).await;
            let succeeded = result.is_ok();
            self.result = Some(result);
            succeeded
        })
    }

    fn answer(self: Box<Self>) {
        let result = self
            .result
            .unwrap_or_else(|| Err(J::Error::from(Error::WriterStopped)));
        // The request may have gone away (its client disconnected): the write stands anyway.
        let _ = self.reply.send(result);
    }

    fn fail(self: Box<Self>, error: Error) {
        let _ = self.reply.send(Err(J::Error::from(error)));
    }
}

/// The handle requests queue their writes on; cheap to clone. The writers stop when the last
/// handle is dropped, after the jobs already queued.
#[derive(Clone)]
pub struct GroupCommit {
    lanes: Arc<[mpsc::Sender<Box<dyn Queued>>]>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GroupCommit")
            .field("lanes", &self.lanes.len())
            .finish()
    }
}

impl GroupCommit {
    /// Starts the writers of `store` (one per lane) on the current Tokio runtime.
    pub fn start(store: &Store) -> GroupCommit {
        let lanes = match store.db() {
            Db::Sqlite(_) => 1,
            Db::Postgres(_) => POSTGRES_LANES,
        };
        let senders: Vec<_> = (0..lanes)
            .map(|_| {
                let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
                tokio::spawn(write_lane(store.clone(), receiver));
                sender
            })
            .collect();
        GroupCommit {
            lanes: senders.into(),
        }
    }

    /// Queues `job` on the lane of `lane_key` and waits until it is committed (or failed).
    pub async fn write<J: Job>(&self, lane_key: &str, job: J) -> Result<J::Output, J::Error> {
        let (reply, answer) = oneshot::channel();
        let entry: Box<dyn Queued> = Box::new(Entry {
            job,
            result: None,
            reply,
        });
        let lane = &self.lanes[lane_of(lane_key, self.lanes.len())];
        if lane.send(entry).await.is_err() {
            return Err(J::Error::from(Error::WriterStopped));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(J::Error::from(Error::WriterStopped)))
    }
}

/// A stable lane for a key (the same within this process, which is all it needs).
fn lane_of(key: &str, lanes: usize) -> usize {
    if lanes <= 1 {
        return 0;
    }
    // DefaultHasher::new() has fixed keys: a key stays on its lane.
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(key.as_bytes());
    usize::try_from(hasher.finish() % lanes as u64).unwrap_or(0)
}

/// One writer: takes whatever is queued (up to [`MAX_BATCH`]) and commits it as one batch.
async fn write_lane(store: Store, mut receiver: mpsc::Receiver<Box<dyn Queued>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit_batch(&store, std::mem::take(&mut batch)).await;
    }
}

async fn commit_batch(store: &Store, mut batch: Vec<Box<dyn Queued>>) {
    if batch.len() == 1 {
        if let Some(job) = batch.pop() {
            run_alone(store, job).await;
        }
        return;
    }
    match store.begin().await {
        Ok(mut tx) => {
            let mut all_succeeded = true;
            for job in batch.iter_mut() {
                if !job.run(&mut tx).await {
                    all_succeeded = false;
                    break;
                }
            }
            if all_succeeded {
                match tx.commit().await {
                    Ok(()) => {
                        for job in batch {
                            job.answer();
                        }
                        return;
                    }
                    Err(error) => tracing::warn!(
                        %error,
                        jobs = batch.len(),
                        "a batch of writes failed to commit; running its jobs one by one"
                    ),
                }
            }
            // A failed job: the batch rolls back (dropping `tx`) and every job runs alone.
        }
        Err(error) => tracing::warn!(
            %error,
            jobs = batch.len(),
            "cannot begin a batch of writes; running its jobs one by one"
        ),
    }
    for job in batch {
        run_alone(store, job).await;
    }
}

/// Runs one job in its own transaction and answers it.
async fn run_alone(store: &Store, mut job: Box<dyn Queued>) {
    let mut tx = match store.begin().await {
        Ok(tx) => tx,
        Err(error) => return job.fail(error),
    };
    if job.run(&mut tx).await
        && let Err(error) = tx.commit().await
    {
        return job.fail(error);
    }
    job.answer();
}

/// A job made of owned data and a function over it, for writes that need nothing else:
/// `WriteFn::new(rows, |rows, tx| Box::pin(telemetry::insert_in(tx, rows)))`.
pub struct WriteFn<D, R, E> {
    data: D,
    write: for<'a> fn(&'a D, &'a mut Tx) -> BoxFuture<'a, Result<R, E>>,
}

impl<D, R, E> WriteFn<D, R, E> {
    pub fn new(
        data: D,
        write: for<'a> fn(&'a D, &'a mut Tx) -> BoxFuture<'a, Result<R, E>>,
    ) -> Self {
        WriteFn { data, write }
    }
}

impl<D, R, E> Job for WriteFn<D, R, E>
where
    D: Send + Sync + 'static,
    R: Send + 'static,
    E: From<Error> + Send + 'static,
{
    type Output = R;
    type Error = E;

    fn run<'a>(&'a self, tx: &'a mut Tx) -> BoxFuture<'a, Result<R, E>> {
        (self.write)(&self.data, tx)
    }
}

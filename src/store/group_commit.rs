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
//! On SQLite, through sqlx, every statement is a round trip to the driver's connection thread,
//! and those round trips, not SQLite's work, are what a batch costs. A job that can say
//! beforehand which statements it will run, assuming what it decided on still holds
//! ([`Job::speculate`]), does not need them: the writer thread runs the leading such jobs of a
//! batch on a connection it owns ([`super::direct`]), statement by statement as plain calls,
//! each job confirming from the rows its statements returned ([`Job::confirm`]) and holding its
//! inserts and audit events for the commit. When a job's assumption failed, or anything did,
//! that transaction is rolled back and the batch goes the ordinary way, through sqlx; so do the
//! jobs after the first that cannot speculate, in a transaction of their own after it.
//!
//! The ordinary way speculates too: the speculating jobs' statements are run together with
//! their neighbours' in one round trip, each job behind a savepoint, then confirmed. The first
//! job whose assumption failed is rolled back to its savepoint, with every job after it, and
//! runs with [`Job::run`]: the outcome is the same as running the jobs one after the other.
//!
//! Writes are spread over lanes by a key (the agent): SQLite has one writer connection and so
//! one lane; PostgreSQL runs a few lanes in parallel, and keeping one agent's writes on one lane
//! keeps their row locks in one queue on this replica.

use std::future::Future;
use std::hash::Hasher;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::direct::Direct;
use super::script::{Row, Script};
use super::{Db, Error, Store, Tx, TxConnection};

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

    /// SQLite: the statements this job would run if what it decided on still holds, when it
    /// can tell them beforehand (`None`, the default: it cannot).
    fn speculate(&self) -> Option<Script> {
        None
    }

    /// Ends a speculative run from the rows each statement of [`Job::speculate`] returned, in
    /// `tx` where they ran. `None` when what the job assumed did not hold: its statements are
    /// then undone and it runs with [`Job::run`]. It must not have changed `tx` then. It runs
    /// no statement of its own: `tx` may have no connection ([`TxConnection::Detached`]), only
    /// room for the rows and audit events held for the commit.
    fn confirm<'a>(
        &'a self,
        tx: &'a mut Tx,
        rows: Vec<Vec<Row>>,
    ) -> BoxFuture<'a, Option<Result<Self::Output, Self::Error>>> {
        let _ = (tx, rows);
        Box::pin(async { None })
    }
}

/// A queued job and where its answer goes, whatever its types.
trait Queued: Send {
    /// Runs the job, keeping its result; false when it failed.
    fn run<'a>(&'a mut self, tx: &'a mut Tx) -> BoxFuture<'a, bool>;
    /// [`Job::speculate`].
    fn speculate(&self) -> Option<Script>;
    /// [`Job::confirm`], keeping its result: `Some(false)` when it failed, `None` when its
    /// assumption did not hold.
    fn confirm<'a>(
        &'a mut self,
        tx: &'a mut Tx,
        rows: Vec<Vec<Row>>,
    ) -> BoxFuture<'a, Option<bool>>;
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

    fn speculate(&self) -> Option<Script> {
        self.job.speculate()
    }

    fn confirm<'a>(
        &'a mut self,
        tx: &'a mut Tx,
        rows: Vec<Vec<Row>>,
    ) -> BoxFuture<'a, Option<bool>> {
        Box::pin(async move {
            let result = self.job.confirm(tx, rows).await?;
            let succeeded = result.is_ok();
            self.result = Some(result);
            Some(succeeded)
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
    /// Starts the writers of `store` (one per lane).
    ///
    /// SQLite's writer runs on a thread of its own: each statement is a round trip to the
    /// driver's connection thread, and on the request runtime every one of those wake-ups would
    /// queue behind the HTTP tasks, so a batch's latency (and with it the throughput of the one
    /// writer) would grow with the load it is meant to absorb. PostgreSQL's lanes stay on the
    /// current runtime: their connections' sockets belong to the runtime that opened them.
    pub fn start(store: &Store) -> GroupCommit {
        let lanes = match store.db() {
            Db::Sqlite(_) => 1,
            Db::Postgres(_) => POSTGRES_LANES,
        };
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..lanes).map(|_| mpsc::channel(QUEUE_DEPTH)).unzip();
        match store.db() {
            Db::Sqlite(_) => spawn_writer_thread(store.clone(), receivers),
            Db::Postgres(_) => {
                for receiver in receivers {
                    tokio::spawn(write_lane(store.clone(), receiver));
                }
            }
        }
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

/// Runs the lanes on a thread of their own with its own (single-threaded) runtime, until every
/// handle is dropped, each with a connection of its own to the database file ([`Direct`]) when
/// it has one. If the thread cannot start, the lanes' queues are closed and every write
/// fails with [`Error::WriterStopped`], which is logged here.
fn spawn_writer_thread(store: Store, receivers: Vec<mpsc::Receiver<Box<dyn Queued>>>) {
    let started = std::thread::Builder::new()
        .name("agenttrust-writer".to_string())
        .spawn(move || {
            let open_direct = || {
                Direct::open(store.direct_settings()?)
                    .inspect_err(|error| {
                        tracing::warn!(
                            %error,
                            "cannot open the writer's own connection; writes go through the pool"
                        );
                    })
                    .ok()
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!(%error, "cannot start the writer's runtime; writes will fail");
                    return;
                }
            };
            // Joined, not spawned: a lane's connection stays on this thread.
            let lanes = receivers
                .into_iter()
                .map(|receiver| write_lane_direct(store.clone(), receiver, open_direct()));
            runtime.block_on(futures_util::future::join_all(lanes));
        });
    if let Err(error) = started {
        tracing::error!(%error, "cannot start the writer thread; writes will fail");
    }
}

/// One writer: takes whatever is queued (up to [`MAX_BATCH`]) and commits it as one batch.
async fn write_lane(store: Store, mut receiver: mpsc::Receiver<Box<dyn Queued>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit_batch(&store, std::mem::take(&mut batch)).await;
    }
}

/// SQLite's writer: [`write_lane`], committing what it can on its own connection first.
async fn write_lane_direct(
    store: Store,
    mut receiver: mpsc::Receiver<Box<dyn Queued>>,
    direct: Option<Direct>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut jobs = std::mem::take(&mut batch);
        if let Some(direct) = &direct {
            jobs = commit_direct(&store, direct, jobs).await;
        }
        if !jobs.is_empty() {
            commit_batch(&store, jobs).await;
        }
    }
}

/// Commits the leading jobs of `batch` that can say their statements beforehand in one
/// transaction on the writer's own connection, and answers them. Returns the jobs left for the
/// ordinary path: those after them, or every job when the transaction failed or a job's
/// assumption did not hold (nothing of it was committed then).
async fn commit_direct(
    store: &Store,
    direct: &Direct,
    mut batch: Vec<Box<dyn Queued>>,
) -> Vec<Box<dyn Queued>> {
    let scripts: Vec<Script> = batch.iter().map_while(|job| job.speculate()).collect();
    let Some(writing) = store.sqlite_write_lock().filter(|_| !scripts.is_empty()) else {
        return batch;
    };
    let rest = batch.split_off(scripts.len());
    let committed = {
        let _writing = writing.lock().await;
        run_direct(store, direct, &mut batch, scripts).await
    };
    if committed {
        for job in batch {
            job.answer();
        }
        return rest;
    }
    batch.extend(rest);
    batch
}

/// Runs `jobs`, each's `scripts` then its confirmation, in one transaction on `direct`, and
/// commits it; false (and rolled back) when a statement failed, a job did, or a job's
/// assumption did not hold.
async fn run_direct(
    store: &Store,
    direct: &Direct,
    jobs: &mut [Box<dyn Queued>],
    scripts: Vec<Script>,
) -> bool {
    if let Err(error) = direct.begin() {
        tracing::warn!(%error, "cannot begin a batch of writes on the writer's connection");
        return false;
    }
    let mut tx = Tx::detached(store);
    for (job, script) in jobs.iter_mut().zip(scripts) {
        let rows = match direct.run(&script) {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "a write failed on the writer's connection");
                direct.rollback();
                return false;
            }
        };
        if job.confirm(&mut tx, rows).await != Some(true) {
            direct.rollback();
            return false;
        }
    }
    match direct.commit(tx) {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, "a batch of writes failed to commit on the writer's connection");
            direct.rollback();
            false
        }
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
            if run_jobs(&mut tx, &mut batch).await {
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

/// Runs the jobs of a batch in `tx`, in order; false as soon as one failed.
async fn run_jobs(tx: &mut Tx, batch: &mut [Box<dyn Queued>]) -> bool {
    let speculative = matches!(tx.connection, TxConnection::Sqlite(_));
    let mut next = 0;
    while next < batch.len() {
        if speculative {
            let run = SPECULATION_RUN.min(batch.len() - next);
            let scripts: Vec<Script> = batch[next..next + run]
                .iter()
                .map_while(|job| job.speculate())
                .collect();
            if !scripts.is_empty() {
                let jobs = scripts.len();
                match speculate(tx, &mut batch[next..next + jobs], scripts).await {
                    Speculated::All => {
                        next += jobs;
                        continue;
                    }
                    // The job at `confirmed` runs the ordinary way, below.
                    Speculated::UpTo(confirmed) => next += confirmed,
                    Speculated::Failed => return false,
                }
            }
        }
        if !batch[next].run(tx).await {
            return false;
        }
        next += 1;
    }
    true
}

/// Most jobs one speculative run carries. The driver keeps a prepared statement per distinct
/// script text, and preparing a script costs far more than running it: runs of at most this
/// many jobs, of few shapes, keep the scripts of a busy writer few enough to stay prepared.
const SPECULATION_RUN: usize = 16;

/// How a speculative run of jobs ended.
enum Speculated {
    /// Every job confirmed.
    All,
    /// The jobs before this index confirmed; this one's assumption failed, and its statements
    /// and those of every job after it are undone.
    UpTo(usize),
    /// A statement or a job failed (the batch is rolled back).
    Failed,
}

/// Runs the statements of `jobs` (`scripts`, one per job) in one round trip, each job's behind
/// a savepoint of its own, then confirms the jobs in order.
async fn speculate(tx: &mut Tx, jobs: &mut [Box<dyn Queued>], scripts: Vec<Script>) -> Speculated {
    let mut script = Script::default();
    let mut statements = Vec::with_capacity(scripts.len());
    for (index, job_script) in scripts.into_iter().enumerate() {
        script.push(format!("SAVEPOINT speculation_{index}"), Vec::new());
        statements.push(job_script.len());
        script.append(job_script);
    }
    let TxConnection::Sqlite(conn) = &mut tx.connection else {
        return Speculated::Failed;
    };
    let rows = match script.fetch(conn).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, "a speculative run of writes failed");
            return Speculated::Failed;
        }
    };
    let mut rows = rows.into_iter();
    for (index, job) in jobs.iter_mut().enumerate() {
        let _savepoint = rows.next();
        let job_rows: Vec<Vec<Row>> = rows.by_ref().take(statements[index]).collect();
        match job.confirm(tx, job_rows).await {
            Some(true) => {}
            Some(false) => return Speculated::Failed,
            None => {
                let TxConnection::Sqlite(conn) = &mut tx.connection else {
                    return Speculated::Failed;
                };
                let undo = format!("ROLLBACK TO speculation_{index}");
                return match sqlx::query(&undo).execute(&mut **conn).await {
                    Ok(_) => Speculated::UpTo(index),
                    Err(error) => {
                        tracing::warn!(%error, "cannot undo a speculative write");
                        Speculated::Failed
                    }
                };
            }
        }
    }
    Speculated::All
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
    /// The function runs no statement: it only holds rows and audit events for the commit.
    holds_only: bool,
}

impl<D, R, E> WriteFn<D, R, E> {
    pub fn new(
        data: D,
        write: for<'a> fn(&'a D, &'a mut Tx) -> BoxFuture<'a, Result<R, E>>,
    ) -> Self {
        WriteFn {
            data,
            write,
            holds_only: false,
        }
    }

    /// A write whose function runs no statement of its own and only holds rows
    /// ([`Tx::deferred`]) and audit events for the commit (an issued token): it speculates
    /// with no statements, so it joins the batches the SQLite writer runs on its own
    /// connection. Should the function run a statement after all, it fails there
    /// ([`Error::Detached`]) and runs again the ordinary way.
    pub fn holding(
        data: D,
        write: for<'a> fn(&'a D, &'a mut Tx) -> BoxFuture<'a, Result<R, E>>,
    ) -> Self {
        WriteFn {
            data,
            write,
            holds_only: true,
        }
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

    fn speculate(&self) -> Option<Script> {
        self.holds_only.then(Script::default)
    }

    fn confirm<'a>(
        &'a self,
        tx: &'a mut Tx,
        _rows: Vec<Vec<Row>>,
    ) -> BoxFuture<'a, Option<Result<R, E>>> {
        Box::pin(async move {
            if !self.holds_only {
                return None;
            }
            Some((self.write)(&self.data, tx).await)
        })
    }
}

//! The telemetry spool: every event `guard` records goes first to an append-only JSON-lines file
//! in the user's state dir (dir 0700, file 0600), one line per event written with one `write` in
//! `O_APPEND` mode under an advisory lock, and is then delivered to the gateway in batches, as
//! the SDKs do: a `guard` invocation delivers once [`BATCH_SIZE`] events are spooled or the
//! oldest has waited [`BATCH_AGE`] ([`Spool::is_due`]); `guard flush` and `guard session end`
//! deliver everything. Nothing is lost while the gateway is down; the spool is bounded
//! ([`MAX_EVENTS`], the oldest are dropped with a warning). Each event is sent with its spool id
//! as `event_id`, which the gateway stores once per org, so a batch resent after a lost answer
//! is not stored twice.
//!
//! Two lock files keep concurrent `guard` processes safe:
//! - `spool.lock` guards the data file, held only for an append, a read or a rewrite (short);
//! - `deliver.lock` is held by the one process delivering, from reading a batch until the sent
//!   events are removed, so no event is sent twice by two processes.
//!
//! Events carry a unique id; a rewrite removes exactly the ids that were delivered, so appends
//! (and overflow drops) during a delivery never lose or resend anything. One data file per
//! gateway (named by a digest of its telemetry URL), so switching profiles never sends one
//! gateway's events to another.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::api::telemetry::{ReportRequest, ReportedEvent};
use crate::client::{self, Client};
use crate::config::env;
use crate::output;

/// Events per report (the SDKs flush at 10).
pub const BATCH_SIZE: usize = 10;
/// How long an event may wait in the spool before a `guard` invocation delivers it anyway (the
/// Python SDK's flush timer).
pub const BATCH_AGE: Duration = Duration::from_secs(5);
/// The spool keeps at most this many events; older ones are dropped (with a warning).
pub const MAX_EVENTS: usize = 10_000;
/// Below this size the spool cannot hold `MAX_EVENTS` lines: skip counting them on append.
const COUNT_THRESHOLD_BYTES: u64 = 512 * 1024;

/// One spooled event: the reported event plus who it belongs to (a report names one agent and
/// one session) and a unique id (so a rewrite removes exactly what was delivered).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpooledEvent {
    pub id: String,
    /// When it was spooled (unix seconds); 0 in lines of older versions (due at once).
    #[serde(default)]
    pub spooled_at: i64,
    pub agent_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(flatten)]
    pub event: ReportedEvent,
}

impl SpooledEvent {
    pub fn new(agent_id: String, session_id: Option<String>, event: ReportedEvent) -> Self {
        SpooledEvent {
            id: uuid::Uuid::new_v4().to_string(),
            spooled_at: crate::api::time::now(),
            agent_id,
            session_id,
            event,
        }
    }
}

/// The spool of one gateway.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    data: PathBuf,
}

/// What one delivery did.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Events the gateway accepted (removed from the spool).
    pub sent: usize,
    /// Events the gateway rejected as invalid (removed: they would block the spool forever).
    pub rejected: usize,
    /// Events still spooled afterwards (ours; another process may add more).
    pub remaining: usize,
    /// Why delivery stopped early (unreachable, auth failure…); the events stay spooled.
    pub error: Option<client::Error>,
    /// The time budget ran out before everything was sent.
    pub out_of_time: bool,
    /// Another process was delivering and did not finish within the budget.
    pub busy: bool,
}

/// `AGENTTRUST_STATE_DIR/spool`, else the platform's state dir (data dir where there is none),
/// e.g. `~/.local/state/agenttrust/spool`.
pub fn default_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = env::var(env::STATE_DIR) {
        return Ok(PathBuf::from(dir).join("spool"));
    }
    let dirs = directories::ProjectDirs::from("", "", "agenttrust").ok_or_else(|| {
        anyhow::anyhow!(
            "cannot find a home directory for the telemetry spool; set {}",
            env::STATE_DIR
        )
    })?;
    let base = dirs
        .state_dir()
        .unwrap_or_else(|| dirs.data_local_dir())
        .to_path_buf();
    Ok(base.join("spool"))
}

impl Spool {
    /// The spool in `dir` for the gateway whose telemetry endpoint is `gateway_url`.
    pub fn new(dir: PathBuf, gateway_url: &str) -> Spool {
        let digest = Sha256::digest(gateway_url.trim_end_matches('/').as_bytes());
        let name = format!("events-{}.jsonl", &hex::encode(digest)[..16]);
        Spool {
            data: dir.join(name),
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        &self.data
    }

    /// Cheap: no lock, one `stat`. True when there is nothing to deliver.
    pub fn is_empty(&self) -> bool {
        fs::metadata(&self.data).map_or(true, |metadata| metadata.len() == 0)
    }

    /// Whether a `guard` invocation should deliver now: a full batch is waiting, or the oldest
    /// event has waited [`BATCH_AGE`].
    pub fn is_due(&self) -> anyhow::Result<bool> {
        if self.is_empty() {
            return Ok(false);
        }
        let events = self.read_all()?;
        let oldest_due = crate::api::time::now() - BATCH_AGE.as_secs() as i64;
        Ok(events.len() >= BATCH_SIZE
            || events
                .first()
                .is_some_and(|event| event.spooled_at <= oldest_due))
    }

    fn ensure_dir(&self) -> anyhow::Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(&self.dir)
            .with_context(|| format!("cannot create the spool dir {}", self.dir.display()))
    }

    fn open_private(path: &Path, append: bool) -> io::Result<File> {
        let mut options = OpenOptions::new();
        options.create(true);
        if append {
            options.append(true);
        } else {
            options.read(true).write(true);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options.open(path)
    }

    /// Takes the data lock (blocking; it is only ever held briefly). Unlocked on drop.
    fn lock_data(&self) -> anyhow::Result<File> {
        self.ensure_dir()?;
        let path = self.dir.join("spool.lock");
        let file = Self::open_private(&path, false)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(file)
    }

    fn deliver_lock_file(&self) -> anyhow::Result<File> {
        self.ensure_dir()?;
        let path = self.dir.join("deliver.lock");
        Self::open_private(&path, false).with_context(|| format!("cannot open {}", path.display()))
    }

    /// Appends one event (one line, one write, under the lock). Returns how many old events were
    /// dropped to keep the spool bounded.
    pub fn append(&self, event: &SpooledEvent) -> anyhow::Result<usize> {
        let mut line = serde_json::to_vec(event).context("cannot encode a telemetry event")?;
        line.push(b'\n');
        let _lock = self.lock_data()?;
        let dropped = self.bound_locked(MAX_EVENTS - 1)?;
        let mut file = Self::open_private(&self.data, true)
            .with_context(|| format!("cannot open {}", self.data.display()))?;
        file.write_all(&line)
            .with_context(|| format!("cannot write {}", self.data.display()))?;
        Ok(dropped)
    }

    /// Keeps at most `keep` events (the newest). Caller holds the data lock.
    fn bound_locked(&self, keep: usize) -> anyhow::Result<usize> {
        let size = fs::metadata(&self.data).map_or(0, |metadata| metadata.len());
        if size < COUNT_THRESHOLD_BYTES {
            return Ok(0);
        }
        let lines = self.read_lines_locked()?;
        if lines.len() <= keep {
            return Ok(0);
        }
        let dropped = lines.len() - keep;
        self.rewrite_locked(&lines[dropped..])?;
        output::warn(format!(
            "the telemetry spool {} is full: dropped the {dropped} oldest event(s)",
            self.data.display()
        ));
        Ok(dropped)
    }

    fn read_lines_locked(&self) -> anyhow::Result<Vec<String>> {
        match fs::read_to_string(&self.data) {
            Ok(text) => Ok(text
                .lines()
                .filter(|line| !line.trim().is_empty())
                .map(str::to_string)
                .collect()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(error) => {
                Err(error).with_context(|| format!("cannot read {}", self.data.display()))
            }
        }
    }

    /// Replaces the data file with these lines: temp file + rename (readers and a crash see
    /// the old or the new spool). Safe because every access takes the lock first and opens the
    /// data file afterwards.
    fn rewrite_locked(&self, lines: &[String]) -> anyhow::Result<()> {
        let temp = self
            .dir
            .join(format!(".spool.{}.tmp", uuid::Uuid::new_v4().simple()));
        let result = (|| -> anyhow::Result<()> {
            let mut file = Self::open_private(&temp, false)?;
            let mut text = String::with_capacity(lines.iter().map(|line| line.len() + 1).sum());
            for line in lines {
                text.push_str(line);
                text.push('\n');
            }
            file.write_all(text.as_bytes())?;
            fs::rename(&temp, &self.data)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result.with_context(|| format!("cannot rewrite {}", self.data.display()))
    }

    /// Every spooled event, oldest first (a torn or foreign line is skipped).
    pub fn read_all(&self) -> anyhow::Result<Vec<SpooledEvent>> {
        let _lock = self.lock_data()?;
        Ok(parse_lines(&self.read_lines_locked()?))
    }

    /// Removes the events with these ids (and unreadable lines); keeps everything else,
    /// including what was appended meanwhile.
    fn remove(&self, ids: &HashSet<String>) -> anyhow::Result<usize> {
        let _lock = self.lock_data()?;
        let lines = self.read_lines_locked()?;
        let kept: Vec<String> = lines
            .into_iter()
            .filter(|line| {
                serde_json::from_str::<SpooledEvent>(line)
                    .is_ok_and(|event| !ids.contains(&event.id))
            })
            .collect();
        self.rewrite_locked(&kept)?;
        Ok(kept.len())
    }

    /// Delivers spooled events in batches of [`BATCH_SIZE`] (consecutive events of one agent
    /// and session per report). With a `budget` the whole delivery (waiting for another
    /// deliverer included) stops when it runs out; what was not confirmed stays spooled.
    pub async fn deliver(
        &self,
        client: &Client,
        budget: Option<Duration>,
    ) -> anyhow::Result<Delivery> {
        let deadline = budget.map(|budget| Instant::now() + budget);
        let mut delivery = Delivery::default();
        let lock = self.deliver_lock_file()?;
        // One deliverer at a time; wait for the other one (briefly, with a budget).
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) => {
                    if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                        delivery.busy = true;
                        delivery.remaining = self.read_all()?.len();
                        return Ok(delivery);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(fs::TryLockError::Error(error)) => {
                    return Err(error).context("cannot lock the telemetry spool for delivery");
                }
            }
        }
        let events = self.read_all()?;
        let mut done: HashSet<String> = HashSet::new();
        for batch in batches(&events) {
            let request = ReportRequest {
                // Empty when the agent comes from the agent token the delivery carries.
                agent_id: Some(batch[0].agent_id.clone()).filter(|agent| !agent.is_empty()),
                session_id: batch[0].session_id.clone(),
                events: batch
                    .iter()
                    .map(|spooled| ReportedEvent {
                        event_id: Some(spooled.id.clone()),
                        ..spooled.event.clone()
                    })
                    .collect(),
            };
            let send = client::telemetry::report(client, &request);
            let result = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, send).await {
                    Ok(result) => result,
                    Err(_) => {
                        delivery.out_of_time = true;
                        break;
                    }
                },
                None => send.await,
            };
            match result {
                Ok(_) => {
                    delivery.sent += batch.len();
                    done.extend(batch.iter().map(|event| event.id.clone()));
                }
                // Invalid forever (e.g. the agent was deleted): drop it rather than block
                // every later event behind it.
                Err(client::Error::Gateway { status, .. })
                    if (400..500).contains(&status) && ![401, 403, 408, 429].contains(&status) =>
                {
                    output::warn(format!(
                        "the gateway rejected {} telemetry event(s) (HTTP {status}); dropped them",
                        batch.len()
                    ));
                    delivery.rejected += batch.len();
                    done.extend(batch.iter().map(|event| event.id.clone()));
                }
                Err(error) => {
                    delivery.error = Some(error);
                    break;
                }
            }
        }
        delivery.remaining = if done.is_empty() {
            events.len()
        } else {
            self.remove(&done)?
        };
        drop(lock);
        Ok(delivery)
    }
}

fn parse_lines(lines: &[String]) -> Vec<SpooledEvent> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Consecutive events of the same agent and session, at most [`BATCH_SIZE`] each.
fn batches(events: &[SpooledEvent]) -> Vec<&[SpooledEvent]> {
    let mut result = Vec::new();
    let mut start = 0;
    for index in 1..=events.len() {
        let split = index == events.len()
            || index - start == BATCH_SIZE
            || events[index].agent_id != events[start].agent_id
            || events[index].session_id != events[start].session_id;
        if split {
            result.push(&events[start..index]);
            start = index;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(agent: &str, session: Option<&str>) -> SpooledEvent {
        SpooledEvent::new(
            agent.to_string(),
            session.map(str::to_string),
            ReportedEvent {
                event_type: "tool_end".to_string(),
                tool_name: Some("t".to_string()),
                duration_ms: Some(1),
                success: Some(true),
                ..ReportedEvent::default()
            },
        )
    }

    #[test]
    fn batches_split_by_size_and_owner() {
        let mut events: Vec<SpooledEvent> = (0..23).map(|_| event("a", Some("s"))).collect();
        events.push(event("b", Some("s")));
        events.push(event("b", None));
        let sizes: Vec<usize> = batches(&events).iter().map(|batch| batch.len()).collect();
        assert_eq!(sizes, [10, 10, 3, 1, 1]);
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn append_read_remove_and_modes() {
        let dir = tempfile_dir();
        let spool = Spool::new(dir.join("spool"), "http://127.0.0.1:1/");
        assert!(spool.is_empty());
        let first = event("a", Some("s"));
        let second = event("a", None);
        spool.append(&first).unwrap();
        spool.append(&second).unwrap();
        let ids = |events: Vec<SpooledEvent>| -> Vec<String> {
            events.into_iter().map(|event| event.id).collect()
        };
        assert_eq!(
            ids(spool.read_all().unwrap()),
            [first.id.clone(), second.id.clone()]
        );
        let removed: HashSet<String> = [first.id.clone()].into();
        assert_eq!(spool.remove(&removed).unwrap(), 1);
        assert_eq!(
            ids(spool.read_all().unwrap()),
            std::slice::from_ref(&second.id)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(spool.path()), 0o600);
            assert_eq!(mode(&dir.join("spool")), 0o700);
        }
        // Another gateway, another file.
        let other = Spool::new(dir.join("spool"), "http://127.0.0.1:2");
        assert_ne!(other.path(), spool.path());
        assert!(other.is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_spool_is_bounded() {
        let dir = tempfile_dir();
        let spool = Spool::new(dir.clone(), "http://x");
        let lines: Vec<String> = (0..MAX_EVENTS + 5)
            .map(|_| serde_json::to_string(&event("a", Some("s"))).unwrap())
            .collect();
        {
            let _lock = spool.lock_data().unwrap();
            spool.rewrite_locked(&lines).unwrap();
        }
        let newest = event("a", Some("s"));
        assert_eq!(spool.append(&newest).unwrap(), 6);
        let all = spool.read_all().unwrap();
        assert_eq!(all.len(), MAX_EVENTS);
        assert_eq!(all.last().map(|event| &event.id), Some(&newest.id));
        fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("agenttrust-spool-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}

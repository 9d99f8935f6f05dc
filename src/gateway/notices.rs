//! Hearing other replicas' changes (PostgreSQL): one task per gateway keeps a connection
//! listening on `store::changes::CHANNEL` and forgets, in this replica's caches, every row a
//! notice names. It owns the caches' on/off switch: they answer only while it listens.
//!
//! When the connection is lost (an error, the server restarting, or a silence: see [`HEARTBEAT`])
//! the caches are suspended and emptied at once, since notices sent meanwhile are gone; the task
//! reconnects with a growing pause, and the caches resume, empty, once it listens again. Until
//! then every request reads the database: slower, never stale.
//!
//! The only queries it sends by itself are the LISTEN and a heartbeat NOTIFY every
//! [`HEARTBEAT`]: nothing polls the tables.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::store::Store;
use crate::store::changes::{self, Listener, Notice};

use super::cache::Caches;

/// How often a replica sends itself (and everyone) a heartbeat notice.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long the connection may hear nothing, not even a heartbeat, before it is taken for dead
/// (a connection can die without the socket saying so).
const SILENCE_LIMIT: Duration = Duration::from_secs(3 * HEARTBEAT.as_secs());
/// The first pause before reconnecting, doubled on every failure up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Starts listening, before the gateway serves, so its caches are on from the first request;
/// `None` on SQLite, or when PostgreSQL cannot be listened to yet ([`listen`] keeps trying).
pub async fn connect(store: &Store, caches: &Caches) -> Option<Listener> {
    match Listener::connect(store).await {
        Ok(Some(listener)) => {
            caches.resume();
            Some(listener)
        }
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for change notices yet: caches off");
            None
        }
    }
}

/// Listens until the task is aborted (on shutdown), starting with `listening` when
/// [`connect`] got it. Returns at once on SQLite, where the caches are on for good and nothing
/// needs hearing.
pub async fn listen(store: Store, caches: Arc<Caches>, mut listening: Option<Listener>) {
    let mut pause = FIRST_PAUSE;
    loop {
        let connected = match listening.take() {
            Some(listener) => Ok(Some(listener)),
            None => Listener::connect(&store).await.inspect(|listener| {
                if listener.is_some() {
                    // Listening from here on: whatever changed before is dropped with the old
                    // contents, whatever changes later will be heard.
                    caches.resume();
                }
            }),
        };
        match connected {
            Ok(None) => return,
            Ok(Some(listener)) => {
                pause = FIRST_PAUSE;
                tracing::debug!("listening for change notices; caches on");
                let heard = Heard::new();
                let why = tokio::select! {
                    why = receive(listener, &caches, &heard) => why,
                    why = watch(&store, &heard) => why,
                };
                caches.suspend();
                tracing::warn!(
                    "change notices stopped ({why}): caches off, reading the database until \
                     listening again"
                );
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for change notices; retrying");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// When the connection last heard anything (milliseconds since it started).
struct Heard {
    started: Instant,
    last_millis: AtomicU64,
}

impl Heard {
    fn new() -> Heard {
        Heard {
            started: Instant::now(),
            last_millis: AtomicU64::new(0),
        }
    }

    fn now(&self) {
        let millis = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(millis, Ordering::Release);
    }

    fn silence(&self) -> Duration {
        let last = Duration::from_millis(self.last_millis.load(Ordering::Acquire));
        self.started.elapsed().saturating_sub(last)
    }
}

/// Forgets what every notice names; returns why it stopped hearing.
async fn receive(mut listener: Listener, caches: &Caches, heard: &Heard) -> String {
    loop {
        match listener.next().await {
            Ok(Some(notice)) => {
                heard.now();
                match notice {
                    Notice::Change(change) => caches.forget(&change),
                    Notice::Ping => {}
                    Notice::Unknown(payload) => {
                        tracing::debug!(%payload, "ignoring an unknown change notice");
                    }
                }
            }
            Ok(None) => return "the connection was lost".to_string(),
            Err(error) => return error.to_string(),
        }
    }
}

/// Sends a heartbeat every [`HEARTBEAT`]; returns when the connection has heard nothing for
/// [`SILENCE_LIMIT`].
async fn watch(store: &Store, heard: &Heard) -> String {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        if heard.silence() > SILENCE_LIMIT {
            return format!("nothing heard for {} s", heard.silence().as_secs());
        }
        if let Err(error) = changes::ping(store).await {
            // The silence check decides; a failed ping alone may be a passing hiccup.
            tracing::debug!(%error, "sending a heartbeat notice failed");
        }
    }
}

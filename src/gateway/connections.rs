//! Serving connections within limits: the accept loop, a cap on concurrent connections (past
//! it a connection gets a 503 JSON error and is closed), a timeout on reading a request's
//! headers (a client that sends half a header is disconnected instead of holding a connection
//! forever; it also ends idle keep-alive connections), a timeout on each request as a whole
//! (body included), and graceful shutdown. `axum::serve` has none of these knobs, so the loop is
//! ours, on hyper's HTTP/1 connection builder.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::api::error::ErrorBody;

use super::error::ApiError;

/// Most connections served at once, unless configured otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// How long a client may take to send a request's headers, unless configured otherwise.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request (reading its body and answering it) may take, unless configured
/// otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The server's bounds on connections and requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl ConnectionLimits {
    /// Refuses settings that would make the gateway unusable.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("the maximum number of connections must be at least 1".to_string());
        }
        if self.header_read_timeout.is_zero() || self.request_timeout.is_zero() {
            return Err("the header-read and request timeouts must be positive".to_string());
        }
        Ok(())
    }
}

/// How long a refused connection gets to take its 503 before it is closed.
const REFUSAL_GRACE: Duration = Duration::from_secs(1);
/// Most refused connections answered at once; past it a connection is closed without an
/// answer, so a flood cannot turn the refusals themselves into unbounded work.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and waits for
/// the connections in flight to finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let service = TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            if let Ok(refusal) = Arc::clone(&refusals).try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream, limits.max_connections).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Most bytes of a refused connection's request read before answering it.
const REFUSAL_READ_LIMIT: usize = 16 * 1024;

/// Answers a connection past the cap with a 503 JSON error and closes it, all within
/// [`REFUSAL_GRACE`]. The request's head is read first (an HTTP client does not accept an answer
/// before it has asked), and what follows is drained after the answer, so that closing does not
/// reset the connection before the client has read the 503.
async fn refuse(mut stream: TcpStream, max_connections: usize) {
    let body = ErrorBody {
        error: "service_unavailable".to_string(),
        message: format!(
            "this gateway is serving its maximum of {max_connections} connections; retry shortly"
        ),
        code: "TOO_MANY_CONNECTIONS".to_string(),
    };
    let body = serde_json::to_string(&body).unwrap_or_default();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = async {
        let mut head = Vec::new();
        let mut buffer = [0u8; 4096];
        while !head.windows(4).any(|window| window == b"\r\n\r\n")
            && head.len() < REFUSAL_READ_LIMIT
        {
            let read = stream.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            head.extend_from_slice(&buffer[..read]);
        }
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        while stream.read(&mut buffer).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_GRACE, answer).await;
}

/// Middleware: a request (its body included) that takes longer than the timeout is answered
/// with a 503 JSON error; dropping the handler rolls back its open transaction.
pub async fn request_timeout(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "REQUEST_TIMEOUT",
            format!(
                "the request did not complete within {} s (this gateway's request timeout)",
                timeout.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

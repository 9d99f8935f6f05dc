//! Running the wrapped command of `guard run`: inherited stdio, SIGINT/SIGTERM forwarded to it
//! while it runs (so `guard` itself never dies first and always records what happened; a
//! terminal's Ctrl-C reaches the command directly and is not sent twice), and its exit status
//! turned into ours (a signal death becomes 128 + N, as shells do).

use std::io;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// How the wrapped command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The exit status to pass on: the command's code, or 128 + the signal that killed it.
    pub exit_code: u8,
    /// `None` on success; else `exit:N` or `signal:SIGKILL`.
    pub error_type: Option<String>,
    pub duration: Duration,
}

/// Why the command could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot run `{program}`: {source}")]
pub struct SpawnError {
    pub program: String,
    #[source]
    pub source: io::Error,
}

impl SpawnError {
    /// The shells' codes: 127 not found, 126 found but not executable.
    pub fn exit_code(&self) -> u8 {
        if self.source.kind() == io::ErrorKind::NotFound {
            127
        } else {
            126
        }
    }

    pub fn error_type(&self) -> String {
        if self.source.kind() == io::ErrorKind::NotFound {
            "spawn:not_found".to_string()
        } else {
            "spawn:failed".to_string()
        }
    }
}

/// Runs `argv` to completion with inherited stdio, forwarding SIGINT and SIGTERM. The
/// variables named in `scrubbed` are removed from its environment (credentials it must not
/// inherit).
pub async fn run(argv: &[String], scrubbed: &[&str]) -> Result<Finished, SpawnError> {
    let program = argv.first().cloned().unwrap_or_default();
    #[cfg(unix)]
    let mut signals = Signals::install();
    let started = Instant::now();
    let mut command = Command::new(&program);
    command.args(&argv[1..]);
    for name in scrubbed {
        command.env_remove(name);
    }
    let mut child = command.spawn().map_err(|source| SpawnError {
        program: program.clone(),
        source,
    })?;
    let pid = child.id();
    let mut waiting = tokio::task::spawn_blocking(move || child.wait());
    let status = loop {
        #[cfg(unix)]
        {
            tokio::select! {
                joined = &mut waiting => break joined,
                Some(signal) = signals.next() => forward(pid, signal),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = pid;
            break (&mut waiting).await;
        }
    };
    let duration = started.elapsed();
    let status = status
        .map_err(io::Error::other)
        .and_then(|waited| waited)
        .map_err(|source| SpawnError {
            program: program.clone(),
            source,
        })?;
    Ok(finished(status, duration))
}

fn finished(status: ExitStatus, duration: Duration) -> Finished {
    if let Some(code) = status.code() {
        return Finished {
            exit_code: u8::try_from(code & 0xff).unwrap_or(1),
            error_type: (code != 0).then(|| format!("exit:{code}")),
            duration,
        };
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return Finished {
                exit_code: u8::try_from(128 + signal).unwrap_or(255),
                error_type: Some(format!("signal:{}", signal_name(signal))),
                duration,
            };
        }
    }
    Finished {
        exit_code: 1,
        error_type: Some("exit:unknown".to_string()),
        duration,
    }
}

/// `SIGKILL` for 9, …; `SIG<n>` for the rest.
pub fn signal_name(signal: i32) -> String {
    #[cfg(unix)]
    {
        let name = match signal {
            libc::SIGHUP => "SIGHUP",
            libc::SIGINT => "SIGINT",
            libc::SIGQUIT => "SIGQUIT",
            libc::SIGILL => "SIGILL",
            libc::SIGTRAP => "SIGTRAP",
            libc::SIGABRT => "SIGABRT",
            libc::SIGBUS => "SIGBUS",
            libc::SIGFPE => "SIGFPE",
            libc::SIGKILL => "SIGKILL",
            libc::SIGUSR1 => "SIGUSR1",
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGUSR2 => "SIGUSR2",
            libc::SIGPIPE => "SIGPIPE",
            libc::SIGALRM => "SIGALRM",
            libc::SIGTERM => "SIGTERM",
            libc::SIGXCPU => "SIGXCPU",
            libc::SIGXFSZ => "SIGXFSZ",
            _ => return format!("SIG{signal}"),
        };
        name.to_string()
    }
    #[cfg(not(unix))]
    format!("SIG{signal}")
}

#[cfg(unix)]
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// The next SIGINT or SIGTERM received (pending forever when neither could be installed).
    async fn next(&mut self) -> Option<i32> {
        async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
            match signal {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            Some(()) = recv(&mut self.interrupt) => Some(libc::SIGINT),
            Some(()) = recv(&mut self.terminate) => Some(libc::SIGTERM),
        }
    }
}

#[cfg(unix)]
fn forward(pid: u32, signal: i32) {
    // Ctrl-C at a terminal sends SIGINT to the whole foreground process group, the command
    // included: forwarding it too would interrupt the command twice.
    if signal == libc::SIGINT && in_terminal_foreground() {
        tracing::debug!(
            pid,
            "SIGINT came from the terminal; the command has it already"
        );
        return;
    }
    tracing::debug!(pid, signal, "forwarding a signal to the wrapped command");
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child, not yet
        // reaped (we are still waiting for it), so it cannot have been reused.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Whether our process group is the foreground group of a terminal on stdin, stdout or stderr
/// (where a terminal's SIGINT reaches every process of the group).
#[cfg(unix)]
fn in_terminal_foreground() -> bool {
    [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO]
        .into_iter()
        .any(|descriptor| {
            // SAFETY: tcgetpgrp and getpgrp only read process state; an fd that is not a
            // terminal makes tcgetpgrp return -1.
            let foreground = unsafe { libc::tcgetpgrp(descriptor) };
            foreground > 0 && foreground == unsafe { libc::getpgrp() }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(64), "SIG64");
    }
}

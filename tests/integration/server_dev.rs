//! The README's first command, `agenttrust server --dev`: it creates an org and an admin key
//! once, saves profile `local` as the default, so the CLI works at once; a later start reuses
//! them; SIGTERM stops it cleanly. The gateway is a real child process here.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::{Run, binary};

pub struct DevServer {
    pub child: Child,
    pub url: String,
    lines: Vec<String>,
}

/// Starts `agenttrust server --dev` on a free port and waits (on its output, not a clock) until
/// it says where it listens.
fn start(config_dir: &std::path::Path, data_dir: &std::path::Path) -> DevServer {
    start_on(config_dir, data_dir, "127.0.0.1:0")
}

/// [`start`] on a given `--listen` address.
fn start_on(config_dir: &std::path::Path, data_dir: &std::path::Path, listen: &str) -> DevServer {
    let data_dir = data_dir.to_str().expect("a UTF-8 path");
    spawn_server(
        config_dir,
        &[
            "server",
            "--dev",
            "--listen",
            listen,
            "--data-dir",
            data_dir,
        ],
    )
}

/// Runs `agenttrust ARGS` (a `server` command line) as a child process and waits, on its
/// output, until it says where it listens.
pub fn spawn_server(config_dir: &std::path::Path, args: &[&str]) -> DevServer {
    let mut command = Command::new(binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AGENTTRUST_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(args)
        .env("AGENTTRUST_CONFIG_DIR", config_dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the dev server");
    let (sender, receiver) = mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let sender = sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let mut lines = Vec::new();
    loop {
        let line = match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the dev server never said where it listens ({error}):\n{}",
                    lines.join("\n")
                );
            }
        };
        lines.push(line.clone());
        let found = ["listening on http://", "from this machine: http://"]
            .iter()
            .find_map(|marker| {
                line.find(marker)
                    .map(|at| at + marker.len() - "http://".len())
            });
        if let Some(at) = found {
            let url = line[at..].split_whitespace().next().unwrap().to_string();
            // Keep draining output so the child never blocks on a full pipe.
            std::thread::spawn(move || while receiver.recv().is_ok() {});
            return DevServer { child, url, lines };
        }
    }
}

impl DevServer {
    /// SIGTERM, then the exit status: a graceful shutdown exits 0.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        self.child.wait().expect("wait for the dev server")
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(config_dir: &std::path::Path, args: &[&str]) -> Run {
    let mut command = assert_cmd::Command::new(binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AGENTTRUST_") {
            command.env_remove(name);
        }
    }
    Run::from(
        command
            .env("AGENTTRUST_CONFIG_DIR", config_dir)
            .env("NO_COLOR", "1")
            .args(args)
            .write_stdin("")
            .timeout(Duration::from_secs(60))
            .output()
            .expect("run"),
    )
}

#[test]
fn server_dev_configures_the_cli_and_reuses_its_key() {
    let scratch = tempfile::tempdir().unwrap();
    let config_dir = scratch.path().join("config");
    let data_dir = scratch.path().join("data");

    let first = start(&config_dir, &data_dir);
    let output = first.lines.join("\n");
    let key = output
        .split_whitespace()
        .find(|word| word.starts_with("sk_live_"))
        .unwrap_or_else(|| panic!("the first start prints the admin key:\n{output}"))
        .to_string();
    // The CLI works at once with the saved default profile: no URL, no key given.
    let created = cli(
        &config_dir,
        &[
            "agents",
            "create",
            "--name",
            "demo",
            "--capabilities",
            "web:search",
            "-q",
        ],
    );
    created.success();
    let agent_id = created.value().to_string();
    let status = cli(&config_dir, &["status"]);
    status.success();
    assert!(status.stdout.contains(&first.url), "{}", status.stdout);
    let listed = cli(&config_dir, &["profile", "list"]);
    assert!(listed.stdout.contains("local"), "{}", listed.stdout);
    let token = cli(
        &config_dir,
        &[
            "tokens",
            "issue",
            "--agent",
            &agent_id,
            "--scopes",
            "web:search",
            "-q",
        ],
    );
    token.success();
    let introspected = cli(
        &config_dir,
        &["tokens", "introspect", token.value(), "-o", "json"],
    );
    assert_eq!(introspected.json()["active"], true);
    cli(
        &config_dir,
        &[
            "actions",
            "check",
            "--agent",
            &agent_id,
            "--tool",
            "web_search",
        ],
    )
    .success();
    cli(
        &config_dir,
        &[
            "actions",
            "check",
            "--agent",
            &agent_id,
            "--tool",
            "delete_all",
            "--input",
            "delete everything",
        ],
    )
    .code(77);
    let status = first.stop();
    assert!(status.success(), "SIGTERM is a clean stop: {status}");

    // A second start reuses the org and the key: no new key is printed and the data is there.
    let second = start(&config_dir, &data_dir);
    let output = second.lines.join("\n");
    assert!(
        !output.contains("sk_live_"),
        "no new key on a later start:\n{output}"
    );
    let agents = cli(&config_dir, &["agents", "list", "-q"]);
    agents.success();
    assert_eq!(agents.value(), agent_id);
    let credentials = std::fs::read_to_string(config_dir.join("credentials.toml")).unwrap();
    assert!(credentials.contains(&key), "the saved key is the first one");
    assert!(second.stop().success());
}

#[test]
fn server_dev_on_every_interface_says_so() {
    let scratch = tempfile::tempdir().unwrap();
    let config_dir = scratch.path().join("config");
    let data_dir = scratch.path().join("data");
    let server = start_on(&config_dir, &data_dir, "0.0.0.0:0");
    let port = server.url.rsplit(':').next().unwrap().to_string();
    assert_eq!(server.url, format!("http://127.0.0.1:{port}"));
    let output = server.lines.join("\n");
    assert!(
        output.contains(&format!(
            "agenttrust gateway listening on 0.0.0.0:{port} (all interfaces); from this \
             machine: http://127.0.0.1:{port} (press Ctrl-C to stop)"
        )),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "warning: dev mode on all interfaces: other machines can reach this gateway, over \
             plain HTTP (API keys travel in clear); --listen 127.0.0.1:{port} keeps it on this \
             machine"
        )),
        "{output}"
    );
    let status = cli(&config_dir, &["status", "-o", "json"]);
    status.success();
    assert_eq!(status.json()["url"], server.url.as_str());
    drop(server);
}

/// `server org create|list` and `server key create` work on the database directly, without a
/// running gateway or a key; the list counts only keys that still work.
#[test]
fn server_org_list_shows_orgs_and_their_working_keys() {
    let scratch = tempfile::tempdir().unwrap();
    let config_dir = scratch.path().join("config");
    let data_dir = scratch.path().join("data");
    let data = data_dir.to_str().unwrap();
    let created = cli(
        &config_dir,
        &["server", "org", "create", "acme", "--data-dir", data],
    );
    created.success();
    let org_id = created.stdout.trim().to_string();
    assert_eq!(created.stderr, "created org \"acme\"\n");
    cli(
        &config_dir,
        &["server", "org", "create", "globex", "--data-dir", data],
    )
    .success();
    for role in ["admin", "admin", "runtime"] {
        cli(
            &config_dir,
            &[
                "server",
                "key",
                "create",
                "--org",
                "acme",
                "--role",
                role,
                "--data-dir",
                data,
            ],
        )
        .success();
    }
    cli(
        &config_dir,
        &["server", "org", "create", "acme", "--data-dir", data],
    )
    .code(1);

    let listed = cli(
        &config_dir,
        &["server", "org", "list", "--data-dir", data, "-o", "json"],
    );
    listed.success();
    let orgs = listed.json()["orgs"].as_array().unwrap().clone();
    assert_eq!(orgs.len(), 2, "{}", listed.stdout);
    assert_eq!(orgs[0]["id"], org_id.as_str());
    assert_eq!(orgs[0]["name"], "acme");
    assert_eq!(orgs[0]["active_admin_keys"], 2);
    assert_eq!(orgs[0]["active_runtime_keys"], 1);
    assert_eq!(orgs[1]["name"], "globex");
    assert_eq!(orgs[1]["active_admin_keys"], 0);
    assert!(orgs[0]["created_at"].as_str().unwrap().ends_with('Z'));

    // Piped tables are tab-separated without a header; -q prints the ids.
    let table = cli(&config_dir, &["server", "org", "list", "--data-dir", data]);
    table.success();
    let first: Vec<&str> = table.stdout.lines().next().unwrap().split('\t').collect();
    assert_eq!(first[0], org_id);
    assert_eq!(first[1], "acme");
    assert_eq!(&first[3..], ["2", "1"]);
    let quiet = cli(
        &config_dir,
        &["server", "org", "list", "--data-dir", data, "-q"],
    );
    quiet.success();
    assert_eq!(quiet.stdout.lines().count(), 2);
    assert_eq!(quiet.stdout.lines().next().unwrap(), org_id);
}

//! A real A2A peer: the official A2A Python SDK (`a2a-sdk` from PyPI, pinned, in its own venv
//! under `target/sdk-venvs/`) against a real gateway. It parses our published card into the
//! protocol's own types and verifies its signature with its own verifier against the gateway's
//! JWKS (`tests/sdk/python/a2a_peer_card.py`); and an `a2a-sdk` server is an agent's own
//! endpoint, which the gateway forwards `message/send` to and relays the answer of
//! (`tests/sdk/python/a2a_peer_server.py`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::Harness;
use crate::on_both_backends;

on_both_backends!(
    the_a2a_sdk_parses_and_verifies_a_published_card,
    messages_are_forwarded_to_an_a2a_sdk_agent_and_its_answer_relayed,
);

/// The peer's packages, pinned: the A2A SDK with its HTTP server, the JWT library its signing
/// helpers need, and the ASGI server.
const REQUIREMENTS: &[&str] = &[
    "a2a-sdk[http-server]==1.3.0",
    "PyJWT[crypto]==2.15.1",
    "uvicorn==0.55.0",
];
const VENV_NAME: &str = "a2a-sdk-1.3.0";

fn the_a2a_sdk_parses_and_verifies_a_published_card(h: &Harness) {
    let key = agenttrust::agent_key::AgentPrivateKey::generate();
    let agent = h
        .post(
            "/api/v1/agents",
            json!({"name": "peer-visible", "capabilities": ["search:web"],
                   "public_key": key.public().to_pem()}),
        )
        .agent();
    let agent_id = agent["id"].as_str().unwrap();
    h.post(
        &format!("/api/v1/agents/{agent_id}/card"),
        json!({"description": "Searches the web", "documentation_url": "https://docs.example/peer"}),
    )
    .ok();
    h.request(
        Method::PUT,
        &format!("/api/v1/agents/{agent_id}/card/publish"),
        None,
    )
    .ok();
    let output = Command::new(crate::python_venv::python(VENV_NAME, REQUIREMENTS))
        .arg(script("a2a_peer_card.py"))
        .env("AGENTTRUST_URL", &h.url)
        .env("AGENT_ID", agent_id)
        .env("AGENT_KEY_X", key.public().jwk().x)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run a2a_peer_card.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("a2a_peer_card passed"),
        "a2a_peer_card.py failed ({})\n--- stdout\n{stdout}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The peer server, stopped when dropped.
struct Peer {
    child: Child,
    url: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `a2a_peer_server.py` and waits for the port it listens on (it prints it once its
/// socket is bound and listening).
fn start_peer() -> Peer {
    let mut child = Command::new(crate::python_venv::python(VENV_NAME, REQUIREMENTS))
        .arg(script("a2a_peer_server.py"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a2a_peer_server.py");
    let stdout = child.stdout.take().expect("the peer's stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the peer's port");
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the peer did not start: {line:?}"))
        .to_string();
    Peer {
        child,
        url: format!("http://127.0.0.1:{port}/"),
    }
}

fn messages_are_forwarded_to_an_a2a_sdk_agent_and_its_answer_relayed(h: &Harness) {
    let peer = start_peer();
    let caller = h.create_agent("asker", &["a2a:send"]);
    let caller_id = caller["id"].as_str().unwrap();
    let target = h.create_agent("reverser", &[]);
    let target_id = target["id"].as_str().unwrap();
    h.post(
        &format!("/api/v1/agents/{target_id}/card"),
        json!({"endpoint": peer.url}),
    )
    .ok();
    let token = h.issue_token(caller_id, &["a2a:send"], 600)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let request = json!({"jsonrpc": "2.0", "id": "1", "method": "message/send", "params": {
        "message": {"role": "user", "parts": [{"kind": "text", "text": "hello peer"}],
                    "messageId": "m-1"}}});
    let reply = h.raw(
        Method::POST,
        &format!("/a2a/agents/{target_id}"),
        &[
            ("Authorization", format!("Bearer {token}")),
            ("Content-Type", "application/json".to_string()),
        ],
        Some(request.to_string().into_bytes()),
    );
    let task = reply.ok()["result"].clone();
    assert_eq!(task["status"]["state"], "completed", "{}", reply.text);
    let texts: Vec<&str> = task["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|artifact| artifact["parts"].as_array().unwrap().iter())
        .filter_map(|part| part["text"].as_str())
        .collect();
    assert_eq!(texts, vec!["reep olleh"], "{task}");
    assert_eq!(task["metadata"]["forwarded_to"], peer.url.as_str());
    // The CLI sees the relayed answer in the stored task.
    let listed = h.run(&["a2a", "tasks", "list", "--agent", "reverser", "-o", "json"]);
    listed.success();
    let stored: &Value = &listed.json()["tasks"][0];
    assert_eq!(stored["status"], "completed");
    assert_eq!(stored["forwarded_to"], peer.url.as_str());
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/sdk/python/{name}"))
}

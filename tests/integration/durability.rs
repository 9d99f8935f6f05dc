//! An answered decision is never lost: a gateway process (the real binary, on the harness's
//! database) is killed with SIGKILL while checks pour in, and every check it acknowledged is
//! found afterwards, each with its audit event, in a chain that still verifies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::Harness;
use crate::on_both_backends;
use crate::server_dev::spawn_server;

on_both_backends!(sigkill_under_load_loses_no_acknowledged_decision);

/// Concurrent clients: enough to make the writer commit batches of several checks.
const CLIENTS: usize = 16;
/// Acknowledged checks to wait for before the kill.
const ACKNOWLEDGED_BEFORE_KILL: usize = 300;

fn sigkill_under_load_loses_no_acknowledged_decision(h: &Harness) {
    let agent = h.create_agent("durable", &[]);
    let agent_id = agent["id"].as_str().unwrap().to_string();
    let server = spawn_server(
        h.config_dir.path(),
        &[
            "server",
            "--database-url",
            &h.database_url,
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let url = format!("{}/api/v1/agenttrust/check", server.url);
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();

    let mut server = server;
    h.block_on(async {
        let client = reqwest::Client::new();
        let mut clients = Vec::new();
        for index in 0..CLIENTS {
            let (client, url, key) = (client.clone(), url.clone(), h.admin_key.clone());
            let (agent_id, acknowledged) = (agent_id.clone(), Arc::clone(&acknowledged));
            clients.push(tokio::spawn(async move {
                for call in 0.. {
                    let body = serde_json::json!({
                        "agent_id": agent_id,
                        "session_id": format!("durable-{index}"),
                        "action_name": "read_file",
                        "input_summary": format!("call {call}"),
                    });
                    let Ok(response) = client
                        .post(&url)
                        .header("X-API-Key", &key)
                        .json(&body)
                        .send()
                        .await
                    else {
                        return;
                    };
                    if !response.status().is_success() {
                        return;
                    }
                    let Ok(answer) = response.json::<serde_json::Value>().await else {
                        return;
                    };
                    assert_eq!(answer["allowed"], true, "{answer}");
                    let check_id = answer["check_id"].as_str().unwrap().to_string();
                    acknowledged.lock().unwrap().push(check_id);
                }
            }));
        }
        // Kill once enough checks were answered, while the clients keep sending.
        while acknowledged.lock().unwrap().len() < ACKNOWLEDGED_BEFORE_KILL {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.child.kill().expect("SIGKILL the gateway");
        server.child.wait().expect("reap the gateway");
        for client in clients {
            client
                .await
                .expect("a client ends when the gateway is gone");
        }
    });

    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= ACKNOWLEDGED_BEFORE_KILL);
    // The ids came from the gateway's answers; checked as UUIDs before they enter SQL.
    let ids: Vec<String> = acknowledged
        .iter()
        .map(|id| {
            uuid::Uuid::parse_str(id).expect("a check id is a UUID");
            format!("'{id}'")
        })
        .collect();
    let list = ids.join(", ");
    let stored = h
        .sql_integers(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM checks WHERE id IN ({list})"
        ))
        .unwrap();
    assert_eq!(
        stored[0],
        acknowledged.len() as i64,
        "acknowledged checks lost"
    );
    let audited = h
        .sql_integers(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_events \
             WHERE kind = 'check.decided' AND subject_id IN ({list})"
        ))
        .unwrap();
    assert_eq!(audited[0], acknowledged.len() as i64, "audit events lost");

    // The harness's own gateway opens the database after the crash: the chain verifies.
    let verified = h.run(&["audit", "verify", "-o", "json"]);
    verified.success();
    assert_eq!(verified.json()["valid"], true, "{}", verified.stdout);
}

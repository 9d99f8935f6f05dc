//! Paging alike on every list verb (`--limit`, `--cursor`, `--all`: same names, same
//! behaviour), the gateway's list endpoints paging with one cursor scheme (and a default page
//! when an SDK sends no limit), the filters of `agents list`, and `--watch`.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use agenttrust::api::keys::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Harness, binary};
use crate::on_both_backends;

on_both_backends!(
    every_list_verb_pages_alike,
    an_sdk_without_a_limit_gets_a_default_page_with_a_cursor,
    agents_list_filters_by_status_and_name_prefix,
    delegations_page_through_the_active_filter,
    approvals_page_newest_first,
    bad_page_parameters_are_refused,
    approvals_list_watch_reprints_on_change_and_ctrl_c_exits_0,
);

/// Five of everything a list verb lists: agents, keys, delegations, sessions, events, approvals.
fn five_of_everything(h: &Harness) {
    let mut agents = Vec::new();
    for index in 0..5 {
        let agent = h.create_agent(&format!("pager-{index}"), &["files:read"]);
        agents.push(agent["id"].as_str().unwrap().to_string());
    }
    for _ in 0..4 {
        h.new_key(Role::Runtime);
    }
    for index in 0..5 {
        let reply = h.post(
            "/api/v1/delegations",
            json!({"from_agent_id": agents[0], "to_agent_id": agents[1 + index % 4],
                   "scope": ["files:read"], "ttl_seconds": 3600}),
        );
        reply.expect_status(201..=201);
    }
    let server = h.register_mcp_server("srv");
    for agent in &agents {
        h.post(
            "/mcp/sessions/init",
            json!({"agent_id": agent, "server_id": server}),
        )
        .ok();
        let session = format!("sess-{}", uuid::Uuid::new_v4());
        let decision = h.check(json!({"agent_id": agent, "session_id": session,
            "action_name": "delete_all", "action_source": "api",
            "action_input_summary": "delete everything"}));
        assert_eq!(decision["elevation_required"], true, "{decision}");
        h.post(
            "/api/v1/telemetry/report",
            json!({"agent_id": agent, "events": [{"event_type": "tool_end", "tool_name": "ls"}]}),
        )
        .ok();
    }
}

/// The lines of a run (one id a line).
fn ids(stdout: &str) -> Vec<String> {
    stdout.lines().map(str::to_string).collect()
}

/// The cursor in the "More …: --cursor C (or --all)" note.
fn cursor_in(stderr: &str) -> String {
    let start = stderr
        .find("--cursor ")
        .unwrap_or_else(|| panic!("no cursor note: {stderr}"))
        + "--cursor ".len();
    stderr[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn every_list_verb_pages_alike(h: &Harness) {
    five_of_everything(h);
    for (verb, key, extra) in [
        ("agents", "agents", &[][..]),
        ("keys", "keys", &[]),
        ("delegations", "delegations", &[]),
        ("sessions", "sessions", &[]),
        ("telemetry", "events", &[]),
        ("approvals", "approvals", &["--status", "all"]),
    ] {
        let id_field = if verb == "sessions" {
            "session_id"
        } else {
            "id"
        };
        let ids_only = format!(".{key}[].{id_field}");
        let list = |args: &[&str]| {
            let mut full = vec![verb, "list"];
            full.extend_from_slice(extra);
            full.extend_from_slice(args);
            h.run(&full)
        };
        // The ids of the listed items, one a line (`-q` would silence the next-page note).
        let list_ids = |args: &[&str]| {
            let mut full = args.to_vec();
            full.extend_from_slice(&["--jq", &ids_only]);
            list(&full)
        };
        let everything = list(&["--all", "-o", "json"]);
        everything.success();
        let document = everything.json();
        let items = document[key]
            .as_array()
            .unwrap_or_else(|| panic!("{verb}: {document}"));
        assert!(items.len() >= 5, "{verb}: {document}");
        assert!(document.get("next_cursor").is_none(), "{verb}: {document}");
        let all_ids: Vec<String> = items
            .iter()
            .map(|item| {
                item.get("id")
                    .or_else(|| item.get("session_id"))
                    .and_then(Value::as_str)
                    .unwrap()
                    .to_string()
            })
            .collect();

        // Page by page with the cursor the note names: the same items, in the same order.
        let mut paged = Vec::new();
        let first = list_ids(&["--limit", "2"]);
        first.success();
        assert_eq!(ids(&first.stdout).len(), 2, "{verb}");
        paged.extend(ids(&first.stdout));
        let mut cursor = cursor_in(&first.stderr);
        loop {
            let next = list_ids(&["--limit", "2", "--cursor", &cursor]);
            next.success();
            paged.extend(ids(&next.stdout));
            if next.stderr.contains("--cursor ") {
                cursor = cursor_in(&next.stderr);
            } else {
                break;
            }
        }
        assert_eq!(paged, all_ids, "{verb}: pages cover everything once");

        // --all with small pages gathers the same, in one document.
        let small_pages = list_ids(&["--all", "--limit", "2"]);
        small_pages.success();
        assert_eq!(ids(&small_pages.stdout), all_ids, "{verb}");
        assert_eq!(small_pages.stderr, "", "{verb}");

        // One page as JSON is the gateway's page: the wrapper and next_cursor.
        let one_page = list(&["--limit", "2", "-o", "json"]);
        one_page.success();
        let page = one_page.json();
        assert_eq!(page[key].as_array().unwrap().len(), 2, "{verb}");
        assert_eq!(
            page["next_cursor"].as_str(),
            Some(all_ids[1].as_str()),
            "{verb}"
        );
    }
}

fn an_sdk_without_a_limit_gets_a_default_page_with_a_cursor(h: &Harness) {
    for index in 0..101 {
        h.create_agent(&format!("many-{index:03}"), &[]);
    }
    let first = h.get("/api/v1/agents").ok().clone();
    let agents = first["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 100, "the default page");
    assert_eq!(first["next_cursor"], agents[99]["id"]);
    let rest = h
        .get(&format!(
            "/api/v1/agents?cursor={}",
            first["next_cursor"].as_str().unwrap()
        ))
        .ok()
        .clone();
    assert_eq!(rest["agents"].as_array().unwrap().len(), 1);
    assert_eq!(rest["agents"][0]["name"], "many-100");
    assert!(rest.get("next_cursor").is_none(), "{rest}");

    let all = h.run(&["agents", "list", "--all", "-q"]);
    all.success();
    assert_eq!(all.stdout.lines().count(), 101);
    // `-q` prints only the ids; the note about the next page is talk, on stderr.
    let one_page = h.run(&["agents", "list"]);
    one_page.success();
    assert_eq!(one_page.stdout.lines().count(), 100);
    assert!(
        one_page.stderr.contains("More agents: --cursor "),
        "{}",
        one_page.stderr
    );
}

fn agents_list_filters_by_status_and_name_prefix(h: &Harness) {
    let web = h.create_agent("web-crawler", &[])["id"]
        .as_str()
        .unwrap()
        .to_string();
    h.create_agent("web-indexer", &[]);
    h.create_agent("db_admin", &[]);
    h.create_agent("dbxadmin", &[]);
    h.run(&["agents", "revoke", &web, "--yes"]).success();

    let names = |args: &[&str]| {
        let mut full = vec!["agents", "list"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--jq", ".agents[].name"]);
        let run = h.run(&full);
        run.success();
        run.stdout
    };
    assert_eq!(
        names(&["--name-prefix", "web-"]),
        "web-crawler\nweb-indexer\n"
    );
    assert_eq!(names(&["--status", "revoked"]), "web-crawler\n");
    assert_eq!(
        names(&["--status", "active", "--name-prefix", "web"]),
        "web-indexer\n"
    );
    // `_` is a character, not a wildcard.
    assert_eq!(names(&["--name-prefix", "db_"]), "db_admin\n");
    assert_eq!(names(&["--name-prefix", "nomatch"]), "");
    // The filters and the cursor together.
    let first = h.run(&[
        "agents",
        "list",
        "--name-prefix",
        "web",
        "--limit",
        "1",
        "--jq",
        ".agents[].id",
    ]);
    first.success();
    let cursor = cursor_in(&first.stderr);
    let second = h.run(&[
        "agents",
        "list",
        "--name-prefix",
        "web",
        "--limit",
        "1",
        "--cursor",
        &cursor,
        "--jq",
        ".agents[].name",
    ]);
    second.success();
    assert_eq!(second.stdout, "web-indexer\n");

    h.run(&["agents", "list", "--status", "asleep"]).code(2);
    h.get("/api/v1/agents?status=asleep").expect_error(400);
}

fn delegations_page_through_the_active_filter(h: &Harness) {
    let from = h.create_agent("boss", &["files:read"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let to = h.create_agent("helper", &[])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ids = Vec::new();
    for _ in 0..6 {
        let reply = h.post(
            "/api/v1/delegations",
            json!({"from_agent_id": from, "to_agent_id": to, "scope": ["files:read"],
                   "ttl_seconds": 3600}),
        );
        ids.push(reply.body["delegation"]["id"].as_str().unwrap().to_string());
    }
    for revoked in [&ids[0], &ids[2], &ids[3]] {
        h.request(
            Method::DELETE,
            &format!("/api/v1/delegations/{revoked}"),
            None,
        )
        .ok();
    }
    let active = h.run(&[
        "delegations",
        "list",
        "--active",
        "--limit",
        "1",
        "--all",
        "--jq",
        ".delegations[].id",
    ]);
    active.success();
    assert_eq!(
        ids_of(&active.stdout),
        [ids[1].clone(), ids[4].clone(), ids[5].clone()]
    );
    let inactive = h.run(&[
        "delegations",
        "list",
        "--inactive",
        "--limit",
        "2",
        "--jq",
        ".delegations[].id",
    ]);
    inactive.success();
    assert_eq!(ids_of(&inactive.stdout), [ids[0].clone(), ids[2].clone()]);
    let cursor = cursor_in(&inactive.stderr);
    let rest = h.run(&[
        "delegations",
        "list",
        "--inactive",
        "--limit",
        "2",
        "--cursor",
        &cursor,
        "--jq",
        ".delegations[].id",
    ]);
    rest.success();
    assert_eq!(ids_of(&rest.stdout), [ids[3].clone()]);
    assert!(!rest.stderr.contains("--cursor"), "{}", rest.stderr);
}

fn ids_of(stdout: &str) -> Vec<String> {
    stdout.lines().map(str::to_string).collect()
}

fn approvals_page_newest_first(h: &Harness) {
    let agent = h.create_agent("asker", &[])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut created = Vec::new();
    for _ in 0..3 {
        let decision = h.check(json!({"agent_id": agent,
            "session_id": format!("sess-{}", uuid::Uuid::new_v4()),
            "action_name": "delete_all", "action_source": "api",
            "action_input_summary": "delete everything"}));
        created.push(decision["approval_id"].as_str().unwrap().to_string());
    }
    created.reverse();
    let first = h.run(&[
        "approvals",
        "list",
        "--limit",
        "2",
        "--jq",
        ".approvals[].id",
    ]);
    first.success();
    assert_eq!(ids_of(&first.stdout), created[..2]);
    let cursor = cursor_in(&first.stderr);
    let page = h
        .get(&format!("/api/v1/approvals?limit=2&cursor={cursor}"))
        .ok()
        .clone();
    assert_eq!(page["approvals"].as_array().unwrap().len(), 1);
    assert_eq!(page["approvals"][0]["id"], created[2].as_str());
    assert!(page.get("next_cursor").is_none(), "{page}");
}

fn bad_page_parameters_are_refused(h: &Harness) {
    for verb in [
        "agents",
        "keys",
        "delegations",
        "sessions",
        "telemetry",
        "approvals",
    ] {
        h.run(&[verb, "list", "--limit", "0"]).code(2);
        h.run(&[verb, "list", "--limit", "1001"]).code(2);
    }
    for path in [
        "/api/v1/agents?limit=0",
        "/api/v1/keys?limit=5000",
        "/api/v1/delegations?limit=0",
        "/api/v1/approvals?limit=0",
    ] {
        h.get(path).expect_error(400);
    }
    // A cursor past the end is an empty page, not an error.
    let past = h
        .get("/api/v1/keys?cursor=ffffffff-ffff-ffff-ffff-ffffffffffff")
        .ok()
        .clone();
    assert_eq!(past["keys"], json!([]));
}

fn approvals_list_watch_reprints_on_change_and_ctrl_c_exits_0(h: &Harness) {
    let agent = h.create_agent("watched", &[])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ask = |h: &Harness| {
        h.check(json!({"agent_id": agent,
            "session_id": format!("sess-{}", uuid::Uuid::new_v4()),
            "action_name": "delete_all", "action_source": "api",
            "action_input_summary": "delete everything"}))["approval_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = ask(h);
    let mut child = std::process::Command::new(binary())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AGENTTRUST_CONFIG_DIR", h.config_dir.path())
        .env("AGENTTRUST_URL", &h.url)
        .env("AGENTTRUST_API_KEY", &h.admin_key)
        .env("NO_COLOR", "1")
        .args([
            "approvals",
            "list",
            "--watch",
            "--interval",
            "1s",
            "-o",
            "json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Documents arrive whole, one per change: gather lines until one parses.
    let stdout = child.stdout.take().unwrap();
    let (sender, documents) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            text.push_str(&line);
            text.push('\n');
            if let Ok(document) = serde_json::from_str::<Value>(&text) {
                text.clear();
                if sender.send(document).is_err() {
                    break;
                }
            }
        }
    });
    let ids = |document: &Value| -> Vec<String> {
        document["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|approval| approval["id"].as_str().unwrap().to_string())
            .collect()
    };
    let snapshot = documents
        .recv_timeout(Duration::from_secs(20))
        .expect("the first listing");
    assert_eq!(ids(&snapshot), std::slice::from_ref(&first));
    let second = ask(h);
    let snapshot = documents
        .recv_timeout(Duration::from_secs(20))
        .expect("a new listing after the change");
    assert_eq!(ids(&snapshot), [second, first]);
    // Nothing changes: nothing is printed again.
    assert!(documents.recv_timeout(Duration::from_millis(2500)).is_err());
    // SAFETY: signalling the child this test spawned, by its pid.
    let signalled = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(signalled, 0);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "Ctrl-C ends a watch with exit 0");
}

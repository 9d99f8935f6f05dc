//! `agenttrust version`: the CLI's version and the gateway's when it answers; a gateway that is
//! down is reported, with exit 0.

use crate::harness::{Harness, run};

const CLIENT: &str = env!("CARGO_PKG_VERSION");

#[test]
fn version_names_the_client_and_the_gateway() {
    let h = Harness::sqlite();
    let gateway_version = h.get("/health").ok()["version"]
        .as_str()
        .unwrap()
        .to_string();
    let table = h.run(&["version"]);
    table.success();
    assert_eq!(
        table.stdout,
        format!(
            "client\t{CLIENT}\ngateway\t{gateway_version} (healthy) at {}\n",
            h.url
        )
    );
    let json = h.run(&["version", "-o", "json"]);
    json.success();
    let body = json.json();
    assert_eq!(body["client"]["version"], CLIENT);
    assert_eq!(body["gateway"]["reachable"], true);
    assert_eq!(body["gateway"]["version"], gateway_version.as_str());
    assert_eq!(body["gateway"]["status"], "healthy");
    assert_eq!(body["gateway"]["url"], h.url.as_str());
    let quiet = h.run(&["version", "-q"]);
    quiet.success();
    assert_eq!(quiet.stdout, format!("{CLIENT}\n"));
    let jq = h.run(&["version", "--jq", ".gateway.version"]);
    jq.success();
    assert_eq!(jq.stdout, format!("{gateway_version}\n"));
    // No API key needed.
    let bare = run(h
        .cli_bare()
        .env("AGENTTRUST_URL", &h.url)
        .args(["version", "-q"]));
    bare.success();
}

#[test]
fn version_with_the_gateway_down_exits_0_and_says_so() {
    let h = Harness::sqlite();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let down = run(h.cli().env("AGENTTRUST_URL", &closed).args(["version"]));
    down.success();
    assert!(
        down.stdout.starts_with(&format!("client\t{CLIENT}\n")),
        "{}",
        down.stdout
    );
    assert!(
        down.stdout.contains(&format!(
            "gateway\tunreachable at {closed}: cannot reach the gateway"
        )),
        "{}",
        down.stdout
    );
    assert_eq!(down.stderr, "");
    let json = run(h
        .cli()
        .env("AGENTTRUST_URL", &closed)
        .args(["version", "-o", "json"]));
    json.success();
    let body = json.json();
    assert_eq!(body["client"]["version"], CLIENT);
    assert_eq!(body["gateway"]["reachable"], false);
    assert!(body["gateway"].get("version").is_none(), "{body}");
    assert!(
        body["gateway"]["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach the gateway"),
        "{body}"
    );
}

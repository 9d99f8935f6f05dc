//! Profiles: `login` (validated before saving), `profile list|show|use|delete|import`, masked
//! secrets, credentials file mode 0600, and precedence flag > env > profile.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::harness::{Harness, run};
use crate::on_both_backends;

on_both_backends!(
    login_validates_and_saves_the_profile,
    login_with_a_bad_key_saves_nothing,
    profile_show_masks_the_key,
    profile_use_and_delete,
    profile_import_reads_the_sdk_config,
    flag_beats_env_beats_profile,
    readable_credentials_are_warned_about,
    profile_set_and_rename,
);

fn login(h: &Harness, profile: &str, key: &str) -> crate::harness::Run {
    run(h
        .cli_bare()
        .args([
            "login",
            "--profile",
            profile,
            "--url",
            &h.url,
            "--api-key-stdin",
        ])
        .write_stdin(format!("{key}\n")))
}

fn login_validates_and_saves_the_profile(h: &Harness) {
    login(h, "work", &h.admin_key).success();
    let credentials = h.config_path("credentials.toml");
    let mode = std::fs::metadata(&credentials)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "credentials.toml is private");
    let config = std::fs::read_to_string(h.config_path("config.toml")).unwrap();
    assert!(config.contains(&h.url), "{config}");
    assert!(
        !config.contains(&h.admin_key),
        "no secret in config.toml: {config}"
    );
    let saved = std::fs::read_to_string(&credentials).unwrap();
    assert!(saved.contains(&h.admin_key), "the key is saved");

    // The profile alone is enough now: no URL, no key in the environment.
    let listed = h.run_bare(&["--profile", "work", "agents", "list", "-o", "json"]);
    listed.success();
    assert!(listed.json()["agents"].is_array(), "{}", listed.stdout);
    let profiles = h.run_bare(&["profile", "list"]);
    profiles.success();
    assert!(profiles.stdout.contains("work"), "{}", profiles.stdout);
    assert!(!profiles.stdout.contains(&h.admin_key));
}

fn login_with_a_bad_key_saves_nothing(h: &Harness) {
    let attempt = login(h, "bad", "sk_live_wrong");
    attempt.code(4);
    let profiles = h.run_bare(&["profile", "list"]);
    assert!(!profiles.stdout.contains("bad"), "{}", profiles.stdout);
    if let Ok(saved) = std::fs::read_to_string(h.config_path("credentials.toml")) {
        assert!(!saved.contains("sk_live_wrong"), "{saved}");
    }
}

fn profile_show_masks_the_key(h: &Harness) {
    login(h, "masked", &h.admin_key).success();
    let shown = h.run_bare(&["profile", "show", "masked"]);
    shown.success();
    assert!(!shown.stdout.contains(&h.admin_key), "{}", shown.stdout);
    let head = &h.admin_key[..10];
    let tail = &h.admin_key[h.admin_key.len() - 2..];
    assert!(
        shown.stdout.contains(head) || shown.stdout.contains("sk_live_"),
        "the mask keeps the prefix: {}",
        shown.stdout
    );
    assert!(shown.stdout.contains(&h.url), "{}", shown.stdout);
    let json = h.run_bare(&["profile", "show", "masked", "-o", "json"]);
    json.success();
    assert!(!json.stdout.contains(&h.admin_key), "{}", json.stdout);
    let revealed = h.run_bare(&["profile", "show", "masked", "--show-secrets"]);
    revealed.success();
    assert!(
        revealed.stdout.contains(&h.admin_key),
        "{}",
        revealed.stdout
    );
    assert!(revealed.stdout.contains(tail));
}

fn profile_use_and_delete(h: &Harness) {
    login(h, "first", &h.admin_key).success();
    login(h, "second", &h.admin_key).success();
    h.run_bare(&["profile", "use", "second"]).success();
    let config = std::fs::read_to_string(h.config_path("config.toml")).unwrap();
    assert!(config.contains("second"), "{config}");
    // The default profile serves commands without --profile.
    h.run_bare(&["agents", "list"]).success();
    h.run_bare(&["profile", "use", "nope"]).code(3);

    // Without a TTY a delete needs --yes.
    let refused = h.run_bare(&["profile", "delete", "first"]);
    assert_ne!(refused.code, 0, "{}", refused.stderr);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    h.run_bare(&["profile", "delete", "first", "--yes"])
        .success();
    let listed = h.run_bare(&["profile", "list"]);
    assert!(!listed.stdout.contains("first"), "{}", listed.stdout);
    assert!(listed.stdout.contains("second"), "{}", listed.stdout);
    let credentials = std::fs::read_to_string(h.config_path("credentials.toml")).unwrap();
    assert!(
        !credentials.contains("[first]") && !credentials.contains("first"),
        "{credentials}"
    );
}

fn profile_import_reads_the_sdk_config(h: &Harness) {
    let file = h.scratch.path().join("agenttrust.json");
    std::fs::write(
        &file,
        json!({"base_url": h.url, "auth_url": h.url, "api_key": h.admin_key}).to_string(),
    )
    .unwrap();
    let imported = h.run_bare(&[
        "profile",
        "import",
        file.to_str().unwrap(),
        "--profile",
        "sdk",
    ]);
    imported.success();
    let mode = std::fs::metadata(h.config_path("credentials.toml"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    h.run_bare(&["--profile", "sdk", "health"]).success();
    h.run_bare(&["--profile", "sdk", "agents", "list"])
        .success();
}

fn flag_beats_env_beats_profile(h: &Harness) {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    // The profile points at a closed port: env and flag override it.
    run(h
        .cli_bare()
        .args([
            "login",
            "--profile",
            "stale",
            "--url",
            &h.url,
            "--api-key-stdin",
        ])
        .write_stdin(format!("{}\n", h.admin_key)))
    .success();
    let config_path = h.config_path("config.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(&config_path, config.replace(&h.url, &closed)).unwrap();
    h.run_bare(&["--profile", "stale", "health"]).code(69);
    run(h
        .cli_bare()
        .env("AGENTTRUST_URL", &h.url)
        .args(["--profile", "stale", "agents", "list"]))
    .success();
    run(h.cli_bare().env("AGENTTRUST_BASE_URL", &h.url).args([
        "--profile",
        "stale",
        "agents",
        "list",
    ]))
    .success();
    run(h.cli_bare().env("AGENTTRUST_URL", &closed).args([
        "--profile",
        "stale",
        "--url",
        &h.url,
        "agents",
        "list",
    ]))
    .success();
    // AGENTTRUST_API_KEY beats the profile's key.
    run(h
        .cli_bare()
        .env("AGENTTRUST_API_KEY", "sk_live_wrong")
        .args(["--profile", "stale", "--url", &h.url, "agents", "list"]))
    .code(4);
    // AGENTTRUST_PROFILE picks the profile.
    run(h
        .cli_bare()
        .env("AGENTTRUST_PROFILE", "stale")
        .args(["health"]))
    .code(69);
}

fn readable_credentials_are_warned_about(h: &Harness) {
    login(h, "loose", &h.admin_key).success();
    let credentials = h.config_path("credentials.toml");
    let quiet = h.run_bare(&["--profile", "loose", "health"]);
    quiet.success();
    assert!(!quiet.stderr.contains("warning"), "{}", quiet.stderr);
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o644)).unwrap();
    let warned = h.run_bare(&["--profile", "loose", "agents", "list"]);
    warned.success();
    assert!(
        warned.stderr.contains("warning") && warned.stderr.contains("chmod 600"),
        "{}",
        warned.stderr
    );
    // A re-save (another login) makes the file private again.
    login(h, "loose", &h.admin_key).success();
    let mode = std::fs::metadata(&credentials)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

fn profile_set_and_rename(h: &Harness) {
    login(h, "first", &h.admin_key).success();
    let set = h.run_bare(&["profile", "set", "first", "timeout", "1h30m"]);
    set.success();
    assert_eq!(set.stderr, "Profile `first`: timeout = 1h30m\n");
    h.run_bare(&["profile", "set", "first", "output", "json"])
        .success();
    let shown = h.run_bare(&["profile", "show", "first", "-o", "json"]);
    shown.success();
    assert_eq!(shown.json()["timeout"], "1h30m", "{}", shown.stdout);
    assert_eq!(shown.json()["url"], h.url.as_str());
    // The profile's own output setting now applies.
    let listed = h.run_bare(&["agents", "list"]);
    listed.success();
    assert!(listed.json()["agents"].is_array(), "{}", listed.stdout);

    // Refused values and names: usage errors, a missing profile 3, nothing written.
    let before = std::fs::read_to_string(h.config_path("config.toml")).unwrap();
    let bad_url = h.run_bare(&[
        "profile",
        "set",
        "first",
        "url",
        "localhost:8080",
        "-o",
        "table",
    ]);
    bad_url.code(2);
    assert_eq!(
        bad_url.stderr,
        "error: invalid url \"localhost:8080\": expected http://… or https://…\n"
    );
    h.run_bare(&["profile", "set", "first", "timeout", "soon"])
        .code(2);
    h.run_bare(&["profile", "set", "first", "colour", "red"])
        .code(2);
    h.run_bare(&["profile", "set", "nope", "timeout", "1m"])
        .code(3);
    assert_eq!(
        std::fs::read_to_string(h.config_path("config.toml")).unwrap(),
        before
    );

    // Rename: the key and the default go with it.
    let renamed = h.run_bare(&["profile", "rename", "first", "second"]);
    renamed.success();
    assert_eq!(renamed.stderr, "Renamed profile `first` to `second`.\n");
    let profiles = h.run_bare(&["profile", "list", "-o", "json"]);
    profiles.success();
    let profiles = profiles.json();
    assert_eq!(profiles["default_profile"], "second");
    assert_eq!(profiles["profiles"].as_array().unwrap().len(), 1);
    assert_eq!(profiles["profiles"][0]["has_api_key"], true);
    let credentials = std::fs::read_to_string(h.config_path("credentials.toml")).unwrap();
    assert!(!credentials.contains("first"), "{credentials}");
    h.run_bare(&["agents", "list"]).success();
    h.run_bare(&["profile", "rename", "first", "third"]).code(3);
    login(h, "other", &h.admin_key).success();
    let taken = h.run_bare(&["profile", "rename", "other", "second", "-o", "table"]);
    taken.code(1);
    assert_eq!(
        taken.stderr,
        "error: profile `second` exists already: delete it first, or pick another name\n"
    );
}

//! The man pages in `man/` must equal what `agenttrust man --write-dir` writes (a stale or
//! missing page fails here), and `agenttrust man COMMAND…` prints the page of that command.

use std::collections::BTreeMap;
use std::path::Path;

use crate::harness::Harness;

const REGENERATE: &str = "regenerate them with `cargo run -- man --write-dir man`";

fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect()
}

#[test]
fn man_pages_are_current() {
    let h = Harness::sqlite();
    let fresh = h.scratch.path().join("man");
    let fresh_text = fresh.to_str().unwrap();
    h.run(&["man", "--write-dir", fresh_text]).success();
    let generated = read_dir(&fresh);
    let committed = read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("man"));
    assert!(generated.contains_key("agenttrust.1"), "{generated:?}");
    assert!(generated.contains_key("agenttrust-agents-list.1"));
    let generated_names: Vec<&String> = generated.keys().collect();
    let committed_names: Vec<&String> = committed.keys().collect();
    assert_eq!(
        generated_names, committed_names,
        "man/ has other pages than the CLI: {REGENERATE}"
    );
    for (name, page) in &generated {
        assert!(
            committed.get(name) == Some(page),
            "man/{name} is stale: {REGENERATE}"
        );
    }
}

#[test]
fn man_prints_one_page() {
    let h = Harness::sqlite();
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let page = h.run(&["man", "agents", "list"]);
    page.success();
    let committed = std::fs::read_to_string(directory.join("agenttrust-agents-list.1")).unwrap();
    assert_eq!(page.stdout, committed);
    assert!(
        page.stdout.contains("\\-\\-name\\-prefix"),
        "{}",
        page.stdout
    );
    let top = h.run(&["man"]);
    top.success();
    assert_eq!(
        top.stdout,
        std::fs::read_to_string(directory.join("agenttrust.1")).unwrap()
    );
    let unknown = h.run(&["man", "agents", "frobnicate"]);
    unknown.code(2);
    assert_eq!(unknown.stdout, "");
}

//! The README's "A short tour" runs as written: every `$ ` line of its console block, in one
//! shell against a real gateway, exits as the README shows (0, or what the `echo $?` after it
//! prints), and the first line the README shows for a command is what the command prints (white
//! space aside: off a terminal tables are tab-separated).

use std::process::Command;

use crate::harness::{self, Harness};
use crate::on_both_backends;

on_both_backends!(the_readme_tour_runs_as_written);

/// One `$ ` line of the tour and what the README shows after it.
struct Step {
    command: String,
    shown: Vec<String>,
}

/// The steps of the first console block after the `## A short tour` heading.
fn tour() -> Vec<Step> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split_once("## A short tour")
        .expect("the README has a tour")
        .1;
    let block = section
        .split_once("```console\n")
        .expect("the tour has a console block")
        .1
        .split_once("```")
        .expect("the console block ends")
        .0;
    let mut steps: Vec<Step> = Vec::new();
    for line in block.lines() {
        match (line.strip_prefix("$ "), steps.last_mut()) {
            (Some(command), _) => steps.push(Step {
                command: command.to_string(),
                shown: Vec::new(),
            }),
            (None, Some(step)) => step.shown.push(line.to_string()),
            (None, None) => panic!("output before any command in the tour: {line}"),
        }
    }
    steps
}

fn words(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

fn the_readme_tour_runs_as_written(h: &Harness) {
    let steps = tour();
    assert!(steps.len() >= 5, "the tour has its steps");
    // One shell for the whole tour (variables carry over); after each command a marker with its
    // exit status. `echo $?` lines are checked against the status the marker caught.
    let mut script = String::new();
    for step in steps.iter().filter(|step| step.command != "echo $?") {
        script.push_str(&step.command);
        script.push_str("\nprintf '@@status %s\\n' \"$?\"\n");
    }
    let binary_dir = harness::binary().parent().unwrap();
    let path = format!(
        "{}:{}",
        binary_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("bash");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AGENTTRUST_") {
            command.env_remove(name);
        }
    }
    let output = command
        .args(["-c", &script])
        .env("PATH", path)
        .env("HOME", h.scratch.path())
        .env("NO_COLOR", "1")
        .env("AGENTTRUST_CONFIG_DIR", h.config_dir.path())
        .env("AGENTTRUST_URL", &h.url)
        .env("AGENTTRUST_API_KEY", &h.admin_key)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);

    // Split stdout at the markers: one chunk and one status per command that ran.
    let mut results: Vec<(String, i32)> = Vec::new();
    let mut chunk = String::new();
    for line in stdout.lines() {
        match line.strip_prefix("@@status ") {
            Some(status) => {
                results.push((std::mem::take(&mut chunk), status.parse().unwrap()));
            }
            None => {
                chunk.push_str(line);
                chunk.push('\n');
            }
        }
    }
    let mut ran = results.iter();
    let mut last_status = None;
    for step in &steps {
        if step.command == "echo $?" {
            let shown: i32 = step.shown[0].parse().expect("echo $? shows a number");
            assert_eq!(
                last_status,
                Some(shown),
                "the status the README shows; {stderr}"
            );
            continue;
        }
        let (printed, status) = ran.next().expect("every command ran");
        last_status = Some(*status);
        let expected_status = steps
            .iter()
            .skip_while(|other| !std::ptr::eq(*other, step))
            .nth(1)
            .filter(|next| next.command == "echo $?")
            .map_or(0, |next| next.shown[0].parse().unwrap());
        assert_eq!(
            *status, expected_status,
            "`{}` exits {status}: {printed}\n{stderr}",
            step.command
        );
        if let Some(first) = step.shown.first() {
            let first_printed = printed.lines().next().unwrap_or_default();
            assert_eq!(
                words(first_printed),
                words(first),
                "`{}` prints what the README shows first: {printed}",
                step.command
            );
        }
    }
}

//! `agenttrust audit verify --offline FILE --key JWKS`: checks an export file with no gateway
//! (`crate::audit_proof`), and reports like the online verification: the result on stdout, a
//! break as the error (exit 1).

use std::io::BufReader;
use std::path::Path;

use anyhow::Context as _;
use jsonwebtoken::jwk::JwkSet;

use crate::audit_proof::{self, ExportVerification};
use crate::cli::Context;
use crate::output::View;

pub fn run(context: &Context, file: &Path, key: &Path) -> anyhow::Result<()> {
    let keys = read_keys(key)?;
    let verification = if file == Path::new("-") {
        audit_proof::verify_export(std::io::stdin().lock(), &keys)
    } else {
        let opened =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        audit_proof::verify_export(BufReader::new(opened), &keys)
    }
    .with_context(|| format!("{} is not an audit export", file.display()))?;
    report(context, &verification)
}

/// A JWK Set, or a single JWK (as one key copied out of a set).
fn read_keys(path: &Path) -> anyhow::Result<JwkSet> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the keys {}", path.display()))?;
    if let Ok(set) = serde_json::from_str::<JwkSet>(&text) {
        return Ok(set);
    }
    let key = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a JWK Set or a JWK (get the gateway's keys with `agenttrust audit keys`)",
            path.display()
        )
    })?;
    Ok(JwkSet { keys: vec![key] })
}

fn report(context: &Context, verification: &ExportVerification) -> anyhow::Result<()> {
    let range = match (verification.first_seq, verification.last_seq) {
        (Some(first), Some(last)) => format!("{first}-{last}"),
        _ => "-".to_string(),
    };
    let valid = verification.broken.is_none();
    let mut raw = serde_json::json!({
        "valid": valid,
        "org_id": verification.org_id,
        "events_checked": verification.events_checked,
        "checkpoints_checked": verification.checkpoints_checked,
        "first_seq": verification.first_seq,
        "last_seq": verification.last_seq,
        "anchored_through": verification.anchored_through,
    });
    let mut record = vec![
        ("valid", valid.to_string()),
        ("org_id", verification.org_id.clone()),
        ("events_checked", verification.events_checked.to_string()),
        (
            "checkpoints_checked",
            verification.checkpoints_checked.to_string(),
        ),
        ("range", range),
    ];
    if let Some(broken) = &verification.broken {
        raw["first_broken_seq"] = serde_json::json!(broken.seq);
        raw["line"] = serde_json::json!(broken.line);
        raw["reason"] = serde_json::json!(broken.reason);
        if let Some(seq) = broken.seq {
            record.push(("first_broken_seq", seq.to_string()));
        }
        if let Some(line) = broken.line {
            record.push(("line", line.to_string()));
        }
        record.push(("reason", broken.reason.clone()));
    }
    let Some(broken) = &verification.broken else {
        context.printer.show(
            &raw,
            &[verification.events_checked.to_string()],
            View::Record(record),
        )?;
        return Ok(());
    };
    if !context.printer.is_quiet() {
        context.printer.show(&raw, &[], View::Record(record))?;
    }
    let place = match (broken.seq, broken.line) {
        (Some(seq), Some(line)) => format!(" at event {seq} (line {line})"),
        (Some(seq), None) => format!(" at event {seq}"),
        (None, Some(line)) => format!(" at line {line}"),
        (None, None) => String::new(),
    };
    anyhow::bail!("the exported audit log is broken{place}: {}", broken.reason)
}

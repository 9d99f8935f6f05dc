//! Proof that an audit log was not edited, checked without the gateway: a signed checkpoint
//! against the gateway's public keys ([`verify_checkpoint`]), and an export file
//! ([`verify_export`]) walked event by event, each linked to the one before and hashing to its
//! `hash`, up to signed checkpoints that pin the hashes. Whoever rewrites history must recompute
//! every later hash, which the chain alone cannot catch; the checkpoints' signatures they cannot
//! make.

use std::collections::BTreeMap;
use std::io::BufRead;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::api::audit::{
    AuditCheckpoint, CHECKPOINT_TYPE, CheckpointClaims, EXPORT_FORMAT, ExportLine, GENESIS_HASH,
};

/// Checks that `checkpoint` is signed by one of `keys` and that what is signed is what it says:
/// `Err(reason)` otherwise.
pub fn verify_checkpoint(checkpoint: &AuditCheckpoint, keys: &JwkSet) -> Result<(), String> {
    let header = jsonwebtoken::decode_header(&checkpoint.signature)
        .map_err(|_| "its signature is not a JWS".to_string())?;
    if header.alg != Algorithm::ES256 {
        return Err(format!("it is signed with {:?}, not ES256", header.alg));
    }
    if header.typ.as_deref() != Some(CHECKPOINT_TYPE) {
        return Err("its signature is not a checkpoint's (wrong typ)".to_string());
    }
    let kid = header
        .kid
        .ok_or_else(|| "its signature names no key".to_string())?;
    let jwk = keys
        .find(&kid)
        .ok_or_else(|| format!("it is signed by key {kid}, which is not among the keys given"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| format!("key {kid} is not usable"))?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<CheckpointClaims>(&checkpoint.signature, &key, &validation)
        .map_err(|_| format!("its signature does not verify with key {kid}"))?
        .claims;
    if claims.org_id != checkpoint.org_id || claims.seq != checkpoint.seq {
        return Err("its signature is for another place in the chain".to_string());
    }
    if claims.hash != checkpoint.hash {
        return Err("its signature is for another hash".to_string());
    }
    if kid != checkpoint.key_id {
        return Err("it names another key than the one that signed it".to_string());
    }
    Ok(())
}

/// What an export file holds and whether it proves itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportVerification {
    pub org_id: String,
    pub events_checked: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub checkpoints_checked: u64,
    /// The last event a valid checkpoint pins.
    pub anchored_through: Option<i64>,
    /// `None` when the file proves every event it holds.
    pub broken: Option<ExportBreak>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportBreak {
    /// The line of the file (from 1) where the proof fails, when one line is to blame.
    pub line: Option<usize>,
    pub seq: Option<i64>,
    pub reason: String,
}

/// A file that is not an export at all (as opposed to an export that does not verify).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read the file: {0}")]
    Read(#[from] std::io::Error),
    #[error("line {line} is not an export line: {reason}")]
    Line { line: usize, reason: String },
    #[error("the file does not start with an {EXPORT_FORMAT} header line")]
    NoHeader,
}

/// Verifies an export file (header, checkpoints, then events in chain order; see
/// [`ExportLine`]), reading it once, keeping only the checkpoints in memory.
pub fn verify_export(
    reader: impl BufRead,
    keys: &JwkSet,
) -> Result<ExportVerification, ExportError> {
    let mut result = ExportVerification::default();
    let mut header_seen = false;
    // seq → (hash, line) of every checkpoint whose signature verified.
    let mut checkpoints: BTreeMap<i64, (String, usize)> = BTreeMap::new();
    let mut prev: Option<(i64, String)> = None;
    let fail = |result: &mut ExportVerification, line, seq, reason: String| {
        result.broken = Some(ExportBreak { line, seq, reason });
    };
    for (index, text) in reader.lines().enumerate() {
        let number = index + 1;
        let text = text?;
        if text.trim().is_empty() {
            continue;
        }
        let line: ExportLine = serde_json::from_str(&text).map_err(|error| ExportError::Line {
            line: number,
            reason: error.to_string(),
        })?;
        match line {
            ExportLine::Header(header) => {
                if header_seen || number != 1 || header.format != EXPORT_FORMAT {
                    return Err(ExportError::NoHeader);
                }
                header_seen = true;
                result.org_id = header.org_id;
            }
            _ if !header_seen => return Err(ExportError::NoHeader),
            ExportLine::Checkpoint(checkpoint) => {
                if prev.is_some() {
                    fail(
                        &mut result,
                        Some(number),
                        Some(checkpoint.seq),
                        "a checkpoint line follows the events: an export lists its checkpoints \
                         first"
                            .to_string(),
                    );
                    return Ok(result);
                }
                if checkpoint.org_id != result.org_id {
                    fail(
                        &mut result,
                        Some(number),
                        Some(checkpoint.seq),
                        format!(
                            "the checkpoint at event {} is another org's",
                            checkpoint.seq
                        ),
                    );
                    return Ok(result);
                }
                if let Err(reason) = verify_checkpoint(&checkpoint, keys) {
                    fail(
                        &mut result,
                        Some(number),
                        Some(checkpoint.seq),
                        format!(
                            "the checkpoint at event {} is not valid: {reason}",
                            checkpoint.seq
                        ),
                    );
                    return Ok(result);
                }
                checkpoints.insert(checkpoint.seq, (checkpoint.hash, number));
            }
            ExportLine::Event(event) => {
                let seq = event.seq;
                let problem = if event.org_id != result.org_id {
                    Some(format!("event {seq} is another org's"))
                } else {
                    match &prev {
                        None if seq == 1 && event.prev_hash != GENESIS_HASH => Some(
                            "event 1 does not start the chain: its prev_hash is not the genesis \
                             hash"
                                .to_string(),
                        ),
                        Some((last_seq, _)) if seq != last_seq + 1 => Some(format!(
                            "event {} is missing: the file goes from event {last_seq} to event \
                             {seq}",
                            last_seq + 1
                        )),
                        Some((last_seq, last_hash)) if &event.prev_hash != last_hash => {
                            Some(format!(
                                "event {seq} does not link to event {last_seq}: its prev_hash is \
                                 not that event's hash"
                            ))
                        }
                        _ if !event.hash_matches() => Some(format!(
                            "event {seq} ({}) was modified: its content does not match its hash",
                            event.id
                        )),
                        _ => match checkpoints.get(&seq) {
                            Some((hash, _)) if hash != &event.hash => Some(format!(
                                "event {seq} is not the event the gateway signed at that place: \
                                 the events up to it were rewritten"
                            )),
                            _ => None,
                        },
                    }
                };
                if let Some(reason) = problem {
                    fail(&mut result, Some(number), Some(seq), reason);
                    return Ok(result);
                }
                if checkpoints.contains_key(&seq) {
                    result.checkpoints_checked += 1;
                    result.anchored_through = Some(seq);
                }
                result.first_seq.get_or_insert(seq);
                result.last_seq = Some(seq);
                result.events_checked += 1;
                prev = Some((seq, event.hash));
            }
        }
    }
    if !header_seen {
        return Err(ExportError::NoHeader);
    }
    let Some(last_seq) = result.last_seq else {
        fail(
            &mut result,
            None,
            None,
            "the file holds no events".to_string(),
        );
        return Ok(result);
    };
    let first_seq = result.first_seq.unwrap_or(last_seq);
    if let Some((&seq, &(_, line))) = checkpoints
        .iter()
        .find(|(seq, _)| **seq < first_seq || **seq > last_seq)
    {
        fail(
            &mut result,
            Some(line),
            Some(seq),
            format!(
                "the checkpoint at event {seq} is outside the events the file holds \
                 ({first_seq}–{last_seq})"
            ),
        );
        return Ok(result);
    }
    match result.anchored_through {
        Some(anchored) if anchored == last_seq => {}
        anchored => {
            let from = anchored.map_or(first_seq, |seq| seq + 1);
            fail(
                &mut result,
                None,
                Some(from),
                format!(
                    "events {from}–{last_seq} come after the last signed checkpoint in the file: \
                     nothing proves they were not edited"
                ),
            );
        }
    }
    Ok(result)
}

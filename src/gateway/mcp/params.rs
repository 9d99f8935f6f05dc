//! `Mcp-Param-*` headers (2026-07-28): a tool's input schema may ask, with `x-mcp-header` on an
//! argument, that clients mirror the argument's value in a header, so that intermediaries can
//! route on it without reading the body. The gateway checks the body; an intermediary behind it
//! that routed on a header saying something else would act on a value nobody checked. So the
//! headers the upstream is sent are the gateway's own, made from the arguments it checked and
//! the `x-mcp-header` names the server's last `tools/list` declared (kept with the tools'
//! hints, [`crate::store::mcp::tools`]). A caller's header for a declared argument must say
//! what the body says (else a 400 `HEADER_MISMATCH`, as the revision asks of every server
//! reading the body); a caller's header for no declared argument is not forwarded, since
//! nothing says what it mirrors.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// The prefix of the headers, in the lower case header names arrive in.
pub const HEADER_PREFIX: &str = "mcp-param-";
/// The most mirrored arguments one tool may declare (more: none are learned).
pub const MAX_PARAMS_PER_TOOL: usize = 64;
/// How deep in an input schema's properties a declaration is looked for.
const MAX_SCHEMA_DEPTH: usize = 8;
/// How a value that cannot travel as plain header text is wrapped (base64 of its UTF-8).
const SENTINEL_START: &str = "=?base64?";
const SENTINEL_END: &str = "?=";

/// A tool's mirrored arguments: header name after the prefix, in lower case → the argument's
/// path (property names from the arguments' root).
pub type Declared = BTreeMap<String, Vec<String>>;

/// Why a caller's header cannot be forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("the Mcp-Param-{name} header says {stated:?} but the body's argument says {body:?}")]
    Differs {
        name: String,
        stated: String,
        body: String,
    },
    #[error("the Mcp-Param-{name} header says {stated:?} but the body has no such argument")]
    Missing { name: String, stated: String },
    #[error("the Mcp-Param-{name} header is not valid base64 of UTF-8 text")]
    Undecodable { name: String },
}

/// The arguments `tool` (a `tools/list` entry) declares mirrored; empty when it declares none,
/// `None` when its declarations break the revision's rules (names that are not header tokens,
/// repeated, or too many), for which clients must not use the tool: nothing is mirrored then.
pub fn declared(tool: &Value) -> Option<Declared> {
    let mut declared = Declared::new();
    let schema = tool.get("inputSchema")?;
    walk(schema, &mut Vec::new(), &mut declared, 0).then_some(declared)
}

fn walk(schema: &Value, path: &mut Vec<String>, declared: &mut Declared, depth: usize) -> bool {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return true;
    };
    for (property, schema) in properties {
        path.push(property.clone());
        if let Some(name) = schema.get("x-mcp-header") {
            let Some(name) = name.as_str().filter(|name| is_token(name)) else {
                return false;
            };
            let name = name.to_ascii_lowercase();
            if declared.contains_key(&name) || declared.len() == MAX_PARAMS_PER_TOOL {
                return false;
            }
            declared.insert(name, path.clone());
        }
        if depth < MAX_SCHEMA_DEPTH && !walk(schema, path, declared, depth + 1) {
            return false;
        }
        path.pop();
    }
    true
}

/// An HTTP field-name token (RFC 9110 `tchar`), not empty.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// The text of a mirrorable value: a string as it is, an integer in decimal, a boolean; `None`
/// for anything else (null, a fraction, an object), which is not mirrored.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) if number.is_i64() || number.is_u64() => Some(number.to_string()),
        _ => None,
    }
}

/// `text` as a header value: plain when it is printable ASCII without surrounding spaces (and
/// does not look wrapped), else wrapped in base64 (a tab is not printable).
fn encode(text: &str) -> String {
    let wrapped = text.bytes().any(|byte| !(0x20..0x7f).contains(&byte))
        || text.starts_with(' ')
        || text.ends_with(' ')
        || (text.starts_with(SENTINEL_START) && text.ends_with(SENTINEL_END));
    if !wrapped {
        text.to_string()
    } else {
        format!("{SENTINEL_START}{}{SENTINEL_END}", STANDARD.encode(text))
    }
}

/// The text a header value stands for (unwrapped when wrapped); `None` when wrapped badly.
fn decode(value: &str) -> Option<String> {
    match value
        .strip_prefix(SENTINEL_START)
        .and_then(|rest| rest.strip_suffix(SENTINEL_END))
    {
        Some(wrapped) => String::from_utf8(STANDARD.decode(wrapped).ok()?).ok(),
        None => Some(value.to_string()),
    }
}

fn at<'a>(arguments: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(arguments, |value, property| value.get(property))
}

/// The headers to send the upstream with a call of `arguments` (name after the prefix, value),
/// after checking the caller's (`presented`, same form) against them.
pub fn reconcile(
    declared: &Declared,
    arguments: Option<&Value>,
    presented: &[(String, String)],
) -> Result<Vec<(String, String)>, Mismatch> {
    let body_text = |path: &[String]| {
        arguments
            .and_then(|arguments| at(arguments, path))
            .and_then(text_of)
    };
    for (name, stated) in presented {
        let Some(path) = declared.get(name) else {
            continue;
        };
        let decoded = decode(stated).ok_or_else(|| Mismatch::Undecodable { name: name.clone() })?;
        match body_text(path) {
            Some(body) if body == decoded => {}
            Some(body) => {
                return Err(Mismatch::Differs {
                    name: name.clone(),
                    stated: decoded,
                    body,
                });
            }
            None => {
                return Err(Mismatch::Missing {
                    name: name.clone(),
                    stated: decoded,
                });
            }
        }
    }
    Ok(declared
        .iter()
        .filter_map(|(name, path)| Some((name.clone(), encode(&body_text(path)?))))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool() -> Value {
        json!({"name": "execute_sql", "inputSchema": {"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "target": {"type": "object", "properties": {
                "tenant": {"type": "string", "x-mcp-header": "TenantId"}}},
            "query": {"type": "string"}}}})
    }

    #[test]
    fn declarations_are_found_at_any_depth_and_bad_ones_void_them_all() {
        let declared = declared(&tool()).unwrap();
        assert_eq!(declared["region"], ["region"]);
        assert_eq!(declared["tenantid"], ["target", "tenant"]);
        assert_eq!(declared.len(), 2);
        let twice = json!({"inputSchema": {"properties": {
            "a": {"x-mcp-header": "Same"}, "b": {"x-mcp-header": "same"}}}});
        assert_eq!(super::declared(&twice), None);
        let spaced = json!({"inputSchema": {"properties": {"a": {"x-mcp-header": "a b"}}}});
        assert_eq!(super::declared(&spaced), None);
        assert_eq!(
            super::declared(&json!({"inputSchema": {}})),
            Some(Declared::new())
        );
    }

    #[test]
    fn headers_are_made_from_the_body_and_a_caller_saying_otherwise_is_refused() {
        let declared = declared(&tool()).unwrap();
        let arguments = json!({"region": "us-west1", "target": {"tenant": " acme "}, "query": "q"});
        let sent = reconcile(&declared, Some(&arguments), &[]).unwrap();
        assert_eq!(
            sent,
            [
                ("region".to_string(), "us-west1".to_string()),
                ("tenantid".to_string(), "=?base64?IGFjbWUg?=".to_string()),
            ]
        );
        // Agreeing, plain or wrapped: fine; an undeclared header is simply not sent.
        let presented = [
            ("region".to_string(), "=?base64?dXMtd2VzdDE=?=".to_string()),
            ("other".to_string(), "x".to_string()),
        ];
        assert_eq!(
            reconcile(&declared, Some(&arguments), &presented).unwrap(),
            sent
        );
        let lying = [("region".to_string(), "eu-west1".to_string())];
        assert!(matches!(
            reconcile(&declared, Some(&arguments), &lying),
            Err(Mismatch::Differs { .. })
        ));
        assert!(matches!(
            reconcile(&declared, Some(&json!({})), &lying),
            Err(Mismatch::Missing { .. })
        ));
        let garbled = [("region".to_string(), "=?base64?***?=".to_string())];
        assert!(matches!(
            reconcile(&declared, Some(&arguments), &garbled),
            Err(Mismatch::Undecodable { .. })
        ));
        assert_eq!(encode("=?base64?x?="), "=?base64?PT9iYXNlNjQ/eD89?=");
        assert_eq!(encode("7"), "7");
        assert_eq!(text_of(&json!(1.5)), None);
    }
}

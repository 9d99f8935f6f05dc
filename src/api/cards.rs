//! Agent cards (wire-api §3.8): an A2A v1.0 card in camelCase, returned bare, with the ATI trust
//! extension in `capabilities.extensions[]` and the gateway's detached JWS in `signatures[]`.
//!
//! What is signed: the RFC 8785 (JCS) canonical JSON of the card without its `signatures`
//! member, detached (the JWS payload is not carried); [`signing_input`] is the one place that
//! makes those bytes, for the gateway that signs and the CLI that verifies.
//!
//! The gateway's cards are in A2A v1.0's own JSON form, with no empty member (no `""`, `[]`,
//! `{}`, nor a `false` the protocol treats as absent) and no pre-v1.0 member (`url`,
//! `{"type": "http"}` security schemes): an A2A SDK that re-serializes the card it parsed
//! before checking the signature (the official Python `a2a-sdk` does) gets the very bytes that
//! were signed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::{Extra, empty_as_none, null_as_empty};
use crate::agent_key::OkpJwk;

/// The ATI trust extension's URI.
pub const TRUST_EXTENSION_URI: &str = "https://agenttrust.id/ext/trust/v1";
/// The A2A protocol version cards advertise.
pub const PROTOCOL_VERSION: &str = "1.0";
/// The binding of the gateway's A2A endpoint.
pub const PROTOCOL_BINDING: &str = "JSONRPC";
/// The `typ` of a card signature's protected header.
pub const SIGNATURE_TYPE: &str = "JOSE";
/// The longest description an operator may set.
pub const MAX_DESCRIPTION_CHARACTERS: usize = 2000;
/// The most skills a card may list.
pub const MAX_SKILLS: usize = 64;

/// A card, as served (and as parsed by the CLI: unknown members are kept).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCard {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub version: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub supported_interfaces: Vec<AgentInterface>,
    /// The pre-v1.0 top-level endpoint, which SDKs fall back to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default, skip_serializing_if = "Extra::is_empty")]
    pub security_schemes: Extra,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub security_requirements: Vec<Extra>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub default_input_modes: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub default_output_modes: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub skills: Vec<Skill>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub signatures: Vec<CardSignature>,
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub documentation_url: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

impl AgentCard {
    /// The ATI trust extension's parameters, when the card carries them.
    pub fn trust(&self) -> Option<TrustParams> {
        self.capabilities
            .extensions
            .iter()
            .find(|extension| extension.uri == TRUST_EXTENSION_URI)
            .and_then(|extension| extension.params.clone())
            .and_then(|params| serde_json::from_value(serde_json::Value::Object(params)).ok())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInterface {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub protocol_binding: String,
    #[serde(default)]
    pub protocol_version: String,
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Provider {
    #[serde(default)]
    pub organization: String,
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    #[serde(default)]
    pub streaming: bool,
    #[serde(default)]
    pub push_notifications: bool,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub extensions: Vec<Extension>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Extension {
    #[serde(default)]
    pub uri: String,
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Extra>,
}

/// The ATI trust extension's parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrustParams {
    /// 0–100, computed from the agent's record when the card was generated.
    #[serde(default)]
    pub ati_trust_score: f64,
    #[serde(default)]
    pub ati_guardian_tier: String,
    /// The agent's registered Ed25519 key; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ati_agent_key: Option<OkpJwk>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// A skill the agent offers, as an operator sets it or as made from a capability.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skill {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub examples: Vec<String>,
}

/// A detached JWS over the card (see the module docs).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CardSignature {
    /// base64url of the protected header (`alg`, `kid`, `typ`, `jku`).
    #[serde(default)]
    pub protected: String,
    /// base64url of the signature.
    #[serde(default)]
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Extra>,
}

/// The protected header of a card signature.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SignatureHeader {
    #[serde(default)]
    pub alg: String,
    #[serde(default)]
    pub kid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub typ: String,
    /// Where the signer's keys are published (informative: a verifier picks the issuer it
    /// trusts, never the one a card names).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jku: String,
}

impl CardSignature {
    /// The protected header, decoded.
    pub fn header(&self) -> Result<SignatureHeader, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(self.protected.trim_end_matches('='))
            .map_err(|_| "the protected header is not base64url".to_string())?;
        serde_json::from_slice(&bytes)
            .map_err(|error| format!("the protected header is not a JWS header: {error}"))
    }
}

/// The payload a card signature covers: the JCS canonical JSON of `card` (a card as JSON, with
/// or without `signatures`) without its `signatures` member.
pub fn canonical_payload(card: &serde_json::Value) -> Result<Vec<u8>, String> {
    let mut unsigned = card.clone();
    let Some(members) = unsigned.as_object_mut() else {
        return Err("a card is a JSON object".to_string());
    };
    members.remove("signatures");
    serde_jcs::to_vec(&unsigned)
        .map_err(|error| format!("the card cannot be canonicalized: {error}"))
}

/// The JWS signing input of a detached signature: `protected || "." || base64url(payload)`.
pub fn signing_input(protected: &str, payload: &[u8]) -> Vec<u8> {
    format!("{protected}.{}", URL_SAFE_NO_PAD.encode(payload)).into_bytes()
}

/// `POST /api/v1/agents/{id}/card`: what the operator sets (the SDKs send nothing: the stored
/// settings are kept). A field given replaces the stored one; `""` (or `[]`) clears it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CardSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Replaces the skills made from the agent's capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<Vec<Skill>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
    /// The agent's own A2A JSON-RPC endpoint: messages to it are forwarded there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl CardSettings {
    /// `self` over `stored`: what is given here wins.
    pub fn over(self, stored: CardSettings) -> CardSettings {
        CardSettings {
            description: self.description.or(stored.description),
            skills: self.skills.or(stored.skills),
            documentation_url: self.documentation_url.or(stored.documentation_url),
            endpoint: self.endpoint.or(stored.endpoint),
        }
    }

    /// The endpoint, when one is set.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref().filter(|url| !url.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_input_ignores_signatures_and_member_order() {
        let one =
            serde_json::json!({"name": "a", "version": "1", "signatures": [{"protected": "x"}]});
        let other = serde_json::json!({"version": "1", "name": "a"});
        assert_eq!(
            canonical_payload(&one).unwrap(),
            canonical_payload(&other).unwrap()
        );
        let input =
            String::from_utf8(signing_input("h", &canonical_payload(&other).unwrap())).unwrap();
        assert_eq!(
            input,
            format!(
                "h.{}",
                URL_SAFE_NO_PAD.encode(br#"{"name":"a","version":"1"}"#)
            )
        );
    }

    #[test]
    fn the_trust_extension_is_read_from_the_card() {
        let card: AgentCard = serde_json::from_value(serde_json::json!({
            "name": "a",
            "capabilities": {"extensions": [{"uri": TRUST_EXTENSION_URI,
                "params": {"ati_trust_score": 85, "ati_guardian_tier": "fast"}}]},
        }))
        .unwrap();
        let trust = card.trust().unwrap();
        assert_eq!(trust.ati_trust_score, 85.0);
        assert_eq!(trust.ati_guardian_tier, "fast");
        assert!(trust.ati_agent_key.is_none());
    }
}

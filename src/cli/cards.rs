//! `agenttrust cards …`: an agent's A2A card — generate (with the operator's description,
//! skills, documentation URL and the agent's own A2A endpoint), get, publish, unpublish — and
//! `verify`, which fetches any card by URL (or an agent's public card on this gateway), checks
//! its signature against the issuer's JWK Set and prints the ATI trust extension; exit 1 when
//! the card does not verify.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use reqwest::Url;
use serde_json::Value;

use super::Context;
use crate::api::cards::{
    AgentCard, CardSettings, Skill, TrustParams, canonical_payload, signing_input,
};
use crate::client;
use crate::exit::Outcome;
use crate::output::{View, or_dash};

#[derive(Debug, Args)]
pub struct CardsArgs {
    #[command(subcommand)]
    pub command: CardsCommand,
}

#[derive(Debug, Subcommand)]
pub enum CardsCommand {
    /// Generate (or regenerate) an agent's card from its record and the settings given here
    /// (kept for the next regeneration)
    Generate(GenerateArgs),
    /// Show an agent's card (signed now by the gateway)
    Get {
        /// Agent id or name
        agent: String,
    },
    /// Publish an agent's card at GET /a2a/agents/ID/agent.json (`-q` prints that URL)
    Publish {
        /// Agent id or name
        agent: String,
    },
    /// Take an agent's card off the public route
    Unpublish {
        /// Agent id or name
        agent: String,
    },
    /// Fetch a card by URL (or an agent's public card on this gateway), check its signature
    /// against the issuer's JWK Set, print its trust extension
    #[command(after_help = "\
The issuer's JWK Set is, unless --jwks names it, the one of the gateway that serves the card: \
the URL before `/a2a/agents/`, plus `/.well-known/jwks.json` (the `jku` a card names is never \
trusted). No credential is sent. Exit status: 0 when a signature verifies, 1 when none does.")]
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Agent id or name
    pub agent: String,
    /// What the agent does ("" clears it)
    #[arg(long)]
    pub description: Option<String>,
    /// The skills to list instead of the agent's capabilities: a JSON array of
    /// {"id","name","description","tags":[…],"examples":[…]} ("[]" lists none)
    #[arg(long, value_name = "JSON")]
    pub skills_json: Option<String>,
    /// Where the agent is documented ("" clears it)
    #[arg(long, value_name = "URL")]
    pub documentation_url: Option<String>,
    /// The agent's own A2A JSON-RPC endpoint: messages to it are forwarded there ("" clears it)
    // Not named `url`: clap would take it for the global `--url` (the gateway's).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The card's URL, or the id or name of an agent of this gateway (its public card)
    pub card: String,
    /// The issuer's JWK Set URL (default: see below)
    #[arg(long, value_name = "URL")]
    pub jwks: Option<String>,
}

pub async fn run(context: &Context, args: CardsArgs) -> anyhow::Result<Outcome> {
    match args.command {
        CardsCommand::Generate(args) => generate(context, args).await,
        CardsCommand::Get { agent } => get(context, agent).await,
        CardsCommand::Publish { agent } => publish(context, agent).await,
        CardsCommand::Unpublish { agent } => unpublish(context, agent).await,
        CardsCommand::Verify(args) => verify(context, args).await,
    }
    .map(|()| Outcome::Success)
}

pub async fn generate(context: &Context, args: GenerateArgs) -> anyhow::Result<()> {
    let skills = args
        .skills_json
        .map(|text| {
            serde_json::from_str::<Vec<Skill>>(&text)
                .context("--skills-json must be a JSON array of skills")
        })
        .transpose()?;
    let client = context.client()?;
    let agent_id = super::resolve_agent(&client, args.agent).await?;
    let settings = CardSettings {
        description: args.description,
        skills,
        documentation_url: args.documentation_url,
        endpoint: args.endpoint,
    };
    let response = client::cards::generate(&client, &agent_id, &settings).await?;
    show_card(context, &response.raw, &response.value, &agent_id)
}

pub async fn get(context: &Context, agent: String) -> anyhow::Result<()> {
    let client = context.client()?;
    let agent_id = super::resolve_agent(&client, agent).await?;
    let response = client::cards::get(&client, &agent_id).await?;
    show_card(context, &response.raw, &response.value, &agent_id)
}

pub async fn publish(context: &Context, agent: String) -> anyhow::Result<()> {
    let client = context.client()?;
    let agent_id = super::resolve_agent(&client, agent).await?;
    let response = client::cards::publish(&client, &agent_id).await?;
    let public = client::cards::public_url(&client, &agent_id)?.to_string();
    context.printer.show(
        &response.raw,
        std::slice::from_ref(&public),
        View::Record(vec![
            ("agent_id", agent_id.clone()),
            ("published_at", public.clone()),
        ]),
    )?;
    Ok(())
}

pub async fn unpublish(context: &Context, agent: String) -> anyhow::Result<()> {
    let client = context.client()?;
    let agent_id = super::resolve_agent(&client, agent).await?;
    let response = client::cards::unpublish(&client, &agent_id).await?;
    context.printer.show(
        &response.raw,
        std::slice::from_ref(&agent_id),
        View::Record(vec![
            ("agent_id", agent_id.clone()),
            ("published", "no".to_string()),
        ]),
    )?;
    Ok(())
}

fn trust_rows(trust: Option<&TrustParams>) -> Vec<(&'static str, String)> {
    let Some(trust) = trust else {
        return vec![("trust_score", "- (no ATI trust extension)".to_string())];
    };
    vec![
        ("trust_score", format!("{}", trust.ati_trust_score)),
        ("guardian_tier", or_dash(Some(&trust.ati_guardian_tier))),
        (
            "agent_key",
            trust.ati_agent_key.as_ref().map_or_else(
                || "-".to_string(),
                |key| format!("{} {} {}", key.kty, key.crv, key.x),
            ),
        ),
    ]
}

fn show_card(
    context: &Context,
    raw: &Value,
    card: &AgentCard,
    agent_id: &str,
) -> anyhow::Result<()> {
    let endpoint = card
        .supported_interfaces
        .first()
        .map(|interface| interface.url.clone());
    let mut record = vec![
        ("agent_id", agent_id.to_string()),
        ("name", card.name.clone()),
        ("description", or_dash(Some(&card.description))),
        ("endpoint", or_dash(endpoint.as_deref())),
        (
            "skills",
            crate::api::join_or_dash(
                &card
                    .skills
                    .iter()
                    .map(|skill| skill.id.clone())
                    .collect::<Vec<_>>(),
            ),
        ),
    ];
    record.extend(trust_rows(card.trust().as_ref()));
    record.push((
        "signed_by",
        card.signatures
            .first()
            .and_then(|signature| signature.header().ok())
            .map_or_else(
                || "-".to_string(),
                |header| format!("{} {}", header.alg, header.kid),
            ),
    ));
    context
        .printer
        .show(raw, &[agent_id.to_string()], View::Record(record))?;
    Ok(())
}

/// The default JWK Set of the card at `card_url` (see `verify`'s help).
fn default_jwks(card_url: &Url) -> anyhow::Result<Url> {
    let text = card_url.as_str();
    let issuer = match text.find("/a2a/agents/") {
        Some(at) => text[..at].to_string(),
        None => card_url.origin().ascii_serialization(),
    };
    Url::parse(&format!("{issuer}/.well-known/jwks.json"))
        .with_context(|| format!("cannot make the JWK Set URL of {card_url}"))
}

pub async fn verify(context: &Context, args: VerifyArgs) -> anyhow::Result<()> {
    let client = context.client_without_key_check()?;
    let card_url = if args.card.starts_with("https://") || args.card.starts_with("http://") {
        Url::parse(&args.card).with_context(|| format!("{} is not a URL", args.card))?
    } else {
        let keyed = context.client()?;
        let agent_id = super::resolve_agent(&keyed, args.card).await?;
        client::cards::public_url(&client, &agent_id)?
    };
    let jwks_url = match &args.jwks {
        Some(url) => Url::parse(url).with_context(|| format!("--jwks {url} is not a URL"))?,
        None => default_jwks(&card_url)?,
    };
    let raw = client::cards::fetch(&client, card_url.clone()).await?.raw;
    let card: AgentCard = serde_json::from_value(raw.clone())
        .with_context(|| format!("{card_url} did not answer an agent card"))?;
    let jwks = client::cards::fetch(&client, jwks_url.clone()).await?.raw;
    let verdict = check_signatures(&raw, &card, &jwks);
    let mut record = vec![
        ("card", card_url.to_string()),
        ("name", card.name.clone()),
        ("jwks", jwks_url.to_string()),
        (
            "signature",
            match &verdict {
                Ok(kid) => format!("valid (key {kid})"),
                Err(why) => format!("INVALID: {why}"),
            },
        ),
    ];
    record.extend(trust_rows(card.trust().as_ref()));
    let mut shown = serde_json::json!({
        "card_url": card_url.to_string(),
        "jwks_url": jwks_url.to_string(),
        "valid": verdict.is_ok(),
        "trust": card.trust(),
    });
    match &verdict {
        Ok(kid) => shown["kid"] = kid.clone().into(),
        Err(why) => shown["reason"] = why.clone().into(),
    }
    let primary = vec![verdict.is_ok().to_string()];
    crate::exit::answer_printed(context.printer.show(&shown, &primary, View::Record(record)))?;
    if let Err(why) = verdict {
        anyhow::bail!("the card at {card_url} does not verify: {why}");
    }
    Ok(())
}

/// The key id of the first signature of `raw` that verifies with a key of `jwks`, or why none
/// does.
fn check_signatures(raw: &Value, card: &AgentCard, jwks: &Value) -> Result<String, String> {
    if card.signatures.is_empty() {
        return Err("the card carries no signature".to_string());
    }
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone())
        .map_err(|error| format!("the JWK Set is not one: {error}"))?;
    let payload = canonical_payload(raw)?;
    let mut reasons = Vec::new();
    for signature in &card.signatures {
        let header = match signature.header() {
            Ok(header) => header,
            Err(why) => {
                reasons.push(why);
                continue;
            }
        };
        let Some(jwk) = set.find(&header.kid) else {
            reasons.push(format!("no key {} in the issuer's JWK Set", header.kid));
            continue;
        };
        let algorithm = match header.alg.parse::<jsonwebtoken::Algorithm>() {
            // Never an HMAC: the JWK Set is public.
            Ok(algorithm)
                if !matches!(
                    algorithm,
                    jsonwebtoken::Algorithm::HS256
                        | jsonwebtoken::Algorithm::HS384
                        | jsonwebtoken::Algorithm::HS512
                ) =>
            {
                algorithm
            }
            _ => {
                reasons.push(format!("algorithm {:?} is not accepted", header.alg));
                continue;
            }
        };
        let key = match jsonwebtoken::DecodingKey::from_jwk(jwk) {
            Ok(key) => key,
            Err(error) => {
                reasons.push(format!("key {} is unusable: {error}", header.kid));
                continue;
            }
        };
        let input = signing_input(&signature.protected, &payload);
        match jsonwebtoken::crypto::verify(&signature.signature, &input, &key, algorithm) {
            Ok(true) => return Ok(header.kid),
            Ok(false) => reasons.push(format!(
                "the signature by key {} does not match the card",
                header.kid
            )),
            Err(error) => reasons.push(format!(
                "the signature by key {} cannot be checked: {error}",
                header.kid
            )),
        }
    }
    Err(reasons.join("; "))
}

//! OIDC discovery of a provider at registration: `{issuer}/.well-known/openid-configuration`
//! (OpenID Connect Discovery 1.0 §4), whose `issuer` must equal the registered one byte for
//! byte (§4.3: a document served for another issuer is refused), and which must name a
//! `jwks_uri` this gateway will fetch.

use crate::gateway::outbound::{FetchError, Outbound};

/// What registration keeps of a discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub jwks_uri: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(
        "the discovery document at {url} is for issuer {found:?}, not {expected:?}; register the \
         issuer exactly as it names itself"
    )]
    IssuerMismatch {
        url: String,
        expected: String,
        found: String,
    },
    #[error("the discovery document at {url} names no jwks_uri")]
    NoJwksUri { url: String },
}

/// Where an issuer's discovery document is: a trailing `/` of the issuer is dropped first.
pub fn document_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Fetches and checks `issuer`'s discovery document.
pub async fn discover(outbound: &Outbound, issuer: &str) -> Result<Discovered, DiscoveryError> {
    let url = document_url(issuer);
    let document = outbound.get_json(&url).await?;
    let text = |name: &str| {
        document
            .get(name)
            .and_then(serde_json::Value::as_str)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    };
    let found = text("issuer").unwrap_or_default();
    if found != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            url,
            expected: issuer.to_string(),
            found,
        });
    }
    let jwks_uri =
        text("jwks_uri").ok_or_else(|| DiscoveryError::NoJwksUri { url: url.clone() })?;
    outbound.check_url(&jwks_uri)?;
    Ok(Discovered {
        jwks_uri,
        authorization_endpoint: text("authorization_endpoint"),
        token_endpoint: text("token_endpoint"),
    })
}

#[cfg(test)]
mod tests {
    use super::document_url;

    #[test]
    fn the_document_sits_under_the_issuer_path() {
        assert_eq!(
            document_url("https://idp.example.com"),
            "https://idp.example.com/.well-known/openid-configuration"
        );
        assert_eq!(
            document_url("https://idp.example.com/tenant/"),
            "https://idp.example.com/tenant/.well-known/openid-configuration"
        );
    }
}

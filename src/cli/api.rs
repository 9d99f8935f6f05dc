//! `agenttrust api METHOD PATH`: the raw escape hatch (like `gh api`) for endpoints the CLI has
//! no verb for, with the profile's URL and API key. Prints the response body (pretty JSON on a
//! terminal, the bytes as received otherwise; `--jq` filters it) and exits as every other verb
//! does on an error status: 3 for 404, 4 for 401/403, 1 otherwise, 69 when unreachable.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};

use super::Context;
use crate::client::raw::{self, RawRequest};
use crate::exit::Failure;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  agenttrust api GET /api/v1/agents --jq '.agents[].name'
  agenttrust api POST /api/v1/agents --data '{\"name\":\"demo\"}'
  agenttrust api PUT /api/v1/policies --data @policy.json
  echo '{\"mode\":\"standard\"}' | agenttrust api PUT /api/v1/sessions/S/mode --data -

The path is joined to the profile's gateway URL (or --url) and the API key is sent as X-API-Key; \
a full URL is refused so the key never goes to another host. On an error status the body is \
still printed and the exit code is that of every verb: 3 not found, 4 authentication or \
permission, 1 otherwise, 69 unreachable.")]
pub struct ApiArgs {
    /// HTTP method: GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS
    #[arg(value_parser = parse_method)]
    pub method: Method,
    /// Path on the gateway, with an optional query: /api/v1/agents?limit=5
    pub path: String,
    /// Request body: JSON text, @FILE to read a file, or - to read stdin
    #[arg(long, short = 'd', value_name = "JSON|@FILE|-")]
    pub data: Option<String>,
    /// Extra request header (repeatable): 'Name: value'
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Print the response status and headers on stderr
    #[arg(long, short = 'i')]
    pub include: bool,
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

fn parse_method(text: &str) -> Result<Method, String> {
    let upper = text.trim().to_ascii_uppercase();
    if !METHODS.contains(&upper.as_str()) {
        return Err(format!("expected one of {}", METHODS.join(", ")));
    }
    Method::from_bytes(upper.as_bytes()).map_err(|error| error.to_string())
}

fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("expected 'Name: value', got {text:?}"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("invalid header name {:?}", name.trim()))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("invalid value for header {name}"))?;
    Ok((name, value))
}

pub async fn run(context: &Context, args: ApiArgs) -> anyhow::Result<()> {
    // The path is checked before anything is read or sent.
    if let Err(error) = raw::join(&reqwest::Url::parse("http://gateway.invalid/")?, &args.path) {
        return Err(Failure::Usage {
            message: error.to_string(),
            hint: None,
        }
        .into());
    }
    let body = match &args.data {
        Some(data) => Some(read_data(data)?),
        None => None,
    };
    let client = context.client_without_key_check()?;
    let response = raw::send(
        &client,
        RawRequest {
            method: args.method,
            path: args.path,
            headers: args.headers,
            body,
        },
    )
    .await?;
    if args.include {
        context.printer.note(describe_head(&response));
    }
    print_body(context, &response.body)?;
    match response.error() {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}

/// `--data`: the text itself, `@FILE`, or `-` for stdin.
fn read_data(data: &str) -> anyhow::Result<Vec<u8>> {
    if data == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read the request body from stdin")?;
        return Ok(bytes);
    }
    if let Some(path) = data.strip_prefix('@') {
        let path = PathBuf::from(path);
        return std::fs::read(&path)
            .with_context(|| format!("cannot read the request body from {}", path.display()));
    }
    Ok(data.as_bytes().to_vec())
}

/// `HTTP/1.1 200 OK` and one `name: value` line per header.
fn describe_head(response: &raw::RawResponse) -> String {
    let mut text = format!("HTTP/1.1 {}", response.status);
    for (name, value) in &response.headers {
        text.push('\n');
        text.push_str(name.as_str());
        text.push_str(": ");
        text.push_str(&String::from_utf8_lossy(value.as_bytes()));
    }
    text.push('\n');
    text
}

/// The body: through `--jq`, pretty on a terminal, else exactly as received.
fn print_body(context: &Context, body: &[u8]) -> anyhow::Result<()> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
    let printer = &context.printer;
    match parsed {
        Some(value) if printer.has_jq() || printer.stdout_is_terminal() => {
            printer.json(&value)?;
        }
        None if printer.has_jq() => {
            anyhow::bail!("--jq: the response is not JSON");
        }
        _ => printer.raw(body)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_headers_parse() {
        assert_eq!(parse_method("get"), Ok(Method::GET));
        assert_eq!(parse_method("PATCH"), Ok(Method::PATCH));
        assert!(parse_method("FETCH").is_err());
        let (name, value) = parse_header("X-Request-Id:  abc ").unwrap();
        assert_eq!(name.as_str(), "x-request-id");
        assert_eq!(value, "abc");
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }
}

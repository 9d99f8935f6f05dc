//! Cursor paging for list verbs: the flags every list verb shares (`--limit`, `--cursor`,
//! `--all`, same names and meaning everywhere), one page (exactly what the gateway sent), or
//! with `--all` every page, their items gathered under the list's key.

use std::future::Future;

use clap::Args;
use serde_json::Value;

use super::Context;
use crate::api::telemetry::MAX_PAGE_SIZE;

/// `--limit`, `--cursor`, `--all`: flattened into every list verb.
#[derive(Debug, Clone, Default, Args)]
pub struct PageArgs {
    /// Items per page, 1-1000 (with --all, per request) [default: the gateway's, 100]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_PAGE_SIZE as i64))]
    pub limit: Option<u32>,
    /// Start at this cursor (the `next_cursor` of a previous page)
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
    /// Follow `next_cursor` until the last page
    #[arg(long)]
    pub all: bool,
}

impl PageArgs {
    /// The cursor to start from (an empty one means the first page).
    pub fn start(&self) -> Option<String> {
        self.cursor.clone().filter(|cursor| !cursor.is_empty())
    }
}

/// Tells on stderr how to get the next page, when there is one and `--all` was not given.
pub fn note_more(context: &Context, what: &str, page: &PageArgs, next_cursor: Option<&str>) {
    if let (Some(cursor), false) = (next_cursor, page.all) {
        context
            .printer
            .note(format!("More {what}: --cursor {cursor} (or --all)"));
    }
}

/// One fetched page: typed items, the raw body, and the cursor of the next page.
pub struct Page<T> {
    pub items: Vec<T>,
    pub raw: Value,
    pub next_cursor: Option<String>,
}

/// What a list verb prints: the items, the JSON to print, and where the listing stopped.
pub struct Listing<T> {
    pub items: Vec<T>,
    pub raw: Value,
    pub next_cursor: Option<String>,
}

/// Fetches from `cursor` on: one page, or every page when `all`. `key` names the list in the
/// gateway's body (`sessions`, `events`).
pub async fn collect<T, Fetch, Fut>(
    key: &str,
    all: bool,
    mut cursor: Option<String>,
    mut fetch: Fetch,
) -> anyhow::Result<Listing<T>>
where
    Fetch: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = anyhow::Result<Page<T>>>,
{
    let mut items = Vec::new();
    let mut raw_items: Vec<Value> = Vec::new();
    loop {
        let page = fetch(cursor.clone()).await?;
        items.extend(page.items);
        if let Some(page_items) = page.raw.get(key).and_then(Value::as_array) {
            raw_items.extend(page_items.iter().cloned());
        }
        let next_cursor = page.next_cursor.filter(|next| !next.is_empty());
        match next_cursor {
            // A cursor that repeats would loop forever: stop there.
            Some(next) if all && cursor.as_ref() != Some(&next) => cursor = Some(next),
            next_cursor => {
                let raw = if all {
                    serde_json::json!({ key: raw_items })
                } else {
                    page.raw
                };
                return Ok(Listing {
                    items,
                    raw,
                    next_cursor,
                });
            }
        }
    }
}

//! `agenttrust audit export [--since TIME | --from-seq N] [--output-file FILE]`: the audit log as
//! JSON Lines (`api::audit::ExportLine`): a header, the signed checkpoints in the range, then
//! the events in chain order up to a checkpoint signed for the export, so the whole file can be
//! verified offline (`audit verify --offline`). A progress line on a terminal.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::parse_time;
use crate::api::audit::{
    AuditCheckpoint, AuditCheckpointQuery, AuditEventQuery, EXPORT_FORMAT, ExportHeader,
    ExportLine, MAX_PAGE_SIZE,
};
use crate::api::time;
use crate::cli::Context;
use crate::client;
use crate::output;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Start at the first event at or after this time: RFC 3339, or a duration ago (24h)
    #[arg(long, value_name = "TIME", value_parser = parse_time, conflicts_with = "from_seq")]
    pub since: Option<String>,
    /// Start at this event [default: 1, the whole chain]
    #[arg(long, value_name = "SEQ", value_parser = clap::value_parser!(i64).range(1..))]
    pub from_seq: Option<i64>,
    /// Write to this file instead of stdout (replaced only once the export is complete)
    #[arg(long, value_name = "FILE")]
    pub output_file: Option<PathBuf>,
}

pub async fn run(context: &Context, args: ExportArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    // Sign the head first: the export ends there, so its last event is pinned by a signature.
    let anchor = client::audit::create_checkpoint(&client).await?.value;
    let first_seq = match (&args.since, args.from_seq) {
        (Some(since), _) => {
            let first = client::audit::events(
                &client,
                &AuditEventQuery {
                    since: Some(since.clone()),
                    limit: Some(1),
                    ..AuditEventQuery::default()
                },
            )
            .await?
            .value
            .events
            .first()
            .map(|event| event.seq);
            match first {
                Some(seq) if seq <= anchor.seq => seq,
                _ => anyhow::bail!("no audit event since {since}"),
            }
        }
        (None, Some(seq)) if seq > anchor.seq => {
            anyhow::bail!(
                "the chain has {} events; --from-seq {seq} is past its end",
                anchor.seq
            )
        }
        (None, Some(seq)) => seq,
        (None, None) => 1,
    };
    let checkpoints = checkpoints_in(&client, first_seq, anchor.seq).await?;
    let mut sink = Sink::open(args.output_file.as_deref())?;
    sink.line(&ExportLine::Header(ExportHeader {
        format: EXPORT_FORMAT.to_string(),
        org_id: anchor.org_id.clone(),
        gateway: client.base_url().as_str().trim_end_matches('/').to_string(),
        exported_at: time::format(time::now()),
    }))?;
    for checkpoint in checkpoints {
        sink.line(&ExportLine::Checkpoint(checkpoint))?;
    }
    let total = anchor.seq - first_seq + 1;
    let show_progress = output::stderr_is_terminal() && !context.printer.is_quiet();
    let mut written: i64 = 0;
    // Unfiltered pages from the event before the first: the file is one unbroken run of the
    // chain (a time filter could skip an event whose clock ran behind).
    let mut cursor = Some((first_seq - 1).to_string());
    'pages: while let Some(after) = cursor {
        let page = client::audit::events(
            &client,
            &AuditEventQuery {
                cursor: Some(after),
                limit: Some(MAX_PAGE_SIZE),
                ..AuditEventQuery::default()
            },
        )
        .await?
        .value;
        cursor = page.next_cursor;
        for event in page.events {
            if event.seq > anchor.seq {
                break 'pages;
            }
            sink.line(&ExportLine::Event(event))?;
            written += 1;
        }
        if show_progress {
            output::progress(&progress_line(written, total));
        }
    }
    if show_progress {
        output::progress_clear();
    }
    sink.finish()?;
    context.printer.note(format!(
        "Exported events {first_seq}-{} ({written} events), ending at the checkpoint signed now \
         with key {}",
        anchor.seq, anchor.key_id
    ));
    Ok(())
}

/// The checkpoints signed at events `first_seq..=last_seq`, oldest first.
async fn checkpoints_in(
    client: &client::Client,
    first_seq: i64,
    last_seq: i64,
) -> anyhow::Result<Vec<AuditCheckpoint>> {
    let mut found = Vec::new();
    let mut after_seq = first_seq - 1;
    loop {
        let page = client::audit::checkpoints(
            client,
            &AuditCheckpointQuery {
                after_seq: Some(after_seq),
                limit: Some(MAX_PAGE_SIZE),
            },
        )
        .await?
        .value;
        found.extend(
            page.checkpoints
                .into_iter()
                .filter(|checkpoint| checkpoint.seq <= last_seq),
        );
        match page.next_after_seq {
            Some(next) if next < last_seq => after_seq = next,
            _ => return Ok(found),
        }
    }
}

/// `[#####-----]  48%  12,000/25,000 events`.
fn progress_line(done: i64, total: i64) -> String {
    const WIDTH: i64 = 30;
    let total = total.max(1);
    let done = done.clamp(0, total);
    let filled = done * WIDTH / total;
    format!(
        "[{}{}] {:>3}%  {done}/{total} events",
        "#".repeat(filled as usize),
        "-".repeat((WIDTH - filled) as usize),
        done * 100 / total
    )
}

/// Where the lines go: stdout, or a temporary file renamed over `--output` when complete (a
/// failed export never leaves a half file that looks whole).
enum Sink {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File {
        file: std::io::BufWriter<tempfile::NamedTempFile>,
        path: PathBuf,
    },
}

impl Sink {
    fn open(path: Option<&std::path::Path>) -> anyhow::Result<Sink> {
        let Some(path) = path else {
            return Ok(Sink::Stdout(std::io::BufWriter::new(std::io::stdout())));
        };
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => std::path::Path::new("."),
        };
        let file = tempfile::NamedTempFile::new_in(directory)
            .with_context(|| format!("cannot write in {}", directory.display()))?;
        Ok(Sink::File {
            file: std::io::BufWriter::new(file),
            path: path.to_path_buf(),
        })
    }

    fn line(&mut self, line: &ExportLine) -> anyhow::Result<()> {
        let mut text = serde_json::to_string(line)?;
        text.push('\n');
        match self {
            Sink::Stdout(out) => out.write_all(text.as_bytes())?,
            Sink::File { file, .. } => file.write_all(text.as_bytes())?,
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::Stdout(mut out) => out.flush()?,
            Sink::File { file, path } => {
                let file = file.into_inner().map_err(|error| {
                    anyhow::anyhow!("cannot write the export: {}", error.error())
                })?;
                file.as_file().sync_all()?;
                file.persist(&path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::progress_line;

    #[test]
    fn the_progress_line_fills_in_proportion() {
        assert_eq!(
            progress_line(0, 10),
            format!("[{}]   0%  0/10 events", "-".repeat(30))
        );
        assert!(progress_line(5, 10).starts_with(&format!(
            "[{}{}]  50%",
            "#".repeat(15),
            "-".repeat(15)
        )));
        assert!(progress_line(10, 10).contains("100%"));
    }
}

//! Rendering: data on stdout, all talk on stderr. `-o table` is aligned (comfy-table) on a TTY
//! and tab-separated without a header off one (so `cut -f1` works); `-o json` prints the
//! gateway's JSON as received; `-q` prints only the primary value (an id, a token, a key).
//! Also the error report and secret masking; the colour decision, relative times and short ids
//! are `render`'s.
//!
//! This is the one module that writes to stdout and stderr (Cargo.toml `[lints]` denies
//! `print!`/`eprint!` everywhere else: they panic on a closed pipe). Writes to stdout return
//! `io::Result` so a closed pipe (EPIPE) travels up as an error that `exit` turns into a quiet
//! exit 0; writes to stderr are best effort (there is nobody left to tell).

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::str::FromStr;

use comfy_table::{Attribute, Cell, ContentArrangement, Table, presets};

use crate::exit::Report;
use crate::render;

/// `-o/--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns on a terminal, tab-separated values otherwise.
    #[default]
    Table,
    /// The gateway's JSON, as received.
    Json,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            other => Err(format!(
                "unknown output format {other:?}: expected table or json"
            )),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Format::Table => "table",
            Format::Json => "json",
        })
    }
}

/// How a result looks in table mode.
#[derive(Debug, Clone)]
pub enum View {
    /// One object: `field  value` lines.
    Record(Vec<(&'static str, String)>),
    /// Many objects: a header and rows.
    Rows {
        headers: Vec<&'static str>,
        rows: Vec<Vec<String>>,
    },
}

/// Prints results according to `-o` and `-q`.
#[derive(Debug, Clone)]
pub struct Printer {
    format: Format,
    quiet: bool,
    /// `--jq EXPR` (already checked): JSON output goes through it.
    jq: Option<String>,
    /// `--wide`: every column whole, whatever the terminal's width.
    wide: bool,
    stdout_tty: bool,
    color: bool,
}

impl Printer {
    pub fn new(format: Format, quiet: bool) -> Printer {
        let stdout_tty = io::stdout().is_terminal();
        Printer {
            format,
            quiet,
            jq: None,
            wide: false,
            stdout_tty,
            color: render::color_enabled(stdout_tty),
        }
    }

    /// Filters JSON output through a jq expression; implies `-o json`.
    pub fn with_jq(self, expression: String) -> Printer {
        Printer {
            format: Format::Json,
            jq: Some(expression),
            ..self
        }
    }

    /// `--wide`: tables show every column whole (no shortened ids, no fitting to the width).
    pub fn with_wide(self, wide: bool) -> Printer {
        Printer { wide, ..self }
    }

    /// Whether tables are for a person: aligned on a terminal, not tab-separated for a script.
    pub fn for_a_person(&self) -> bool {
        self.stdout_tty && self.format == Format::Table
    }

    /// A timestamp in a table: relative on a terminal (`3m ago`), as received otherwise.
    pub fn time(&self, text: &str) -> String {
        if self.for_a_person() {
            render::relative_time(text, crate::api::time::now())
        } else {
            text.to_string()
        }
    }

    /// The id of another object in a table: shortened on a terminal (`01a2144d-…`) unless
    /// `--wide`, whole otherwise.
    pub fn reference(&self, id: &str) -> String {
        if self.for_a_person() && !self.wide {
            render::short_id(id)
        } else {
            id.to_string()
        }
    }

    /// Whether `--jq` was given.
    pub fn has_jq(&self) -> bool {
        self.jq.is_some()
    }

    /// Whether stdout is a terminal (pretty output) rather than a pipe or a file.
    pub fn stdout_is_terminal(&self) -> bool {
        self.stdout_tty
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// The answer goes to stdout as one JSON document (`-o json` without `-q`): a verb then
    /// prints that document and nothing else on stdout.
    pub fn prints_json(&self) -> bool {
        self.is_json() && !self.quiet
    }

    /// Prints a gateway answer: the primary values with `-q` (one a line), else the raw JSON
    /// with `-o json`, else the view. `-q` wins over `-o json` so `T=$(… -q)` always works.
    pub fn show(&self, raw: &serde_json::Value, primary: &[String], view: View) -> io::Result<()> {
        if self.quiet {
            self.lines(primary)
        } else if self.is_json() {
            self.json(raw)
        } else {
            self.view(view)
        }
    }

    /// Pretty JSON on stdout, or what `--jq` makes of it. A failing `--jq` program is an
    /// error of the command (nothing is printed).
    pub fn json(&self, value: &serde_json::Value) -> io::Result<()> {
        if let Some(expression) = &self.jq {
            let text = crate::jq::run(expression, value).map_err(io::Error::other)?;
            let mut stdout = io::stdout().lock();
            stdout.write_all(&text)?;
            return stdout.flush();
        }
        let mut stdout = io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, value).map_err(io::Error::from)?;
        writeln!(stdout)?;
        stdout.flush()
    }

    /// Bytes exactly as given (`api` prints a body as received).
    pub fn raw(&self, bytes: &[u8]) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        stdout.write_all(bytes)?;
        stdout.flush()
    }

    pub fn lines(&self, lines: &[String]) -> io::Result<()> {
        data_lines(lines)
    }

    pub fn view(&self, view: View) -> io::Result<()> {
        let text = if self.stdout_tty {
            render_aligned(&view, self.color, !self.wide)
        } else {
            render_tab_separated(&view)
        };
        let mut stdout = io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()
    }

    /// Talk for humans on stderr (silenced by `-q`); a trailing newline is not doubled.
    pub fn note(&self, message: impl fmt::Display) {
        if !self.quiet {
            say(message);
        }
    }
}

/// Lines of data on stdout, for commands that run without a [`Printer`] (`server org create`).
pub fn data_lines(lines: &[String]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    for line in lines {
        writeln!(stdout, "{line}")?;
    }
    stdout.flush()
}

/// Talk for humans on stderr, whatever `-q` says (the gateway's startup, `completions --write-dir`).
/// A trailing newline is not doubled. Best effort: a closed stderr is not worth a panic.
pub fn say(message: impl fmt::Display) {
    let text = message.to_string();
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "{}", text.strip_suffix('\n').unwrap_or(&text));
}

/// Whether stderr is a terminal (where a progress line may be redrawn in place).
pub fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal()
}

/// A progress line on stderr, drawn over the previous one (call only when stderr is a
/// terminal). Best effort, like all talk.
pub fn progress(line: &str) {
    let mut stderr = io::stderr().lock();
    // Back to the start of the line, the text, then erase whatever a longer line left.
    let _ = write!(stderr, "\r{line}\x1b[K");
    let _ = stderr.flush();
}

/// Erases the progress line, so that what follows starts on a clean line.
pub fn progress_clear() {
    let mut stderr = io::stderr().lock();
    let _ = write!(stderr, "\r\x1b[K");
    let _ = stderr.flush();
}

/// A warning on stderr (never silenced: it is about safety).
pub fn warn(message: impl fmt::Display) {
    let prefix = paint_stderr("warning:", "33");
    say(format!("{prefix} {message}"));
}

fn paint_stderr(text: &str, ansi: &str) -> String {
    if render::color_enabled(io::stderr().is_terminal()) {
        format!("\x1b[1;{ansi}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Prints an error report on stderr: `error: …` and `hint: …`; with `json` also
/// `{"error":{"code":…,"message":…,"status":…}}` so scripts can parse it.
pub fn print_error(report: &Report, json: bool) {
    let mut stderr = io::stderr().lock();
    if json {
        let mut error = serde_json::Map::new();
        error.insert("code".to_string(), report.code.clone().into());
        error.insert("message".to_string(), report.message.clone().into());
        if let Some(status) = report.status {
            error.insert("status".to_string(), status.into());
        }
        if let Some(hint) = &report.hint {
            error.insert("hint".to_string(), hint.clone().into());
        }
        if let Some(approval_id) = &report.approval_id {
            error.insert("approval_id".to_string(), approval_id.clone().into());
        }
        let body = serde_json::json!({ "error": error });
        let _ = writeln!(stderr, "{body}");
        return;
    }
    let _ = writeln!(
        stderr,
        "{} {}",
        paint_stderr("error:", "31"),
        report.message
    );
    if let Some(hint) = &report.hint {
        let _ = writeln!(stderr, "{} {hint}", paint_stderr("hint:", "36"));
    }
}

/// Aligned columns; with `fit`, as wide as the terminal at most (the longest cells wrap).
fn render_aligned(view: &View, color: bool, fit: bool) -> String {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    if fit {
        table.set_content_arrangement(ContentArrangement::Dynamic);
    }
    let styled = |text: &str| {
        let cell = Cell::new(text);
        if color {
            cell.add_attribute(Attribute::Bold)
        } else {
            cell
        }
    };
    match view {
        View::Record(fields) => {
            for (name, value) in fields {
                table.add_row(vec![styled(name), Cell::new(value)]);
            }
        }
        View::Rows { headers, rows } => {
            table.set_header(headers.iter().map(|header| styled(header)));
            for row in rows {
                table.add_row(row);
            }
        }
    }
    // No left margin, two spaces between columns (like `kubectl get`).
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut text = table
        .lines()
        .map(|line| line.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text
}

/// One record a line, fields separated by tabs; no header (scripts want data only).
fn render_tab_separated(view: &View) -> String {
    let clean = |text: &str| text.replace(['\t', '\n', '\r'], " ");
    let mut text = String::new();
    match view {
        View::Record(fields) => {
            for (name, value) in fields {
                text.push_str(name);
                text.push('\t');
                text.push_str(&clean(value));
                text.push('\n');
            }
        }
        View::Rows { rows, .. } => {
            for row in rows {
                let cells: Vec<String> = row.iter().map(|cell| clean(cell)).collect();
                text.push_str(&cells.join("\t"));
                text.push('\n');
            }
        }
    }
    text
}

/// Secret prefixes kept visible when masking, so the kind of secret stays recognisable.
const SECRET_PREFIXES: &[&str] = &["sk_live_", "sk_test_", "at_", "fed_"];

/// Masks a secret for display: `sk_live_abcdef…wxyz` → `sk_live_ab…yz`. Short secrets are
/// masked completely: showing 4 of 8 characters would give too much away.
pub fn mask_secret(secret: &str) -> String {
    let prefix = SECRET_PREFIXES
        .iter()
        .find(|prefix| secret.starts_with(*prefix))
        .copied()
        .unwrap_or("");
    let rest: Vec<char> = secret[prefix.len()..].chars().collect();
    if rest.len() < 12 {
        return format!("{prefix}…");
    }
    let head: String = rest[..2].iter().collect();
    let tail: String = rest[rest.len() - 2..].iter().collect();
    format!("{prefix}{head}…{tail}")
}

/// Drops `null` members of a JSON object we build ourselves (the wire rule: omit, never `null`).
pub fn without_nulls(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.into_iter()
                .filter(|(_, member)| !member.is_null())
                .collect(),
        ),
        other => other,
    }
}

/// `-` for a missing value in tables.
pub fn or_dash(value: Option<&str>) -> String {
    match value {
        Some(text) if !text.is_empty() => text.to_string(),
        _ => "-".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secrets() {
        assert_eq!(
            mask_secret("sk_live_abcdefghijklmnopqrstuvwxyz"),
            "sk_live_ab…yz"
        );
        assert_eq!(mask_secret("at_0123456789abcdefXY"), "at_01…XY");
        assert_eq!(mask_secret("plainsecretvalue123"), "pl…23");
        assert_eq!(mask_secret("sk_live_short"), "sk_live_…");
        assert_eq!(mask_secret(""), "…");
        assert_eq!(mask_secret("ünïcödé-sëcrét-välüé"), "ün…üé");
    }

    #[test]
    fn tab_separated_has_no_header_and_no_tabs_inside() {
        let view = View::Rows {
            headers: vec!["ID", "NAME"],
            rows: vec![vec!["1".to_string(), "a\tb".to_string()]],
        };
        assert_eq!(render_tab_separated(&view), "1\ta b\n");
        let record = View::Record(vec![("id", "1".to_string())]);
        assert_eq!(render_tab_separated(&record), "id\t1\n");
    }

    #[test]
    fn aligned_tables_line_up() {
        let view = View::Rows {
            headers: vec!["ID", "NAME"],
            rows: vec![
                vec!["1".to_string(), "alpha".to_string()],
                vec!["22".to_string(), "b".to_string()],
            ],
        };
        let text = render_aligned(&view, false, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let column = lines[0].find("NAME").unwrap();
        assert_eq!(lines[1].find("alpha"), Some(column));
        assert_eq!(lines[2].find('b'), Some(column));
    }

    #[test]
    fn formats_parse() {
        assert_eq!("JSON".parse::<Format>(), Ok(Format::Json));
        assert!("yaml".parse::<Format>().is_err());
    }
}

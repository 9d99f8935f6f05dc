//! How values look to a person at a terminal: the colour decision (`--color`, `CLICOLOR_FORCE`,
//! `NO_COLOR`, `CLICOLOR`, `TERM=dumb`), relative times (`3m ago`, `in 14m`) and shortened ids
//! (`01a2144d-…`). Off a terminal, and always in JSON, values are printed as received.

use std::sync::OnceLock;

use crate::config::env;

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless CLICOLOR_FORCE, NO_COLOR, CLICOLOR=0 or TERM=dumb say
    /// otherwise.
    #[default]
    Auto,
    /// Always colour, even into a pipe.
    Always,
    /// Never colour.
    Never,
}

/// Set once at startup from `--color` (the default, `auto`, until then).
static CHOICE: OnceLock<ColorChoice> = OnceLock::new();

/// Records `--color` for the whole process (the first call wins).
pub fn set_color_choice(choice: ColorChoice) {
    let _ = CHOICE.set(choice);
}

/// Whether to colour a stream that is (or is not) a terminal. The flag wins; then
/// `CLICOLOR_FORCE` (set and not `0`) forces colour; then `NO_COLOR` (<https://no-color.org>),
/// `CLICOLOR=0` and `TERM=dumb` turn it off; else colour on a terminal only.
pub fn color_enabled(is_terminal: bool) -> bool {
    decide(
        CHOICE.get().copied().unwrap_or_default(),
        is_terminal,
        &|name| match name {
            "TERM" => std::env::var("TERM").ok(),
            other => env::var(other),
        },
    )
}

fn decide(choice: ColorChoice, is_terminal: bool, var: &dyn Fn(&str) -> Option<String>) -> bool {
    match choice {
        ColorChoice::Always => return true,
        ColorChoice::Never => return false,
        ColorChoice::Auto => {}
    }
    if var(env::CLICOLOR_FORCE).is_some_and(|value| value != "0") {
        return true;
    }
    if var(env::NO_COLOR).is_some()
        || var(env::CLICOLOR).as_deref() == Some("0")
        || var("TERM").as_deref() == Some("dumb")
    {
        return false;
    }
    is_terminal
}

/// An RFC 3339 timestamp as a person reads it, relative to `now` (unix seconds): `just now`,
/// `3m ago`, `in 14m`, `2h ago`, `5d ago`. Text that is not a timestamp is returned as is.
pub fn relative_time(text: &str, now: i64) -> String {
    let Some(moment) = crate::api::time::parse(text) else {
        return text.to_string();
    };
    let delta = moment - now;
    let distance = delta.unsigned_abs();
    if distance < 10 {
        return "just now".to_string();
    }
    let amount = match distance {
        0..60 => format!("{distance}s"),
        60..3600 => format!("{}m", distance / 60),
        3600..86_400 => format!("{}h", distance / 3600),
        86_400..2_592_000 => format!("{}d", distance / 86_400),
        // A month or more away: the date says more than a count of days.
        _ => return text.get(..10).unwrap_or(text).to_string(),
    };
    if delta < 0 {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// An id shortened to its first 9 characters and `…` (`01a2144d-…`), as tables show ids of other
/// objects; short ids (session ids like `run-42`) stay whole.
pub fn short_id(id: &str) -> String {
    const KEEP: usize = 9;
    if id.chars().count() <= KEEP + 3 {
        return id.to_string();
    }
    let head: String = id.chars().take(KEEP).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    }

    #[test]
    fn the_colour_decision() {
        let none = vars(&[]);
        assert!(decide(ColorChoice::Auto, true, &none));
        assert!(!decide(ColorChoice::Auto, false, &none));
        assert!(decide(
            ColorChoice::Always,
            false,
            &vars(&[("NO_COLOR", "1")])
        ));
        assert!(!decide(
            ColorChoice::Never,
            true,
            &vars(&[("CLICOLOR_FORCE", "1")])
        ));
        assert!(!decide(
            ColorChoice::Auto,
            true,
            &vars(&[("NO_COLOR", "1")])
        ));
        assert!(!decide(
            ColorChoice::Auto,
            true,
            &vars(&[("CLICOLOR", "0")])
        ));
        assert!(decide(ColorChoice::Auto, true, &vars(&[("CLICOLOR", "1")])));
        assert!(!decide(ColorChoice::Auto, true, &vars(&[("TERM", "dumb")])));
        assert!(decide(
            ColorChoice::Auto,
            false,
            &vars(&[("CLICOLOR_FORCE", "1")])
        ));
        assert!(!decide(
            ColorChoice::Auto,
            false,
            &vars(&[("CLICOLOR_FORCE", "0")])
        ));
    }

    #[test]
    fn relative_times() {
        let now = crate::api::time::parse("2026-11-25T20:00:00Z").unwrap();
        let at = |text: &str| relative_time(text, now);
        assert_eq!(at("2026-11-25T20:00:05Z"), "just now");
        assert_eq!(at("2026-11-25T19:59:30Z"), "30s ago");
        assert_eq!(at("2026-11-25T19:57:00Z"), "3m ago");
        assert_eq!(at("2026-11-25T20:14:00Z"), "in 14m");
        assert_eq!(at("2026-11-25T18:00:00Z"), "2h ago");
        assert_eq!(at("2026-11-20T20:00:00Z"), "5d ago");
        assert_eq!(at("2025-01-02T03:04:05Z"), "2025-01-02");
        assert_eq!(at("-"), "-");
    }

    #[test]
    fn short_ids() {
        assert_eq!(
            short_id("01a2144d-3f0a-74a8-af52-e17c55a9c56b"),
            "01a2144d-…"
        );
        assert_eq!(short_id("run-42"), "run-42");
        assert_eq!(short_id("sess-123456"), "sess-123456");
    }
}

//! The one canonical form of an action (tool) name. Every decision input that names the action —
//! rule matching, classification, delegation scope and restrictions, approvals, the audit log,
//! telemetry — uses the name this module returns, so that `"send_email "`, `"send\u{200B}_email"`
//! or `"send  email"` cannot slip past a rule written for the name a human reads.
//!
//! Canonical means: surrounding white space trimmed, every inner run of white space one ASCII
//! space, and no character that renders as nothing or steers rendering: control characters and
//! Unicode format characters (zero-width spaces and joiners, bidi overrides, the soft hyphen,
//! tag characters, …) are refused rather than dropped, since a name that carries them was made
//! to look like another.

/// Why a name has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    #[error("must not be empty")]
    Empty,
    #[error("must not contain control characters (found U+{0:04X})")]
    Control(u32),
    #[error("must not contain invisible format characters (found U+{0:04X})")]
    Format(u32),
}

/// The canonical form of `raw` (see the module docs).
pub fn action_name(raw: &str) -> Result<String, NameProblem> {
    let mut canonical = String::with_capacity(raw.len());
    for word in raw
        .split(char::is_whitespace)
        .filter(|word| !word.is_empty())
    {
        if let Some(character) = word.chars().find(|c| c.is_control()) {
            return Err(NameProblem::Control(u32::from(character)));
        }
        if let Some(character) = word.chars().find(|c| is_format(*c)) {
            return Err(NameProblem::Format(u32::from(character)));
        }
        if !canonical.is_empty() {
            canonical.push(' ');
        }
        canonical.push_str(word);
    }
    if canonical.is_empty() {
        return Err(NameProblem::Empty);
    }
    Ok(canonical)
}

/// Unicode general category Cf (format characters), plus the few invisible separators and
/// fillers outside it that render as nothing (U+115F/U+1160 Hangul fillers, U+3164, U+FFA0,
/// U+180E, U+2800 braille blank). Whitespace is handled by the caller; control characters too.
fn is_format(character: char) -> bool {
    matches!(
        u32::from(character),
        0x00AD
            | 0x034F
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x2800
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
            | 0xE0100..=0xE01EF
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_folds_white_space() {
        assert_eq!(action_name("send_email ").unwrap(), "send_email");
        assert_eq!(action_name("\tsend_email\n").unwrap(), "send_email");
        assert_eq!(action_name("send   email").unwrap(), "send email");
        assert_eq!(
            action_name("Search\u{00A0}the internet").unwrap(),
            "Search the internet"
        );
    }

    #[test]
    fn refuses_what_renders_as_nothing() {
        assert_eq!(
            action_name("send\u{200B}_email"),
            Err(NameProblem::Format(0x200B))
        );
        assert_eq!(
            action_name("\u{FEFF}send_email"),
            Err(NameProblem::Format(0xFEFF))
        );
        assert_eq!(
            action_name("send_\u{202E}liame"),
            Err(NameProblem::Format(0x202E))
        );
        assert_eq!(
            action_name("drop\u{00AD}_table"),
            Err(NameProblem::Format(0x00AD))
        );
        assert_eq!(
            action_name("send\u{0007}email"),
            Err(NameProblem::Control(7))
        );
        assert_eq!(action_name("   "), Err(NameProblem::Empty));
        assert_eq!(action_name(""), Err(NameProblem::Empty));
    }

    #[test]
    fn keeps_ordinary_names_as_they_are() {
        for name in [
            "web_search",
            "files.read",
            "readFile",
            "deploy-prod",
            "日本語",
        ] {
            assert_eq!(action_name(name).unwrap(), name);
        }
    }
}

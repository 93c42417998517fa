//! What may reach a person's screen: text made safe to print ([`clean`]), and the
//! program's own styling (labels, colors) added after that.
//!
//! Every line for people, on stdout or stderr, goes through [`clean`]: file paths,
//! messages, ids and URLs come from the server (or from files it shaped, such as a
//! journal or a cassette), and a server must not be able to forge a line, move the
//! cursor, rewrite the screen or reorder text. The escapes the program adds itself
//! (colors) are added to text already cleaned.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::IsTerminal;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Width of the right-aligned label column, as cargo's.
pub const LABEL: usize = 12;

/// Whether `c` must not reach a terminal as it is: every control character (C0 such
/// as ESC, CR, LF, BEL, TAB; DEL; C1 such as NEL U+0085 and CSI U+009B), every format
/// character (the Unicode `Cf` category: the bidirectional controls U+061C, U+200E,
/// U+200F, U+202A-U+202E, U+2066-U+2069, zero-width characters, the byte order mark,
/// ...) and the line and paragraph separators U+2028 and U+2029.
pub fn is_unsafe(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// `text` with every [unsafe](is_unsafe) character escaped as Rust writes it
/// (`\n`, `\r`, `\t`, or `\u{1b}`), so that it prints on one line, as what it is.
/// Text without such characters is returned as it is.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The tone of a labeled line.
#[derive(Clone, Copy, Debug)]
pub enum Tone {
    /// Progress that went well (green).
    Good,
    /// A step (cyan).
    Info,
    /// A failure (red).
    Bad,
    /// A warning (yellow).
    Warn,
}

/// `"     Created app/Models/Task.php"`: a right-aligned label, as cargo prints, and
/// the text [cleaned](clean); the label in color when `color`.
pub fn label(color: bool, tone: Tone, verb: &str, text: &str) -> String {
    let padded = format!("{verb:>LABEL$}");
    let text = clean(text);
    if !color {
        return format!("{padded} {text}");
    }
    let sgr = match tone {
        Tone::Good => "1;32",
        Tone::Info => "1;36",
        Tone::Bad => "1;31",
        Tone::Warn => "1;33",
    };
    format!("\x1b[{sgr}m{padded}\x1b[0m {text}")
}

/// Whether stderr is a terminal that can draw a bar.
pub fn stderr_is_terminal() -> bool {
    let dumb = std::env::var_os("TERM").is_some_and(|term| term == "dumb");
    std::io::stderr().is_terminal() && !dumb
}

/// Whether colors are welcome on stderr (see no-color.org).
pub fn colors() -> bool {
    stderr_is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `"error:"`, in red on a terminal.
pub fn error_label() -> &'static str {
    if colors() {
        "\x1b[1;31merror\x1b[0m:"
    } else {
        "error:"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn plain_text_is_kept_as_it_is() {
        for text in [
            "app/Models/Task.php",
            "Installing Laravel... 40%",
            "https://p1.laracopilot.com",
            "Aufgabenverwaltung: Übersicht, 任务, مهام, 🚀",
            "a\\nb, a literal backslash and n",
        ] {
            assert!(
                matches!(clean(text), Cow::Borrowed(t) if t == text),
                "{text}"
            );
        }
    }

    #[test]
    fn every_control_format_and_separator_character_is_escaped() {
        let cases = [
            ("a\nb", "a\\nb"),
            ("a\r\nb", "a\\r\\nb"),
            ("over\rwrite", "over\\rwrite"),
            ("\x1b[2J\x1b[H", "\\u{1b}[2J\\u{1b}[H"),
            ("bell\x07", "bell\\u{7}"),
            ("tab\there", "tab\\there"),
            ("nul\0", "nul\\u{0}"),
            ("del\x7f", "del\\u{7f}"),
            ("nel\u{85}line", "nel\\u{85}line"),
            ("csi\u{9b}31m", "csi\\u{9b}31m"),
            ("\u{202e}gnp.exe", "\\u{202e}gnp.exe"),
            ("\u{2066}x\u{2069}", "\\u{2066}x\\u{2069}"),
            ("\u{061c}\u{200e}\u{200f}", "\\u{61c}\\u{200e}\\u{200f}"),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}",
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
            ),
            ("\u{2067}\u{2068}", "\\u{2067}\\u{2068}"),
            ("line\u{2028}para\u{2029}", "line\\u{2028}para\\u{2029}"),
            ("zero\u{200b}width\u{feff}", "zero\\u{200b}width\\u{feff}"),
        ];
        for (text, expected) in cases {
            assert_eq!(clean(text), expected, "{text:?}");
        }
    }

    #[test]
    fn the_whole_classes_are_covered() {
        let c0 = (0u32..0x20).filter_map(char::from_u32);
        let c1 = (0x7fu32..0xa0).filter_map(char::from_u32);
        let bidi = [0x61c, 0x200e, 0x200f, 0x2028, 0x2029]
            .into_iter()
            .chain(0x202a..=0x202e)
            .chain(0x2066..=0x2069)
            .filter_map(char::from_u32);
        for c in c0.chain(c1).chain(bidi) {
            assert!(is_unsafe(c), "U+{:04X}", u32::from(c));
            let cleaned = clean(&c.to_string()).into_owned();
            assert!(!cleaned.chars().any(is_unsafe), "U+{:04X}", u32::from(c));
        }
        assert!(!is_unsafe(' ') && !is_unsafe('é') && !is_unsafe('\u{a0}'));
    }

    #[test]
    fn a_label_cleans_its_text_and_colors_only_its_own_part() {
        assert_eq!(
            label(false, Tone::Info, "Created", "a\n     Created evil.php"),
            "     Created a\\n     Created evil.php"
        );
        let colored = label(true, Tone::Good, "Project", "p1\x1b[31m");
        assert_eq!(colored, "\x1b[1;32m     Project\x1b[0m p1\\u{1b}[31m");
    }
}

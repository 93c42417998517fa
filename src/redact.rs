//! The one redactor: every spelling of the token that the SDK promises to mask,
//! used wherever a text that came from the server is kept (errors, projects, plans,
//! logs, tapes), in every feature set.
//!
//! A spelling is matched character by character, each character written in any of
//! its ways, so mixed spellings are found too:
//!
//! - as itself;
//! - as a JSON escape (`\/`, `\"`, `\\`, `\n`, ..., `\u0061` in either case, a
//!   surrogate pair), with its backslash doubled for each level of JSON quoted in
//!   JSON (`\\/`, PHP's `\\\/`; up to 64 backslashes);
//! - percent-encoded (`%61`, `%6A`/`%6a`), or percent-encoded twice (`%2561`);
//! - as an HTML character reference: decimal (`&#97;`), hexadecimal (`&#x61;`,
//!   either case, with or without leading zeros up to four digits), and the named
//!   references of `&`, `<`, `>`, `"` and `'`.
//!
//! Beside the token itself, the needles are its bytes in hexadecimal (either case),
//! and the parts of its base64 encodings (standard and URL-safe, with or without
//! padding, at each of the three alignments it can have inside a larger value such
//! as `user:token` or `Bearer token`) that depend on the token alone; a base64
//! spelling may be wrapped in lines at any width (LF, CRLF or CR, raw or as JSON's
//! `\n` and `\r`), as MIME (76 columns) and PEM (64) write it. A run of at least
//! [`MIN_PIECE`] characters that begins a spelling is masked even when the spelling
//! does not go on (a truncated echo). A streamed body's chunks may split any of it
//! ([`ChunkRedactor`]).

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use zeroize::Zeroizing;

/// A run of at least this many characters that begins a spelling of the token is
/// masked even when the spelling does not go on (a truncated echo).
pub(crate) const MIN_PIECE: usize = 12;

/// The longest run of backslashes before an escape that is looked at: six levels of
/// JSON quoted in JSON. Bounded, so that a body of backslashes costs linear time.
const MAX_BACKSLASHES: usize = 64;

/// Base64 parts shorter than this are not looked for: they would match ordinary
/// text of a tiny token.
const MIN_BASE64_NEEDLE: usize = 8;

/// The line breaks that may stand between two characters of a wrapped base64
/// spelling, longest first.
const LINE_BREAKS: [&[u8]; 5] = [b"\\r\\n", b"\r\n", b"\\n", b"\n", b"\r"];

/// Finds and masks the spellings of one token.
pub(crate) struct Redactor {
    needles: Vec<Needle>,
    /// For each byte, the needles (bit `i` for needle `i`) a spelling of which can
    /// start with it.
    starts: [u16; 256],
    mask: Vec<u8>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("needles", &self.needles.len())
            .finish_non_exhaustive()
    }
}

/// One sequence of characters to look for: per character, its spellings.
struct Needle {
    chars: Vec<Vec<Spelling>>,
    /// Line breaks may stand between its characters (a wrapped base64 spelling).
    wrapped: bool,
}

/// The bytes of one way to write one character; `fold`: compared ASCII
/// case-insensitively (hex digits, entity names).
struct Spelling {
    bytes: Zeroizing<Vec<u8>>,
    fold: bool,
}

/// How far a needle matches at a position.
enum Outcome {
    Full(usize),
    Partial {
        chars: usize,
        bytes: usize,
        /// The text ended while the spelling was still going.
        at_end: bool,
    },
}

enum Spelled {
    Yes(usize),
    Short,
    No,
}

impl Redactor {
    /// The redactor of the token `value`, masked as `mask` (the token's own, see
    /// [`Token::masked`](crate::Token::masked)); get a token's with
    /// `Token::redactor`.
    pub(crate) fn new(value: &[u8], mask: String) -> Self {
        let secret = Zeroizing::new(String::from_utf8_lossy(value).into_owned());
        let secret: &str = &secret;
        let mut needles = vec![Needle::of(secret, false, false)];
        let hex = Zeroizing::new(
            secret
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        );
        // Hex digits in either case.
        needles.push(Needle::of(&hex, false, true));
        let mut cores: Vec<Zeroizing<String>> = Vec::new();
        for engine in [
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            for align in 0..3 {
                let core = base64_core(&engine, secret.as_bytes(), align);
                if core.len() >= MIN_BASE64_NEEDLE && !cores.iter().any(|c| **c == *core) {
                    needles.push(Needle::of(&core, true, false));
                    cores.push(core);
                }
            }
        }
        // The token, its hex and at most six base64 parts: eight needles, a bit each.
        needles.truncate(16);
        let mut starts = [0u16; 256];
        for (i, needle) in needles.iter().enumerate() {
            let bit = 1u16 << i;
            let mut mark = |byte: u8| {
                if let Some(start) = starts.get_mut(usize::from(byte)) {
                    *start |= bit;
                }
            };
            for spelling in needle.chars.first().into_iter().flatten() {
                if let Some(&first) = spelling.bytes.first() {
                    mark(first);
                    if spelling.fold {
                        mark(first.to_ascii_lowercase());
                        mark(first.to_ascii_uppercase());
                    }
                }
            }
        }
        Redactor {
            needles,
            starts,
            mask: mask.into_bytes(),
        }
    }

    /// `text` with every spelling masked.
    #[cfg_attr(
        not(feature = "record"),
        allow(dead_code, reason = "only the recorder masks whole texts and bodies")
    )]
    pub(crate) fn text(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.bytes(text.as_bytes())).into_owned()
    }

    /// Masks every spelling in `text`, in place; leaves a text without one as it is.
    pub(crate) fn redact(&self, text: &mut String) {
        let (spans, _) = self.scan(text.as_bytes(), true);
        if !spans.is_empty() {
            *text = String::from_utf8_lossy(&apply(text.as_bytes(), 0, &spans, &self.mask))
                .into_owned();
        }
    }

    /// `data` with every spelling masked.
    #[cfg_attr(
        not(feature = "record"),
        allow(dead_code, reason = "only the recorder masks whole texts and bodies")
    )]
    pub(crate) fn bytes(&self, data: &[u8]) -> Vec<u8> {
        let (spans, _) = self.scan(data, true);
        apply(data, 0, &spans, &self.mask)
    }

    /// The spans of `buf` to mask, and, unless `last`, where a spelling that `buf`
    /// ends in the middle of begins (nothing from there on is decided).
    fn scan(&self, buf: &[u8], last: bool) -> (Vec<(usize, usize)>, Option<usize>) {
        let mut spans = Vec::new();
        let mut at = 0;
        while let Some(rest) = buf.get(at..).filter(|rest| !rest.is_empty()) {
            let candidates = rest
                .first()
                .and_then(|&b| self.starts.get(usize::from(b)))
                .copied()
                .unwrap_or(0);
            if candidates == 0 {
                at += 1;
                continue;
            }
            let mut full = 0;
            let mut piece = 0;
            let mut open = false;
            let needles = self.needles.iter().enumerate();
            for (_, needle) in needles.filter(|(i, _)| candidates & (1 << i) != 0) {
                match needle.match_at(rest) {
                    Outcome::Full(bytes) => full = full.max(bytes),
                    Outcome::Partial {
                        chars,
                        bytes,
                        at_end,
                    } => {
                        if at_end && !last {
                            open = true;
                        } else if chars >= MIN_PIECE {
                            piece = piece.max(bytes);
                        }
                    }
                }
            }
            if full > 0 {
                spans.push((at, at + full));
                at += full;
            } else if open {
                return (spans, Some(at));
            } else if piece > 0 {
                spans.push((at, at + piece));
                at += piece;
            } else {
                at += 1;
            }
        }
        (spans, None)
    }
}

impl Needle {
    /// The needle of `text`; `wrapped`: line breaks may stand between its
    /// characters; `fold`: each character itself is compared ASCII
    /// case-insensitively.
    fn of(text: &str, wrapped: bool, fold: bool) -> Needle {
        let chars = text
            .chars()
            .map(|c| {
                let mut spellings = spellings(c);
                if let Some(itself) = spellings.first_mut() {
                    itself.fold = fold;
                }
                spellings
            })
            .collect();
        Needle { chars, wrapped }
    }

    fn match_at(&self, text: &[u8]) -> Outcome {
        let mut at = 0;
        for (i, spellings) in self.chars.iter().enumerate() {
            if self.wrapped && i > 0 {
                match line_break(text.get(at..).unwrap_or_default()) {
                    Spelled::Yes(n) => at += n,
                    Spelled::Short => {
                        return Outcome::Partial {
                            chars: i,
                            bytes: at,
                            at_end: true,
                        }
                    }
                    Spelled::No => {}
                }
            }
            let rest = text.get(at..).unwrap_or_default();
            match spell(rest, spellings) {
                Spelled::Yes(n) => at += n,
                Spelled::Short => {
                    return Outcome::Partial {
                        chars: i,
                        bytes: at,
                        at_end: true,
                    }
                }
                Spelled::No => {
                    return Outcome::Partial {
                        chars: i,
                        bytes: at,
                        at_end: false,
                    }
                }
            }
        }
        Outcome::Full(at)
    }
}

/// Whether `text` starts with a line break, runs out inside one, or neither.
fn line_break(text: &[u8]) -> Spelled {
    let mut short = false;
    for spelling in LINE_BREAKS {
        match text.get(..spelling.len()) {
            Some(head) if head == spelling => return Spelled::Yes(spelling.len()),
            Some(_) => {}
            None => short |= spelling.starts_with(text) && !text.is_empty(),
        }
    }
    if short {
        Spelled::Short
    } else {
        Spelled::No
    }
}

/// Whether `text` starts with a spelling of the character, runs out inside one, or
/// neither. An escape may start with more backslashes than one: JSON quoted inside
/// a JSON string (an echoed body inside another) doubles them at each level (`\\/`,
/// PHP's `\\\/`).
fn spell(text: &[u8], spellings: &[Spelling]) -> Spelled {
    let backslashes = text
        .iter()
        .take(MAX_BACKSLASHES + 1)
        .take_while(|&&b| b == b'\\')
        .count();
    if backslashes > MAX_BACKSLASHES {
        return Spelled::No;
    }
    let mut short = backslashes > 0 && backslashes == text.len();
    // The longest spelling that matches: a character's literal may begin another
    // of its spellings (`\` begins `\u005c`, `&` begins `&amp;`), and taking it
    // would leave the rest of that spelling to fail the next character.
    let mut longest = None;
    for spelling in spellings {
        let escape = spelling.bytes.first() == Some(&b'\\');
        // Bytes before the spelling: the backslashes beyond the escape's own.
        let extra = if escape {
            backslashes.saturating_sub(1)
        } else {
            0
        };
        let text = text.get(extra..).unwrap_or_default();
        let wanted: &[u8] = &spelling.bytes;
        let same = |a: &[u8], b: &[u8]| {
            if spelling.fold {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        match text.get(..wanted.len()) {
            Some(head) if same(head, wanted) => {
                longest = longest.max(Some(extra + wanted.len()));
            }
            Some(_) => {}
            None => {
                short |= wanted
                    .get(..text.len())
                    .is_some_and(|start| same(text, start))
            }
        }
    }
    match longest {
        Some(bytes) => Spelled::Yes(bytes),
        None if short => Spelled::Short,
        None => Spelled::No,
    }
}

/// The ways to write `c` (see the module docs).
fn spellings(c: char) -> Vec<Spelling> {
    let exact = |bytes: Vec<u8>| Spelling {
        bytes: Zeroizing::new(bytes),
        fold: false,
    };
    let folded = |text: String| Spelling {
        bytes: Zeroizing::new(text.into_bytes()),
        fold: true,
    };
    let mut utf8 = [0u8; 4];
    let literal = c.encode_utf8(&mut utf8).as_bytes().to_vec();
    let mut out = vec![exact(literal.clone())];
    let simple = match c {
        '"' => Some(b'"'),
        '\\' => Some(b'\\'),
        '/' => Some(b'/'),
        '\u{8}' => Some(b'b'),
        '\u{c}' => Some(b'f'),
        '\n' => Some(b'n'),
        '\r' => Some(b'r'),
        '\t' => Some(b't'),
        _ => None,
    };
    if let Some(letter) = simple {
        out.push(exact(vec![b'\\', letter]));
    }
    let mut units = [0u16; 2];
    let escaped: String = c
        .encode_utf16(&mut units)
        .iter()
        .map(|unit| format!("\\u{unit:04x}"))
        .collect();
    out.push(folded(escaped));
    let percent: String = literal.iter().map(|b| format!("%{b:02x}")).collect();
    let twice: String = literal.iter().map(|b| format!("%25{b:02x}")).collect();
    out.push(folded(percent));
    out.push(folded(twice));
    let code = u32::from(c);
    out.push(exact(format!("&#{code};").into_bytes()));
    out.push(folded(format!("&#x{code:x};")));
    if code < 0x1000 {
        out.push(folded(format!("&#x{code:04x};")));
    }
    let named = match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '"' => Some("&quot;"),
        '\'' => Some("&apos;"),
        _ => None,
    };
    if let Some(named) = named {
        out.push(folded(named.to_owned()));
    }
    utf8.fill(0);
    out
}

/// The characters of the base64 encoding of `secret`, placed `align` bytes into a
/// 3-byte group, that depend on the secret's bytes alone.
fn base64_core(
    engine: &base64::engine::GeneralPurpose,
    secret: &[u8],
    align: usize,
) -> Zeroizing<String> {
    let mut padded = Zeroizing::new(vec![0u8; align]);
    padded.extend_from_slice(secret);
    let encoded = Zeroizing::new(engine.encode(&*padded));
    let first = (8 * align).div_ceil(6);
    let last = 8 * (align + secret.len()) / 6;
    Zeroizing::new(encoded.get(first..last).unwrap_or_default().to_owned())
}

/// The bytes `[start, start + data.len())` of the stream with every span that
/// overlaps them masked: the mask where a span begins, nothing for its other bytes.
fn apply(data: &[u8], start: usize, spans: &[(usize, usize)], mask: &[u8]) -> Vec<u8> {
    let end = start + data.len();
    let mut out = Vec::with_capacity(data.len());
    let mut at = start;
    for &(from, to) in spans.iter().filter(|(from, to)| *to > start && *from < end) {
        if from > at {
            out.extend_from_slice(data.get(at - start..from - start).unwrap_or_default());
        }
        if from >= start {
            out.extend_from_slice(mask);
        }
        at = to.min(end);
    }
    out.extend_from_slice(data.get(at - start..).unwrap_or_default());
    out
}

/// A body's chunks on their way to a tape: each is handed on masked, at once unless
/// its last bytes could begin a spelling of the token, which the next chunk (or the
/// end) decides.
#[derive(Default)]
#[cfg_attr(
    not(feature = "record"),
    allow(dead_code, reason = "used by the recorder")
)]
pub(crate) struct ChunkRedactor {
    pending: Vec<(Duration, Vec<u8>)>,
}

#[cfg_attr(
    not(feature = "record"),
    allow(dead_code, reason = "used by the recorder")
)]
impl ChunkRedactor {
    /// Takes a chunk that arrived at `at`; returns the chunks now ready, masked.
    pub(crate) fn push(
        &mut self,
        redactor: &Redactor,
        at: Duration,
        data: &[u8],
    ) -> Vec<(Duration, Vec<u8>)> {
        if self.pending.is_empty() {
            // The common case: nothing held, and this chunk ends outside a spelling.
            let (spans, open) = redactor.scan(data, false);
            if open.is_none() {
                return vec![(at, apply(data, 0, &spans, &redactor.mask))];
            }
        }
        self.pending.push((at, data.to_vec()));
        self.release(redactor, false)
    }

    /// The body ended: every chunk still held, masked.
    pub(crate) fn finish(&mut self, redactor: &Redactor) -> Vec<(Duration, Vec<u8>)> {
        self.release(redactor, true)
    }

    fn release(&mut self, redactor: &Redactor, last: bool) -> Vec<(Duration, Vec<u8>)> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let joined: Vec<u8> = self.pending.iter().flat_map(|(_, d)| d.clone()).collect();
        let (spans, open) = redactor.scan(&joined, last);
        let hold = open.unwrap_or(joined.len() + 1);
        let mut ready = Vec::new();
        let mut kept = Vec::new();
        let mut start = 0;
        for (at, data) in self.pending.drain(..) {
            let end = start + data.len();
            if end <= hold {
                ready.push((at, apply(&data, start, &spans, &redactor.mask)));
            } else {
                // Bytes at its start that a span already written covers stay out.
                let covered = spans
                    .iter()
                    .filter(|(from, to)| *from < start && *to > start)
                    .map(|(_, to)| to.min(&end) - start)
                    .max()
                    .unwrap_or(0);
                kept.push((at, data.get(covered..).unwrap_or_default().to_vec()));
            }
            start = end;
        }
        self.pending = kept;
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "lcp_live_S3CR3T-t0k3n/never+print-9f8e";

    fn redactor() -> Redactor {
        Redactor::new(
            SECRET.as_bytes(),
            crate::Token::new(SECRET).unwrap().masked(),
        )
    }

    /// Whether `masked` holds no piece of the secret as long as [`MIN_PIECE`].
    fn clean(masked: &str) -> bool {
        SECRET
            .as_bytes()
            .windows(MIN_PIECE)
            .all(|window| !masked.as_bytes().windows(MIN_PIECE).any(|w| w == window))
    }

    pub(crate) fn spellings_of(secret: &str) -> Vec<(&'static str, String)> {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
        let wrap = |text: String, width: usize, sep: &str| {
            text.as_bytes()
                .chunks(width)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join(sep)
        };
        let per_char = |f: &dyn Fn(char) -> String| secret.chars().map(f).collect::<String>();
        let long = format!("someone@example.com:{secret}:and-more-bytes-after-it");
        vec![
            ("plain", secret.to_owned()),
            ("php slashes", secret.replace('/', "\\/")),
            (
                "json \\u upper",
                per_char(&|c| format!("\\u{:04X}", c as u32)),
            ),
            (
                "json \\u lower",
                per_char(&|c| format!("\\u{:04x}", c as u32)),
            ),
            ("json quoted twice", secret.replace('/', "\\\\/")),
            (
                "percent upper",
                secret.bytes().map(|b| format!("%{b:02X}")).collect(),
            ),
            (
                "percent lower",
                secret.bytes().map(|b| format!("%{b:02x}")).collect(),
            ),
            (
                "percent twice",
                secret.bytes().map(|b| format!("%25{b:02X}")).collect(),
            ),
            (
                "percent mixed",
                per_char(&|c| {
                    if c.is_ascii_digit() {
                        format!("%{:02X}", c as u32)
                    } else {
                        c.to_string()
                    }
                }),
            ),
            (
                "hex lower",
                secret.bytes().map(|b| format!("{b:02x}")).collect(),
            ),
            (
                "hex upper",
                secret.bytes().map(|b| format!("{b:02X}")).collect(),
            ),
            ("html decimal", per_char(&|c| format!("&#{};", c as u32))),
            ("html hex", per_char(&|c| format!("&#x{:X};", c as u32))),
            (
                "html hex padded",
                per_char(&|c| format!("&#x{:04x};", c as u32)),
            ),
            ("base64", STANDARD.encode(secret)),
            (
                "base64 of bearer",
                STANDARD.encode(format!("Bearer {secret}")),
            ),
            (
                "base64 basic auth",
                STANDARD.encode(format!("api:{secret}")),
            ),
            ("base64 offset 2", STANDARD.encode(format!("ab{secret}"))),
            ("base64 url-safe", URL_SAFE.encode(format!("x{secret}"))),
            ("base64 url-safe no pad", URL_SAFE_NO_PAD.encode(secret)),
            (
                "base64 php slashes",
                STANDARD.encode(format!("api:{secret}")).replace('/', "\\/"),
            ),
            (
                "base64 mime 76 crlf",
                wrap(STANDARD.encode(&long), 76, "\r\n"),
            ),
            ("base64 pem 64 lf", wrap(STANDARD.encode(&long), 64, "\n")),
            ("base64 wrapped at 5", wrap(STANDARD.encode(&long), 5, "\n")),
            (
                "base64 wrapped in json",
                wrap(STANDARD.encode(&long), 8, "\\n"),
            ),
            ("truncated", secret.get(..20).unwrap_or_default().to_owned()),
        ]
    }

    #[test]
    fn every_spelling_is_masked() {
        let r = redactor();
        for (name, text) in spellings_of(SECRET) {
            let masked = r.text(&format!("<{text}>"));
            assert!(masked.contains("****9f8e"), "{name}: {text} -> {masked}");
            assert!(clean(&masked), "{name}: {masked}");
            let mut in_place = format!("echo {text} echo");
            r.redact(&mut in_place);
            assert!(clean(&in_place), "{name}: {in_place}");
        }
        assert_eq!(
            r.text("nothing here: lcp_live_other"),
            "nothing here: lcp_live_other"
        );
    }

    #[test]
    fn a_character_whose_literal_begins_its_escape_is_masked_in_every_spelling() {
        // `\` begins `\u005c` and `\\`, `&` begins `&amp;` and `&#38;`.
        let secret = "lcp/live\"q\\9f8e&7d6c5b4a/Z";
        let token = crate::Token::new(secret).unwrap();
        let r = Redactor::new(secret.as_bytes(), token.masked());
        for (name, text) in spellings_of(secret) {
            let masked = r.text(&format!("<{text}>"));
            assert!(!masked.contains("9f8e"), "{name}: {text} -> {masked}");
        }
        for spelled in [
            secret.replace('&', "&amp;"),
            secret.replace('&', "&#38;"),
            secret.replace('\\', "\\u005c").replace('"', "\\u0022"),
        ] {
            assert_eq!(r.text(&spelled), token.masked(), "{spelled}");
        }
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let r = redactor();
        for text in [
            "",
            "Unauthorized.",
            "&amp; &#47; %2F \\/ \\u0041 6c63705f",
            "data: {\"type\":\"file_created\",\"path\":\"app/Models/Task.php\"}\n\n",
        ] {
            assert_eq!(r.text(text), text);
            let mut same = text.to_owned();
            r.redact(&mut same);
            assert_eq!(same, text);
        }
    }

    #[test]
    fn escapes_quoted_in_json_again_are_masked_and_backslashes_cost_linear_time() {
        let r = redactor();
        let php = SECRET.replace('/', "\\/");
        for text in [
            php.replace('\\', "\\\\"),
            php.replace('\\', "\\\\\\"),
            php.replace('\\', &"\\".repeat(16)),
        ] {
            assert_eq!(r.text(&text), "****9f8e", "{text}");
        }
        let backslashes = "\\".repeat(200_000);
        assert_eq!(r.text(&backslashes), backslashes);
        let newlines = "\n".repeat(200_000);
        assert_eq!(r.text(&newlines), newlines);
    }

    #[test]
    fn a_secret_split_over_chunks_is_masked_and_other_chunks_pass_at_once() {
        let r = redactor();
        for (name, spelled) in spellings_of(SECRET) {
            let body = format!("data: {{\"echo\":\"{spelled}\"}}\n\n");
            for size in [1, 2, 3, 5, 7, 11, 16, 64] {
                let mut chunks = ChunkRedactor::default();
                let mut out = Vec::new();
                for piece in body.as_bytes().chunks(size) {
                    out.extend(chunks.push(&r, Duration::ZERO, piece));
                }
                out.extend(chunks.finish(&r));
                let joined: Vec<u8> = out.into_iter().flat_map(|(_, d)| d).collect();
                let joined = String::from_utf8(joined).unwrap();
                assert!(clean(&joined), "{name}, chunks of {size}: {joined}");
                assert!(joined.starts_with("data: {\"echo\":\""), "{joined}");
            }
        }
        let mut chunks = ChunkRedactor::default();
        let ready = chunks.push(&r, Duration::ZERO, b"data: {}\n\n");
        assert_eq!(ready.len(), 1, "an ordinary chunk is not held");
    }
}

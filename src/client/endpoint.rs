//! The URLs of the three endpoints, and the rule that keeps a project id from ever
//! becoming another path.

use url::Url;

use crate::{Error, ProjectId, Result};

/// The longest project id accepted, in bytes: ids are short opaque strings, and a
/// longer one would not fit a request line (servers refuse lines over 4 to 8 KiB,
/// and each byte may take three once encoded).
pub(crate) const MAX_ID_LEN: usize = 1024;

/// `base` + path segments, each percent-encoded.
pub(crate) fn url(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// The URL of an endpoint that names a project, after checking that the id can only
/// ever be that one path segment.
///
/// # Errors
///
/// [`Error::Config`], before anything is sent, for an id that is empty, longer than
/// [`MAX_ID_LEN`], holds whitespace, control characters or a path separator (`/`,
/// `\`), or is a dot segment (`.`, `..`), also once percent-decoded (`%2e`, `.%2E`):
/// URL parsers and servers remove or rewrite such segments, which would send the
/// request to another endpoint (`follow_up("..")` would post to `/agent/generate`:
/// a new project, credits spent).
pub(crate) fn with_id(base: &Url, segments: &[&str], id: &ProjectId) -> Result<Url> {
    check_id(id.as_str())?;
    let url = url(base, &[segments, &[id.as_str()]].concat());
    // Belt and braces: parsed again, the URL names the same segment.
    let reparsed = Url::parse(url.as_str()).ok();
    let last = reparsed
        .as_ref()
        .and_then(|u| u.path_segments())
        .and_then(|mut s| s.next_back())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        });
    if last.as_deref() != Some(id.as_str()) {
        return Err(refused("it would not stay one path segment"));
    }
    Ok(url)
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::config("the project id is empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::config(format!(
            "the project id is longer than {MAX_ID_LEN} bytes"
        )));
    }
    let decoded = percent_encoding::percent_decode_str(id).decode_utf8_lossy();
    for text in [id, &*decoded] {
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(refused("it holds whitespace or control characters"));
        }
        if text.contains(['/', '\\']) {
            return Err(refused("it holds a path separator"));
        }
        if text == "." || text == ".." {
            return Err(refused("it is a dot segment"));
        }
    }
    Ok(())
}

fn refused(why: &str) -> Error {
    Error::config(format!("the project id is refused: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("http://127.0.0.1:9/api/v1").unwrap()
    }

    fn follow_up(id: &str) -> Result<Url> {
        with_id(&base(), &["agent", "generate"], &ProjectId::from(id))
    }

    #[test]
    fn ordinary_ids_become_one_encoded_segment() {
        assert_eq!(
            follow_up("abc123").unwrap().as_str(),
            "http://127.0.0.1:9/api/v1/agent/generate/abc123"
        );
        assert_eq!(
            follow_up("a?b#c%d").unwrap().as_str(),
            "http://127.0.0.1:9/api/v1/agent/generate/a%3Fb%23c%25d"
        );
        assert_eq!(
            follow_up("...").unwrap().as_str(),
            "http://127.0.0.1:9/api/v1/agent/generate/..."
        );
        assert!(follow_up("ÿ€😀").is_ok());
        assert!(follow_up(&"x".repeat(MAX_ID_LEN)).is_ok());
    }

    #[test]
    fn ids_that_a_parser_would_rewrite_are_refused() {
        for id in [
            "",
            ".",
            "..",
            "%2e",
            "%2E",
            ".%2e",
            "%2e%2E",
            "%2E.",
            "a/b",
            "..%2f",
            "%2f",
            "a\\b",
            "%5c",
            "a\tb",
            "a\rb",
            "a\nb",
            "\t..",
            "a%09b",
            "a%0Ab",
            " ",
            "a b",
            "\u{7f}",
            "\u{85}",
            "a\u{2028}b",
            "%",
        ] {
            let outcome = follow_up(id);
            if id == "%" {
                // A lone percent sign is just a character.
                assert!(outcome.is_ok(), "{id:?}");
                continue;
            }
            assert!(
                matches!(outcome, Err(Error::Config { .. })),
                "{id:?}: {outcome:?}"
            );
        }
        assert!(matches!(
            follow_up(&"x".repeat(MAX_ID_LEN + 1)),
            Err(Error::Config { .. })
        ));
    }
}

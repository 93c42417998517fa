//! Inputs found by the fuzz targets (`fuzz/`), replayed against the same checks
//! the targets run (the fuzz crate's `src/lib.rs`, included below, which includes
//! `tests/it/common/sse/check.rs`), plus the seed
//! corpus. Saved inputs live in `tests/fixtures/fuzz/`, named
//! `<target>-<what it found>`; their layout (cap byte, chunk lengths, stream) is
//! described in `fuzz/src/lib.rs`.

#[allow(
    dead_code,
    reason = "shared with the fuzz targets; not every item is used here"
)]
#[allow(
    clippy::duplicate_mod,
    reason = "the fuzz crate includes `common/sse/check.rs` too: the same checks, on its own"
)]
#[path = "../../../fuzz/src/lib.rs"]
mod checks;

use std::path::{Path, PathBuf};

use laracopilot::Event;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> Vec<u8> {
    let path = root().join("tests/fixtures/fuzz").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = root().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_passes_the_decoder_checks() {
    let seeds = seeds("decoder");
    assert!(seeds.len() >= 10, "{seeds:?}");
    for seed in seeds {
        let input = std::fs::read(&seed).expect("a readable seed");
        checks::check_decoder(&input);
    }
}

#[test]
fn every_seed_passes_the_event_reader_checks() {
    let seeds = seeds("event_reader");
    assert!(seeds.len() >= 10, "{seeds:?}");
    for seed in seeds {
        let input = std::fs::read(&seed).expect("a readable seed");
        checks::check_event_reader(&input);
    }
}

#[test]
fn the_documented_stream_seed_reads_as_its_four_events() {
    let input = std::fs::read(root().join("fuzz/corpus/event_reader/documented_layout"))
        .expect("the documented seed");
    let case = checks::Case::parse(&input);
    let items = checks::read(&[case.stream], case.cap);
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(
        matches!(items[0], Ok(Event::ProjectCreated(_))),
        "{items:?}"
    );
    assert!(matches!(items[3], Ok(Event::StreamEnd(_))), "{items:?}");
}

// Findings, replayed strictly (ignored while the bug is not fixed in src/).

/// Cap 4, one line `\0\0t:3` (6 bytes, an unknown field): accepted whole, refused
/// byte by byte (`decoder` target).
#[test]
fn decoder_a_line_over_the_cap_is_refused_whatever_the_chunking() {
    checks::check_decoder(&fixture("decoder-cap-depends-on-chunking"));
}

/// Cap 4, a 6-byte junk line: `Incomplete` whole, `EventTooLarge` byte by byte
/// (`event_reader` target).
#[test]
fn event_reader_a_line_over_the_cap_ends_the_stream_the_same_way_whatever_the_chunking() {
    checks::check_event_reader(&fixture("event_reader-cap-depends-on-chunking"));
}

/// Cap 32, `stream_end` then a 40-byte event in the same chunk: `EventTooLarge` used
/// to follow the terminal item (fixed in 76f176d). Reduced by hand from the seed
/// `stream_end_then_more`, which the `event_reader` target flagged.
#[test]
fn event_reader_nothing_follows_stream_end_even_an_oversized_event() {
    checks::check_event_reader(&fixture("event_reader-too-large-after-terminal"));
}

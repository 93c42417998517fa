//! The `mock-server` flags that script the offline LaraCopilot from a shell: the
//! faults of one stream (`--fault drop-after:5,crlf`) and a project it knows from the
//! start (`--project p1=ready`).

use std::time::Duration;

use laracopilot_mock::{Fault, MockProject, ProjectStatus};

/// The faults of one stream, from one `--fault` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFaults {
    /// The flag's value, as given.
    pub spec: String,
    /// The faults it names.
    pub faults: Vec<Fault>,
}

/// The grammar, for `--help` and for errors.
pub const FAULTS: &str = "\
Faults (--fault SPEC, once per stream, in order; SPEC is one or more of these,
separated by commas, for the same stream; events count from 0):
  stall                 send project_created, then nothing (the connection stays open)
  stall-before:N        send events 0..N, then nothing
  drop-after:N          send events 0..N, then end the response (an incomplete stream)
  drop-mid-event:N      send events 0..N and half of event N, then reset the connection
  delay-before:N:MS     wait MS milliseconds more before event N
  delay-headers:MS      accept the request, then wait MS milliseconds before answering
  chunk-size:K          write the stream in pieces of K bytes
  crlf                  end lines with CRLF
  invalid-utf8          put one invalid UTF-8 byte into the first message
  oversized-event:BYTES pad the first event after project_created to BYTES bytes";

/// Parses one `--fault` value: `SPEC[,SPEC...]`.
///
/// # Errors
///
/// Which part is not a fault, and the grammar.
pub fn faults(text: &str) -> Result<StreamFaults, String> {
    text.split(',')
        .map(|spec| fault(spec.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map(|faults| StreamFaults {
            spec: text.to_owned(),
            faults,
        })
}

fn fault(spec: &str) -> Result<Fault, String> {
    let mut parts = spec.split(':');
    let name = parts.next().unwrap_or_default();
    let numbers: Vec<&str> = parts.collect();
    let wrong = || format!("{spec:?} is not a fault: see `laracopilot mock-server --help`");
    let number = |i: usize| -> Result<u64, String> {
        numbers
            .get(i)
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(wrong)
    };
    let count = |i: usize| number(i).and_then(|n| usize::try_from(n).map_err(|_| wrong()));
    let args = |n: usize| -> Result<(), String> {
        if numbers.len() == n {
            Ok(())
        } else {
            Err(wrong())
        }
    };
    let millis = |i: usize| number(i).map(Duration::from_millis);
    match name {
        "stall" => args(0).map(|()| Fault::StallBefore(1)),
        "stall-before" => args(1).and_then(|()| count(0)).map(Fault::StallBefore),
        "drop-after" => args(1).and_then(|()| count(0)).map(Fault::DropAfter),
        "drop-mid-event" => args(1).and_then(|()| count(0)).map(Fault::DropMidEvent),
        "delay-before" => {
            args(2)?;
            Ok(Fault::DelayBefore(count(0)?, millis(1)?))
        }
        "delay-headers" => args(1).and_then(|()| millis(0)).map(Fault::DelayHeaders),
        "chunk-size" => args(1).and_then(|()| count(0)).map(Fault::ChunkSize),
        "crlf" => args(0).map(|()| Fault::Crlf),
        "invalid-utf8" => args(0).map(|()| Fault::InvalidUtf8),
        "oversized-event" => args(1).and_then(|()| count(0)).map(Fault::OversizedEvent),
        _ => Err(wrong()),
    }
}

/// Parses one `--project` value: `ID` (ready) or `ID=STATUS`.
///
/// # Errors
///
/// An empty id, or a status that is not one of `generating`, `ready`, `failed`,
/// `credits_exhausted`.
pub fn project(text: &str) -> Result<MockProject, String> {
    let (id, status) = match text.split_once('=') {
        Some((id, status)) => {
            let status = status
                .trim()
                .parse::<ProjectStatus>()
                .map_err(|e| format!("{text:?}: {e}"))?;
            (id.trim(), status)
        }
        None => (text.trim(), ProjectStatus::Ready),
    };
    if id.is_empty() || id.contains('/') {
        return Err(format!("{text:?}: a project id, such as p1 or p1=failed"));
    }
    Ok(MockProject::new(id, status))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn every_fault_of_the_grammar_parses() {
        let cases = [
            ("stall", vec![Fault::StallBefore(1)]),
            ("stall-before:3", vec![Fault::StallBefore(3)]),
            ("drop-after:5", vec![Fault::DropAfter(5)]),
            ("drop-mid-event:2", vec![Fault::DropMidEvent(2)]),
            (
                "delay-before:4:250",
                vec![Fault::DelayBefore(4, Duration::from_millis(250))],
            ),
            (
                "delay-headers:1000",
                vec![Fault::DelayHeaders(Duration::from_secs(1))],
            ),
            ("chunk-size:1, crlf", vec![Fault::ChunkSize(1), Fault::Crlf]),
            ("invalid-utf8", vec![Fault::InvalidUtf8]),
            ("oversized-event:65536", vec![Fault::OversizedEvent(65_536)]),
        ];
        for (text, expected) in cases {
            assert_eq!(faults(text).unwrap().faults, expected, "{text}");
        }
    }

    #[test]
    fn what_is_not_a_fault_is_refused_with_a_pointer_to_the_grammar() {
        for text in [
            "",
            "stal",
            "stall:1",
            "drop-after",
            "drop-after:x",
            "drop-after:-1",
            "delay-before:1",
            "crlf:2",
            "drop-after:5,",
            "chunk-size:1:2",
        ] {
            let error = faults(text).unwrap_err();
            assert!(error.contains("mock-server --help"), "{text}: {error}");
        }
    }

    #[test]
    fn a_project_is_ready_unless_a_status_is_given() {
        let ready = project("p1").unwrap();
        assert_eq!(
            (ready.project_id.as_str(), ready.status),
            ("p1", ProjectStatus::Ready)
        );
        let failed = project("p2=failed").unwrap();
        assert_eq!(failed.status, ProjectStatus::Failed);
        let generating = project("abc123=generating").unwrap();
        assert_eq!(generating.status, ProjectStatus::Generating);
        for text in ["", "=ready", "p1=done", "a/b"] {
            assert!(project(text).is_err(), "{text}");
        }
    }
}

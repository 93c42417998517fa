//! `watch-token` against the offline server: the token rotation example, ported
//! from the SDK's `tests/tokens/example.rs`.

use std::time::Duration;

use crate::common::*;

#[test]
fn the_token_rotation_example_survives_a_rotation_on_the_offline_server() {
    let program = cli("watch-token");
    let (status, stdout, stderr) =
        run_bounded(&program, &["4", "20"], &[], Duration::from_secs(60));
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    for (i, line) in lines.iter().enumerate() {
        let expected = match i {
            0 | 1 => "token ****0001: the API token is accepted",
            2 => "rotated: ",
            _ => "token ****0002: the API token is accepted",
        };
        assert!(line.contains(expected), "line {i}: {line}");
    }
}

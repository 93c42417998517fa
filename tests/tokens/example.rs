//! The token rotation example against the offline server.

use super::*;

#[test]
fn the_token_rotation_example_survives_a_rotation_on_the_offline_server() {
    let Some(program) = example("token_rotation") else {
        return;
    };
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

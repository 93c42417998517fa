//! A journaled call is recorded as accepted as soon as its answer arrived: before
//! the stream is handed back, whether or not the caller ever reads it. A caller
//! that drops the stream at once (or a process killed before its first event)
//! leaves an entry that resuming can prove something about: a follow-up the server
//! accepted is polled, never reported as "may not have reached the server".

use super::*;

use laracopilot::journal::Kind;
use laracopilot_mock::{MockProject, MockServer, ProjectStatus};

#[tokio::test]
async fn a_stream_dropped_unread_is_journaled_as_accepted_and_its_follow_up_resumes() {
    for db in Db::all("journal::accepted") {
        let server = MockServer::builder()
            .project(MockProject::new("p1", ProjectStatus::Ready))
            .start()
            .unwrap();
        let client = server.client_builder().journal(db.open()).build().unwrap();

        let follow_up = client.follow_up("p1", "Add a dark mode").await.unwrap();
        let generate = client
            .generate("Build a task management app")
            .await
            .unwrap();
        // Never polled: no event was handed out.
        drop((follow_up, generate));

        assert_eq!(db.states(), ["accepted p1", "accepted"], "{db:?}");
        let unfinished = wait_unfinished(&client, 2).await;
        assert_eq!(unfinished.len(), 2, "both were released: {unfinished:?}");
        let follow_up = &unfinished[0];
        assert_eq!(follow_up.kind, Kind::FollowUp);
        // The server accepted it: resuming polls its project instead of reporting an
        // unknown outcome.
        let gets = server.requests().len();
        let outcome = client.resume(follow_up, fast()).await.unwrap();
        assert_eq!(outcome.project_id().map(|p| p.as_str()), Some("p1"));
        assert!(server.requests().len() > gets, "polled");
        assert_eq!(
            db.states()[0],
            "accepted p1 succeeded https://p1.laracopilot.com"
        );
    }
}

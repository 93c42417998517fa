//! A loopback base URL is never reached through a proxy from the environment: with
//! `HTTP_PROXY`, `http_proxy` and `ALL_PROXY` pointing at a server that records who
//! connects, the client talks to the API server directly.
//!
//! The test sets the proxy variables for the whole process, so it runs alone in a
//! child process of its own (`common::alone`): the other tests of this binary never
//! see them.

use crate::common;

#[cfg(feature = "blocking")]
use common::raw::on_thread;
use common::raw::{self, within, RawServer, Step, PATIENCE};

#[test]
fn a_loopback_base_url_never_goes_through_a_proxy_from_the_environment() {
    const NAME: &str =
        "proxy_env::a_loopback_base_url_never_goes_through_a_proxy_from_the_environment";
    if !common::is_alone(NAME) {
        common::alone(NAME);
        return;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(through_no_proxy());
}

async fn through_no_proxy() {
    // A proxy that would answer anything with a 502, and records each connection.
    let proxy = RawServer::start(|_| {
        vec![Step::Write(raw::response(
            502,
            &[("Content-Type", "text/plain")],
            "proxied",
        ))]
    });
    for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        std::env::set_var(var, proxy.url());
    }
    for var in ["NO_PROXY", "no_proxy"] {
        std::env::remove_var(var);
    }

    let api = RawServer::start(|request| {
        let answer = if request.method == "GET" {
            raw::project_answer("p1", "ready")
        } else {
            raw::sse_answer(&[r#"{"type":"stream_end","project_id":"p1"}"#])
        };
        vec![Step::Write(answer), Step::Close]
    });
    let port = api.addr().port();
    let bases = [
        format!("http://127.0.0.1:{port}/api/v1"),
        format!("http://localhost:{port}/api/v1"),
    ];
    for base in &bases {
        let client = raw::builder(base).build().unwrap();
        let project = within(PATIENCE, "project", client.project("p1"))
            .await
            .unwrap_or_else(|e| panic!("{base}: {e:?}"));
        assert_eq!(project.project_status.as_deref(), Some("ready"));
        within(PATIENCE, "generate", async {
            client.generate("Build an app").await?.finish().await
        })
        .await
        .unwrap_or_else(|e| panic!("{base}: {e:?}"));
        #[cfg(feature = "blocking")]
        {
            let base = base.clone();
            on_thread(PATIENCE, "the blocking client", move || {
                let client = raw::builder(&base).build_blocking().unwrap();
                client.project("p1").unwrap();
                client
                    .generate("Build an app")
                    .send()
                    .unwrap()
                    .finish()
                    .unwrap();
            });
        }
    }
    // Each base is called by the async client, and by the blocking one when built.
    let clients = if cfg!(feature = "blocking") { 2 } else { 1 };
    assert_eq!(proxy.connections(), 0, "{:?}", proxy.requests());
    assert_eq!(api.count("GET"), 2 * clients);
    assert_eq!(api.count("POST"), 2 * clients);

    // The variables are in force: an HTTP client of the caller's, which follows
    // them, goes through the proxy (and its answer is the proxy's).
    let client = raw::builder(&bases[0])
        .http_client(laracopilot::reqwest::Client::new())
        .build()
        .unwrap();
    let error = within(PATIENCE, "project", client.project("p1"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(502), "{error:?}");
    let proxied = proxy.requests();
    assert_eq!(proxied.len(), 1, "{proxied:?}");
    assert_eq!(
        proxied[0].target,
        format!("http://127.0.0.1:{port}/api/v1/agent/project/p1"),
        "an absolute URL, as sent to a proxy"
    );
    // And so does a base URL that is not loopback (with plain http allowed).
    let client = raw::builder(&format!("http://api.laracopilot.test:{port}/api/v1"))
        .allow_http(true)
        .build()
        .unwrap();
    let error = within(PATIENCE, "project", client.project("p1"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(502), "{error:?}");
    assert_eq!(proxy.requests().len(), 2);
    assert_eq!(
        api.count("GET"),
        2 * clients,
        "the API server saw none of those"
    );
}

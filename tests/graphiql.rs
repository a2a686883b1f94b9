//! GraphiQL at `GET /graphql`, in headless Chromium with no way out to the
//! internet: the page and everything it loads come from the control plane,
//! the documentation explorer loads the schema, and a query runs.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::network::{EnableParams, EventRequestWillBeSent};
use chromiumoxide::cdp::browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams;
use futures::StreamExt;
use support::*;

async fn wait_for(page: &chromiumoxide::Page, js: &str, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let ok = page
            .evaluate(js)
            .await
            .ok()
            .and_then(|v| v.into_value::<bool>().ok())
            .unwrap_or(false);
        if ok {
            return;
        }
        if std::time::Instant::now() > deadline {
            let html = page.content().await.unwrap_or_default();
            panic!("timed out waiting for {js}; page: {html:.3000}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_works_offline_and_loads_nothing_from_elsewhere() {
    let cluster = Cluster::start().await;
    let t = cluster.admin.create_tenant("acme", "local").await.unwrap();

    let profile = temp_dir("graphiql-chrome");
    let cfg = BrowserConfig::builder()
        .chrome_executable(chromium())
        .new_headless_mode()
        .no_sandbox()
        .user_data_dir(&profile)
        .window_size(1280, 900)
        // No internet: anything not on loopback goes to a proxy that is not
        // there, so a request elsewhere fails as it would offline.
        .arg("proxy-server=127.0.0.1:9")
        .arg("disable-background-networking")
        .launch_timeout(Duration::from_secs(30))
        .request_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (browser, mut handler) = Browser::launch(cfg).await.expect("chromium starts");
    let _handler = tokio::spawn(async move { while handler.next().await.is_some() {} });

    let page = browser.new_page("about:blank").await.unwrap();
    page.execute(EnableParams::default()).await.unwrap();
    let requested = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut requests = page
        .event_listener::<EventRequestWillBeSent>()
        .await
        .unwrap();
    let seen = requested.clone();
    tokio::spawn(async move {
        while let Some(r) = requests.next().await {
            seen.lock().unwrap().push(r.request.url.clone());
        }
    });
    // The key and a query, as a person would type them into the Headers
    // and query editors (GraphiQL keeps both in local storage).
    let headers = serde_json::json!({ "Authorization": format!("Bearer {}", t.api_key) });
    let seed = format!(
        "localStorage.setItem('graphiql:headers', {h}); \
         localStorage.setItem('graphiql:query', {q});",
        h = serde_json::to_string(&headers.to_string()).unwrap(),
        q = serde_json::to_string("{ viewer { role tenant { name } } }").unwrap(),
    );
    page.execute(AddScriptToEvaluateOnNewDocumentParams::new(seed))
        .await
        .unwrap();

    page.goto(format!("{}/graphql", cluster.http))
        .await
        .unwrap();
    wait_for(
        &page,
        "!!document.querySelector('.graphiql-container')",
        Duration::from_secs(20),
    )
    .await;

    // The documentation explorer has the schema (fetched by introspection).
    page.evaluate(
        "document.querySelector('.graphiql-sidebar button[aria-label*=\"Documentation\"]').click()",
    )
    .await
    .unwrap();
    wait_for(
        &page,
        "document.querySelector('.graphiql-doc-explorer')?.textContent.includes('QueryRoot')",
        Duration::from_secs(20),
    )
    .await;

    // The query runs and its answer is shown.
    page.evaluate("document.querySelector('.graphiql-execute-button').click()")
        .await
        .unwrap();
    wait_for(
        &page,
        "document.querySelector('.result-window')?.textContent.includes('acme')",
        Duration::from_secs(20),
    )
    .await;
    let result: String = page
        .evaluate("document.querySelector('.result-window').textContent")
        .await
        .unwrap()
        .into_value()
        .unwrap();
    assert!(result.contains("owner"), "{result}");
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    page.save_screenshot(
        chromiumoxide::page::ScreenshotParams::builder().build(),
        shots.join("graphiql.png"),
    )
    .await
    .unwrap();

    let requested = requested.lock().unwrap().clone();
    assert!(requested.len() >= 5, "{requested:?}");
    let ws = cluster.http.replacen("http://", "ws://", 1);
    for url in &requested {
        assert!(
            url.starts_with(&cluster.http) || url.starts_with(&ws) || url.starts_with("data:"),
            "the page asked for {url}, which is not this control plane"
        );
    }
}

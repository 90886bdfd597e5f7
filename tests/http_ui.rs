//! The management UI's files, served from the binary at `/`: content types, ETags with 304,
//! no caching without revalidation, and the security headers (a strict CSP, no framing from
//! elsewhere). The API's own 404 stays JSON.

mod common;

use common::*;
use reqwest::{header, Client, StatusCode};

#[tokio::test]
async fn the_ui_is_served_with_its_headers() {
    let broker = TestBroker::start().await;
    let client = Client::new();
    let page = client.get(broker.api("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let h = page.headers().clone();
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(h[header::CACHE_CONTROL], "no-cache");
    assert_eq!(h[header::X_FRAME_OPTIONS], "SAMEORIGIN");
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let body = page.text().await.unwrap();
    assert!(body.contains("<script type=\"module\" src=\"/js/app.js\">"));

    let script = client.get(broker.api("/js/app.js")).send().await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    let kind = script.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.contains("javascript"), "{kind}");
    let etag = script.headers()[header::ETAG].clone();
    let again = client
        .get(broker.api("/js/app.js"))
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // The UI's own routes get its page; missing files and API paths get 404s.
    let route = client.get(broker.api("/queues")).send().await.unwrap();
    assert_eq!(route.status(), StatusCode::OK);
    let missing = client.get(broker.api("/nope.css")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // The UI's own tests and notes are in management-ui/ but not served.
    for kept_back in ["/tests/samples.test.mjs", "/vendor/README.md"] {
        let r = client.get(broker.api(kept_back)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{kept_back}");
    }
    let vendored = client
        .get(broker.api("/vendor/uPlot.esm.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(vendored.status(), StatusCode::OK);
    let api = client.get(broker.api("/api/nope")).send().await.unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        api.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"error": "Object Not Found", "reason": "Not Found"})
    );
}

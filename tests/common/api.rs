//! Calls to the management API with reqwest, as guest unless told otherwise. Each answer is
//! the status and the body as JSON (`Null` when the body is empty or not JSON).

use super::{within, TestBroker};
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

pub const GUEST: (&str, &str) = ("guest", "guest");

pub async fn call(
    broker: &TestBroker,
    method: Method,
    path: &str,
    auth: (&str, &str),
    body: Option<Value>,
) -> (StatusCode, Value) {
    let response = send(broker, method, path, auth, body).await;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The whole response, for tests that look at headers.
pub async fn send(
    broker: &TestBroker,
    method: Method,
    path: &str,
    auth: (&str, &str),
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = Client::new()
        .request(method, broker.api(path))
        .basic_auth(auth.0, Some(auth.1));
    if let Some(body) = body {
        request = request.json(&body);
    }
    within("the API's answer", request.send())
        .await
        .expect("the API answers")
}

pub async fn get(broker: &TestBroker, path: &str) -> (StatusCode, Value) {
    call(broker, Method::GET, path, GUEST, None).await
}

pub async fn put(broker: &TestBroker, path: &str, body: Value) -> StatusCode {
    call(broker, Method::PUT, path, GUEST, Some(body)).await.0
}

pub async fn put_answer(broker: &TestBroker, path: &str, body: Value) -> (StatusCode, Value) {
    call(broker, Method::PUT, path, GUEST, Some(body)).await
}

pub async fn post(broker: &TestBroker, path: &str, body: Value) -> (StatusCode, Value) {
    call(broker, Method::POST, path, GUEST, Some(body)).await
}

pub async fn delete(broker: &TestBroker, path: &str) -> (StatusCode, Value) {
    call(broker, Method::DELETE, path, GUEST, None).await
}

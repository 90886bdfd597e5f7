//! The API's errors, as RabbitMQ's management API shapes them: a status code and a JSON body
//! `{"error": ..., "reason": ...}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    /// Mostly text; RabbitMQ answers some errors with a list (`["unknown", "x"]`).
    pub reason: Value,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            error: "Object Not Found",
            reason: "Not Found".into(),
        }
    }

    /// A PUT into a vhost that does not exist.
    pub fn vhost_not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            error: "not_found",
            reason: "vhost_not_found".into(),
        }
    }

    /// A 400 whose reason is a JSON value rather than text.
    pub fn bad_request_value(reason: Value) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "bad_request",
            reason,
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "bad_request",
            reason: Value::String(reason.into()),
        }
    }

    /// Wrong or missing credentials (RabbitMQ spells this one "authorized").
    pub fn login_failed() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorized",
            reason: "Login failed".into(),
        }
    }

    /// A user without the tag an endpoint needs (and this one "authorised").
    pub fn not_authorised(reason: &str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorised",
            reason: Value::String(reason.into()),
        }
    }

    pub fn internal(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "internal_server_error",
            reason: Value::String(reason.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "reason": self.reason});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""),
            );
        }
        response
    }
}

/// Reads a JSON body; RabbitMQ answers a body that is not JSON with 400 `not_json`. An empty
/// body reads as `{}`.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|_| ApiError::bad_request("not_json"))
}

/// Waits for the change to be on disk before answering.
pub async fn flushed(broker: &crate::broker::Broker) -> ApiResult<()> {
    match broker.metadata.flush().await {
        true => Ok(()),
        false => Err(ApiError::internal("the store failed to keep the change")),
    }
}

/// An AMQP exception from a broker operation, as RabbitMQ's API reports it: refusals are 401
/// "Access refused.", a missing object 404, anything else 400 with the exception's text.
impl From<crate::error::AmqpError> for ApiError {
    fn from(e: crate::error::AmqpError) -> Self {
        use warren_amqp::reply;
        let text = match e.text.split_once(" - ") {
            Some((_, rest)) => rest.to_owned(),
            None => e.text.clone(),
        };
        match e.code {
            reply::ACCESS_REFUSED => Self::not_authorised("Access refused."),
            reply::NOT_FOUND => Self::not_found(),
            _ => Self::bad_request(text),
        }
    }
}

/// A boolean field as RabbitMQ reads it: `true`/`false`, or the strings "true"/"false" (what
/// rabbitmqadmin v1 sends).
pub fn flexible_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Ok(b),
        serde_json::Value::String(s) if s == "true" => Ok(true),
        serde_json::Value::String(s) if s == "false" => Ok(false),
        other => Err(D::Error::custom(format!("not a boolean: {other}"))),
    }
}

/// A PUT's answer: 201 when it created the object, 204 when it updated one.
pub fn created_or_updated(created: bool) -> StatusCode {
    match created {
        true => StatusCode::CREATED,
        false => StatusCode::NO_CONTENT,
    }
}

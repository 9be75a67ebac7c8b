//! Errors: those that stop the server from starting, and those answered to
//! a client as JSON `{"error": {"code", "message"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Why the server could not start or a model call failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The model folder's files are invalid.
    #[error(transparent)]
    Model(#[from] ferrotune_model::ModelError),
    /// Loading or running a model failed.
    #[error(transparent)]
    Infer(#[from] ferrotune_infer::InferError),
    /// Inference was asked something the model cannot do.
    #[error("{0}")]
    Inference(String),
    /// Binding or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The command line is inconsistent.
    #[error("{0}")]
    Config(String),
}

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code, e.g. `unknown_model`.
    pub code: &'static str,
    /// A human-readable message (never internals such as paths).
    pub message: String,
    /// Seconds the client should wait before retrying (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// 400 for a request that is well-formed JSON but asks something invalid.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

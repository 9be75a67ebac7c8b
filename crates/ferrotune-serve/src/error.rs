//! Errors: those that stop the server from starting or a model call
//! ([`ServeError`]), and those answered to a client as JSON
//! `{"error": {"code", "message"}}` ([`ApiError`], whose [`ErrorKind`] alone
//! decides the HTTP status and the code).

use std::sync::Arc;

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
    /// Opening or asking a FAQ index failed.
    #[error(transparent)]
    Assistant(Box<ferrotune_assistant::AssistantError>),
    /// Binding or serving failed, or a model thread could not be started.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Two models were given the same name.
    #[error("model name '{name}' given twice")]
    DuplicateModel {
        /// The name given twice.
        name: String,
    },
    /// A batch for the adapters' base held inputs without an adapter.
    #[error("an input for the adapters' base names no adapter")]
    NoAdapter,
    /// `--adapter` was given without exactly one `--model` (their base).
    #[error("--adapter needs exactly one --model, the adapters' base ({models} given)")]
    AdapterBase {
        /// The `--model` folders given.
        models: usize,
    },
    /// No model and no FAQ index was given.
    #[error("no model or FAQ index given")]
    NoModel,
    /// A server option is out of range.
    #[error("{field} {message}")]
    InvalidOption {
        /// The [`crate::ServeOptions`] field, e.g. `max_batch`.
        field: &'static str,
        /// What it must be, e.g. `must be at least 1`.
        message: String,
    },
    /// A request was still waiting when its deadline passed; it was dropped
    /// from the queue without being computed.
    #[error("the request to model '{model}' passed its deadline before it was computed")]
    Expired {
        /// The model's name.
        model: String,
    },
    /// A model call panicked; the requests of that call fail, the model's
    /// thread keeps serving.
    #[error("model '{model}' panicked: {message}")]
    Panicked {
        /// The model's name.
        model: String,
        /// The panic's message.
        message: String,
    },
    /// A model call answered another number of records than it was given inputs.
    #[error("the model answered {got} records for {expected} inputs")]
    WrongRecordCount {
        /// Inputs given.
        expected: usize,
        /// Records answered.
        got: usize,
    },
    /// A model's batching thread stopped without answering a request.
    #[error("the thread of model '{model}' stopped without answering")]
    ModelStopped {
        /// The model's name.
        model: String,
    },
}

impl From<ferrotune_assistant::AssistantError> for ServeError {
    fn from(error: ferrotune_assistant::AssistantError) -> Self {
        ServeError::Assistant(Box::new(error))
    }
}

/// Every kind of error the server answers; [`ErrorKind::status_and_code`]
/// is the one place that gives each its HTTP status and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The body is larger than `max_body_bytes`.
    BodyTooLarge,
    /// The body could not be read.
    BadBody,
    /// The `Content-Type` is not `application/json`.
    UnsupportedMediaType,
    /// The body is not JSON.
    MalformedJson,
    /// The JSON lacks a field, has an unknown one, or a field of the wrong type.
    InvalidRequest,
    /// No texts were given.
    NoInputs,
    /// More texts than `max_texts`.
    TooManyTexts,
    /// More tokens than `max_tokens_per_request`.
    TooManyTokens,
    /// The request (its body) did not arrive within the read timeout.
    RequestTimeout,
    /// A text longer than `max_chars`.
    TextTooLong,
    /// No model of that name is loaded.
    UnknownModel,
    /// No FAQ index of that name is loaded.
    UnknownIndex,
    /// A question is empty.
    EmptyText,
    /// The model's task does not match the route.
    WrongTask,
    /// The API key is missing or wrong.
    Unauthorized,
    /// No such route.
    NotFound,
    /// The route does not answer this method.
    MethodNotAllowed,
    /// The model's queue is full.
    Overloaded,
    /// The model's thread is not running.
    Unavailable,
    /// No answer within the request timeout.
    Timeout,
    /// The server is shutting down.
    Draining,
    /// The model failed to answer.
    InferenceFailed,
    /// An adapter or model of that name is already served.
    AdapterExists,
    /// The adapter folder could not be loaded onto the base.
    InvalidAdapter,
    /// The server serves no adapters' base.
    NoAdapterBase,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: [ErrorKind; 25] = [
        ErrorKind::BodyTooLarge,
        ErrorKind::BadBody,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::MalformedJson,
        ErrorKind::InvalidRequest,
        ErrorKind::NoInputs,
        ErrorKind::TooManyTexts,
        ErrorKind::TextTooLong,
        ErrorKind::UnknownModel,
        ErrorKind::WrongTask,
        ErrorKind::Unauthorized,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::Overloaded,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::Draining,
        ErrorKind::InferenceFailed,
        ErrorKind::TooManyTokens,
        ErrorKind::RequestTimeout,
        ErrorKind::UnknownIndex,
        ErrorKind::EmptyText,
        ErrorKind::AdapterExists,
        ErrorKind::InvalidAdapter,
        ErrorKind::NoAdapterBase,
    ];

    /// The HTTP status and the stable machine-readable code.
    pub fn status_and_code(self) -> (StatusCode, &'static str) {
        match self {
            ErrorKind::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ErrorKind::BadBody => (StatusCode::BAD_REQUEST, "bad_body"),
            ErrorKind::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            ErrorKind::MalformedJson => (StatusCode::BAD_REQUEST, "malformed_json"),
            ErrorKind::InvalidRequest => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            ErrorKind::NoInputs => (StatusCode::BAD_REQUEST, "no_inputs"),
            ErrorKind::TooManyTexts => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_texts"),
            ErrorKind::TextTooLong => (StatusCode::PAYLOAD_TOO_LARGE, "text_too_long"),
            ErrorKind::TooManyTokens => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_tokens"),
            ErrorKind::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ErrorKind::UnknownModel => (StatusCode::NOT_FOUND, "unknown_model"),
            ErrorKind::UnknownIndex => (StatusCode::NOT_FOUND, "unknown_index"),
            ErrorKind::EmptyText => (StatusCode::BAD_REQUEST, "empty_text"),
            ErrorKind::WrongTask => (StatusCode::BAD_REQUEST, "wrong_task"),
            ErrorKind::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ErrorKind::Overloaded => (StatusCode::TOO_MANY_REQUESTS, "overloaded"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ErrorKind::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            ErrorKind::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
            ErrorKind::InferenceFailed => (StatusCode::INTERNAL_SERVER_ERROR, "inference_failed"),
            ErrorKind::AdapterExists => (StatusCode::CONFLICT, "adapter_exists"),
            ErrorKind::InvalidAdapter => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_adapter"),
            ErrorKind::NoAdapterBase => (StatusCode::NOT_FOUND, "no_adapter_base"),
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        self.status_and_code().0
    }

    /// The code, e.g. `unknown_model`.
    pub fn code(self) -> &'static str {
        self.status_and_code().1
    }

    /// Seconds the client should wait before retrying, sent as `Retry-After`.
    pub fn retry_after(self) -> Option<u64> {
        match self {
            ErrorKind::Overloaded | ErrorKind::Unavailable | ErrorKind::Timeout => Some(1),
            _ => None,
        }
    }
}

/// An error answered to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// What went wrong: gives the status, the code and `Retry-After`.
    pub kind: ErrorKind,
    /// A human-readable message (never internals such as paths).
    pub message: String,
    /// The server-side cause, logged but never sent to the client.
    pub cause: Option<Arc<ServeError>>,
}

impl ApiError {
    /// An error of a kind, with a message for the client.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), cause: None }
    }

    /// The same error, with the server-side cause to log.
    pub fn caused_by(mut self, cause: Arc<ServeError>) -> Self {
        self.cause = Some(cause);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The code, e.g. `unknown_model`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.kind.status_and_code();
        let body = serde_json::json!({ "error": { "code": code, "message": self.message } });
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = self.kind.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        // For the request log (see `app::record_metrics`).
        response.extensions_mut().insert(self);
        response
    }
}

/// The full text of an error and its sources, `: `-separated (a source whose
/// text the error's own already contains is left out).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statuses and codes clients see; they must never change.
    #[test]
    fn kinds_keep_their_statuses_and_codes() {
        let expected = [
            (413, "body_too_large"),
            (400, "bad_body"),
            (415, "unsupported_media_type"),
            (400, "malformed_json"),
            (422, "invalid_request"),
            (400, "no_inputs"),
            (413, "too_many_texts"),
            (413, "text_too_long"),
            (404, "unknown_model"),
            (400, "wrong_task"),
            (401, "unauthorized"),
            (404, "not_found"),
            (405, "method_not_allowed"),
            (429, "overloaded"),
            (503, "unavailable"),
            (503, "timeout"),
            (503, "draining"),
            (500, "inference_failed"),
            (413, "too_many_tokens"),
            (408, "request_timeout"),
            (404, "unknown_index"),
            (400, "empty_text"),
            (409, "adapter_exists"),
            (422, "invalid_adapter"),
            (404, "no_adapter_base"),
        ];
        let got: Vec<(u16, &str)> = ErrorKind::ALL.iter().map(|k| (k.status().as_u16(), k.code())).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn response_has_the_code_message_and_retry_after() {
        let response = ApiError::new(ErrorKind::Overloaded, "the queue is full; retry later").into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.extensions().get::<ApiError>().map(|e| e.kind), Some(ErrorKind::Overloaded));
        let response = ApiError::new(ErrorKind::Draining, "the server is shutting down").into_response();
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn option_errors_name_the_field() {
        let e = ServeError::InvalidOption { field: "max_batch", message: "must be at least 1".into() };
        assert_eq!(e.to_string(), "max_batch must be at least 1");
    }
}

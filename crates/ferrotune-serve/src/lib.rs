//! `ferrotune serve`: an HTTP inference server for fine-tuned models and
//! FAQ indexes (`/v1/answer`, and `/v1/embed` with their embedding models). The
//! HTTP side (routes, limits, auth, metrics; `app`) hands inputs to one
//! batching thread per model (`batcher`), which runs the model (`backend`)
//! on the compute pool and splits the answers back to their requests.
//! Failed requests, the startup and the shutdown are logged with `tracing`
//! (the caller installs a subscriber).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod adapters;
mod app;
mod backend;
mod batcher;
#[cfg(feature = "test-support")]
pub mod client;
mod error;
mod faq;
mod metrics;
mod openapi;

pub use app::{decode_request, router, serve, AppState, DecodedRequest, ServeOptions};
pub use backend::{Adapter, AdapterBase, Backend, Input, Record};
pub use batcher::BatchPolicy;
pub use error::{ApiError, ErrorKind, ServeError};
pub use openapi::{document as openapi_document, route_errors, ROUTES, ROUTE_ERRORS};

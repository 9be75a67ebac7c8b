//! `ferrotune serve`: an HTTP inference server for fine-tuned models. The
//! HTTP side (routes, limits, auth, metrics; `app`) hands inputs to one
//! batching thread per model (`batcher`), which runs the model (`backend`)
//! on the compute pool and splits the answers back to their requests.

mod app;
mod backend;
mod batcher;
pub mod client;
mod error;
mod metrics;
mod openapi;

pub use app::{router, AppState, ServeOptions};
pub use backend::{Backend, Input, Record};
pub use batcher::BatchPolicy;
pub use error::{ApiError, ServeError};
pub use openapi::{document as openapi_document, ROUTES};

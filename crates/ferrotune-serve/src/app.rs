//! The HTTP side: routes, request decoding and limits, authentication,
//! metrics, and the hand-off to each model's batcher.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use ferrotune_data::Task;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::adapters::Adapters;
use crate::backend::{Backend, Costs, Input, SharedAdapter};
use crate::batcher::{BatchPolicy, Batcher, Refused};
use crate::error::{error_chain, ErrorKind};
use crate::faq::Faq;
use crate::metrics::Metrics;
use crate::{ApiError, ServeError};

/// Limits and batching of a server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How batches are formed.
    pub batch: BatchPolicy,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most texts (or pairs) in one request.
    pub max_texts: usize,
    /// Longest text, in characters.
    pub max_chars: usize,
    /// Longest a request may wait for its answer.
    pub timeout: Duration,
    /// Tokens per model input (NER: longer texts are split into windows).
    pub max_len: usize,
    /// Precision of the models' linear layers (`None`: each folder's own).
    pub precision: Option<ferrotune_model::quant::Precision>,
    /// The key every route but `/health` requires, if any.
    pub api_key: Option<String>,
    /// The device the models run on.
    pub device: candle_core::Device,
    /// Longest the server waits for a request's headers, and then for its
    /// body (a slow header read closes the connection; a slow body gets 408).
    pub read_timeout: Duration,
    /// Most connections open at once; more are closed as soon as accepted.
    pub max_connections: usize,
    /// After a shutdown signal, how long `/ready` answers 503 while the
    /// server still takes new connections (a load balancer's probe period).
    pub drain_delay: Duration,
    /// After the drain delay, how long connections may take to finish; then
    /// they are dropped and `serve` returns.
    pub shutdown_grace: Duration,
    /// Most tokens (every window, special tokens included) one request may
    /// cost; more is answered 413.
    pub max_tokens_per_request: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            batch: BatchPolicy {
                max_batch: 32,
                max_batch_tokens: 4096,
                max_wait: Duration::from_millis(5),
                max_queue: 256,
                max_queue_tokens: 65_536,
            },
            max_body_bytes: 1 << 20,
            max_texts: 64,
            max_chars: 10_000,
            timeout: Duration::from_secs(30),
            max_len: 128,
            precision: None,
            api_key: None,
            device: candle_core::Device::Cpu,
            read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            drain_delay: Duration::ZERO,
            shutdown_grace: Duration::from_secs(30),
            max_tokens_per_request: 16_384,
        }
    }
}

impl ServeOptions {
    /// The longest `max_len` (the longest training accepts).
    pub const MAX_LEN_LIMIT: usize = 4096;

    /// Refuses out-of-range values, naming the field: `max_batch`,
    /// `max_batch_tokens`, `max_queue`, `max_queue_tokens`,
    /// `max_body_bytes`, `max_texts`, `max_chars`, `max_connections` and
    /// `max_tokens_per_request` must be at least 1, `timeout` and
    /// `read_timeout` more than 0, `max_len` between 3 and
    /// [`Self::MAX_LEN_LIMIT`], `max_tokens_per_request` at most
    /// `max_queue_tokens` (`max_wait`, `drain_delay` and `shutdown_grace`
    /// may be 0). The model's own limit on `max_len` is checked when it loads.
    pub fn validate(&self) -> Result<(), ServeError> {
        let invalid = |field: &'static str, message: String| Err(ServeError::InvalidOption { field, message });
        let at_least_one = [
            ("max_batch", self.batch.max_batch),
            ("max_queue", self.batch.max_queue),
            ("max_body_bytes", self.max_body_bytes),
            ("max_texts", self.max_texts),
            ("max_chars", self.max_chars),
            ("max_batch_tokens", self.batch.max_batch_tokens),
            ("max_queue_tokens", self.batch.max_queue_tokens),
            ("max_connections", self.max_connections),
            ("max_tokens_per_request", self.max_tokens_per_request),
        ];
        for (field, value) in at_least_one {
            if value < 1 {
                return invalid(field, "must be at least 1".into());
            }
        }
        if self.timeout.is_zero() {
            return invalid("timeout", "must be more than 0".into());
        }
        if self.read_timeout.is_zero() {
            return invalid("read_timeout", "must be more than 0".into());
        }
        if self.max_tokens_per_request > self.batch.max_queue_tokens {
            let message = format!("must be at most max_queue_tokens ({})", self.batch.max_queue_tokens);
            return invalid("max_tokens_per_request", message);
        }
        // Three tokens at least: [CLS], one word piece and [SEP].
        if !(3..=Self::MAX_LEN_LIMIT).contains(&self.max_len) {
            return invalid("max_len", format!("must be between 3 and {}", Self::MAX_LEN_LIMIT));
        }
        Ok(())
    }
}

struct Model {
    backend: Arc<Backend>,
    batcher: Batcher,
}

/// Everything the handlers share.
pub struct AppState {
    models: BTreeMap<String, Model>,
    /// LoRA adapters on one base, if any.
    adapters: Option<Adapters>,
    faqs: BTreeMap<String, Faq>,
    /// The `(name, folder)` of each model, then of each FAQ index, in the order given.
    given: Vec<(String, PathBuf)>,
    default_model: Option<String>,
    default_faq: Option<String>,
    metrics: Arc<Metrics>,
    options: ServeOptions,
    ready: AtomicBool,
}

impl AppState {
    /// Checks the options, loads every model and FAQ index `(name,
    /// folder)` and starts their batching threads; the first model and the
    /// first index are the defaults. With `adapters` (LoRA adapter folders
    /// by name), `models` is their one base, not served itself; the first
    /// adapter is then the default.
    pub fn load(
        models: &[(String, PathBuf)],
        adapters: &[(String, PathBuf)],
        faqs: &[(String, PathBuf)],
        options: ServeOptions,
    ) -> Result<Arc<Self>, ServeError> {
        options.validate()?;
        if models.is_empty() && faqs.is_empty() {
            return Err(ServeError::NoModel);
        }
        let metrics = Arc::new(Metrics::default());
        let (models, adapters) = match (models, adapters.is_empty()) {
            (models, true) => (models, None),
            ([(_, base)], false) => (&[][..], Some(Adapters::load(base, adapters, &options, &metrics)?)),
            (models, false) => return Err(ServeError::AdapterBase { models: models.len() }),
        };
        let mut loaded = BTreeMap::new();
        for (name, dir) in models {
            if loaded.contains_key(name) {
                return Err(ServeError::DuplicateModel { name: name.clone() });
            }
            let backend = Arc::new(Backend::load(dir, &options)?);
            let batcher = Batcher::start(name, backend.clone(), options.batch, Arc::clone(&metrics))?;
            loaded.insert(name.clone(), Model { backend, batcher });
        }
        let mut loaded_faqs = BTreeMap::new();
        for (name, dir) in faqs {
            if loaded_faqs.contains_key(name) {
                return Err(ServeError::DuplicateModel { name: name.clone() });
            }
            loaded_faqs.insert(name.clone(), Faq::load(name, dir, &options, &metrics)?);
        }
        let given_adapters: Vec<(String, PathBuf)> =
            adapters.iter().flat_map(|a| a.all()).map(|a| (a.name().to_string(), a.dir().to_path_buf())).collect();
        let default_model = match &adapters {
            Some(_) => given_adapters.first().map(|a| a.0.clone()),
            None => models.first().map(|m| m.0.clone()),
        };
        Ok(Arc::new(Self {
            models: loaded,
            adapters,
            faqs: loaded_faqs,
            given: models.iter().chain(&given_adapters).chain(faqs).cloned().collect(),
            default_model,
            default_faq: faqs.first().map(|f| f.0.clone()),
            metrics,
            options,
            ready: AtomicBool::new(true),
        }))
    }

    /// The startup summary: models, address, batching, whether a key is needed.
    fn summary(&self, addr: SocketAddr) -> String {
        let models: Vec<String> = self.given.iter().map(|(n, d)| format!("{n}={}", d.display())).collect();
        let batch = &self.options.batch;
        format!(
            "serving {} on http://{addr} (max batch {}, max wait {} ms, queue {}{})",
            models.join(", "),
            batch.max_batch,
            batch.max_wait.as_millis(),
            batch.max_queue,
            if self.options.api_key.is_some() { ", API key required" } else { "" }
        )
    }

    /// The LoRA adapters served, if any.
    pub(crate) fn adapters(&self) -> Option<&Adapters> {
        self.adapters.as_ref()
    }

    /// Whether a model (fine-tuned folder) of that name is served.
    pub(crate) fn is_plain_model(&self, name: &str) -> bool {
        self.models.contains_key(name)
    }

    /// Whether a model or an adapter of that name is served.
    pub(crate) fn is_served(&self, name: &str) -> bool {
        self.is_plain_model(name) || self.adapters.as_ref().is_some_and(|a| a.get(name).is_some())
    }

    /// Marks the server as draining: `/ready` answers 503 from now on.
    pub fn set_draining(&self) {
        self.ready.store(false, Ordering::SeqCst);
    }
}

/// Serves `state` on `listener` until `shutdown` completes. Then `/ready`
/// answers 503 at once while connections are still taken for
/// `drain_delay`; then the listener closes, idle connections close and the
/// requests in flight are answered, for at most `shutdown_grace`, after
/// which the remaining connections are dropped. Each connection has a
/// header-read timeout (`read_timeout`) and there are at most
/// `max_connections` at once. Logs the startup summary (`serving ... on
/// http://ADDR (...)`) first, and the shutdown.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    tracing::info!("{}", state.summary(listener.local_addr()?));
    let options = state.options.clone();
    let app = router(Arc::clone(&state));
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(options.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(options.read_timeout);
    let draining = Arc::clone(&state);
    let stop_accepting = async move {
        shutdown.await;
        draining.set_draining();
        if !options.drain_delay.is_zero() {
            tracing::info!("shutting down: /ready answers 503; serving {} ms more", options.drain_delay.as_millis());
            tokio::time::sleep(options.drain_delay).await;
        }
    };
    tokio::pin!(stop_accepting);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop_accepting => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, then go on.
                    tracing::warn!("accepting a connection failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::warn!("refused a connection from {peer}: {} connections open", options.max_connections);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Errors here are the client's (a reset, a slow header read).
            if let Err(error) = connection.await {
                tracing::debug!("connection from {peer}: {error}");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing requests in flight");
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown()).await.is_err() {
        let open = options.max_connections - permits.available_permits();
        tracing::warn!("shutdown grace period over: dropping {open} open connections");
    }
    Ok(())
}

/// The router of every route, with limits, authentication and metrics.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/ner", post(ner))
        .route("/v1/classify", post(classify))
        .route("/v1/answer", post(answer))
        .route("/v1/embed", post(embed))
        .route("/v1/models", get(models))
        .route("/v1/adapters", post(crate::adapters::add))
        .route("/v1/adapters/{name}", delete(crate::adapters::remove))
        .route("/health", get(|| async { Json(serde_json::json!({ "status": "ok" })) }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(|| async { Json(crate::openapi::document()) }))
        .fallback(|| async { ApiError::new(ErrorKind::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(ErrorKind::MethodNotAllowed, "method not allowed on this route")
        })
        .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), read_body_in_time))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), authenticate))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), record_metrics))
        .with_state(state)
}

/// Counts every request, and logs each failed one with its cause.
async fn record_metrics(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    // What the log names for an unmatched route: the path asked for.
    let unmatched_path = matched.is_none().then(|| request.uri().path().to_string());
    let method = request.method().clone();
    let started = Instant::now();
    let mut response = next.run(request).await;
    let route = matched.as_deref().unwrap_or("unmatched");
    state.metrics.observe_request(route, response.status().as_u16(), started.elapsed().as_secs_f64());
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        log_failure(&method, unmatched_path.as_deref().unwrap_or(route), &error);
    }
    response
}

/// One log line for a failed request: method, route, status, code, message
/// and, when there is one, the server-side cause in full.
fn log_failure(method: &Method, route: &str, error: &ApiError) {
    let (status, code) = error.kind.status_and_code();
    let mut line = format!("{method} {}: {} {code}: {}", one_line(route), status.as_u16(), one_line(&error.message));
    if let Some(cause) = &error.cause {
        line = format!("{line}: {}", one_line(&error_chain(cause.as_ref())));
    }
    if status.is_server_error() && error.kind != ErrorKind::Timeout && error.kind != ErrorKind::Draining {
        tracing::error!("{line}");
    } else {
        tracing::warn!("{line}");
    }
}

/// `text` with control characters (line breaks included) escaped, so that
/// what a client sent cannot forge log lines.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// Reads the whole body within `read_timeout` (408 and a closed connection
/// otherwise; 413 above `max_body_bytes`), so that a client that sends half
/// a body holds nothing for long.
async fn read_body_in_time(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let limit = state.options.max_body_bytes;
    match tokio::time::timeout(state.options.read_timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        Ok(Err(error)) => {
            let too_large = std::iter::successors(Some(&error as &(dyn std::error::Error + 'static)), |e| e.source())
                .any(|e| e.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::new(ErrorKind::BodyTooLarge, "request body too large").into_response()
            } else {
                ApiError::new(ErrorKind::BadBody, "could not read the request body").into_response()
            }
        }
        Err(_) => {
            let message =
                format!("the request body did not arrive within {} ms", state.options.read_timeout.as_millis());
            let mut response = ApiError::new(ErrorKind::RequestTimeout, message).into_response();
            response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
            response
        }
    }
}

async fn authenticate(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.options.api_key {
        if request.uri().path() != "/health" && !bearer_matches(request.headers(), key) {
            return ApiError::new(ErrorKind::Unauthorized, "missing or wrong API key (Authorization: Bearer <key>)")
                .into_response();
        }
    }
    next.run(request).await
}

/// Whether the `Authorization` header is `Bearer <key>`, compared in
/// constant time.
fn bearer_matches(headers: &HeaderMap, key: &str) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(given) = value.strip_prefix("Bearer ") else { return false };
    given.as_bytes().ct_eq(key.as_bytes()).into()
}

/// 413 for a body over the limit, 400 for one that could not be read.
fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorKind::BodyTooLarge, "request body too large")
    } else {
        ApiError::new(ErrorKind::BadBody, "could not read the request body")
    }
}

/// Decodes a JSON body: 413 when too large, 415 without a JSON content
/// type, 400 for malformed JSON, 422 for a missing or mistyped field.
pub(crate) fn decode<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(body_rejection)?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(ErrorKind::UnsupportedMediaType, "Content-Type must be application/json"));
    }
    serde_json::from_slice(&body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::new(ErrorKind::InvalidRequest, e.to_string()),
        _ => ApiError::new(ErrorKind::MalformedJson, format!("malformed JSON: {e}")),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NerRequest {
    model: Option<String>,
    texts: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassifyRequest {
    model: Option<String>,
    texts: Option<Vec<String>>,
    pairs: Option<Vec<(String, String)>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerRequest {
    index: Option<String>,
    queries: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbedRequest {
    model: Option<String>,
    texts: Vec<String>,
}

impl AppState {
    /// Where requests for model `name` (default: the first) go: a
    /// fine-tuned model's thread, or the adapters' with the adapter.
    fn model(&self, name: Option<&str>) -> Result<ModelRoute<'_>, ApiError> {
        let name = name.or(self.default_model.as_deref()).unwrap_or_default();
        if let Some(model) = self.models.get(name) {
            let (task, costs) = (model.backend.task(), model.backend.clone() as Arc<dyn Costs>);
            return Ok(ModelRoute { name: name.to_string(), task, costs, batcher: &model.batcher, adapter: None });
        }
        if let Some((adapters, adapter)) = self.adapters.as_ref().and_then(|a| Some((a, a.get(name)?))) {
            return Ok(ModelRoute {
                name: name.to_string(),
                task: adapter.task(),
                costs: adapter.clone(),
                batcher: &adapters.batcher,
                adapter: Some(adapter),
            });
        }
        Err(ApiError::new(ErrorKind::UnknownModel, format!("no model named '{name}'")))
    }

    /// The FAQ index `name` (default: the first), or `kind` naming it unknown.
    fn faq(&self, name: Option<&str>, kind: ErrorKind) -> Result<(&str, &Faq), ApiError> {
        let name = name.or(self.default_faq.as_deref()).unwrap_or_default();
        let what = if kind == ErrorKind::UnknownIndex { "FAQ index" } else { "embedding model" };
        self.faqs
            .get_key_value(name)
            .map(|(n, f)| (n.as_str(), f))
            .ok_or_else(|| ApiError::new(kind, format!("no {what} named '{name}'")))
    }

    fn check_inputs(&self, inputs: &[Input]) -> Result<(), ApiError> {
        if inputs.is_empty() {
            return Err(ApiError::new(ErrorKind::NoInputs, "give at least one text"));
        }
        if inputs.len() > self.options.max_texts {
            let message = format!("{} texts; at most {} per request", inputs.len(), self.options.max_texts);
            return Err(ApiError::new(ErrorKind::TooManyTexts, message));
        }
        for (i, input) in inputs.iter().enumerate() {
            let chars = match input {
                Input::Text(t) => t.chars().count(),
                Input::Words(w) => w.iter().map(|w| w.chars().count() + 1).sum(),
                Input::Pair(a, b) => a.chars().count().max(b.chars().count()),
            };
            if chars > self.options.max_chars {
                let message = format!("text {i} has {chars} characters; at most {}", self.options.max_chars);
                return Err(ApiError::new(ErrorKind::TextTooLong, message));
            }
        }
        Ok(())
    }

    /// Counts the inputs' tokens (off the async threads), refuses a request
    /// over `max_tokens_per_request`, queues the inputs on the target's
    /// batcher and waits for the answer until the request's deadline.
    async fn run(&self, target: Target<'_>, inputs: Vec<Input>) -> Result<Response, ApiError> {
        let deadline = Instant::now() + self.options.timeout;
        self.check_inputs(&inputs)?;
        let failed = || ApiError::new(ErrorKind::InferenceFailed, "the model could not answer");
        // A cheap lower bound first (every word is a token at least), so
        // that a request far over the budget costs no tokenization.
        let budget = self.options.max_tokens_per_request;
        if target.words_are_tokens {
            let words: usize = inputs
                .iter()
                .map(|input| match input {
                    Input::Text(t) => t.split_whitespace().count(),
                    Input::Words(w) => w.len(),
                    Input::Pair(a, b) => a.split_whitespace().count() + b.split_whitespace().count(),
                })
                .sum();
            if words > budget {
                let message = format!("at least {words} tokens; at most {budget} per request");
                return Err(ApiError::new(ErrorKind::TooManyTokens, message));
            }
        }
        let costs = Arc::clone(&target.costs);
        let counted = tokio::task::spawn_blocking(move || costs.costs(&inputs).map(|costs| (inputs, costs))).await;
        let (inputs, costs) = match counted {
            Ok(Ok(counted)) => counted,
            Ok(Err(cause)) => return Err(failed().caused_by(Arc::new(cause))),
            Err(join) => {
                let cause = ServeError::Panicked { model: target.name.to_string(), message: join.to_string() };
                return Err(failed().caused_by(Arc::new(cause)));
            }
        };
        let tokens: usize = costs.iter().sum();
        if tokens > self.options.max_tokens_per_request {
            let message = format!("{tokens} tokens; at most {} per request", self.options.max_tokens_per_request);
            return Err(ApiError::new(ErrorKind::TooManyTokens, message));
        }
        let answer =
            target.batcher.submit(inputs, costs, target.adapter, deadline).map_err(|refused| match refused {
                Refused::Full => ApiError::new(ErrorKind::Overloaded, "the queue is full; retry later"),
                Refused::Closed => ApiError::new(ErrorKind::Unavailable, "the model is not running"),
            })?;
        let timeout = || ApiError::new(ErrorKind::Timeout, "no answer within the request timeout");
        let stopped = || ServeError::ModelStopped { model: target.name.to_string() };
        match tokio::time::timeout_at(deadline.into(), answer).await {
            Ok(Ok(Ok(results))) => {
                Ok(Json(serde_json::json!({ target.key: target.name, "results": results })).into_response())
            }
            Ok(Ok(Err(cause))) if matches!(cause.as_ref(), ServeError::Expired { .. }) => Err(timeout()),
            Ok(Ok(Err(cause))) => Err(failed().caused_by(cause)),
            Ok(Err(_)) => Err(failed().caused_by(Arc::new(stopped()))),
            Err(_) => Err(timeout()),
        }
    }
}

/// What a request is run on: a batching thread and what counts the tokens
/// of its inputs.
struct Target<'a> {
    /// The key naming it in the answer (`model`, `index`).
    key: &'static str,
    /// Its name.
    name: &'a str,
    /// Counts the tokens each input costs.
    costs: Arc<dyn Costs>,
    /// Its batching thread.
    batcher: &'a Batcher,
    /// Whether every word of an input is a token at least (a cheap bound
    /// checked before the tokens are counted).
    words_are_tokens: bool,
    /// The LoRA adapter the inputs run with, on the adapters' thread.
    adapter: Option<SharedAdapter>,
}

/// A model a request names: a fine-tuned model, or an adapter on the base.
struct ModelRoute<'a> {
    name: String,
    task: Task,
    costs: Arc<dyn Costs>,
    batcher: &'a Batcher,
    adapter: Option<SharedAdapter>,
}

impl ModelRoute<'_> {
    fn target(&self) -> Target<'_> {
        Target {
            key: "model",
            name: &self.name,
            costs: Arc::clone(&self.costs),
            batcher: self.batcher,
            words_are_tokens: self.task == Task::Ner,
            adapter: self.adapter.clone(),
        }
    }
}

/// A decoded prediction request: the model asked for (if any) and its inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    /// The `model` field.
    pub model: Option<String>,
    /// The texts (or pairs), in order.
    pub inputs: Vec<Input>,
}

/// Decodes the body of a prediction route (`/v1/ner` or `/v1/classify`)
/// with its `Content-Type`: 415 without a JSON type, 400 for malformed
/// JSON, 422 for a missing, unknown or mistyped field (classify: exactly one
/// of `texts` and `pairs`). Limits are checked later, against the model.
pub fn decode_request(route: &str, content_type: Option<&str>, body: &[u8]) -> Result<DecodedRequest, ApiError> {
    let mut headers = HeaderMap::new();
    if let Some(value) = content_type.and_then(|v| header::HeaderValue::from_str(v).ok()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    let body = Ok(Bytes::copy_from_slice(body));
    if route == "/v1/ner" {
        let request: NerRequest = decode(&headers, body)?;
        return Ok(DecodedRequest {
            model: request.model,
            inputs: request.texts.into_iter().map(Input::Text).collect(),
        });
    }
    let request: ClassifyRequest = decode(&headers, body)?;
    let inputs = match (request.texts, request.pairs) {
        (Some(texts), None) => texts.into_iter().map(Input::Text).collect(),
        (None, Some(pairs)) => pairs.into_iter().map(|(a, b)| Input::Pair(a, b)).collect(),
        _ => return Err(ApiError::new(ErrorKind::InvalidRequest, "give exactly one of \"texts\" and \"pairs\"")),
    };
    Ok(DecodedRequest { model: request.model, inputs })
}

async fn ner(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: NerRequest = decode(&headers, body)?;
    let model = state.model(request.model.as_deref())?;
    if model.task != Task::Ner {
        let message = format!("model '{}' is a {} model: use /v1/classify", model.name, model.task.name());
        return Err(ApiError::new(ErrorKind::WrongTask, message));
    }
    state.run(model.target(), request.texts.into_iter().map(Input::Text).collect()).await
}

async fn classify(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let body = body.map_err(body_rejection)?;
    let request = decode_request("/v1/classify", content_type, &body)?;
    let model = state.model(request.model.as_deref())?;
    if model.task == Task::Ner {
        let message = format!("model '{}' is an NER model: use /v1/ner", model.name);
        return Err(ApiError::new(ErrorKind::WrongTask, message));
    }
    state.run(model.target(), request.inputs).await
}

/// Answers questions from a FAQ index (`index`, default the first); an
/// empty question is a 400.
async fn answer(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: AnswerRequest = decode(&headers, body)?;
    let (name, faq) = state.faq(request.index.as_deref(), ErrorKind::UnknownIndex)?;
    if let Some(i) = request.queries.iter().position(|q| q.trim().is_empty()) {
        return Err(ApiError::new(ErrorKind::EmptyText, format!("query {i} is empty")));
    }
    let target = Target {
        key: "index",
        name,
        costs: faq.costs(),
        batcher: &faq.answers,
        words_are_tokens: false,
        adapter: None,
    };
    state.run(target, request.queries.into_iter().map(Input::Text).collect()).await
}

/// Embeds texts with the embedding model of a FAQ index (`model` names the
/// index, default the first).
async fn embed(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: EmbedRequest = decode(&headers, body)?;
    let (name, faq) = state.faq(request.model.as_deref(), ErrorKind::UnknownModel)?;
    let target = Target {
        key: "model",
        name,
        costs: faq.costs(),
        batcher: &faq.embeddings,
        words_are_tokens: false,
        adapter: None,
    };
    state.run(target, request.texts.into_iter().map(Input::Text).collect()).await
}

async fn models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let list: Vec<serde_json::Value> = state
        .models
        .iter()
        .map(|(name, m)| {
            serde_json::json!({
                "name": name, "task": m.backend.task().name(), "labels": m.backend.labels(),
                "default": Some(name) == state.default_model.as_ref()
            })
        })
        .chain(state.adapters.iter().flat_map(|a| a.all()).map(|a| {
            serde_json::json!({
                "name": a.name(), "task": a.task().name(), "labels": a.labels(), "adapter": true,
                "default": Some(a.name()) == state.default_model.as_deref()
            })
        }))
        .collect();
    let faqs: Vec<serde_json::Value> =
        state.faqs.iter().map(|(name, f)| f.describe(name, Some(name) == state.default_faq.as_ref())).collect();
    Json(serde_json::json!({ "models": list, "faq_indexes": faqs }))
}

/// 200 while every model's thread runs and the server is not draining.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if !state.ready.load(Ordering::SeqCst) {
        return ApiError::new(ErrorKind::Draining, "the server is shutting down").into_response();
    }
    if let Some((name, _)) = state.models.iter().find(|(_, m)| !m.batcher.is_alive()) {
        return ApiError::new(ErrorKind::Unavailable, format!("the thread of model '{name}' has stopped"))
            .into_response();
    }
    if state.adapters.as_ref().is_some_and(|a| !a.batcher.is_alive()) {
        return ApiError::new(ErrorKind::Unavailable, "the adapters' thread has stopped").into_response();
    }
    if let Some((name, _)) = state.faqs.iter().find(|(_, f)| !f.answers.is_alive() || !f.embeddings.is_alive()) {
        return ApiError::new(ErrorKind::Unavailable, format!("a thread of FAQ index '{name}' has stopped"))
            .into_response();
    }
    let (models, faqs) = (state.models.len(), state.faqs.len());
    Json(serde_json::json!({ "status": "ready", "models": models, "faq_indexes": faqs })).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let batchers: Vec<(String, &Batcher)> = state
        .models
        .iter()
        .map(|(n, m)| (n.clone(), &m.batcher))
        .chain(state.adapters.iter().map(|a| (crate::adapters::THREAD.to_string(), &a.batcher)))
        .chain(
            state
                .faqs
                .iter()
                .flat_map(|(n, f)| [(format!("answer:{n}"), &f.answers), (format!("embed:{n}"), &f.embeddings)]),
        )
        .collect();
    let queues: Vec<(String, usize)> = batchers.iter().map(|(n, b)| (n.clone(), b.depth())).collect();
    let mut text = state.metrics.render(&queues);
    text += "# HELP ferrotune_queue_tokens Tokens waiting for a model.\n# TYPE ferrotune_queue_tokens gauge\n";
    for (name, batcher) in &batchers {
        text += &format!("ferrotune_queue_tokens{{model=\"{name}\"}} {}\n", batcher.queued_tokens());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        h
    }

    /// Random bytes and random mutations of valid bodies never panic the
    /// decoder, and every failure is a client error.
    #[test]
    fn decoding_any_body_gives_a_value_or_a_client_error() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let valid = [
            r#"{"texts": ["a b", "ü"]}"#,
            r#"{"model": "m", "pairs": [["a", "b"]]}"#,
            r#"{"texts": ["\ud83d\ude00"], "model": null}"#,
        ];
        let alphabet = b"{}[]\",:\\ 0123456789.eE+-truefalsnul\x00\xff\xc3texts pairs model";
        for round in 0..20_000 {
            let body: Vec<u8> = if round % 3 == 0 {
                (0..rng.random_range(0..64)).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect()
            } else {
                let mut b = valid[round % valid.len()].as_bytes().to_vec();
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..=b.len());
                    match rng.random_range(0..3) {
                        0 if at < b.len() => {
                            b.remove(at);
                        }
                        1 => b.insert(at, alphabet[rng.random_range(0..alphabet.len())]),
                        _ => b.truncate(at),
                    }
                }
                b
            };
            for result in [
                decode::<NerRequest>(&json_headers(), Ok(Bytes::from(body.clone()))).err(),
                decode::<ClassifyRequest>(&json_headers(), Ok(Bytes::from(body))).err(),
            ]
            .into_iter()
            .flatten()
            {
                assert!(result.status().is_client_error(), "{result:?}");
            }
        }
    }

    #[test]
    fn out_of_range_options_are_refused_naming_the_field() {
        let field = |change: fn(&mut ServeOptions)| {
            let mut o = ServeOptions::default();
            change(&mut o);
            match o.validate() {
                Ok(()) => None,
                Err(ServeError::InvalidOption { field, .. }) => Some(field),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(field(|_| {}), None);
        assert_eq!(field(|o| o.batch.max_wait = Duration::ZERO), None);
        assert_eq!(field(|o| o.max_len = 3), None);
        assert_eq!(field(|o| o.max_len = 4096), None);
        assert_eq!(field(|o| o.batch.max_batch = 0), Some("max_batch"));
        assert_eq!(field(|o| o.batch.max_queue = 0), Some("max_queue"));
        assert_eq!(field(|o| o.max_body_bytes = 0), Some("max_body_bytes"));
        assert_eq!(field(|o| o.max_texts = 0), Some("max_texts"));
        assert_eq!(field(|o| o.max_chars = 0), Some("max_chars"));
        assert_eq!(field(|o| o.timeout = Duration::ZERO), Some("timeout"));
        assert_eq!(field(|o| o.max_len = 2), Some("max_len"));
        assert_eq!(field(|o| o.max_len = 4097), Some("max_len"));
        let e = ServeOptions { max_len: 2, ..ServeOptions::default() }.validate().unwrap_err();
        assert_eq!(e.to_string(), "max_len must be between 3 and 4096");
    }

    #[test]
    fn log_lines_cannot_be_forged() {
        assert_eq!(one_line("no model named 'x\nERROR y'"), "no model named 'x\\nERROR y'");
        assert_eq!(one_line("a\r\tb ü"), "a\\r\\tb ü");
    }

    #[test]
    fn bearer_comparison_needs_the_exact_key() {
        let mut h = HeaderMap::new();
        assert!(!bearer_matches(&h, "k1234567890123456"));
        h.insert(header::AUTHORIZATION, "Bearer k1234567890123456".parse().unwrap());
        assert!(bearer_matches(&h, "k1234567890123456"));
        assert!(!bearer_matches(&h, "k123456789012345"));
        h.insert(header::AUTHORIZATION, "Basic k1234567890123456".parse().unwrap());
        assert!(!bearer_matches(&h, "k1234567890123456"));
    }
}

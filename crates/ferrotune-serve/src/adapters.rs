//! LoRA adapters served on one base (`serve --model BASE --adapter
//! NAME=DIR`): the table of adapters by name, which `POST /v1/adapters`
//! and `DELETE /v1/adapters/{name}` change while serving, and the one
//! batching thread that runs requests for any of them in shared batches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::app::{decode, AppState};
use crate::backend::{AdapterBase, SharedAdapter};
use crate::batcher::Batcher;
use crate::error::{error_chain, ErrorKind};
use crate::metrics::Metrics;
use crate::{ApiError, ServeError, ServeOptions};

/// The adapters' base, its batching thread and the adapters by name.
pub(crate) struct Adapters {
    base: Arc<AdapterBase>,
    /// Runs every adapter's requests.
    pub(crate) batcher: Batcher,
    table: RwLock<BTreeMap<String, SharedAdapter>>,
}

/// The name the adapters' batching thread goes by in logs and metrics.
pub(crate) const THREAD: &str = "adapters";

impl Adapters {
    /// Reads the base folder, loads the adapters `(name, folder)` onto it
    /// and starts the batching thread.
    pub(crate) fn load(
        base: &Path,
        adapters: &[(String, PathBuf)],
        options: &ServeOptions,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, ServeError> {
        let base = Arc::new(AdapterBase::load(base, options)?);
        let mut table = BTreeMap::new();
        for (name, dir) in adapters {
            if table.contains_key(name) {
                return Err(ServeError::DuplicateModel { name: name.clone() });
            }
            table.insert(name.clone(), Arc::new(base.adapter(name, dir)?));
        }
        let batcher = Batcher::start(THREAD, base.clone(), options.batch, Arc::clone(metrics))?;
        Ok(Self { base, batcher, table: RwLock::new(table) })
    }

    /// The adapter named `name`, if served.
    pub(crate) fn get(&self, name: &str) -> Option<SharedAdapter> {
        self.table.read().unwrap_or_else(PoisonError::into_inner).get(name).cloned()
    }

    /// Every adapter served, by name.
    pub(crate) fn all(&self) -> Vec<SharedAdapter> {
        self.table.read().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }
}

/// `POST /v1/adapters`: `{"name", "path"}` of an adapter folder on the
/// server's disk.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    name: String,
    path: PathBuf,
}

/// Whether `name` can name an adapter: 1 to 64 letters, digits, `-`, `_`, `.`.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn adapters_of(state: &AppState) -> Result<&Adapters, ApiError> {
    state.adapters().ok_or_else(|| {
        ApiError::new(ErrorKind::NoAdapterBase, "this server has no adapters' base (serve --model BASE --adapter ...)")
    })
}

/// Loads an adapter onto the base while serving: 201 with its name, task
/// and labels; 409 if the name is taken, 422 if the folder does not load
/// (the message names the file and key), 500 if loading panicked.
pub(crate) async fn add(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: AddRequest = decode(&headers, body)?;
    let adapters = adapters_of(&state)?;
    if !valid_name(&request.name) {
        let message = "an adapter name is 1 to 64 letters, digits, '-', '_' or '.'";
        return Err(ApiError::new(ErrorKind::InvalidRequest, message));
    }
    let taken = || ApiError::new(ErrorKind::AdapterExists, format!("a model named '{}' is served", request.name));
    if state.is_served(&request.name) {
        return Err(taken());
    }
    let base = Arc::clone(&adapters.base);
    let (name, dir) = (request.name.clone(), request.path.clone());
    let loaded = tokio::task::spawn_blocking(move || base.adapter(&name, &dir)).await;
    let adapter = match loaded {
        Ok(Ok(adapter)) => Arc::new(adapter),
        Ok(Err(error)) => return Err(ApiError::new(ErrorKind::InvalidAdapter, error_chain(&error))),
        Err(join) => {
            let cause = ServeError::Panicked { model: request.name.clone(), message: join.to_string() };
            return Err(
                ApiError::new(ErrorKind::InferenceFailed, "loading the adapter failed").caused_by(Arc::new(cause))
            );
        }
    };
    {
        let mut table = adapters.table.write().unwrap_or_else(PoisonError::into_inner);
        // Checked again: another request may have taken the name meanwhile.
        if table.contains_key(&request.name) || state.is_plain_model(&request.name) {
            return Err(taken());
        }
        table.insert(request.name.clone(), Arc::clone(&adapter));
    }
    tracing::info!("adapter '{}' added from {}", request.name, request.path.display());
    let body = serde_json::json!({ "name": adapter.name(), "task": adapter.task().name(), "labels": adapter.labels() });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Removes an adapter: requests already queued for it are still answered.
pub(crate) async fn remove(
    State(state): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    let adapters = adapters_of(&state)?;
    let removed = adapters.table.write().unwrap_or_else(PoisonError::into_inner).remove(&name);
    match removed {
        Some(_) => {
            tracing::info!("adapter '{name}' removed");
            Ok(Json(serde_json::json!({ "removed": name })).into_response())
        }
        None => Err(ApiError::new(ErrorKind::UnknownModel, format!("no adapter named '{name}'"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_names_are_short_and_plain() {
        for good in ["ner-1", "customer_A", "v1.2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "a/b", "x y", "../up", &"n".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}

//! `ferrotune serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ferrotune_serve::{router, AppState, BatchPolicy, ServeOptions};

#[derive(Args)]
pub struct ServeArgs {
    /// A fine-tuned model folder, or NAME=FOLDER; repeat for several models
    /// (the first is the default; a bare folder is named after itself).
    #[arg(long = "model", required = true)]
    models: Vec<String>,
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Most inputs in one model call.
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    /// Longest a request waits for others to share its model call, in ms.
    #[arg(long, default_value_t = 5)]
    max_wait_ms: u64,
    /// Most requests waiting per model; more are answered 429.
    #[arg(long, default_value_t = 256)]
    max_queue: usize,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Most texts (or pairs) per request.
    #[arg(long, default_value_t = 64)]
    max_texts: usize,
    /// Longest text, in characters.
    #[arg(long, default_value_t = 10_000)]
    max_chars: usize,
    /// Longest a request may wait for its answer, in ms (then 503).
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Tokens per model input; longer NER texts are split into windows.
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    /// File holding the API key every route but /health requires.
    #[arg(long)]
    api_key_file: Option<PathBuf>,
    /// Compute threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Device: cpu, or cuda / cuda:N with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn parse_model(spec: &str) -> (String, PathBuf) {
    match spec.split_once('=') {
        Some((name, dir)) if !name.is_empty() && !name.contains('/') => (name.to_string(), PathBuf::from(dir)),
        _ => {
            let dir = PathBuf::from(spec);
            let name = dir.file_name().map_or("default".to_string(), |n| n.to_string_lossy().to_string());
            (name, dir)
        }
    }
}

/// Runs `ferrotune serve` until SIGTERM or Ctrl-C, then drains.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    crate::runtime::init(args.threads)?;
    let api_key = match &args.api_key_file {
        Some(path) => {
            let key = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let key = key.trim().to_string();
            anyhow::ensure!(key.len() >= 16, "{}: the API key must have at least 16 characters", path.display());
            Some(key)
        }
        None => None,
    };
    let options = ServeOptions {
        batch: BatchPolicy {
            max_batch: args.max_batch.max(1),
            max_wait: Duration::from_millis(args.max_wait_ms),
            max_queue: args.max_queue.max(1),
        },
        max_body_bytes: args.max_body_bytes,
        max_texts: args.max_texts.max(1),
        max_chars: args.max_chars,
        timeout: Duration::from_millis(args.timeout_ms),
        max_len: args.max_len,
        api_key,
        device: ferrotune_model::device_from_name(&args.device)?,
    };
    let models: Vec<(String, PathBuf)> = args.models.iter().map(|s| parse_model(s)).collect();
    let state = AppState::load(&models, options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("binding {}", args.addr))?;
        eprintln!(
            "serving {} on http://{} (max batch {}, max wait {} ms, queue {}{})",
            models.iter().map(|(n, d)| format!("{n}={}", d.display())).collect::<Vec<_>>().join(", "),
            listener.local_addr()?,
            args.max_batch,
            args.max_wait_ms,
            args.max_queue,
            if args.api_key_file.is_some() { ", API key required" } else { "" }
        );
        let draining = std::sync::Arc::clone(&state);
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async move {
                shutdown_signal().await;
                eprintln!("shutting down: finishing requests in flight");
                draining.set_draining();
            })
            .await
            .context("serving")
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_specs_name_folders() {
        assert_eq!(parse_model("ner=runs/a"), ("ner".to_string(), PathBuf::from("runs/a")));
        assert_eq!(parse_model("runs/fpb"), ("fpb".to_string(), PathBuf::from("runs/fpb")));
    }
}

//! `ferrotune serve`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ferrotune_serve::{AppState, BatchPolicy, ServeOptions};

/// The server's defaults: every flag's default comes from here.
fn defaults() -> ServeOptions {
    ServeOptions::default()
}

/// Whole milliseconds of a default duration.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).expect("default durations fit in u64 milliseconds")
}

#[derive(Args)]
pub struct ServeArgs {
    /// A fine-tuned model folder, or NAME=FOLDER; repeat for several models
    /// (the first is the default; a bare folder is named after itself).
    #[arg(long = "model", required_unless_present_any = ["faqs", "adapters"])]
    models: Vec<String>,
    /// A LoRA adapter folder (PEFT's layout) as NAME=FOLDER; repeat for several. Then --model is
    /// their one base (default: the local folder the first adapter's base_model_name_or_path names), held once; requests name an adapter in "model" (the first is the default),
    /// and POST /v1/adapters, DELETE /v1/adapters/NAME add and remove adapters while serving.
    #[arg(long = "adapter")]
    adapters: Vec<String>,
    /// A FAQ index folder (from `faq build`), or NAME=FOLDER; repeat for several. Adds
    /// POST /v1/answer and POST /v1/embed (its embedding model); the first is the default.
    #[arg(long = "faq")]
    faqs: Vec<String>,
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Most inputs in one model call.
    #[arg(long, default_value_t = defaults().batch.max_batch)]
    max_batch: usize,
    /// Longest a request waits for others to share its model call, in ms.
    #[arg(long, default_value_t = millis(defaults().batch.max_wait))]
    max_wait_ms: u64,
    /// Most tokens in one model call; a longer request is computed in slices.
    #[arg(long, default_value_t = defaults().batch.max_batch_tokens)]
    max_batch_tokens: usize,
    /// Most requests waiting per model; more are answered 429.
    #[arg(long, default_value_t = defaults().batch.max_queue)]
    max_queue: usize,
    /// Most tokens waiting per model; more are answered 429.
    #[arg(long, default_value_t = defaults().batch.max_queue_tokens)]
    max_queue_tokens: usize,
    /// Most tokens one request may cost (every window, special tokens included); more is answered 413.
    #[arg(long, default_value_t = defaults().max_tokens_per_request)]
    max_tokens_per_request: usize,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = defaults().max_body_bytes)]
    max_body_bytes: usize,
    /// Most texts (or pairs) per request.
    #[arg(long, default_value_t = defaults().max_texts)]
    max_texts: usize,
    /// Longest text, in characters.
    #[arg(long, default_value_t = defaults().max_chars)]
    max_chars: usize,
    /// Longest a request may wait for its answer, in ms (then 503).
    #[arg(long, default_value_t = millis(defaults().timeout))]
    timeout_ms: u64,
    /// Longest wait for a request's headers, then for its body, in ms (then the connection closes, or 408).
    #[arg(long, default_value_t = millis(defaults().read_timeout))]
    read_timeout_ms: u64,
    /// Most connections open at once; more are closed at once.
    #[arg(long, default_value_t = defaults().max_connections)]
    max_connections: usize,
    /// After SIGTERM, how long /ready answers 503 while requests are still taken, in ms.
    #[arg(long, default_value_t = millis(defaults().drain_delay))]
    drain_delay_ms: u64,
    /// Then how long connections may take to finish before they are dropped, in ms.
    #[arg(long, default_value_t = millis(defaults().shutdown_grace))]
    shutdown_grace_ms: u64,
    /// Tokens per model input; longer NER texts are split into windows.
    #[arg(long, default_value_t = defaults().max_len)]
    max_len: usize,
    /// Precision of the linear layers: fp32, bf16 or int8.
    /// [default: fp32, or the precision a quantized folder was saved in]
    #[arg(long, value_enum)]
    precision: Option<ferrotune_model::quant::Precision>,
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

/// Logs to stderr at the level of `RUST_LOG` (default `info`), coloured
/// only on a terminal.
fn init_logging() {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};
    let filter = EnvFilter::builder().with_default_directive(LevelFilter::INFO.into()).from_env_lossy();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Runs `ferrotune serve` until SIGTERM or Ctrl-C, then drains. Out-of-range
/// options end it with a [`ferrotune_serve::ServeError::InvalidOption`].
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    crate::runtime::init(args.threads, crate::runtime::FreedMemory::Return)?;
    let api_key = match &args.api_key_file {
        Some(path) => {
            let key = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let key = key.trim().to_string();
            if key.len() < 16 {
                let message = format!("{}: the API key must have at least 16 characters", path.display());
                return Err(crate::UsageError(message).into());
            }
            Some(key)
        }
        None => None,
    };
    let options = ServeOptions {
        batch: BatchPolicy {
            max_batch: args.max_batch,
            max_batch_tokens: args.max_batch_tokens,
            max_wait: Duration::from_millis(args.max_wait_ms),
            max_queue: args.max_queue,
            max_queue_tokens: args.max_queue_tokens,
        },
        max_body_bytes: args.max_body_bytes,
        max_texts: args.max_texts,
        max_chars: args.max_chars,
        timeout: Duration::from_millis(args.timeout_ms),
        max_len: args.max_len,
        precision: args.precision,
        api_key,
        device: ferrotune_model::device_from_name(&args.device)?,
        read_timeout: Duration::from_millis(args.read_timeout_ms),
        max_connections: args.max_connections,
        drain_delay: Duration::from_millis(args.drain_delay_ms),
        shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
        max_tokens_per_request: args.max_tokens_per_request,
    };
    // Before the models load: a bad option is refused at once.
    options.validate()?;
    let mut models: Vec<(String, PathBuf)> = args.models.iter().map(|s| parse_model(s)).collect();
    let adapters: Vec<(String, PathBuf)> = args.adapters.iter().map(|s| parse_model(s)).collect();
    if let (true, Some((_, first))) = (models.is_empty(), adapters.first()) {
        models.push(("base".into(), crate::predict::local_base(first)?));
    }
    let faqs: Vec<(String, PathBuf)> = args.faqs.iter().map(|s| parse_model(s)).collect();
    let state = AppState::load(&models, &adapters, &faqs, options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("binding {}", args.addr))?;
        ferrotune_serve::serve(state, listener, shutdown_signal()).await.context("serving")
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

    /// Every flag defaults to the server's own default.
    #[test]
    fn flag_defaults_are_the_server_defaults() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let args = Cli::parse_from(["serve", "--model", "m"]).serve;
        let d = ServeOptions::default();
        assert_eq!((args.max_batch, args.max_queue), (d.batch.max_batch, d.batch.max_queue));
        assert_eq!(Duration::from_millis(args.max_wait_ms), d.batch.max_wait);
        assert_eq!(Duration::from_millis(args.timeout_ms), d.timeout);
        assert_eq!((args.max_body_bytes, args.max_texts, args.max_chars), (d.max_body_bytes, d.max_texts, d.max_chars));
        assert_eq!(args.max_len, d.max_len);
        assert_eq!(
            (args.max_batch_tokens, args.max_queue_tokens),
            (d.batch.max_batch_tokens, d.batch.max_queue_tokens)
        );
        assert_eq!((args.max_tokens_per_request, args.max_connections), (d.max_tokens_per_request, d.max_connections));
        assert_eq!(Duration::from_millis(args.read_timeout_ms), d.read_timeout);
        assert_eq!(Duration::from_millis(args.drain_delay_ms), d.drain_delay);
        assert_eq!(Duration::from_millis(args.shutdown_grace_ms), d.shutdown_grace);
    }
}

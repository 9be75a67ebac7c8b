//! `ferrotune bench faq-ask`: the latency of answering one question at a
//! time from a FAQ index (embedding, search, answer), as one client sees it.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;
use clap::Args;
use ferrotune_assistant::{FaqAssistant, OpenOptions};
use serde_json::json;

#[derive(Args)]
pub struct FaqAskArgs {
    /// Index folder (from `faq build`).
    #[arg(long)]
    index: PathBuf,
    /// Questions, one per line; each is asked alone, in turn.
    #[arg(long)]
    queries: PathBuf,
    /// Untimed questions first (the first ones of the file).
    #[arg(long, default_value_t = 5)]
    warmup: usize,
}

/// The share `q` of the sorted `values` (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Asks every question alone and reports latency percentiles in milliseconds.
pub fn run(args: &FaqAskArgs, device: &Device) -> anyhow::Result<serde_json::Value> {
    let start = Instant::now();
    let assistant = FaqAssistant::open(&args.index, &OpenOptions::default(), device)?;
    let load_s = start.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&args.queries).with_context(|| format!("reading {}", args.queries.display()))?;
    let queries: Vec<String> = text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
    anyhow::ensure!(!queries.is_empty(), "{}: no questions", args.queries.display());
    for query in queries.iter().cycle().take(args.warmup) {
        assistant.ask(std::slice::from_ref(query))?;
    }
    let mut millis = Vec::with_capacity(queries.len());
    for query in &queries {
        let start = Instant::now();
        assistant.ask(std::slice::from_ref(query))?;
        millis.push(start.elapsed().as_secs_f64() * 1e3);
    }
    millis.sort_by(f64::total_cmp);
    Ok(json!({
        "workload": "faq-ask", "entries": assistant.index().entries.len(), "questions": millis.len(),
        "mean_ms": millis.iter().sum::<f64>() / millis.len() as f64,
        "p50_ms": percentile(&millis, 0.5), "p90_ms": percentile(&millis, 0.9), "p99_ms": percentile(&millis, 0.99),
        "max_ms": millis[millis.len() - 1], "load_s": load_s,
    }))
}

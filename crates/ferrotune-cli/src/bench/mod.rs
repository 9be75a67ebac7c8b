//! `ferrotune bench`: times the model's hot paths on this machine and prints
//! one JSON line, for `scripts/bench.sh` to set beside the PyTorch reference
//! (`scripts/bench_torch.py` prints the same fields).

mod faq_ask;
mod peak;
mod search;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use candle_core::{Device, Tensor};
use clap::{Args, Subcommand};
use ferrotune_model::lora::{LoraSettings, LoraTarget};
use ferrotune_model::quant::Precision;
use ferrotune_model::{Batch, Mode, ScratchScope, TokenClassifier, TokenHead};
use ferrotune_train::{AdamW, AdamWConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    workload: Workload,
    /// Threads [default: all cores].
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Device: cpu, or cuda / cuda:N with the `cuda` feature.
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
}

#[derive(Subcommand)]
enum Workload {
    /// Inference forward pass (eval mode) at a batch shape.
    Forward(Shape),
    /// One training step: forward with dropout, loss, backward, clipping, AdamW.
    TrainStep(Shape),
    /// This machine's measured fp32 peak (vector FMA chains on every thread).
    Peak,
    /// Latency of answering one question at a time from a FAQ index.
    FaqAsk(faq_ask::FaqAskArgs),
    /// Nearest-neighbour search: exact, and HNSW with its recall against exact.
    Search(search::SearchBench),
}

#[derive(Args)]
struct Shape {
    /// A BERT checkpoint folder (a 3-tag head is added when it has none).
    #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
    model: PathBuf,
    /// Sequences per batch.
    #[arg(long)]
    batch: usize,
    /// Tokens per sequence (no padding).
    #[arg(long)]
    len: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Precision of the linear layers (train-step: fp32 or bf16 mixed precision).
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    precision: Precision,
    /// train-step: train LoRA adapters of this rank (alpha 2r) on a frozen
    /// base instead of every weight.
    #[arg(long)]
    lora_r: Option<usize>,
    /// train-step with --lora-r: the adapted matrices.
    #[arg(long, default_value = "query,value")]
    lora_targets: String,
}

/// Runs `ferrotune bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    crate::runtime::init(args.threads, crate::runtime::FreedMemory::Keep)?;
    let threads = rayon::current_num_threads();
    let device = ferrotune_model::device_from_name(&args.device)?;
    let mut record = match &args.workload {
        Workload::Forward(shape) => crate::runtime::run_in_pool(|| forward(shape, &device))?,
        Workload::TrainStep(shape) => crate::runtime::run_in_pool(|| train_step(shape, &device))?,
        Workload::FaqAsk(faq) => crate::runtime::run_in_pool(|| faq_ask::run(faq, &device))?,
        Workload::Search(bench) => crate::runtime::run_in_pool(|| search::run(bench))?,
        Workload::Peak => {
            let gflops = peak::fp32_peak_gflops().context("no vector FMA unit this probe knows")?;
            json!({ "workload": "peak", "gflops": gflops })
        }
    };
    record["threads"] = json!(threads);
    record["peak_rss_bytes"] = json!(peak_rss_bytes());
    println!("{record}");
    Ok(())
}

/// A model and a batch of random token ids of the given shape.
struct Setup {
    model: TokenClassifier,
    inputs: Batch,
    load_s: f64,
}

impl Setup {
    fn new(shape: &Shape, device: &Device) -> anyhow::Result<Self> {
        let start = Instant::now();
        let labels: Vec<String> = ["O", "B-Disease", "I-Disease"].map(String::from).to_vec();
        let head = TokenHead::For { labels: &labels, seed: 1 };
        let model = TokenClassifier::load(&shape.model, head, device)?;
        let load_s = start.elapsed().as_secs_f64();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let ids: Vec<Vec<u32>> =
            (0..shape.batch).map(|_| (0..shape.len).map(|_| rng.random_range(1000..20000)).collect()).collect();
        let refs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        Ok(Self { model, inputs: Batch::pad(&refs, 0)?, load_s })
    }
}

fn forward(shape: &Shape, device: &Device) -> anyhow::Result<serde_json::Value> {
    let mut setup = Setup::new(shape, device)?;
    setup.model = setup.model.frozen()?.with_precision(shape.precision)?;
    let mut times = Vec::new();
    for run in 0..shape.warmup + shape.runs {
        let start = Instant::now();
        let logits = setup.model.forward(&setup.inputs, &mut Mode::Eval)?;
        let _ = logits.flatten_all()?.to_vec1::<f32>()?;
        if run >= shape.warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(json!({ "workload": "forward", "precision": shape.precision, "batch": shape.batch, "len": shape.len,
            "load_s": setup.load_s, "times_s": times }))
}

fn train_step(shape: &Shape, device: &Device) -> anyhow::Result<serde_json::Value> {
    let mut setup = Setup::new(shape, device)?;
    if let Some(rank) = shape.lora_r {
        let targets = LoraTarget::parse_list(&shape.lora_targets).map_err(crate::UsageError)?;
        let lora = LoraSettings {
            rank,
            alpha: 2.0 * rank as f64,
            dropout: 0.1,
            targets,
            rslora: false,
            init: Default::default(),
        };
        setup.model = setup.model.with_new_lora(&lora, 1)?;
    }
    setup.model = setup.model.with_training_precision(shape.precision)?;
    let mut optimizer = AdamW::new(setup.model.params(), AdamWConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let tokens = shape.batch * shape.len;
    let positions = Tensor::arange(0u32, tokens as u32, &Device::Cpu)?;
    let targets = Tensor::from_vec((0..tokens as u32).map(|i| i % 3).collect::<Vec<_>>(), tokens, &Device::Cpu)?;
    let (mut times, mut forward, mut backward, mut optimize) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // As the trainer does: each step reuses the last one's buffers.
    let _buffers = ScratchScope::enter();
    for run in 0..shape.warmup + shape.runs {
        let t0 = Instant::now();
        let logits = setup.model.forward(&setup.inputs, &mut Mode::Train(&mut rng))?;
        let loss = setup.model.loss(&logits, &positions, &targets)?;
        let _ = loss.to_scalar::<f32>()?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        let norm = optimizer.grad_norm(&grads)?;
        optimizer.step(&grads, 1e-5, 1.0 / norm.max(1.0))?;
        let t3 = Instant::now();
        if run >= shape.warmup {
            times.push((t3 - t0).as_secs_f64());
            forward.push((t1 - t0).as_secs_f64());
            backward.push((t2 - t1).as_secs_f64());
            optimize.push((t3 - t2).as_secs_f64());
        }
    }
    Ok(json!({
        "workload": "train-step", "precision": shape.precision, "batch": shape.batch, "len": shape.len, "load_s": setup.load_s, "times_s": times,
        "lora_r": shape.lora_r, "trainable": setup.model.params().trainable_count(),
        "phases_s": { "forward": forward, "backward": backward, "optimizer": optimize },
    }))
}

/// The process's peak resident set size (Linux `VmHWM`), if known.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

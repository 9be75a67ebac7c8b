//! `ferrotune train`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use ferrotune_data::Task;
use ferrotune_model::Pooling;
use ferrotune_train::{Batching, Schedule, TrainOptions, TrainRequest};
use serde::Deserialize;

/// Options of `ferrotune train`; each may also come from `--config`, and a
/// flag given on the command line wins over the file.
#[derive(Args)]
pub struct TrainArgs {
    /// Pretrained model folder (config.json, model.safetensors, tokenizer).
    #[arg(long)]
    model: Option<PathBuf>,
    /// What to learn: ner (tags per word), classify (one class per text),
    /// multilabel (classes per text), regression (a number per text) [default: ner].
    #[arg(long, value_parser = parse_task)]
    task: Option<Task>,
    /// Sequence tasks: cls (BERT's pooler over [CLS], as transformers) or
    /// mean (mean of token states; ferrotune only) [default: cls].
    #[arg(long, value_parser = parse_pooling)]
    pooling: Option<Pooling>,
    /// Training data. ner: CoNLL (token, tag per line) or JSONL {"tokens", "tags"};
    /// other tasks: TSV/CSV with a header (text,label or text_a,text_b,label) or JSONL.
    #[arg(long)]
    train: Option<PathBuf>,
    /// Dev data used to keep the best epoch and stop early.
    #[arg(long)]
    dev: Option<PathBuf>,
    /// Output folder for the model, metrics.jsonl and checkpoints.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Passes over the training data [default: 4].
    #[arg(long)]
    epochs: Option<usize>,
    /// Sentences (windows) per step [default: 16].
    #[arg(long)]
    batch_size: Option<usize>,
    /// bucketed (similar lengths together: less padding) or random [default: bucketed].
    #[arg(long)]
    batching: Option<Batching>,
    /// Peak learning rate [default: 1e-4].
    #[arg(long)]
    lr: Option<f64>,
    /// Maximum tokens per window; longer sentences are split [default: 128].
    #[arg(long)]
    max_len: Option<usize>,
    /// Fraction of steps for linear warmup [default: 0.1].
    #[arg(long)]
    warmup_ratio: Option<f64>,
    /// Learning rate after warmup: linear (decay to 0) or constant [default: linear].
    #[arg(long)]
    schedule: Option<Schedule>,
    /// AdamW weight decay, not applied to biases and LayerNorm [default: 0.01].
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Clip the gradient norm to this; 0 disables [default: 1.0].
    #[arg(long)]
    max_grad_norm: Option<f64>,
    /// Random seed [default: 42].
    #[arg(long)]
    seed: Option<u64>,
    /// Stop after this many epochs without dev gain; 0 disables [default: 2].
    #[arg(long)]
    patience: Option<usize>,
    /// Threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Device: cpu, or cuda / cuda:N with the `cuda` feature [default: cpu].
    #[arg(long)]
    device: Option<String>,
    /// Continue from the checkpoint in the output folder.
    #[arg(long)]
    resume: bool,
    /// TOML file with any of the options above (snake_case keys).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The `--config` file: every option, all optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    model: Option<PathBuf>,
    task: Option<Task>,
    pooling: Option<Pooling>,
    train: Option<PathBuf>,
    dev: Option<PathBuf>,
    output: Option<PathBuf>,
    epochs: Option<usize>,
    batch_size: Option<usize>,
    batching: Option<Batching>,
    lr: Option<f64>,
    max_len: Option<usize>,
    warmup_ratio: Option<f64>,
    schedule: Option<Schedule>,
    weight_decay: Option<f64>,
    max_grad_norm: Option<f64>,
    seed: Option<u64>,
    patience: Option<usize>,
    threads: Option<usize>,
    device: Option<String>,
    resume: Option<bool>,
}

/// Parses `--task`.
pub fn parse_task(name: &str) -> Result<Task, String> {
    Task::from_name(name).ok_or_else(|| format!("'{name}': expected ner, classify, multilabel or regression"))
}

fn parse_pooling(name: &str) -> Result<Pooling, String> {
    Pooling::from_name(name).ok_or_else(|| format!("'{name}': expected cls or mean"))
}

fn read_config(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Runs `ferrotune train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => read_config(path)?,
        None => ConfigFile::default(),
    };
    let d = TrainOptions::default();
    let options = TrainOptions {
        task: args.task.or(file.task).unwrap_or(d.task),
        pooling: args.pooling.or(file.pooling).unwrap_or(d.pooling),
        epochs: args.epochs.or(file.epochs).unwrap_or(d.epochs),
        batch_size: args.batch_size.or(file.batch_size).unwrap_or(d.batch_size),
        batching: args.batching.or(file.batching).unwrap_or(d.batching),
        lr: args.lr.or(file.lr).unwrap_or(d.lr),
        max_len: args.max_len.or(file.max_len).unwrap_or(d.max_len),
        warmup_ratio: args.warmup_ratio.or(file.warmup_ratio).unwrap_or(d.warmup_ratio),
        schedule: args.schedule.or(file.schedule).unwrap_or(d.schedule),
        weight_decay: args.weight_decay.or(file.weight_decay).unwrap_or(d.weight_decay),
        max_grad_norm: args.max_grad_norm.or(file.max_grad_norm).unwrap_or(d.max_grad_norm),
        seed: args.seed.or(file.seed).unwrap_or(d.seed),
        patience: args.patience.or(file.patience).unwrap_or(d.patience),
        eval_batch_size: d.eval_batch_size,
    };
    let required = |flag: Option<PathBuf>, from_file: Option<PathBuf>, name: &str| {
        flag.or(from_file).with_context(|| format!("--{name} is required (as a flag or in --config)"))
    };
    let model = required(args.model, file.model, "model")?;
    let train = required(args.train, file.train, "train")?;
    let output = required(args.output, file.output, "output")?;
    let dev = args.dev.or(file.dev);
    crate::runtime::init(args.threads.or(file.threads))?;
    let device = ferrotune_model::device_from_name(args.device.or(file.device).as_deref().unwrap_or("cpu"))?;
    let summary = ferrotune_train::train(&TrainRequest {
        model_dir: &model,
        train: &train,
        dev: dev.as_deref(),
        output: &output,
        options,
        resume: args.resume || file.resume.unwrap_or(false),
        device,
        stop_after: None,
    })?;
    match summary.best_dev_score {
        Some(score) => eprintln!(
            "done: best epoch {} (dev score {score:.4}) saved to {}; {:.1} examples/s",
            summary.best_epoch,
            summary.output.display(),
            summary.sentences_per_second
        ),
        None => eprintln!(
            "done: epoch {} saved to {}; {:.1} examples/s",
            summary.best_epoch,
            summary.output.display(),
            summary.sentences_per_second
        ),
    }
    Ok(())
}

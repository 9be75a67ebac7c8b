//! `ferrotune quantize`: a compact copy of a fine-tuned folder with its
//! weight matrices in int8 or bf16, refused when it loses too much on a
//! labelled file.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ferrotune_infer::{FineTuned, RunSettings};
use ferrotune_model::quant::{save_quantized, Precision};

use crate::UsageError;

#[derive(Args)]
pub struct QuantizeArgs {
    /// Fine-tuned fp32 model folder.
    #[arg(long)]
    model: PathBuf,
    /// Output folder (config.json with quantization_config, model.safetensors, tokenizer).
    #[arg(long)]
    output: PathBuf,
    /// int8 (one scale per output channel) or bf16.
    #[arg(long, value_enum, default_value_t = Precision::Int8)]
    precision: Precision,
    /// Labelled file to score the fp32 and the quantized model on.
    #[arg(long)]
    check: Option<PathBuf>,
    /// Largest drop of the score (entity micro F1, macro F1, ... in points)
    /// allowed with --check.
    #[arg(long, default_value_t = 0.5)]
    max_drop: f64,
    /// Keep tensors whose name contains this in fp32 (repeatable), e.g.
    /// `layer.5.output.dense`.
    #[arg(long)]
    keep_fp32: Vec<String>,
    #[command(flatten)]
    inference: crate::predict::InferenceArgs,
}

/// Runs `ferrotune quantize`.
pub fn run(args: QuantizeArgs) -> anyhow::Result<()> {
    if args.precision == Precision::Fp32 {
        return Err(UsageError("--precision: quantize writes int8 or bf16".into()).into());
    }
    if !(args.max_drop >= 0.0 && args.max_drop.is_finite()) {
        return Err(UsageError::invalid_option("max_drop", "max_drop must be a number of at least 0").into());
    }
    let model = &ferrotune_model::model_folder(&args.model);
    if args.output == args.model || &args.output == model {
        return Err(UsageError("--output must differ from --model".into()).into());
    }
    // Written beside the target first: with --check, the folder is scored
    // as it will be loaded, and it replaces the target only if it passes.
    let staging = args.output.with_extension("quantizing");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    }
    let written = save_quantized(model, &staging, args.precision, &args.keep_fp32)?;
    ferrotune_text::copy_tokenizer_files(model, &staging)
        .with_context(|| format!("copying the tokenizer into {}", staging.display()))?;
    if let Some(data) = &args.check {
        let checked = check(&args, &staging, data);
        if checked.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        checked?;
    }
    ferrotune_data::atomic::replace_dir(&staging, &args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let fp32_bytes = std::fs::metadata(model.join("model.safetensors")).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "wrote {} ({} tensors in {}, {} kept in fp32): weights {:.1} MB, {:.2}x the fp32 file",
        args.output.display(),
        written.config.weights.len(),
        args.precision,
        written.config.kept_fp32.len(),
        written.weight_bytes as f64 / 1e6,
        written.weight_bytes as f64 / fp32_bytes.max(1) as f64
    );
    Ok(())
}

/// Scores the fp32 model and the quantized folder on `data`; an error when
/// the drop is larger than `--max-drop`.
fn check(args: &QuantizeArgs, quantized_dir: &std::path::Path, data: &std::path::Path) -> anyhow::Result<()> {
    let (settings, device) = (args.inference.settings()?, args.inference.init()?);
    let score = |dir: &std::path::Path, precision| -> anyhow::Result<f64> {
        let settings = RunSettings { precision: Some(precision), ..settings };
        Ok(FineTuned::load(dir, settings, &device)?.evaluate(data)?.report.score() * 100.0)
    };
    let (fp32, quantized) = (score(&args.model, Precision::Fp32)?, score(quantized_dir, args.precision)?);
    let drop = fp32 - quantized;
    eprintln!("score on {}: fp32 {fp32:.2}, {} {quantized:.2} (drop {drop:.2} points)", data.display(), args.precision);
    anyhow::ensure!(
        drop <= args.max_drop,
        "{} loses {drop:.2} points on {} (fp32 {fp32:.2}, {} {quantized:.2}), more than --max-drop {}; nothing written",
        args.precision,
        data.display(),
        args.precision,
        args.max_drop
    );
    Ok(())
}

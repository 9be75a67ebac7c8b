//! `ferrotune merge`: a LoRA adapter folded into its base, written as a
//! plain Hugging Face folder (`BertForTokenClassification` or
//! `BertForSequenceClassification`) with the same outputs.

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Device;
use clap::Args;
use ferrotune_data::Task;
use ferrotune_model::lora::{AdapterFolder, BaseWeights, PeftTaskType};
use ferrotune_model::sentence::SentenceEncoder;
use ferrotune_model::{model_folder, BertConfig, SequenceClassifier, TokenClassifier};

use crate::UsageError;

#[derive(Args)]
pub struct MergeArgs {
    /// The base model folder the adapter was trained on.
    #[arg(long)]
    model: PathBuf,
    /// The LoRA adapter folder (PEFT's layout, with a config.json naming its labels).
    #[arg(long)]
    adapter: PathBuf,
    /// Output folder: config.json, model.safetensors (W + alpha/r · B A), tokenizer files.
    #[arg(long)]
    output: PathBuf,
    /// Threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
}

/// Runs `ferrotune merge`.
pub fn run(args: MergeArgs) -> anyhow::Result<()> {
    crate::runtime::init(args.threads, crate::runtime::FreedMemory::Keep)?;
    let (base, adapter_dir) = (model_folder(&args.model), model_folder(&args.adapter));
    if args.output == base || args.output == adapter_dir {
        return Err(UsageError("--output must differ from --model and --adapter".into()).into());
    }
    let adapter = AdapterFolder::read(&adapter_dir)?;
    let device = Device::Cpu;
    if adapter.task_type == Some(PeftTaskType::FeatureExtraction) {
        SentenceEncoder::load_with_adapter(&base, &adapter, None, &device)?.merged()?.save_pretrained(&args.output)?;
    } else {
        merge_head(&base, &adapter, &args.output, &device)?;
    }
    ferrotune_text::copy_tokenizer_files(&base, &args.output)
        .with_context(|| format!("copying the tokenizer into {}", args.output.display()))?;
    let s = &adapter.settings;
    eprintln!(
        "merged {} (r {}, alpha {}, {}) into {}: {}",
        adapter_dir.display(),
        s.rank,
        s.alpha,
        ferrotune_model::lora::LoraTarget::join(&s.targets),
        base.display(),
        args.output.display()
    );
    Ok(())
}

/// Merges a token- or sequence-classification adapter (its `config.json`
/// names the head) and writes the `BertFor*` folder.
fn merge_head(base: &Path, adapter: &AdapterFolder, output: &Path, device: &Device) -> anyhow::Result<()> {
    let base = BaseWeights::load(base, device)?;
    match BertConfig::fine_tuned_task(&adapter.dir)? {
        Task::Ner => TokenClassifier::on_base(base, adapter)?.merged()?.save_pretrained(output)?,
        Task::Sequence(_) => SequenceClassifier::on_base(base, adapter)?.merged()?.save_pretrained(output)?,
        Task::Retrieval => anyhow::bail!("{}: task_type FEATURE_EXTRACTION is missing", adapter.dir.display()),
    }
    Ok(())
}

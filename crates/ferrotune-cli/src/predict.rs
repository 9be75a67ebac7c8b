//! `ferrotune predict`, and the options of every command that runs a
//! fine-tuned model.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use ferrotune_data::{read_inputs, DataFormat, NumberedInput, TextInput};
use ferrotune_infer::{FineTuned, InferError, RunSettings};
use ferrotune_model::lora::AdapterFolder;
use ferrotune_model::quant::Precision;

use crate::UsageError;

/// Options of commands that run a fine-tuned model.
#[derive(Args)]
pub struct InferenceArgs {
    /// Maximum tokens per window; longer texts are split into overlapping
    /// windows (NER) or cut (sequence models).
    #[arg(long, default_value_t = RunSettings::default().max_len)]
    pub max_len: usize,
    /// Windows per forward pass.
    #[arg(long, default_value_t = RunSettings::default().batch_size)]
    pub batch_size: usize,
    /// Padded tokens per forward pass (windows × the longest of them), at
    /// least --max-len: bounds memory whatever the lengths.
    #[arg(long, default_value_t = RunSettings::default().max_batch_tokens)]
    pub max_batch_tokens: usize,
    /// Multilabel models: probability from which a class applies.
    #[arg(long, default_value_t = RunSettings::default().threshold)]
    pub threshold: f32,
    /// Threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Device: cpu, or cuda / cuda:N with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Precision of the linear layers: fp32, bf16 (bf16 products, fp32
    /// sums) or int8 (dynamic quantization).
    /// [default: fp32, or the precision a quantized folder was saved in]
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
}

impl InferenceArgs {
    /// The settings, checked.
    pub fn settings(&self) -> anyhow::Result<RunSettings> {
        let settings = RunSettings {
            max_len: self.max_len,
            batch_size: self.batch_size,
            max_batch_tokens: self.max_batch_tokens,
            threshold: self.threshold,
            precision: self.precision,
        };
        if let Err(InferError::InvalidSetting { field, expected }) = settings.validate() {
            return Err(UsageError::invalid_option(field, format!("{field} must be {expected}")).into());
        }
        Ok(settings)
    }

    /// Sizes the thread pool (once per process) and opens the device.
    pub fn init(&self) -> anyhow::Result<candle_core::Device> {
        crate::runtime::init(self.threads, crate::runtime::FreedMemory::ReturnSoon)?;
        Ok(ferrotune_model::device_from_name(&self.device)?)
    }

    /// Checks the settings, sizes the thread pool, opens the device and
    /// loads a fine-tuned model folder of any task, or a base folder with
    /// a LoRA adapter on it.
    pub fn load(&self, dir: &Path, adapter: Option<&Path>) -> anyhow::Result<FineTuned> {
        let settings = self.settings()?;
        let device = self.init()?;
        let model = match adapter {
            Some(adapter) => FineTuned::load_with_adapter(dir, adapter, settings, &device)?,
            None => FineTuned::load(dir, settings, &device)?,
        };
        crate::runtime::return_freed_memory();
        Ok(model)
    }
}

/// A LoRA adapter to run on `--model`.
#[derive(Args)]
pub struct AdapterArg {
    /// A LoRA adapter folder (PEFT's adapter_config.json and
    /// adapter_model.safetensors, with a config.json naming its labels) to
    /// run on --model, which is then the base model it was trained on; without --model,
    /// on the base its base_model_name_or_path names, if that is a local folder.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
}

impl AdapterArg {
    /// The model folder: `model` (`--model`), or else the local base the
    /// adapter names.
    pub fn model_or_base(&self, model: Option<&Path>) -> anyhow::Result<PathBuf> {
        if let Some(model) = model {
            return Ok(model.to_path_buf());
        }
        let adapter = self.adapter.as_deref().ok_or_else(|| UsageError("--model is required".into()))?;
        local_base(adapter)
    }
}

/// The base model folder an adapter's `base_model_name_or_path` names, if
/// that is a local folder (else a usage error asking for `--model`).
pub fn local_base(adapter: &Path) -> anyhow::Result<PathBuf> {
    let folder = AdapterFolder::read(&ferrotune_model::model_folder(adapter))?;
    let config = folder.dir.join(ferrotune_model::lora::ADAPTER_CONFIG);
    match folder.base_model.map(PathBuf::from) {
        Some(base) if base.join("config.json").is_file() => Ok(base),
        Some(base) => Err(UsageError(format!(
            "{}: base_model_name_or_path '{}' is not a local model folder; give the base with --model",
            config.display(),
            base.display()
        ))
        .into()),
        None => {
            Err(UsageError(format!("{}: no base_model_name_or_path; give the base with --model", config.display()))
                .into())
        }
    }
}

#[derive(Args)]
pub struct PredictArgs {
    /// Fine-tuned model folder (with --adapter: the base model).
    #[arg(long, required_unless_present = "adapter")]
    model: Option<PathBuf>,
    #[command(flatten)]
    adapter: AdapterArg,
    /// Input: one text per line (.txt), JSONL {"text": ...} / {"tokens": [...]}
    /// / {"text_a", "text_b"} (.jsonl; pairs: sequence models), or a .tsv/.csv
    /// file with a header [default: stdin].
    #[arg(long)]
    input: Option<PathBuf>,
    /// Input format: text, jsonl, tsv or csv [default: from the extension; text for stdin].
    #[arg(long, value_parser = parse_format)]
    format: Option<DataFormat>,
    /// Output JSONL [default: stdout].
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    inference: InferenceArgs,
}

/// A `--format` name.
pub fn parse_format(name: &str) -> Result<DataFormat, String> {
    DataFormat::from_name(name).ok_or_else(|| format!("expected one of {}", DataFormat::NAMES.join(", ")))
}

/// Inputs run per round: bounds memory on large inputs.
const CHUNK_LINES: usize = 1024;

/// Runs `ferrotune predict`: reads inputs as they come, runs them in chunks
/// and writes one JSON line per input, in order.
pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let dir = args.adapter.model_or_base(args.model.as_deref())?;
    let model = args.inference.load(&dir, args.adapter.adapter.as_deref())?;
    let load_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut reader = read_inputs(args.input.as_deref(), args.format).map_err(|e| match e {
        e @ ferrotune_data::DataError::UnsupportedFormat { .. } if args.format.is_some() => {
            anyhow::Error::from(UsageError(format!("--format: {e}")))
        }
        e => e.into(),
    })?;
    let source = reader.name().display().to_string();
    let mut writer: Box<dyn Write> = match &args.output {
        Some(path) => {
            Box::new(BufWriter::new(std::fs::File::create(path).with_context(|| format!("{}", path.display()))?))
        }
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let (mut count, mut long_inputs) = (0, 0);
    loop {
        let chunk: Vec<NumberedInput> = reader.by_ref().take(CHUNK_LINES).collect::<Result<_, _>>()?;
        if chunk.is_empty() {
            break;
        }
        let inputs: Vec<TextInput> = chunk.iter().map(|n| n.input.clone()).collect();
        let outputs = model.run(&inputs).map_err(|e| match e {
            InferError::UnsupportedInput { index, .. } => anyhow::anyhow!("{source}:{}: {e}", chunk[index].line),
            e => e.into(),
        })?;
        for record in &outputs.records {
            serde_json::to_writer(&mut writer, record)?;
            writer.write_all(b"\n")?;
        }
        count += chunk.len();
        long_inputs += outputs.long_inputs;
    }
    writer.flush()?;
    let task = model.task();
    if long_inputs > 0 {
        eprintln!(
            "{long_inputs} {} longer than max-len {} were {}",
            task.example_noun(),
            args.inference.max_len,
            task.long_input_handling()
        );
    }
    let seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "ran {count} {} in {seconds:.2} s ({:.1}/s); model loaded in {load_s:.2} s",
        task.example_noun(),
        count as f64 / seconds.max(1e-9)
    );
    Ok(())
}

//! `ferrotune predict`.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ferrotune_data::{read_texts, Task};
use ferrotune_infer::{Prediction, PredictionInput, Tagger, TextClassifier};
use ferrotune_model::BertConfig;

#[derive(Args)]
pub struct PredictArgs {
    /// Fine-tuned model folder.
    #[arg(long)]
    model: PathBuf,
    /// Input: one text per line, or JSONL {"text": ...} / {"tokens": [...]}
    /// (sequence models: also {"text_a", "text_b"}, or a .tsv/.csv file with
    /// a header) [default: stdin].
    #[arg(long)]
    input: Option<PathBuf>,
    /// Output JSONL [default: stdout].
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    inference: InferenceArgs,
}

/// Options of commands that run a fine-tuned model.
#[derive(Args)]
pub struct InferenceArgs {
    /// Maximum tokens per window; longer texts are split into overlapping windows.
    #[arg(long, default_value_t = 128)]
    pub max_len: usize,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Device: cpu, or cuda / cuda:N with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl InferenceArgs {
    /// Sizes the thread pool and opens the device.
    pub fn init(&self) -> anyhow::Result<candle_core::Device> {
        crate::runtime::init(self.threads)?;
        Ok(ferrotune_model::device_from_name(&self.device)?)
    }

    /// Sizes the thread pool and loads an NER model folder.
    pub fn load(&self, model: &std::path::Path) -> anyhow::Result<Tagger> {
        let device = self.init()?;
        Ok(Tagger::load(model, self.max_len, self.batch_size, &device)?)
    }
}

/// The task a fine-tuned model folder was trained for (its `config.json`).
pub fn model_task(dir: &std::path::Path) -> anyhow::Result<Task> {
    Ok(BertConfig::fine_tuned_task(dir)?)
}

/// Lines tagged per round: bounds memory on large inputs.
const CHUNK_LINES: usize = 1024;

/// Runs `ferrotune predict` with the task the model was trained for.
pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    match model_task(&args.model)? {
        Task::Ner => run_ner(args),
        _ => run_texts(args),
    }
}

fn open_output(output: &Option<PathBuf>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match output {
        Some(path) => Box::new(BufWriter::new(std::fs::File::create(path).with_context(|| format!("{}", path.display()))?)),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    })
}

/// One input of a sequence model: a text or a pair.
type TextInput = (String, Option<String>);

/// Reads sequence-model inputs: a .tsv/.csv/.jsonl file through the data
/// reader, otherwise lines of plain text or JSON objects.
fn read_text_inputs(input: &Option<PathBuf>) -> anyhow::Result<Vec<TextInput>> {
    let is_table = input.as_ref().and_then(|p| p.extension()).and_then(|e| e.to_str()).is_some_and(|e| {
        matches!(e.to_ascii_lowercase().as_str(), "tsv" | "csv" | "jsonl")
    });
    if let (true, Some(path)) = (is_table, input) {
        return Ok(read_texts(path, false)?.into_iter().map(|e| (e.text_a, e.text_b)).collect());
    }
    let (reader, source): (Box<dyn BufRead>, String) = match input {
        Some(path) => (
            Box::new(BufReader::new(std::fs::File::open(path).with_context(|| format!("{}", path.display()))?)),
            path.display().to_string(),
        ),
        None => (Box::new(std::io::stdin().lock()), "<stdin>".to_string()),
    };
    let mut texts = Vec::new();
    for (i, line) in reader.split(b'\n').enumerate() {
        let bytes = line.with_context(|| format!("reading {source}"))?;
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(&bytes);
        let text = std::str::from_utf8(bytes)
            .map_err(|e| anyhow::anyhow!("{source}:{}: invalid UTF-8 at byte {}", i + 1, e.valid_up_to()))?;
        if text.trim_start().starts_with('{') {
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| anyhow::anyhow!("{source}:{}: {e}", i + 1))?;
            let field = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_string);
            match (field("text"), field("text_a"), field("text_b")) {
                (Some(t), None, None) => texts.push((t, None)),
                (None, Some(a), Some(b)) => texts.push((a, Some(b))),
                _ => anyhow::bail!("{source}:{}: expected a \"text\" key, or \"text_a\" and \"text_b\" keys", i + 1),
            }
        } else {
            texts.push((text.to_string(), None));
        }
    }
    Ok(texts)
}

fn run_texts(args: PredictArgs) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    let device = args.inference.init()?;
    let classifier = TextClassifier::load(&args.model, args.inference.max_len, args.inference.batch_size, &device)?;
    let load_s = start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    let inputs = read_text_inputs(&args.input)?;
    let mut writer = open_output(&args.output)?;
    for chunk in inputs.chunks(CHUNK_LINES) {
        let texts: Vec<(&str, Option<&str>)> = chunk.iter().map(|(a, b)| (a.as_str(), b.as_deref())).collect();
        let scores = classifier.score(&texts)?;
        for ((a, b), row) in texts.iter().zip(&scores) {
            serde_json::to_writer(&mut *writer, &classifier.record(a, *b, row))?;
            writer.write_all(b"\n")?;
        }
    }
    writer.flush()?;
    let tag_s = start.elapsed().as_secs_f64();
    eprintln!(
        "scored {} texts in {tag_s:.2} s ({:.1} texts/s); model loaded in {load_s:.2} s",
        inputs.len(),
        inputs.len() as f64 / tag_s.max(1e-9)
    );
    Ok(())
}

fn run_ner(args: PredictArgs) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    let tagger = args.inference.load(&args.model)?;
    let load_s = start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    let mut texts = 0;
    let (reader, source): (Box<dyn BufRead>, String) = match &args.input {
        Some(path) => (
            Box::new(BufReader::new(std::fs::File::open(path).with_context(|| format!("{}", path.display()))?)),
            path.display().to_string(),
        ),
        None => (Box::new(std::io::stdin().lock()), "<stdin>".to_string()),
    };
    let mut writer = open_output(&args.output)?;
    let mut inputs = Vec::new();
    let mut split_total = 0;
    for (i, line) in reader.split(b'\n').enumerate() {
        let bytes = line.with_context(|| format!("reading {source}"))?;
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(&bytes);
        let text = std::str::from_utf8(bytes)
            .map_err(|e| anyhow::anyhow!("{source}:{}: invalid UTF-8 at byte {}", i + 1, e.valid_up_to()))?;
        inputs.push(PredictionInput::parse_line(text, &source, i + 1)?);
        texts += 1;
        if inputs.len() == CHUNK_LINES {
            split_total += write_chunk(&tagger, &inputs, &mut writer)?;
            inputs.clear();
        }
    }
    split_total += write_chunk(&tagger, &inputs, &mut writer)?;
    writer.flush()?;
    if split_total > 0 {
        eprintln!("{split_total} texts longer than max-len {} were split into windows", args.inference.max_len);
    }
    let tag_s = start.elapsed().as_secs_f64();
    eprintln!(
        "tagged {texts} texts in {tag_s:.2} s ({:.1} texts/s); model loaded in {load_s:.2} s",
        texts as f64 / tag_s.max(1e-9)
    );
    Ok(())
}

fn write_chunk(tagger: &Tagger, inputs: &[PredictionInput], writer: &mut dyn Write) -> anyhow::Result<usize> {
    let words: Vec<Vec<String>> = inputs.iter().map(|i| i.word_texts()).collect();
    let (split, predictions) = tagger.tag(&words)?;
    for (input, predicted) in inputs.iter().zip(&predictions) {
        let record = Prediction::new(input, predicted, &tagger.model.labels);
        serde_json::to_writer(&mut *writer, &record)?;
        writer.write_all(b"\n")?;
    }
    Ok(split)
}

//! `ferrotune predict`.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ferrotune_infer::{Prediction, PredictionInput, Tagger};

#[derive(Args)]
pub struct PredictArgs {
    /// Fine-tuned model folder.
    #[arg(long)]
    model: PathBuf,
    /// Input: one text per line, or JSONL {"text": ...} / {"tokens": [...]} [default: stdin].
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
}

impl InferenceArgs {
    /// Sizes the thread pool and loads the model folder.
    pub fn load(&self, model: &std::path::Path) -> anyhow::Result<Tagger> {
        crate::runtime::init(self.threads)?;
        Ok(Tagger::load(model, self.max_len, self.batch_size)?)
    }
}

/// Lines tagged per round: bounds memory on large inputs.
const CHUNK_LINES: usize = 1024;

/// Runs `ferrotune predict`.
pub fn run(args: PredictArgs) -> anyhow::Result<()> {
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
    let mut writer: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("{}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
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

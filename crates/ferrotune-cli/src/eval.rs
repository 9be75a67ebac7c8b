//! `ferrotune eval`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ferrotune_data::{read_tagged, LabelSet};
use ferrotune_eval::Report;
use ferrotune_infer::Tagger;

#[derive(Args)]
pub struct EvalArgs {
    /// Fine-tuned model folder.
    #[arg(long)]
    model: PathBuf,
    /// Labelled data: CoNLL or JSONL.
    #[arg(long)]
    data: PathBuf,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Maximum tokens per window; longer sentences are split.
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
}

/// Runs `ferrotune eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    crate::threads::init(args.threads)?;
    let tagger = Tagger::load(&args.model, args.max_len, args.batch_size)?;
    let sentences = read_tagged(&args.data)?;
    LabelSet::from_labels(tagger.model.labels.clone())?.encode(&sentences)?;
    let words: Vec<Vec<String>> = sentences.iter().map(|s| s.tokens.clone()).collect();
    let started = std::time::Instant::now();
    let (split, predictions) = tagger.tag(&words)?;
    let seconds = started.elapsed().as_secs_f64();
    let predicted: Vec<Vec<String>> = predictions.iter().map(|p| tagger.tag_names(p)).collect();
    let gold: Vec<Vec<String>> = sentences.into_iter().map(|s| s.tags).collect();
    let report = Report::compute(&gold, &predicted);
    print!("{}", report.to_table());
    eprintln!(
        "{} sentences in {seconds:.1}s ({:.1} sentences/s); {split} longer than max-len {} were split into windows",
        gold.len(),
        gold.len() as f64 / seconds,
        args.max_len
    );
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        ferrotune_data::atomic::write_bytes_atomic(path, json.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

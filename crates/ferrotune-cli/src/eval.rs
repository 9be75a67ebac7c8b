//! `ferrotune eval`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ferrotune_data::{read_tagged, LabelSet};
use ferrotune_eval::Report;

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
    #[command(flatten)]
    inference: crate::predict::InferenceArgs,
}

/// Runs `ferrotune eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let tagger = args.inference.load(&args.model)?;
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
        args.inference.max_len
    );
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        ferrotune_data::atomic::write_bytes_atomic(path, json.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

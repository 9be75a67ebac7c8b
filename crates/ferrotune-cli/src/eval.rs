//! `ferrotune eval`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use ferrotune_eval::{confusion_svg, TaskReport, TextReport};

#[derive(Args)]
pub struct EvalArgs {
    /// Fine-tuned model folder.
    #[arg(long)]
    model: PathBuf,
    /// Labelled data. NER models: CoNLL or JSONL; sequence models: TSV, CSV
    /// or JSONL with text (or text_a, text_b) and label.
    #[arg(long)]
    data: PathBuf,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Classification models: also draw the confusion matrix to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    #[command(flatten)]
    inference: crate::predict::InferenceArgs,
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    ferrotune_data::atomic::write_bytes_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Runs `ferrotune eval` with the task the model was trained for.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let model = args.inference.load(&args.model)?;
    let evaluation = model.evaluate(&args.data)?;
    let report = &evaluation.report;
    let confusion = match (&args.plot, report) {
        (Some(path), TaskReport::Text(TextReport::Classes(classes))) => Some((path, confusion_svg(classes))),
        (Some(_), _) => anyhow::bail!("--plot draws a confusion matrix: classification models only"),
        (None, _) => None,
    };
    print!("{}", report.to_table());
    let (task, seconds, n) = (model.task(), evaluation.seconds, evaluation.examples);
    eprintln!(
        "{n} {noun} in {seconds:.1}s ({:.1} {noun}/s); {} longer than max-len {} were {}",
        n as f64 / seconds.max(1e-9),
        evaluation.long_inputs,
        args.inference.max_len,
        task.long_input_handling(),
        noun = task.example_noun(),
    );
    if let Some(path) = &args.json {
        write_file(path, serde_json::to_string_pretty(report)?.as_bytes())?;
    }
    if let Some((path, svg)) = confusion {
        write_file(path, svg.as_bytes())?;
    }
    Ok(())
}

//! `ferrotune eval`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ferrotune_data::{encode_target, read_tagged, read_texts, LabelSet, Task};
use ferrotune_eval::{confusion_svg, Report, TextReport};
use ferrotune_infer::TextClassifier;
use ferrotune_train::sequence_report;

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
    /// Multilabel models: probability from which a class applies.
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    #[command(flatten)]
    inference: crate::predict::InferenceArgs,
}

/// Runs `ferrotune eval` with the task the model was trained for.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    match crate::predict::model_task(&args.model)? {
        Task::Ner => run_ner(args),
        _ => run_texts(args),
    }
}

fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(value)?;
    ferrotune_data::atomic::write_bytes_atomic(path, json.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

fn run_texts(args: EvalArgs) -> anyhow::Result<()> {
    let device = args.inference.init()?;
    let mut classifier = TextClassifier::load(&args.model, args.inference.max_len, args.inference.batch_size, &device)?;
    classifier.threshold = args.threshold;
    let (task, labels) = (classifier.model.task, classifier.model.labels.clone());
    let examples = read_texts(&args.data, true)?;
    let gold = examples.iter().map(|e| encode_target(task, &labels, e)).collect::<Result<Vec<_>, _>>()?;
    let texts: Vec<(&str, Option<&str>)> = examples.iter().map(|e| (e.text_a.as_str(), e.text_b.as_deref())).collect();
    let started = std::time::Instant::now();
    let scores = classifier.score(&texts)?;
    let seconds = started.elapsed().as_secs_f64();
    let report = sequence_report(&labels, task, &gold, &scores, args.threshold);
    print!("{}", report.to_table());
    eprintln!("{} texts in {seconds:.1}s ({:.1} texts/s)", texts.len(), texts.len() as f64 / seconds);
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    match (&args.plot, &report) {
        (Some(path), TextReport::Classes(classes)) => {
            ferrotune_data::atomic::write_bytes_atomic(path, confusion_svg(classes).as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        (Some(_), _) => anyhow::bail!("--plot draws a confusion matrix: classification models only"),
        (None, _) => {}
    }
    Ok(())
}

fn run_ner(args: EvalArgs) -> anyhow::Result<()> {
    if args.plot.is_some() {
        anyhow::bail!("--plot draws a confusion matrix: classification models only");
    }
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
        write_json(path, &report)?;
    }
    Ok(())
}

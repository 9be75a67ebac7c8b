//! `ferrotune eval`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{ArgMatches, Args};
use ferrotune_data::Task;
use ferrotune_eval::{confusion_svg, TaskReport, TextReport};
use ferrotune_infer::RetrievalSet;

use crate::UsageError;

#[derive(Args)]
pub struct EvalArgs {
    /// Fine-tuned model folder (retrieval: a sentence-transformers folder; with --adapter: the base).
    #[arg(long, required_unless_present = "adapter")]
    model: Option<PathBuf>,
    /// retrieval: score a sentence-embedding model with --queries against
    /// --corpus [default: the task the model was fine-tuned for, with --data].
    #[arg(long, value_enum)]
    task: Option<Task>,
    /// Labelled data. NER models: CoNLL or JSONL; sequence models: TSV, CSV
    /// or JSONL with text (or text_a, text_b) and label.
    #[arg(long, required_unless_present = "corpus")]
    data: Option<PathBuf>,
    /// Retrieval: the corpus (TSV/CSV/JSONL: text, and id or the row number,
    /// optional label).
    #[arg(long, requires = "queries")]
    corpus: Option<PathBuf>,
    /// Retrieval: the queries (query or text, and relevant ids separated by |
    /// or a label: every corpus entry with it is relevant).
    #[arg(long, requires = "corpus")]
    queries: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Classification models: also draw the confusion matrix to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Retrieval: pooling and normalisation (as `embed`).
    #[command(flatten)]
    pooling: crate::embed::PoolingArgs,
    #[command(flatten)]
    adapter: crate::predict::AdapterArg,
    #[command(flatten)]
    inference: crate::predict::InferenceArgs,
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    ferrotune_data::atomic::write_bytes_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Runs `ferrotune eval` with the task the model was trained for, or
/// retrieval.
pub fn run(args: EvalArgs, matches: &ArgMatches) -> anyhow::Result<()> {
    let retrieval = args.task == Some(Task::Retrieval);
    match (&args.data, &args.corpus, &args.queries) {
        (None, Some(corpus), Some(queries)) if retrieval => return run_retrieval(&args, corpus, queries, matches),
        (Some(data), None, None) if !retrieval => return run_labelled(&args, data),
        _ => {}
    }
    Err(UsageError(if retrieval {
        "--task retrieval takes --corpus and --queries (not --data)".into()
    } else {
        "--corpus and --queries go with --task retrieval; other tasks take --data".into()
    })
    .into())
}

/// Embeds the corpus and the queries and scores the rankings.
fn run_retrieval(args: &EvalArgs, corpus: &Path, queries: &Path, matches: &ArgMatches) -> anyhow::Result<()> {
    if args.plot.is_some() {
        anyhow::bail!(UsageError("--plot draws a confusion matrix: classification models only".into()));
    }
    let dir = args.adapter.model_or_base(args.model.as_deref())?;
    let embedder = args.pooling.load(&dir, args.adapter.adapter.as_deref(), &args.inference, matches)?;
    let set = RetrievalSet::read(corpus, queries)?;
    let start = std::time::Instant::now();
    let evaluation = set.evaluate(|texts| embedder.embed(texts))?;
    let seconds = start.elapsed().as_secs_f64();
    print!("{}", evaluation.report.to_table());
    eprintln!(
        "{} texts embedded in {seconds:.1}s ({:.1} texts/s); {} longer than max-len {} were cut",
        evaluation.texts,
        evaluation.texts as f64 / seconds.max(1e-9),
        evaluation.long_inputs,
        embedder.settings().max_len,
    );
    if let Some(path) = &args.json {
        write_file(path, serde_json::to_string_pretty(&evaluation.report)?.as_bytes())?;
    }
    Ok(())
}

/// Scores a fine-tuned model on a labelled file of its task.
fn run_labelled(args: &EvalArgs, data: &Path) -> anyhow::Result<()> {
    let dir = args.adapter.model_or_base(args.model.as_deref())?;
    let model = args.inference.load(&dir, args.adapter.adapter.as_deref())?;
    if let Some(task) = args.task.filter(|&t| t != model.task()) {
        anyhow::bail!(UsageError(format!("--task {task}: the model was fine-tuned for {}", model.task())));
    }
    let evaluation = model.evaluate(data)?;
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

//! `ferrotune`: fine-tune, evaluate, run and serve BERT models.

mod ann;
mod bench;
mod brand;
mod embed;
mod eval;
mod faq;
mod merge;
mod mlflow;
mod monitor;
mod predict;
mod progress;
mod quantize;
mod report;
mod runtime;
mod search;
mod serve;
mod train;

use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Training frees and reallocates large tensors every step; mimalloc reuses
/// them instead of returning pages to the system and faulting them back in.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ferrotune",
    version,
    about = "Fine-tune, evaluate, run and serve BERT models for named entities and text classification; score brand value"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fine-tune a pretrained BERT checkpoint on a labelled file.
    Train(train::TrainArgs),
    /// Score a fine-tuned model on a labelled file (seqeval entity report).
    Eval(eval::EvalArgs),
    /// Tag text with a fine-tuned model, one JSON line per input line.
    Predict(predict::PredictArgs),
    /// Sentence embeddings of texts: JSON lines or a .npy matrix.
    Embed(embed::EmbedArgs),
    /// Write a compact int8 or bf16 copy of a fine-tuned model.
    Quantize(quantize::QuantizeArgs),
    /// Fold a LoRA adapter into its base model: a plain Hugging Face folder.
    Merge(merge::MergeArgs),
    /// Search training options: trials drawn at random or by TPE, pruned on their dev scores (median, ASHA).
    Search(search::SearchArgs),
    /// Training runs as one HTML page: curves, dev scores, options; several runs overlaid.
    Report(report::ReportArgs),
    /// The brand-value scorecard: score, ahp, sensitivity, allocate.
    Brand(brand::BrandArgs),
    /// A FAQ assistant: build an index from a FAQ file, answer questions, hand over when unsure.
    Faq(faq::FaqArgs),
    /// A sentiment monitor: classify a stream, count it in windows per topic, alert on a rise in negative news.
    Monitor(monitor::MonitorArgs),
    /// Serve fine-tuned models over HTTP (JSON), with dynamic batching.
    Serve(serve::ServeArgs),
    /// Time the model's hot paths on this machine (JSON; see scripts/bench.sh).
    Bench(bench::BenchArgs),
}

/// A mistake in how the command was called (an option out of range, a
/// required option missing): exit code 2, like clap's own usage errors.
#[derive(Debug)]
pub struct UsageError(pub String);

impl UsageError {
    /// An out-of-range option, named by its flag: `--max-len: max_len must be ...`.
    pub fn invalid_option(field: &str, error: impl std::fmt::Display) -> Self {
        Self(format!("--{}: {error}", field.replace('_', "-")))
    }
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn run(command: Command, matches: &ArgMatches) -> anyhow::Result<()> {
    match command {
        Command::Train(args) => train::run(args, matches.subcommand_matches("train").expect("train was parsed")),
        Command::Eval(args) => eval::run(args, matches.subcommand_matches("eval").expect("eval was parsed")),
        Command::Predict(args) => predict::run(args),
        Command::Embed(args) => embed::run(args, matches.subcommand_matches("embed").expect("embed was parsed")),
        Command::Quantize(args) => quantize::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Search(args) => search::run(args),
        Command::Report(args) => report::run(args),
        Command::Brand(args) => brand::run(args),
        Command::Faq(args) => faq::run(args),
        Command::Monitor(args) => monitor::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

/// Whether the error is a closed standard output (`ferrotune predict | head`).
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let kind = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| cause.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind));
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// Whether the error is a mistake in how the command was called: a
/// [`UsageError`], a serve option out of range, or a `--max-len` beyond the
/// model's positions.
fn is_usage_error(error: &anyhow::Error) -> bool {
    use ferrotune_assistant::AssistantError;
    use ferrotune_infer::InferError;
    use ferrotune_serve::ServeError;
    let max_len = |e: &InferError| matches!(e, InferError::MaxLenOverPositions { .. });
    let assistant = |e: &AssistantError| match e {
        AssistantError::InvalidOption { .. } => true,
        AssistantError::Infer(e) => max_len(e),
        _ => false,
    };
    error.chain().any(|cause| {
        cause.is::<UsageError>()
            || cause.downcast_ref::<InferError>().is_some_and(max_len)
            || matches!(cause.downcast_ref(), Some(ferrotune_train::TrainError::MaxLenOverPositions { .. }))
            || cause.downcast_ref::<AssistantError>().is_some_and(assistant)
            || match cause.downcast_ref::<ServeError>() {
                Some(ServeError::InvalidOption { .. }) => true,
                Some(ServeError::Infer(e)) => max_len(e),
                Some(ServeError::Assistant(e)) => assistant(e),
                _ => false,
            }
    })
}

/// 0 on success (and when the reader of standard output has gone), 1 on a
/// failure, 2 on a usage error; the error is printed once, here.
fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(cli.command, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if is_usage_error(&error) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

//! `ferrotune`: fine-tune, evaluate, run and serve BERT models.

mod bench;
mod brand;
mod eval;
mod predict;
mod runtime;
mod serve;
mod train;

use clap::{Parser, Subcommand};

/// Training frees and reallocates large tensors every step; mimalloc reuses
/// them instead of returning pages to the system and faulting them back in.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ferrotune", version, about = "Fine-tune, evaluate, run and serve BERT models for named entities and text classification; score brand value")]
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
    /// The brand-value scorecard: score, ahp, sensitivity, allocate.
    Brand(brand::BrandArgs),
    /// Serve fine-tuned models over HTTP (JSON), with dynamic batching.
    Serve(serve::ServeArgs),
    /// Time the model's hot paths on this machine (JSON; see scripts/bench.sh).
    Bench(bench::BenchArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Brand(args) => brand::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Bench(args) => bench::run(args),
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

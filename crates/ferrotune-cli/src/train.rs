//! `ferrotune train`: the run's files and resources here, the training
//! options from `ferrotune_train::TrainOptions` (their one definition);
//! each may also come from `--config`, and a flag given on the command line
//! wins over the file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use ferrotune_train::{TrainError, TrainObserver, TrainOptions, TrainRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::mlflow::MlflowTracker;
use crate::progress::TrainProgress;
use crate::UsageError;

/// What to train from and where to put it; also keys of the `--config` file.
#[derive(Args, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RunArgs {
    /// Pretrained model folder (config.json, model.safetensors, tokenizer).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Training data. ner: CoNLL (token, tag per line) or JSONL {"tokens", "tags"};
    /// retrieval: TSV/CSV/JSONL with query, positive and optionally negative;
    /// other tasks: TSV/CSV with a header (text,label or text_a,text_b,label) or JSONL.
    #[arg(long)]
    train: Option<PathBuf>,
    /// Dev data used to keep the best epoch and stop early (retrieval: queries
    /// with relevant ids or a label, searched in --dev-corpus).
    #[arg(long)]
    dev: Option<PathBuf>,
    /// Retrieval: the corpus (id, text[, label]) the dev queries search.
    #[arg(long)]
    dev_corpus: Option<PathBuf>,
    /// Output folder for the model, metrics.jsonl and checkpoints.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Device: cpu, or cuda / cuda:N with the `cuda` feature [default: cpu].
    #[arg(long)]
    device: Option<String>,
    /// Continue from the checkpoint in the output folder.
    #[arg(long)]
    #[serde(default)]
    resume: bool,
    /// An MLflow tracking server (e.g. http://127.0.0.1:5000): params, metrics per step and epoch,
    /// the model folder as artifacts. A server that does not answer never stops training.
    #[arg(long)]
    mlflow_uri: Option<String>,
    /// The MLflow experiment (made if missing) [default: ferrotune].
    #[arg(long)]
    mlflow_experiment: Option<String>,
    /// After each epoch (its checkpoint written), wait for a line on standard
    /// input holding that epoch's number or a later one before going on; the
    /// end of input lets the run go on. How `ferrotune search` decides
    /// between epochs whether a trial goes on.
    #[arg(long, hide = true)]
    #[serde(skip)]
    epoch_gate: bool,
}

/// Options of `ferrotune train`.
#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    options: TrainOptions,
    /// TOML file with any of the options above (snake_case keys).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The keys of a serialisable struct, as a JSON object.
fn fields(value: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => unreachable!("option structs serialise to objects"),
    }
}

/// Merges the defaults, the `--config` file and the flags given on the
/// command line (in rising precedence), key by key.
fn merge(args: &TrainArgs, matches: &ArgMatches) -> anyhow::Result<(RunArgs, TrainOptions)> {
    let (flag_run, flag_options) = (fields(&args.run), fields(&args.options));
    let (mut run, mut options) = (Map::new(), Map::new());
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let file: toml::Table = toml::from_str(&text).map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
        for (key, value) in file {
            let target = if flag_run.contains_key(&key) {
                &mut run
            } else if flag_options.contains_key(&key) {
                &mut options
            } else {
                return Err(UsageError(format!("{}: unknown option '{key}'", path.display())).into());
            };
            target.insert(key, serde_json::to_value(value)?);
        }
    }
    for (given, target) in [(flag_run, &mut run), (flag_options, &mut options)] {
        for (key, value) in given {
            if matches.value_source(&key) == Some(ValueSource::CommandLine) {
                target.insert(key, value);
            }
        }
    }
    let invalid = |e: serde_json::Error| {
        let source = args.config.as_deref().map_or("options".into(), |p| p.display().to_string());
        UsageError(format!("{source}: {e}"))
    };
    let run: RunArgs = serde_json::from_value(Value::Object(run)).map_err(invalid)?;
    let options: TrainOptions = serde_json::from_value(Value::Object(options)).map_err(invalid)?;
    Ok((run, options))
}

/// The `--config` keys that say what to train from and where (not
/// training options): `model`, `train`, `dev`, `output`, `threads`, ...
pub(crate) fn run_keys() -> Vec<String> {
    fields(&RunArgs::default()).keys().cloned().collect()
}

/// Passes everything on to `inner`, then waits after each epoch for the
/// go-ahead on standard input (`--epoch-gate`).
struct EpochGate<'a, R> {
    inner: &'a mut dyn TrainObserver,
    input: R,
    /// Whether input may still come (false after its end).
    open: bool,
}

impl<R: std::io::BufRead> TrainObserver for EpochGate<'_, R> {
    fn data(&mut self, summary: &ferrotune_train::DataSummary) {
        self.inner.data(summary)
    }
    fn start(&mut self, start: &ferrotune_train::RunStart) {
        self.inner.start(start)
    }
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        self.inner.epoch_start(epoch, epochs, steps)
    }
    fn step(&mut self, step: &ferrotune_train::StepReport) {
        self.inner.step(step)
    }
    fn metrics(&mut self, line: &Value) {
        self.inner.metrics(line)
    }
    fn epoch_end(&mut self, epoch: &ferrotune_train::EpochReport) {
        self.inner.epoch_end(epoch);
        let mut line = String::new();
        while self.open {
            line.clear();
            match self.input.read_line(&mut line) {
                Ok(0) | Err(_) => self.open = false,
                Ok(_) if line.trim().parse::<usize>().is_ok_and(|n| n >= epoch.epoch) => return,
                Ok(_) => {}
            }
        }
    }
}

fn required<'a>(value: &'a Option<PathBuf>, name: &str) -> Result<&'a Path, UsageError> {
    value.as_deref().ok_or_else(|| UsageError(format!("--{name} is required (as a flag or in --config)")))
}

/// Runs `ferrotune train`.
pub fn run(args: TrainArgs, matches: &ArgMatches) -> anyhow::Result<()> {
    let (run, options) = merge(&args, matches)?;
    if let Err(e @ TrainError::InvalidOption { field, .. }) = options.validate() {
        return Err(UsageError::invalid_option(field, e).into());
    }
    let (model, train, output) =
        (required(&run.model, "model")?, required(&run.train, "train")?, required(&run.output, "output")?);
    if run.mlflow_experiment.is_some() && run.mlflow_uri.is_none() {
        return Err(UsageError("--mlflow-experiment needs --mlflow-uri".into()).into());
    }
    crate::runtime::init(run.threads, crate::runtime::FreedMemory::Keep)?;
    let device = ferrotune_model::device_from_name(run.device.as_deref().unwrap_or("cpu"))?;
    let option_values = serde_json::to_value(&options)?;
    let request = TrainRequest {
        model_dir: model,
        train,
        dev: run.dev.as_deref(),
        dev_corpus: run.dev_corpus.as_deref(),
        output,
        options,
        resume: run.resume,
        device,
        stop_after: None,
    };
    let mut progress = TrainProgress::new();
    let mut tracker = None;
    let observer: &mut dyn TrainObserver = match run.mlflow_uri.as_deref() {
        Some(uri) => {
            let experiment = run.mlflow_experiment.as_deref().unwrap_or("ferrotune");
            let name = output.file_name().map_or("run".into(), |n| n.to_string_lossy().into_owned());
            tracker.insert(MlflowTracker::new(uri, experiment, &name, &option_values, &mut progress))
        }
        None => &mut progress,
    };
    let result = if args.run.epoch_gate {
        ferrotune_train::train(&request, &mut EpochGate { inner: observer, input: std::io::stdin().lock(), open: true })
    } else {
        ferrotune_train::train(&request, observer)
    };
    if let Some(tracker) = tracker {
        tracker.finish(result.as_ref().ok().map(|s| s.output.as_path()));
    }
    let summary = result?;
    let saved = match summary.best_dev_score {
        Some(score) => format!("best epoch {} (dev score {score:.4})", summary.best_epoch),
        None => format!("epoch {}", summary.best_epoch),
    };
    eprintln!("done: {saved} saved to {}; {:.1} examples/s", summary.output.display(), summary.sentences_per_second);
    Ok(())
}

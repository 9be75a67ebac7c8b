//! The training loop shared by every task: fine-tunes a model on a labelled
//! file, picks the best epoch on a dev file, checkpoints every epoch.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ferrotune_data::Task;
use ferrotune_text::copy_tokenizer_files;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::batching::epoch_batches;
use crate::checkpoint::{self, RunState};
use crate::ner_task::NerTask;
use crate::optimizer::{AdamW, AdamWConfig};
use crate::schedule::learning_rate;
use crate::sequence_task::SequenceTask;
use crate::task::TrainTask;
use crate::{TrainError, TrainOptions};

/// What to train, from what, and where to put it.
pub struct TrainRequest<'a> {
    /// The pretrained (or already fine-tuned) model folder.
    pub model_dir: &'a Path,
    /// The training file (NER: CoNLL or JSONL; other tasks: TSV, CSV or JSONL).
    pub train: &'a Path,
    /// The dev file used to pick the best epoch, if any.
    pub dev: Option<&'a Path>,
    /// The output folder: the best model, `metrics.jsonl`, `checkpoint/`.
    pub output: &'a Path,
    /// Hyper-parameters.
    pub options: TrainOptions,
    /// Continue from `<output>/checkpoint` if there is one.
    pub resume: bool,
    /// The device to train on.
    pub device: candle_core::Device,
    /// End this process after this many epochs in total, leaving a
    /// checkpoint to resume from (for time-sliced runs); `None` runs them all.
    pub stop_after: Option<usize>,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Epochs run in total (including those before a resume).
    pub epochs_done: usize,
    /// The epoch whose model was kept.
    pub best_epoch: usize,
    /// Its dev score (see `DevResult::score`), if there was a dev file.
    pub best_dev_score: Option<f64>,
    /// Training sentences (or texts).
    pub sentences: usize,
    /// Of those, how many were longer than `max_len` (NER: split into
    /// windows; other tasks: cut).
    pub split_sentences: usize,
    /// Training throughput of this process (sentences per second of training).
    pub sentences_per_second: f64,
    /// Where the model was saved.
    pub output: PathBuf,
}

/// Appends JSON lines to `metrics.jsonl`.
struct MetricsLog {
    file: std::fs::File,
    path: PathBuf,
}

impl MetricsLog {
    fn open(path: PathBuf) -> Result<Self, TrainError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(Self { file, path })
    }

    fn write(&mut self, value: serde_json::Value) -> Result<(), TrainError> {
        writeln!(self.file, "{value}").map_err(|e| TrainError::io(&self.path, e))
    }
}

fn progress_bar(len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:28}] {pos}/{len} {msg} [{elapsed_precise}<{eta_precise}]")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("epoch {epoch}/{epochs}"));
    bar
}

/// Fine-tunes a model; see [`TrainRequest`].
pub fn train(request: &TrainRequest) -> Result<TrainSummary, TrainError> {
    let options = &request.options;
    options.validate()?;
    let output = request.output;
    std::fs::create_dir_all(output).map_err(|e| TrainError::io(output, e))?;
    let task: Box<dyn TrainTask> = match options.task {
        Task::Ner => Box::new(NerTask::load(request, options)?),
        _ => Box::new(SequenceTask::load(request, options)?),
    };
    run(request, task.as_ref())
}

/// The loop shared by every task.
fn run(request: &TrainRequest, task: &dyn TrainTask) -> Result<TrainSummary, TrainError> {
    let options = &request.options;
    let output = request.output;
    let label_names = task.labels().to_vec();
    eprintln!("model: {} parameters, {} labels", task.params().parameter_count(), label_names.len());
    let mut optimizer = AdamW::new(
        task.params(),
        AdamWConfig { weight_decay: options.weight_decay as f32, ..Default::default() },
    );

    let mut state = RunState {
        epochs_done: 0,
        step: 0,
        best_score: None,
        best_epoch: 0,
        epochs_without_gain: 0,
        stopped_early: false,
        options: options.clone(),
        labels: label_names.clone(),
    };
    let metrics_path = output.join("metrics.jsonl");
    match (request.resume, checkpoint::find(output)) {
        (true, Some(dir)) => {
            let saved = checkpoint::read_state(&dir)?;
            if saved.options != *options {
                return Err(TrainError::Checkpoint(format!(
                    "{} was made with other options ({:?}); rerun with the same options",
                    dir.display(),
                    saved.options
                )));
            }
            if saved.labels != label_names {
                return Err(TrainError::Checkpoint(format!("{} has other labels", dir.display())));
            }
            checkpoint::restore(&dir, task.params(), &mut optimizer, &saved)?;
            eprintln!("resuming after epoch {} (step {}) from {}", saved.epochs_done, saved.step, dir.display());
            state = saved;
        }
        (true, None) => eprintln!("no checkpoint in {}: starting from the beginning", output.display()),
        (false, _) => {
            if metrics_path.exists() {
                std::fs::remove_file(&metrics_path).map_err(|e| TrainError::io(&metrics_path, e))?;
            }
        }
    }
    let mut metrics = MetricsLog::open(metrics_path)?;

    let lengths = task.lengths();
    let steps_per_epoch = lengths.len().div_ceil(options.batch_size) as u64;
    let total_steps = steps_per_epoch * options.epochs as u64;
    let warmup_steps = (options.warmup_ratio * total_steps as f64).ceil() as u64;
    let interactive = std::io::stderr().is_terminal();
    let mut trained_sentences = 0usize;
    let mut train_seconds = 0f64;

    let first_epoch = state.epochs_done + 1;
    for epoch in first_epoch..=options.epochs {
        if state.stopped_early || request.stop_after.is_some_and(|n| epoch > n) {
            break;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        rng.set_stream(epoch as u64);
        let batches = epoch_batches(options.batching, &lengths, options.batch_size, &mut rng);
        let bar = progress_bar(batches.len(), epoch, options.epochs);
        let started = Instant::now();
        let (mut loss_sum, mut seen) = (0f64, 0usize);
        for (i, batch_ids) in batches.iter().enumerate() {
            let loss = task.batch_loss(batch_ids, &mut rng)?;
            let loss_value = loss.to_scalar::<f32>()? as f64;
            if !loss_value.is_finite() {
                return Err(TrainError::Diverged(state.step));
            }
            let grads = loss.backward()?;
            let norm = optimizer.grad_norm(&grads)?;
            let clip = if options.max_grad_norm > 0.0 && norm as f64 > options.max_grad_norm {
                (options.max_grad_norm / (norm as f64 + 1e-6)) as f32
            } else {
                1.0
            };
            let lr = learning_rate(options.lr, state.step, warmup_steps, total_steps, options.schedule);
            optimizer.step(&grads, lr as f32, clip)?;
            state.step += 1;
            loss_sum += loss_value;
            seen += batch_ids.len();
            let rate = seen as f64 / started.elapsed().as_secs_f64();
            metrics.write(serde_json::json!({
                "type": "step", "epoch": epoch, "step": state.step, "loss": loss_value,
                "lr": lr, "grad_norm": norm, "windows_per_s": rate
            }))?;
            bar.set_message(format!("loss {:.4} lr {lr:.2e} {rate:.1} sent/s", loss_sum / (i + 1) as f64));
            bar.inc(1);
            let every = (batches.len() / 20).max(1);
            if !interactive && ((i + 1) % every == 0 || i + 1 == batches.len()) {
                let eta = (batches.len() - i - 1) as f64 * started.elapsed().as_secs_f64() / (i + 1) as f64;
                eprintln!(
                    "epoch {epoch}/{} step {}/{} loss {:.4} lr {lr:.2e} {rate:.1} sent/s eta {eta:.0}s",
                    options.epochs,
                    i + 1,
                    batches.len(),
                    loss_sum / (i + 1) as f64
                );
            }
        }
        bar.finish_and_clear();
        let epoch_seconds = started.elapsed().as_secs_f64();
        train_seconds += epoch_seconds;
        trained_sentences += seen;
        let train_loss = loss_sum / batches.len().max(1) as f64;

        let dev = task.evaluate(options.eval_batch_size)?;
        let improved = match (&dev, state.best_score) {
            (Some(d), Some(best)) => d.score > best,
            _ => true,
        };
        if improved {
            state.best_score = dev.as_ref().map(|d| d.score);
            state.best_epoch = epoch;
            state.epochs_without_gain = 0;
            task.save(output)?;
            copy_tokenizer_files(request.model_dir, output).map_err(|e| TrainError::io(output, e))?;
        } else {
            state.epochs_without_gain += 1;
        }
        state.epochs_done = epoch;
        if options.patience > 0 && state.epochs_without_gain >= options.patience && epoch < options.epochs {
            state.stopped_early = true;
        }
        metrics.write(serde_json::json!({
            "type": "epoch", "epoch": epoch, "step": state.step, "train_loss": train_loss,
            "seconds": epoch_seconds, "windows_per_s": seen as f64 / epoch_seconds,
            "dev": dev.as_ref().map(|d| &d.report), "best_epoch": state.best_epoch
        }))?;
        eprintln!(
            "epoch {epoch}/{}: train loss {train_loss:.4}{}{} ({epoch_seconds:.0}s, {:.1} examples/s)",
            options.epochs,
            dev.as_ref().map(|d| format!(", {}", d.summary)).unwrap_or_default(),
            if improved { " (best, saved)" } else { "" },
            seen as f64 / epoch_seconds
        );
        checkpoint::save(output, task.params(), &optimizer, &state)?;
        if state.stopped_early {
            eprintln!("early stopping: no gain in the dev score for {} epochs", state.epochs_without_gain);
        }
    }

    Ok(TrainSummary {
        epochs_done: state.epochs_done,
        best_epoch: state.best_epoch,
        best_dev_score: state.best_score,
        sentences: task.sentences(),
        split_sentences: task.split_sentences(),
        sentences_per_second: if train_seconds > 0.0 { trained_sentences as f64 / train_seconds } else { 0.0 },
        output: output.to_path_buf(),
    })
}

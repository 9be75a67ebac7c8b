//! The training loop shared by every task: fine-tunes a model on a labelled
//! file, picks the best epoch on a dev file, checkpoints every epoch. It
//! reports progress to a [`TrainObserver`] and never prints.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ferrotune_data::Task;
use ferrotune_model::ScratchScope;
use ferrotune_text::copy_tokenizer_files;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::{self, RunState};
use crate::events::EventLog;
use crate::ner_task::NerTask;
use crate::observer::{DataSummary, EpochReport, RunStart, StepReport, TrainObserver};
use crate::optimizer::{AdamW, AdamWConfig};
use crate::retrieval_task::RetrievalTask;
use crate::schedule::learning_rate;
use crate::sequence_task::SequenceTask;
use crate::task::TrainTask;
use crate::{TrainError, TrainOptions};

/// Where the next model is written before it replaces `<output>/model`.
const STAGED_MODEL: &str = ".model.staged";

/// The file of a run's inputs, options and data sizes, in its output folder.
pub const RUN_FILE: &str = "run.json";

/// What to train, from what, and where to put it.
pub struct TrainRequest<'a> {
    /// The pretrained (or already fine-tuned) model folder.
    pub model_dir: &'a Path,
    /// The training file (NER: CoNLL or JSONL; other tasks: TSV, CSV or JSONL).
    pub train: &'a Path,
    /// The dev file used to pick the best epoch, if any (retrieval: the
    /// dev queries).
    pub dev: Option<&'a Path>,
    /// Retrieval: the corpus the dev queries search.
    pub dev_corpus: Option<&'a Path>,
    /// The output folder: the best model (in `model/`), `metrics.jsonl`, `checkpoint/`.
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
    /// Its dev score (see `TaskReport::score`), if there was a dev file.
    pub best_dev_score: Option<f64>,
    /// Training sentences (or texts).
    pub sentences: usize,
    /// Of those, how many were longer than `max_len` (NER: split into
    /// windows; other tasks: cut).
    pub split_sentences: usize,
    /// Training throughput of this process (sentences per second of training).
    pub sentences_per_second: f64,
    /// Where the model was saved (`<output>/model`).
    pub output: PathBuf,
}

/// Fine-tunes a model; see [`TrainRequest`]. Progress goes to `observer`.
pub fn train(request: &TrainRequest, observer: &mut dyn TrainObserver) -> Result<TrainSummary, TrainError> {
    // A previous run's output folder names its saved model.
    let model_dir = ferrotune_model::model_folder(request.model_dir);
    let request = &TrainRequest {
        model_dir: &model_dir,
        options: request.options.clone(),
        device: request.device.clone(),
        ..*request
    };
    let options = &request.options;
    options.validate()?;
    let config_path = request.model_dir.join("config.json");
    let config = ferrotune_model::BertConfig::load(&config_path)?;
    config.check_tokenizer_vocab(&config_path, ferrotune_text::WordTokenizer::load(request.model_dir)?.vocab_size())?;
    let positions = config.max_position_embeddings;
    if options.max_len > positions {
        return Err(TrainError::MaxLenOverPositions { max_len: options.max_len, positions, path: config_path });
    }
    let output = request.output;
    std::fs::create_dir_all(output).map_err(|e| TrainError::io(output, e))?;
    let task: Box<dyn TrainTask> = match options.task {
        Task::Ner => Box::new(NerTask::load(request, options)?),
        Task::Sequence(kind) => Box::new(SequenceTask::load(request, options, kind)?),
        Task::Retrieval => Box::new(RetrievalTask::load(request, options)?),
    };
    let task = task.as_ref();
    let data = DataSummary {
        task: task.task(),
        examples: task.examples(),
        model_inputs: task.lengths().len(),
        long_inputs: task.long_inputs(),
        max_len: options.max_len,
        pairs: task.pairs(),
        labels: task.labels().len(),
        parameters: task.params().parameter_count(),
        trainable: task.params().trainable_count(),
    };
    write_run_file(request, &data)?;
    observer.data(&data);
    let mut run = Run::start(request, task, observer)?;
    for epoch in run.state.epochs_done + 1..=options.epochs {
        if run.state.stopped_early || request.stop_after.is_some_and(|n| epoch > n) {
            break;
        }
        let totals = run.train_epoch(epoch, observer)?;
        run.end_epoch(epoch, &totals, observer)?;
    }
    Ok(run.summary())
}

/// The options that differ between a checkpoint's and a resumed run's, by
/// field (`epochs` may grow): `(field, saved value, new value)`.
fn changed_options(saved: &TrainOptions, now: &TrainOptions) -> Vec<(String, String, String)> {
    let (a, b) = (serde_json::to_value(saved).expect("options"), serde_json::to_value(now).expect("options"));
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return Vec::new() };
    a.iter()
        .filter(|(key, value)| b.get(key.as_str()) != Some(value))
        .filter(|(key, _)| !(key.as_str() == "epochs" && now.epochs > saved.epochs))
        .map(|(key, value)| {
            (key.clone(), value.to_string(), b.get(key.as_str()).map_or_else(String::new, |v| v.to_string()))
        })
        .collect()
}

/// Keeps the lines of `metrics.jsonl` up to optimizer step `step` (those of
/// the epochs a checkpoint holds), dropping later ones and a torn last line.
fn truncate_metrics(path: &Path, step: u64) -> Result<(), TrainError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(TrainError::io(path, e)),
    };
    let mut kept = String::new();
    for line in text.lines() {
        let value: Option<serde_json::Value> = serde_json::from_str(line).ok();
        if value.and_then(|v| v["step"].as_u64()).is_some_and(|s| s <= step) {
            kept += line;
            kept.push('\n');
        }
    }
    if kept.len() != text.len() {
        ferrotune_data::atomic::write_bytes_atomic(path, kept.as_bytes()).map_err(|e| TrainError::io(path, e))?;
    }
    Ok(())
}

/// Appends JSON lines to `metrics.jsonl`, and their numbers to a
/// TensorBoard event file beside it (`runs/`).
struct MetricsLog {
    file: std::fs::File,
    path: PathBuf,
    events: EventLog,
}

impl MetricsLog {
    /// Opens `metrics.jsonl` of `output` for appending; the event file
    /// starts anew from the lines it already holds.
    fn open(output: &Path) -> Result<Self, TrainError> {
        let path = output.join("metrics.jsonl");
        let kept: Vec<serde_json::Value> = match std::fs::read_to_string(&path) {
            Ok(text) => text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(TrainError::io(&path, e)),
        };
        let events = EventLog::create(output, &kept)?;
        let file =
            std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| TrainError::io(&path, e))?;
        Ok(Self { file, path, events })
    }

    fn write(&mut self, value: &serde_json::Value) -> Result<(), TrainError> {
        writeln!(self.file, "{value}").map_err(|e| TrainError::io(&self.path, e))?;
        self.events.write(value)
    }
}

/// What one epoch of training did.
struct EpochTotals {
    loss_sum: f64,
    steps: usize,
    examples: usize,
    seconds: f64,
}

/// A run in progress: the task, the optimizer, the run state and its logs.
struct Run<'a> {
    request: &'a TrainRequest<'a>,
    task: &'a dyn TrainTask,
    optimizer: AdamW,
    state: RunState,
    metrics: MetricsLog,
    warmup_steps: u64,
    total_steps: u64,
    trained_examples: usize,
    train_seconds: f64,
}

impl<'a> Run<'a> {
    /// Starts a run, or resumes it from the output folder's checkpoint when
    /// asked to and there is one.
    fn start(
        request: &'a TrainRequest<'a>,
        task: &'a dyn TrainTask,
        observer: &mut dyn TrainObserver,
    ) -> Result<Self, TrainError> {
        let options = &request.options;
        let output = request.output;
        let labels = task.labels().to_vec();
        let config = AdamWConfig { weight_decay: options.weight_decay as f32, ..Default::default() };
        let mut optimizer = AdamW::new(task.params(), config);
        let mut state = RunState {
            epochs_done: 0,
            step: 0,
            best_score: None,
            best_epoch: 0,
            epochs_without_gain: 0,
            stopped_early: false,
            options: options.clone(),
            labels,
        };
        let metrics_path = output.join("metrics.jsonl");
        match (request.resume, checkpoint::find(output)) {
            (true, Some(dir)) => {
                let mut saved = checkpoint::read_state(&dir)?;
                let changes = changed_options(&saved.options, options);
                if !changes.is_empty() {
                    return Err(TrainError::CheckpointOptions { dir, changes });
                }
                if saved.labels != state.labels {
                    return Err(TrainError::CheckpointLabels { dir });
                }
                checkpoint::restore(&dir, task.params(), &mut optimizer, &saved)?;
                observer.start(&RunStart::Resumed { dir: &dir, epochs_done: saved.epochs_done, step: saved.step });
                // More epochs extend the run (an early stop is lifted).
                if options.epochs > saved.options.epochs {
                    saved.stopped_early = false;
                }
                saved.options = options.clone();
                // Lines logged after the checkpoint (a killed epoch) go: the
                // resumed run logs them again.
                truncate_metrics(&metrics_path, saved.step)?;
                state = saved;
            }
            (true, None) => {
                // A run killed before its first checkpoint starts over: so
                // does its log.
                truncate_metrics(&metrics_path, 0)?;
                observer.start(&RunStart::NoCheckpoint(output));
            }
            (false, _) => {
                if metrics_path.exists() {
                    std::fs::remove_file(&metrics_path).map_err(|e| TrainError::io(&metrics_path, e))?;
                }
                observer.start(&RunStart::Fresh);
            }
        }
        let total_steps = task.lengths().len().div_ceil(options.batch_size) as u64 * options.epochs as u64;
        Ok(Self {
            request,
            task,
            optimizer,
            state,
            metrics: MetricsLog::open(output)?,
            warmup_steps: (options.warmup_ratio * total_steps as f64).ceil() as u64,
            total_steps,
            trained_examples: 0,
            train_seconds: 0.0,
        })
    }

    /// One pass over the training data, one optimizer step per batch.
    fn train_epoch(&mut self, epoch: usize, observer: &mut dyn TrainObserver) -> Result<EpochTotals, TrainError> {
        let options = &self.request.options;
        // Each epoch's generator comes from the seed and the epoch, so a
        // resumed run draws the same batches and dropout masks.
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        rng.set_stream(epoch as u64);
        let batches = self.task.batches(options.batching, options.batch_size, &mut rng);
        observer.epoch_start(epoch, options.epochs, batches.len());
        let started = Instant::now();
        let (mut loss_sum, mut examples) = (0f64, 0usize);
        // Each step reuses the last one's large buffers instead of zeroing fresh ones.
        let _buffers = ScratchScope::enter();
        for (i, batch_ids) in batches.iter().enumerate() {
            let loss = self.task.batch_loss(batch_ids, &mut rng)?;
            let loss_value = loss.to_scalar::<f32>()? as f64;
            if !loss_value.is_finite() {
                return Err(TrainError::Diverged { step: self.state.step });
            }
            let grads = loss.backward()?;
            let norm = self.optimizer.grad_norm(&grads)?;
            let clip = if options.max_grad_norm > 0.0 && norm as f64 > options.max_grad_norm {
                (options.max_grad_norm / (norm as f64 + 1e-6)) as f32
            } else {
                1.0
            };
            let lr = learning_rate(options.lr, self.state.step, self.warmup_steps, self.total_steps, options.schedule);
            self.optimizer.step(&grads, lr as f32, clip)?;
            self.state.step += 1;
            loss_sum += loss_value;
            examples += batch_ids.len();
            let seconds = started.elapsed().as_secs_f64();
            let rate = examples as f64 / seconds;
            let line = serde_json::json!({
                "type": "step", "epoch": epoch, "step": self.state.step, "loss": loss_value,
                "lr": lr, "grad_norm": norm, "windows_per_s": rate
            });
            self.metrics.write(&line)?;
            observer.metrics(&line);
            observer.step(&StepReport {
                epoch,
                epochs: options.epochs,
                index: i + 1,
                steps: batches.len(),
                loss: loss_value,
                mean_loss: loss_sum / (i + 1) as f64,
                lr,
                grad_norm: norm,
                examples_per_second: rate,
                seconds,
            });
        }
        Ok(EpochTotals { loss_sum, steps: batches.len(), examples, seconds: started.elapsed().as_secs_f64() })
    }

    /// Scores the dev set, keeps the model if it is the best so far, decides
    /// on early stopping, logs the epoch and writes the checkpoint.
    fn end_epoch(
        &mut self,
        epoch: usize,
        totals: &EpochTotals,
        observer: &mut dyn TrainObserver,
    ) -> Result<(), TrainError> {
        let options = &self.request.options;
        let output = self.request.output;
        self.train_seconds += totals.seconds;
        self.trained_examples += totals.examples;
        let train_loss = totals.loss_sum / totals.steps.max(1) as f64;
        let dev = self.task.evaluate(options.eval_batch_size)?;
        let state = &mut self.state;
        let improved = match (&dev, state.best_score) {
            (Some(report), Some(best)) => report.score() > best,
            _ => true,
        };
        if improved {
            state.best_score = dev.as_ref().map(|d| d.score());
            state.best_epoch = epoch;
            state.epochs_without_gain = 0;
            save_model(self.task, self.request)?;
        } else {
            state.epochs_without_gain += 1;
        }
        state.epochs_done = epoch;
        if options.patience > 0 && state.epochs_without_gain >= options.patience && epoch < options.epochs {
            state.stopped_early = true;
        }
        let rate = totals.examples as f64 / totals.seconds;
        let line = serde_json::json!({
            "type": "epoch", "epoch": epoch, "step": state.step, "train_loss": train_loss,
            "seconds": totals.seconds, "windows_per_s": rate,
            "dev": dev.as_ref(), "dev_score": dev.as_ref().map(|d| d.score()), "best_epoch": state.best_epoch
        });
        self.metrics.write(&line)?;
        observer.metrics(&line);
        checkpoint::save(output, self.task.params(), &self.optimizer, &self.state)?;
        observer.epoch_end(&EpochReport {
            epoch,
            epochs: options.epochs,
            train_loss,
            dev_summary: dev.as_ref().map(|d| d.summary()),
            improved,
            seconds: totals.seconds,
            examples_per_second: rate,
            stopping_early_after: self.state.stopped_early.then_some(self.state.epochs_without_gain),
        });
        Ok(())
    }

    fn summary(&self) -> TrainSummary {
        TrainSummary {
            epochs_done: self.state.epochs_done,
            best_epoch: self.state.best_epoch,
            best_dev_score: self.state.best_score,
            sentences: self.task.examples(),
            split_sentences: self.task.long_inputs(),
            sentences_per_second: if self.train_seconds > 0.0 {
                self.trained_examples as f64 / self.train_seconds
            } else {
                0.0
            },
            output: self.request.output.join(ferrotune_model::TRAINED_MODEL),
        }
    }
}

/// What a run was given, for `ferrotune report`: `<output>/run.json` with
/// the model and data files, the options and the training data's sizes.
fn write_run_file(request: &TrainRequest, data: &DataSummary) -> Result<(), TrainError> {
    let path = request.output.join(RUN_FILE);
    let value = serde_json::json!({
        "model": request.model_dir, "train": request.train, "dev": request.dev,
        "options": request.options,
        "data": {
            "task": data.task.name(), "examples": data.examples, "model_inputs": data.model_inputs,
            "long_inputs": data.long_inputs, "labels": data.labels, "parameters": data.parameters,
            "trainable": data.trainable
        }
    });
    let text = serde_json::to_string_pretty(&value).expect("run file");
    ferrotune_data::atomic::write_bytes_atomic(&path, text.as_bytes()).map_err(|e| TrainError::io(&path, e))
}

/// Saves the model with its tokenizer files into a staged folder and
/// swaps it in for `<output>/model` as a set.
fn save_model(task: &dyn TrainTask, request: &TrainRequest) -> Result<(), TrainError> {
    let output = request.output;
    let staged = output.join(STAGED_MODEL);
    if staged.exists() {
        std::fs::remove_dir_all(&staged).map_err(|e| TrainError::io(&staged, e))?;
    }
    std::fs::create_dir(&staged).map_err(|e| TrainError::io(&staged, e))?;
    task.save(&staged)?;
    copy_tokenizer_files(request.model_dir, &staged).map_err(|e| TrainError::io(&staged, e))?;
    let model = output.join(ferrotune_model::TRAINED_MODEL);
    ferrotune_data::atomic::replace_dir(&staged, &model).map_err(|e| TrainError::io(&model, e))
}

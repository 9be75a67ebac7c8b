//! The training loop: fine-tunes a token classifier on a labelled file,
//! picks the best epoch on a dev file, checkpoints every epoch.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use ferrotune_data::{read_tagged, LabelSet, TaggedSentence};
use ferrotune_eval::Report;
use ferrotune_infer::predict_windows;
use ferrotune_model::{Batch, Head, Mode, TokenClassifier};
use ferrotune_text::{copy_tokenizer_files, Window, WordTokenizer};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::batching::bucketed_batches;
use crate::checkpoint::{self, RunState};
use crate::optimizer::{AdamW, AdamWConfig};
use crate::schedule::learning_rate;
use crate::{TrainError, TrainOptions};

/// What to train, from what, and where to put it.
pub struct TrainRequest<'a> {
    /// The pretrained (or already fine-tuned) model folder.
    pub model_dir: &'a Path,
    /// The training file (CoNLL or JSONL).
    pub train: &'a Path,
    /// The dev file used to pick the best epoch, if any.
    pub dev: Option<&'a Path>,
    /// The output folder: the best model, `metrics.jsonl`, `checkpoint/`.
    pub output: &'a Path,
    /// Hyper-parameters.
    pub options: TrainOptions,
    /// Continue from `<output>/checkpoint` if there is one.
    pub resume: bool,
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
    /// Its dev entity F1 (micro), if there was a dev file.
    pub best_dev_f1: Option<f64>,
    /// Training sentences.
    pub sentences: usize,
    /// Of those, how many were longer than `max_len` and split into windows.
    pub split_sentences: usize,
    /// Training throughput of this process (sentences per second of training).
    pub sentences_per_second: f64,
    /// Where the model was saved.
    pub output: PathBuf,
}

/// A training window and the tag of each word it owns.
struct Example {
    input_ids: Vec<u32>,
    /// `(position, tag id)` of the first sub-token of each owned word.
    targets: Vec<(usize, u32)>,
}

struct Encoded {
    examples: Vec<Example>,
    split: usize,
}

fn encode_train(tokenizer: &WordTokenizer, sentences: &[TaggedSentence], tag_ids: &[Vec<usize>], max_len: usize) -> Result<Encoded, TrainError> {
    let mut examples = Vec::new();
    let mut split = 0;
    for (sentence, ids) in sentences.iter().zip(tag_ids) {
        let windows = tokenizer.windows(&sentence.tokens, max_len)?;
        split += usize::from(windows.len() > 1);
        // A window that owns no word (possible between long overlapping
        // windows) has nothing to learn from: leave it out.
        for Window { input_ids, word_positions } in windows.into_iter().filter(|w| !w.word_positions.is_empty()) {
            let targets = word_positions.iter().map(|&(pos, word)| (pos, ids[word] as u32)).collect();
            examples.push(Example { input_ids, targets });
        }
    }
    Ok(Encoded { examples, split })
}

/// Model inputs of a batch of examples, with the flat positions
/// (`row * len + column`) of their labelled sub-tokens and the tags there.
fn training_batch(examples: &[&Example], pad_id: u32) -> Result<(Batch, Tensor, Tensor), TrainError> {
    let ids: Vec<&[u32]> = examples.iter().map(|e| e.input_ids.as_slice()).collect();
    let batch = Batch::pad(&ids, pad_id)?;
    let (mut positions, mut targets) = (Vec::new(), Vec::new());
    for (row, e) in examples.iter().enumerate() {
        for &(pos, tag) in &e.targets {
            positions.push((row * batch.len + pos) as u32);
            targets.push(tag);
        }
    }
    let n = positions.len();
    let positions = Tensor::from_vec(positions, n, &Device::Cpu)?;
    let targets = Tensor::from_vec(targets, n, &Device::Cpu)?;
    Ok((batch, positions, targets))
}

/// A dev set, encoded once.
struct DevSet {
    windows: Vec<Vec<Window>>,
    words: Vec<usize>,
    gold: Vec<Vec<String>>,
}

impl DevSet {
    fn load(path: &Path, labels: &LabelSet, tokenizer: &WordTokenizer, max_len: usize) -> Result<Self, TrainError> {
        let sentences = read_tagged(path)?;
        labels.encode(&sentences)?;
        let windows = sentences
            .iter()
            .map(|s| tokenizer.windows(&s.tokens, max_len))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            windows,
            words: sentences.iter().map(|s| s.tokens.len()).collect(),
            gold: sentences.into_iter().map(|s| s.tags).collect(),
        })
    }

    fn evaluate(&self, model: &TokenClassifier, pad_id: u32, batch_size: usize) -> Result<Report, TrainError> {
        let predictions = predict_windows(model, &self.windows, &self.words, pad_id, batch_size)?;
        let tags: Vec<Vec<String>> = predictions
            .iter()
            .map(|s| s.iter().map(|p| model.labels[p.label].clone()).collect())
            .collect();
        Ok(Report::compute(&self.gold, &tags))
    }
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

    let sentences = read_tagged(request.train)?;
    let labels = LabelSet::from_sentences(&sentences)?;
    let tag_ids = labels.encode(&sentences)?;
    let tokenizer = WordTokenizer::from_dir(request.model_dir)?;
    let encoded = encode_train(&tokenizer, &sentences, &tag_ids, options.max_len)?;
    eprintln!(
        "train: {} sentences, {} windows; {} sentences longer than max-len {} were split into overlapping windows",
        sentences.len(),
        encoded.examples.len(),
        encoded.split,
        options.max_len
    );
    let dev = match request.dev {
        Some(path) => Some(DevSet::load(path, &labels, &tokenizer, options.max_len)?),
        None => None,
    };
    let label_names = labels.labels().to_vec();
    let model = TokenClassifier::from_pretrained(
        request.model_dir,
        Head::For { labels: &label_names, seed: options.seed },
    )?;
    eprintln!(
        "model: {} parameters, labels {}",
        model.params().parameter_count(),
        label_names.join(" ")
    );
    let mut optimizer = AdamW::new(
        model.params(),
        AdamWConfig { weight_decay: options.weight_decay as f32, ..Default::default() },
    );

    let mut state = RunState {
        epochs_done: 0,
        step: 0,
        best_f1: -1.0,
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
            checkpoint::restore(&dir, model.params(), &mut optimizer, &saved)?;
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

    let lengths: Vec<usize> = encoded.examples.iter().map(|e| e.input_ids.len()).collect();
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
        let batches = bucketed_batches(&lengths, options.batch_size, &mut rng);
        let bar = progress_bar(batches.len(), epoch, options.epochs);
        let started = Instant::now();
        let (mut loss_sum, mut seen) = (0f64, 0usize);
        for (i, batch_ids) in batches.iter().enumerate() {
            let examples: Vec<&Example> = batch_ids.iter().map(|&k| &encoded.examples[k]).collect();
            let (batch, positions, targets) = training_batch(&examples, tokenizer.pad_id)?;
            let logits = model.forward(&batch, &mut Mode::Train(&mut rng))?;
            let loss = model.loss(&logits, &positions, &targets)?;
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
            seen += examples.len();
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

        let dev_report = match &dev {
            Some(dev) => Some(dev.evaluate(&model, tokenizer.pad_id, options.eval_batch_size)?),
            None => None,
        };
        let improved = match &dev_report {
            Some(r) => r.micro.f1 > state.best_f1,
            None => true,
        };
        if improved {
            state.best_f1 = dev_report.as_ref().map_or(-1.0, |r| r.micro.f1);
            state.best_epoch = epoch;
            state.epochs_without_gain = 0;
            model.save_pretrained(output)?;
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
            "dev": dev_report, "best_epoch": state.best_epoch
        }))?;
        match &dev_report {
            Some(r) => eprintln!(
                "epoch {epoch}/{}: train loss {train_loss:.4}, dev P {:.4} R {:.4} F1 {:.4}{} ({epoch_seconds:.0}s, {:.1} sent/s)",
                options.epochs,
                r.micro.precision,
                r.micro.recall,
                r.micro.f1,
                if improved { " (best, saved)" } else { "" },
                seen as f64 / epoch_seconds
            ),
            None => eprintln!("epoch {epoch}/{}: train loss {train_loss:.4} ({epoch_seconds:.0}s)", options.epochs),
        }
        checkpoint::save(output, model.params(), &optimizer, &state)?;
        if state.stopped_early {
            eprintln!("early stopping: no gain in dev F1 for {} epochs", state.epochs_without_gain);
        }
    }

    Ok(TrainSummary {
        epochs_done: state.epochs_done,
        best_epoch: state.best_epoch,
        best_dev_f1: (state.best_f1 >= 0.0).then_some(state.best_f1),
        sentences: sentences.len(),
        split_sentences: encoded.split,
        sentences_per_second: if train_seconds > 0.0 { trained_sentences as f64 / train_seconds } else { 0.0 },
        output: output.to_path_buf(),
    })
}

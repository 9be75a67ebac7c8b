//! How `ferrotune train` shows a run's progress: a progress bar on a
//! terminal, plain lines (about twenty per epoch) otherwise.

use std::io::IsTerminal;

use ferrotune_train::{DataSummary, EpochReport, RunStart, StepReport, TrainObserver};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Renders training progress on standard error.
pub struct TrainProgress {
    interactive: bool,
    bar: Option<ProgressBar>,
}

impl TrainProgress {
    /// A bar when standard error is a terminal, plain lines otherwise.
    pub fn new() -> Self {
        Self { interactive: std::io::stderr().is_terminal(), bar: None }
    }
}

impl TrainObserver for TrainProgress {
    fn data(&mut self, d: &DataSummary) {
        let noun = d.task.example_noun();
        // Retrieval learns from pairs, not labels.
        let labels = if d.labels > 0 { format!(", {} labels", d.labels) } else { String::new() };
        eprintln!(
            "train: {} {noun}{}, {} model inputs{labels}; {} {noun} longer than max-len {} were {}",
            d.examples,
            if d.pairs { " (pairs)" } else { "" },
            d.model_inputs,
            d.long_inputs,
            d.max_len,
            d.task.long_input_handling()
        );
        let trainable = match d.trainable < d.parameters {
            true => format!(" ({} trainable, {:.2}%)", d.trainable, 100.0 * d.trainable as f64 / d.parameters as f64),
            false => String::new(),
        };
        eprintln!("model: {} parameters{trainable}{labels}", d.parameters);
    }

    fn start(&mut self, start: &RunStart) {
        match start {
            RunStart::Fresh => {}
            RunStart::NoCheckpoint(dir) => {
                eprintln!("no checkpoint in {}: starting from the beginning", dir.display())
            }
            RunStart::Resumed { dir, epochs_done, step } => {
                eprintln!("resuming after epoch {epochs_done} (step {step}) from {}", dir.display())
            }
        }
    }

    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        if !self.interactive {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        let template = "{prefix} [{bar:28}] {pos}/{len} {msg} [{elapsed_precise}<{eta_precise}]";
        bar.set_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
        bar.set_prefix(format!("epoch {epoch}/{epochs}"));
        self.bar = Some(bar);
    }

    fn step(&mut self, s: &StepReport) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("loss {:.4} lr {:.2e} {:.1} sent/s", s.mean_loss, s.lr, s.examples_per_second));
            bar.inc(1);
            return;
        }
        let every = (s.steps / 20).max(1);
        if s.index.is_multiple_of(every) || s.index == s.steps {
            let eta = (s.steps - s.index) as f64 * s.seconds / s.index as f64;
            eprintln!(
                "epoch {}/{} step {}/{} loss {:.4} lr {:.2e} {:.1} sent/s eta {eta:.0}s",
                s.epoch, s.epochs, s.index, s.steps, s.mean_loss, s.lr, s.examples_per_second
            );
        }
    }

    fn epoch_end(&mut self, e: &EpochReport) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "epoch {}/{}: train loss {:.4}{}{} ({:.0}s, {:.1} examples/s)",
            e.epoch,
            e.epochs,
            e.train_loss,
            e.dev_summary.as_ref().map(|d| format!(", dev {d}")).unwrap_or_default(),
            if e.improved { " (best, saved)" } else { "" },
            e.seconds,
            e.examples_per_second
        );
        if let Some(epochs) = e.stopping_early_after {
            eprintln!("early stopping: no gain in the dev score for {epochs} epochs");
        }
    }
}

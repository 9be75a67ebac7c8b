//! A study: which trial runs next with which options, whether a trial goes
//! on after each epoch, and the journal that keeps all of it.

use std::path::{Path, PathBuf};

use crate::{journal, pruner, sampler, StudyConfig, StudyError, Trial, TrialState};

/// What a trial does after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Train on.
    Continue,
    /// Stop: the pruner stopped it (the study recorded it as pruned).
    Prune,
}

/// A study and its journal.
#[derive(Debug)]
pub struct Study {
    config: StudyConfig,
    journal: PathBuf,
    trials: Vec<Trial>,
}

impl Study {
    /// Starts a study, writing its journal at `journal` (which must not
    /// exist yet).
    pub fn create(config: StudyConfig, journal: &Path) -> Result<Self, StudyError> {
        if journal.exists() {
            return Err(StudyError::Exists { path: journal.into() });
        }
        let study = Self { config, journal: journal.into(), trials: Vec::new() };
        study.save()?;
        Ok(study)
    }

    /// Opens the study of an existing journal to go on with it; the study
    /// file must describe the same study (only the trial budget may change).
    pub fn resume(config: StudyConfig, journal: &Path) -> Result<Self, StudyError> {
        let (header, trials) = journal::read(journal)?;
        if let Some((key, was, now)) = journal::difference(&header, &config) {
            return Err(StudyError::JournalMismatch { path: journal.into(), key, journal: was, config: now });
        }
        Ok(Self { config, journal: journal.into(), trials })
    }

    /// Reads a study back from its journal alone (to look at it).
    pub fn load(journal: &Path) -> Result<Self, StudyError> {
        let (header, trials) = journal::read(journal)?;
        fn field<T: serde::de::DeserializeOwned>(
            journal: &Path,
            header: &serde_json::Value,
            key: &str,
        ) -> Result<T, StudyError> {
            serde_json::from_value(header[key].clone()).map_err(|e| StudyError::Journal {
                path: journal.into(),
                line: 1,
                message: format!("{key}: {e}"),
            })
        }
        let config = StudyConfig {
            trials: field(journal, &header, "trials")?,
            seed: field(journal, &header, "seed")?,
            sampler: field(journal, &header, "sampler")?,
            pruner: field(journal, &header, "pruner")?,
            train: field(journal, &header, "train")?,
            space: field(journal, &header, "space")?,
            output: journal.parent().map(Path::to_path_buf),
        };
        Ok(Self { config, journal: journal.into(), trials })
    }

    /// The study's settings.
    pub fn config(&self) -> &StudyConfig {
        &self.config
    }

    /// Every trial started, in order.
    pub fn trials(&self) -> &[Trial] {
        &self.trials
    }

    /// Trial `number` (it must exist).
    pub fn trial(&self, number: usize) -> &Trial {
        &self.trials[number]
    }

    /// The trials started and not ended (after a kill: run them again).
    pub fn running(&self) -> Vec<usize> {
        self.trials.iter().filter(|t| t.state == TrialState::Running).map(|t| t.number).collect()
    }

    /// Starts the next trial: draws its options and records it. `None`
    /// when the budget is spent.
    pub fn start_trial(&mut self) -> Result<Option<usize>, StudyError> {
        let number = self.trials.len();
        if number >= self.config.trials {
            return Ok(None);
        }
        let params = sampler::sample(&self.config.sampler, &self.config.space, &self.trials, self.config.seed, number);
        let options = self
            .config
            .trial_options(&params)
            .map_err(|message| StudyError::Trial { number, message: format!("options {params:?}: {message}") })?;
        let trial = Trial {
            number,
            params,
            state: TrialState::Running,
            scores: Vec::new(),
            max_epochs: options.epochs,
            message: None,
        };
        self.trials.push(trial);
        self.save()?;
        Ok(Some(number))
    }

    /// Records a running trial's dev score after `epoch` and asks the
    /// pruner; a pruned trial is recorded as such. An epoch reported again
    /// (a resumed trial redoing it) replaces its score and goes on.
    pub fn report(&mut self, number: usize, epoch: usize, score: f64) -> Result<Decision, StudyError> {
        let trial = self.running_trial(number)?;
        if let Some(seen) = trial.scores.iter_mut().find(|(e, _)| *e == epoch) {
            seen.1 = score;
            self.save()?;
            return Ok(Decision::Continue);
        }
        if trial.last().is_some_and(|(last, _)| epoch < last) {
            return Err(StudyError::Trial { number, message: format!("epoch {epoch} reported after a later one") });
        }
        trial.scores.push((epoch, score));
        let decision = if pruner::should_prune(&self.config.pruner, &self.trials[number], &self.trials) {
            self.trials[number].state = TrialState::Pruned;
            Decision::Prune
        } else {
            Decision::Continue
        };
        self.save()?;
        Ok(decision)
    }

    /// Records a running trial as complete (its score: its best epoch's).
    pub fn complete(&mut self, number: usize) -> Result<(), StudyError> {
        let trial = self.running_trial(number)?;
        if trial.scores.is_empty() {
            return Err(StudyError::Trial { number, message: "complete without a dev score".into() });
        }
        trial.state = TrialState::Complete;
        self.save()
    }

    /// Records a running trial as failed, with why.
    pub fn fail(&mut self, number: usize, message: &str) -> Result<(), StudyError> {
        let trial = self.running_trial(number)?;
        trial.state = TrialState::Failed;
        trial.message = Some(message.to_string());
        self.save()
    }

    /// The complete trial with the best score (the earliest among equals).
    pub fn best(&self) -> Option<&Trial> {
        self.trials.iter().filter(|t| t.value().is_some()).fold(None, |best: Option<&Trial>, t| match best {
            Some(b) if b.value() >= t.value() => Some(b),
            _ => Some(t),
        })
    }

    /// Epochs trained over all trials, and the epochs they would have
    /// trained unpruned.
    pub fn epochs(&self) -> (usize, usize) {
        let done = self.trials.iter().map(|t| t.scores.len()).sum();
        (done, self.trials.iter().map(|t| t.max_epochs).sum())
    }

    /// The best options as a table of `ferrotune train --config` keys: the
    /// fixed options and the best trial's.
    pub fn best_options(&self) -> Option<toml::Table> {
        let best = self.best()?;
        let mut table = self.config.train.clone();
        for (key, value) in &best.params {
            table.insert(key.clone(), toml::Value::try_from(value).ok()?);
        }
        Some(table)
    }

    fn running_trial(&mut self, number: usize) -> Result<&mut Trial, StudyError> {
        match self.trials.get_mut(number) {
            Some(t) if t.state == TrialState::Running => Ok(t),
            Some(t) => Err(StudyError::Trial { number, message: format!("is {:?}, not running", t.state) }),
            None => Err(StudyError::Trial { number, message: "no such trial".into() }),
        }
    }

    fn save(&self) -> Result<(), StudyError> {
        journal::write(&self.journal, &self.config, &self.trials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        trials = 12
        seed = 5
        sampler = { type = "tpe", startup_trials = 4 }
        pruner = "asha"
        [train]
        epochs = 4
        [space]
        lr = { type = "float", low = 1e-5, high = 1e-3, log = true }
        batch_size = { type = "categorical", values = [8, 16, 32] }
    "#;

    /// A stand-in for training: smooth in the options, rising with epochs.
    fn score(trial: &Trial, epoch: usize) -> f64 {
        let lr = trial.params["lr"].as_f64().unwrap();
        let batch = trial.params["batch_size"].as_f64().unwrap();
        0.9 - 0.05 * (lr.ln() - 1e-4f64.ln()).powi(2) - 0.002 * batch + 0.02 * epoch as f64
    }

    /// Runs a study to its end, or until `stop` trials have started.
    fn run(study: &mut Study, stop: usize) {
        let mut next = study.running();
        loop {
            let number = match next.pop() {
                Some(n) => n,
                None if study.trials().len() >= stop => return,
                None => match study.start_trial().unwrap() {
                    Some(n) => n,
                    None => return,
                },
            };
            let from = study.trial(number).scores.len() + 1;
            let mut pruned = false;
            for epoch in from..=4 {
                if study.report(number, epoch, score(study.trial(number), epoch)).unwrap() == Decision::Prune {
                    pruned = true;
                    break;
                }
                if study.trials().len() == stop && epoch == 2 && from == 1 {
                    return; // killed in the middle of a trial
                }
            }
            if !pruned {
                study.complete(number).unwrap();
            }
        }
    }

    fn config() -> StudyConfig {
        StudyConfig::parse(FILE, Path::new("search.toml")).unwrap()
    }

    #[test]
    fn a_killed_study_resumes_into_the_same_trials() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
        let mut whole = Study::create(config(), &a).unwrap();
        run(&mut whole, usize::MAX);
        let mut killed = Study::create(config(), &b).unwrap();
        run(&mut killed, 5);
        assert_eq!(killed.trials().len(), 5);
        drop(killed);
        let mut resumed = Study::resume(config(), &b).unwrap();
        run(&mut resumed, usize::MAX);
        assert_eq!(whole.trials(), resumed.trials());
        assert_eq!(Study::load(&b).unwrap().trials(), whole.trials());
        let pruned = whole.trials().iter().filter(|t| t.state == TrialState::Pruned).count();
        let (done, budget) = whole.epochs();
        assert!(pruned >= 4 && done < budget, "{pruned} pruned, {done} of {budget} epochs");
        let best = whole.best().unwrap();
        assert!(whole.trials().iter().all(|t| t.value().is_none_or(|v| v <= best.value().unwrap())));
        let options = whole.best_options().unwrap();
        assert_eq!(options["epochs"].as_integer(), Some(4));
        assert_eq!(options["lr"].as_float(), best.params["lr"].as_f64());
    }

    #[test]
    fn resuming_needs_the_same_study_and_starting_needs_a_new_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        Study::create(config(), &path).unwrap();
        assert!(matches!(Study::create(config(), &path), Err(StudyError::Exists { .. })));
        let other = StudyConfig::parse(&FILE.replace("1e-3, log", "3e-4, log"), Path::new("s.toml")).unwrap();
        let message = Study::resume(other, &path).unwrap_err().to_string();
        assert!(
            message.contains("journal.jsonl") && message.contains("space.lr.high is 0.001 there, 0.0003"),
            "{message}"
        );
        let longer = StudyConfig::parse(&FILE.replace("trials = 12", "trials = 20"), Path::new("s.toml")).unwrap();
        assert!(Study::resume(longer, &path).is_ok(), "the budget may grow");
        std::fs::write(&path, "{\"space\": {}}\n{\"number\": 3}\n").unwrap();
        let message = Study::resume(config(), &path).unwrap_err().to_string();
        assert!(message.contains("journal.jsonl, line 2"), "{message}");
    }
}

//! Pruners: whether a trial goes on after an epoch, from its dev score and
//! the other trials' (Optuna's `MedianPruner` and `SuccessiveHalvingPruner`).

use crate::{PrunerConfig, Trial, TrialState};

/// Whether `trial`, whose last score is its newest epoch's, should stop;
/// `trials` is the whole study (`trial` among them or not).
pub(crate) fn should_prune(config: &PrunerConfig, trial: &Trial, trials: &[Trial]) -> bool {
    let Some((epoch, score)) = trial.last() else { return false };
    let others = || trials.iter().filter(move |t| t.number != trial.number);
    match *config {
        PrunerConfig::None => false,
        PrunerConfig::Median { startup_trials, warmup_epochs } => {
            let completed: Vec<&Trial> = others().filter(|t| t.state == TrialState::Complete).collect();
            if completed.len() < startup_trials || epoch <= warmup_epochs {
                return false;
            }
            let mut there: Vec<f64> = completed.iter().filter_map(|t| t.score_at(epoch)).collect();
            if there.is_empty() {
                return false;
            }
            let best = trial.best_score().unwrap_or(score);
            best < median(&mut there)
        }
        PrunerConfig::Asha { min_epochs, reduction_factor, min_early_stopping_rate } => {
            // Every epoch is reported, so a trial meets each rung at its
            // exact epoch; earlier rungs were passed (or it would have stopped).
            let mut rung = 0;
            loop {
                let rung_epoch = reduction_factor
                    .checked_pow(min_early_stopping_rate + rung)
                    .and_then(|f| f.checked_mul(min_epochs))
                    .unwrap_or(usize::MAX);
                if epoch < rung_epoch {
                    return false;
                }
                if epoch == rung_epoch {
                    let mut competing: Vec<f64> = others().filter_map(|t| t.score_at(rung_epoch)).collect();
                    competing.push(score);
                    return !promotable(score, competing, reduction_factor);
                }
                rung += 1;
            }
        }
    }
}

/// The median, interpolating between the middle two (numpy's percentile 50).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = (values.len() - 1) as f64 / 2.0;
    let (lo, hi) = (values[mid.floor() as usize], values[mid.ceil() as usize]);
    lo + (hi - lo) * (mid - mid.floor())
}

/// Whether `score` is among the best `len / reduction_factor` of
/// `competing` (itself included); among fewer than `reduction_factor`
/// scores only the best goes on, as in Optuna.
fn promotable(score: f64, mut competing: Vec<f64>, reduction_factor: usize) -> bool {
    let k = (competing.len() / reduction_factor).max(1);
    competing.sort_by(|a, b| b.total_cmp(a));
    score >= competing[k - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn trial(number: usize, state: TrialState, scores: &[f64]) -> Trial {
        let scores = scores.iter().enumerate().map(|(i, &s)| (i + 1, s)).collect();
        Trial { number, params: Map::new(), state, scores, max_epochs: 4, message: None }
    }

    const ASHA: PrunerConfig = PrunerConfig::Asha { min_epochs: 1, reduction_factor: 3, min_early_stopping_rate: 0 };

    #[test]
    fn asha_promotes_the_best_third_at_each_rung() {
        use TrialState::*;
        // The first trial is always promoted; the second only when best.
        assert!(!should_prune(&ASHA, &trial(0, Running, &[0.5]), &[]));
        let first = trial(0, Complete, &[0.5, 0.6, 0.7, 0.8]);
        assert!(should_prune(&ASHA, &trial(1, Running, &[0.4]), std::slice::from_ref(&first)));
        assert!(!should_prune(&ASHA, &trial(1, Running, &[0.55]), std::slice::from_ref(&first)));
        // Six scores at epoch 1 (five others + itself): the best two go on.
        let others: Vec<Trial> =
            [0.1, 0.2, 0.3, 0.9, 0.5].iter().enumerate().map(|(i, &s)| trial(i, Pruned, &[s])).collect();
        assert!(!should_prune(&ASHA, &trial(9, Running, &[0.6]), &others));
        assert!(should_prune(&ASHA, &trial(9, Running, &[0.45]), &others));
        // Epoch 2 is no rung; epoch 3 is (1 x 3^1), compared with scores at 3.
        assert!(!should_prune(&ASHA, &trial(9, Running, &[0.6, 0.0]), &others));
        let deep = [trial(0, Complete, &[0.5, 0.6, 0.9, 0.9]), trial(1, Complete, &[0.5, 0.6, 0.8, 0.8])];
        assert!(should_prune(&ASHA, &trial(9, Running, &[0.6, 0.6, 0.7]), &deep));
        assert!(!should_prune(&ASHA, &trial(9, Running, &[0.6, 0.6, 0.95]), &deep));
        // Past the last rung of a 4-epoch trial nothing is pruned.
        assert!(!should_prune(&ASHA, &trial(9, Running, &[0.6, 0.6, 0.95, 0.0]), &deep));
    }

    /// Optuna's own decisions (scripts/pruner_cases.py): 20-trial studies of
    /// fixed learning curves through `MedianPruner` and
    /// `SuccessiveHalvingPruner`, one trial after another.
    #[test]
    fn decisions_equal_optunas() {
        let cases: serde_json::Value = serde_json::from_str(include_str!("pruner_cases.json")).unwrap();
        for case in cases["cases"].as_array().unwrap() {
            let config: PrunerConfig = serde_json::from_value(case["pruner"].clone()).unwrap();
            let mut trials: Vec<Trial> = Vec::new();
            for (number, expected) in case["trials"].as_array().unwrap().iter().enumerate() {
                let mut current = trial(number, TrialState::Running, &[]);
                for (epoch, score) in expected["scores"].as_array().unwrap().iter().enumerate() {
                    current.scores.push((epoch + 1, score.as_f64().unwrap()));
                    if should_prune(&config, &current, &trials) {
                        current.state = TrialState::Pruned;
                        break;
                    }
                }
                if current.state == TrialState::Running {
                    current.state = TrialState::Complete;
                }
                let want = (expected["state"].as_str().unwrap(), expected["epochs"].as_u64().unwrap() as usize);
                assert_eq!(
                    (current.state.name(), current.scores.len()),
                    want,
                    "{config:?} seed {} trial {number}",
                    case["seed"]
                );
                trials.push(current);
            }
        }
    }

    #[test]
    fn median_waits_for_completed_trials_then_compares_the_best_so_far() {
        use TrialState::*;
        let median_pruner = PrunerConfig::Median { startup_trials: 2, warmup_epochs: 1 };
        let one = [trial(0, Complete, &[0.2, 0.4, 0.6])];
        assert!(!should_prune(&median_pruner, &trial(5, Running, &[0.0, 0.0]), &one), "startup");
        let done =
            [trial(0, Complete, &[0.2, 0.4, 0.6]), trial(1, Complete, &[0.2, 0.6, 0.7]), trial(2, Pruned, &[0.9, 0.9])];
        assert!(!should_prune(&median_pruner, &trial(5, Running, &[0.0]), &done), "warm-up epoch");
        // Median at epoch 2 of the completed trials: (0.4 + 0.6) / 2 = 0.5.
        assert!(should_prune(&median_pruner, &trial(5, Running, &[0.1, 0.45]), &done));
        assert!(!should_prune(&median_pruner, &trial(5, Running, &[0.55, 0.45]), &done), "best so far counts");
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
    }
}

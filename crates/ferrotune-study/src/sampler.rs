//! Proposing a trial's options: uniform draws, or TPE once enough trials
//! have finished. Each trial draws from its own stream of the study's
//! seed, so a trial's options depend only on the seed, its number and the
//! trials finished before it.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use crate::{tpe, SamplerConfig, SearchSpace, Trial, TrialState};

/// The options of trial `number`, given the study's trials so far.
pub(crate) fn sample(
    config: &SamplerConfig,
    space: &SearchSpace,
    trials: &[Trial],
    seed: u64,
    number: usize,
) -> Map<String, Value> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(number as u64);
    let finished: Vec<&Trial> = trials.iter().filter(|t| t.is_finished()).collect();
    let (good, rest) = split(&finished);
    space
        .iter()
        .map(|(name, param)| {
            let value = match *config {
                SamplerConfig::Tpe { startup_trials, candidates } if finished.len() >= startup_trials => {
                    let observed = |group: &[&Trial]| -> Vec<f64> {
                        group.iter().filter_map(|t| param.position(t.params.get(name)?)).collect()
                    };
                    let x = tpe::propose(param.domain(), &observed(&good), &observed(&rest), candidates, &mut rng);
                    param.value_at(x)
                }
                _ => param.sample_uniform(&mut rng),
            };
            (name.clone(), value)
        })
        .collect()
}

/// TPE's split of the finished trials into the good group and the rest,
/// in Optuna's order: complete trials best first, then pruned ones by the
/// epoch they reached and their score there.
fn split<'a>(finished: &[&'a Trial]) -> (Vec<&'a Trial>, Vec<&'a Trial>) {
    let mut complete: Vec<&Trial> = finished.iter().copied().filter(|t| t.state == TrialState::Complete).collect();
    complete.sort_by(|a, b| b.value().unwrap_or(f64::MIN).total_cmp(&a.value().unwrap_or(f64::MIN)));
    let mut pruned: Vec<&Trial> = finished.iter().copied().filter(|t| t.state == TrialState::Pruned).collect();
    pruned.sort_by(|a, b| {
        let (ea, sa) = a.last().unwrap_or((0, f64::MIN));
        let (eb, sb) = b.last().unwrap_or((0, f64::MIN));
        eb.cmp(&ea).then(sb.total_cmp(&sa))
    });
    let ranked: Vec<&Trial> = complete.into_iter().chain(pruned).collect();
    let n_good = tpe::good_count(ranked.len());
    (ranked[..n_good].to_vec(), ranked[n_good..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Param;

    fn finished(number: usize, state: TrialState, scores: &[f64]) -> Trial {
        let scores = scores.iter().enumerate().map(|(i, &s)| (i + 1, s)).collect();
        Trial { number, params: Map::new(), state, scores, max_epochs: 4, message: None }
    }

    #[test]
    fn complete_trials_rank_before_pruned_ones_and_deeper_pruned_before_shallower() {
        use TrialState::*;
        let trials: Vec<Trial> = vec![
            finished(0, Pruned, &[0.99]),
            finished(1, Complete, &[0.5, 0.6]),
            finished(2, Pruned, &[0.4, 0.45, 0.5]),
            finished(3, Complete, &[0.7, 0.8]),
        ];
        let refs: Vec<&Trial> = trials.iter().collect();
        let (good, rest) = split(&refs);
        assert_eq!(good.iter().map(|t| t.number).collect::<Vec<_>>(), [3]);
        assert_eq!(rest.iter().map(|t| t.number).collect::<Vec<_>>(), [1, 2, 0]);
        let refs: Vec<&Trial> = trials.iter().filter(|t| t.state == Pruned).collect();
        assert_eq!(split(&refs).0[0].number, 2, "the deeper pruned trial ranks first");
    }

    #[test]
    fn the_same_seed_and_history_give_the_same_options() {
        let space = SearchSpace::from([
            ("lr".to_string(), Param::Float { low: 1e-5, high: 3e-4, log: true }),
            ("batch_size".to_string(), Param::Categorical { values: vec![8.into(), 16.into(), 32.into()] }),
        ]);
        let tpe = SamplerConfig::Tpe { startup_trials: 2, candidates: 24 };
        let mut trials = Vec::new();
        for number in 0..6 {
            let params = sample(&tpe, &space, &trials, 11, number);
            assert_eq!(params, sample(&tpe, &space, &trials, 11, number));
            assert_ne!(params, sample(&tpe, &space, &trials, 12, number));
            let lr = params["lr"].as_f64().unwrap();
            let mut trial = finished(number, TrialState::Complete, &[-(lr.ln() - 1e-4f64.ln()).abs()]);
            trial.params = params;
            trials.push(trial);
        }
    }
}

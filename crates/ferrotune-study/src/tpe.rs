//! The tree-structured Parzen estimator for one option (Optuna's
//! independent TPE): the finished trials split into the good few and the
//! rest, a Parzen density over each group's values, and of candidates drawn
//! from the good density, the one where it most exceeds the other.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::space::Domain;

/// The prior's weight among the observations' (Optuna's `prior_weight`).
const PRIOR_WEIGHT: f64 = 1.0;

/// How many of `n` finished trials are the good group (Optuna's
/// `default_gamma`: 10%, rounded up, at most 25).
pub(crate) fn good_count(n: usize) -> usize {
    n.div_ceil(10).min(25)
}

/// Each observation's weight, oldest first (Optuna's `default_weights`:
/// the newest 25 count fully, older ones on a ramp from `1/n`).
fn observation_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let mut weights: Vec<f64> = (0..ramp)
        .map(|i| {
            if ramp == 1 {
                1.0 / n as f64
            } else {
                1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / (ramp - 1) as f64
            }
        })
        .collect();
    weights.extend(std::iter::repeat_n(1.0, 25));
    weights
}

/// A mixture density over one option's domain: a kernel per observation
/// and one for the prior.
#[derive(Debug)]
pub(crate) struct Parzen {
    /// The kernels' weights (sum 1).
    weights: Vec<f64>,
    kernels: Kernels,
}

#[derive(Debug)]
enum Kernels {
    /// Normal kernels truncated to `[low, high]` (for integers, the
    /// half-way points beyond the ends, in log space for log integers).
    Numeric { mus: Vec<f64>, sigmas: Vec<f64>, low: f64, high: f64, values: Values },
    /// One probability row per kernel over the choices.
    Choices { rows: Vec<Vec<f64>> },
}

/// What a numeric domain's points are.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Values {
    /// Real numbers: densities.
    Real,
    /// Integers, each owning `[v - 0.5, v + 0.5]`: probabilities.
    Integers,
    /// Integers as their logs, each owning `[ln(v - 0.5), ln(v + 0.5)]`.
    LogIntegers,
}

impl Parzen {
    /// The density of `observations` (domain numbers, in the order Optuna
    /// keeps them: the weights' ramp, beyond 25 of them, follows it).
    pub(crate) fn new(domain: Domain, observations: &[f64]) -> Self {
        let mut weights = observation_weights(observations.len());
        weights.push(PRIOR_WEIGHT);
        let sum: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= sum);
        let kernels = match domain {
            Domain::Continuous { low, high } => numeric(observations, low, high, Values::Real),
            Domain::Integers { low, high } => numeric(observations, low - 0.5, high + 0.5, Values::Integers),
            Domain::LogIntegers { low, high } => {
                numeric(observations, (low - 0.5).ln(), (high + 0.5).ln(), Values::LogIntegers)
            }
            Domain::Choices { n } => {
                let kernels = observations.len() + 1;
                let base = PRIOR_WEIGHT / kernels as f64;
                let mut rows: Vec<Vec<f64>> = observations
                    .iter()
                    .map(|&x| {
                        let mut row = vec![base; n];
                        row[x as usize] += 1.0;
                        row
                    })
                    .collect();
                rows.push(vec![base; n]);
                for row in &mut rows {
                    let sum: f64 = row.iter().sum();
                    row.iter_mut().for_each(|p| *p /= sum);
                }
                Kernels::Choices { rows }
            }
        };
        Self { weights, kernels }
    }

    /// One draw (a domain number).
    pub(crate) fn sample(&self, rng: &mut impl Rng) -> f64 {
        let k = pick(&self.weights, rng);
        match &self.kernels {
            Kernels::Numeric { mus, sigmas, low, high, values } => {
                let x = truncated_normal(mus[k], sigmas[k], *low, *high, rng);
                match values {
                    Values::Real => x,
                    Values::Integers => x.round().clamp(low + 0.5, high - 0.5),
                    Values::LogIntegers => {
                        x.exp().round().clamp((low.exp() + 0.5).round(), (high.exp() - 0.5).round()).ln()
                    }
                }
            }
            Kernels::Choices { rows } => pick(&rows[k], rng) as f64,
        }
    }

    /// The log density (or log probability, for integers and choices) at `x`.
    pub(crate) fn log_pdf(&self, x: f64) -> f64 {
        let terms = self.weights.iter().enumerate().map(|(k, w)| {
            w.ln()
                + match &self.kernels {
                    Kernels::Numeric { mus, sigmas, low, high, values } => {
                        let (mu, sigma) = (mus[k], sigmas[k]);
                        let own = match values {
                            Values::Real => {
                                let z = (x - mu) / sigma;
                                -0.5 * z * z - (sigma * (2.0 * std::f64::consts::PI).sqrt()).ln()
                            }
                            Values::Integers => mass(mu, sigma, x - 0.5, x + 0.5).ln(),
                            Values::LogIntegers => {
                                let v = x.exp().round();
                                mass(mu, sigma, (v - 0.5).ln(), (v + 0.5).ln()).ln()
                            }
                        };
                        own - mass(mu, sigma, *low, *high).ln()
                    }
                    Kernels::Choices { rows } => rows[k][x as usize].ln(),
                }
        });
        log_sum_exp(terms)
    }
}

/// Optuna's kernel widths over `[low, high]` (for integers, already the
/// half-way points beyond the ends): each observation's larger gap to its
/// sorted neighbours (the ends count as neighbours, except that the
/// smallest and largest observations take their inner gap), clipped to
/// `[range / min(100, n + 2), range]` ("magic clip", `n + 1` kernels with
/// the prior); the prior sits mid-range with the whole range as its width.
fn numeric(observations: &[f64], low: f64, high: f64, values: Values) -> Kernels {
    let range = high - low;
    let n = observations.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| observations[a].total_cmp(&observations[b]));
    let mut points = vec![low];
    points.extend(order.iter().map(|&i| observations[i]));
    points.push(high);
    let mut sorted_sigmas: Vec<f64> =
        (1..=n).map(|i| (points[i] - points[i - 1]).max(points[i + 1] - points[i])).collect();
    if n >= 2 {
        sorted_sigmas[0] = points[2] - points[1];
        sorted_sigmas[n - 1] = points[n] - points[n - 1];
    }
    let (min_sigma, max_sigma) = (range / f64::min(100.0, n as f64 + 2.0), range);
    let mut sigmas = vec![0.0; n];
    for (rank, &i) in order.iter().enumerate() {
        sigmas[i] = sorted_sigmas[rank].clamp(min_sigma, max_sigma);
    }
    let mut mus = observations.to_vec();
    mus.push((low + high) / 2.0);
    sigmas.push(range);
    Kernels::Numeric { mus, sigmas, low, high, values }
}

/// The normal `(mu, sigma)`'s probability of `[a, b]`, never quite 0.
fn mass(mu: f64, sigma: f64, a: f64, b: f64) -> f64 {
    let cdf = |x: f64| 0.5 * libm::erfc(-(x - mu) / (sigma * std::f64::consts::SQRT_2));
    (cdf(b) - cdf(a)).max(f64::MIN_POSITIVE)
}

/// A normal draw kept inside `[a, b]` (by rejection: the kernels' centres
/// lie inside, so at least about a third of draws land there).
fn truncated_normal(mu: f64, sigma: f64, a: f64, b: f64, rng: &mut impl Rng) -> f64 {
    for _ in 0..1000 {
        let z: f64 = StandardNormal.sample(rng);
        let x = mu + sigma * z;
        if (a..=b).contains(&x) {
            return x;
        }
    }
    mu.clamp(a, b)
}

/// An index drawn with the given (non-negative, summing to about 1) weights.
fn pick(weights: &[f64], rng: &mut impl Rng) -> usize {
    let mut u: f64 = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

fn log_sum_exp(terms: impl Iterator<Item = f64>) -> f64 {
    let terms: Vec<f64> = terms.collect();
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

/// TPE's proposal for one option: `candidates` draws from the good
/// trials' density, the one with the largest log-density ratio of good
/// to other trials.
pub(crate) fn propose(domain: Domain, good: &[f64], rest: &[f64], candidates: usize, rng: &mut impl Rng) -> f64 {
    let (good, rest) = (Parzen::new(domain, good), Parzen::new(domain, rest));
    let mut best = (f64::NEG_INFINITY, f64::NAN);
    for _ in 0..candidates {
        let x = good.sample(rng);
        let score = good.log_pdf(x) - rest.log_pdf(x);
        if score > best.0 || best.1.is_nan() {
            best = (score, x);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn counts_and_weights_follow_optuna() {
        assert_eq!([1, 9, 10, 11, 16, 300].map(good_count), [1, 1, 1, 2, 2, 25]);
        assert_eq!(observation_weights(3), vec![1.0; 3]);
        let w = observation_weights(30);
        assert_eq!(w.len(), 30);
        assert!((w[0] - 1.0 / 30.0).abs() < 1e-12 && (w[4] - 1.0).abs() < 1e-12 && w[29] == 1.0);
    }

    /// Optuna's own log densities (scripts/tpe_cases.py) for floats, log
    /// floats, integers, log integers and categoricals, with 0, 1, a few and
    /// 30 observations (the weights' ramp).
    #[test]
    fn densities_equal_optunas() {
        let cases: serde_json::Value = serde_json::from_str(include_str!("tpe_cases.json")).unwrap();
        for case in cases["cases"].as_array().unwrap() {
            let param: crate::Param = serde_json::from_value(case["param"].clone()).unwrap();
            let at = |v: &serde_json::Value| param.position(v).unwrap();
            let observations: Vec<f64> = case["observations"].as_array().unwrap().iter().map(at).collect();
            let parzen = Parzen::new(param.domain(), &observations);
            for (point, expected) in case["points"].as_array().unwrap().iter().zip(case["log_pdf"].as_array().unwrap())
            {
                let (got, expected) = (parzen.log_pdf(at(point)), expected.as_f64().unwrap());
                assert!(
                    (got - expected).abs() < 1e-9,
                    "{param:?} {observations:?} at {point}: {got} vs Optuna's {expected}"
                );
            }
        }
    }

    #[test]
    fn densities_integrate_to_one() {
        let continuous = Parzen::new(Domain::Continuous { low: -2.0, high: 3.0 }, &[0.1, 0.5, 2.9]);
        let steps = 20_000;
        let h = 5.0 / steps as f64;
        let integral: f64 = (0..steps).map(|i| continuous.log_pdf(-2.0 + (i as f64 + 0.5) * h).exp() * h).sum();
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
        let integers = Parzen::new(Domain::Integers { low: 1.0, high: 6.0 }, &[2.0, 2.0, 5.0]);
        let total: f64 = (1..=6).map(|v| integers.log_pdf(v as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        let choices = Parzen::new(Domain::Choices { n: 3 }, &[0.0, 2.0]);
        let total: f64 = (0..3).map(|v| choices.log_pdf(v as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert!(choices.log_pdf(0.0) > choices.log_pdf(1.0));
    }

    #[test]
    fn proposals_move_towards_the_good_trials() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let domain = Domain::Continuous { low: 0.0, high: 10.0 };
        let (good, rest) = ([2.0, 2.2], [6.0, 7.0, 8.0, 9.0, 5.5, 6.5, 7.5, 8.5]);
        let near = (0..50).filter(|_| (propose(domain, &good, &rest, 24, &mut rng) - 2.1).abs() < 1.5).count();
        assert!(near >= 45, "{near} of 50 proposals near the good trials");
        let draws: Vec<f64> = (0..2000).map(|_| Parzen::new(domain, &good).sample(&mut rng)).collect();
        assert!(draws.iter().all(|x| (0.0..=10.0).contains(x)));
        let integers = Domain::Integers { low: 1.0, high: 4.0 };
        let picks: Vec<f64> = (0..50).map(|_| propose(integers, &[4.0], &[1.0, 2.0, 1.0], 24, &mut rng)).collect();
        assert!(picks.iter().all(|&x| x.fract() == 0.0 && (1.0..=4.0).contains(&x)));
        assert!(picks.iter().filter(|&&x| x == 4.0).count() >= 40);
    }
}

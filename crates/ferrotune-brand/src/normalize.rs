//! From raw indicator values to comparable scores.

use serde::{Deserialize, Serialize};

/// Whether higher or lower raw values are better (e.g. response time: lower).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Higher is better.
    #[default]
    Higher,
    /// Lower is better.
    Lower,
}

/// How a raw value becomes a score; all but `none` and `zscore` give 0..1,
/// 1 being best.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum Normalize {
    /// The raw value (negated when lower is better).
    #[default]
    None,
    /// `(x - min) / (max - min)`, clamped to 0..1.
    Minmax {
        /// Value scoring 0.
        min: f64,
        /// Value scoring 1.
        max: f64,
    },
    /// `(x - mean) / std` across the scenarios (population std; 0 if all equal).
    Zscore,
    /// 0 at `threshold`, 1 at `target`, linear between, clamped.
    Target {
        /// Value scoring 1.
        target: f64,
        /// Value scoring 0.
        threshold: f64,
    },
    /// `ln(1 + x) / ln(1 + max)`, clamped to 0..1: for counts such as views.
    Log {
        /// Count scoring 1.
        max: f64,
    },
}

/// Statistics of one indicator across scenarios, for `zscore`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
}

impl Stats {
    /// Mean and population standard deviation of `values`.
    pub fn of(values: impl Iterator<Item = f64> + Clone) -> Self {
        let n = values.clone().count().max(1) as f64;
        let mean = values.clone().sum::<f64>() / n;
        let var = values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        Self { mean, std: var.sqrt() }
    }
}

impl Normalize {
    /// Checks the parameters against the direction.
    // `!(a > b)` on purpose: a NaN parameter must fail every check.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn validate(&self, direction: Direction) -> Result<(), String> {
        match *self {
            Normalize::Minmax { min, max } if !(max > min) => {
                Err(format!("minmax needs max > min (min {min}, max {max})"))
            }
            Normalize::Target { target, threshold } => match direction {
                Direction::Higher if !(target > threshold) => {
                    Err(format!("direction 'higher' needs target > threshold (target {target}, threshold {threshold})"))
                }
                Direction::Lower if !(target < threshold) => {
                    Err(format!("direction 'lower' needs target < threshold (target {target}, threshold {threshold})"))
                }
                _ => Ok(()),
            },
            Normalize::Log { max } if !(max > 0.0) => Err(format!("log needs max > 0 (max {max})")),
            _ => Ok(()),
        }
    }

    /// Checks a raw value (log scaling needs counts, i.e. values >= 0).
    pub fn check_value(&self, value: f64) -> Result<(), String> {
        match self {
            Normalize::Log { .. } if value < 0.0 => Err(format!("log scaling needs a value >= 0, got {value}")),
            _ => Ok(()),
        }
    }

    /// The score of a raw value; `stats` are the indicator's across scenarios.
    pub fn apply(&self, x: f64, direction: Direction, stats: Stats) -> f64 {
        let flip = |s: f64| if direction == Direction::Lower { 1.0 - s } else { s };
        match *self {
            Normalize::None => match direction {
                Direction::Higher => x,
                Direction::Lower => -x,
            },
            Normalize::Minmax { min, max } => flip(((x - min) / (max - min)).clamp(0.0, 1.0)),
            Normalize::Zscore => {
                let z = if stats.std > 0.0 { (x - stats.mean) / stats.std } else { 0.0 };
                if direction == Direction::Lower {
                    -z
                } else {
                    z
                }
            }
            Normalize::Target { target, threshold } => ((x - threshold) / (target - threshold)).clamp(0.0, 1.0),
            Normalize::Log { max } => flip(((1.0 + x.max(0.0)).ln() / (1.0 + max).ln()).clamp(0.0, 1.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_STATS: Stats = Stats { mean: 0.0, std: 0.0 };

    #[test]
    fn methods_and_directions() {
        let mm = Normalize::Minmax { min: 0.0, max: 10.0 };
        assert_eq!(mm.apply(7.5, Direction::Higher, NO_STATS), 0.75);
        assert_eq!(mm.apply(7.5, Direction::Lower, NO_STATS), 0.25);
        assert_eq!(mm.apply(12.0, Direction::Higher, NO_STATS), 1.0);
        let t = Normalize::Target { target: 1.0, threshold: 9.0 };
        assert_eq!(t.apply(3.0, Direction::Lower, NO_STATS), 0.75);
        assert_eq!(t.apply(0.5, Direction::Lower, NO_STATS), 1.0);
        let log = Normalize::Log { max: 999.0 };
        assert!((log.apply(99.0, Direction::Higher, NO_STATS) - 2.0 / 3.0).abs() < 1e-12);
        let z = Normalize::Zscore;
        let stats = Stats::of([1.0, 3.0].into_iter());
        assert_eq!(stats, Stats { mean: 2.0, std: 1.0 });
        assert_eq!(z.apply(3.0, Direction::Higher, stats), 1.0);
        assert_eq!(z.apply(3.0, Direction::Lower, stats), -1.0);
        assert_eq!(z.apply(3.0, Direction::Lower, Stats { mean: 3.0, std: 0.0 }), 0.0);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(Normalize::Minmax { min: 1.0, max: 1.0 }.validate(Direction::Higher).is_err());
        assert!(Normalize::Target { target: 1.0, threshold: 9.0 }.validate(Direction::Higher).is_err());
        assert!(Normalize::Target { target: 1.0, threshold: 9.0 }.validate(Direction::Lower).is_ok());
        assert!(Normalize::Log { max: 0.0 }.validate(Direction::Higher).is_err());
        assert!(Normalize::Log { max: 10.0 }.check_value(-1.0).is_err());
    }
}

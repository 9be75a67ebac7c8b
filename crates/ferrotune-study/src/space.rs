//! The search space: which training options a study tries, and how.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How one option is drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Param {
    /// A float in `[low, high]`, uniform or (with `log`) log-uniform.
    Float {
        /// The smallest value.
        low: f64,
        /// The largest value.
        high: f64,
        /// Drawn uniformly in log space (both ends above 0).
        #[serde(default)]
        log: bool,
    },
    /// An integer in `[low, high]`, uniform or (with `log`) log-uniform.
    Int {
        /// The smallest value.
        low: i64,
        /// The largest value.
        high: i64,
        /// Drawn uniformly in log space (both ends above 0).
        #[serde(default)]
        log: bool,
    },
    /// One of a list of values (numbers, strings, booleans).
    Categorical {
        /// The values, in the order given.
        values: Vec<Value>,
    },
}

/// Where a sampler works on a parameter: its values mapped to numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Domain {
    /// Real numbers in `[low, high]` (a log range is already in logs).
    Continuous { low: f64, high: f64 },
    /// The integers of `[low, high]`.
    Integers { low: f64, high: f64 },
    /// The integers of `[low, high]` (above 0), as their logarithms.
    LogIntegers { low: f64, high: f64 },
    /// Indices of `n` choices.
    Choices { n: usize },
}

impl Param {
    /// What is wrong with this parameter's range, if anything.
    pub(crate) fn problem(&self) -> Option<String> {
        match *self {
            Param::Float { low, high, log } => {
                if !low.is_finite() || !high.is_finite() {
                    Some("low and high must be finite numbers".into())
                } else {
                    range_problem(low, high, log)
                }
            }
            Param::Int { low, high, log } => range_problem(low as f64, high as f64, log),
            Param::Categorical { ref values } => {
                if values.is_empty() {
                    return Some("a categorical needs at least one value".into());
                }
                let nested = values.iter().find(|v| v.is_array() || v.is_object() || v.is_null());
                if let Some(v) = nested {
                    return Some(format!("values must be numbers, strings or booleans, not {v}"));
                }
                (1..values.len())
                    .find(|&i| values[..i].contains(&values[i]))
                    .map(|i| format!("the value {} is listed twice", values[i]))
            }
        }
    }

    /// The values worth checking against the training options: the ends
    /// of a range, every categorical value.
    pub(crate) fn extremes(&self) -> Vec<Value> {
        match self {
            Param::Float { low, high, .. } => vec![Value::from(*low), Value::from(*high)],
            Param::Int { low, high, .. } => vec![Value::from(*low), Value::from(*high)],
            Param::Categorical { values } => values.clone(),
        }
    }

    pub(crate) fn domain(&self) -> Domain {
        match *self {
            Param::Float { low, high, log: false } => Domain::Continuous { low, high },
            Param::Float { low, high, log: true } => Domain::Continuous { low: low.ln(), high: high.ln() },
            Param::Int { low, high, log: false } => Domain::Integers { low: low as f64, high: high as f64 },
            Param::Int { low, high, log: true } => Domain::LogIntegers { low: low as f64, high: high as f64 },
            Param::Categorical { ref values } => Domain::Choices { n: values.len() },
        }
    }

    /// A value of this parameter as a number of its domain, if it is one.
    pub(crate) fn position(&self, value: &Value) -> Option<f64> {
        match self {
            Param::Float { log, .. } => value.as_f64().map(|v| if *log { v.ln() } else { v }),
            Param::Int { log, .. } => value.as_i64().map(|v| if *log { (v as f64).ln() } else { v as f64 }),
            Param::Categorical { values } => values.iter().position(|v| v == value).map(|i| i as f64),
        }
    }

    /// The value at a number of this parameter's domain.
    pub(crate) fn value_at(&self, x: f64) -> Value {
        match *self {
            Param::Float { low, high, log } => Value::from(if log { x.exp() } else { x }.clamp(low, high)),
            Param::Int { low, high, log } => {
                let v = if log { x.exp() } else { x };
                Value::from((v.round() as i64).clamp(low, high))
            }
            Param::Categorical { ref values } => values[(x.round() as usize).min(values.len() - 1)].clone(),
        }
    }

    /// A value drawn uniformly from the domain (the random sampler).
    pub(crate) fn sample_uniform(&self, rng: &mut impl Rng) -> Value {
        let x = match self.domain() {
            Domain::Continuous { low, high } => low + (high - low) * rng.random::<f64>(),
            Domain::Integers { low, high } => rng.random_range(low as i64..=high as i64) as f64,
            // As Optuna: uniform between the logs of the half-way points, then rounded.
            Domain::LogIntegers { low, high } => {
                let (a, b) = ((low - 0.5).ln(), (high + 0.5).ln());
                a + (b - a) * rng.random::<f64>()
            }
            Domain::Choices { n } => rng.random_range(0..n) as f64,
        };
        self.value_at(x)
    }
}

fn range_problem(low: f64, high: f64, log: bool) -> Option<String> {
    if low > high {
        Some(format!("empty range: low {low} is above high {high}"))
    } else if log && low <= 0.0 {
        Some(format!("a log range must lie above 0, and low is {low}"))
    } else {
        None
    }
}

/// The options a study varies, by name (the keys of `ferrotune train
/// --config`), in name order.
pub type SearchSpace = BTreeMap<String, Param>;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ranges_are_checked() {
        let float = |low, high, log| Param::Float { low, high, log };
        assert!(float(1e-5, 3e-4, true).problem().is_none());
        assert!(float(0.0, 0.2, false).problem().is_none());
        assert!(float(0.3, 0.2, false).problem().unwrap().contains("empty range"));
        assert!(float(0.0, 0.2, true).problem().unwrap().contains("above 0"));
        assert!(float(f64::NAN, 0.2, false).problem().is_some());
        assert!(Param::Int { low: 0, high: 4, log: true }.problem().is_some());
        assert!(Param::Categorical { values: vec![] }.problem().unwrap().contains("at least one"));
        let twice = Param::Categorical { values: vec![8.into(), 16.into(), 8.into()] };
        assert!(twice.problem().unwrap().contains("twice"));
    }

    #[test]
    fn values_round_trip_through_the_domain_and_stay_in_range() {
        let params = [
            Param::Float { low: 1e-5, high: 3e-4, log: true },
            Param::Float { low: 0.0, high: 0.2, log: false },
            Param::Int { low: 4, high: 64, log: true },
            Param::Int { low: 1, high: 4, log: false },
            Param::Categorical { values: vec![8.into(), 16.into(), "x".into()] },
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for param in &params {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..300 {
                let v = param.sample_uniform(&mut rng);
                let x = param.position(&v).unwrap();
                assert_eq!(param.value_at(x), v, "{param:?}");
                seen.insert(v.to_string());
                match (param, &v) {
                    (Param::Float { low, high, .. }, Value::Number(n)) => {
                        assert!((*low..=*high).contains(&n.as_f64().unwrap()))
                    }
                    (Param::Int { low, high, .. }, Value::Number(n)) => {
                        assert!((*low..=*high).contains(&n.as_i64().unwrap()))
                    }
                    (Param::Categorical { values }, v) => assert!(values.contains(v)),
                    _ => panic!("{v} is not a value of {param:?}"),
                }
            }
            match param {
                Param::Int { low: 1, high: 4, .. } => assert_eq!(seen.len(), 4, "every integer drawn"),
                Param::Categorical { .. } => assert_eq!(seen.len(), 3),
                _ => {}
            }
        }
    }
}

//! Learning-rate schedules.

use serde::{Deserialize, Serialize};

/// The shape of the learning rate after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Linear decay to 0 at the last step.
    Linear,
    /// Constant.
    Constant,
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Schedule::Linear => "linear",
            Schedule::Constant => "constant",
        })
    }
}

/// The learning rate of `step` (0-based) of `total`: linear warmup over
/// `warmup` steps, then `schedule`. Same as transformers'
/// `get_linear_schedule_with_warmup` / `get_constant_schedule_with_warmup`.
pub fn learning_rate(peak: f64, step: u64, warmup: u64, total: u64, schedule: Schedule) -> f64 {
    if step < warmup {
        return peak * step as f64 / warmup.max(1) as f64;
    }
    match schedule {
        Schedule::Constant => peak,
        Schedule::Linear => peak * (total.saturating_sub(step)) as f64 / (total - warmup).max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_linear_decay() {
        let lr = |s| learning_rate(1.0, s, 10, 110, Schedule::Linear);
        assert_eq!(lr(0), 0.0);
        assert_eq!(lr(5), 0.5);
        assert_eq!(lr(10), 1.0);
        assert_eq!(lr(60), 0.5);
        assert_eq!(lr(110), 0.0);
        assert_eq!(learning_rate(2.0, 0, 0, 10, Schedule::Constant), 2.0);
        assert_eq!(learning_rate(2.0, 3, 0, 10, Schedule::Linear), 1.4);
    }
}

//! Budget allocation: how to split a budget over indicator improvements to
//! raise one scenario's total the most.
//!
//! Each option has a response: the raw improvement bought by a spend `s`,
//! concave in `s` (diminishing returns). The budget is cut into equal steps
//! and split by dynamic programming over options and steps, which finds the
//! exact optimum among all splits in whole steps, for any response shape
//! (also where a normalisation's floor makes the gain flat at first), in
//! O(options x steps²) time.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::normalize::Direction;
use crate::score::{Normalized, Weights};
use crate::scorecard::{read_toml, Scorecard};
use crate::BrandError;

/// How improvement grows with spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    /// `max_change * (1 - exp(-s / (cost_per_unit * max_change)))`.
    #[default]
    Exponential,
    /// `min(s / cost_per_unit, max_change)`.
    Linear,
}

/// One way to spend money: improving an indicator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationOption {
    /// The indicator improved.
    pub indicator: String,
    /// Budget per raw unit of improvement at the start (the marginal cost at zero spend).
    pub cost_per_unit: f64,
    /// The most the raw value can move, however much is spent.
    pub max_change: f64,
    /// Shape of diminishing returns.
    #[serde(default)]
    pub response: Response,
}

impl AllocationOption {
    /// Raw improvement bought by `spend`.
    pub fn improvement(&self, spend: f64) -> f64 {
        match self.response {
            Response::Exponential => self.max_change * (1.0 - (-spend / (self.cost_per_unit * self.max_change)).exp()),
            Response::Linear => (spend / self.cost_per_unit).min(self.max_change),
        }
    }
}

#[derive(Deserialize)]
struct RawFile {
    allocation: Option<RawAllocation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllocation {
    scenario: Option<String>,
    options: Vec<AllocationOption>,
}

/// One option's share of the budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spend {
    /// The indicator.
    pub indicator: String,
    /// Budget given to it.
    pub spend: f64,
    /// Raw value before.
    pub value_before: f64,
    /// Raw value after the improvement.
    pub value_after: f64,
    /// Gain in the total.
    pub gain: f64,
}

/// The best split of a budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Allocation {
    /// The scenario improved.
    pub scenario: String,
    /// The budget.
    pub budget: f64,
    /// Budget steps the split is made of.
    pub steps: usize,
    /// Total before.
    pub total_before: f64,
    /// Total after.
    pub total_after: f64,
    /// Budget actually spent (less than the budget when more buys nothing).
    pub spent: f64,
    /// `(total_after - total_before) / spent`.
    pub gain_per_unit: f64,
    /// Per option, in file order.
    pub spends: Vec<Spend>,
    /// What the method guarantees.
    pub guarantee: String,
}

/// The `[allocation]` table of a scorecard file, checked against the scorecard.
pub fn read_options(path: &Path, card: &Scorecard) -> Result<(usize, Vec<AllocationOption>), BrandError> {
    let raw: RawFile = read_toml(path)?;
    let invalid = |message: String| BrandError::Invalid { path: path.to_path_buf(), message };
    let raw = raw.allocation.ok_or_else(|| invalid("no [allocation] table with [[allocation.options]]".into()))?;
    let scenario = match &raw.scenario {
        Some(name) => card
            .scenario_index(name)
            .ok_or_else(|| invalid(format!("[allocation] scenario '{name}' is not a scenario")))?,
        None => 0,
    };
    if raw.options.is_empty() {
        return Err(invalid("[allocation] has no options".into()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for o in &raw.options {
        if !card.indicators().any(|i| i.name == o.indicator) {
            return Err(invalid(format!("[[allocation.options]]: unknown indicator '{}'", o.indicator)));
        }
        if !seen.insert(&o.indicator) {
            return Err(invalid(format!("[[allocation.options]]: indicator '{}' appears twice", o.indicator)));
        }
        if !(o.cost_per_unit > 0.0 && o.cost_per_unit.is_finite() && o.max_change > 0.0 && o.max_change.is_finite()) {
            return Err(invalid(format!(
                "[[allocation.options]] '{}': cost_per_unit and max_change must be positive",
                o.indicator
            )));
        }
    }
    Ok((scenario, raw.options))
}

/// Splits `budget` (in `steps` equal parts) over `options` to maximise the
/// total of scenario `scenario`.
pub fn allocate(
    card: &Scorecard,
    scenario: usize,
    options: &[AllocationOption],
    budget: f64,
    steps: usize,
) -> Allocation {
    let normalized = Normalized::new(card);
    let weights = Weights::of(card);
    let term_of = card.term_of();
    let indicators: Vec<_> = card.indicators().collect();
    let values = &card.scenarios[scenario].values;
    let steps = steps.max(1);
    let unit = budget / steps as f64;

    // gains[o][k]: gain in the total from spending k steps on option o.
    let (gains, raw_after): (Vec<Vec<f64>>, Vec<Vec<f64>>) = options
        .iter()
        .map(|o| {
            let i = indicators.iter().position(|x| x.name == o.indicator).expect("checked option");
            let ind = indicators[i];
            let sign = if ind.direction == Direction::Higher { 1.0 } else { -1.0 };
            let factor = card.multipliers[term_of[i]] * weights.indicators[i];
            let before = ind.normalize.apply(values[i], ind.direction, normalized.stats[i]);
            (0..=steps)
                .map(|k| {
                    let x = values[i] + sign * o.improvement(k as f64 * unit);
                    (factor * (ind.normalize.apply(x, ind.direction, normalized.stats[i]) - before), x)
                })
                .unzip()
        })
        .unzip();

    // best[o][b]: best gain from the first o options with b steps; choice[o][b]: steps given to option o-1.
    let n = options.len();
    let mut best = vec![vec![0.0f64; steps + 1]; n + 1];
    let mut choice = vec![vec![0usize; steps + 1]; n + 1];
    for o in 1..=n {
        for b in 0..=steps {
            let (mut top, mut arg) = (f64::NEG_INFINITY, 0);
            for k in 0..=b {
                let v = best[o - 1][b - k] + gains[o - 1][k];
                // Prefer spending less on ties: money that buys nothing stays unspent.
                if v > top + 1e-12 {
                    top = v;
                    arg = k;
                }
            }
            best[o][b] = top;
            choice[o][b] = arg;
        }
    }
    let mut k_of = vec![0usize; n];
    let mut b = steps;
    for o in (1..=n).rev() {
        k_of[o - 1] = choice[o][b];
        b -= choice[o][b];
    }

    let total_before = crate::score::total(card, &term_of, &weights, &normalized.rows[scenario]);
    let spends: Vec<Spend> = options
        .iter()
        .enumerate()
        .map(|(o, opt)| {
            let i = indicators.iter().position(|x| x.name == opt.indicator).expect("checked option");
            Spend {
                indicator: opt.indicator.clone(),
                spend: k_of[o] as f64 * unit,
                value_before: values[i],
                value_after: raw_after[o][k_of[o]],
                gain: gains[o][k_of[o]],
            }
        })
        .collect();
    let gain: f64 = spends.iter().map(|s| s.gain).sum();
    let spent: f64 = spends.iter().map(|s| s.spend).sum();
    Allocation {
        scenario: card.scenarios[scenario].name.clone(),
        budget,
        steps,
        total_before,
        total_after: total_before + gain,
        spent,
        gain_per_unit: if spent > 0.0 { gain / spent } else { 0.0 },
        spends,
        guarantee: format!(
            "exact optimum over all splits of the budget into {steps} steps of {unit}, by dynamic programming"
        ),
    }
}

impl Allocation {
    /// Plain-text table.
    pub fn to_table(&self) -> String {
        let w = self.spends.iter().map(|s| s.indicator.len()).chain([9]).max().unwrap_or(9);
        let mut out = format!("budget {} for '{}' ({})\n\n", self.budget, self.scenario, self.guarantee);
        out += &format!(
            "  {:<w$} {:>12} {:>12} {:>12} {:>10} {:>14}\n",
            "indicator", "spend", "value", "after", "gain", "gain per unit"
        );
        for s in &self.spends {
            let per = if s.spend > 0.0 { s.gain / s.spend } else { 0.0 };
            out += &format!(
                "  {:<w$} {:>12.2} {:>12.4} {:>12.4} {:>10.5} {:>14.3e}\n",
                s.indicator, s.spend, s.value_before, s.value_after, s.gain, per
            );
        }
        out += &format!(
            "\ntotal {:.4} -> {:.4} (+{:.4}); spent {:.2} of {:.2}; gain per unit of budget {:.3e}\n",
            self.total_before,
            self.total_after,
            self.total_after - self.total_before,
            self.spent,
            self.budget,
            self.gain_per_unit
        );
        out
    }
}

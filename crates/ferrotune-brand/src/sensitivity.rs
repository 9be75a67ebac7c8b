//! How much the ranking depends on the weights: one-at-a-time perturbation
//! (tornado data), the smallest single-weight change that swaps the top two
//! scenarios, and a seeded Monte Carlo over weight uncertainty.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};
use serde::Serialize;

use crate::score::{ranks, total, Normalized, Weights};
use crate::scorecard::{Scorecard, TERMS};
use crate::BrandError;

/// Settings of the analysis.
#[derive(Debug, Clone, Copy)]
pub struct SensitivityOptions {
    /// Relative change of each weight for the tornado (0.2 = ±20%).
    pub delta: f64,
    /// Monte Carlo draws.
    pub draws: usize,
    /// Seed of the Monte Carlo generator.
    pub seed: u64,
    /// Dirichlet concentration: higher means weights closer to the given ones.
    pub concentration: f64,
}

impl Default for SensitivityOptions {
    fn default() -> Self {
        Self { delta: 0.2, draws: 10_000, seed: 42, concentration: 100.0 }
    }
}

/// A weight that can be varied.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Param {
    /// The multiplier of a term (1 = ux, 2 = technology, 3 = marketing).
    Multiplier(usize),
    /// An indicator weight (flat index); the other weights of its term are
    /// rescaled so that the term still sums to 1.
    Indicator(usize),
}

/// One bar of the tornado: the top scenario's total (and its lead over the
/// runner-up) with the weight at `(1 - delta)` and `(1 + delta)` times its value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TornadoBar {
    /// `term:<name>` or the indicator's name.
    pub weight: String,
    /// The weight's value.
    pub value: f64,
    /// Top scenario's total with the weight lowered.
    pub total_low: f64,
    /// Top scenario's total with the weight raised.
    pub total_high: f64,
    /// Lead of the top scenario over the second with the weight lowered.
    pub lead_low: Option<f64>,
    /// Lead with the weight raised.
    pub lead_high: Option<f64>,
}

/// The single-weight change that makes the top two scenarios tie.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reversal {
    /// The weight.
    pub weight: String,
    /// Its value now.
    pub value: f64,
    /// The value at which the top two tie (beyond it, they swap).
    pub value_at_tie: f64,
    /// `value_at_tie - value`.
    pub change: f64,
}

/// Monte Carlo outcome for one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonteCarloRow {
    /// Scenario.
    pub scenario: String,
    /// Share of draws in which it ranks first.
    pub probability_first: f64,
    /// Mean rank over the draws.
    pub mean_rank: f64,
}

/// The whole analysis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensitivityReport {
    /// Top scenario at the given weights.
    pub top: String,
    /// Runner-up, if there are two scenarios or more.
    pub second: Option<String>,
    /// Relative perturbation used for the tornado.
    pub delta: f64,
    /// Tornado bars, widest swing first.
    pub tornado: Vec<TornadoBar>,
    /// The smallest single-weight change that swaps the top two, if any
    /// feasible one exists.
    pub smallest_reversal: Option<Reversal>,
    /// Every feasible reversal, smallest change first.
    pub reversals: Vec<Reversal>,
    /// Draws, seed and concentration of the Monte Carlo.
    pub draws: usize,
    /// Seed.
    pub seed: u64,
    /// Dirichlet concentration.
    pub concentration: f64,
    /// Probability of ranking first, per scenario in file order.
    pub monte_carlo: Vec<MonteCarloRow>,
}

struct Model<'a> {
    card: &'a Scorecard,
    term_of: Vec<usize>,
    normalized: Normalized,
    base: Weights,
}

impl Model<'_> {
    fn totals(&self, w: &Weights) -> Vec<f64> {
        self.normalized.rows.iter().map(|row| total(self.card, &self.term_of, w, row)).collect()
    }

    fn params(&self) -> Vec<Param> {
        let mut params: Vec<Param> = (1..4).map(Param::Multiplier).collect();
        for i in 0..self.base.indicators.len() {
            // A term's only indicator always weighs 1.
            if self.term_of.iter().filter(|&&t| t == self.term_of[i]).count() > 1 {
                params.push(Param::Indicator(i));
            }
        }
        params
    }

    fn name(&self, p: Param) -> String {
        match p {
            Param::Multiplier(t) => format!("term:{}", TERMS[t]),
            Param::Indicator(i) => self.card.indicators().nth(i).map(|x| x.name.clone()).unwrap_or_default(),
        }
    }

    fn value(&self, p: Param) -> f64 {
        match p {
            Param::Multiplier(t) => self.base.multipliers[t],
            Param::Indicator(i) => self.base.indicators[i],
        }
    }

    fn range(&self, p: Param) -> (f64, f64) {
        match p {
            Param::Multiplier(_) => (0.0, f64::INFINITY),
            Param::Indicator(_) => (0.0, 1.0),
        }
    }

    /// The weights with `p` set to `v`.
    fn with(&self, p: Param, v: f64) -> Weights {
        let mut w = self.base.clone();
        match p {
            Param::Multiplier(t) => w.multipliers[t] = v,
            Param::Indicator(i) => {
                let term = self.term_of[i];
                let old = self.base.indicators[i];
                let others: Vec<usize> =
                    (0..w.indicators.len()).filter(|&j| j != i && self.term_of[j] == term).collect();
                let rest: f64 = others.iter().map(|&j| self.base.indicators[j]).sum();
                for &j in &others {
                    w.indicators[j] = if rest > 0.0 {
                        self.base.indicators[j] * (1.0 - v) / (1.0 - old)
                    } else {
                        (1.0 - v) / others.len() as f64
                    };
                }
                w.indicators[i] = v;
            }
        }
        w
    }
}

/// Runs the analysis on a scorecard.
pub fn analyse(card: &Scorecard, options: SensitivityOptions) -> SensitivityReport {
    let model = Model { card, term_of: card.term_of(), normalized: Normalized::new(card), base: Weights::of(card) };
    let base_totals = model.totals(&model.base);
    let base_ranks = ranks(&base_totals);
    let top = base_ranks.iter().position(|&r| r == 1).expect("one scenario at least");
    let second = base_ranks.iter().position(|&r| r == 2);
    let lead = |totals: &[f64]| second.map(|s| totals[top] - totals[s]);

    let mut tornado: Vec<TornadoBar> = model
        .params()
        .into_iter()
        .map(|p| {
            let v = model.value(p);
            let (lo, hi) = model.range(p);
            let low = model.totals(&model.with(p, (v * (1.0 - options.delta)).clamp(lo, hi)));
            let high = model.totals(&model.with(p, (v * (1.0 + options.delta)).clamp(lo, hi)));
            TornadoBar {
                weight: model.name(p),
                value: v,
                total_low: low[top],
                total_high: high[top],
                lead_low: lead(&low),
                lead_high: lead(&high),
            }
        })
        .collect();
    tornado.sort_by(|a, b| (b.total_high - b.total_low).abs().total_cmp(&(a.total_high - a.total_low).abs()));

    // The lead of top over second is linear in any one weight (the other
    // weights of its term are rescaled linearly), so the tie is exact.
    let mut reversals: Vec<Reversal> = Vec::new();
    if let Some(s) = second {
        for p in model.params() {
            let v = model.value(p);
            let (lo, hi) = model.range(p);
            let gap = |x: f64| {
                let t = model.totals(&model.with(p, x));
                t[top] - t[s]
            };
            let probe = if v + 0.5 <= hi { v + 0.5 } else { v - 0.5 };
            let slope = (gap(probe) - gap(v)) / (probe - v);
            if slope.abs() < 1e-15 {
                continue;
            }
            let tie = v - gap(v) / slope;
            if tie >= lo && tie <= hi && tie.is_finite() {
                reversals.push(Reversal { weight: model.name(p), value: v, value_at_tie: tie, change: tie - v });
            }
        }
        reversals.sort_by(|a, b| a.change.abs().total_cmp(&b.change.abs()));
    }

    SensitivityReport {
        top: card.scenarios[top].name.clone(),
        second: second.map(|s| card.scenarios[s].name.clone()),
        delta: options.delta,
        tornado,
        smallest_reversal: reversals.first().cloned(),
        reversals,
        draws: options.draws,
        seed: options.seed,
        concentration: options.concentration,
        monte_carlo: monte_carlo(&model, options),
    }
}

/// Checks the options against the scorecard: `delta` in (0, 1), and
/// `concentration` a positive finite number large enough that every
/// Dirichlet shape (concentration × weight share, for each positive weight
/// of each group) is a positive finite number with a finite inverse.
pub fn validate(card: &Scorecard, options: &SensitivityOptions) -> Result<(), BrandError> {
    let invalid = |field, message: String| Err(BrandError::InvalidOption { field, message });
    if !(options.delta > 0.0 && options.delta < 1.0) {
        return invalid("delta", format!("must be between 0 and 1 (exclusive), found {}", options.delta));
    }
    let c = options.concentration;
    if !(c.is_finite() && c > 0.0) {
        return invalid("concentration", format!("must be a positive finite number, found {c}"));
    }
    let (base, term_of) = (Weights::of(card), card.term_of());
    let mut groups: Vec<Vec<f64>> = vec![base.multipliers.to_vec()];
    for t in 0..TERMS.len() {
        let indicators = &base.indicators;
        groups.push((0..indicators.len()).filter(|&i| term_of[i] == t).map(|i| indicators[i]).collect());
    }
    for group in groups {
        let scale: f64 = group.iter().sum();
        for &w in group.iter().filter(|&&w| w > 0.0) {
            let shape = c * w / scale;
            // Gamma's small-shape sampler divides by the shape.
            if !(shape.is_finite() && shape > 0.0 && (1.0 / shape).is_finite()) || Gamma::new(shape, 1.0).is_err() {
                let message = format!("{c} is too small or too large for the weights (a Dirichlet shape of {shape})");
                return invalid("concentration", message);
            }
        }
    }
    Ok(())
}

/// Draws from a Dirichlet centred on `weights` (which sum to `scale`), with
/// the given concentration; zero weights stay zero.
fn dirichlet_around(weights: &[f64], concentration: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let scale: f64 = weights.iter().sum();
    if scale <= 0.0 {
        return weights.to_vec();
    }
    let draws: Vec<f64> = weights
        .iter()
        .map(|&w| {
            // A shape Gamma refuses ([`validate`] reports it) draws nothing.
            match Gamma::new(concentration * w / scale, 1.0) {
                Ok(gamma) if w > 0.0 => gamma.sample(rng),
                _ => 0.0,
            }
        })
        .collect();
    let sum: f64 = draws.iter().sum();
    if sum <= 0.0 {
        return weights.to_vec();
    }
    draws.iter().map(|d| d / sum * scale).collect()
}

fn monte_carlo(model: &Model, options: SensitivityOptions) -> Vec<MonteCarloRow> {
    let n = model.card.scenarios.len();
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut first = vec![0usize; n];
    let mut rank_sum = vec![0usize; n];
    for _ in 0..options.draws {
        let multipliers = dirichlet_around(&model.base.multipliers, options.concentration, &mut rng);
        let mut indicators = model.base.indicators.clone();
        for t in 0..TERMS.len() {
            let idx: Vec<usize> = (0..indicators.len()).filter(|&i| model.term_of[i] == t).collect();
            let w: Vec<f64> = idx.iter().map(|&i| model.base.indicators[i]).collect();
            for (&i, v) in idx.iter().zip(dirichlet_around(&w, options.concentration, &mut rng)) {
                indicators[i] = v;
            }
        }
        let weights =
            Weights { multipliers: [multipliers[0], multipliers[1], multipliers[2], multipliers[3]], indicators };
        let r = ranks(&model.totals(&weights));
        for (s, &rank) in r.iter().enumerate() {
            rank_sum[s] += rank;
            if rank == 1 {
                first[s] += 1;
            }
        }
    }
    let draws = options.draws.max(1) as f64;
    model
        .card
        .scenarios
        .iter()
        .enumerate()
        .map(|(s, sc)| MonteCarloRow {
            scenario: sc.name.clone(),
            probability_first: first[s] as f64 / draws,
            mean_rank: rank_sum[s] as f64 / draws,
        })
        .collect()
}

impl SensitivityReport {
    /// Plain-text tables.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "top scenario: {}{}\n\ntornado (weights x {:.2} and x {:.2}; total of '{}'):\n",
            self.top,
            self.second.as_ref().map(|s| format!(", runner-up: {s}")).unwrap_or_default(),
            1.0 - self.delta,
            1.0 + self.delta,
            self.top
        );
        let w = self.tornado.iter().map(|b| b.weight.len()).chain([6]).max().unwrap_or(6);
        out += &format!(
            "  {:<w$} {:>8} {:>11} {:>11} {:>11} {:>11}\n",
            "weight", "value", "total low", "total high", "lead low", "lead high"
        );
        let opt = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
        for b in &self.tornado {
            out += &format!(
                "  {:<w$} {:>8.4} {:>11.4} {:>11.4} {:>11} {:>11}\n",
                b.weight,
                b.value,
                b.total_low,
                b.total_high,
                opt(b.lead_low),
                opt(b.lead_high)
            );
        }
        match &self.smallest_reversal {
            Some(r) => {
                out += &format!(
                "\nsmallest single-weight change that reverses the top two: {} from {:.4} to {:.4} ({:+.4}, {:+.1}%)\n",
                r.weight,
                r.value,
                r.value_at_tie,
                r.change,
                if r.value != 0.0 { 100.0 * r.change / r.value } else { f64::INFINITY }
            )
            }
            None if self.second.is_some() => out += "\nno single weight change within its range reverses the top two\n",
            None => out += "\nonly one scenario: nothing to reverse\n",
        }
        out += &format!(
            "\nMonte Carlo: {} draws, Dirichlet concentration {}, seed {}\n",
            self.draws, self.concentration, self.seed
        );
        let sw = self.monte_carlo.iter().map(|r| r.scenario.len()).chain([8]).max().unwrap_or(8);
        out += &format!("  {:<sw$} {:>10} {:>10}\n", "scenario", "P(first)", "mean rank");
        for r in &self.monte_carlo {
            out += &format!("  {:<sw$} {:>10.4} {:>10.3}\n", r.scenario, r.probability_first, r.mean_rank);
        }
        out
    }
}

//! Scoring: each term's value, the total and each indicator's contribution,
//! per scenario, and the ranking.

use serde::Serialize;

use crate::normalize::Stats;
use crate::scorecard::{Scorecard, TERMS};

/// Normalised indicator scores of every scenario (`[scenario][indicator]`),
/// computed once and reused by sensitivity analysis and allocation.
#[derive(Debug, Clone)]
pub struct Normalized {
    /// Scores, one row per scenario.
    pub rows: Vec<Vec<f64>>,
    /// Per-indicator statistics across scenarios (for `zscore`).
    pub stats: Vec<Stats>,
}

impl Normalized {
    /// Normalises every raw value of the scorecard.
    pub fn new(card: &Scorecard) -> Self {
        let stats: Vec<Stats> = (0..card.indicators().count())
            .map(|i| Stats::of(card.scenarios.iter().map(move |s| s.values[i])))
            .collect();
        let rows = card
            .scenarios
            .iter()
            .map(|s| {
                card.indicators()
                    .zip(&s.values)
                    .zip(&stats)
                    .map(|((ind, &x), &st)| ind.normalize.apply(x, ind.direction, st))
                    .collect()
            })
            .collect();
        Self { rows, stats }
    }
}

/// The weights that can vary in an analysis: the term multipliers
/// (1, a, b, c) and the indicator weights (flat, terms in order).
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// 1 (brand), a, b, c.
    pub multipliers: [f64; 4],
    /// Indicator weights.
    pub indicators: Vec<f64>,
}

impl Weights {
    /// The weights written in the scorecard.
    pub fn of(card: &Scorecard) -> Self {
        Self { multipliers: card.multipliers, indicators: card.indicators().map(|i| i.weight).collect() }
    }
}

/// Total of one scenario's normalised scores under `weights`.
pub fn total(card: &Scorecard, term_of: &[usize], weights: &Weights, row: &[f64]) -> f64 {
    let mut terms = [0.0; 4];
    for (t, term) in card.terms.iter().enumerate() {
        terms[t] = term.base;
    }
    for ((&t, &w), &n) in term_of.iter().zip(&weights.indicators).zip(row) {
        terms[t] += w * n;
    }
    terms.iter().zip(weights.multipliers).map(|(v, m)| v * m).sum()
}

/// One scenario's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioScore {
    /// Scenario name.
    pub name: String,
    /// Term values V(B), U(X), T(I), M(M) (before their multipliers).
    pub terms: [f64; 4],
    /// The weighted total.
    pub total: f64,
    /// 1 for the best total.
    pub rank: usize,
    /// Each indicator's contribution to the total (multiplier x weight x score).
    pub contributions: Vec<f64>,
}

/// The scores of all scenarios.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreReport {
    /// Scorecard title.
    pub title: String,
    /// Term names.
    pub term_names: [&'static str; 4],
    /// Indicator names, in contribution order.
    pub indicators: Vec<String>,
    /// Contribution of the base values to each scenario's total.
    pub base_contribution: f64,
    /// Scenarios in file order.
    pub scenarios: Vec<ScenarioScore>,
}

/// Ranks of totals (1 = highest; ties keep file order).
pub fn ranks(totals: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..totals.len()).collect();
    order.sort_by(|&a, &b| totals[b].total_cmp(&totals[a]).then(a.cmp(&b)));
    let mut ranks = vec![0; totals.len()];
    for (rank, &i) in order.iter().enumerate() {
        ranks[i] = rank + 1;
    }
    ranks
}

/// Scores every scenario of the scorecard.
pub fn score(card: &Scorecard) -> ScoreReport {
    let normalized = Normalized::new(card);
    let term_of = card.term_of();
    let weights = Weights::of(card);
    let base_contribution: f64 = card.terms.iter().zip(card.multipliers).map(|(t, m)| t.base * m).sum();
    let mut scenarios: Vec<ScenarioScore> = card
        .scenarios
        .iter()
        .zip(&normalized.rows)
        .map(|(s, row)| {
            let mut terms = [0.0; 4];
            for (t, term) in card.terms.iter().enumerate() {
                terms[t] = term.base;
            }
            let contributions = term_of
                .iter()
                .zip(&weights.indicators)
                .zip(row)
                .map(|((&t, &w), &n)| {
                    terms[t] += w * n;
                    card.multipliers[t] * w * n
                })
                .collect();
            ScenarioScore {
                name: s.name.clone(),
                terms,
                total: total(card, &term_of, &weights, row),
                rank: 0,
                contributions,
            }
        })
        .collect();
    let totals: Vec<f64> = scenarios.iter().map(|s| s.total).collect();
    for (s, r) in scenarios.iter_mut().zip(ranks(&totals)) {
        s.rank = r;
    }
    ScoreReport {
        title: card.title.clone(),
        term_names: TERMS,
        indicators: card.indicators().map(|i| i.name.clone()).collect(),
        base_contribution,
        scenarios,
    }
}

impl ScoreReport {
    /// Plain-text tables: terms and totals by rank, then contributions.
    pub fn to_table(&self) -> String {
        let name_w = self.scenarios.iter().map(|s| s.name.len()).chain([8]).max().unwrap_or(8);
        let mut out = format!("{}\n\n{:>4}  {:<name_w$}", self.title, "rank", "scenario");
        for t in TERMS {
            out += &format!(" {t:>11}");
        }
        out += &format!(" {:>11}\n", "total");
        let mut by_rank: Vec<&ScenarioScore> = self.scenarios.iter().collect();
        by_rank.sort_by_key(|s| s.rank);
        for s in &by_rank {
            out += &format!("{:>4}  {:<name_w$}", s.rank, s.name);
            for v in s.terms {
                out += &format!(" {v:>11.4}");
            }
            out += &format!(" {:>11.4}\n", s.total);
        }
        let ind_w = self.indicators.iter().map(|s| s.len()).chain([12]).max().unwrap_or(12);
        out += &format!("\ncontributions to the total\n{:<ind_w$}", "indicator");
        for s in &by_rank {
            out += &format!(" {:>14}", truncate(&s.name, 14));
        }
        out += "\n";
        for (i, name) in self.indicators.iter().enumerate() {
            out += &format!("{name:<ind_w$}");
            for s in &by_rank {
                out += &format!(" {:>14.4}", s.contributions[i]);
            }
            out += "\n";
        }
        out += &format!("{:<ind_w$}", "(base values)");
        for _ in &by_rank {
            out += &format!(" {:>14.4}", self.base_contribution);
        }
        out + "\n"
    }

    /// CSV: one row per scenario with terms, total, rank and contributions.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("scenario,rank");
        for t in TERMS {
            out += &format!(",{t}");
        }
        out += ",total";
        for i in &self.indicators {
            out += &format!(",contribution:{}", csv_field(i));
        }
        out += "\n";
        for s in &self.scenarios {
            out += &format!("{},{}", csv_field(&s.name), s.rank);
            for v in s.terms {
                out += &format!(",{v}");
            }
            out += &format!(",{}", s.total);
            for c in &s.contributions {
                out += &format!(",{c}");
            }
            out += "\n";
        }
        out
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// Quotes a CSV field when it needs it.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

//! The scorecard file: terms, indicators, normalisations and scenarios,
//! read from TOML and validated into a [`Scorecard`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::normalize::{Direction, Normalize};
use crate::BrandError;

/// The four terms of `total = V(B) + a*U(X) + b*T(I) + c*M(M)`, in order.
pub const TERMS: [&str; 4] = ["brand", "ux", "technology", "marketing"];

/// An indicator of a term.
#[derive(Debug, Clone, PartialEq)]
pub struct Indicator {
    /// Unique name.
    pub name: String,
    /// Weight within its term (the term's weights sum to 1).
    pub weight: f64,
    /// Unit of the raw values, for display.
    pub unit: String,
    /// Whether higher or lower raw values are better.
    pub direction: Direction,
    /// How raw values become scores.
    pub normalize: Normalize,
}

/// One term: a base value plus a weighted sum of normalised indicators.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// `brand`, `ux`, `technology` or `marketing`.
    pub name: &'static str,
    /// Base value (V0 and its kin).
    pub base: f64,
    /// Indicators.
    pub indicators: Vec<Indicator>,
}

/// A company or period with a raw value for every indicator.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Unique name.
    pub name: String,
    /// Raw values in indicator order (terms in order, then indicators).
    pub values: Vec<f64>,
}

/// A validated scorecard.
#[derive(Debug, Clone, PartialEq)]
pub struct Scorecard {
    /// Title for reports.
    pub title: String,
    /// Weight of each term in the total: 1 for brand, then a, b, c.
    pub multipliers: [f64; 4],
    /// The four terms, in [`TERMS`] order.
    pub terms: Vec<Term>,
    /// Scenarios, in file order.
    pub scenarios: Vec<Scenario>,
    /// Notes for the user (e.g. weights that were normalised).
    pub warnings: Vec<String>,
    /// The file it was read from.
    pub path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    title: Option<String>,
    terms: RawMultipliers,
    brand: RawTerm,
    ux: RawTerm,
    technology: RawTerm,
    marketing: RawTerm,
    scenarios: Vec<RawScenario>,
    /// Read by `brand ahp` (see [`crate::ahp`]).
    #[serde(default, rename = "ahp")]
    _ahp: Option<toml::Table>,
    /// Read by `brand allocate` (see [`crate::allocate`]).
    #[serde(default, rename = "allocation")]
    _allocation: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMultipliers {
    ux: f64,
    technology: f64,
    marketing: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTerm {
    #[serde(default)]
    base: f64,
    #[serde(default)]
    indicators: Vec<RawIndicator>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndicator {
    name: String,
    weight: f64,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    direction: Direction,
    #[serde(default)]
    normalize: Normalize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    values: BTreeMap<String, RawValue>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawValue {
    Number(f64),
    /// A number read from a ferrotune JSON report, e.g. `micro.f1`.
    Report {
        report: PathBuf,
        path: String,
    },
}

/// Reads a TOML file into `T`, with TOML's line and column in errors.
pub(crate) fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, BrandError> {
    let text = std::fs::read_to_string(path).map_err(|source| BrandError::Io { path: path.to_path_buf(), source })?;
    toml::from_str(&text).map_err(|e| {
        let message = match e.span() {
            Some(span) => {
                let line = text[..span.start].matches('\n').count() + 1;
                format!("line {line}: {}", e.message())
            }
            None => e.message().to_string(),
        };
        BrandError::Parse { path: path.to_path_buf(), message }
    })
}

fn report_value(base_dir: &Path, report: &Path, key_path: &str) -> Result<f64, String> {
    let file = base_dir.join(report);
    let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read report {}: {e}", file.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("report {} is not JSON: {e}", file.display()))?;
    let mut node = &json;
    for key in key_path.split('.') {
        node =
            node.get(key).ok_or_else(|| format!("report {} has no '{key_path}' (missing '{key}')", file.display()))?;
    }
    node.as_f64().ok_or_else(|| format!("'{key_path}' in report {} is not a number", file.display()))
}

impl Scorecard {
    /// Reads and validates a scorecard. With `normalize_weights`, a term's
    /// indicator weights that do not sum to 1 are scaled to do so (with a
    /// warning) instead of being refused.
    pub fn from_file(path: &Path, normalize_weights: bool) -> Result<Self, BrandError> {
        let raw: RawFile = read_toml(path)?;
        let invalid = |message: String| BrandError::Invalid { path: path.to_path_buf(), message };
        let mut warnings = Vec::new();

        let multipliers = [1.0, raw.terms.ux, raw.terms.technology, raw.terms.marketing];
        for (name, m) in TERMS.iter().zip(multipliers).skip(1) {
            if !(m >= 0.0 && m.is_finite()) {
                return Err(invalid(format!(
                    "[terms] weight of '{name}' is {m}: weights must be non-negative numbers"
                )));
            }
        }
        let mut terms = Vec::new();
        let mut seen = BTreeSet::new();
        for (name, raw_term) in TERMS.iter().zip([raw.brand, raw.ux, raw.technology, raw.marketing]) {
            let mut indicators = Vec::new();
            for ind in raw_term.indicators {
                if !seen.insert(ind.name.clone()) {
                    return Err(invalid(format!("duplicate indicator name '{}'", ind.name)));
                }
                if !(ind.weight >= 0.0 && ind.weight.is_finite()) {
                    return Err(invalid(format!(
                        "indicator '{}' of term '{name}' has weight {}: weights must be non-negative",
                        ind.name, ind.weight
                    )));
                }
                ind.normalize.validate(ind.direction).map_err(|m| invalid(format!("indicator '{}': {m}", ind.name)))?;
                indicators.push(Indicator {
                    name: ind.name,
                    weight: ind.weight,
                    unit: ind.unit,
                    direction: ind.direction,
                    normalize: ind.normalize,
                });
            }
            let sum: f64 = indicators.iter().map(|i| i.weight).sum();
            if !indicators.is_empty() && (sum - 1.0).abs() > 1e-6 {
                if !normalize_weights || sum == 0.0 {
                    return Err(invalid(format!(
                        "the indicator weights of term '{name}' sum to {sum}, not 1 (use --normalize-weights to scale them)"
                    )));
                }
                warnings.push(format!("the indicator weights of term '{name}' summed to {sum}; scaled to sum to 1"));
                indicators.iter_mut().for_each(|i| i.weight /= sum);
            }
            terms.push(Term { name, base: raw_term.base, indicators });
        }

        let names: Vec<&String> = terms.iter().flat_map(|t| t.indicators.iter().map(|i| &i.name)).collect();
        let known: std::collections::HashSet<&String> = names.iter().copied().collect();
        let base_dir = path.parent().unwrap_or(Path::new("."));
        if raw.scenarios.is_empty() {
            return Err(invalid("no [[scenarios]]: at least one is needed".into()));
        }
        let mut scenarios = Vec::new();
        let mut scenario_names = BTreeSet::new();
        for s in raw.scenarios {
            if !scenario_names.insert(s.name.clone()) {
                return Err(invalid(format!("duplicate scenario name '{}'", s.name)));
            }
            if let Some(unknown) = s.values.keys().find(|k| !known.contains(k)) {
                return Err(invalid(format!("scenario '{}': unknown indicator '{unknown}'", s.name)));
            }
            let mut values = Vec::with_capacity(names.len());
            for name in &names {
                let value = match s.values.get(*name) {
                    None => return Err(invalid(format!("scenario '{}' has no value for indicator '{name}'", s.name))),
                    Some(RawValue::Number(v)) => *v,
                    Some(RawValue::Report { report, path: key }) => report_value(base_dir, report, key)
                        .map_err(|m| invalid(format!("scenario '{}', indicator '{name}': {m}", s.name)))?,
                };
                if !value.is_finite() {
                    return Err(invalid(format!(
                        "scenario '{}', indicator '{name}': value {value} is not finite",
                        s.name
                    )));
                }
                values.push(value);
            }
            scenarios.push(Scenario { name: s.name, values });
        }
        let scorecard = Self {
            title: raw.title.unwrap_or_else(|| "Brand scorecard".into()),
            multipliers,
            terms,
            scenarios,
            warnings,
            path: path.to_path_buf(),
        };
        for (i, ind) in scorecard.indicators().enumerate() {
            for s in &scorecard.scenarios {
                ind.normalize
                    .check_value(s.values[i])
                    .map_err(|m| invalid(format!("scenario '{}', indicator '{}': {m}", s.name, ind.name)))?;
            }
        }
        Ok(scorecard)
    }

    /// All indicators, terms in order.
    pub fn indicators(&self) -> impl Iterator<Item = &Indicator> {
        self.terms.iter().flat_map(|t| t.indicators.iter())
    }

    /// The term index of each indicator.
    pub fn term_of(&self) -> Vec<usize> {
        self.terms.iter().enumerate().flat_map(|(t, term)| std::iter::repeat_n(t, term.indicators.len())).collect()
    }

    /// The index of a scenario by name.
    pub fn scenario_index(&self, name: &str) -> Option<usize> {
        self.scenarios.iter().position(|s| s.name == name)
    }
}

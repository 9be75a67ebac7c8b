//! Weights from pairwise comparisons (Saaty's AHP): the principal
//! eigenvector of the comparison matrix, with the consistency ratio.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::scorecard::read_toml;
use crate::BrandError;

/// Saaty's random consistency index by matrix size (1-based), from Saaty,
/// *Theory and Applications of the Analytic Network Process* (2005), p. 31.
const RANDOM_INDEX: [f64; 15] =
    [0.0, 0.0, 0.52, 0.89, 1.11, 1.25, 1.35, 1.40, 1.45, 1.49, 1.52, 1.54, 1.56, 1.58, 1.59];

/// Consistency ratios above this are refused.
pub const MAX_CONSISTENCY_RATIO: f64 = 0.1;

/// What is wrong with one comparison matrix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AhpError {
    /// A cell is neither a number nor a fraction such as `"1/3"`.
    #[error("'{text}' is not a number or a fraction")]
    NotANumber {
        /// The cell as written.
        text: String,
    },
    /// The criteria list is empty.
    #[error("no criteria")]
    NoCriteria,
    /// The matrix does not have one row and one column per criterion.
    #[error("the matrix must be {criteria} x {criteria}, one row and column per criterion")]
    NotSquare {
        /// The number of criteria.
        criteria: usize,
    },
    /// A diagonal entry is not 1.
    #[error("diagonal entry for '{criterion}' must be 1, got {value}")]
    Diagonal {
        /// The criterion of that row and column.
        criterion: String,
        /// The value given.
        value: f64,
    },
    /// A comparison is zero, negative or not finite.
    #[error("comparison '{row}' vs '{column}' must be a positive number, got {value}")]
    NotPositive {
        /// Row criterion.
        row: String,
        /// Column criterion.
        column: String,
        /// The value given.
        value: f64,
    },
    /// A comparison is outside Saaty's scale, 1/9 to 9.
    #[error("comparison '{row}' vs '{column}' is {value}: Saaty's scale runs from 1/9 to 9")]
    OffScale {
        /// Row criterion.
        row: String,
        /// Column criterion.
        column: String,
        /// The value given.
        value: f64,
    },
    /// `a_ji` is not `1 / a_ij` (within 1%).
    #[error("comparisons '{row}' vs '{column}' ({value}) and '{column}' vs '{row}' ({reverse}) are not reciprocal")]
    NotReciprocal {
        /// Row criterion.
        row: String,
        /// Column criterion.
        column: String,
        /// `a_ij`.
        value: f64,
        /// `a_ji`.
        reverse: f64,
    },
    /// More criteria than Saaty's random index is tabulated for.
    #[error("at most {max} criteria per matrix (Saaty's random index is tabulated that far)")]
    TooManyCriteria {
        /// The most criteria a matrix may have.
        max: usize,
    },
}

/// A comparison value: a number or a fraction written as `"1/3"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Cell {
    Number(f64),
    Fraction(String),
}

impl Cell {
    fn value(&self) -> Result<f64, AhpError> {
        match self {
            Cell::Number(v) => Ok(*v),
            Cell::Fraction(s) => {
                let parse = |t: &str| t.trim().parse::<f64>().map_err(|_| AhpError::NotANumber { text: s.clone() });
                match s.split_once('/') {
                    Some((a, b)) => Ok(parse(a)? / parse(b)?),
                    None => parse(s),
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComparison {
    criteria: Vec<String>,
    matrix: Vec<Vec<Cell>>,
}

#[derive(Deserialize)]
struct RawAhpFile {
    #[serde(default)]
    ahp: BTreeMap<String, RawComparison>,
}

/// The outcome of one comparison matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AhpResult {
    /// The name of the `[ahp.<name>]` table.
    pub name: String,
    /// Criteria, in matrix order.
    pub criteria: Vec<String>,
    /// Priority weights (sum to 1).
    pub weights: Vec<f64>,
    /// Principal eigenvalue.
    pub lambda_max: f64,
    /// Consistency index `(lambda_max - n) / (n - 1)`.
    pub consistency_index: f64,
    /// Consistency ratio `CI / RI(n)` (0 for n <= 2).
    pub consistency_ratio: f64,
}

/// A pairwise judgement that disagrees with the derived weights.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inconsistency {
    /// Row criterion.
    pub a: String,
    /// Column criterion.
    pub b: String,
    /// The judgement given.
    pub given: f64,
    /// The value the weights imply, `w_a / w_b`.
    pub implied: f64,
}

/// Validates a comparison matrix: square, positive, unit diagonal,
/// reciprocal (`a_ji = 1 / a_ij` within 1%).
fn check_matrix(criteria: &[String], m: &[Vec<f64>]) -> Result<(), AhpError> {
    let n = criteria.len();
    if n == 0 {
        return Err(AhpError::NoCriteria);
    }
    if m.len() != n || m.iter().any(|r| r.len() != n) {
        return Err(AhpError::NotSquare { criteria: n });
    }
    for i in 0..n {
        if (m[i][i] - 1.0).abs() > 1e-9 {
            return Err(AhpError::Diagonal { criterion: criteria[i].clone(), value: m[i][i] });
        }
        for j in 0..n {
            let (row, column, value) = (&criteria[i], &criteria[j], m[i][j]);
            if !(value > 0.0 && value.is_finite()) {
                return Err(AhpError::NotPositive { row: row.clone(), column: column.clone(), value });
            }
            if !(1.0 / 9.0 - 1e-3..=9.0 + 1e-3).contains(&value) {
                return Err(AhpError::OffScale { row: row.clone(), column: column.clone(), value });
            }
            if (value * m[j][i] - 1.0).abs() > 0.01 {
                let (row, column, reverse) = (row.clone(), column.clone(), m[j][i]);
                return Err(AhpError::NotReciprocal { row, column, value, reverse });
            }
        }
    }
    Ok(())
}

/// Principal eigenvector (normalised to sum 1) and eigenvalue of a positive
/// matrix, by power iteration (Perron-Frobenius guarantees convergence).
fn principal_eigen(m: &[Vec<f64>]) -> (Vec<f64>, f64) {
    let n = m.len();
    let mut w = vec![1.0 / n as f64; n];
    for _ in 0..10_000 {
        let mut next: Vec<f64> = (0..n).map(|i| (0..n).map(|j| m[i][j] * w[j]).sum()).collect();
        let sum: f64 = next.iter().sum();
        next.iter_mut().for_each(|v| *v /= sum);
        let delta: f64 = next.iter().zip(&w).map(|(a, b)| (a - b).abs()).sum();
        w = next;
        if delta < 1e-15 {
            break;
        }
    }
    let lambda = (0..n).map(|i| (0..n).map(|j| m[i][j] * w[j]).sum::<f64>() / w[i]).sum::<f64>() / n as f64;
    (w, lambda)
}

/// Weights and consistency of one comparison matrix.
pub fn analyse(name: &str, criteria: &[String], matrix: &[Vec<f64>]) -> Result<AhpResult, AhpError> {
    check_matrix(criteria, matrix)?;
    let n = criteria.len();
    if n > RANDOM_INDEX.len() {
        return Err(AhpError::TooManyCriteria { max: RANDOM_INDEX.len() });
    }
    let (weights, lambda_max) = principal_eigen(matrix);
    let consistency_index = if n > 1 { (lambda_max - n as f64) / (n as f64 - 1.0) } else { 0.0 };
    let ri = RANDOM_INDEX[n - 1];
    let consistency_ratio = if ri > 0.0 { consistency_index / ri } else { 0.0 };
    Ok(AhpResult {
        name: name.to_string(),
        criteria: criteria.to_vec(),
        weights,
        lambda_max,
        consistency_index,
        consistency_ratio,
    })
}

impl AhpResult {
    /// The judgements furthest from what the weights imply, worst first.
    pub fn inconsistencies(&self, matrix: &[Vec<f64>], count: usize) -> Vec<Inconsistency> {
        let mut pairs: Vec<(f64, Inconsistency)> = Vec::new();
        for (i, (a, row)) in self.criteria.iter().zip(matrix).enumerate() {
            for (j, (b, &given)) in self.criteria.iter().zip(row).enumerate().skip(i + 1) {
                let implied = self.weights[i] / self.weights[j];
                let ratio = given / implied;
                let error = ratio.max(1.0 / ratio);
                pairs.push((error, Inconsistency { a: a.clone(), b: b.clone(), given, implied }));
            }
        }
        pairs.sort_by(|x, y| y.0.total_cmp(&x.0));
        pairs.into_iter().take(count).map(|(_, p)| p).collect()
    }
}

/// Analyses every `[ahp.<name>]` table of a file. A matrix whose
/// consistency ratio exceeds 0.1 is refused, naming its worst judgements.
pub fn analyse_file(path: &Path) -> Result<Vec<AhpResult>, BrandError> {
    let raw: RawAhpFile = read_toml(path)?;
    if raw.ahp.is_empty() {
        let message = "no [ahp.<name>] tables with criteria and matrix".to_string();
        return Err(BrandError::Invalid { path: path.to_path_buf(), message });
    }
    let mut results = Vec::new();
    for (name, comparison) in raw.ahp {
        let ahp = |source: AhpError| BrandError::Ahp { path: path.to_path_buf(), table: name.clone(), source };
        let matrix = comparison
            .matrix
            .iter()
            .map(|row| row.iter().map(Cell::value).collect::<Result<Vec<f64>, AhpError>>())
            .collect::<Result<Vec<_>, AhpError>>()
            .map_err(ahp)?;
        let result = analyse(&name, &comparison.criteria, &matrix).map_err(ahp)?;
        if result.consistency_ratio > MAX_CONSISTENCY_RATIO {
            return Err(BrandError::Inconsistent {
                path: path.to_path_buf(),
                table: name,
                ratio: result.consistency_ratio,
                worst: result.inconsistencies(&matrix, 3),
            });
        }
        results.push(result);
    }
    Ok(results)
}

/// A text table of results.
pub fn to_table(results: &[AhpResult]) -> String {
    let mut out = String::new();
    for r in results {
        out += &format!(
            "[ahp.{}]  lambda_max {:.4}  CI {:.4}  CR {:.4} (consistent: CR <= {MAX_CONSISTENCY_RATIO})\n",
            r.name, r.lambda_max, r.consistency_index, r.consistency_ratio
        );
        let w = r.criteria.iter().map(|c| c.len()).chain([9]).max().unwrap_or(9);
        for (c, weight) in r.criteria.iter().zip(&r.weights) {
            out += &format!("  {c:<w$}  {weight:.4}\n");
        }
        out += "\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn assert_close(a: &[f64], b: &[f64], tol: f64) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
        }
    }

    /// Saaty (2008), "Decision making with the analytic hierarchy process",
    /// Int. J. Services Sciences 1(1): relative consumption of drinks in the
    /// US. Published weights (3 decimals) and CR 0.022.
    #[test]
    fn saaty_drinks_example() {
        let m = vec![
            vec![1.0, 9.0, 5.0, 2.0, 1.0, 1.0, 0.5],
            vec![1.0 / 9.0, 1.0, 1.0 / 3.0, 1.0 / 9.0, 1.0 / 9.0, 1.0 / 9.0, 1.0 / 9.0],
            vec![0.2, 3.0, 1.0, 1.0 / 3.0, 0.25, 1.0 / 3.0, 1.0 / 9.0],
            vec![0.5, 9.0, 3.0, 1.0, 0.5, 1.0, 1.0 / 3.0],
            vec![1.0, 9.0, 4.0, 2.0, 1.0, 2.0, 0.5],
            vec![1.0, 9.0, 3.0, 1.0, 0.5, 1.0, 1.0 / 3.0],
            vec![2.0, 9.0, 9.0, 3.0, 2.0, 3.0, 1.0],
        ];
        let r = analyse("drinks", &names(&["coffee", "wine", "tea", "beer", "soda", "milk", "water"]), &m).unwrap();
        assert_close(&r.weights, &[0.177, 0.019, 0.042, 0.116, 0.190, 0.129, 0.327], 1e-3);
        assert!((r.consistency_ratio - 0.022).abs() <= 1e-3, "{}", r.consistency_ratio);
    }

    /// The "choosing a leader" example of Wikipedia's AHP article (criteria
    /// and the experience comparison), values as published by AHPy.
    #[test]
    fn wikipedia_leader_example() {
        let criteria = vec![
            vec![1.0, 4.0, 3.0, 7.0],
            vec![0.25, 1.0, 1.0 / 3.0, 3.0],
            vec![1.0 / 3.0, 3.0, 1.0, 5.0],
            vec![1.0 / 7.0, 1.0 / 3.0, 0.2, 1.0],
        ];
        let r = analyse("criteria", &names(&["experience", "education", "charisma", "age"]), &criteria).unwrap();
        assert_close(&r.weights, &[0.548, 0.127, 0.270, 0.056], 1e-3);
        assert!((r.consistency_ratio - 0.044).abs() <= 1e-3);
        let experience = vec![vec![1.0, 0.25, 4.0], vec![4.0, 1.0, 9.0], vec![0.25, 1.0 / 9.0, 1.0]];
        let r = analyse("experience", &names(&["moll", "nell", "sue"]), &experience).unwrap();
        assert_close(&r.weights, &[0.217, 0.717, 0.066], 1e-3);
        assert!((r.consistency_ratio - 0.035).abs() <= 1e-3);
    }

    /// The typed errors read exactly as the messages they replaced.
    #[test]
    fn matrix_errors_keep_their_messages() {
        type Case = (Vec<String>, Vec<Vec<f64>>, &'static str);
        let ab = names(&["a", "b"]);
        // A 2 x 2 matrix: a vs a, a vs b, b vs a.
        let m = |aa: f64, ab: f64, ba: f64| vec![vec![aa, ab], vec![ba, 1.0]];
        let cases: Vec<Case> = vec![
            (vec![], vec![], "no criteria"),
            (ab.clone(), vec![vec![1.0, 2.0]], "the matrix must be 2 x 2, one row and column per criterion"),
            (ab.clone(), m(2.0, 1.0, 1.0), "diagonal entry for 'a' must be 1, got 2"),
            (ab.clone(), m(1.0, -1.0, 1.0), "comparison 'a' vs 'b' must be a positive number, got -1"),
            (ab.clone(), m(1.0, 10.0, 0.1), "comparison 'a' vs 'b' is 10: Saaty's scale runs from 1/9 to 9"),
            (ab, m(1.0, 3.0, 3.0), "comparisons 'a' vs 'b' (3) and 'b' vs 'a' (3) are not reciprocal"),
        ];
        for (criteria, matrix, message) in cases {
            assert_eq!(analyse("t", &criteria, &matrix).unwrap_err().to_string(), message);
        }
        let many: Vec<String> = (0..16).map(|i| i.to_string()).collect();
        let ones = vec![vec![1.0; 16]; 16];
        let err = analyse("t", &many, &ones).unwrap_err();
        assert_eq!(err, AhpError::TooManyCriteria { max: 15 });
        assert_eq!(err.to_string(), "at most 15 criteria per matrix (Saaty's random index is tabulated that far)");
        let cell = Cell::Fraction("x/3".into()).value().unwrap_err();
        assert_eq!(cell.to_string(), "'x/3' is not a number or a fraction");
        let worst = vec![
            Inconsistency { a: "a".into(), b: "b".into(), given: 9.0, implied: 1.0 },
            Inconsistency { a: "a".into(), b: "c".into(), given: 1.0 / 9.0, implied: 0.5 },
        ];
        let err = BrandError::Inconsistent { path: "f.toml".into(), table: "t".into(), ratio: 2.5, worst };
        assert_eq!(
            err.to_string(),
            "f.toml: [ahp.t] is too inconsistent to use: consistency ratio 2.500 > 0.1; \
             revise the most inconsistent judgements: 'a' vs 'b' is 9.000 but the weights imply 1.000; \
             'a' vs 'c' is 0.111 but the weights imply 0.500"
        );
        let err = BrandError::Ahp { path: "f.toml".into(), table: "t".into(), source: AhpError::NoCriteria };
        assert_eq!(err.to_string(), "f.toml: [ahp.t]: no criteria");
    }

    #[test]
    fn inconsistent_matrix_is_refused_with_pairs_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ahp.toml");
        std::fs::write(
            &path,
            "[ahp.brand]\ncriteria = [\"a\", \"b\", \"c\"]\nmatrix = [[1, 9, \"1/9\"], [\"1/9\", 1, 9], [9, \"1/9\", 1]]\n",
        )
        .unwrap();
        let err = analyse_file(&path).unwrap_err().to_string();
        assert!(err.contains("too inconsistent") && err.contains("'a' vs 'b' is 9.000"), "{err}");
        std::fs::write(&path, "[ahp.brand]\ncriteria = [\"a\", \"b\"]\nmatrix = [[1, 3], [3, 1]]\n").unwrap();
        let err = analyse_file(&path).unwrap_err().to_string();
        assert!(err.contains("not reciprocal"), "{err}");
        std::fs::write(&path, "[ahp.brand]\ncriteria = [\"a\", \"b\"]\nmatrix = [[1, 12], [\"1/12\", 1]]\n").unwrap();
        assert!(analyse_file(&path).unwrap_err().to_string().contains("Saaty's scale runs from 1/9 to 9"));
        std::fs::write(&path, "[ahp.brand]\ncriteria = [\"a\", \"b\"]\nmatrix = [[1, \"x/3\"], [3, 1]]\n").unwrap();
        assert!(analyse_file(&path).unwrap_err().to_string().contains("'x/3' is not a number"));
        std::fs::write(&path, "[ahp.brand]\ncriteria = [\"a\", \"b\"]\nmatrix = [[1, 2], [\"1/2\", 1]]\n").unwrap();
        let ok = analyse_file(&path).unwrap();
        assert_close(&ok[0].weights, &[2.0 / 3.0, 1.0 / 3.0], 1e-12);
    }
}

//! The brand scorecard end to end: the design document's example against a
//! hand computation, validation errors, sensitivity and allocation.

use std::path::{Path, PathBuf};

use ferrotune_brand::allocate::{allocate, read_options, AllocationOption, Response};
use ferrotune_brand::score::score;
use ferrotune_brand::sensitivity::{analyse, SensitivityOptions};
use ferrotune_brand::Scorecard;
use rand::{Rng, SeedableRng};

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/brand/medical-ai.toml")
}

#[test]
fn medical_ai_total_matches_a_hand_computation() {
    let card = Scorecard::from_file(&example(), false).unwrap();
    let report = score(&card);
    let q3 = report.scenarios.iter().find(|s| s.name == "MedAI 2026-Q3").unwrap();

    // V(B): base 0.5; positioning 7.5 on 1..10, NPS 42 on -100..100, 12 papers on log(1+x)/log(51).
    let brand = 0.5 + 0.4 * (7.5 - 1.0) / 9.0 + 0.3 * (42.0 + 100.0) / 200.0 + 0.3 * 13f64.ln() / 51f64.ln();
    // U(X): SUS 78/100, CSAT 85/100, 4 h response against target 1 h, threshold 48 h.
    let ux = 0.2 * 0.78 + 0.5 * 0.85 + 0.3 * (4.0 - 48.0) / (1.0 - 48.0);
    // T(I): 18% of 40%, 25 hospitals on log(101), 3500 stars on log(100001).
    let tech = 0.3 * 18.0 / 40.0 + 0.4 * 26f64.ln() / 101f64.ln() + 0.3 * 3501f64.ln() / 100001f64.ln();
    // M(M): 120k views on log(1e6 + 1); community 2400 as a z-score over
    // (2400, 2000, 2500, 1400): mean 2075, population std sqrt(186875); 60 mentions on log(501).
    let z = (2400.0 - 2075.0) / 186875f64.sqrt();
    let marketing = 0.3 * 120001f64.ln() / 1000001f64.ln() + 0.4 * z + 0.3 * 61f64.ln() / 501f64.ln();
    let total = brand + 0.8 * ux + 1.2 * tech + 0.6 * marketing;

    for (ours, hand) in q3.terms.iter().zip([brand, ux, tech, marketing]) {
        assert!((ours - hand).abs() < 1e-12, "{ours} vs {hand}");
    }
    assert!((q3.total - total).abs() < 1e-12, "{} vs {total}", q3.total);
    let contributions: f64 = q3.contributions.iter().sum::<f64>() + report.base_contribution;
    assert!((contributions - total).abs() < 1e-12);
    assert_eq!(report.scenarios.iter().map(|s| s.rank).collect::<Vec<_>>(), [2, 3, 1, 4]);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const SMALL: &str = r#"
[terms]
ux = 1.0
technology = 1.0
marketing = 1.0
[brand]
indicators = [{ name = "a", weight = 0.5, normalize = { method = "minmax", min = 0, max = 10 } },
              { name = "b", weight = 0.5, normalize = { method = "minmax", min = 0, max = 10 } }]
[ux]
indicators = [{ name = "c", weight = 1.0, normalize = { method = "minmax", min = 0, max = 10 } }]
[technology]
[marketing]
[[scenarios]]
name = "s1"
values = { a = 1, b = 2, c = 3 }
[[scenarios]]
name = "s2"
values = { a = 2, b = 1, c = 4 }
"#;

#[test]
fn bad_scorecards_are_refused_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            SMALL.replace("weight = 0.5, normalize", "weight = -0.5, normalize"),
            "indicator 'a' of term 'brand' has weight -0.5",
        ),
        (SMALL.replace("weight = 1.0", "weight = 0.7"), "the indicator weights of term 'ux' sum to 0.7, not 1"),
        (
            SMALL.replace("values = { a = 2, b = 1, c = 4 }", "values = { a = 2, b = 1 }"),
            "scenario 's2' has no value for indicator 'c'",
        ),
        (
            SMALL.replace("values = { a = 2, b = 1, c = 4 }", "values = { a = 2, b = 1, c = 4, d = 5 }"),
            "scenario 's2': unknown indicator 'd'",
        ),
        (SMALL.replace("name = \"b\"", "name = \"a\""), "duplicate indicator name 'a'"),
        (SMALL.replace("name = \"s2\"", "name = \"s1\""), "duplicate scenario name 's1'"),
        (SMALL.replace("ux = 1.0\n", "ux = -1.0\n"), "weight of 'ux' is -1"),
        (
            SMALL.replace("min = 0, max = 10 } }]\n[technology]", "min = 10, max = 0 } }]\n[technology]"),
            "minmax needs max > min",
        ),
        (
            SMALL.replace("[technology]\n", "[technology]\nbase = \"x\"\n"),
            "line 12: invalid type: string \"x\", expected f64",
        ),
        (
            SMALL.replace(
                "values = { a = 1, b = 2, c = 3 }",
                "values = { a = 1, b = 2, c = { report = \"r.json\", path = \"micro.f1\" } }",
            ),
            "cannot read report",
        ),
    ];
    for (text, expected) in cases {
        let path = write(dir.path(), "card.toml", &text);
        let err = Scorecard::from_file(&path, false).unwrap_err().to_string();
        assert!(err.contains(expected), "{err:?} should contain {expected:?}");
        assert!(err.starts_with(&path.display().to_string()), "{err}");
    }
    // Weights that do not sum to 1 can be normalised instead, with a warning.
    let path = write(dir.path(), "card.toml", &SMALL.replacen("weight = 0.5, normalize", "weight = 1.5, normalize", 1));
    let card = Scorecard::from_file(&path, true).unwrap();
    assert_eq!(card.terms[0].indicators.iter().map(|i| i.weight).collect::<Vec<_>>(), [0.75, 0.25]);
    assert_eq!(card.warnings.len(), 1);
}

#[test]
fn indicator_values_can_come_from_a_ferrotune_report() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "report.json", r#"{"micro": {"f1": 0.8125, "precision": 0.8}}"#);
    let text = SMALL.replace(
        "values = { a = 1, b = 2, c = 3 }",
        "values = { a = 1, b = 2, c = { report = \"report.json\", path = \"micro.f1\" } }",
    );
    let path = write(dir.path(), "card.toml", &text);
    let card = Scorecard::from_file(&path, false).unwrap();
    assert_eq!(card.scenarios[0].values[2], 0.8125);
    let bad = text.replace("micro.f1", "micro.recall");
    let path = write(dir.path(), "card.toml", &bad);
    let err = Scorecard::from_file(&path, false).unwrap_err().to_string();
    assert!(err.contains("has no 'micro.recall' (missing 'recall')"), "{err}");
}

#[test]
fn sensitivity_is_reproducible_and_its_reversal_ties_the_top_two() {
    let card = Scorecard::from_file(&example(), false).unwrap();
    let options = SensitivityOptions { draws: 2000, ..Default::default() };
    let a = analyse(&card, options);
    assert_eq!(a, analyse(&card, options), "same seed, same result");
    let b = analyse(&card, SensitivityOptions { seed: 7, ..options });
    assert_ne!(a.monte_carlo, b.monte_carlo);
    let p: f64 = a.monte_carlo.iter().map(|r| r.probability_first).sum();
    assert!((p - 1.0).abs() < 1e-12);

    // Setting the reported weight to its tie value (the other weights of its
    // term scaled to keep the sum at 1) makes the top two equal.
    let r = a.smallest_reversal.clone().expect("a reversal exists");
    let mut text = std::fs::read_to_string(example()).unwrap();
    assert!(!r.weight.starts_with("term:"), "this example's smallest reversal is an indicator weight");
    let term = card.terms.iter().find(|t| t.indicators.iter().any(|i| i.name == r.weight)).unwrap();
    for ind in &term.indicators {
        let new =
            if ind.name == r.weight { r.value_at_tie } else { ind.weight * (1.0 - r.value_at_tie) / (1.0 - r.value) };
        let old = format!("name = \"{}\", weight = {}", ind.name, ind.weight);
        assert!(text.contains(&old), "{old}");
        text = text.replace(&old, &format!("name = \"{}\", weight = {new}", ind.name));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "tied.toml", &text);
    let tied = score(&Scorecard::from_file(&path, false).unwrap());
    let total = |name: &str| tied.scenarios.iter().find(|s| s.name == name).unwrap().total;
    assert!((total(&a.top) - total(a.second.as_ref().unwrap())).abs() < 1e-9);
}

#[test]
fn example_allocation_spends_within_budget_and_gains() {
    let card = Scorecard::from_file(&example(), false).unwrap();
    let (scenario, options) = read_options(&example(), &card).unwrap();
    let a = allocate(&card, scenario, &options, 500_000.0, 200);
    assert!(a.spent <= 500_000.0 + 1e-6);
    assert!(a.total_after > a.total_before);
    let gain: f64 = a.spends.iter().map(|s| s.gain).sum();
    assert!((a.total_after - a.total_before - gain).abs() < 1e-12);
}

/// Property: on random small cases, the allocation is at least as good as
/// the best split a brute-force search over the same grid finds.
#[test]
fn allocation_beats_brute_force_grid_search() {
    let card = Scorecard::from_file(&example(), false).unwrap();
    let names: Vec<String> = card.indicators().map(|i| i.name.clone()).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    for case in 0..60 {
        let n = rng.random_range(1..=3);
        let mut picked: Vec<String> = Vec::new();
        while picked.len() < n {
            let name = names[rng.random_range(0..names.len())].clone();
            if !picked.contains(&name) {
                picked.push(name);
            }
        }
        let options: Vec<AllocationOption> = picked
            .into_iter()
            .map(|indicator| AllocationOption {
                indicator,
                cost_per_unit: rng.random_range(0.5..50.0),
                max_change: rng.random_range(0.5..40.0),
                response: if rng.random_bool(0.5) { Response::Exponential } else { Response::Linear },
            })
            .collect();
        let steps = rng.random_range(1..=8);
        let budget = rng.random_range(10.0..1000.0);
        let scenario = rng.random_range(0..card.scenarios.len());
        let ours = allocate(&card, scenario, &options, budget, steps);

        // Brute force: every split of `steps` units over the options.
        let unit = budget / steps as f64;
        let mut best = f64::NEG_INFINITY;
        let mut split = vec![0usize; n];
        loop {
            if split.iter().sum::<usize>() <= steps {
                let trial: Vec<AllocationOption> = options.clone();
                let value = (0..n)
                    .map(|o| {
                        let single =
                            allocate(&card, scenario, &trial[o..o + 1], split[o] as f64 * unit, split[o].max(1));
                        if split[o] == 0 {
                            0.0
                        } else {
                            single.total_after - single.total_before
                        }
                    })
                    .sum::<f64>();
                best = best.max(value);
            }
            // Next split (odometer).
            let mut i = 0;
            while i < n && split[i] == steps {
                split[i] = 0;
                i += 1;
            }
            if i == n {
                break;
            }
            split[i] += 1;
        }
        let gain = ours.total_after - ours.total_before;
        assert!(gain >= best - 1e-9, "case {case}: allocation gain {gain} < grid search {best}");
    }
}

/// Issue 13, item 8: a concentration that is not a positive finite number
/// large enough for the Dirichlet draw is a clear error, and the analysis
/// itself never panics on it.
#[test]
fn bad_concentrations_are_refused_not_panicked_on() {
    use ferrotune_brand::sensitivity::validate;
    let card = Scorecard::from_file(&example(), false).unwrap();
    let with = |concentration| SensitivityOptions { concentration, draws: 20, ..Default::default() };
    assert!(validate(&card, &with(100.0)).is_ok());
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-320] {
        let e = validate(&card, &with(bad)).unwrap_err().to_string();
        assert!(e.starts_with("concentration "), "{bad}: {e}");
        // Even unchecked, the analysis answers instead of panicking.
        let _ = analyse(&card, with(bad));
    }
}

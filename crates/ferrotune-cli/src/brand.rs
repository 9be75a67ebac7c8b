//! `ferrotune brand`: the brand-value scorecard.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use ferrotune_brand::sensitivity::SensitivityOptions;
use ferrotune_brand::{ahp, allocate, report, score, sensitivity, Scorecard};

#[derive(Args)]
pub struct BrandArgs {
    #[command(subcommand)]
    command: BrandCommand,
}

/// Options every brand command shares.
#[derive(Args)]
struct Common {
    /// The scorecard (TOML).
    file: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML report with charts.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Scale a term's indicator weights to sum to 1 (with a warning) instead of refusing them.
    #[arg(long)]
    normalize_weights: bool,
}

#[derive(Subcommand)]
enum BrandCommand {
    /// Each term and the total per scenario, the ranking, and each indicator's contribution.
    Score {
        #[command(flatten)]
        common: Common,
        /// Print CSV instead of a table.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
    /// Weights from the pairwise comparison matrices of the [ahp.<name>] tables.
    Ahp {
        #[command(flatten)]
        common: Common,
    },
    /// Tornado data, the smallest weight change that swaps the top two, and a Monte Carlo.
    Sensitivity {
        #[command(flatten)]
        common: Common,
        /// Relative change of each weight for the tornado.
        #[arg(long, default_value_t = 0.2)]
        delta: f64,
        /// Monte Carlo draws.
        #[arg(long, default_value_t = 10_000)]
        draws: usize,
        /// Monte Carlo seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Dirichlet concentration around the given weights (higher: less uncertain).
        #[arg(long, default_value_t = 100.0)]
        concentration: f64,
    },
    /// The split of a budget over the [allocation] options that raises the total most.
    Allocate {
        #[command(flatten)]
        common: Common,
        /// The budget to split.
        #[arg(long)]
        budget: f64,
        /// Equal steps the budget is cut into.
        #[arg(long, default_value_t = 200)]
        steps: usize,
    },
}

fn load(common: &Common) -> anyhow::Result<Scorecard> {
    let card = Scorecard::from_file(&common.file, common.normalize_weights)?;
    for w in &card.warnings {
        eprintln!("warning: {w}");
    }
    Ok(card)
}

fn write_report(path: &Option<PathBuf>, title: &str, sections: &[String]) -> anyhow::Result<()> {
    if let Some(path) = path {
        write_file(path, &report::page(title, sections))?;
        eprintln!("report written to {}", path.display());
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    ferrotune_data::atomic::write_bytes_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs `ferrotune brand`.
pub fn run(args: BrandArgs) -> anyhow::Result<()> {
    match args.command {
        BrandCommand::Score { common, csv } => {
            let card = load(&common)?;
            let scores = score::score(&card);
            if common.json {
                println!("{}", serde_json::to_string_pretty(&scores)?);
            } else if csv {
                print!("{}", scores.to_csv());
            } else {
                print!("{}", scores.to_table());
            }
            write_report(&common.report, &card.title, &report::score_sections(&scores, card.multipliers))
        }
        BrandCommand::Ahp { common } => {
            let results = ahp::analyse_file(&common.file)?;
            if common.json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                print!("{}", ahp::to_table(&results));
            }
            write_report(&common.report, "AHP weights", &report::ahp_sections(&results))
        }
        BrandCommand::Sensitivity { common, delta, draws, seed, concentration } => {
            anyhow::ensure!(delta > 0.0 && delta < 1.0, "--delta must be between 0 and 1");
            let card = load(&common)?;
            let options = SensitivityOptions { delta, draws, seed, concentration };
            if let Err(e @ ferrotune_brand::BrandError::InvalidOption { field, .. }) =
                sensitivity::validate(&card, &options)
            {
                return Err(crate::UsageError::invalid_option(field, e).into());
            }
            let result = sensitivity::analyse(&card, options);
            if common.json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                print!("{}", result.to_table());
            }
            let top_total = score::score(&card).scenarios.iter().find(|s| s.rank == 1).map_or(0.0, |s| s.total);
            write_report(&common.report, &card.title, &report::sensitivity_sections(&result, top_total))
        }
        BrandCommand::Allocate { common, budget, steps } => {
            anyhow::ensure!(budget > 0.0 && budget.is_finite(), "--budget must be a positive number");
            anyhow::ensure!((1..=5_000).contains(&steps), "--steps must be between 1 and 5000");
            let card = load(&common)?;
            let (scenario, options) = allocate::read_options(&common.file, &card)?;
            let result = allocate::allocate(&card, scenario, &options, budget, steps);
            if common.json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                print!("{}", result.to_table());
            }
            write_report(&common.report, &card.title, &report::allocation_sections(&result))
        }
    }
}

//! `ferrotune report`: training runs as one self-contained HTML page.

use std::path::PathBuf;

use clap::Args;
use ferrotune_train::report::{report_html, RunLog};

#[derive(Args)]
pub struct ReportArgs {
    /// Training output folders (with metrics.jsonl); several are overlaid and compared. A study
    /// folder of `ferrotune search` (with study.jsonl) gets the study's page.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Where to write the page [default: report.html in the (first) run's folder].
    #[arg(long)]
    output: Option<PathBuf>,
}

/// Reads every run and writes the page atomically; prints its path. A
/// study folder of `ferrotune search` gets its study page.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let journal = args.runs[0].join(crate::search::JOURNAL);
    let (html, output) = if args.runs.len() == 1 && journal.is_file() {
        let study = ferrotune_study::Study::load(&journal)?;
        (ferrotune_study::study_page(&study), args.output.unwrap_or_else(|| args.runs[0].join("study.html")))
    } else {
        let runs = args.runs.iter().map(|dir| RunLog::read(dir)).collect::<Result<Vec<_>, _>>()?;
        (report_html(&runs), args.output.unwrap_or_else(|| args.runs[0].join("report.html")))
    };
    ferrotune_data::atomic::write_bytes_atomic(&output, html.as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {e}", output.display()))?;
    println!("{}", output.display());
    Ok(())
}

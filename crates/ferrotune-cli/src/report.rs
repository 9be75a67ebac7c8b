//! `ferrotune report`: training runs as one self-contained HTML page.

use std::path::PathBuf;

use clap::Args;
use ferrotune_train::report::{report_html, RunLog};

#[derive(Args)]
pub struct ReportArgs {
    /// Training output folders (with metrics.jsonl); several are overlaid and compared.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Where to write the page [default: report.html in the (first) run's folder].
    #[arg(long)]
    output: Option<PathBuf>,
}

/// Reads every run and writes the page atomically; prints its path.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let runs = args.runs.iter().map(|dir| RunLog::read(dir)).collect::<Result<Vec<_>, _>>()?;
    let output = args.output.unwrap_or_else(|| args.runs[0].join("report.html"));
    let html = report_html(&runs);
    ferrotune_data::atomic::write_bytes_atomic(&output, html.as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {e}", output.display()))?;
    println!("{}", output.display());
    Ok(())
}

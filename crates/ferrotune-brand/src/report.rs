//! Self-contained HTML reports with inline SVG charts (no scripts, fonts or
//! files from elsewhere), so they open offline.

use std::fmt::Write;

use crate::ahp::AhpResult;
use crate::allocate::Allocation;
use crate::score::ScoreReport;
use crate::sensitivity::SensitivityReport;

const COLORS: [&str; 8] = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00"];

/// Escapes text for HTML and SVG.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A full HTML page around some sections.
pub fn page(title: &str, sections: &[String]) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\
         body{{font-family:sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} th:first-child,td:first-child{{text-align:left}}\
         svg{{background:#fafafa;border:1px solid #eee;margin:0.5em 0}}</style></head><body>\n<h1>{t}</h1>\n",
        t = escape(title)
    );
    for s in sections {
        html += s;
    }
    html + "</body></html>\n"
}

/// Horizontal bars, one per label; negative values extend left of the axis.
pub fn bar_chart(title: &str, labels: &[String], values: &[f64], unit: &str) -> String {
    let (w, row, left) = (760.0, 24.0, 220.0);
    let h = row * labels.len() as f64 + 50.0;
    let max = values.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
    let has_neg = values.iter().any(|v| *v < 0.0);
    let plot = w - left - 90.0;
    let zero = if has_neg { left + plot / 2.0 } else { left };
    let scale = if has_neg { plot / 2.0 / max } else { plot / max };
    let mut svg = format!("<svg width=\"{w}\" height=\"{h}\" xmlns=\"http://www.w3.org/2000/svg\"><text x=\"10\" y=\"20\" font-weight=\"bold\">{}</text>", escape(title));
    for (i, (l, v)) in labels.iter().zip(values).enumerate() {
        let y = 35.0 + i as f64 * row;
        let (x, bw) = if *v >= 0.0 { (zero, v * scale) } else { (zero + v * scale, -v * scale) };
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"12\">{}</text><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"11\">{v:.4}{}</text>",
            left - 6.0,
            y + 14.0,
            escape(l),
            row - 6.0,
            COLORS[i % COLORS.len()],
            zero.max(x + bw) + 4.0,
            y + 14.0,
            escape(unit)
        );
    }
    let _ = write!(svg, "<line x1=\"{zero}\" y1=\"30\" x2=\"{zero}\" y2=\"{}\" stroke=\"#555\"/></svg>", h - 10.0);
    svg
}

/// A radar chart of the four terms, one polygon per scenario, each axis
/// scaled to the largest absolute value on it.
pub fn radar(title: &str, axes: &[&str], series: &[(String, Vec<f64>)]) -> String {
    let (w, h, cx, cy, r) = (760.0, 420.0, 230.0, 220.0, 160.0);
    let n = axes.len();
    let max: Vec<f64> = (0..n).map(|a| series.iter().fold(0f64, |m, (_, v)| m.max(v[a].abs())).max(1e-12)).collect();
    let point = |a: usize, frac: f64| {
        let angle = -std::f64::consts::FRAC_PI_2 + 2.0 * std::f64::consts::PI * a as f64 / n as f64;
        (cx + r * frac * angle.cos(), cy + r * frac * angle.sin())
    };
    let mut svg = format!("<svg width=\"{w}\" height=\"{h}\" xmlns=\"http://www.w3.org/2000/svg\"><text x=\"10\" y=\"20\" font-weight=\"bold\">{}</text>", escape(title));
    for ring in [0.25, 0.5, 0.75, 1.0] {
        let pts: Vec<String> = (0..n).map(|a| point(a, ring)).map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(svg, "<polygon points=\"{}\" fill=\"none\" stroke=\"#ddd\"/>", pts.join(" "));
    }
    for (a, name) in axes.iter().enumerate() {
        let (x, y) = point(a, 1.12);
        let (x0, y0) = point(a, 1.0);
        let _ = write!(
            svg,
            "<line x1=\"{cx}\" y1=\"{cy}\" x2=\"{x0:.1}\" y2=\"{y0:.1}\" stroke=\"#bbb\"/><text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"middle\" font-size=\"12\">{} (max {:.3})</text>",
            escape(name),
            max[a]
        );
    }
    for (i, (name, values)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> =
            (0..n).map(|a| point(a, (values[a] / max[a]).max(0.0))).map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(
            svg,
            "<polygon points=\"{}\" fill=\"{color}\" fill-opacity=\"0.15\" stroke=\"{color}\" stroke-width=\"2\"/><rect x=\"480\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{color}\"/><text x=\"498\" y=\"{}\" font-size=\"12\">{}</text>",
            pts.join(" "),
            50.0 + 20.0 * i as f64,
            60.0 + 20.0 * i as f64,
            escape(name)
        );
    }
    svg + "</svg>"
}

/// A tornado: for each weight, a bar from the low to the high outcome
/// around the baseline.
pub fn tornado(title: &str, baseline: f64, bars: &[(String, f64, f64)]) -> String {
    let (w, row, left) = (760.0, 24.0, 220.0);
    let h = row * bars.len() as f64 + 60.0;
    let lo = bars.iter().fold(baseline, |m, b| m.min(b.1).min(b.2));
    let hi = bars.iter().fold(baseline, |m, b| m.max(b.1).max(b.2));
    let span = (hi - lo).max(1e-12);
    let plot = w - left - 40.0;
    let x = |v: f64| left + (v - lo) / span * plot;
    let mut svg = format!("<svg width=\"{w}\" height=\"{h}\" xmlns=\"http://www.w3.org/2000/svg\"><text x=\"10\" y=\"20\" font-weight=\"bold\">{}</text>", escape(title));
    for (i, (name, low, high)) in bars.iter().enumerate() {
        let y = 35.0 + i as f64 * row;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"12\">{}</text><rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{}\" fill=\"#dc3912\"/><rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{}\" fill=\"#3366cc\"/>",
            left - 6.0,
            y + 14.0,
            escape(name),
            x(low.min(baseline)),
            (x(baseline) - x(low.min(baseline))).abs(),
            row - 6.0,
            x(baseline),
            (x(high.max(baseline)) - x(baseline)).abs(),
            row - 6.0
        );
    }
    let _ = write!(
        svg,
        "<line x1=\"{b:.1}\" y1=\"30\" x2=\"{b:.1}\" y2=\"{}\" stroke=\"#000\"/><text x=\"{b:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">baseline {baseline:.4} (red: weight lowered, blue: raised)</text></svg>",
        h - 25.0,
        h - 10.0,
        b = x(baseline)
    );
    svg
}

fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut t = String::from("<table><tr>");
    for h in header {
        let _ = write!(t, "<th>{}</th>", escape(h));
    }
    t += "</tr>";
    for r in rows {
        t += "<tr>";
        for c in r {
            let _ = write!(t, "<td>{}</td>", escape(c));
        }
        t += "</tr>";
    }
    t + "</table>\n"
}

/// The report of `brand score`.
pub fn score_sections(report: &ScoreReport, multipliers: [f64; 4]) -> Vec<String> {
    let mut header = vec!["rank".to_string(), "scenario".to_string()];
    header.extend(report.term_names.iter().map(|t| t.to_string()));
    header.push("total".into());
    let mut by_rank: Vec<_> = report.scenarios.iter().collect();
    by_rank.sort_by_key(|s| s.rank);
    let rows: Vec<Vec<String>> = by_rank
        .iter()
        .map(|s| {
            let mut r = vec![s.rank.to_string(), s.name.clone()];
            r.extend(s.terms.iter().map(|v| format!("{v:.4}")));
            r.push(format!("{:.4}", s.total));
            r
        })
        .collect();
    let mut sections = vec![format!("<h2>Scores</h2>{}", table(&header, &rows))];
    let totals: Vec<f64> = by_rank.iter().map(|s| s.total).collect();
    let names: Vec<String> = by_rank.iter().map(|s| s.name.clone()).collect();
    sections.push(bar_chart("Total per scenario", &names, &totals, ""));
    let weighted: Vec<(String, Vec<f64>)> = by_rank
        .iter()
        .map(|s| (s.name.clone(), s.terms.iter().zip(multipliers).map(|(v, m)| v * m).collect()))
        .collect();
    sections.push(radar("The four terms (weighted) per scenario", &report.term_names, &weighted));
    for s in &by_rank {
        sections.push(bar_chart(
            &format!("Contributions to the total: {}", s.name),
            &report.indicators,
            &s.contributions,
            "",
        ));
    }
    sections
}

/// The report of `brand sensitivity`.
pub fn sensitivity_sections(report: &SensitivityReport, baseline_total: f64) -> Vec<String> {
    let bars: Vec<(String, f64, f64)> =
        report.tornado.iter().map(|b| (b.weight.clone(), b.total_low, b.total_high)).collect();
    let mut sections = vec![
        format!("<h2>Sensitivity</h2><pre>{}</pre>", escape(&report.to_table())),
        tornado(
            &format!("Tornado: total of '{}' with each weight x(1±{})", report.top, report.delta),
            baseline_total,
            &bars,
        ),
    ];
    let names: Vec<String> = report.monte_carlo.iter().map(|r| r.scenario.clone()).collect();
    let p: Vec<f64> = report.monte_carlo.iter().map(|r| r.probability_first).collect();
    sections.push(bar_chart(&format!("Probability of ranking first ({} draws)", report.draws), &names, &p, ""));
    sections
}

/// The report of `brand allocate`.
pub fn allocation_sections(a: &Allocation) -> Vec<String> {
    let names: Vec<String> = a.spends.iter().map(|s| s.indicator.clone()).collect();
    let spend: Vec<f64> = a.spends.iter().map(|s| s.spend).collect();
    let gain: Vec<f64> = a.spends.iter().map(|s| s.gain).collect();
    vec![
        format!("<h2>Budget allocation</h2><pre>{}</pre>", escape(&a.to_table())),
        bar_chart("Spend per indicator", &names, &spend, ""),
        bar_chart("Gain in the total per indicator", &names, &gain, ""),
    ]
}

/// The report of `brand ahp`.
pub fn ahp_sections(results: &[AhpResult]) -> Vec<String> {
    results
        .iter()
        .map(|r| {
            bar_chart(&format!("[ahp.{}] weights (CR {:.3})", r.name, r.consistency_ratio), &r.criteria, &r.weights, "")
        })
        .collect()
}

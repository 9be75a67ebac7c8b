//! A confusion matrix drawn as a standalone SVG heat map.

use std::fmt::Write;

use crate::ClassReport;

/// Escapes text for SVG and HTML (`&`, `<`, `>`, `"`).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The report's confusion matrix as SVG: rows are true classes, columns
/// predicted ones, each cell shaded by its share of the row and labelled
/// with its count.
pub fn confusion_svg(report: &ClassReport) -> String {
    let n = report.classes.len();
    let cell = if n > 30 {
        14
    } else if n > 10 {
        28
    } else {
        56
    };
    let label_width = 10 + 7 * report.classes.iter().map(|c| c.chars().count()).max().unwrap_or(1).min(40);
    let (left, top) = (label_width, label_width);
    let size = ((left + n * cell + 20).max(460), top + n * cell + 40);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11">"#,
        size.0, size.1
    );
    let _ = write!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" font-size="13">confusion matrix: rows true, columns predicted (accuracy {:.4})</text>"#,
        10,
        size.1 - 12,
        report.accuracy
    );
    for (i, class) in report.classes.iter().enumerate() {
        let name = escape(&class.chars().take(40).collect::<String>());
        let y = top + i * cell + cell / 2 + 4;
        let _ = write!(svg, r#"<text x="{}" y="{y}" text-anchor="end">{name}</text>"#, left - 6);
        let x = left + i * cell + cell / 2 + 4;
        let _ = write!(svg, r#"<text transform="translate({x},{}) rotate(-90)">{name}</text>"#, top - 6);
    }
    for (i, row) in report.confusion.iter().enumerate() {
        let total: usize = row.iter().sum();
        for (j, &count) in row.iter().enumerate() {
            let share = if total == 0 { 0.0 } else { count as f64 / total as f64 };
            let shade = (255.0 * (1.0 - share)).round() as u8;
            let (x, y) = (left + j * cell, top + i * cell);
            let _ = write!(
                svg,
                r#"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({shade},{shade},255)" stroke="rgb(204,204,204)"><title>{} as {}: {count}</title></rect>"#,
                escape(&report.classes[i]),
                escape(&report.classes[j])
            );
            if cell >= 28 && count > 0 {
                let color = if share > 0.5 { "white" } else { "black" };
                let _ = write!(
                    svg,
                    r#"<text x="{}" y="{}" text-anchor="middle" fill="{color}">{count}</text>"#,
                    x + cell / 2,
                    y + cell / 2 + 4
                );
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_cell_per_pair_and_escapes_names() {
        let labels: Vec<String> = ["a<b", "c"].map(String::from).to_vec();
        let report = ClassReport::compute(&labels, &[0, 0, 1], &[0, 1, 1]);
        let svg = confusion_svg(&report);
        assert_eq!(svg.matches("<rect x=").count(), 4);
        assert!(svg.contains("a&lt;b as c: 1"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}

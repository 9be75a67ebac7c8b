//! The coverage-against-precision curve of an assistant drawn as a
//! standalone SVG line plot, the calibrated threshold marked.

use std::fmt::Write;

use crate::CoveragePoint;

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 60.0;
const TOP: f64 = 40.0;
const PLOT: (f64, f64) = (WIDTH - LEFT - 20.0, HEIGHT - TOP - 50.0);

fn x(coverage: f64) -> f64 {
    LEFT + coverage * PLOT.0
}

fn y(precision: f64) -> f64 {
    TOP + (1.0 - precision) * PLOT.1
}

/// `curve` (from [`crate::coverage_curve`]) as SVG: coverage across,
/// precision up, both from 0 to 1, under `title`; the point of `threshold`
/// (the lowest curve point at or above it) marked and labelled.
pub fn coverage_svg(title: &str, curve: &[CoveragePoint], threshold: Option<f32>) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = title.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let _ = write!(svg, r#"<text x="{LEFT}" y="24" font-size="13">{title}</text>"#);
    for tick in 0..=5 {
        let v = f64::from(tick) / 5.0;
        let _ = write!(
            svg,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="rgb(230,230,230)"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{v:.1}</text>"#,
            y = y(v),
            x1 = x(1.0),
            tx = LEFT - 6.0,
            ty = y(v) + 4.0
        );
        let _ = write!(
            svg,
            r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{y0}" stroke="rgb(230,230,230)"/><text x="{x:.1}" y="{ty}" text-anchor="middle">{v:.1}</text>"#,
            x = x(v),
            y0 = y(0.0),
            ty = y(0.0) + 16.0
        );
    }
    let _ = write!(
        svg,
        r#"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="black"/>"#,
        PLOT.0, PLOT.1
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">coverage (share of questions answered)</text>"#,
        x(0.5),
        HEIGHT - 12.0
    );
    let _ = write!(
        svg,
        r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">precision (share answered right)</text>"#,
        y(0.5)
    );
    let points: Vec<String> = curve.iter().map(|p| format!("{:.2},{:.2}", x(p.coverage), y(p.precision))).collect();
    let _ = write!(
        svg,
        r#"<polyline points="{}" fill="none" stroke="rgb(31,119,180)" stroke-width="2"/>"#,
        points.join(" ")
    );
    if let Some((t, point)) = threshold.and_then(|t| curve.iter().rev().find(|p| p.threshold >= t).map(|p| (t, p))) {
        let (px, py) = (x(point.coverage), y(point.precision));
        let anchor = if point.coverage > 0.6 { "end" } else { "start" };
        let dx = if point.coverage > 0.6 { -8.0 } else { 8.0 };
        let _ = write!(
            svg,
            r#"<circle cx="{px:.2}" cy="{py:.2}" r="4" fill="rgb(214,39,40)"/><text x="{:.2}" y="{:.2}" text-anchor="{anchor}">threshold {:.3}: coverage {:.3}, precision {:.3}</text>"#,
            px + dx,
            py + 14.0,
            t,
            point.coverage,
            point.precision
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coverage_curve;

    #[test]
    fn draws_the_curve_and_marks_the_threshold() {
        let curve = coverage_curve(&[0.9, 0.8, 0.7, 0.7], &[true, false, true, false]);
        let svg = coverage_svg("a <b>", &curve, Some(0.75));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &lt;b&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("threshold 0.750: coverage 0.500, precision 0.500"), "{svg}");
        assert!(!coverage_svg("t", &curve, None).contains("<circle"));
    }
}

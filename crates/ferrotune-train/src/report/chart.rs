//! Charts as inline SVG: lines (series of points on linear axes with ticks,
//! a legend, and marked points) and scatters (linear, log or categorical x).

use std::fmt::Write;

use ferrotune_eval::escape;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 272.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = WIDTH - 16.0;
const TOP: f64 = 46.0;
const BOTTOM: f64 = HEIGHT - 36.0;

/// Colours of the series, in turn.
pub const COLOURS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// One line of a chart.
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// Its colour.
    pub colour: &'static str,
    /// Points in x order.
    pub points: Vec<(f64, f64)>,
    /// A thin line (raw values under a smoothed one).
    pub faint: bool,
    /// Points drawn as labelled circles (e.g. the kept epoch).
    pub marks: Vec<(f64, f64, String)>,
}

/// Round tick values covering `[low, high]`, about five of them (whole
/// numbers only when `whole`).
fn ticks(low: f64, high: f64, whole: bool) -> Vec<f64> {
    let span = (high - low).max(f64::EPSILON);
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step =
        [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| span / s <= 6.0).unwrap_or(magnitude * 10.0);
    let step = if whole { step.max(1.0) } else { step };
    let first = (low / step).ceil() as i64;
    let last = (high / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A tick label: short, in scientific notation when very small or large.
fn label(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() < 1e-3 || v.abs() >= 1e5 {
        format!("{v:.1e}")
    } else {
        let text = format!("{v:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A chart's data range and where it is drawn.
struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    /// The frame around `points` (finite ones), `None` without any: the
    /// y range padded a little, a single x widened to a unit.
    fn around(points: impl Iterator<Item = (f64, f64)>) -> Option<Self> {
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            return None;
        }
        if (x1 - x0).abs() < f64::EPSILON {
            (x0, x1) = (x0 - 1.0, x1 + 1.0);
        }
        let pad = ((y1 - y0) * 0.05).max(y1.abs().max(1e-9) * 1e-3);
        Some(Self { x0, x1, y0: y0 - pad, y1: y1 + pad })
    }

    fn x(&self, v: f64) -> f64 {
        LEFT + (RIGHT - LEFT) * (v - self.x0) / (self.x1 - self.x0)
    }

    fn y(&self, v: f64) -> f64 {
        BOTTOM - (BOTTOM - TOP) * (v - self.y0) / (self.y1 - self.y0)
    }

    /// The axes, grid and labels, with the x ticks given as (value, label).
    fn axes(&self, x_label: &str, x_ticks: &[(f64, String)]) -> String {
        let mut grid = String::new();
        let mut labels = String::new();
        for t in ticks(self.y0, self.y1, false) {
            let _ = write!(grid, "M{LEFT},{:.1}H{RIGHT}", self.y(t));
            let _ = write!(
                labels,
                "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT - 6.0,
                self.y(t) + 4.0,
                label(t)
            );
        }
        for (t, text) in x_ticks {
            let _ = write!(grid, "M{:.1},{TOP}V{BOTTOM}", self.x(*t));
            let _ = write!(
                labels,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                self.x(*t),
                BOTTOM + 16.0,
                escape(text)
            );
        }
        format!(
            "<g class=\"axes\" font-size=\"11\"><path d=\"{grid}\" stroke=\"#e6e6e6\" fill=\"none\"/>\
             <path d=\"M{LEFT},{TOP}V{BOTTOM}H{RIGHT}\" stroke=\"#888\" fill=\"none\"/>{labels}\
             <text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
            (LEFT + RIGHT) / 2.0,
            HEIGHT - 6.0,
            escape(x_label)
        )
    }
}

/// An empty chart with its title.
fn open(title: &str) -> String {
    format!(
        "<svg class=\"chart\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"{0}\"><text x=\"{LEFT}\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{0}</text>",
        escape(title)
    )
}

const NO_DATA: &str = "<text x=\"200\" y=\"130\" fill=\"#888\">no data</text></svg>";

/// The chart of `series` titled `title`, `x_label` under the x axis.
pub fn line_chart(title: &str, x_label: &str, series: &[Series]) -> String {
    let mut svg = open(title);
    let Some(frame) = Frame::around(series.iter().flat_map(|s| s.points.iter().copied())) else {
        return svg + NO_DATA;
    };
    let whole_x = series.iter().flat_map(|s| &s.points).all(|(x, _)| x.fract() == 0.0);
    let x_ticks: Vec<(f64, String)> = ticks(frame.x0, frame.x1, whole_x).into_iter().map(|t| (t, label(t))).collect();
    svg += &frame.axes(x_label, &x_ticks);
    let (x, y) = (|v: f64| frame.x(v), |v: f64| frame.y(v));
    for (index, s) in series.iter().enumerate() {
        let mut path = String::new();
        for (i, &(px, py)) in s.points.iter().filter(|(a, b)| a.is_finite() && b.is_finite()).enumerate() {
            let _ = write!(path, "{}{:.1},{:.1}", if i == 0 { "M" } else { "L" }, x(px), y(py));
        }
        let (width, opacity) = if s.faint { (1.0, 0.35) } else { (2.0, 1.0) };
        let _ = write!(
            svg,
            "<path class=\"series\" d=\"{path}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{width}\" \
             stroke-opacity=\"{opacity}\"><title>{}</title></path>",
            s.colour,
            escape(&s.name)
        );
        if s.points.len() == 1 {
            let (px, py) = s.points[0];
            let _ = write!(svg, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"/>", x(px), y(py), s.colour);
        }
        for (mx, my, text) in &s.marks {
            // The label reads leftwards in the right half of the chart.
            let (dx, anchor) = if x(*mx) > (LEFT + RIGHT) / 2.0 { (-8.0, "end") } else { (8.0, "start") };
            let _ = write!(
                svg,
                "<circle class=\"mark\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"{}\" text-anchor=\"{anchor}\">{}</text>",
                x(*mx),
                y(*my),
                s.colour,
                x(*mx) + dx,
                (y(*my) - 8.0 - 13.0 * index as f64).max(TOP + 8.0 + 13.0 * index as f64),
                s.colour,
                escape(text)
            );
        }
    }
    let named: Vec<&Series> = series.iter().filter(|s| !s.faint).collect();
    if named.len() > 1 {
        let mut at = LEFT;
        for s in named {
            let _ = write!(
                svg,
                "<rect x=\"{at:.1}\" y=\"26\" width=\"10\" height=\"10\" fill=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"35\" font-size=\"11\">{}</text>",
                s.colour,
                at + 14.0,
                escape(&s.name)
            );
            at += 24.0 + 6.5 * s.name.chars().count() as f64;
        }
    }
    svg.push_str("</svg>");
    svg
}

/// How a scatter chart's x axis reads its values.
pub enum XScale {
    /// As they are.
    Linear,
    /// Values above 0, spaced by their logarithm.
    Log,
    /// Indices of these names, one band each.
    Categories(Vec<String>),
}

/// Points of one kind in a scatter chart.
pub struct Dots {
    /// Its name in the legend.
    pub name: String,
    /// Its colour.
    pub colour: &'static str,
    /// Outlined instead of filled (e.g. pruned trials).
    pub hollow: bool,
    /// The points (x in the axis's own values) with their tooltips.
    pub points: Vec<(f64, f64, String)>,
}

/// A scatter chart of `groups` titled `title`, `x_label` under the x axis;
/// the x axis spans `x_range` when given (e.g. a searched option's range),
/// else the points.
pub fn scatter_chart(
    title: &str,
    x_label: &str,
    scale: &XScale,
    x_range: Option<(f64, f64)>,
    groups: &[Dots],
) -> String {
    let place = |x: f64| match scale {
        XScale::Log => x.log10(),
        XScale::Linear | XScale::Categories(_) => x,
    };
    let mut svg = open(title);
    let all = groups.iter().flat_map(|g| g.points.iter().map(|&(x, y, _)| (place(x), y)));
    let Some(mut frame) = Frame::around(all) else {
        return svg + NO_DATA;
    };
    if let Some((low, high)) = x_range.filter(|(low, high)| low < high) {
        (frame.x0, frame.x1) = (place(low), place(high));
    }
    let x_ticks: Vec<(f64, String)> = match scale {
        XScale::Linear => ticks(frame.x0, frame.x1, false).into_iter().map(|t| (t, label(t))).collect(),
        XScale::Log => {
            // Decades and their halves (1, 3) in the range.
            let (low, high) = (frame.x0.floor() as i32, frame.x1.ceil() as i32);
            (low..=high)
                .flat_map(|d| [(d as f64, 1.0), (d as f64 + 3f64.log10(), 3.0)])
                .filter(|(t, _)| (frame.x0 - 1e-9..=frame.x1 + 1e-9).contains(t))
                .map(|(t, m)| (t, label(m * 10f64.powi(t.floor() as i32))))
                .collect()
        }
        XScale::Categories(names) => {
            (frame.x0, frame.x1) = (-0.5, names.len() as f64 - 0.5);
            names.iter().enumerate().map(|(i, n)| (i as f64, n.clone())).collect()
        }
    };
    if !matches!(scale, XScale::Categories(_)) {
        let pad = (frame.x1 - frame.x0) * 0.04;
        (frame.x0, frame.x1) = (frame.x0 - pad, frame.x1 + pad);
    }
    svg += &frame.axes(x_label, &x_ticks);
    for g in groups {
        for (x, y, tip) in &g.points {
            let fill = if g.hollow { "none" } else { g.colour };
            let _ = write!(
                svg,
                "<circle class=\"dot\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{fill}\" stroke=\"{}\" stroke-width=\"1.5\">\
                 <title>{}</title></circle>",
                frame.x(place(*x)),
                frame.y(*y),
                g.colour,
                escape(tip)
            );
        }
    }
    let mut at = LEFT;
    for g in groups.iter().filter(|g| !g.points.is_empty()) {
        let fill = if g.hollow { "none" } else { g.colour };
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"31\" r=\"4\" fill=\"{fill}\" stroke=\"{}\"/>\
             <text x=\"{:.1}\" y=\"35\" font-size=\"11\">{}</text>",
            at + 5.0,
            g.colour,
            at + 14.0,
            escape(&g.name)
        );
        at += 24.0 + 6.5 * g.name.chars().count() as f64;
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let close = |got: Vec<f64>, want: &[f64]| {
            assert_eq!(got.len(), want.len(), "{got:?}");
            assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-12), "{got:?}");
        };
        close(ticks(0.0, 1.0, false), &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        close(ticks(3.0, 47.0, false), &[10.0, 20.0, 30.0, 40.0]);
        close(ticks(1.0, 4.0, true), &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(label(ticks(0.0, 1.0, false)[3]), "0.6");
        let small = ticks(1e-6, 5e-5, false);
        assert!(small.len() >= 2 && small.iter().all(|t| (1e-6..=5e-5).contains(t)), "{small:?}");
        assert_eq!(label(2e-5), "2.0e-5");
        assert_eq!(label(0.25), "0.25");
    }

    #[test]
    fn a_chart_draws_every_series_and_mark() {
        let s = |name: &str, faint| Series {
            name: name.into(),
            colour: COLOURS[0],
            points: vec![(1.0, 0.5), (2.0, 0.7), (3.0, 0.6)],
            faint,
            marks: vec![(2.0, 0.7, "kept".into())],
        };
        let svg = line_chart("dev <score>", "epoch", &[s("a", false), s("b", true)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"series\"").count(), 2);
        assert_eq!(svg.matches("class=\"mark\"").count(), 2);
        assert!(svg.contains("dev &lt;score&gt;"));
        assert!(line_chart("empty", "step", &[]).contains("no data"));
    }

    #[test]
    fn a_scatter_chart_draws_every_dot_on_its_scale() {
        let dots = |hollow, points: Vec<(f64, f64, String)>| Dots {
            name: "complete".into(),
            colour: COLOURS[1],
            hollow,
            points,
        };
        let log = scatter_chart(
            "lr",
            "lr",
            &XScale::Log,
            Some((1e-5, 3e-4)),
            &[
                dots(false, vec![(1e-5, 0.5, "a".into()), (2e-4, 0.8, "b".into())]),
                dots(true, vec![(5e-5, 0.6, "c".into())]),
            ],
        );
        assert_eq!(log.matches("class=\"dot\"").count(), 3);
        assert!(log.contains(">1.0e-4<") && log.contains(">3.0e-5<") && log.contains(">3.0e-4<"), "{log}");
        let bands = scatter_chart(
            "b",
            "batch",
            &XScale::Categories(vec!["8".into(), "16".into()]),
            None,
            &[dots(false, vec![(1.0, 0.5, "x".into())])],
        );
        assert!(bands.contains(">16<") && bands.contains(">8<"));
        assert!(scatter_chart("e", "x", &XScale::Linear, None, &[]).contains("no data"));
    }
}

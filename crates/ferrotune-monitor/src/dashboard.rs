//! The monitor's dashboard: one self-contained HTML page (inline CSS and
//! inline SVG, no script, no external reference) with, per topic, the
//! negative share of each window against its baseline band (baseline ± 2
//! standard deviations), the volume of each window, a marker on every alert
//! and resolution, and a table of the alerts with the texts behind them.
//!
//! A window without records has no share: the line breaks there. The line,
//! the band and the bars are one SVG path each, so the page stays small for
//! thousands of windows.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::{Alert, AlertKind, Severity};

/// One final window of a topic as the dashboard draws it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowPoint {
    /// First second of the window (Unix seconds).
    pub start: i64,
    /// First second after it.
    pub end: i64,
    /// Records in the window.
    pub count: u64,
    /// Negative records in it.
    pub negatives: u64,
    /// The topic's baseline share when the window was tested (None before the topic has a baseline).
    pub baseline_share: Option<f64>,
    /// The standard deviation of that baseline share (None before the topic has a baseline).
    pub baseline_sd: Option<f64>,
}

/// One topic's series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicSeries {
    /// The topic.
    pub topic: String,
    /// Its final windows, in time order.
    pub windows: Vec<WindowPoint>,
    /// Its alerts and resolutions, in time order.
    pub alerts: Vec<Alert>,
}

/// Everything on the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    /// The page's title.
    pub title: String,
    /// Unix seconds, when the page was made.
    pub generated_at: i64,
    /// The topics, one section each.
    pub topics: Vec<TopicSeries>,
}

impl Dashboard {
    /// The self-contained HTML page.
    pub fn to_html(&self) -> String {
        let mut page = String::new();
        let title = escape(&self.title);
        let _ = write!(
            page,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
             <style>{STYLE}</style></head><body>"
        );
        let _ = write!(page, "<h1>{title}</h1><p class=\"meta\">Generated {}", utc(self.generated_at));
        if let Some((from, to)) = self.time_range() {
            let _ = write!(page, "; windows from {} to {}", utc(from), utc(to));
        }
        page.push_str(" (all times UTC).</p>");
        if self.topics.is_empty() {
            page.push_str("<p class=\"empty\">Nothing to show: no topic has a window in the chosen range.</p>");
        } else {
            page.push_str(&self.summary_table());
            page.push_str(LEGEND);
            for (index, series) in self.topics.iter().enumerate() {
                page.push_str(&topic_section(index, series));
            }
        }
        page.push_str("</body></html>\n");
        page
    }

    /// The first start and the last end of all windows.
    fn time_range(&self) -> Option<(i64, i64)> {
        let windows = self.topics.iter().flat_map(|t| &t.windows);
        let from = windows.clone().map(|w| w.start).min()?;
        let to = windows.map(|w| w.end).max()?;
        Some((from, to))
    }

    /// One row per topic: windows, records, mean negative share, alerts.
    fn summary_table(&self) -> String {
        let mut table = String::from(
            "<table class=\"summary\"><thead><tr><th>topic</th><th>windows</th><th>records</th>\
             <th>mean negative share</th><th>alerts</th><th>critical</th><th>resolved</th></tr></thead><tbody>",
        );
        for (index, series) in self.topics.iter().enumerate() {
            let records: u64 = series.windows.iter().map(|w| w.count).sum();
            let negatives: u64 = series.windows.iter().map(|w| w.negatives).sum();
            let raised = series.alerts.iter().filter(|a| a.severity != Severity::Resolved).count();
            let critical = series.alerts.iter().filter(|a| a.severity == Severity::Critical).count();
            let _ = write!(
                table,
                "<tr><td><a href=\"#topic-{index}\">{}</a></td><td class=\"num\">{}</td>\
                 <td class=\"num\">{records}</td><td class=\"num\">{}</td><td class=\"num\">{raised}</td>\
                 <td class=\"num\">{critical}</td><td class=\"num\">{}</td></tr>",
                escape(&series.topic),
                series.windows.len(),
                if records == 0 { "–".to_string() } else { percent(negatives as f64 / records as f64) },
                series.alerts.len() - raised,
            );
        }
        table.push_str("</tbody></table>");
        table
    }
}

const STYLE: &str = "body{font:14px/1.4 sans-serif;margin:24px;color:#222;max-width:1240px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 4px}.meta{color:#555;margin:0 0 16px}\
table{border-collapse:collapse;margin:8px 0}\
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f2f2f2}td.num{text-align:right}table.alerts{font-size:13px;width:100%}\
table.alerts ul{margin:0;padding-left:18px}table.alerts li{overflow-wrap:anywhere}\
svg{display:block;max-width:100%;height:auto}svg text{font:11px sans-serif;fill:#444}\
.legend span{display:inline-block;margin-right:16px}\
.swatch{display:inline-block;width:18px;height:10px;margin-right:4px;vertical-align:middle}\
.warning{color:#e08a00}.critical{color:#c62828}.resolved{color:#2e7d32}";

const LEGEND: &str = "<p class=\"legend\">\
<span><i class=\"swatch\" style=\"height:3px;background:#1f5fa8\"></i>negative share</span>\
<span><i class=\"swatch\" style=\"background:#cfe0f3;border-top:2px dashed #6b8fb8\"></i>baseline ± 2 sd</span>\
<span><i class=\"swatch\" style=\"background:#b9c2cc\"></i>records per window</span>\
<span class=\"warning\">● warning</span><span class=\"critical\">● critical</span>\
<span class=\"resolved\">◇ resolved</span></p>";

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Unix seconds in RFC 3339, UTC (the number itself where out of range).
fn utc(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds).map_or_else(|_| seconds.to_string(), |t| t.to_string())
}

/// The first second (Unix) of the month `month` months after January of year 0, UTC.
fn first_of_month_utc(month: i64) -> Option<i64> {
    let year = i16::try_from(month.div_euclid(12)).ok()?;
    let date = jiff::civil::Date::new(year, (month.rem_euclid(12) + 1) as i8, 1).ok()?;
    Some(jiff::tz::Offset::UTC.to_timestamp(date.at(0, 0, 0, 0)).ok()?.as_second())
}

/// Unix seconds formatted with a `strftime` pattern, UTC.
fn utc_with(seconds: i64, pattern: &str) -> String {
    jiff::Timestamp::from_second(seconds).map_or_else(|_| seconds.to_string(), |t| t.strftime(pattern).to_string())
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn kind_name(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::NegativeShare => "negative share",
        AlertKind::Volume => "volume",
    }
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Warning => "warning",
        Severity::Critical => "critical",
        Severity::Resolved => "resolved",
    }
}

/// A topic's heading, chart and alert table.
fn topic_section(index: usize, series: &TopicSeries) -> String {
    let topic = escape(&series.topic);
    let mut section = format!("<section class=\"topic\" id=\"topic-{index}\" data-topic=\"{topic}\"><h2>{topic}</h2>");
    match Chart::new(series) {
        Some(chart) => section.push_str(&chart.svg(series)),
        None => section.push_str("<p class=\"empty\">No windows in the chosen range.</p>"),
    }
    section.push_str(&alert_table(&series.alerts));
    section.push_str("</section>");
    section
}

/// The topic's alerts, each with the texts behind it.
fn alert_table(alerts: &[Alert]) -> String {
    if alerts.is_empty() {
        return "<p>No alerts.</p>".to_string();
    }
    let mut table = String::from(
        "<table class=\"alerts\"><thead><tr><th>window start</th><th>kind</th><th>severity</th>\
         <th>observed share</th><th>baseline share</th><th>count</th><th>p-value</th><th>texts</th></tr>\
         </thead><tbody>",
    );
    for alert in alerts {
        let severity = severity_name(alert.severity);
        let _ = write!(
            table,
            "<tr><td>{}</td><td>{}</td><td class=\"{severity}\">{severity}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{} (baseline {:.0})</td><td class=\"num\">{:.2e}</td>\
             <td>{}</td></tr>",
            utc(alert.window_start),
            kind_name(alert.kind),
            percent(alert.observed_share),
            percent(alert.baseline_share),
            alert.count,
            alert.baseline_count,
            alert.p_value,
            text_list(&alert.texts),
        );
    }
    table.push_str("</tbody></table>");
    table
}

fn text_list(texts: &[String]) -> String {
    if texts.is_empty() {
        return "–".to_string();
    }
    let items: String = texts.iter().map(|t| format!("<li>{}</li>", escape(t))).collect();
    format!("<ul>{items}</ul>")
}

/// Width of the chart.
const WIDTH: f64 = 1200.0;
/// Left edge of the plot area (room for the y labels).
const LEFT: f64 = 56.0;
/// Right edge of the plot area (room for a time label centred on it).
const RIGHT: f64 = WIDTH - 48.0;
/// Top of the share panel.
const SHARE_TOP: f64 = 12.0;
/// Bottom of the share panel (share 0).
const SHARE_BOTTOM: f64 = 252.0;
/// Top of the volume panel (its largest count).
const VOLUME_TOP: f64 = 276.0;
/// Bottom of the volume panel (count 0).
const VOLUME_BOTTOM: f64 = 356.0;
/// Height of the chart.
const HEIGHT: f64 = 396.0;
/// Time axis steps under a month (seconds), the first with at most `MAX_TICKS` ticks is used.
const TIME_STEPS: [i64; 12] =
    [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, DAY, 2 * DAY, 7 * DAY, 14 * DAY];
/// Time axis steps of whole months, for longer spans.
const MONTH_STEPS: [i64; 8] = [1, 2, 3, 6, 12, 24, 60, 120];
const DAY: i64 = 86_400;
/// A mean month (seconds), to count the ticks of a step in months.
const MONTH: i64 = 2_629_746;
const MAX_TICKS: i64 = 7;

/// The scales of one topic's chart: time to x, share and volume to y.
struct Chart {
    from: i64,
    to: i64,
    max_count: u64,
}

impl Chart {
    /// The chart of a topic with at least one window.
    fn new(series: &TopicSeries) -> Option<Self> {
        let from = series.windows.iter().map(|w| w.start).min()?;
        let to = series.windows.iter().map(|w| w.end).max()?.max(from + 1);
        let max_count = series.windows.iter().map(|w| w.count).max().unwrap_or(0);
        Some(Self { from, to, max_count })
    }

    fn x(&self, seconds: i64) -> f64 {
        let clamped = seconds.clamp(self.from, self.to);
        LEFT + (RIGHT - LEFT) * (clamped - self.from) as f64 / (self.to - self.from) as f64
    }

    fn x_mid(&self, start: i64, end: i64) -> f64 {
        (self.x(start) + self.x(end)) / 2.0
    }

    fn y_share(share: f64) -> f64 {
        SHARE_BOTTOM - (SHARE_BOTTOM - SHARE_TOP) * share.clamp(0.0, 1.0)
    }

    fn y_count(&self, count: u64) -> f64 {
        VOLUME_BOTTOM - (VOLUME_BOTTOM - VOLUME_TOP) * count as f64 / self.max_count.max(1) as f64
    }

    fn svg(&self, series: &TopicSeries) -> String {
        let mut svg = format!(
            "<svg width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
             aria-label=\"negative share and volume of {}\">",
            escape(&series.topic)
        );
        svg.push_str(&self.axes());
        svg.push_str(&self.baseline_band(&series.windows));
        svg.push_str(&self.share_line(&series.windows));
        svg.push_str(&self.volume_bars(&series.windows));
        for alert in &series.alerts {
            svg.push_str(&self.alert_marker(alert));
        }
        svg.push_str("</svg>");
        svg
    }

    /// Share gridlines and labels, the volume scale, time ticks and labels.
    fn axes(&self) -> String {
        let (step, ticks) = self.time_ticks();
        let mut grid = format!("M{LEFT},{VOLUME_TOP}H{RIGHT}");
        for quarter in 0..=4 {
            let _ = write!(grid, "M{LEFT},{:.1}H{RIGHT}", Self::y_share(f64::from(quarter) / 4.0));
        }
        for &tick in &ticks {
            let x = self.x(tick);
            let _ = write!(grid, "M{x:.1},{SHARE_TOP}V{SHARE_BOTTOM}M{x:.1},{VOLUME_TOP}V{VOLUME_BOTTOM}");
        }
        format!(
            "<g class=\"axes\"><path d=\"{grid}\" stroke=\"#e3e3e3\" fill=\"none\"/>\
             <path d=\"M{LEFT},{SHARE_BOTTOM}H{RIGHT}M{LEFT},{VOLUME_BOTTOM}H{RIGHT}\" stroke=\"#888\"/>{}{}{}</g>",
            Self::share_labels(),
            self.volume_labels(),
            self.time_labels(step, &ticks)
        )
    }

    /// 0% to 100% in quarters, and the panel's name.
    fn share_labels() -> String {
        let mut labels = String::new();
        for quarter in 0..=4 {
            let y = Self::y_share(f64::from(quarter) / 4.0) + 4.0;
            let _ =
                write!(labels, "<text x=\"{}\" y=\"{y:.1}\" text-anchor=\"end\">{}%</text>", LEFT - 6.0, quarter * 25);
        }
        let _ = write!(labels, "<text x=\"{}\" y=\"{}\">negative share</text>", LEFT + 4.0, SHARE_TOP + 12.0);
        labels
    }

    /// The largest count and 0, and the panel's name.
    fn volume_labels(&self) -> String {
        format!(
            "<text x=\"{x}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <text x=\"{x}\" y=\"{}\" text-anchor=\"end\">0</text>\
             <text x=\"{LEFT}\" y=\"{}\">records per window</text>",
            VOLUME_TOP + 4.0,
            self.max_count,
            VOLUME_BOTTOM + 4.0,
            VOLUME_TOP - 5.0,
            x = LEFT - 6.0,
        )
    }

    /// A UTC date (and time, for steps under a day) under each tick.
    fn time_labels(&self, step: i64, ticks: &[i64]) -> String {
        let pattern = if step < DAY { "%m-%d %H:%M" } else { "%Y-%m-%d" };
        let mut labels = String::new();
        for &tick in ticks {
            let _ = write!(
                labels,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                self.x(tick),
                VOLUME_BOTTOM + 16.0,
                utc_with(tick, pattern)
            );
        }
        let _ = write!(
            labels,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">time (UTC)</text>",
            (LEFT + RIGHT) / 2.0,
            VOLUME_BOTTOM + 34.0
        );
        labels
    }

    /// A round step with at most `MAX_TICKS` ticks (its length in seconds) and the ticks on its
    /// multiples: seconds since the epoch under a month, first days of months beyond.
    fn time_ticks(&self) -> (i64, Vec<i64>) {
        let span = self.to - self.from;
        if let Some(step) = TIME_STEPS.into_iter().find(|step| span / step <= MAX_TICKS) {
            let first = self.from + (step - self.from.rem_euclid(step)) % step;
            return (step, (first..=self.to).step_by(step as usize).collect());
        }
        let months = MONTH_STEPS
            .into_iter()
            .find(|months| span / (months * MONTH) <= MAX_TICKS)
            .unwrap_or_else(|| (span / MAX_TICKS / (120 * MONTH) + 1) * 120);
        (months * MONTH, self.month_ticks(months))
    }

    /// The first days of months (UTC) in the chart's span whose month count since year 0 is a
    /// multiple of `months`.
    fn month_ticks(&self, months: i64) -> Vec<i64> {
        let Ok(from) = jiff::Timestamp::from_second(self.from) else { return Vec::new() };
        let date = jiff::tz::Offset::UTC.to_datetime(from).date();
        let first = i64::from(date.year()) * 12 + i64::from(date.month()) - 1;
        let mut ticks = Vec::new();
        for month in (first.div_euclid(months) * months..).step_by(months as usize) {
            let Some(seconds) = first_of_month_utc(month) else { break };
            if seconds > self.to {
                break;
            }
            if seconds >= self.from {
                ticks.push(seconds);
            }
        }
        ticks
    }

    /// The negative share through the windows' midpoints, broken at windows without records.
    fn share_line(&self, windows: &[WindowPoint]) -> String {
        let mut d = String::new();
        for run in windows.split(|w| w.count == 0).filter(|run| !run.is_empty()) {
            let shares = run.iter().map(|w| (self.x_mid(w.start, w.end), w.negatives as f64 / w.count as f64));
            d.push_str(&polyline(shares));
            if run.len() == 1 {
                // A zero-length segment: the round cap draws the lone point as a dot.
                d.push_str("h0");
            }
        }
        format!(
            "<path class=\"share\" d=\"{d}\" fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"1.6\" \
             stroke-linejoin=\"round\" stroke-linecap=\"round\"/>"
        )
    }

    /// Baseline ± 2 sd (clamped to [0, 1]) shaded, and the baseline as a dashed line,
    /// over each run of windows with a baseline, from the run's first start to its last end.
    fn baseline_band(&self, windows: &[WindowPoint]) -> String {
        let (mut band, mut line) = (String::new(), String::new());
        for run in windows.split(|w| w.baseline_share.is_none()).filter(|run| !run.is_empty()) {
            let points = self.run_points(run);
            let upper = points.iter().map(|&(x, share, sd)| (x, share + 2.0 * sd));
            let lower = points.iter().rev().map(|&(x, share, sd)| (x, share - 2.0 * sd));
            band.push_str(&polyline(upper.chain(lower)));
            band.push('Z');
            line.push_str(&polyline(points.iter().map(|&(x, share, _)| (x, share))));
        }
        format!(
            "<path class=\"band\" d=\"{band}\" fill=\"#cfe0f3\" stroke=\"none\"/>\
             <path class=\"baseline\" d=\"{line}\" fill=\"none\" stroke=\"#6b8fb8\" stroke-dasharray=\"4 3\"/>"
        )
    }

    /// (x, baseline share, sd) at the run's first start, each window's midpoint and its last end.
    fn run_points(&self, run: &[WindowPoint]) -> Vec<(f64, f64, f64)> {
        let point = |x: f64, w: &WindowPoint| (x, w.baseline_share.unwrap_or(0.0), w.baseline_sd.unwrap_or(0.0));
        let (first, last) = (&run[0], &run[run.len() - 1]);
        let mut points = vec![point(self.x(first.start), first)];
        points.extend(run.iter().map(|w| point(self.x_mid(w.start, w.end), w)));
        points.push(point(self.x(last.end), last));
        points
    }

    /// One bar per window with records, all in one path.
    fn volume_bars(&self, windows: &[WindowPoint]) -> String {
        let mut d = String::new();
        for window in windows.iter().filter(|w| w.count > 0) {
            let (x0, x1) = (self.x(window.start), self.x(window.end));
            let gap = if x1 - x0 > 3.0 { (x1 - x0) * 0.15 } else { 0.0 };
            let _ = write!(
                d,
                "M{:.1},{VOLUME_BOTTOM}V{:.1}H{:.1}V{VOLUME_BOTTOM}Z",
                x0 + gap / 2.0,
                self.y_count(window.count),
                (x1 - gap / 2.0).max(x0 + 0.3)
            );
        }
        format!("<path class=\"volume\" d=\"{d}\" fill=\"#b9c2cc\"/>")
    }

    /// A marker on the alert's window: on the share line for share alerts, on the bar for volume
    /// alerts; a filled circle for warnings and critical alerts, a hollow diamond for resolutions.
    fn alert_marker(&self, alert: &Alert) -> String {
        let x = self.x_mid(alert.window_start, alert.window_end);
        let y = match alert.kind {
            AlertKind::NegativeShare => Self::y_share(alert.observed_share),
            AlertKind::Volume => self.y_count(alert.count.min(self.max_count)),
        };
        let severity = severity_name(alert.severity);
        let title = marker_title(alert);
        match alert.severity {
            Severity::Resolved => format!(
                "<path class=\"alert-marker {severity}\" d=\"M{x:.1},{:.1}l6,6l-6,6l-6,-6Z\" fill=\"white\" \
                 stroke=\"#2e7d32\" stroke-width=\"2\"><title>{title}</title></path>",
                y - 6.0
            ),
            Severity::Warning | Severity::Critical => {
                let (fill, radius) =
                    if alert.severity == Severity::Critical { ("#c62828", 6.5) } else { ("#e08a00", 5.5) };
                format!(
                    "<circle class=\"alert-marker {severity}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{radius}\" \
                     fill=\"{fill}\" stroke=\"white\" stroke-width=\"1.5\"><title>{title}</title></circle>"
                )
            }
        }
    }
}

/// The tooltip of an alert marker.
fn marker_title(alert: &Alert) -> String {
    format!(
        "{} {} at {}: {} negative (baseline {}), {} records, p = {:.2e}",
        severity_name(alert.severity),
        kind_name(alert.kind),
        utc(alert.window_start),
        percent(alert.observed_share),
        percent(alert.baseline_share),
        alert.count,
        alert.p_value
    )
}

/// `M` then `L` through the points, shares turned into y.
fn polyline(points: impl Iterator<Item = (f64, f64)>) -> String {
    let mut d = String::new();
    for (i, (x, share)) in points.enumerate() {
        let _ = write!(d, "{}{x:.1},{:.1}", if i == 0 { 'M' } else { 'L' }, Chart::y_share(share));
    }
    d
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::{Detector, DetectorSettings, Window};

    /// 2024-03-04T00:00:00Z.
    const T0: i64 = 1_709_510_400;
    const HOUR: i64 = 3600;

    fn window(hour: i64, count: u64, negatives: u64, baseline: Option<(f64, f64)>) -> WindowPoint {
        WindowPoint {
            start: T0 + hour * HOUR,
            end: T0 + (hour + 1) * HOUR,
            count,
            negatives,
            baseline_share: baseline.map(|b| b.0),
            baseline_sd: baseline.map(|b| b.1),
        }
    }

    fn alert(topic: &str, hour: i64, kind: AlertKind, severity: Severity, texts: &[&str]) -> Alert {
        Alert {
            kind,
            severity,
            topic: topic.to_string(),
            window_start: T0 + hour * HOUR,
            window_end: T0 + (hour + 1) * HOUR,
            count: 100,
            negatives: 60,
            observed_share: 0.6,
            baseline_share: 0.3,
            baseline_count: 100.0,
            p_value: 1.5e-9,
            texts: texts.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn series(topic: &str, windows: Vec<WindowPoint>, alerts: Vec<Alert>) -> TopicSeries {
        TopicSeries { topic: topic.to_string(), windows, alerts }
    }

    fn page(topics: Vec<TopicSeries>) -> String {
        Dashboard { title: "Monitor".to_string(), generated_at: T0 + 1000 * HOUR, topics }.to_html()
    }

    /// The `d` attribute of every path of the class.
    fn path_data<'a>(html: &'a str, class: &str) -> Vec<&'a str> {
        let opening = format!("class=\"{class}\" d=\"");
        html.match_indices(&opening)
            .map(|(at, _)| {
                let rest = &html[at + opening.len()..];
                &rest[..rest.find('"').unwrap()]
            })
            .collect()
    }

    /// The y coordinates of a path of `M`, `L` and `Z` commands.
    fn y_coordinates(d: &str) -> Vec<f64> {
        d.split(['M', 'L', 'Z'])
            .filter(|p| !p.is_empty())
            .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
            .collect()
    }

    fn quiet_windows(hours: i64) -> Vec<WindowPoint> {
        (0..hours).map(|h| window(h, 100, 30, Some((0.3, 0.05)))).collect()
    }

    #[test]
    fn one_section_per_topic_with_its_topic_and_a_summary_row() {
        let html = page(vec![series("acme", quiet_windows(10), vec![]), series("*", quiet_windows(10), vec![])]);
        assert_eq!(html.matches("<section class=\"topic\"").count(), 2);
        assert!(html.contains("data-topic=\"acme\""));
        assert!(html.contains("data-topic=\"*\""));
        let row = "<a href=\"#topic-0\">acme</a></td><td class=\"num\">10</td><td class=\"num\">1000</td>";
        assert!(html.contains(&format!("{row}<td class=\"num\">30.0%</td>")));
        assert!(html.starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn one_marker_per_alert_resolutions_drawn_differently() {
        let alerts = vec![
            alert("acme", 3, AlertKind::NegativeShare, Severity::Warning, &[]),
            alert("acme", 4, AlertKind::Volume, Severity::Critical, &[]),
            alert("acme", 5, AlertKind::NegativeShare, Severity::Resolved, &[]),
        ];
        let html = page(vec![series("acme", quiet_windows(10), alerts)]);
        assert_eq!(html.matches("class=\"alert-marker").count(), 3);
        assert_eq!(html.matches("<circle class=\"alert-marker warning\"").count(), 1);
        assert_eq!(html.matches("<circle class=\"alert-marker critical\"").count(), 1);
        assert_eq!(html.matches("<path class=\"alert-marker resolved\"").count(), 1);
        assert!(html.contains("<title>critical volume at 2024-03-04T04:00:00Z: 60.0% negative (baseline 30.0%)"));
        assert_eq!(html.matches("<tr><td>2024-03-04T0").count(), 3);
    }

    #[test]
    fn text_is_escaped() {
        let texts = ["<script>alert(1)</script> & \"more\""];
        let alerts = vec![alert("<b>a&b</b>", 2, AlertKind::NegativeShare, Severity::Critical, &texts)];
        let html = Dashboard {
            title: "Q1 <report> & co".to_string(),
            generated_at: T0,
            topics: vec![series("<b>a&b</b>", quiet_windows(5), alerts)],
        }
        .to_html();
        assert!(!html.contains("<script"));
        assert!(!html.contains("<b>"));
        assert!(html.contains("<li>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;more&quot;</li>"));
        assert!(html.contains("data-topic=\"&lt;b&gt;a&amp;b&lt;/b&gt;\""));
        assert!(html.contains("<title>Q1 &lt;report&gt; &amp; co</title>"));
    }

    #[test]
    fn no_external_reference() {
        let alerts = vec![alert("acme", 2, AlertKind::NegativeShare, Severity::Warning, &["see http://x.example"])];
        let html = page(vec![series("acme", quiet_windows(20), alerts)]);
        let without_texts = html.replace("<li>see http://x.example</li>", "");
        for reference in ["http", "xmlns", "src=", "url(", "@import", "<script", "<link"] {
            assert!(!without_texts.contains(reference), "{reference}");
        }
    }

    #[test]
    fn windows_without_records_break_the_line() {
        let counts = [10, 10, 0, 10, 0, 0, 10, 10, 10];
        let windows: Vec<_> = counts.iter().zip(0..).map(|(&n, h)| window(h, n, n / 2, None)).collect();
        let html = page(vec![series("acme", windows, vec![])]);
        let share = path_data(&html, "share")[0];
        assert_eq!(share.matches('M').count(), 3, "{share}");
        assert_eq!(share.matches('L').count(), 3, "{share}");
        assert_eq!(share.matches("h0").count(), 1, "the lone window is a dot: {share}");
        assert_eq!(path_data(&html, "volume")[0].matches('Z').count(), 6);
        assert_eq!(path_data(&html, "band")[0], "", "no baseline, no band");
    }

    #[test]
    fn a_topic_with_one_window() {
        let html = page(vec![series("acme", vec![window(0, 40, 10, Some((0.2, 0.1)))], vec![])]);
        assert!(path_data(&html, "share")[0].ends_with("h0"));
        assert_eq!(path_data(&html, "band")[0].matches('Z').count(), 1);
        assert!(html.contains(">03-04 00:00</text>"), "a time label at the window's start");
        assert!(html.contains(">40</text>"), "the volume scale's largest count");
    }

    #[test]
    fn a_topic_without_windows_and_no_topics_at_all() {
        let html = page(vec![series("acme", vec![], vec![])]);
        assert!(html.contains("No windows in the chosen range."));
        assert!(!html.contains("<svg"));
        let html = page(vec![]);
        assert!(html.contains("Nothing to show"));
        assert!(!html.contains("<section"));
    }

    #[test]
    fn the_baseline_band_is_clamped_to_shares_between_0_and_1() {
        let windows = vec![window(0, 50, 45, Some((0.9, 0.2))), window(1, 50, 2, Some((0.05, 0.1)))];
        let html = page(vec![series("acme", windows, vec![])]);
        let ys = y_coordinates(path_data(&html, "band")[0]);
        assert_eq!(ys.len(), 8);
        assert!(ys.iter().all(|&y| (SHARE_TOP..=SHARE_BOTTOM).contains(&y)), "{ys:?}");
        assert!(ys.contains(&SHARE_TOP) && ys.contains(&SHARE_BOTTOM));
    }

    #[test]
    fn time_labels_are_round_utc_dates() {
        let html = page(vec![series("acme", quiet_windows(200), vec![])]);
        // 200 hours: a label every two days, at midnight UTC.
        for date in ["2024-03-04", "2024-03-06", "2024-03-08", "2024-03-10", "2024-03-12"] {
            assert!(html.contains(&format!(">{date}</text>")), "{date}");
        }
        assert!(!html.contains(">2024-03-05</text>"));
        // 5,000 hours: the first of every month.
        let html = page(vec![series("acme", quiet_windows(5000), vec![])]);
        for month in 4..=9 {
            assert!(html.contains(&format!(">2024-{month:02}-01</text>")), "{month}");
        }
        assert_eq!(html.matches("text-anchor=\"middle\">2024-").count(), 6);
    }

    #[test]
    fn five_thousand_windows_stay_compact() {
        let windows = (0..5000).map(|h| window(h, 50 + (h % 7) as u64, (h % 13) as u64, Some((0.2, 0.05)))).collect();
        let alerts =
            (0..20).map(|i| alert("acme", i * 250, AlertKind::NegativeShare, Severity::Warning, &["x"])).collect();
        let html = page(vec![series("acme", windows, alerts)]);
        assert!(html.len() < 1_500_000, "{} bytes", html.len());
        assert!(html.matches("<path").count() < 30);
        assert_eq!(path_data(&html, "share")[0].matches('M').count(), 1);
    }

    const NEGATIVE_TEXTS: [&str; 6] = [
        "Shares slide after the company cuts its full-year outlook",
        "Customers report outages for a third day; support lines overwhelmed",
        "Regulator opens an inquiry into the recall of 40,000 units",
        "Quarterly loss widens to EUR 12 million on weak demand",
        "Union calls a strike at two plants over planned layoffs",
        "Analysts downgrade the stock to \"sell\" & cut price target",
    ];

    /// One topic's hourly windows through the real detector: `share(hour)` is the
    /// expected negative share, `volume(hour)` the records.
    fn simulated_topic(
        topic: &str,
        rng: &mut ChaCha8Rng,
        share: impl Fn(i64) -> f64,
        volume: impl Fn(i64) -> u64,
    ) -> TopicSeries {
        let settings = DetectorSettings::default();
        let mut detector = Detector::new(settings);
        let (mut windows, mut alerts) = (Vec::new(), Vec::new());
        for hour in 0..200 {
            let count = volume(hour);
            let negatives = (0..count).filter(|_| rng.random::<f64>() < share(hour)).count() as u64;
            let baseline = detector.baseline(topic).filter(|b| b.windows >= settings.warmup);
            windows.push(WindowPoint {
                baseline_share: baseline.map(|b| b.share_mean),
                baseline_sd: baseline.map(|b| b.share_variance.sqrt()),
                ..window(hour, count, negatives, None)
            });
            let most_negative =
                (0..3).map(|i| (0.99 - i as f32 * 0.01, NEGATIVE_TEXTS[(hour as usize + i) % 6].into()));
            alerts.extend(detector.observe(&Window {
                topic: topic.to_string(),
                start: T0 + hour * HOUR,
                end: T0 + (hour + 1) * HOUR,
                count,
                negatives,
                labels: BTreeMap::from([("negative".into(), negatives), ("positive".into(), count - negatives)]),
                negative_score_sum: negatives as f64 * 0.9,
                most_negative: most_negative.collect(),
            }));
        }
        series(topic, windows, alerts)
    }

    /// Three topics, 200 hourly windows each: bursts of negative records, a volume
    /// spike, an outage without records, and the alerts the detector raises.
    fn sample_dashboard() -> Dashboard {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let daily = |hour: i64| 1.0 + 0.4 * (std::f64::consts::TAU * (hour % 24) as f64 / 24.0).sin();
        let acme = simulated_topic(
            "acme",
            &mut rng,
            |h| if (60..63).contains(&h) || (140..142).contains(&h) { 0.55 } else { 0.2 },
            |h| (120.0 * daily(h)) as u64,
        );
        let globex = simulated_topic(
            "globex <EU> & partners",
            &mut rng,
            |h| if (100..104).contains(&h) { 0.6 } else { 0.35 },
            |h| match h {
                30..36 => 0,
                170 => 600,
                _ => (80.0 * daily(h + 5)) as u64,
            },
        );
        let initech = simulated_topic("initech", &mut rng, |h| if h == 120 { 0.7 } else { 0.1 }, |_| 40);
        Dashboard {
            title: "Sentiment monitor: sample".to_string(),
            generated_at: T0 + 201 * HOUR,
            topics: vec![acme, globex, initech],
        }
    }

    /// Set `FERROTUNE_DASHBOARD_SAMPLE=page.html` to write the sample page for
    /// `scripts/monitor_dashboard_check.sh`.
    #[test]
    fn sample_dashboard_has_every_part() {
        let dashboard = sample_dashboard();
        let html = dashboard.to_html();
        let alerts: usize = dashboard.topics.iter().map(|t| t.alerts.len()).sum();
        assert_eq!(html.matches("class=\"alert-marker").count(), alerts);
        assert!(html.matches("alert-marker resolved").count() >= 3);
        assert!(html.matches("alert-marker critical").count() >= 3);
        assert_eq!(path_data(&html, "share")[1].matches('M').count(), 2, "the outage breaks globex's line");
        if let Some(path) = std::env::var_os("FERROTUNE_DASHBOARD_SAMPLE") {
            std::fs::write(path, html).unwrap();
        }
    }
}

//! The trend chart as SVG: a small writer over a string, no script, no external reference,
//! no fonts to fetch (text names generic families only), and the same input always gives
//! the same bytes (numbers are written with two decimals, elements in a fixed order).
//!
//! Elements a reader (or a test) can find by `id`: `plot` (the plotting area), `series` (the
//! line), `point-{i}`, `cutoff`, `band-{i}`, `rupture-{i}` (red, at the point that dropped),
//! `repair-{i}` (green, at the point that repaired it), `unscored-{i}` (a marker on the x
//! axis for a response that could not be scored), `no-data`.

use std::fmt::Write as _;

/// Which axis the points are spread along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    Time,
    Session,
}

/// One point: its x value (seconds since the epoch or the session number), total and label.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartPoint {
    pub x: f64,
    pub total: f64,
    /// What the x axis says under it (a date or `S3`).
    pub label: String,
}

/// A response without a score: a marker on the x axis, never a point of the line.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartMarker {
    pub x: f64,
    /// Its date or session, and why it has no score (and its flags), in words.
    pub label: String,
    pub detail: String,
}

/// The expected-response model at a point's x: the expected total and the bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartExpected {
    pub x: f64,
    pub expected: f64,
    pub bound: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChartBand {
    pub min: f64,
    pub max: f64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub title: String,
    pub description: String,
    /// The instrument's possible totals.
    pub y_min: f64,
    pub y_max: f64,
    pub points: Vec<ChartPoint>,
    /// The totals' step (the scale's step): y-axis ticks fall on it.
    pub step: f64,
    /// The cut-off in total units.
    pub cutoff: Option<f64>,
    pub bands: Vec<ChartBand>,
    /// Indexes of points that ruptured, and of the points that repaired a rupture.
    pub ruptures: Vec<usize>,
    pub repairs: Vec<usize>,
    /// Responses that could not be scored, shown on the x axis.
    pub unscored: Vec<ChartMarker>,
    /// The expected-response model at the points that have an expectation (none without a
    /// fitted model): a dashed expected line and a band out to the bound.
    pub expected: Vec<ChartExpected>,
}

pub const MIN_SIZE: u32 = 240;
pub const MAX_SIZE: u32 = 2000;
const MARGIN_LEFT: f64 = 56.0;
const MARGIN_RIGHT: f64 = 16.0;
const MARGIN_TOP: f64 = 16.0;
const MARGIN_BOTTOM: f64 = 40.0;
const X_PAD: f64 = 12.0;
const BAND_FILLS: [&str; 4] = ["#eef3fb", "#fdf6e3", "#f3eefb", "#eefbf3"];

/// Text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// Where values land on the canvas.
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x_min: f64,
    x_max: f64,
    y_min: f64,
    y_max: f64,
}

impl Frame {
    /// Points stay `X_PAD` inside the plot's sides, so the first and last are not cut.
    fn x(&self, v: f64) -> f64 {
        if self.x_max > self.x_min {
            let (left, right) = (self.left + X_PAD, self.right - X_PAD);
            left + (v - self.x_min) / (self.x_max - self.x_min) * (right - left)
        } else {
            (self.left + self.right) / 2.0
        }
    }

    fn y(&self, v: f64) -> f64 {
        let v = v.clamp(self.y_min, self.y_max);
        if self.y_max > self.y_min {
            self.bottom - (v - self.y_min) / (self.y_max - self.y_min) * (self.bottom - self.top)
        } else {
            (self.top + self.bottom) / 2.0
        }
    }
}

/// Up to `n` evenly spread indexes of `len` items, first and last included.
fn spread(len: usize, n: usize) -> Vec<usize> {
    if len <= n {
        return (0..len).collect();
    }
    let mut out: Vec<usize> = (0..n).map(|i| i * (len - 1) / (n - 1).max(1)).collect();
    out.dedup();
    out
}

/// The y-axis ticks: with bands, the range's ends and every band's lower edge; without,
/// the ends and the multiples of a round interval that is a multiple of the scale's step
/// (about five ticks; a tick too near an end gives way to the end).
fn y_ticks(chart: &Chart) -> Vec<f64> {
    let (lo, hi) = (chart.y_min, chart.y_max);
    let mut ticks = vec![lo];
    if !chart.bands.is_empty() {
        ticks.extend(chart.bands.iter().map(|b| b.min).filter(|v| *v > lo && *v < hi));
    } else if hi > lo {
        let step = if chart.step > 0.0 { chart.step } else { 1.0 };
        let raw = (hi - lo) / 5.0;
        let mut interval = step;
        'nice: for magnitude in [1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0] {
            for m in [1.0, 2.0, 2.5, 5.0] {
                let candidate = m * magnitude;
                // A multiple of the step (the whole-number test tolerates binary noise).
                let multiple = candidate / step;
                if candidate >= raw && (multiple - multiple.round()).abs() < 1e-9 {
                    interval = candidate;
                    break 'nice;
                }
            }
        }
        let mut v = (lo / interval).floor() * interval + interval;
        while v < hi - interval / 3.0 {
            if v > lo + interval / 3.0 {
                ticks.push(v);
            }
            v += interval;
        }
    }
    if hi > lo {
        ticks.push(hi);
    }
    ticks
}

/// A number as the axis shows it: whole numbers without decimals.
fn tick_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

pub fn render(chart: &Chart) -> String {
    let (w, h) = (f64::from(chart.width), f64::from(chart.height));
    let mut s = String::with_capacity(4096 + chart.points.len() * 160);
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" role="img" aria-labelledby="chart-title chart-desc" font-family="sans-serif" font-size="12">"##,
        chart.width, chart.height, chart.width, chart.height
    );
    let _ = write!(
        s,
        r#"<title id="chart-title">{}</title><desc id="chart-desc">{}</desc>"#,
        escape(&chart.title),
        escape(&chart.description)
    );
    let _ = write!(s, r##"<rect width="{w:.2}" height="{h:.2}" fill="#ffffff"/>"##);
    let (x_min, x_max) = chart
        .points
        .iter()
        .map(|p| p.x)
        .chain(chart.unscored.iter().map(|m| m.x))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let frame = Frame {
        left: MARGIN_LEFT,
        right: w - MARGIN_RIGHT,
        top: MARGIN_TOP,
        bottom: h - MARGIN_BOTTOM,
        x_min,
        x_max,
        y_min: chart.y_min,
        y_max: chart.y_max,
    };
    let _ = write!(
        s,
        r##"<rect id="plot" x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="none" stroke="#9e9e9e"/>"##,
        frame.left,
        frame.top,
        frame.right - frame.left,
        frame.bottom - frame.top
    );
    if chart.points.is_empty() && chart.unscored.is_empty() {
        let _ = write!(
            s,
            r##"<text id="no-data" x="{:.2}" y="{:.2}" text-anchor="middle" fill="#424242" font-size="16">No data for this series</text></svg>"##,
            w / 2.0,
            h / 2.0
        );
        return s;
    }
    // Bands: shaded strips across the plot, labelled at the right.
    // Each band reaches up to where the next begins, so bands meet without gaps (a band
    // 0-4 of whole numbers covers everything below 5).
    for (i, band) in chart.bands.iter().enumerate() {
        let upper = chart.bands.get(i + 1).map_or(band.max, |next| next.min);
        let (top, bottom) = (frame.y(upper), frame.y(band.min));
        let fill = BAND_FILLS.get(i % BAND_FILLS.len()).copied().unwrap_or("#eeeeee");
        let _ = write!(
            s,
            r##"<rect id="band-{i}" x="{:.2}" y="{top:.2}" width="{:.2}" height="{:.2}" fill="{fill}"><title>{}</title></rect>"##,
            frame.left,
            frame.right - frame.left,
            (bottom - top).max(0.0),
            escape(&band.label)
        );
        let _ = write!(
            s,
            r##"<text x="{:.2}" y="{:.2}" text-anchor="end" fill="#616161" font-size="10">{}</text>"##,
            frame.right - 4.0,
            top + 11.0,
            escape(&band.label)
        );
    }
    // The y axis: ticks on the scale's step and on band edges.
    for v in y_ticks(chart) {
        let y = frame.y(v);
        let _ = write!(
            s,
            r##"<line x1="{:.2}" y1="{y:.2}" x2="{:.2}" y2="{y:.2}" stroke="#e0e0e0"/><text class="tick" x="{:.2}" y="{:.2}" text-anchor="end" fill="#424242">{}</text>"##,
            frame.left,
            frame.right,
            frame.left - 6.0,
            y + 4.0,
            tick_label(v)
        );
    }
    // The x axis: up to six labels under their points (the outer ones kept inside).
    let last = chart.points.len().saturating_sub(1);
    for i in spread(chart.points.len(), 6) {
        if let Some(p) = chart.points.get(i) {
            let anchor = match i {
                0 if last > 0 => "start",
                i if i == last && last > 0 => "end",
                _ => "middle",
            };
            let _ = write!(
                s,
                r##"<text x="{:.2}" y="{:.2}" text-anchor="{anchor}" fill="#424242">{}</text>"##,
                frame.x(p.x),
                frame.bottom + 18.0,
                escape(&p.label)
            );
        }
    }
    if let Some(cutoff) = chart.cutoff {
        let y = frame.y(cutoff);
        let _ = write!(
            s,
            r##"<path id="cutoff" d="M{:.2} {y:.2}H{:.2}" stroke="#6a1b9a" stroke-width="1.5" stroke-dasharray="6 4" fill="none"><title>cut-off {}</title></path>"##,
            frame.left,
            frame.right,
            tick_label(cutoff)
        );
        let _ = write!(
            s,
            r##"<text id="cutoff-label" x="{:.2}" y="{:.2}" fill="#6a1b9a" font-size="11">cut-off {}</text>"##,
            frame.left + 4.0,
            y - 4.0,
            tick_label(cutoff)
        );
    }
    if !chart.expected.is_empty() {
        // Values off the scale are clipped to it (the model's line is not).
        let y = |v: f64| frame.y(v.clamp(chart.y_min, chart.y_max));
        let mut band = String::new();
        for (i, e) in chart.expected.iter().enumerate() {
            let _ = write!(
                band,
                "{}{:.2} {:.2}",
                if i == 0 { "M" } else { "L" },
                frame.x(e.x),
                y(e.expected)
            );
        }
        for e in chart.expected.iter().rev() {
            let _ = write!(band, "L{:.2} {:.2}", frame.x(e.x), y(e.bound));
        }
        let mut line = String::new();
        for (i, e) in chart.expected.iter().enumerate() {
            let _ = write!(
                line,
                "{}{:.2} {:.2}",
                if i == 0 { "M" } else { "L" },
                frame.x(e.x),
                y(e.expected)
            );
        }
        let _ = write!(
            s,
            r##"<path id="expected-band" d="{band}Z" fill="#ff8f00" fill-opacity="0.12" stroke="#ef6c00" stroke-width="1" stroke-dasharray="2 3"><title>expected response band (to the bound)</title></path><path id="expected" d="{line}" stroke="#ef6c00" stroke-width="1.5" stroke-dasharray="6 4" fill="none"><title>expected response of this clinic's patients with this intake</title></path>"##
        );
    }
    let mut line = String::new();
    for (i, p) in chart.points.iter().enumerate() {
        let _ = write!(
            line,
            "{}{:.2} {:.2}",
            if i == 0 { "M" } else { "L" },
            frame.x(p.x),
            frame.y(p.total)
        );
    }
    if !line.is_empty() {
        let _ = write!(
            s,
            r##"<path id="series" d="{line}" stroke="#1565c0" stroke-width="2" fill="none"/>"##
        );
    }
    for (i, p) in chart.points.iter().enumerate() {
        let _ = write!(
            s,
            r##"<circle id="point-{i}" cx="{:.2}" cy="{:.2}" r="3.5" fill="#1565c0"><title>{}: {}</title></circle>"##,
            frame.x(p.x),
            frame.y(p.total),
            escape(&p.label),
            tick_label(p.total)
        );
    }
    for (kind, color, indexes) in [
        ("rupture", "#c62828", &chart.ruptures),
        ("repair", "#2e7d32", &chart.repairs),
    ] {
        for &i in indexes {
            if let Some(p) = chart.points.get(i) {
                let _ = write!(
                    s,
                    r##"<circle id="{kind}-{i}" cx="{:.2}" cy="{:.2}" r="7" fill="none" stroke="{color}" stroke-width="2.5"><title>{kind} at {}</title></circle>"##,
                    frame.x(p.x),
                    frame.y(p.total),
                    escape(&p.label)
                );
            }
        }
    }
    // Unscored responses: an orange triangle standing on the x axis, its reason in words.
    for (i, m) in chart.unscored.iter().enumerate() {
        let (x, y) = (frame.x(m.x), frame.bottom);
        let _ = write!(
            s,
            r##"<path id="unscored-{i}" d="M{:.2} {:.2}L{:.2} {:.2}L{:.2} {:.2}Z" fill="#ef6c00"><title>{}: {}</title></path>"##,
            x,
            y - 9.0,
            x - 5.0,
            y,
            x + 5.0,
            y,
            escape(&m.label),
            escape(&m.detail)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(points: &[(f64, f64)]) -> Chart {
        Chart {
            width: 720,
            height: 360,
            title: "t <&>".into(),
            description: "d".into(),
            y_min: 12.0,
            y_max: 60.0,
            points: points
                .iter()
                .map(|(x, t)| ChartPoint {
                    x: *x,
                    total: *t,
                    label: format!("S{x}"),
                })
                .collect(),
            cutoff: Some(36.0),
            bands: vec![],
            ruptures: vec![1],
            repairs: vec![2],
            unscored: vec![],
            step: 1.0,
            expected: vec![],
        }
    }

    #[test]
    fn the_expected_line_and_its_band_are_drawn_clipped_to_the_scale() {
        let mut c = chart(&[(1.0, 40.0), (2.0, 45.0), (3.0, 50.0)]);
        assert!(!render(&c).contains("expected-band"));
        c.expected = vec![
            ChartExpected {
                x: 2.0,
                expected: 44.0,
                bound: 38.0,
            },
            ChartExpected {
                x: 3.0,
                expected: 70.0,
                bound: 64.0,
            },
        ];
        let svg = render(&c);
        assert!(svg.contains(r#"id="expected-band""#) && svg.contains(r#"id="expected""#));
        // 70 and 64 are above the scale's 60: both drawn at the top of the plot.
        let top = format!("{:.2}", MARGIN_TOP);
        let band = svg
            .split(r#"id="expected-band" d=""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(band.matches(&format!(" {top}")).count(), 2, "{band}");
    }

    #[test]
    fn an_unscored_response_is_a_marker_on_the_x_axis_even_alone() {
        let mut c = chart(&[]);
        c.unscored = vec![ChartMarker {
            x: 4.0,
            label: "S4".into(),
            detail: "not scored: 1 items missing; flags item_9_positive".into(),
        }];
        let svg = render(&c);
        assert!(svg.contains(r#"id="unscored-0""#), "{svg}");
        assert!(svg.contains("item_9_positive"));
        assert!(!svg.contains("no-data") && !svg.contains(r#"id="series""#));
    }

    #[test]
    fn the_same_chart_gives_the_same_bytes_and_escapes_text() {
        let c = chart(&[(1.0, 40.0), (2.0, 30.0), (3.0, 45.0)]);
        assert_eq!(render(&c), render(&c));
        assert!(render(&c).contains("t &lt;&amp;&gt;"));
        assert!(!render(&c).contains("<script"));
    }

    #[test]
    fn the_y_axis_spans_the_possible_range() {
        let frame = Frame {
            left: 0.0,
            right: 100.0,
            top: 0.0,
            bottom: 100.0,
            x_min: 0.0,
            x_max: 1.0,
            y_min: 12.0,
            y_max: 60.0,
        };
        assert_eq!(frame.y(12.0), 100.0);
        assert_eq!(frame.y(60.0), 0.0);
        assert_eq!(frame.y(36.0), 50.0);
        assert_eq!(frame.x(0.5), 50.0);
        assert_eq!(frame.x(0.0), X_PAD);
    }

    #[test]
    fn ticks_fall_on_the_step_and_on_band_edges() {
        let mut c = chart(&[(1.0, 40.0)]);
        // WAI-SR: 12-60, whole numbers, no bands.
        assert_eq!(y_ticks(&c), vec![12.0, 20.0, 30.0, 40.0, 50.0, 60.0]);
        // PHQ-9: 0-27 with its bands: the bands' lower edges, never 6.75 or 13.5.
        c.y_min = 0.0;
        c.y_max = 27.0;
        c.bands = [(0.0, 4.0), (5.0, 9.0), (10.0, 14.0), (15.0, 19.0), (20.0, 27.0)]
            .iter()
            .map(|(min, max)| ChartBand {
                min: *min,
                max: *max,
                label: String::new(),
            })
            .collect();
        assert_eq!(y_ticks(&c), vec![0.0, 5.0, 10.0, 15.0, 20.0, 27.0]);
        // SRS: 0-40 in tenths.
        c.bands.clear();
        c.y_max = 40.0;
        c.step = 0.1;
        assert_eq!(y_ticks(&c), vec![0.0, 10.0, 20.0, 30.0, 40.0]);
        let svg = render(&c);
        assert!(
            svg.contains(r#"id="cutoff-label""#) && svg.contains("cut-off 36"),
            "{svg}"
        );
    }

    #[test]
    fn bands_meet_without_gaps() {
        let mut c = chart(&[(1.0, 10.0)]);
        c.y_min = 0.0;
        c.y_max = 27.0;
        c.bands = vec![
            ChartBand {
                min: 0.0,
                max: 4.0,
                label: "minimal".into(),
            },
            ChartBand {
                min: 5.0,
                max: 9.0,
                label: "mild".into(),
            },
        ];
        let svg = render(&c);
        let tree = resvg::usvg::Tree::from_str(&svg, &resvg::usvg::Options::default()).unwrap();
        let top_of_first = tree.node_by_id("band-0").unwrap().abs_bounding_box().top();
        let bottom_of_second = tree.node_by_id("band-1").unwrap().abs_bounding_box().bottom();
        assert!(
            (top_of_first - bottom_of_second).abs() < 0.01,
            "{top_of_first} vs {bottom_of_second}"
        );
    }

    #[test]
    fn spread_keeps_first_and_last() {
        assert_eq!(spread(3, 6), vec![0, 1, 2]);
        assert_eq!(spread(11, 6), vec![0, 2, 4, 6, 8, 10]);
    }
}

//! Charts drawn on the server as SVG: deterministic (the same data gives the same bytes),
//! titled for screen readers, and always shown beside a table of their data by the pages.

use maud::{Markup, html};
use rapport_domain::scorecard::Bands;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
/// Room under a time axis for its dates.
const AXIS: f64 = 16.0;
const PAD_LEFT: f64 = 36.0;
const PAD_RIGHT: f64 = 12.0;
const PAD_Y: f64 = 12.0;

/// Something that happened to a customer, drawn on its score's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub kind: MarkerKind,
    /// What a pointer over the marker shows.
    pub label: String,
}

/// The kinds of markers, each with its own shape and colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    AlertOpened,
    Intervention,
    Override,
    ScorecardChanged,
}

impl MarkerKind {
    /// The CSS class of the marker, which the legend shares.
    pub fn class(self) -> &'static str {
        match self {
            MarkerKind::AlertOpened => "m-alert",
            MarkerKind::Intervention => "m-intervention",
            MarkerKind::Override => "m-override",
            MarkerKind::ScorecardChanged => "m-scorecard",
        }
    }

    /// What the legend calls it.
    pub fn name(self) -> &'static str {
        match self {
            MarkerKind::AlertOpened => "alert opened",
            MarkerKind::Intervention => "intervention",
            MarkerKind::Override => "override set",
            MarkerKind::ScorecardChanged => "scorecard changed",
        }
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// A score's history (`points`: time in epoch milliseconds and score 0–100, oldest first) as
/// a line over the bands' colours, with `markers` where things happened.
pub fn history(title: &str, points: &[(i64, f64)], bands: Bands, markers: &[Marker]) -> Markup {
    let (t0, t1) = match (points.first(), points.last()) {
        (Some(a), Some(b)) => (
            a.0.min(markers.iter().map(|m| m.at).min().unwrap_or(a.0)),
            b.0.max(markers.iter().map(|m| m.at).max().unwrap_or(b.0)),
        ),
        _ => (0, 1),
    };
    let span = (t1 - t0).max(1) as f64;
    let plot_w = WIDTH - PAD_LEFT - PAD_RIGHT;
    let plot_h = HEIGHT - 2.0 * PAD_Y;
    let x = |t: i64| PAD_LEFT + (t - t0) as f64 / span * plot_w;
    let y = |score: f64| PAD_Y + (1.0 - score.clamp(0.0, 100.0) / 100.0) * plot_h;
    let line: Vec<String> = points
        .iter()
        .map(|&(t, s)| format!("{},{}", fmt(x(t)), fmt(y(s))))
        .collect();
    let band_rects = [
        ("band-green", 100.0, bands.yellow),
        ("band-yellow", bands.yellow, bands.red),
        ("band-red", bands.red, 0.0),
    ];
    let day = |t: i64| {
        chrono::DateTime::from_timestamp_millis(t)
            .map_or_else(String::new, |d| d.format("%Y-%m-%d").to_string())
    };
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {}", HEIGHT + AXIS)) role="img" aria-label=(title)
            xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @if !points.is_empty() {
                text.tick x=(fmt(PAD_LEFT)) y=(fmt(HEIGHT + AXIS - 4.0)) { (day(t0)) }
                text.tick x=(fmt(WIDTH - PAD_RIGHT)) y=(fmt(HEIGHT + AXIS - 4.0)) text-anchor="end" { (day(t1)) }
            }
            @for (class, top, bottom) in band_rects {
                rect class=(class) x=(fmt(PAD_LEFT)) y=(fmt(y(top))) width=(fmt(plot_w))
                    height=(fmt(y(bottom) - y(top))) {}
            }
            @for tick in [0.0, 25.0, 50.0, 75.0, 100.0] {
                text.tick x=(fmt(PAD_LEFT - 4.0)) y=(fmt(y(tick) + 4.0)) text-anchor="end" {
                    (tick)
                }
            }
            @for m in markers {
                g class=(format!("marker {}", m.kind.class())) {
                    title { (m.kind.name()) ": " (m.label) }
                    line x1=(fmt(x(m.at))) x2=(fmt(x(m.at))) y1=(fmt(PAD_Y))
                        y2=(fmt(HEIGHT - PAD_Y)) {}
                    circle cx=(fmt(x(m.at))) cy=(fmt(PAD_Y + 4.0)) r="4" {}
                }
            }
            @if points.len() == 1 {
                circle.score-point cx=(fmt(x(points[0].0))) cy=(fmt(y(points[0].1))) r="3" {}
            }
            polyline.score-line points=(line.join(" ")) {}
        }
    }
}

/// A small line of recent scores (oldest first), for a table cell.
pub fn sparkline(label: &str, scores: &[f64]) -> Markup {
    let (w, h) = (80.0, 20.0);
    let step = if scores.len() > 1 {
        w / (scores.len() - 1) as f64
    } else {
        0.0
    };
    let points: Vec<String> = scores
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let y = 1.0 + (1.0 - s.clamp(0.0, 100.0) / 100.0) * (h - 2.0);
            format!("{},{}", fmt(i as f64 * step), fmt(y))
        })
        .collect();
    html! {
        svg.spark viewBox=(format!("0 0 {w} {h}")) width=(w) height=(h) role="img"
            aria-label=(label) xmlns="http://www.w3.org/2000/svg" {
            title { (label) }
            polyline points=(points.join(" ")) {}
        }
    }
}

/// Horizontal bars of signed values around a zero line: what pulled a score down (left, red)
/// and what lifted it (right, green).
pub fn diverging(title: &str, items: &[(String, f64)]) -> Markup {
    let row = 22.0;
    let label_w = 220.0;
    let height = row * items.len().max(1) as f64 + 8.0;
    let half = (WIDTH - label_w - PAD_RIGHT) / 2.0;
    let zero = label_w + half;
    let largest = items
        .iter()
        .map(|(_, v)| v.abs())
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {}", fmt(height))) role="img" aria-label=(title)
            xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            line.zero x1=(fmt(zero)) x2=(fmt(zero)) y1="0" y2=(fmt(height)) {}
            @for (i, (label, value)) in items.iter().enumerate() {
                @let top = 4.0 + i as f64 * row;
                @let len = value.abs() / largest * (half - 40.0);
                text.label x=(fmt(label_w - 8.0)) y=(fmt(top + 14.0)) text-anchor="end" { (label) }
                @if *value < 0.0 {
                    rect.down x=(fmt(zero - len)) y=(fmt(top + 3.0)) width=(fmt(len)) height="14" {}
                    text.value x=(fmt(zero - len - 4.0)) y=(fmt(top + 14.0)) text-anchor="end" {
                        (format!("{value:+.1}"))
                    }
                } @else {
                    rect.up x=(fmt(zero)) y=(fmt(top + 3.0)) width=(fmt(len)) height="14" {}
                    text.value x=(fmt(zero + len + 4.0)) y=(fmt(top + 14.0)) { (format!("{value:+.1}")) }
                }
            }
        }
    }
}

/// Horizontal bars of counts, each with its CSS class (a severity, a band).
pub fn bars(title: &str, items: &[(String, &str, u64)]) -> Markup {
    let row = 22.0;
    let label_w = 120.0;
    let height = row * items.len().max(1) as f64 + 8.0;
    let room = WIDTH - label_w - 60.0;
    let largest = items.iter().map(|i| i.2).max().unwrap_or(0).max(1) as f64;
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {}", fmt(height))) role="img" aria-label=(title)
            xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @for (i, (label, class, count)) in items.iter().enumerate() {
                @let top = 4.0 + i as f64 * row;
                @let len = *count as f64 / largest * room;
                text.label x=(fmt(label_w - 8.0)) y=(fmt(top + 14.0)) text-anchor="end" { (label) }
                rect class=(*class) x=(fmt(label_w)) y=(fmt(top + 3.0)) width=(fmt(len)) height="14" {}
                text.value x=(fmt(label_w + len + 4.0)) y=(fmt(top + 14.0)) { (count) }
            }
        }
    }
}

/// Customers on the RFM grid: recency score across (1 to 5, the most recent right), frequency
/// score up (1 to 5), each cell shaded by its count against the largest and labelled with it.
/// `cells` are (recency, frequency, customers); scores outside 1–5 are left out.
pub fn rfm_grid(title: &str, cells: &[(u32, u32, u64)]) -> Markup {
    let (cell, left, bottom) = (52.0, 92.0, 34.0);
    let on_grid: Vec<(u32, u32, u64)> = cells
        .iter()
        .copied()
        .filter(|c| (1..=5).contains(&c.0) && (1..=5).contains(&c.1))
        .collect();
    let largest = on_grid.iter().map(|c| c.2).max().unwrap_or(0).max(1) as f64;
    let height = 5.0 * cell + bottom + 8.0;
    let x = |r: u32| left + f64::from(r - 1) * cell;
    let y = |f: u32| 4.0 + f64::from(5 - f) * cell;
    html! {
        svg.chart.grid viewBox=(format!("0 0 {} {}", fmt(left + 5.0 * cell + 8.0), fmt(height)))
            role="img" aria-label=(title) xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @for score in 1..=5u32 {
                text.tick x=(fmt(x(score) + cell / 2.0)) y=(fmt(5.0 * cell + 20.0)) text-anchor="middle" { (score) }
                text.tick x=(fmt(left - 8.0)) y=(fmt(y(score) + cell / 2.0 + 4.0)) text-anchor="end" { (score) }
            }
            text.tick x=(fmt(left + 2.5 * cell)) y=(fmt(5.0 * cell + 34.0)) text-anchor="middle" { "recency →" }
            text.tick x="4" y=(fmt(2.5 * cell)) { "frequency ↑" }
            @for &(r, f, n) in &on_grid {
                rect.grid-cell x=(fmt(x(r) + 1.0)) y=(fmt(y(f) + 1.0)) width=(fmt(cell - 2.0))
                    height=(fmt(cell - 2.0)) fill-opacity=(format!("{:.2}", 0.08 + 0.62 * n as f64 / largest)) {
                    title { "recency " (r) ", frequency " (f) ": " (n) }
                }
                text.grid-count x=(fmt(x(r) + cell / 2.0)) y=(fmt(y(f) + cell / 2.0 + 4.0))
                    text-anchor="middle" { (n) }
            }
        }
    }
}

/// One estimate with its confidence interval, for [`intervals`].
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub label: String,
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// Estimates as dots with their confidence intervals as lines, against a zero line: an
/// interval that crosses zero shows an effect that may be none.
pub fn intervals(title: &str, items: &[Interval]) -> Markup {
    let row = 22.0;
    let label_w = 220.0;
    let height = row * items.len().max(1) as f64 + 8.0;
    let plot_w = WIDTH - label_w - PAD_RIGHT - 40.0;
    let reach = items
        .iter()
        .flat_map(|i| [i.low.abs(), i.high.abs(), i.estimate.abs()])
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let x = |v: f64| label_w + (v.clamp(-reach, reach) + reach) / (2.0 * reach) * plot_w;
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {}", fmt(height))) role="img" aria-label=(title)
            xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            line.zero x1=(fmt(x(0.0))) x2=(fmt(x(0.0))) y1="0" y2=(fmt(height)) {}
            @for (i, item) in items.iter().enumerate() {
                @let mid = 4.0 + i as f64 * row + 10.0;
                @let class = if item.low > 0.0 { "ci up" } else if item.high < 0.0 { "ci down" } else { "ci" };
                text.label x=(fmt(label_w - 8.0)) y=(fmt(mid + 4.0)) text-anchor="end" { (item.label) }
                g class=(class) {
                    line x1=(fmt(x(item.low))) x2=(fmt(x(item.high))) y1=(fmt(mid)) y2=(fmt(mid)) {}
                    circle cx=(fmt(x(item.estimate))) cy=(fmt(mid)) r="4" {}
                }
                text.value x=(fmt(WIDTH - PAD_RIGHT)) y=(fmt(mid + 4.0)) text-anchor="end" {
                    (format!("{:+.2}", item.estimate))
                }
            }
        }
    }
}

/// A small line of one figure over periods (`None` where it is unknown), for small
/// multiples: the same scale for every chart of a set is given as `range`.
pub fn small_line(title: &str, points: &[(String, Option<f64>)], range: (f64, f64)) -> Markup {
    let (w, h, pad) = (220.0, 90.0, 14.0);
    let span = (range.1 - range.0).abs().max(1e-9);
    let step = if points.len() > 1 {
        (w - 2.0 * pad) / (points.len() - 1) as f64
    } else {
        0.0
    };
    let y = |v: f64| pad + (1.0 - (v - range.0) / span) * (h - 2.0 * pad);
    // Unknown periods break the line rather than pretend to a value.
    let mut runs: Vec<Vec<String>> = vec![Vec::new()];
    for (i, (_, v)) in points.iter().enumerate() {
        match v {
            Some(v) => runs.last_mut().map_or((), |r| {
                r.push(format!("{},{}", fmt(pad + i as f64 * step), fmt(y(*v))))
            }),
            None => runs.push(Vec::new()),
        }
    }
    html! {
        svg.small viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(title)
            xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @for run in runs.iter().filter(|r| !r.is_empty()) {
                @if run.len() == 1 {
                    @let (cx, cy) = run[0].split_once(',').unwrap_or(("0", "0"));
                    circle cx=(cx) cy=(cy) r="2" {}
                } @else {
                    polyline points=(run.join(" ")) {}
                }
            }
            @if points.iter().all(|p| p.1.is_none()) {
                text.tick x=(fmt(w / 2.0)) y=(fmt(h / 2.0)) text-anchor="middle" { "no data" }
            }
            @if let (Some(first), Some(last)) = (points.first(), points.last()) {
                text.tick x=(fmt(pad)) y=(fmt(h - 2.0)) { (first.0) }
                text.tick x=(fmt(w - pad)) y=(fmt(h - 2.0)) text-anchor="end" { (last.0) }
            }
        }
    }
}

/// One column of [`shares`]: its label and the counts of each part, in the parts' order.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub label: String,
    pub counts: Vec<u64>,
}

/// Columns of 100 %, each cut into its parts' shares (`parts`: each part's name and CSS
/// class, bottom first): how a whole splits, period by period.
pub fn shares(title: &str, parts: &[(&str, &str)], columns: &[Column]) -> Markup {
    let plot_h = HEIGHT - 2.0 * PAD_Y;
    let plot_w = WIDTH - PAD_LEFT - PAD_RIGHT;
    let slot = plot_w / columns.len().max(1) as f64;
    let bar = (slot * 0.7).min(48.0);
    let y = |share: f64| PAD_Y + (1.0 - share) * plot_h;
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {}", HEIGHT + AXIS)) role="img" aria-label=(title)
            xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
                text.tick x=(fmt(PAD_LEFT - 4.0)) y=(fmt(y(tick) + 4.0)) text-anchor="end" {
                    (format!("{:.0}", tick * 100.0))
                }
            }
            @for (i, column) in columns.iter().enumerate() {
                @let left = PAD_LEFT + i as f64 * slot + (slot - bar) / 2.0;
                @for (name, class, count, below, share) in stacked(parts, &column.counts) {
                    rect class=(class) x=(fmt(left)) y=(fmt(y(below + share)))
                        width=(fmt(bar)) height=(fmt(share * plot_h)) {
                        title { (column.label) ", " (name) ": " (count) }
                    }
                }
                text.tick x=(fmt(left + bar / 2.0)) y=(fmt(HEIGHT + AXIS - 4.0)) text-anchor="middle" {
                    (column.label)
                }
            }
        }
    }
}

/// Each part of a column with its count, the share below it and its own share.
fn stacked<'p>(
    parts: &'p [(&'p str, &'p str)],
    counts: &[u64],
) -> Vec<(&'p str, &'p str, u64, f64, f64)> {
    let total = counts.iter().sum::<u64>().max(1) as f64;
    let mut below = 0.0;
    parts
        .iter()
        .zip(counts)
        .map(|((name, class), count)| {
            let share = *count as f64 / total;
            let part = (*name, *class, *count, below, share);
            below += share;
            part
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn a_history_is_drawn_the_same_way_every_time_with_its_title() {
        let points = [(0, 80.0), (DAY, 60.0), (2 * DAY, 40.0)];
        let markers = [Marker {
            at: DAY,
            kind: MarkerKind::AlertOpened,
            label: "health_below".into(),
        }];
        let a = history("Health of c1", &points, Bands::default(), &markers).into_string();
        let b = history("Health of c1", &points, Bands::default(), &markers).into_string();
        assert_eq!(a, b);
        assert!(a.contains("<title>Health of c1</title>"), "{a}");
        assert!(a.contains("role=\"img\""));
        // The line runs from the left edge to the right edge, falling: 80 is high, 40 low.
        assert!(
            a.contains("points=\"36.0,51.2 372.0,90.4 708.0,129.6\""),
            "{a}"
        );
        // The marker sits at the middle day, and says what it is.
        assert!(a.contains("x1=\"372.0\""), "{a}");
        assert!(a.contains("alert opened: health_below"));
        // The time axis is dated at both ends.
        assert!(
            a.contains(">1970-01-01</text>") && a.contains(">1970-01-03</text>"),
            "{a}"
        );
    }

    #[test]
    fn the_bands_follow_the_card_cut_offs() {
        let svg = history(
            "h",
            &[(0, 50.0)],
            Bands {
                red: 40.0,
                yellow: 70.0,
            },
            &[],
        )
        .into_string();
        // Plot height 196 from y=12: red covers 0–40 (y 129.6–208), yellow 40–70, green 70–100.
        assert!(
            svg.contains("class=\"band-red\" x=\"36.0\" y=\"129.6\""),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"band-green\" x=\"36.0\" y=\"12.0\""),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"score-point\""),
            "a lone score is a dot: {svg}"
        );
    }

    #[test]
    fn diverging_bars_put_losses_left_and_gains_right_of_zero() {
        let svg = diverging(
            "What moved it",
            &[("nps".into(), -10.0), ("recency".into(), 5.0)],
        )
        .into_string();
        let zero = 220.0 + (720.0 - 220.0 - 12.0) / 2.0;
        assert!(svg.contains(&format!("x1=\"{zero:.1}\"")), "{svg}");
        // The largest change fills the half; the other is proportionate.
        assert!(
            svg.contains(&format!("class=\"down\" x=\"{:.1}\"", zero - 204.0)),
            "{svg}"
        );
        assert!(
            svg.contains(&format!(
                "class=\"up\" x=\"{zero:.1}\" y=\"29.0\" width=\"102.0\""
            )),
            "{svg}"
        );
        assert!(svg.contains("-10.0") && svg.contains("+5.0"));
    }

    #[test]
    fn labels_are_escaped() {
        let svg = bars("Alerts", &[("<script>".into(), "sev-critical", 3)]).into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn intervals_are_centred_on_zero_and_coloured_by_what_they_exclude() {
        let items = [
            Interval {
                label: "care_message · gold".into(),
                estimate: 2.0,
                low: 1.0,
                high: 4.0,
            },
            Interval {
                label: "coupon · vip".into(),
                estimate: -1.0,
                low: -3.0,
                high: 1.0,
            },
        ];
        let svg = intervals("Effect on health", &items).into_string();
        // Reach 4 either side; zero sits mid-plot: 220 + 448 / 2.
        assert!(svg.contains("class=\"zero\" x1=\"444.0\""), "{svg}");
        assert!(
            svg.contains("class=\"ci up\""),
            "an interval above zero: {svg}"
        );
        assert_eq!(
            svg.matches("class=\"ci\"").count(),
            1,
            "one crosses zero: {svg}"
        );
        assert!(svg.contains("+2.00") && svg.contains("-1.00"));
    }

    #[test]
    fn a_small_line_breaks_where_a_period_is_unknown() {
        let points = [
            ("2026-01".to_string(), Some(10.0)),
            ("2026-02".to_string(), None),
            ("2026-03".to_string(), Some(20.0)),
            ("2026-04".to_string(), Some(30.0)),
        ];
        let svg = small_line("Retention, gold", &points, (0.0, 100.0)).into_string();
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert_eq!(
            svg.matches("<circle").count(),
            1,
            "a lone known period is a dot: {svg}"
        );
        assert!(svg.contains(">2026-01</text>") && svg.contains(">2026-04</text>"));
    }

    #[test]
    fn each_column_of_shares_fills_the_plot_in_its_parts_proportions() {
        let columns = [
            Column {
                label: "01-05".into(),
                counts: vec![1, 1, 2],
            },
            Column {
                label: "01-12".into(),
                counts: vec![0, 0, 0],
            },
        ];
        let parts = [
            ("red", "share-red"),
            ("yellow", "share-yellow"),
            ("green", "share-green"),
        ];
        let svg = shares("Band shares", &parts, &columns).into_string();
        // Plot 196 high from y 12: red a quarter at the bottom (159 to 208), green half on top.
        assert!(svg.contains("class=\"share-red\" x=\""), "{svg}");
        assert!(
            svg.contains("y=\"159.0\" width=\"48.0\" height=\"49.0\""),
            "{svg}"
        );
        assert!(
            svg.contains("y=\"12.0\" width=\"48.0\" height=\"98.0\""),
            "{svg}"
        );
        assert!(svg.contains("<title>01-05, green: 2</title>"), "{svg}");
        // An empty week draws no height rather than dividing by zero.
        assert!(!svg.contains("NaN"), "{svg}");
    }

    #[test]
    fn a_sparkline_spans_its_box() {
        let svg = sparkline("last scores", &[100.0, 0.0]).into_string();
        assert!(svg.contains("points=\"0.0,1.0 80.0,19.0\""), "{svg}");
    }

    #[test]
    fn the_rfm_grid_puts_each_cell_at_its_scores_and_shades_it_by_its_count() {
        let svg = rfm_grid("RFM", &[(5, 5, 40), (1, 2, 20), (6, 1, 99)]).into_string();
        // Recency 5, frequency 5: the top right cell, the darkest.
        assert!(
            svg.contains(r#"x="301.0" y="5.0" width="50.0" height="50.0" fill-opacity="0.70""#),
            "{svg}"
        );
        // Recency 1, frequency 2: the left column, fourth row, half as dark (and a floor).
        assert!(
            svg.contains(r#"x="93.0" y="161.0" width="50.0" height="50.0" fill-opacity="0.39""#),
            "{svg}"
        );
        assert!(svg.contains("<title>recency 1, frequency 2: 20</title>"));
        assert!(!svg.contains("99"), "a score outside 1-5 is left out");
        assert_eq!(
            svg,
            rfm_grid("RFM", &[(5, 5, 40), (1, 2, 20), (6, 1, 99)]).into_string()
        );
    }
}

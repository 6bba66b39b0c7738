//! A backtest's pictures as SVG text: the ROC curve against the diagonal of chance, and the
//! reliability plot against the diagonal of perfect calibration. Deterministic (the same
//! figures give the same bytes) and self-describing (a title and a description).

use std::fmt::Write;

/// Side of the square plot area, in SVG units.
const SIDE: f64 = 320.0;
/// Margin around it, for the axes' labels.
const MARGIN: f64 = 48.0;

/// The frame of a unit-square plot: axes, grid, labels, the diagonal and a title.
fn frame(title: &str, description: &str, x_label: &str, y_label: &str) -> String {
    let size = SIDE + 2.0 * MARGIN;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" width="{size}" height="{size}" role="img" font-family="sans-serif" font-size="11"><title>{}</title><desc>{}</desc><rect x="{MARGIN}" y="{MARGIN}" width="{SIDE}" height="{SIDE}" fill="none" stroke="#888"/>"##,
        escape(title),
        escape(description)
    );
    for i in 1..5 {
        let t = f64::from(i) / 5.0;
        let (x, y) = (MARGIN + t * SIDE, MARGIN + (1.0 - t) * SIDE);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{MARGIN}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><line x1="{MARGIN}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{t:.1}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{t:.1}</text>"##,
            MARGIN + SIDE,
            MARGIN + SIDE,
            MARGIN + SIDE + 14.0,
            MARGIN - 4.0,
            y + 4.0
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{MARGIN}" y1="{:.1}" x2="{:.1}" y2="{MARGIN}" stroke="#bbb" stroke-dasharray="4 4"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="12" y="{:.1}" text-anchor="middle" transform="rotate(-90 12 {:.1})">{}</text><text x="{:.1}" y="24" text-anchor="middle" font-size="13">{}</text>"##,
        MARGIN + SIDE,
        MARGIN + SIDE,
        MARGIN + SIDE / 2.0,
        MARGIN + SIDE + 32.0,
        escape(x_label),
        MARGIN + SIDE / 2.0,
        MARGIN + SIDE / 2.0,
        escape(y_label),
        MARGIN + SIDE / 2.0,
        escape(title)
    );
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A point of the unit square in SVG coordinates.
fn at(x: f64, y: f64) -> (f64, f64) {
    (
        MARGIN + x.clamp(0.0, 1.0) * SIDE,
        MARGIN + (1.0 - y.clamp(0.0, 1.0)) * SIDE,
    )
}

/// The ROC curve of `points` (false and true positive rates), titled with its AUC.
pub fn roc(points: &[(f64, f64)], auc: f64, what: &str) -> String {
    let title = format!("ROC of {what}: AUC {auc:.3}");
    let description = format!(
        "True positive rate against false positive rate of {what} at every threshold, {} points; the dashed diagonal is chance.",
        points.len()
    );
    let mut s = frame(
        &title,
        &description,
        "false positive rate",
        "true positive rate",
    );
    let path: Vec<String> = points
        .iter()
        .map(|(x, y)| {
            let (px, py) = at(*x, *y);
            format!("{px:.1},{py:.1}")
        })
        .collect();
    let _ = write!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#1f6feb" stroke-width="2"/></svg>"##,
        path.join(" ")
    );
    s
}

/// The reliability plot: each bin's observed rate against its mean predicted probability,
/// a dot sized by its share of the customers.
pub fn reliability(bins: &[(f64, f64, u64)], brier: f64) -> String {
    let title = format!("Reliability: Brier score {brier:.4}");
    let description = format!(
        "Observed outcome rate against mean predicted probability in {} bins; the dashed diagonal is perfect calibration.",
        bins.len()
    );
    let mut s = frame(
        &title,
        &description,
        "predicted probability",
        "observed rate",
    );
    let total: u64 = bins.iter().map(|b| b.2).sum::<u64>().max(1);
    for (predicted, observed, n) in bins {
        let (x, y) = at(*predicted, *observed);
        let r = 3.0 + 9.0 * (*n as f64 / total as f64).sqrt();
        let _ = write!(
            s,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="{r:.1}" fill="#1f6feb" fill-opacity="0.6"><title>{n} customers: predicted {predicted:.3}, observed {observed:.3}</title></circle>"##
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_deterministic_and_say_what_they_show() {
        let points = [(0.0, 0.0), (0.2, 0.6), (1.0, 1.0)];
        let a = roc(&points, 0.75, "the health score");
        assert_eq!(a, roc(&points, 0.75, "the health score"));
        assert!(a.starts_with("<svg") && a.ends_with("</svg>"));
        assert!(a.contains("<title>ROC of the health score: AUC 0.750</title>"));
        assert!(a.contains("48.0,368.0 112.0,176.0 368.0,48.0"), "{a}");
        let r = reliability(&[(0.1, 0.12, 30), (0.8, 0.7, 70)], 0.1234);
        assert!(r.contains("Brier score 0.1234") && r.matches("<circle").count() == 2);
        assert!(roc(&points, 0.5, "<x & y>").contains("&lt;x &amp; y&gt;"));
    }
}

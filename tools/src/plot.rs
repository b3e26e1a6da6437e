//! Minimal SVG line charts for the demos: no fonts to load, no native
//! dependencies, readable in any browser.

use std::fmt::Write as _;
use std::path::Path;

/// One named line.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart with labelled axes.
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 500.0;
const MARGIN: f64 = 70.0;
const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

impl LineChart {
    /// Renders the chart as SVG text.
    pub fn to_svg(&self) -> String {
        let points = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x_max, mut y_max) = (0f64, 0f64);
        for &(x, y) in points {
            x_max = x_max.max(x);
            y_max = y_max.max(y);
        }
        let x_max = if x_max > 0.0 { x_max } else { 1.0 };
        let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
        let plot_w = WIDTH - 2.0 * MARGIN;
        let plot_h = HEIGHT - 2.0 * MARGIN;
        let sx = |x: f64| MARGIN + x / x_max * plot_w;
        let sy = |y: f64| HEIGHT - MARGIN - y / y_max * plot_h;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="13">"#
        );
        let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="30" text-anchor="middle" font-size="16">{}</text>"#,
            WIDTH / 2.0,
            escape(&self.title)
        );
        // Axes and ticks.
        let _ = writeln!(
            svg,
            r#"<path d="M{MARGIN},{} V{} H{}" stroke="black" fill="none"/>"#,
            MARGIN,
            HEIGHT - MARGIN,
            WIDTH - MARGIN
        );
        for tick in 0..=5 {
            let fraction = f64::from(tick) / 5.0;
            let (x, y) = (fraction * x_max, fraction * y_max);
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                sx(x),
                HEIGHT - MARGIN + 20.0,
                short(x)
            );
            let _ = writeln!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><path d="M{MARGIN},{:.1} H{}" stroke="#ddd"/>"##,
                MARGIN - 8.0,
                sy(y) + 4.0,
                short(y),
                sy(y),
                WIDTH - MARGIN
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            WIDTH / 2.0,
            HEIGHT - 20.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            svg,
            r#"<text x="20" y="{}" text-anchor="middle" transform="rotate(-90 20 {})">{}</text>"#,
            HEIGHT / 2.0,
            HEIGHT / 2.0,
            escape(&self.y_label)
        );
        for (index, series) in self.series.iter().enumerate() {
            let colour = COLOURS[index % COLOURS.len()];
            let path: Vec<String> =
                series.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect();
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" stroke="{colour}" stroke-width="2" fill="none"/>"#,
                path.join(" ")
            );
            let legend_y = MARGIN + 18.0 * index as f64;
            let _ = writeln!(
                svg,
                r#"<rect x="{}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}">{}</text>"#,
                WIDTH - MARGIN - 200.0,
                legend_y - 10.0,
                WIDTH - MARGIN - 182.0,
                legend_y,
                escape(&series.name)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, self.to_svg())
    }
}

fn short(value: f64) -> String {
    if value >= 100.0 || value == value.trunc() { format!("{value:.0}") } else { format!("{value:.1}") }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_a_line_per_series_and_escapes_text() {
        let chart = LineChart {
            title: "a < b".into(),
            x_label: "t".into(),
            y_label: "y".into(),
            series: vec![
                Series { name: "one".into(), points: vec![(0.0, 1.0), (1.0, 2.0)] },
                Series { name: "two".into(), points: vec![(0.0, 0.0), (1.0, 3.0)] },
            ],
        };
        let svg = chart.to_svg();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt; b"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}

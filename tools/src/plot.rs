//! Line charts for the demos, drawn by `plotters` and written twice: SVG
//! (sharp in any browser, text stays text) and PNG (for viewers and
//! documents that take pictures only).
//!
//! Text is laid out with DejaVu Sans, built into the binary from
//! `tools/assets/` (licence beside it), through `plotters`' pure-Rust
//! `ab_glyph` backend: no fontconfig or freetype on the host.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, RGBColor, register_font};

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

/// The files one chart was written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub svg: PathBuf,
    pub png: PathBuf,
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} and {}", self.svg.display(), self.png.display())
    }
}

/// Width and height in pixels (the SVG's user units).
pub const SIZE: (u32, u32) = (900, 500);
/// Series colours, in order (matplotlib's first six).
pub const COLOURS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];
const GRID: RGBColor = RGBColor(0xdd, 0xdd, 0xdd);
/// The strip right of the plot that holds the legend, so it never hides a line.
const LEGEND_WIDTH: u32 = 190;
/// The family name the bundled font is registered under.
const FONT: &str = "sans-serif";

/// Registers the bundled font with `plotters` (once per process).
fn register_the_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        // The font is part of this source tree: failing to parse it is a
        // build mistake, not a runtime condition.
        if register_font(FONT, FontStyle::Normal, bytes).is_err() {
            panic!("tools/assets/DejaVuSans.ttf is not a usable font");
        }
    });
}

impl LineChart {
    /// Writes `<stem>.svg` and `<stem>.png`, creating the folder.
    pub fn write(&self, stem: &Path) -> Result<Written> {
        if let Some(parent) = stem.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let written = Written { svg: stem.with_extension("svg"), png: stem.with_extension("png") };
        std::fs::write(&written.svg, self.to_svg()?)?;
        register_the_font();
        self.draw(BitMapBackend::new(&written.png, SIZE).into_drawing_area())
            .map_err(|error| anyhow!("drawing {}: {error}", written.png.display()))?;
        Ok(written)
    }

    /// The chart as SVG text.
    pub fn to_svg(&self) -> Result<String> {
        register_the_font();
        let mut svg = String::new();
        self.draw(SVGBackend::with_string(&mut svg, SIZE).into_drawing_area())
            .map_err(|error| anyhow!("drawing the SVG: {error}"))?;
        Ok(svg)
    }

    /// Both axes start at 0 (or below, for negative values); the y axis
    /// leaves 10% headroom above the highest point.
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let points =
            self.series.iter().flat_map(|s| s.points.iter()).filter(|p| p.0.is_finite() && p.1.is_finite());
        let (mut x_min, mut x_max, mut y_min, mut y_max) = (0f64, 0f64, 0f64, 0f64);
        for &(x, y) in points {
            (x_min, x_max) = (x_min.min(x), x_max.max(x));
            (y_min, y_max) = (y_min.min(y), y_max.max(y));
        }
        let x_max = if x_max > x_min { x_max } else { x_min + 1.0 };
        let y_max = if y_max > y_min { y_max + 0.1 * (y_max - y_min) } else { y_min + 1.0 };
        ((x_min, x_max), (y_min, y_max))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let body = root.titled(&self.title, (FONT, 20))?;
        let (plot, legend) = body.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let ((x_min, x_max), (y_min, y_max)) = self.ranges();
        let mut chart = ChartBuilder::on(&plot)
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(x_min..x_max, y_min..y_max)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .x_label_formatter(&|x| tick(*x))
            .y_label_formatter(&|y| tick(*y))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .draw()?;
        for (index, series) in self.series.iter().enumerate() {
            let colour = COLOURS[index % COLOURS.len()];
            chart.draw_series(LineSeries::new(series.points.iter().copied(), colour.stroke_width(2)))?;
            let y = 20 + 22 * index as i32;
            legend.draw(&Rectangle::new([(5, y), (17, y + 12)], colour.filled()))?;
            legend.draw(&Text::new(series.name.as_str(), (25, y), (FONT, 14)))?;
        }
        root.present()
    }
}

/// A tick label: up to three decimals, trailing zeros dropped (200, 0.25).
fn tick(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".into() } else { text.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_lines() -> LineChart {
        // Two flat lines across the whole x range, at 1/4 and 3/4 of the
        // highest point: both cross the middle of the plot, where the
        // legend (right of the plot) is not.
        LineChart {
            title: "a < b & c".into(),
            x_label: "time (ms)".into(),
            y_label: "share (%)".into(),
            series: vec![
                Series { name: "one".into(), points: vec![(0.0, 25.0), (50.0, 25.0), (100.0, 25.0)] },
                Series { name: "two".into(), points: vec![(0.0, 75.0), (100.0, 75.0)] },
            ],
        }
    }

    fn hex(colour: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", colour.0, colour.1, colour.2)
    }

    fn scratch_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tenfold-plot-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn svg_has_one_line_per_series_in_its_colour_and_escapes_text() {
        let svg = two_lines().to_svg().unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        // One line per series, in its colour, through each of its points
        // (the axes and ticks are black lines, the grid grey).
        let chart = two_lines();
        for (series, colour) in chart.series.iter().zip(COLOURS) {
            let stroke = format!("stroke=\"{}\"", hex(colour));
            let lines: Vec<&str> =
                svg.lines().filter(|line| line.contains("<polyline") && line.contains(&stroke)).collect();
            assert_eq!(lines.len(), 1, "{}: {lines:?}", series.name);
            let points = lines[0].split("points=\"").nth(1).unwrap().split('"').next().unwrap();
            assert_eq!(points.split_whitespace().count(), series.points.len(), "{}", lines[0]);
        }
        // Text stays text (one line each between its tags), escaped.
        for text in ["a &lt; b &amp; c", "time (ms)", "share (%)", "one", "two"] {
            assert!(svg.lines().any(|line| line.trim() == text), "`{text}` missing: {svg}");
        }
    }

    #[test]
    fn write_makes_an_svg_and_a_png_with_the_lines_and_the_text_drawn() {
        let dir = scratch_dir("write");
        let written = two_lines().write(&dir.join("chart")).unwrap();
        assert_eq!(written.svg, dir.join("chart.svg"));
        assert_eq!(written.png, dir.join("chart.png"));
        assert!(std::fs::read_to_string(&written.svg).unwrap().contains("<polyline"));

        let png = image::open(&written.png).unwrap().to_rgb8();
        assert_eq!(png.dimensions(), SIZE);
        let (width, height) = SIZE;
        let is = |x: u32, y: u32, colour: RGBColor| png.get_pixel(x, y).0 == [colour.0, colour.1, colour.2];
        // Down the middle column, each series' colour shows up (its line),
        // once each: not from the legend, which has its own strip at the right.
        for colour in &COLOURS[..2] {
            let rows: Vec<u32> = (0..height).filter(|&y| is(width / 2, y, *colour)).collect();
            assert!(!rows.is_empty() && rows.len() <= 4, "{}: rows {rows:?}", hex(*colour));
        }
        // The first line (lower value) is drawn below the second.
        let row_of = |colour| (0..height).find(|&y| is(width / 2, y, colour)).unwrap();
        assert!(row_of(COLOURS[0]) > row_of(COLOURS[1]));
        // The title was rendered with the font: dark pixels in the caption band.
        let dark = (0..width).flat_map(|x| (0..35).map(move |y| (x, y))).filter(|&(x, y)| {
            let [r, g, b] = png.get_pixel(x, y).0;
            u32::from(r) + u32::from(g) + u32::from(b) < 200
        });
        assert!(dark.count() > 50, "no title drawn");
        // The lower left corner of the picture is background.
        assert!(is(2, height - 2, WHITE));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_empty_chart_still_draws() {
        let dir = scratch_dir("empty");
        let chart = LineChart {
            title: "nothing".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Series { name: "none".into(), points: Vec::new() }],
        };
        let written = chart.write(&dir.join("empty")).unwrap();
        assert_eq!(image::open(&written.png).unwrap().to_rgb8().dimensions(), SIZE);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tick_labels_drop_trailing_zeros() {
        assert_eq!(tick(200.0), "200");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(1.5), "1.5");
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(-0.0001), "0");
        assert_eq!(tick(2_500_000.0), "2500000");
    }

    #[test]
    fn ranges_start_at_zero_and_leave_headroom() {
        assert_eq!(two_lines().ranges(), ((0.0, 100.0), (0.0, 82.5)));
        let negative = LineChart {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            series: vec![Series {
                name: "n".into(),
                points: vec![(-2.0, -10.0), (2.0, 10.0), (f64::NAN, 1e9)],
            }],
        };
        assert_eq!(negative.ranges(), ((-2.0, 2.0), (-10.0, 12.0)));
    }
}

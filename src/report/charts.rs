//! The report's charts, drawn with plotters' SVG backend. The output depends only on the
//! report, so a re-rendered report has byte-identical charts.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::model::AnnualReport;

/// One chart: an SVG document and what it shows, in Swedish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    /// Stable name, e.g. `per-month`; used for file names and Content-IDs.
    pub name: &'static str,
    pub title_sv: String,
    /// A sentence describing the chart for people who cannot see it (alt text).
    pub description_sv: String,
    pub svg: String,
}

// Every series colour has at least 3:1 contrast against the white background (WCAG 1.4.11,
// checked by a test below); bars that meet are kept apart by a white gap instead of having
// to contrast with each other.
const MAJOR: RGBColor = RGBColor(0xb2, 0x18, 0x2b);
const MINOR: RGBColor = RGBColor(0xd6, 0x60, 0x4d);
const UNCLASSIFIED: RGBColor = RGBColor(0x76, 0x76, 0x76);
const THIS_YEAR: RGBColor = RGBColor(0x21, 0x66, 0xac);
const PREVIOUS_YEAR: RGBColor = RGBColor(0x6b, 0x8f, 0xbf);
/// White pixels between bars that meet.
const BAR_GAP: u32 = 2;
const FONT: &str = "sans-serif";
/// Axis and legend labels (plotters writes 0.8 of it as the SVG font size: about 13 px).
const LABEL_SIZE: f64 = 16.0;

type DrawResult = Result<(), Box<dyn std::error::Error>>;
/// One layer of a stacked bar: legend label, colour, and the value it stacks.
type Stack = (&'static str, RGBColor, fn(&super::model::MonthRow) -> u64);

/// The report's charts, in the order they are shown.
pub fn charts(report: &AnnualReport) -> Vec<Chart> {
    let y = report.year;
    vec![
        Chart {
            name: "per-month",
            title_sv: format!("Avvikelser per månad {y}, efter allvarlighet"),
            description_sv: format!(
                "Stapeldiagram: antal rapporterade avvikelser per månad {y}, uppdelat på större, \
                 mindre och ej klassade. Totalt {} {}.",
                report.totals.deviations,
                if report.totals.deviations == 1 {
                    "avvikelse"
                } else {
                    "avvikelser"
                }
            ),
            svg: draw(760, 340, |root| per_month(report, root)),
        },
        Chart {
            name: "per-category",
            title_sv: format!("Avvikelser per kategori {} och {y}", y - 1),
            description_sv: format!(
                "Liggande stapeldiagram: antal avvikelser per kategori {y} jämfört med {}.",
                y - 1
            ),
            svg: draw(
                760,
                (90 + 34 * report.by_category.len().max(1)) as u32,
                |root| per_category(report, root),
            ),
        },
    ]
}

fn draw(
    w: u32,
    h: u32,
    f: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult,
) -> String {
    let mut svg = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        f(&root).and_then(|()| root.present().map_err(Into::into))
    };
    match result {
        Ok(()) => svg,
        Err(e) => {
            tracing::error!(error = %e, "a report chart could not be drawn");
            String::from(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" height=\"40\">\
                 <text x=\"10\" y=\"25\">Diagrammet kunde inte ritas.</text></svg>\n",
            )
        }
    }
}

fn per_month(report: &AnnualReport, root: &DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult {
    root.fill(&WHITE)?;
    let max = report
        .by_month
        .iter()
        .map(|m| m.total)
        .max()
        .unwrap_or(0)
        .max(1) as u32;
    let mut chart = ChartBuilder::on(root)
        .caption(format!("Avvikelser per månad {}", report.year), (FONT, 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        // A discrete range includes its end: 1..12 is the twelve months, one segment each.
        .build_cartesian_2d((1u32..12u32).into_segmented(), 0u32..(max + max / 10 + 1))?;
    let labels = |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(m) => super::model::month_label_sv(*m).to_string(),
        SegmentValue::Exact(_) | SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(12)
        .x_label_formatter(&labels)
        .y_desc("Antal")
        .y_label_formatter(&|v| v.to_string())
        .label_style((FONT, LABEL_SIZE))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let stacks: [Stack; 3] = [
        ("Större", MAJOR, |m| m.major),
        ("Mindre", MINOR, |m| m.minor),
        ("Ej klassade", UNCLASSIFIED, |m| m.unclassified),
    ];
    for (i, (label, color, value)) in stacks.iter().enumerate() {
        let bars = report.by_month.iter().filter_map(|m| {
            let below: u64 = stacks[..i].iter().map(|(_, _, v)| v(m)).sum();
            let h = value(m);
            (h > 0).then(|| {
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(m.month), below as u32),
                        (SegmentValue::Exact(m.month + 1), (below + h) as u32),
                    ],
                    color.filled(),
                );
                r.set_margin(0, if below > 0 { BAR_GAP } else { 0 }, 6, 6);
                r
            })
        });
        let color = *color;
        chart
            .draw_series(bars)?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, LABEL_SIZE))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    Ok(())
}

fn per_category(report: &AnnualReport, root: &DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult {
    root.fill(&WHITE)?;
    let rows = &report.by_category;
    let n = rows.len().max(1);
    let max = rows
        .iter()
        .map(|r| r.count.max(r.previous_year))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "Avvikelser per kategori {} och {}",
                report.year - 1,
                report.year
            ),
            (FONT, 20),
        )
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(230)
        // A discrete range includes its end: 0..n-1 is n rows, one segment each.
        .build_cartesian_2d(
            0f64..(max * 1.1).ceil(),
            (0u32..(n as u32 - 1)).into_segmented(),
        )?;
    // Row 0 at the top: the y axis grows upwards, so segment i shows row n-1-i.
    let row_at = |i: u32| rows.get(n.saturating_sub(1).saturating_sub(i as usize));
    let name_of = |v: &SegmentValue<u32>| match v {
        // Only the middle of a segment gets a label; its edges stay blank.
        SegmentValue::CenterOf(i) => row_at(*i).map(|r| r.label_sv.clone()).unwrap_or_default(),
        SegmentValue::Exact(_) | SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&name_of)
        .x_label_formatter(&|v| {
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .x_desc("Antal")
        .label_style((FONT, LABEL_SIZE))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let (_, plot_h) = chart.plotting_area().dim_in_pixel();
    let seg = plot_h / n as u32;
    let (gap, half) = (seg / 8, seg / 2);
    let bar = |i: usize, value: u64, upper: bool, color: RGBColor| {
        let s = (n - 1 - i) as u32;
        let mut r = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(s)),
                (value as f64, SegmentValue::Exact(s + 1)),
            ],
            color.filled(),
        );
        if upper {
            r.set_margin(gap, half + BAR_GAP / 2, 0, 0);
        } else {
            r.set_margin(half + BAR_GAP / 2, gap, 0, 0);
        }
        r
    };
    chart
        .draw_series(
            rows.iter()
                .enumerate()
                .map(|(i, r)| bar(i, r.count, true, THIS_YEAR)),
        )?
        .label(report.year.to_string())
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], THIS_YEAR.filled()));
    chart
        .draw_series(
            rows.iter()
                .enumerate()
                .map(|(i, r)| bar(i, r.previous_year, false, PREVIOUS_YEAR)),
        )?
        .label((report.year - 1).to_string())
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], PREVIOUS_YEAR.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, LABEL_SIZE))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WCAG relative luminance of an sRGB colour.
    fn luminance(c: RGBColor) -> f64 {
        let lin = |v: u8| {
            let v = f64::from(v) / 255.0;
            if v <= 0.03928 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(c.0) + 0.7152 * lin(c.1) + 0.0722 * lin(c.2)
    }

    #[test]
    fn every_series_colour_stands_out_from_the_white_background() {
        let white = luminance(RGBColor(0xff, 0xff, 0xff));
        for c in [MAJOR, MINOR, UNCLASSIFIED, THIS_YEAR, PREVIOUS_YEAR] {
            let ratio = (white + 0.05) / (luminance(c) + 0.05);
            assert!(
                ratio >= 3.0,
                "{c:?} has contrast {ratio:.2}:1 against white"
            );
        }
    }
}

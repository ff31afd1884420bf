//! Training curves and the estimator's decisions as one PNG (three panels).

use std::path::Path;

use plotters::prelude::*;

use crate::net::Precision;
use crate::swa::SwaLog;
use crate::train::EpochLog;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");

fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The embedded font is valid; a failure would only lose the labels.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// One line of a panel: its legend name, (epoch, value) points and colour.
type Series<'a> = (&'a str, Vec<(usize, f32)>, RGBColor);

fn series_panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    epochs: usize,
    range: (f32, f32),
    series: &[Series],
) -> PlotResult {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(1usize..epochs.max(2), range.0..range.1)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .label_style(("sans-serif", 12))
        .draw()?;
    for (name, pts, color) in series {
        let c = *color;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        // A lone point (the weight average) sits on top of a line's last point: draw it larger.
        let radius = if pts.len() == 1 { 6 } else { 3 };
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, radius, c.filled())))?;
    }
    legend(&mut chart)
}

/// Draws a chart's legend box (top right).
fn legend<'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
) -> PlotResult
where
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 12))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Writes loss, accuracy and the estimator's per-layer errors (filled markers: binary in the
/// next epoch; the dashed line is the threshold) to `path`. A run that ended with a weight
/// average also shows the mean's validation loss and accuracy at its last epoch.
pub fn training_png(
    log: &[EpochLog],
    swa: Option<&SwaLog>,
    threshold: f64,
    path: &Path,
) -> PlotResult {
    register();
    let root = BitMapBackend::new(path, (900, 1050)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((3, 1));
    // One more epoch of axis when a weight average is drawn, so its lone marker at the last
    // epoch is not cut in half by the frame.
    let n = log.len().max(1) + usize::from(swa.is_some());
    let pick = |f: fn(&EpochLog) -> f32| log.iter().map(|e| (e.epoch, f(e))).collect::<Vec<_>>();
    let last = log.last().map_or(1, |e| e.epoch);
    let average = |f: fn(&SwaLog) -> f32| -> Vec<Series> {
        swa.iter()
            .map(|s| ("weight average", vec![(last, f(s))], GREEN))
            .collect()
    };
    let loss_max = log
        .iter()
        .flat_map(|e| [e.train_loss, e.val_loss])
        .fold(0.1f32, f32::max)
        * 1.1;
    series_panel(
        &panels[0],
        "loss",
        n,
        (0.0, loss_max),
        &[
            vec![
                ("train", pick(|e| e.train_loss), BLUE),
                ("validation", pick(|e| e.val_loss), RED),
            ],
            average(|s| s.val_loss),
        ]
        .concat(),
    )?;
    let acc_min = log
        .iter()
        .flat_map(|e| [e.train_acc, e.val_acc])
        .fold(1.0f32, f32::min);
    series_panel(
        &panels[1],
        "accuracy",
        n,
        ((acc_min - 0.02).max(0.0), 1.0),
        &[
            vec![
                ("train", pick(|e| e.train_acc), BLUE),
                ("validation", pick(|e| e.val_acc), RED),
            ],
            average(|s| s.val_acc),
        ]
        .concat(),
    )?;
    estimator_panel(&panels[2], log, threshold, n)?;
    root.present()?;
    Ok(())
}

/// The estimator's error per candidate layer and epoch (filled: binary in the next epoch),
/// with the threshold dashed, over `n` epochs of axis.
fn estimator_panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    log: &[EpochLog],
    threshold: f64,
    n: usize,
) -> PlotResult {
    let layers: std::collections::BTreeSet<usize> = log
        .iter()
        .flat_map(|e| e.decisions.iter().map(|d| d.layer))
        .collect();
    let emax = log
        .iter()
        .flat_map(|e| e.decisions.iter().map(|d| d.error))
        .fold(threshold * 1.5, f64::max) as f32;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "accuracy-loss estimator: error per candidate layer",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(1usize..n.max(2), 0f32..emax * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .label_style(("sans-serif", 12))
        .draw()?;
    chart.draw_series(DashedLineSeries::new(
        vec![(1, threshold as f32), (n.max(2), threshold as f32)],
        6,
        4,
        BLACK.stroke_width(1),
    ))?;
    for (k, &l) in layers.iter().enumerate() {
        let c = Palette99::pick(k).to_rgba();
        let pts: Vec<(usize, f32, bool)> = log
            .iter()
            .flat_map(|e| {
                e.decisions
                    .iter()
                    .filter(|d| d.layer == l)
                    .map(move |d| (e.epoch, d.error as f32, d.after == Precision::Binary))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                c.stroke_width(2),
            ))?
            .label(format!("layer {}", l + 1))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&(e, v, bin)| {
            Circle::new((e, v), 4, if bin { c.filled() } else { c.stroke_width(1) })
        }))?;
    }
    if !layers.is_empty() {
        legend(&mut chart)?;
    }
    Ok(())
}

//! The learning curve of a run as an SVG document.

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::env::EnvSpec;

/// File name of the learning curve inside a run directory.
pub const LEARNING_CURVE: &str = "learning_curve.svg";

/// The y axis of returns: the env's range of episode returns within the run's time limit
/// (where it is known; else the range of the returns plotted and the threshold), topped by 4%
/// of it so that the best return stays visible, and its solved threshold, where it is judged.
#[derive(Debug, Clone, Copy)]
struct ReturnAxis {
    low: f64,
    high: f64,
    threshold: Option<f64>,
}

impl ReturnAxis {
    fn of(env: &EnvSpec, max_episode_steps: u32, seen: impl Iterator<Item = f64>) -> Self {
        let threshold = env.threshold_at(max_episode_steps);
        let (low, best) = env.returns_within(max_episode_steps).unwrap_or_else(|| {
            let (low, high) = seen
                .chain(threshold)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                });
            match (low.is_finite(), high > low) {
                (true, true) => (low, high),
                (true, false) => (low - 1.0, low + 1.0),
                _ => (0.0, 1.0),
            }
        });
        Self {
            low,
            high: best + 0.04 * (best - low),
            threshold,
        }
    }
}
/// Episodes averaged by the training curve's trailing moving average.
const AVERAGE_WINDOW: usize = 20;
/// Smallest x range plotted, in env steps.
const MIN_X_RANGE: f64 = 1000.0;
const SIZE: (u32, u32) = (900, 540);

const TRAIN_COLOUR: RGBColor = RGBColor(31, 119, 180);
const EVAL_COLOUR: RGBColor = RGBColor(214, 39, 40);
const SOLVED_COLOUR: RGBColor = RGBColor(44, 160, 44);

/// Plots training returns (raw, faint, and a moving average), evaluation means with
/// a ±1 std band, and the solved threshold against env steps, for episodes of `env` cut at
/// `max_episode_steps`. `train` holds (env step, episode return), `eval` holds (env step,
/// mean, std); either may be empty, and points with non-finite values are skipped.
pub fn learning_curve_svg(
    train: &[(u64, f64)],
    eval: &[(u64, f64, f64)],
    title: &str,
    env: &EnvSpec,
    max_episode_steps: u32,
) -> anyhow::Result<String> {
    let train: Vec<(f64, f64)> = train
        .iter()
        .map(|&(step, ret)| (step as f64, ret))
        .filter(|&(_, ret)| ret.is_finite())
        .collect();
    let eval: Vec<(f64, f64, f64)> = eval
        .iter()
        .map(|&(step, mean, std)| (step as f64, mean, std))
        .filter(|&(_, mean, std)| mean.is_finite() && std.is_finite())
        .collect();
    let last_step = train
        .iter()
        .map(|p| p.0)
        .chain(eval.iter().map(|p| p.0))
        .fold(0.0, f64::max);
    // An empty or very short run still gets an axis with distinct tick labels.
    let x_max = last_step.max(MIN_X_RANGE);
    let seen = train
        .iter()
        .map(|p| p.1)
        .chain(eval.iter().flat_map(|p| [p.1 - p.2, p.1 + p.2]));
    let returns = ReturnAxis::of(env, max_episode_steps, seen);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).context("clearing the plot")?;
        let mut chart = return_axes(&root, title, x_max, &returns)?;
        draw_training(&mut chart, &train)?;
        draw_evaluation(&mut chart, &eval, &returns)?;
        if let Some(threshold) = returns.threshold {
            draw_solved_threshold(&mut chart, x_max, threshold)?;
        }
        draw_legend(&mut chart)?;
        root.present().context("finishing the SVG")?;
    }
    Ok(svg)
}

/// A chart with f64 axes drawn into an SVG string, as both the run's and the sweep
/// report's plots are.
pub type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// The run's axes: env steps from 0 to `x_max` against the env's returns.
fn return_axes<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    x_max: f64,
    returns: &ReturnAxis,
) -> anyhow::Result<Chart<'a, 'b>> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, returns.low..returns.high)
        .context("laying out the plot")?;
    chart
        .configure_mesh()
        .x_desc("env steps")
        .y_desc("return")
        .x_label_formatter(&|step| format_steps(*step))
        .y_label_formatter(&|ret| format!("{ret:.0}"))
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 13))
        .bold_line_style(BLACK.mix(0.08))
        .light_line_style(TRANSPARENT)
        .draw()
        .context("drawing the axes")?;
    Ok(chart)
}

/// The legend swatch of a line series drawn in `style`.
pub fn line_swatch(style: ShapeStyle) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style)
}

/// Draws the legend of the chart's labelled series in its lower right corner.
pub fn draw_legend<'b: 'a, 'a>(chart: &mut Chart<'a, 'b>) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()
        .context("drawing the legend")?;
    Ok(())
}

/// Raw episode returns as a faint line, their moving average as a bold one.
fn draw_training(chart: &mut Chart<'_, '_>, train: &[(f64, f64)]) -> anyhow::Result<()> {
    if train.is_empty() {
        return Ok(());
    }
    chart
        .draw_series(LineSeries::new(
            train.iter().copied(),
            TRAIN_COLOUR.mix(0.25).stroke_width(1),
        ))
        .context("drawing training returns")?
        .label("training episode return")
        .legend(line_swatch(TRAIN_COLOUR.mix(0.25).stroke_width(1)));
    let returns: Vec<f64> = train.iter().map(|p| p.1).collect();
    let averaged = train
        .iter()
        .map(|p| p.0)
        .zip(moving_average(&returns, AVERAGE_WINDOW));
    chart
        .draw_series(LineSeries::new(averaged, TRAIN_COLOUR.stroke_width(2)))
        .context("drawing the training moving average")?
        .label(format!("training, mean of last {AVERAGE_WINDOW} episodes"))
        .legend(line_swatch(TRAIN_COLOUR.stroke_width(2)));
    Ok(())
}

/// Evaluation means joined by a line with markers, over a translucent ±1 std band
/// clipped to the y range.
fn draw_evaluation(
    chart: &mut Chart<'_, '_>,
    eval: &[(f64, f64, f64)],
    returns: &ReturnAxis,
) -> anyhow::Result<()> {
    if eval.is_empty() {
        return Ok(());
    }
    let clip = |value: f64| value.clamp(returns.low, returns.high);
    let band: Vec<(f64, f64)> = eval
        .iter()
        .map(|&(step, mean, std)| (step, clip(mean + std)))
        .chain(
            eval.iter()
                .rev()
                .map(|&(step, mean, std)| (step, clip(mean - std))),
        )
        .collect();
    chart
        .draw_series(std::iter::once(Polygon::new(
            band,
            EVAL_COLOUR.mix(0.15).filled(),
        )))
        .context("drawing the evaluation band")?
        .label("evaluation ±1 std")
        .legend(|(x, y)| {
            Rectangle::new(
                [(x, y - 5), (x + 20, y + 5)],
                EVAL_COLOUR.mix(0.15).filled(),
            )
        });
    let means = eval.iter().map(|&(step, mean, _)| (step, clip(mean)));
    chart
        .draw_series(LineSeries::new(means.clone(), EVAL_COLOUR.stroke_width(2)).point_size(3))
        .context("drawing evaluation means")?
        .label("evaluation mean (greedy)")
        .legend(line_swatch(EVAL_COLOUR.stroke_width(2)));
    Ok(())
}

/// The solved threshold as a dashed line across the whole x range.
fn draw_solved_threshold(
    chart: &mut Chart<'_, '_>,
    x_max: f64,
    threshold: f64,
) -> anyhow::Result<()> {
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, threshold), (x_max, threshold)],
            8,
            5,
            SOLVED_COLOUR.stroke_width(2),
        ))
        .context("drawing the solved threshold")?
        .label(format!("solved ({threshold})"))
        .legend(line_swatch(SOLVED_COLOUR.stroke_width(2)));
    Ok(())
}

/// Trailing mean over up to `window` values ending at each index.
fn moving_average(values: &[f64], window: usize) -> Vec<f64> {
    let window = window.max(1);
    let mut sum = 0.0;
    values
        .iter()
        .enumerate()
        .map(|(i, &value)| {
            sum += value;
            if i >= window {
                sum -= values[i - window];
            }
            sum / (i + 1).min(window) as f64
        })
        .collect()
}

/// Step-axis labels like "50k" and "1.2M" instead of long digit strings (and never "5000.0").
pub fn format_steps(step: f64) -> String {
    if step >= 1e6 {
        format!("{:.1}M", step / 1e6)
    } else if step >= 1e3 {
        format!("{:.0}k", step / 1e3)
    } else {
        format!("{step:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{CartPole, Dynamics};

    #[test]
    fn full_curve_has_every_series_and_labels() -> anyhow::Result<()> {
        let train: Vec<(u64, f64)> = (1..=200)
            .map(|i| (i * 250, (i as f64 * 2.5).min(500.0)))
            .collect();
        let eval: Vec<(u64, f64, f64)> = (1..=10)
            .map(|i| (i * 5000, i as f64 * 48.0, 20.0))
            .collect();
        let svg = learning_curve_svg(&train, &eval, "DQN on CartPole-v1", &CartPole::SPEC, 500)?;
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("DQN on CartPole-v1"));
        for label in [
            "env steps",
            "return",
            "solved (475)",
            "evaluation mean",
            "training episode return",
        ] {
            assert!(svg.contains(label), "missing {label}");
        }
        // Raw line, moving average, eval means and the dashed threshold's segments
        // plus the four legend swatches that are paths.
        assert!(
            svg.matches("<polyline").count() >= 6,
            "{} polylines",
            svg.matches("<polyline").count()
        );
        assert!(svg.contains("<polygon"), "the std band is missing");
        assert!(svg.contains("<circle"), "evaluation markers are missing");
        Ok(())
    }

    #[test]
    fn empty_run_still_plots_axes_and_threshold() -> anyhow::Result<()> {
        let svg = learning_curve_svg(&[], &[], "no data yet", &CartPole::SPEC, 500)?;
        assert!(svg.contains("no data yet") && svg.contains("solved (475)"));
        assert!(!svg.contains("evaluation mean"));
        let train_only = learning_curve_svg(
            &[(10, 9.0), (30, f64::NAN)],
            &[],
            "train only",
            &CartPole::SPEC,
            500,
        )?;
        assert!(train_only.contains("training episode return") && !train_only.contains("<polygon"));
        Ok(())
    }

    #[test]
    fn the_return_axis_spans_the_runs_time_limit() -> anyhow::Result<()> {
        use crate::env::Dynamics;
        let mountain_car = crate::env::MountainCar::SPEC;
        let eval = [(1000, -1000.0, 0.0), (2000, -1000.0, 0.0)];
        let registered = learning_curve_svg(&[], &eval, "200 steps", &mountain_car, 200)?;
        let longer = learning_curve_svg(&[], &eval, "1000 steps", &mountain_car, 1000)?;
        // Tick labels are text elements of their own lines.
        assert!(!registered.contains("\n-1000\n"), "{registered}");
        assert!(longer.contains("\n-1000\n"), "{longer}");
        Ok(())
    }

    #[test]
    fn moving_average_is_trailing() {
        assert_eq!(
            moving_average(&[2.0, 4.0, 6.0, 8.0], 2),
            vec![2.0, 3.0, 5.0, 7.0]
        );
        assert!(moving_average(&[], 20).is_empty());
    }

    #[test]
    fn step_labels_are_short() {
        assert_eq!(format_steps(500.0), "500");
        assert_eq!(format_steps(50_000.0), "50k");
        assert_eq!(format_steps(1_250_000.0), "1.2M");
    }
}

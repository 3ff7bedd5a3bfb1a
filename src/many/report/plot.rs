//! learning_curves.svg: a row per environment, with per group of it the IQM of periodic
//! evaluation returns across runs against env steps with its bootstrap band, and the
//! performance profile of the final returns (the fraction of runs ending above each return
//! tau).

use std::path::Path;

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Environment, Group, Report};
use crate::artifacts::plot::{draw_legend, format_steps, line_swatch};
use crate::many::stats::{self, Bootstrap, Estimate, Statistic};
use crate::platform::atomic::write_bytes_atomic;

/// File name of the plot inside the report directory.
pub const LEARNING_CURVES: &str = "learning_curves.svg";
/// Replicates per point of a band: a curve has many points, and a band is a picture.
const BAND_REPS: usize = 2_000;
/// The size of one environment's row.
const SIZE: (u32, u32) = (1400, 560);
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// The IQM across a group's runs of its evaluation return at each env step any run
/// evaluated at; a run that stopped early (solved) counts with its last evaluation.
fn iqm_curve(group: &Group, bootstrap: &Bootstrap) -> Result<Vec<(f64, Estimate)>> {
    let mut points = Vec::new();
    for (step, values) in values_at_steps(group.curves()) {
        if !values.is_empty() {
            points.push((
                step as f64,
                stats::bootstrap_ci(&values, Statistic::Iqm, bootstrap)?,
            ));
        }
    }
    Ok(points)
}

/// Each env step any of `curves` has a point at, in order, with the finite value each curve
/// holds there: that of its last point up to the step, taking its points in file order up to
/// the first one past the step. One cursor per curve only moves forward, since the points
/// taken grow with the step: linear in the points, where a scan from the start for every
/// step made a report of long runs quadratic.
fn values_at_steps(curves: &[Vec<(u64, f64)>]) -> Vec<(u64, Vec<f64>)> {
    let mut steps: Vec<u64> = curves
        .iter()
        .flat_map(|c| c.iter().map(|&(s, _)| s))
        .collect();
    steps.sort_unstable();
    steps.dedup();
    let mut taken = vec![0; curves.len()];
    steps
        .into_iter()
        .map(|step| {
            let values = curves
                .iter()
                .zip(&mut taken)
                .filter_map(|(curve, taken)| {
                    while curve.get(*taken).is_some_and(|&(s, _)| s <= step) {
                        *taken += 1;
                    }
                    taken.checked_sub(1).map(|last| curve[last].1)
                })
                .filter(|v| v.is_finite())
                .collect();
            (step, values)
        })
        .collect()
}

/// The returns the performance profile spans: those of the runs, with a margin, so that the
/// curves fill the panel instead of a corner of the environment's range `returns` (the span
/// when no run has a score).
fn profile_range(scores: impl Iterator<Item = f64>, returns: (f64, f64)) -> (f64, f64) {
    let (lo, hi) = scores
        .filter(|s| s.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(s), hi.max(s))
        });
    if lo > hi {
        return returns;
    }
    let margin = ((hi - lo) * 0.05).max(5.0);
    (lo - margin, hi + margin)
}

/// The top of the return axis: the best return of the environment and 4% of its range above
/// it, so that the best return stays visible.
fn return_top((least, most): (f64, f64)) -> f64 {
    most + 0.04 * (most - least)
}

/// Draws the plot, a row per environment, and writes it into `dir`.
pub(super) fn write(report: &Report, dir: &Path) -> Result<()> {
    let bootstrap = Bootstrap {
        reps: report.reps.min(BAND_REPS),
        confidence: report.confidence,
        seed: report.seed,
    };
    let several = report.environments.len() > 1;
    let rows = report
        .environments
        .iter()
        .map(|env| Row::of(report, env, several, &bootstrap))
        .collect::<Result<Vec<_>>>()?;
    // At most one row per environment qnet has, so the count fits.
    let height = SIZE.1 * rows.len().max(1) as u32;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, height)).into_drawing_area();
        root.fill(&WHITE).context("clearing the plot")?;
        for (row, area) in rows.iter().zip(root.split_evenly((rows.len(), 1))) {
            let (left, right) = area.split_horizontally(SIZE.0 * 3 / 5);
            draw_curves(&left, row)?;
            draw_profiles(&right, row)?;
        }
        root.present().context("finishing the SVG")?;
    }
    write_bytes_atomic(&dir.join(LEARNING_CURVES), svg.as_bytes())
}

/// One environment's row of the plot: its groups' curves and their performance profiles.
struct Row<'r> {
    /// What the captions start with: the environment, when the plot has several.
    label: String,
    /// The least and the most an episode of the environment can return.
    returns: (f64, f64),
    /// The environment's groups.
    groups: Vec<&'r Group>,
    /// Each group's IQM curve.
    curves: Vec<Vec<(f64, Estimate)>>,
    /// Their performance profiles.
    profiles: Profiles,
}

impl<'r> Row<'r> {
    fn of(
        report: &'r Report,
        env: &'r Environment,
        several: bool,
        bootstrap: &Bootstrap,
    ) -> Result<Self> {
        let groups: Vec<&Group> = report.groups_of(&env.env).collect();
        let curves = groups
            .iter()
            .map(|g| iqm_curve(g, bootstrap))
            .collect::<Result<Vec<_>>>()?;
        // Where the environment's range of returns is not known, the runs' own spans it.
        let returns = env.returns.unwrap_or_else(|| {
            let seen = groups
                .iter()
                .flat_map(|g| g.scores.final_return.iter().copied())
                .chain(curves.iter().flatten().flat_map(|(_, e)| [e.lo, e.hi]))
                .chain(env.threshold);
            let (lo, hi) = profile_range(seen, (0.0, 1.0));
            if lo < hi {
                (lo, hi)
            } else {
                (lo - 1.0, lo + 1.0)
            }
        });
        let profiles = Profiles::of(&groups, returns, bootstrap)?;
        Ok(Self {
            label: if several {
                format!("{}: ", env.env.as_str())
            } else {
                String::new()
            },
            returns,
            groups,
            curves,
            profiles,
        })
    }
}

/// The performance profiles of the groups' final returns, on one grid of returns tau.
struct Profiles {
    /// The ends of the tau axis.
    range: (f64, f64),
    /// The returns tau, 101 of them across `range`.
    taus: Vec<f64>,
    /// Per group, the fraction of runs above each tau; `None` for a group without
    /// finished runs.
    per_group: Vec<Option<Vec<Estimate>>>,
}

impl Profiles {
    /// The profiles of `groups`, of an environment whose returns span `returns`.
    fn of(groups: &[&Group], returns: (f64, f64), bootstrap: &Bootstrap) -> Result<Self> {
        let (tau_lo, tau_hi) = profile_range(
            groups
                .iter()
                .flat_map(|g| g.scores.final_return.iter().copied()),
            returns,
        );
        let taus: Vec<f64> = (0..=100)
            .map(|i| tau_lo + (tau_hi - tau_lo) * f64::from(i) / 100.0)
            .collect();
        let per_group = groups
            .iter()
            .map(|g| match g.stats {
                Some(_) => stats::performance_profile_ci(&g.scores.final_return, &taus, bootstrap)
                    .map(Some),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            range: (tau_lo, tau_hi),
            taus,
            per_group,
        })
    }
}

/// An interval band as a closed polygon: out along the upper bounds, back along the lower.
fn band<'e>(
    points: impl DoubleEndedIterator<Item = (f64, &'e Estimate)> + Clone,
) -> Vec<(f64, f64)> {
    points
        .clone()
        .map(|(x, e)| (x, e.hi))
        .chain(points.rev().map(|(x, e)| (x, e.lo)))
        .collect()
}

/// The left panel: each group's IQM curve over its band, with the legend naming the groups.
fn draw_curves(area: &DrawingArea<SVGBackend<'_>, Shift>, row: &Row<'_>) -> Result<()> {
    let x_max = row
        .curves
        .iter()
        .flatten()
        .map(|(step, _)| *step)
        .fold(1000.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{}Evaluation return: IQM across runs (band: 95% CI)",
                row.label
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, row.returns.0..return_top(row.returns))
        .context("laying out the curves")?;
    chart
        .configure_mesh()
        .x_desc("env steps")
        .x_label_formatter(&|step| format_steps(*step))
        .y_desc("greedy return")
        .bold_line_style(BLACK.mix(0.08))
        .light_line_style(TRANSPARENT)
        .draw()
        .context("drawing the axes")?;
    for (index, (group, curve)) in row.groups.iter().zip(&row.curves).enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        if curve.is_empty() {
            continue;
        }
        chart
            .draw_series(std::iter::once(Polygon::new(
                band(curve.iter().map(|(s, e)| (*s, e))),
                colour.mix(0.15).filled(),
            )))
            .context("drawing a band")?;
        chart
            .draw_series(LineSeries::new(
                curve.iter().map(|(s, e)| (*s, e.point)),
                colour.stroke_width(2),
            ))
            .context("drawing a curve")?
            .label(group.name.clone())
            .legend(line_swatch(colour.stroke_width(2)));
    }
    draw_legend(&mut chart)
}

/// The right panel: each group's performance profile over its band.
fn draw_profiles(area: &DrawingArea<SVGBackend<'_>, Shift>, row: &Row<'_>) -> Result<()> {
    let profiles = &row.profiles;
    let (tau_lo, tau_hi) = profiles.range;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{}Performance profile of final returns", row.label),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(tau_lo..tau_hi, 0.0..1.05)
        .context("laying out the profile")?;
    chart
        .configure_mesh()
        .x_desc("final return tau")
        .y_desc("fraction of runs with return > tau")
        .bold_line_style(BLACK.mix(0.08))
        .light_line_style(TRANSPARENT)
        .draw()
        .context("drawing the profile axes")?;
    let taus = &profiles.taus;
    for (index, profile) in profiles.per_group.iter().enumerate() {
        let Some(profile) = profile else { continue };
        let colour = PALETTE[index % PALETTE.len()];
        chart
            .draw_series(std::iter::once(Polygon::new(
                band(taus.iter().copied().zip(profile)),
                colour.mix(0.15).filled(),
            )))
            .context("drawing a profile band")?;
        chart
            .draw_series(LineSeries::new(
                taus.iter().zip(profile).map(|(t, e)| (*t, e.point)),
                colour.stroke_width(2),
            ))
            .context("drawing a profile")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values at each step as the curves define them, scanning each curve from its start.
    fn values_at_steps_by_scanning(curves: &[Vec<(u64, f64)>]) -> Vec<(u64, Vec<f64>)> {
        let mut steps: Vec<u64> = curves.iter().flatten().map(|&(s, _)| s).collect();
        steps.sort_unstable();
        steps.dedup();
        steps
            .into_iter()
            .map(|step| {
                let values = curves
                    .iter()
                    .filter_map(|curve| curve.iter().take_while(|&&(s, _)| s <= step).last())
                    .map(|&(_, value)| value)
                    .filter(|v| v.is_finite())
                    .collect();
                (step, values)
            })
            .collect()
    }

    #[test]
    fn each_step_takes_each_curves_last_value_up_to_it() {
        let curves = vec![
            vec![(10, 1.0), (20, 2.0), (30, f64::NAN), (40, 4.0)],
            // Stopped early (solved): its last value holds on.
            vec![(20, 5.0)],
            // A step repeated, and one out of order (a file appended to by hand).
            vec![(5, 7.0), (20, 8.0), (20, 9.0), (15, 6.0), (50, 10.0)],
            Vec::new(),
        ];
        let expected: Vec<(u64, Vec<f64>)> = vec![
            (5, vec![7.0]),
            (10, vec![1.0, 7.0]),
            (15, vec![1.0, 7.0]),
            (20, vec![2.0, 5.0, 6.0]),
            (30, vec![5.0, 6.0]),
            (40, vec![4.0, 5.0, 6.0]),
            (50, vec![4.0, 5.0, 10.0]),
        ];
        assert_eq!(values_at_steps(&curves), expected);
        assert_eq!(values_at_steps_by_scanning(&curves), expected);
    }

    #[test]
    fn long_curves_give_what_a_scan_from_the_start_gives() {
        // Interleaved steps, gaps and repeats over several runs of different lengths.
        let curves: Vec<Vec<(u64, f64)>> = (1..=4u64)
            .map(|run| {
                (0..500u64)
                    .map(|i| (i * run * 7 % 1000 + i, (i * 31 % 97) as f64 - run as f64))
                    .collect()
            })
            .collect();
        assert_eq!(
            values_at_steps(&curves),
            values_at_steps_by_scanning(&curves)
        );
    }

    #[test]
    fn the_profile_spans_the_runs_returns() {
        assert_eq!(
            profile_range([480.0, 500.0, 490.0].into_iter(), (0.0, 500.0)),
            (475.0, 505.0)
        );
        assert_eq!(
            profile_range([100.0, 300.0].into_iter(), (0.0, 500.0)),
            (90.0, 310.0)
        );
        assert_eq!(
            profile_range([500.0, f64::NAN].into_iter(), (0.0, 500.0)),
            (495.0, 505.0)
        );
        assert_eq!(
            profile_range(std::iter::empty(), (-500.0, 0.0)),
            (-500.0, 0.0)
        );
    }
}

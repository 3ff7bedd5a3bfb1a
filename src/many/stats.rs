//! Statistics of `qnet report`: aggregates of many runs' scores with bootstrap confidence
//! intervals, following rliable (Agarwal et al., NeurIPS 2021, "Deep RL at the edge of the
//! statistical precipice"; PyPI `rliable` 1.2.0, whose bootstrap is `arch.bootstrap`).
//!
//! Everything is for one task (CartPole): a group is one score per run. rliable's
//! "stratified" bootstrap resamples the runs of each task with replacement, which for one
//! task is resampling the group's `n` runs with replacement; two groups compared by the
//! probability of improvement are resampled independently (rliable's
//! `StratifiedIndependentBootstrap`).
//!
//! What is matched, and how (`tests/python/check_rliable.py` recomputes it all with rliable):
//! - `iqm` is `scipy.stats.trim_mean(scores, 0.25)`: `cut = floor(0.25 * n)` runs are dropped
//!   at each end of the sorted scores and the other `n - 2 * cut` are averaged (`n < 4` keeps
//!   every run).
//! - [`median`] is `numpy.median` of the runs (the two middle values averaged). rliable's
//!   `aggregate_median` is the median over *tasks* of per-task means, which for one task is
//!   the mean, so it is not what is used here.
//! - `probability_of_improvement` is the Mann–Whitney statistic `U / (n m)` that rliable gets
//!   from `scipy.stats.mannwhitneyu`: a pair with `x > y` counts 1 and a tie counts 1/2.
//! - A performance profile is the fraction of runs scoring strictly above each `tau`
//!   (rliable's `np.mean(scores > tau)`); the success rate is the fraction at or above a
//!   threshold.
//! - Intervals are arch's `conf_int(method="percentile")`: with `alpha = (1 - confidence) / 2`,
//!   the `100 alpha` and `100 (1 - alpha)` percentiles of the replicate statistics, by
//!   `numpy.percentile`'s default linear interpolation (the order statistic at
//!   `(reps - 1) q`, interpolated between its neighbours).
//!
//! Replicates draw run indices from a `Pcg64` seeded with [`Bootstrap::seed`], so a report is
//! reproducible; the numbers differ from rliable's (numpy's generator) only by Monte Carlo
//! error. One replicate allocates nothing.

use std::fmt;

use rand::{Rng, RngExt, SeedableRng};
use rand_pcg::Pcg64;
use serde::Serialize;

/// Why a statistic could not be computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StatsError {
    /// A group has no scores.
    Empty,
    /// A score is NaN or infinite.
    NonFinite {
        /// Its position in the group.
        index: usize,
        /// The score.
        value: f64,
    },
    /// A threshold (a success threshold or a profile's `tau`) is NaN.
    NanThreshold,
    /// The confidence level is not strictly between 0 and 1.
    Confidence(f64),
    /// A bootstrap needs at least one replicate.
    ZeroReps,
    /// More replicates than a bootstrap may keep in memory (33,554,432).
    TooManyReps(usize),
}

/// Memory the replicates of one interval may take: all are kept to take percentiles.
const MAX_REPLICATE_BYTES: usize = 256 << 20;
/// Most replicates of a bootstrap: [`MAX_REPLICATE_BYTES`] of `f64`s, 33,554,432 (rliable
/// uses 50,000).
const MAX_REPS: usize = MAX_REPLICATE_BYTES / std::mem::size_of::<f64>();

impl fmt::Display for StatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatsError::Empty => write!(f, "a group of runs has no scores"),
            StatsError::NonFinite { index, value } => {
                write!(f, "score {index} is {value}, not a finite number")
            }
            StatsError::NanThreshold => write!(f, "a score threshold is NaN"),
            StatsError::Confidence(c) => {
                write!(f, "confidence level {c} is not strictly between 0 and 1")
            }
            StatsError::ZeroReps => write!(f, "a bootstrap needs at least one replicate"),
            StatsError::TooManyReps(reps) => write!(
                f,
                "at most {MAX_REPS} bootstrap replicates (an interval keeps every replicate, 8 \
                 bytes each, to take percentiles: {reps} would take {:.1} GiB; rliable uses \
                 50000)",
                *reps as f64 * 8.0 / f64::from(1u32 << 30)
            ),
        }
    }
}

impl std::error::Error for StatsError {}

/// The settings of a percentile bootstrap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bootstrap {
    /// Number of replicates (rliable: 50,000 for intervals, 2,000 for profiles).
    pub reps: usize,
    /// Coverage of the interval, strictly between 0 and 1.
    pub confidence: f64,
    /// Seed of the `Pcg64` that draws the resamples.
    pub seed: u64,
}

impl Default for Bootstrap {
    /// rliable's defaults: 50,000 replicates, 95% intervals; seed 0.
    fn default() -> Self {
        Bootstrap {
            reps: 50_000,
            confidence: 0.95,
            seed: 0,
        }
    }
}

/// A point estimate and its bootstrap confidence interval `[lo, hi]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// The statistic of the scores themselves.
    pub point: f64,
    /// Lower end of the interval.
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
}

/// An aggregate of one group's scores, for [`bootstrap_ci`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    /// See `mean`.
    Mean,
    /// See [`median`].
    Median,
    /// See `iqm`.
    Iqm,
    /// See `success_rate`.
    SuccessRate {
        /// A run succeeds when its score is at least this.
        threshold: f64,
    },
}

impl Statistic {
    /// Refuses a NaN threshold.
    fn check(self) -> Result<(), StatsError> {
        match self {
            Statistic::SuccessRate { threshold } if threshold.is_nan() => {
                Err(StatsError::NanThreshold)
            }
            _ => Ok(()),
        }
    }

    /// The statistic of `buf` (non-empty, finite), which it may reorder.
    fn eval(self, buf: &mut [f64]) -> f64 {
        match self {
            Statistic::Mean => mean_of(buf),
            Statistic::Median => median_in_place(buf),
            Statistic::Iqm => iqm_in_place(buf),
            Statistic::SuccessRate { threshold } => {
                buf.iter().filter(|&&s| s >= threshold).count() as f64 / buf.len() as f64
            }
        }
    }

    /// The statistic of `scores`, checked.
    fn of(self, scores: &[f64]) -> Result<f64, StatsError> {
        check_scores(scores)?;
        self.check()?;
        Ok(self.eval(&mut scores.to_vec()))
    }
}

/// Mean of the runs' scores (`numpy.mean`).
#[cfg(test)]
fn mean(scores: &[f64]) -> Result<f64, StatsError> {
    Statistic::Mean.of(scores)
}

/// Median of the runs' scores (`numpy.median`: the two middle values averaged).
pub fn median(scores: &[f64]) -> Result<f64, StatsError> {
    Statistic::Median.of(scores)
}

/// Interquartile mean: `scipy.stats.trim_mean(scores, 0.25)`, rliable's `aggregate_iqm`.
#[cfg(test)]
fn iqm(scores: &[f64]) -> Result<f64, StatsError> {
    Statistic::Iqm.of(scores)
}

/// Fraction of runs whose score is at least `threshold`.
#[cfg(test)]
fn success_rate(scores: &[f64], threshold: f64) -> Result<f64, StatsError> {
    Statistic::SuccessRate { threshold }.of(scores)
}

/// `statistic` of `scores` and its percentile bootstrap interval over resampled runs.
pub fn bootstrap_ci(
    scores: &[f64],
    statistic: Statistic,
    cfg: &Bootstrap,
) -> Result<Estimate, StatsError> {
    check_scores(scores)?;
    statistic.check()?;
    check_bootstrap(cfg)?;
    let mut buf = scores.to_vec();
    let point = statistic.eval(&mut buf);
    let mut rng = Pcg64::seed_from_u64(cfg.seed);
    let mut values = Vec::with_capacity(cfg.reps);
    for _ in 0..cfg.reps {
        for slot in buf.iter_mut() {
            *slot = scores[rng.random_range(0..scores.len())];
        }
        values.push(statistic.eval(&mut buf));
    }
    let (lo, hi) = percentile_interval(&mut values, cfg.confidence);
    Ok(Estimate { point, lo, hi })
}

/// P(X > Y) for a random run of each group, ties counting 1/2 (rliable's Mann–Whitney form).
#[cfg(test)]
fn probability_of_improvement(x: &[f64], y: &[f64]) -> Result<f64, StatsError> {
    check_scores(x)?;
    check_scores(y)?;
    Ok(MannWhitney::new(x, y).probability())
}

/// `probability_of_improvement` with its interval, `x` and `y` resampled independently.
pub fn probability_of_improvement_ci(
    x: &[f64],
    y: &[f64],
    cfg: &Bootstrap,
) -> Result<Estimate, StatsError> {
    check_scores(x)?;
    check_scores(y)?;
    check_bootstrap(cfg)?;
    let mut mw = MannWhitney::new(x, y);
    let point = mw.probability();
    let mut rng = Pcg64::seed_from_u64(cfg.seed);
    let mut values = Vec::with_capacity(cfg.reps);
    for _ in 0..cfg.reps {
        values.push(mw.resampled(&mut rng));
    }
    let (lo, hi) = percentile_interval(&mut values, cfg.confidence);
    Ok(Estimate { point, lo, hi })
}

/// Performance profile: for each `tau`, the fraction of runs scoring strictly above it.
#[cfg(test)]
fn performance_profile(scores: &[f64], taus: &[f64]) -> Result<Vec<f64>, StatsError> {
    let profile = Profile::new(scores, taus)?;
    Ok(profile.fractions(&mut profile.all_once()).collect())
}

/// `performance_profile` with a pointwise bootstrap band; all `tau`s share each resample.
pub fn performance_profile_ci(
    scores: &[f64],
    taus: &[f64],
    cfg: &Bootstrap,
) -> Result<Vec<Estimate>, StatsError> {
    let profile = Profile::new(scores, taus)?;
    check_bootstrap(cfg)?;
    let n = scores.len();
    let points: Vec<f64> = profile.fractions(&mut profile.all_once()).collect();
    // `reps * taus.len()` values: rliable's 2,000 replicates keep that small.
    let mut columns: Vec<Vec<f64>> = taus.iter().map(|_| Vec::with_capacity(cfg.reps)).collect();
    let mut counts = vec![0; n + 1];
    let mut rng = Pcg64::seed_from_u64(cfg.seed);
    for _ in 0..cfg.reps {
        counts.fill(0);
        for _ in 0..n {
            counts[rng.random_range(0..n)] += 1;
        }
        for (column, value) in columns.iter_mut().zip(profile.fractions(&mut counts)) {
            column.push(value);
        }
    }
    Ok(points
        .into_iter()
        .zip(columns.iter_mut())
        .map(|(point, column)| {
            let (lo, hi) = percentile_interval(column, cfg.confidence);
            Estimate { point, lo, hi }
        })
        .collect())
}

/// Refuses an empty group or a non-finite score.
fn check_scores(scores: &[f64]) -> Result<(), StatsError> {
    if scores.is_empty() {
        return Err(StatsError::Empty);
    }
    match scores.iter().position(|s| !s.is_finite()) {
        Some(index) => Err(StatsError::NonFinite {
            index,
            value: scores[index],
        }),
        None => Ok(()),
    }
}

/// Refuses zero replicates or more than 33,554,432 (256 MiB of them), before any is
/// allocated.
pub fn check_reps(reps: usize) -> Result<(), StatsError> {
    match reps {
        0 => Err(StatsError::ZeroReps),
        n if n > MAX_REPS => Err(StatsError::TooManyReps(n)),
        _ => Ok(()),
    }
}

/// Refuses a bad replicate count or a confidence level outside (0, 1).
fn check_bootstrap(cfg: &Bootstrap) -> Result<(), StatsError> {
    check_reps(cfg.reps)?;
    if !(cfg.confidence > 0.0 && cfg.confidence < 1.0) {
        return Err(StatsError::Confidence(cfg.confidence));
    }
    Ok(())
}

/// Arithmetic mean of a non-empty slice.
fn mean_of(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// `numpy.median` of a non-empty slice, which it reorders.
fn median_in_place(buf: &mut [f64]) -> f64 {
    let (n, mid) = (buf.len(), buf.len() / 2);
    let (left, upper, _) = buf.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        return upper;
    }
    let lower = left.iter().copied().max_by(f64::total_cmp).unwrap_or(upper);
    (lower + upper) / 2.0
}

/// `scipy.stats.trim_mean(buf, 0.25)` of a non-empty slice, which it reorders.
fn iqm_in_place(buf: &mut [f64]) -> f64 {
    let n = buf.len();
    // scipy: lowercut = int(0.25 * n), exact in f64 for any slice length, so n / 4.
    let cut = n / 4;
    if cut > 0 {
        // Two partial sorts leave the `cut` smallest in buf[..cut] and the `cut` largest in
        // buf[n - cut..]. Measured in a 50k-replicate bootstrap: as fast as a full sort up to
        // n = 30 runs, 1.4x faster at 50 and 1.6x at 100.
        buf.select_nth_unstable_by(cut, f64::total_cmp);
        buf[cut..].select_nth_unstable_by(n - 2 * cut - 1, f64::total_cmp);
    }
    mean_of(&buf[cut..n - cut])
}

/// The `[lo, hi]` percentile interval of bootstrap replicates, which it reorders.
fn percentile_interval(values: &mut [f64], confidence: f64) -> (f64, f64) {
    let alpha = (1.0 - confidence) / 2.0;
    // arch passes percentiles `100 * alpha` to numpy, which divides them by 100 again.
    let lo = quantile_linear(values, (100.0 * alpha) / 100.0);
    let hi = quantile_linear(values, (100.0 * (1.0 - alpha)) / 100.0);
    (lo, hi)
}

/// `numpy.quantile(values, q)` (method "linear") of a non-empty slice, which it reorders.
fn quantile_linear(values: &mut [f64], q: f64) -> f64 {
    let last = values.len() - 1;
    let virtual_index = last as f64 * q;
    if virtual_index >= last as f64 {
        return values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    }
    let below = virtual_index.floor().max(0.0);
    let gamma = virtual_index - below;
    let (_, a, right) = values.select_nth_unstable_by(below as usize, f64::total_cmp);
    let a = *a;
    let b = right.iter().copied().min_by(f64::total_cmp).unwrap_or(a);
    // numpy's _lerp: from the nearer end, so gamma = 1 gives exactly b.
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// The Mann–Whitney statistic of two groups, by ranks into their pooled distinct scores.
struct MannWhitney {
    /// Rank of each `x` score among the pooled distinct scores.
    x_rank: Vec<usize>,
    /// Rank of each `y` score among the pooled distinct scores.
    y_rank: Vec<usize>,
    /// Per rank: the count of drawn `y`s, then `2 * (ys below) + (ys equal)`.
    half_wins: Vec<u64>,
}

impl MannWhitney {
    /// Ranks `x` and `y` (finite, non-empty) into their pooled distinct scores.
    fn new(x: &[f64], y: &[f64]) -> Self {
        let mut pooled: Vec<f64> = x.iter().chain(y).copied().collect();
        pooled.sort_unstable_by(f64::total_cmp);
        // `==` also merges -0.0 with 0.0, which `>` cannot tell apart either.
        pooled.dedup_by(|a, b| a == b);
        let rank = |s: &f64| pooled.partition_point(|p| p < s);
        MannWhitney {
            x_rank: x.iter().map(rank).collect(),
            y_rank: y.iter().map(rank).collect(),
            half_wins: vec![0; pooled.len()],
        }
    }

    /// `U / (n m)` of the groups themselves.
    fn probability(&mut self) -> f64 {
        let (n, m) = (self.x_rank.len(), self.y_rank.len());
        self.count_ys(0..m);
        Self::ratio(self.twice_u(0..n), n, m)
    }

    /// `U / (n m)` of one independent resample (with replacement) of each group.
    fn resampled<R: Rng>(&mut self, rng: &mut R) -> f64 {
        let (n, m) = (self.x_rank.len(), self.y_rank.len());
        self.count_ys((0..m).map(|_| rng.random_range(0..m)));
        let twice_u = self.twice_u((0..n).map(|_| rng.random_range(0..n)));
        Self::ratio(twice_u, n, m)
    }

    /// Sets `half_wins` for the `y` runs `ys` (indices, repeats allowed).
    fn count_ys(&mut self, ys: impl Iterator<Item = usize>) {
        self.half_wins.fill(0);
        for j in ys {
            self.half_wins[self.y_rank[j]] += 1;
        }
        let mut below = 0;
        for slot in self.half_wins.iter_mut() {
            let equal = *slot;
            *slot = 2 * below + equal;
            below += equal;
        }
    }

    /// `2 U` of the `x` runs `xs` against the `y` runs last given to `count_ys`.
    fn twice_u(&self, xs: impl Iterator<Item = usize>) -> u64 {
        xs.map(|i| self.half_wins[self.x_rank[i]]).sum()
    }

    /// `U / (n m)` from `2 U`: one rounding, as scipy's `U / (n * m)`.
    fn ratio(twice_u: u64, n: usize, m: usize) -> f64 {
        twice_u as f64 / (2 * n as u64 * m as u64) as f64
    }
}

/// The runs of a group sorted, and where each `tau` of a profile falls among them.
struct Profile {
    /// Per `tau`: the number of sorted scores at or below it (those above start here).
    first_above: Vec<usize>,
    /// Number of runs.
    n: usize,
}

impl Profile {
    /// Checks `scores` and `taus` and locates each `tau`.
    fn new(scores: &[f64], taus: &[f64]) -> Result<Self, StatsError> {
        check_scores(scores)?;
        if taus.iter().any(|t| t.is_nan()) {
            return Err(StatsError::NanThreshold);
        }
        let mut sorted = scores.to_vec();
        sorted.sort_unstable_by(f64::total_cmp);
        let first_above = taus
            .iter()
            .map(|&t| sorted.partition_point(|&s| s <= t))
            .collect();
        Ok(Profile {
            first_above,
            n: scores.len(),
        })
    }

    /// Draw counts of the group itself: every run once (and the trailing 0).
    fn all_once(&self) -> Vec<usize> {
        let mut counts = vec![1; self.n + 1];
        counts[self.n] = 0;
        counts
    }

    /// Per `tau`, the fraction of runs above it; `counts` (length `n + 1`, last 0) says how
    /// often each sorted run was drawn and is turned into suffix sums.
    fn fractions<'a>(&'a self, counts: &'a mut [usize]) -> impl Iterator<Item = f64> + 'a {
        for i in (0..self.n).rev() {
            counts[i] += counts[i + 1];
        }
        let counts = &*counts;
        self.first_above
            .iter()
            .map(move |&k| counts[k] as f64 / self.n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(reps: usize, seed: u64) -> Bootstrap {
        Bootstrap {
            reps,
            confidence: 0.95,
            seed,
        }
    }

    /// CartPole-like returns: a deterministic spread over [0, 500], many runs at exactly 500.
    fn returns(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Pcg64::seed_from_u64(seed);
        (0..n)
            .map(|_| match rng.random::<f64>() {
                u if u < 0.4 => 500.0,
                u => (u * 500.0).round(),
            })
            .collect()
    }

    #[test]
    fn iqm_trims_floor_of_a_quarter_at_each_end() {
        // n = 4: cut 1, mean of the middle two.
        assert_eq!(iqm(&[4.0, 1.0, 3.0, 2.0]), Ok(2.5));
        // n = 5: cut 1 (int(1.25)), mean of the middle three.
        assert_eq!(iqm(&[100.0, 2.0, 1.0, 4.0, 3.0]), Ok(3.0));
        // n = 8: cut 2, mean of sorted[2..6] = 3, 4, 5, 6.
        assert_eq!(iqm(&[8.0, 1.0, 7.0, 2.0, 6.0, 3.0, 5.0, 4.0]), Ok(4.5));
        // n = 10: cut 2 (int(2.5)), mean of sorted[2..8] = 30, 40, 50, 60, 70, 500.
        let scores = [500.0, 10.0, 70.0, 0.0, 60.0, 500.0, 50.0, 40.0, 30.0, 500.0];
        assert_eq!(iqm(&scores), Ok(750.0 / 6.0));
    }

    #[test]
    fn iqm_of_fewer_than_four_runs_is_the_mean() {
        assert_eq!(iqm(&[7.0]), Ok(7.0));
        assert_eq!(iqm(&[1.0, 2.0]), Ok(1.5));
        assert_eq!(iqm(&[1.0, 2.0, 9.0]), Ok(4.0));
    }

    #[test]
    fn median_and_mean_follow_numpy() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Ok(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Ok(2.5));
        assert_eq!(median(&[500.0]), Ok(500.0));
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Ok(3.0));
    }

    #[test]
    fn success_rate_counts_scores_at_or_above_the_threshold() {
        assert_eq!(success_rate(&[475.0, 474.9, 500.0, 0.0], 475.0), Ok(0.5));
        assert_eq!(
            success_rate(&[1.0], f64::NAN),
            Err(StatsError::NanThreshold)
        );
    }

    #[test]
    fn quantiles_interpolate_linearly_like_numpy() {
        // numpy.percentile(range(1, 11), [2.5, 97.5]) == [1.225, 9.775]
        let mut values: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let (lo, hi) = percentile_interval(&mut values, 0.95);
        assert!((lo - 1.225).abs() < 1e-12 && (hi - 9.775).abs() < 1e-12);
        assert_eq!(quantile_linear(&mut [5.0], 0.025), 5.0);
        assert_eq!(quantile_linear(&mut [2.0, 1.0], 1.0), 2.0);
    }

    #[test]
    fn probability_of_improvement_hand_cases() {
        let poi = probability_of_improvement;
        assert_eq!(poi(&[3.0, 4.0], &[1.0, 2.0]), Ok(1.0));
        assert_eq!(poi(&[1.0, 2.0], &[3.0, 4.0]), Ok(0.0));
        assert_eq!(poi(&[1.0, 5.0, 3.0], &[3.0, 1.0, 5.0]), Ok(0.5));
        assert_eq!(poi(&[500.0; 4], &[500.0; 7]), Ok(0.5));
        // 1<2, 1<3, 2=2 (1/2), 2<3: 0.5 / 4.
        assert_eq!(poi(&[1.0, 2.0], &[2.0, 3.0]), Ok(0.125));
        // 500 vs {500, 300}: tie, win (twice); 400 vs {500, 300}: loss, win: (3 + 2/2) / 6.
        assert_eq!(poi(&[500.0, 500.0, 400.0], &[500.0, 300.0]), Ok(4.0 / 6.0));
        assert_eq!(poi(&[-0.0], &[0.0]), Ok(0.5));
    }

    #[test]
    fn resampled_mann_whitney_matches_pair_counting() {
        let (x, y) = (returns(13, 1), returns(17, 2));
        let mut mw = MannWhitney::new(&x, &y);
        let mut rng = Pcg64::seed_from_u64(3);
        let mut twin = rng.clone();
        for _ in 0..200 {
            let fast = mw.resampled(&mut rng);
            let ys: Vec<f64> = (0..y.len())
                .map(|_| y[twin.random_range(0..y.len())])
                .collect();
            let xs: Vec<f64> = (0..x.len())
                .map(|_| x[twin.random_range(0..x.len())])
                .collect();
            let half_wins: usize = xs
                .iter()
                .flat_map(|a| {
                    ys.iter()
                        .map(move |b| 2 * usize::from(a > b) + usize::from(a == b))
                })
                .sum();
            assert_eq!(fast, half_wins as f64 / (2 * xs.len() * ys.len()) as f64);
        }
    }

    #[test]
    fn interval_contains_the_point_and_shrinks_with_more_runs() {
        let width = |n: usize| {
            let scores = returns(n, 7);
            let e = bootstrap_ci(&scores, Statistic::Iqm, &cfg(5_000, 1)).unwrap();
            assert!(e.lo <= e.point && e.point <= e.hi, "{e:?} for n = {n}");
            e.hi - e.lo
        };
        let (w10, w100) = (width(10), width(100));
        assert!(w100 < w10, "width {w100} for 100 runs, {w10} for 10");
        let p = probability_of_improvement_ci(&returns(20, 1), &returns(20, 2), &cfg(5_000, 1))
            .unwrap();
        assert!(
            0.0 <= p.lo && p.lo <= p.point && p.point <= p.hi && p.hi <= 1.0,
            "{p:?}"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_interval() {
        let scores = returns(20, 3);
        for statistic in [
            Statistic::Mean,
            Statistic::Median,
            Statistic::Iqm,
            Statistic::SuccessRate { threshold: 475.0 },
        ] {
            let a = bootstrap_ci(&scores, statistic, &cfg(2_000, 9));
            assert_eq!(a, bootstrap_ci(&scores, statistic, &cfg(2_000, 9)));
        }
        let iqm_ci = |seed| bootstrap_ci(&scores, Statistic::Iqm, &cfg(2_000, seed));
        assert_ne!(iqm_ci(9), iqm_ci(10));
        let (x, y) = (returns(10, 4), returns(30, 5));
        let poi = |seed| probability_of_improvement_ci(&x, &y, &cfg(2_000, seed));
        assert_eq!(poi(9), poi(9));
    }

    #[test]
    fn identical_or_constant_groups_give_degenerate_intervals() {
        let solved = [500.0; 20];
        let e = bootstrap_ci(&solved, Statistic::Iqm, &cfg(1_000, 0)).unwrap();
        assert_eq!((e.point, e.lo, e.hi), (500.0, 500.0, 500.0));
        let p = probability_of_improvement_ci(&solved, &[500.0; 10], &cfg(1_000, 0)).unwrap();
        assert_eq!((p.point, p.lo, p.hi), (0.5, 0.5, 0.5));
        let one = bootstrap_ci(&[321.0], Statistic::Median, &cfg(100, 0)).unwrap();
        assert_eq!((one.point, one.lo, one.hi), (321.0, 321.0, 321.0));
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let ok = [1.0, 2.0];
        assert_eq!(iqm(&[]), Err(StatsError::Empty));
        assert_eq!(median(&[]), Err(StatsError::Empty));
        assert_eq!(mean(&[]), Err(StatsError::Empty));
        let nan = StatsError::NonFinite {
            index: 1,
            value: f64::INFINITY,
        };
        assert_eq!(mean(&[1.0, f64::INFINITY]), Err(nan));
        assert!(matches!(
            iqm(&[f64::NAN]),
            Err(StatsError::NonFinite { index: 0, .. })
        ));
        assert_eq!(
            bootstrap_ci(&[], Statistic::Mean, &cfg(10, 0)),
            Err(StatsError::Empty)
        );
        assert_eq!(
            bootstrap_ci(&ok, Statistic::Mean, &cfg(0, 0)),
            Err(StatsError::ZeroReps)
        );
        // Refused before the replicates are allocated (this many would take 37 GiB).
        assert_eq!(
            bootstrap_ci(&ok, Statistic::Mean, &cfg(5_000_000_000, 0)),
            Err(StatsError::TooManyReps(5_000_000_000))
        );
        assert_eq!(
            probability_of_improvement_ci(&ok, &ok, &cfg(MAX_REPS + 1, 0)),
            Err(StatsError::TooManyReps(MAX_REPS + 1))
        );
        assert_eq!(check_reps(MAX_REPS), Ok(()));
        for confidence in [0.0, 1.0, f64::NAN] {
            let bad = Bootstrap {
                confidence,
                ..cfg(10, 0)
            };
            assert!(matches!(
                bootstrap_ci(&ok, Statistic::Mean, &bad),
                Err(StatsError::Confidence(_))
            ));
        }
        assert_eq!(probability_of_improvement(&ok, &[]), Err(StatsError::Empty));
        assert_eq!(
            probability_of_improvement_ci(&[], &ok, &cfg(10, 0)),
            Err(StatsError::Empty)
        );
        assert_eq!(performance_profile(&[], &[0.0]), Err(StatsError::Empty));
        assert_eq!(
            performance_profile(&ok, &[f64::NAN]),
            Err(StatsError::NanThreshold)
        );
        assert!(!StatsError::Empty.to_string().is_empty());
    }

    #[test]
    fn profile_counts_scores_strictly_above_tau() {
        let scores = [0.0, 250.0, 500.0, 500.0];
        let profile = performance_profile(&scores, &[-1.0, 0.0, 250.0, 499.0, 500.0]).unwrap();
        assert_eq!(profile, vec![1.0, 0.75, 0.5, 0.5, 0.0]);
        assert_eq!(performance_profile(&scores, &[]), Ok(vec![]));
        let band = performance_profile_ci(&scores, &[0.0, 250.0, 500.0], &cfg(2_000, 1)).unwrap();
        let points: Vec<f64> = band.iter().map(|e| e.point).collect();
        assert_eq!(points, vec![0.75, 0.5, 0.0]);
        assert!(band
            .iter()
            .all(|e| 0.0 <= e.lo && e.lo <= e.hi && e.hi <= 1.0));
        assert_eq!((band[2].lo, band[2].hi), (0.0, 0.0));
    }
}

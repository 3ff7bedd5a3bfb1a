//! Reset distribution and seeding of CartPole-v1, one env (`Single<CartPole>`) and batched
//! (`Batch<CartPole>`).

use qnet::env::{env_seed, Batch, CartPole, Dynamics, EnvSpec, Single};

/// Floats per observation.
const CARTPOLE: &EnvSpec = &CartPole::SPEC;
const OBS_DIM: usize = CARTPOLE.obs_dim;

/// Plays one episode with a fixed action pattern and returns every state visited.
fn episode(seed: u64) -> Vec<[f64; 4]> {
    let mut env = Single::<CartPole>::new(seed);
    env.reset();
    let mut states = vec![env.state()];
    for t in 0.. {
        let outcome = env.step(t % 3 % 2).expect("episode is running");
        states.push(env.state());
        if outcome.terminated || outcome.truncated {
            break;
        }
    }
    states
}

#[test]
fn same_seed_same_episode_different_seed_different_episode() {
    assert_eq!(episode(42), episode(42));
    assert_ne!(episode(42)[0], episode(43)[0]);
    let firsts: Vec<[u64; 4]> = (0..100)
        .map(|seed| episode(seed)[0].map(f64::to_bits))
        .collect();
    let mut unique = firsts.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        firsts.len(),
        "two seeds shared an initial state"
    );
}

#[test]
fn successive_resets_draw_fresh_states() {
    let mut env = Single::<CartPole>::new(7);
    env.reset();
    let first = env.state();
    env.reset();
    assert_ne!(env.state(), first);
}

#[test]
fn batched_envs_use_their_derived_seeds() {
    let mut batch = Batch::<CartPole>::new(4, 9, 500);
    let obs = batch.reset_all().to_vec();
    for (i, chunk) in obs.chunks_exact(OBS_DIM).enumerate() {
        assert_eq!(chunk, Single::<CartPole>::new(env_seed(9, i)).reset());
    }
    assert_ne!(obs[..OBS_DIM], obs[OBS_DIM..2 * OBS_DIM]);
}

/// Chi-squared statistic of `samples` against 20 equal-width bins of [-0.05, 0.05).
fn chi_squared(samples: &[f64]) -> f64 {
    const BINS: usize = 20;
    let mut counts = [0usize; BINS];
    for &v in samples {
        let bin = ((v + 0.05) / 0.1 * BINS as f64) as usize;
        counts[bin.min(BINS - 1)] += 1;
    }
    let expected = samples.len() as f64 / BINS as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

/// Kolmogorov-Smirnov distance of `samples` from the uniform CDF on [-0.05, 0.05).
fn ks_distance(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len() as f64;
    samples
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let cdf = (v + 0.05) / 0.1;
            (cdf - i as f64 / n)
                .abs()
                .max(((i + 1) as f64 / n - cdf).abs())
        })
        .fold(0.0, f64::max)
}

#[test]
fn reset_states_are_uniform_in_the_gymnasium_box() {
    const RESETS: usize = 20_000;
    let mut env = Single::<CartPole>::new(2024);
    let mut components: [Vec<f64>; 4] = Default::default();
    for _ in 0..RESETS {
        env.reset();
        let state = env.state();
        assert_eq!(env.obs(), state.map(|v| v as f32));
        for (samples, v) in components.iter_mut().zip(state) {
            assert!(
                (-0.05..0.05).contains(&v),
                "reset component {v} outside [-0.05, 0.05)"
            );
            samples.push(v);
        }
    }
    for (k, samples) in components.iter_mut().enumerate() {
        // 19 degrees of freedom: P(chi2 > 43.8) = 0.001 under uniformity.
        let chi2 = chi_squared(samples);
        assert!(chi2 < 43.8, "component {k}: chi-squared {chi2}");
        // 1.95 / sqrt(n) is the KS critical value at significance 0.001.
        let ks = ks_distance(samples);
        assert!(
            ks < 1.95 / (RESETS as f64).sqrt(),
            "component {k}: KS distance {ks}"
        );
        // Both edges are reached: a narrower range (say [-0.01, 0.01]) would fail here.
        let (lo, hi) = (samples[0], samples[RESETS - 1]);
        assert!(
            lo < -0.0499 && hi > 0.0499,
            "component {k} spans only [{lo}, {hi}]"
        );
    }
    // Components must be drawn independently: their sample correlation is near zero.
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mut env = Single::<CartPole>::new(99);
    let pairs: Vec<[f64; 4]> = (0..RESETS)
        .map(|_| {
            env.reset();
            env.state()
        })
        .collect();
    let (a, b): (Vec<f64>, Vec<f64>) = pairs.iter().map(|s| (s[0], s[2])).unzip();
    let (ma, mb) = (mean(&a), mean(&b));
    let cov = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / RESETS as f64;
    let correlation = cov / (0.1f64.powi(2) / 12.0);
    assert!(
        correlation.abs() < 0.03,
        "x/theta correlation {correlation}"
    );
}

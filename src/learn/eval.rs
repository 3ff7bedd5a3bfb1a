//! Greedy evaluation on separately seeded, batched envs.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::env::{Envs, Resolved};
use crate::platform::rng::{stream_seed, Stream};

/// Anything that maps observations to greedy actions.
pub trait Policy {
    /// Writes the greedy action for each of the `actions.len()` observations `obs` (host
    /// memory, the env's observation size each) into `actions`.
    fn greedy_actions(&self, obs: &[f32], actions: &mut [i64]) -> Result<()>;
}

/// [`Policy::greedy_actions`] for a Q-network reached through tensors: `obs` goes to
/// `device`, `q_values` maps `[B, obs_dim]` to `[B, n_actions]`, the argmax comes back.
pub fn greedy_through_tensors(
    obs: &[f32],
    actions: &mut [i64],
    device: Device,
    q_values: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<()> {
    let n = actions.len();
    let obs = Tensor::from_slice(obs)
        .f_view([n as i64, -1])?
        .f_to_device(device)?;
    let greedy = tch::no_grad(|| q_values(&obs))?
        .f_argmax(1, false)?
        .f_to_device(Device::Cpu)?;
    greedy
        .f_copy_data(actions, n)
        .context("reading the policy's actions")
}

/// Returns of a greedy evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// Episodes evaluated.
    pub episodes: usize,
    /// Mean return.
    pub mean: f64,
    /// Population standard deviation of the returns.
    pub std: f64,
    /// Lowest return.
    pub min: f64,
    /// Highest return.
    pub max: f64,
}

impl EvalResult {
    fn from_returns(returns: &[f64]) -> Self {
        let n = returns.len().max(1) as f64;
        let mean = returns.iter().sum::<f64>() / n;
        let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
        Self {
            episodes: returns.len(),
            mean,
            std: var.sqrt(),
            min: returns.iter().copied().fold(f64::INFINITY, f64::min),
            max: returns.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }

    /// Mean return reaches `threshold` (the environment's reward threshold).
    pub fn solved(&self, threshold: f64) -> bool {
        self.mean >= threshold
    }
}

/// The env seed of the final (and `qnet eval`) evaluation for a run seed.
pub fn final_eval_seed(seed: u64) -> u64 {
    stream_seed(seed, Stream::FinalEvalEnvs)
}

/// The env seed of the evaluations that confirm a solved one, for a run seed: each
/// confirmation plays the next block of this stream's envs, so none repeats another.
pub fn confirm_eval_seed(seed: u64) -> u64 {
    stream_seed(seed, Stream::ConfirmEvalEnvs)
}

/// The env seed of periodic evaluations for a run seed (every evaluation of a run sees
/// the same initial states, so their results compare).
pub fn periodic_eval_seed(seed: u64) -> u64 {
    stream_seed(seed, Stream::EvalEnvs)
}

/// Most episodes played at once: what bounds an evaluation's memory.
pub const EPISODES_PER_BATCH: usize = 10_000;

/// Most episodes one evaluation plays (their returns are kept: 8 bytes each).
pub const MAX_EPISODES: usize = 10_000_000;

/// The envs an evaluation plays: the environment (under its time limit in force) and the seed
/// env `i`'s seed derives from.
#[derive(Debug, Clone)]
pub struct EvalEnvs {
    /// The environment.
    pub env: Resolved,
    /// Env `i` is seeded with [`crate::env::env_seed`]`(seed, i)`.
    pub seed: u64,
}

/// Plays `episodes` greedy episodes on `envs` and scores the first episode of each; see
/// [`evaluate_in_batches`].
pub fn evaluate(policy: &dyn Policy, episodes: usize, envs: &EvalEnvs) -> Result<EvalResult> {
    evaluate_in_batches(policy, 0..episodes, envs, &mut |_| {})
}

/// Plays one greedy episode on each env number `which` of `envs`, [`EPISODES_PER_BATCH`] at
/// a time, and scores them; `done` hears how many are scored after each batch. At most
/// [`MAX_EPISODES`].
pub fn evaluate_in_batches(
    policy: &dyn Policy,
    which: std::ops::Range<usize>,
    envs: &EvalEnvs,
    done: &mut dyn FnMut(usize),
) -> Result<EvalResult> {
    let episodes = which.len();
    if episodes > MAX_EPISODES {
        bail!("{episodes} evaluation episodes are more than the {MAX_EPISODES} qnet plays at once");
    }
    let mut returns = Vec::with_capacity(episodes);
    let mut start = which.start;
    while start < which.end {
        let end = which.end.min(start + EPISODES_PER_BATCH);
        let batch = envs.env.batch(start..end, envs.seed)?;
        returns.extend(play_batch(policy, batch)?);
        done(returns.len());
        start = end;
    }
    Ok(EvalResult::from_returns(&returns))
}

/// The returns of the first episode of each env of `envs`. The policy sees only the envs
/// whose first episode is still running (the others' actions are never scored), so a batch
/// shrinks as its episodes end.
fn play_batch(policy: &dyn Policy, mut envs: Envs) -> Result<Vec<f64>> {
    let episodes = envs.len();
    let d = envs.spec().obs_dim;
    envs.reset_all()?;
    let mut returns = vec![0.0f64; episodes];
    // The envs still in their first episode, and their observations and actions.
    let mut running: Vec<usize> = (0..episodes).collect();
    let mut obs = Vec::with_capacity(episodes * d);
    let mut chosen = vec![0i64; episodes];
    let mut actions = vec![0i64; episodes];
    while !running.is_empty() {
        obs.clear();
        for &i in &running {
            obs.extend_from_slice(&envs.obs()[i * d..(i + 1) * d]);
        }
        policy.greedy_actions(&obs, &mut chosen[..running.len()])?;
        for (&i, &action) in running.iter().zip(&chosen) {
            actions[i] = action;
        }
        envs.step(&actions)?;
        running.retain(|&i| {
            returns[i] += f64::from(envs.rewards()[i]);
            !(envs.terminated()[i] || envs.truncated()[i])
        });
    }
    Ok(returns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{Batch, CartPole, Dynamics, EnvSpec};

    /// Floats per CartPole observation.
    const CARTPOLE: &EnvSpec = &CartPole::SPEC;
    const OBS_DIM: usize = CARTPOLE.obs_dim;

    /// CartPole envs seeded from `seed`, truncated after `max_episode_steps`.
    fn cartpoles(seed: u64, max_episode_steps: u32) -> EvalEnvs {
        let mut env = crate::config::Config::default().env;
        env.max_episode_steps = Some(max_episode_steps);
        EvalEnvs {
            env: crate::env::resolve(&env).expect("CartPole-v1"),
            seed,
        }
    }

    /// Pushes toward the side the pole leans to: a classic controller that balances.
    struct Lean;

    impl Policy for Lean {
        fn greedy_actions(&self, obs: &[f32], actions: &mut [i64]) -> Result<()> {
            for (action, o) in actions.iter_mut().zip(obs.chunks_exact(OBS_DIM)) {
                *action = i64::from(o[2] + o[3] * 0.5 > 0.0);
            }
            Ok(())
        }
    }

    /// Always pushes left: falls within a few dozen steps.
    struct Left;

    impl Policy for Left {
        fn greedy_actions(&self, _obs: &[f32], actions: &mut [i64]) -> Result<()> {
            actions.fill(0);
            Ok(())
        }
    }

    #[test]
    fn a_balancing_controller_is_solved_and_pushing_left_is_not() -> Result<()> {
        let good = evaluate(&Lean, 20, &cartpoles(1, 500))?;
        assert_eq!(good.episodes, 20);
        assert!(good.solved(475.0), "{good:?}");
        let bad = evaluate(&Left, 20, &cartpoles(1, 500))?;
        assert!(
            !bad.solved(475.0) && bad.max < 100.0 && bad.min >= 1.0,
            "{bad:?}"
        );
        assert!(bad.std >= 0.0 && bad.min <= bad.mean && bad.mean <= bad.max);
        Ok(())
    }

    #[test]
    fn batches_score_the_same_episodes_as_one_batch_would() -> Result<()> {
        let episodes = EPISODES_PER_BATCH + 3;
        let mut seen = Vec::new();
        let batched = evaluate_in_batches(&Left, 0..episodes, &cartpoles(7, 500), &mut |done| {
            seen.push(done)
        })?;
        assert_eq!(seen, [EPISODES_PER_BATCH, episodes]);
        let whole = play_batch(&Left, cartpoles(7, 500).env.batch(0..episodes, 7)?)?;
        assert_eq!(batched, EvalResult::from_returns(&whole));
        let err = evaluate(&Left, MAX_EPISODES + 1, &cartpoles(7, 500)).expect_err("too many");
        assert!(err.to_string().contains("more than"), "{err}");
        Ok(())
    }

    #[test]
    fn the_time_limit_caps_returns() -> Result<()> {
        let capped = evaluate(&Lean, 5, &cartpoles(2, 50))?;
        assert_eq!((capped.min, capped.max, capped.std), (50.0, 50.0, 0.0));
        Ok(())
    }

    /// Leans on a threshold that tilts with the cart's position, so episodes end at many
    /// different lengths; counts the rows it is asked about.
    struct Wobbly(std::cell::RefCell<Vec<usize>>);

    impl Policy for Wobbly {
        fn greedy_actions(&self, obs: &[f32], actions: &mut [i64]) -> Result<()> {
            self.0.borrow_mut().push(actions.len());
            for (action, o) in actions.iter_mut().zip(obs.chunks_exact(OBS_DIM)) {
                *action = i64::from(o[2] + o[3] * 0.5 > 0.3 * o[0]);
            }
            Ok(())
        }
    }

    #[test]
    fn the_batch_shrinks_as_episodes_end_and_scores_what_the_whole_batch_scores() -> Result<()> {
        let (episodes, seed) = (30, 5);
        let policy = Wobbly(Default::default());
        let result = evaluate(&policy, episodes, &cartpoles(seed, 500))?;
        // The same episodes played with the whole batch at every step.
        let mut envs = Batch::<CartPole>::new(episodes, seed, 500);
        envs.reset_all();
        let (mut returns, mut running) = (vec![0.0; episodes], vec![true; episodes]);
        let mut actions = vec![0i64; episodes];
        while running.iter().any(|&r| r) {
            Wobbly(Default::default()).greedy_actions(envs.obs(), &mut actions)?;
            envs.step(&actions)?;
            for i in 0..episodes {
                if running[i] {
                    returns[i] += f64::from(envs.rewards()[i]);
                    running[i] = !(envs.terminated()[i] || envs.truncated()[i]);
                }
            }
        }
        assert_eq!(result, EvalResult::from_returns(&returns));
        assert!(
            result.min < result.max,
            "episodes of one length: {result:?}"
        );
        let sizes = policy.0.into_inner();
        assert_eq!(sizes[0], episodes);
        assert!(sizes.windows(2).all(|w| w[1] <= w[0]), "{sizes:?}");
        assert_eq!(sizes.len() as f64, result.max);
        assert_eq!(
            sizes.iter().sum::<usize>() as f64,
            returns.iter().sum::<f64>()
        );
        Ok(())
    }

    #[test]
    fn statistics_are_population_moments() {
        let r = EvalResult::from_returns(&[1.0, 3.0]);
        assert_eq!((r.mean, r.std, r.min, r.max), (2.0, 1.0, 1.0, 3.0));
    }
}

//! What an environment is to qnet: its sizes and limits ([`EnvSpec`]), its dynamics on a
//! float64 state ([`Dynamics`]), step for step Gymnasium's, and the seeded generator each env
//! draws its resets from ([`EnvRng`], seeded in a batch by [`env_seed`]). The batched and
//! single envs, the learner, export and reports read everything else from these.

use std::borrow::Cow;
use std::fmt::Debug;

use rand_pcg::Pcg64Mcg;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::platform::rng::{splitmix64, GOLDEN_GAMMA};

/// The random number generator each env owns; seeded only from the env's seed.
pub type EnvRng = Pcg64Mcg;

/// Seed of env `index` in a batch seeded with `seed`: the `index + 1`-th output of a
/// SplitMix64 generator started at `seed`.
///
/// SplitMix64's finaliser mixes every input bit into every output bit, so neighbouring
/// indices (and neighbouring batch seeds) get unrelated env seeds.
pub fn env_seed(seed: u64, index: usize) -> u64 {
    // The generator's state after `index` steps; `splitmix64` takes the next step.
    splitmix64(seed.wrapping_add((index as u64).wrapping_mul(GOLDEN_GAMMA)))
}

/// An environment's sizes and limits, as Gymnasium registers it: a constant of each of qnet's
/// own environments ([`Dynamics::SPEC`]), reported by the worker for a Gymnasium one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvSpec {
    /// The id `env.id` names it by, e.g. `CartPole-v1` or `gym:LunarLander-v3`.
    pub id: Cow<'static, str>,
    /// Floats per observation.
    pub obs_dim: usize,
    /// Discrete actions `0..n_actions`.
    pub n_actions: usize,
    /// The registered time limit (`max_episode_steps`).
    pub max_episode_steps: u32,
    /// The registered `reward_threshold`, if any: a mean return at or above it is solved.
    pub reward_threshold: Option<f64>,
    /// The least and the most an episode can return within the registered time limit, where
    /// they are known.
    pub returns: Option<(f64, f64)>,
}

impl EnvSpec {
    /// The least and the most an episode can return within a time limit of
    /// `max_episode_steps` (plots' range): [`EnvSpec::returns`] scaled to that limit, since
    /// each of qnet's environments bounds its reward by the same constant at every step.
    pub fn returns_within(&self, max_episode_steps: u32) -> Option<(f64, f64)> {
        let scale = f64::from(max_episode_steps) / f64::from(self.max_episode_steps);
        self.returns.map(|(low, high)| (low * scale, high * scale))
    }

    /// Why "solved" (the reward threshold) is not judged under a time limit of `limit`, or
    /// `None` where it is: only at a limit at least the registered one, for which Gymnasium
    /// sets the threshold (Acrobot-v1 and MountainCar-v0 reward -1 a step, so under a limit
    /// shorter than the threshold's size every policy would reach it), and only where the
    /// environment registers a threshold.
    pub fn solved_not_judged(&self, limit: u32) -> Option<String> {
        let registered = self.max_episode_steps;
        if self.reward_threshold.is_none() {
            Some(format!("{} registers no reward threshold", self.id))
        } else if limit < registered {
            Some(format!(
                "env.max_episode_steps {limit} is shorter than {}'s registered time limit of \
                 {registered}, under which its reward threshold is set",
                self.id
            ))
        } else {
            None
        }
    }

    /// The reward threshold, where it is judged under a time limit of `limit`.
    pub fn threshold_at(&self, limit: u32) -> Option<f64> {
        self.solved_not_judged(limit)
            .is_none()
            .then_some(self.reward_threshold)
            .flatten()
    }
}

/// An environment's dynamics, as Gymnasium computes them: a float64 state, its initial
/// distribution, one step under an action, and the float32 observation of a state.
pub trait Dynamics: Debug + Clone + Send + 'static {
    /// Sizes and limits.
    const SPEC: EnvSpec;
    /// The full-precision state.
    type State: Debug + Copy + PartialEq + Serialize + DeserializeOwned + Send;
    /// A state drawn from the reset distribution.
    fn initial_state(rng: &mut EnvRng) -> Self::State;
    /// One step from `state` under `action` (the caller checked `action < n_actions`):
    /// the next state, the reward, and whether the episode terminated.
    fn step(state: &Self::State, action: usize) -> (Self::State, f32, bool);
    /// The observation of `state`, into `obs` (`obs_dim` floats).
    fn observe(state: &Self::State, obs: &mut [f32]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_seeds_differ_across_indices_and_batch_seeds() {
        let mut seeds: Vec<u64> = (0..1000)
            .flat_map(|i| [env_seed(0, i), env_seed(1, i)])
            .collect();
        seeds.sort_unstable();
        seeds.dedup();
        assert_eq!(seeds.len(), 2000);
        // First SplitMix64 output from state 0 (reference value of the published algorithm).
        assert_eq!(env_seed(0, 0), 0xE220_A839_7B1D_CDAF);
    }
}

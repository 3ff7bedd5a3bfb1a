//! n-step returns: each env keeps a window of its last `n` steps, and a transition leaves
//! the window once its return `r_t + gamma r_t+1 + ... + gamma^(k-1) r_t+k-1` is known.
//!
//! A full window gives `k = n` and bootstraps `gamma^n Q(s_t+n)`. When an episode ends, every
//! step still in the window leaves with the steps it has: after termination without a
//! bootstrap, after time-limit truncation bootstrapping from the true last observation with
//! `gamma^k` (Gymnasium's terminated/truncated split, as for one-step targets). The windows
//! are part of the loop's state, so they survive checkpoints.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::learn::replay::Transition;

/// A step waiting in a window for its return to be complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    obs: Vec<f32>,
    action: i64,
    reward: f32,
}

/// One window per env.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NStepWindows {
    n: usize,
    gamma: f64,
    windows: Vec<VecDeque<Pending>>,
    /// Observation buffers of emitted steps, reused so that a step allocates nothing.
    #[serde(skip)]
    spare: Vec<Vec<f32>>,
}

impl PartialEq for NStepWindows {
    /// Equal windows; the spare buffers are no part of the state.
    fn eq(&self, other: &Self) -> bool {
        self.n == other.n && self.gamma == other.gamma && self.windows == other.windows
    }
}

/// One env step, as the acting loop saw it.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// Observation the action was taken in.
    pub obs: &'a [f32],
    /// Action taken.
    pub action: i64,
    /// Reward received.
    pub reward: f32,
    /// Observation after the step (the episode's last one if it ended).
    pub next_obs: &'a [f32],
    /// The episode ended in a terminal state.
    pub terminated: bool,
    /// The episode hit the time limit.
    pub truncated: bool,
}

impl NStepWindows {
    /// Empty windows of `n` steps for `envs` envs, discounting by `gamma`.
    pub fn new(n: usize, gamma: f64, envs: usize) -> Self {
        Self {
            n: n.max(1),
            gamma,
            windows: vec![VecDeque::with_capacity(n); envs],
            spare: Vec::new(),
        }
    }

    /// Checks windows read from a file against what their run asks for: `n`-step windows
    /// (fewer than `n` steps waiting in each) for `envs` envs, observations of `obs_dim`
    /// floats. The error says what differs.
    pub fn check(&self, n: usize, envs: usize, obs_dim: usize) -> Result<(), String> {
        if self.n != n.max(1) {
            return Err(format!("are of {} steps; the config asks for {n}", self.n));
        }
        if self.windows.len() != envs {
            return Err(format!(
                "are for {} envs; the config asks for {envs}",
                self.windows.len()
            ));
        }
        let whole = |window: &VecDeque<Pending>| {
            window.len() < self.n && window.iter().all(|pending| pending.obs.len() == obs_dim)
        };
        if !self.windows.iter().all(whole) {
            return Err(format!(
                "are not whole: a window holds {} steps or more, or an observation of other \
                 than {obs_dim} floats",
                self.n
            ));
        }
        Ok(())
    }

    /// Adds env `env`'s `step` and hands every transition it completes to `emit`, oldest
    /// first; stops at the first error `emit` returns.
    pub fn push<E>(
        &mut self,
        env: usize,
        step: Step<'_>,
        mut emit: impl FnMut(Transition<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut obs = self.spare.pop().unwrap_or_default();
        obs.clear();
        obs.extend_from_slice(step.obs);
        let window = &mut self.windows[env];
        window.push_back(Pending {
            obs,
            action: step.action,
            reward: step.reward,
        });
        let done = step.terminated || step.truncated;
        while window.len() == self.n || (done && !window.is_empty()) {
            let (mut ret, mut discount) = (0.0f64, 1.0f64);
            for pending in window.iter() {
                ret += discount * f64::from(pending.reward);
                discount *= self.gamma;
            }
            let Some(first) = window.pop_front() else {
                break;
            };
            emit(Transition {
                obs: &first.obs,
                next_obs: step.next_obs,
                action: first.action,
                reward: ret as f32,
                terminated: step.terminated,
                discount: discount as f32,
            })?;
            self.spare.push(first.obs);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{CartPole, Dynamics, EnvSpec};

    /// CartPole-sized observations.
    const CARTPOLE: &EnvSpec = &CartPole::SPEC;
    const OBS_DIM: usize = CARTPOLE.obs_dim;

    /// (obs[0], reward, terminated, discount) of each transition emitted.
    type Emitted = Vec<(f32, f32, bool, f32)>;

    fn run(n: usize, steps: &[(f32, bool, bool)]) -> Emitted {
        let mut windows = NStepWindows::new(n, 0.5, 1);
        let mut out = Vec::new();
        for (t, &(reward, terminated, truncated)) in steps.iter().enumerate() {
            let obs = [t as f32; OBS_DIM];
            let next = [t as f32 + 1.0; OBS_DIM];
            let step = Step {
                obs: &obs,
                action: 1,
                reward,
                next_obs: &next,
                terminated,
                truncated,
            };
            windows
                .push(0, step, |tr| {
                    assert_eq!(tr.next_obs[0], t as f32 + 1.0, "bootstraps from the newest");
                    out.push((tr.obs[0], tr.reward, tr.terminated, tr.discount));
                    Ok::<(), ()>(())
                })
                .unwrap_or(());
        }
        out
    }

    #[test]
    fn one_step_is_the_plain_transition() {
        let out = run(1, &[(1.0, false, false), (2.0, true, false)]);
        assert_eq!(out, [(0.0, 1.0, false, 0.5), (1.0, 2.0, true, 0.5)]);
    }

    #[test]
    fn full_windows_sum_n_discounted_rewards_and_bootstrap_gamma_n() {
        let out = run(3, &[(1.0, false, false); 5]);
        // 1 + 0.5 + 0.25, bootstrapped with 0.5^3, for the steps whose window filled.
        assert_eq!(
            out,
            [
                (0.0, 1.75, false, 0.125),
                (1.0, 1.75, false, 0.125),
                (2.0, 1.75, false, 0.125)
            ]
        );
    }

    #[test]
    fn termination_flushes_without_bootstrap_and_truncation_with_gamma_k() {
        let out = run(
            3,
            &[(1.0, false, false), (2.0, false, false), (4.0, true, false)],
        );
        assert_eq!(
            out,
            [
                (0.0, 1.0 + 1.0 + 1.0, true, 0.125),
                (1.0, 2.0 + 2.0, true, 0.25),
                (2.0, 4.0, true, 0.5)
            ]
        );
        let out = run(4, &[(1.0, false, false), (1.0, false, true)]);
        assert_eq!(out, [(0.0, 1.5, false, 0.25), (1.0, 1.0, false, 0.5)]);
        // After an episode ends the window starts empty.
        let out = run(
            2,
            &[(1.0, true, false), (1.0, false, false), (1.0, false, false)],
        );
        assert_eq!(out, [(0.0, 1.0, true, 0.5), (1.0, 1.5, false, 0.25)]);
    }

    #[test]
    fn windows_round_trip_through_json() {
        let mut windows = NStepWindows::new(3, 0.9, 2);
        let obs = [0.5; OBS_DIM];
        let step = Step {
            obs: &obs,
            action: 0,
            reward: 1.0,
            next_obs: &obs,
            terminated: false,
            truncated: false,
        };
        windows.push(1, step, |_| Ok::<(), ()>(())).unwrap_or(());
        let json = serde_json::to_string(&windows).unwrap_or_default();
        let back: NStepWindows =
            serde_json::from_str(&json).unwrap_or(NStepWindows::new(1, 0.0, 0));
        assert_eq!(back, windows);
    }
}

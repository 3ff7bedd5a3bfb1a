//! N envs of any one environment stepped together, with auto-reset: the interface the
//! training loop and evaluation step, whichever environment `env.id` names.

use serde::Serialize;

use super::{cartpole_arrays, spec, Acrobot, Batch, CartPole, EnvError, EnvSpec, MountainCar};
use crate::config::EnvId;

/// A batch of envs of one environment.
///
/// Stored untagged, as the [`Batch`] alone: the config names the environment, and
/// [`Envs::from_json`] reads the batch back as it.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Envs {
    /// CartPole-v1.
    CartPole(Batch<CartPole>),
    /// Acrobot-v1.
    Acrobot(Batch<Acrobot>),
    /// MountainCar-v0.
    MountainCar(Batch<MountainCar>),
}

/// Calls `$body` with `$envs` bound to the batch inside, whichever environment it is.
macro_rules! each {
    ($self:expr, $envs:ident => $body:expr) => {
        match $self {
            Envs::CartPole($envs) => $body,
            Envs::Acrobot($envs) => $body,
            Envs::MountainCar($envs) => $body,
        }
    };
}

impl Envs {
    /// Envs number `envs.start` to `envs.end - 1` of the batch of environment `id` seeded with
    /// `seed` (env `i` seeded with [`super::env_seed`]`(seed, i)`), truncating after
    /// `max_episode_steps`; call [`Envs::reset_all`] before stepping.
    pub fn of_envs(
        id: EnvId,
        envs: std::ops::Range<usize>,
        seed: u64,
        max_episode_steps: u32,
    ) -> Self {
        match id {
            EnvId::CartPole => Envs::CartPole(Batch::of_envs(envs, seed, max_episode_steps)),
            EnvId::Acrobot => Envs::Acrobot(Batch::of_envs(envs, seed, max_episode_steps)),
            EnvId::MountainCar => Envs::MountainCar(Batch::of_envs(envs, seed, max_episode_steps)),
        }
    }

    /// The batch of environment `id` that `json` holds (what serializing one wrote; for
    /// CartPole-v1 also the struct-of-arrays form of qnet 0.2's checkpoints).
    pub fn from_json(id: EnvId, json: &str) -> serde_json::Result<Self> {
        Ok(match id {
            EnvId::CartPole => Envs::CartPole(cartpole_arrays::read(json)?),
            EnvId::Acrobot => Envs::Acrobot(serde_json::from_str(json)?),
            EnvId::MountainCar => Envs::MountainCar(serde_json::from_str(json)?),
        })
    }

    /// `n` envs of environment `id` (envs `0..n` of [`Envs::of_envs`]).
    pub fn new(id: EnvId, n: usize, seed: u64, max_episode_steps: u32) -> Self {
        Self::of_envs(id, 0..n, seed, max_episode_steps)
    }

    /// The environment's sizes and limits.
    pub fn spec(&self) -> EnvSpec {
        spec(match self {
            Envs::CartPole(_) => EnvId::CartPole,
            Envs::Acrobot(_) => EnvId::Acrobot,
            Envs::MountainCar(_) => EnvId::MountainCar,
        })
    }

    /// Number of envs.
    pub fn len(&self) -> usize {
        each!(self, envs => envs.len())
    }

    /// True for a batch of zero envs.
    pub fn is_empty(&self) -> bool {
        each!(self, envs => envs.is_empty())
    }

    /// Checks a batch read from a file against what its run asks for: `n` envs, each
    /// array whole, truncating after `max_episode_steps`. The error says what differs.
    pub fn check(&self, n: usize, max_episode_steps: u32) -> Result<(), String> {
        let (whole, limit) = each!(self, envs => (envs.is_whole(), envs.max_episode_steps()));
        if self.len() != n {
            Err(format!("hold {} envs; the config asks for {n}", self.len()))
        } else if !whole {
            Err(format!(
                "are not whole: their per-env arrays do not all hold {n} envs"
            ))
        } else if limit != max_episode_steps {
            Err(format!(
                "truncate episodes after {limit} steps; the config's time limit is \
                 {max_episode_steps}"
            ))
        } else {
            Ok(())
        }
    }

    /// Starts a fresh episode in every env; returns the flat observations.
    pub fn reset_all(&mut self) -> &[f32] {
        each!(self, envs => envs.reset_all())
    }

    /// Steps every env with its action, resetting those whose episode ends. Errors, leaving
    /// every env unchanged, on a wrong number of actions, an invalid action, or before the
    /// first [`Envs::reset_all`].
    pub fn step(&mut self, actions: &[i64]) -> Result<(), EnvError> {
        each!(self, envs => envs.step(actions))
    }

    /// Observations after the last step, flat; for envs that just ended, the first
    /// observation of their new episode.
    pub fn obs(&self) -> &[f32] {
        each!(self, envs => envs.obs())
    }

    /// Flat observations that ended episodes (meaningful where an episode just ended).
    pub fn final_obs(&self) -> &[f32] {
        each!(self, envs => envs.final_obs())
    }

    /// Rewards of the last step, one per env.
    pub fn rewards(&self) -> &[f32] {
        each!(self, envs => envs.rewards())
    }

    /// Per env: the last step ended its episode in a terminal state.
    pub fn terminated(&self) -> &[bool] {
        each!(self, envs => envs.terminated())
    }

    /// Per env: the last step ended its episode at the time limit.
    pub fn truncated(&self) -> &[bool] {
        each!(self, envs => envs.truncated())
    }

    /// Per env: length of the episode that just ended; meaningful only where it ended.
    pub fn episode_lengths(&self) -> &[u32] {
        each!(self, envs => envs.episode_lengths())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [EnvId; 3] = [EnvId::CartPole, EnvId::Acrobot, EnvId::MountainCar];

    /// The config's ids and time limits are the environments' own.
    #[test]
    fn each_id_names_its_environment_and_its_time_limit() {
        for id in ALL {
            let env = spec(id);
            assert_eq!(env.id, id.as_str());
            assert_eq!(env.max_episode_steps, id.time_limit());
            assert_eq!(id.as_str().parse::<EnvId>(), Ok(id));
            let envs = Envs::new(id, 3, 7, env.max_episode_steps);
            assert_eq!(envs.spec(), env);
            assert_eq!(envs.len(), 3);
        }
        assert!("Pendulum-v1".parse::<EnvId>().is_err());
    }

    /// Return ranges follow the time limit: CartPole's +1 a step, Acrobot's and MountainCar's
    /// -1 a step.
    #[test]
    fn return_ranges_scale_with_the_time_limit() {
        assert_eq!(spec(EnvId::CartPole).returns_within(200), (0.0, 200.0));
        assert_eq!(spec(EnvId::Acrobot).returns_within(500), (-500.0, 0.0));
        assert_eq!(
            spec(EnvId::MountainCar).returns_within(1000),
            (-1000.0, 0.0)
        );
    }

    /// A batch goes through a checkpoint (JSON) and comes back as the same environment, on
    /// the same episodes.
    #[test]
    fn a_batch_round_trips_as_its_own_environment() -> anyhow::Result<()> {
        for id in ALL {
            let env = spec(id);
            let mut envs = Envs::new(id, 4, 11, env.max_episode_steps);
            envs.reset_all();
            let actions = vec![1i64; 4];
            for _ in 0..5 {
                envs.step(&actions)?;
            }
            let mut back = Envs::from_json(id, &serde_json::to_string(&envs)?)?;
            assert_eq!(back.spec().id, env.id);
            for _ in 0..5 {
                envs.step(&actions)?;
                back.step(&actions)?;
                assert_eq!(envs.obs(), back.obs());
            }
        }
        Ok(())
    }
}

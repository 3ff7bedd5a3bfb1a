//! The environments, each step-for-step identical to Gymnasium 1.x: CartPole-v1 as one env
//! ([`CartPole`](crate::env::CartPole)) and N envs stepped together
//! ([`BatchedCartPole`](crate::env::BatchedCartPole)); any [`Dynamics`](crate::env::Dynamics) (Acrobot-v1,
//! MountainCar-v0, ...) as one env ([`Single`](crate::env::Single)) or N
//! ([`Batch`](crate::env::Batch)).

pub mod acrobot;
pub mod batch;
pub mod batched;
pub mod cartpole;
mod cartpole_arrays;
pub mod dynamics;
pub mod envs;
pub mod mountain_car;
pub mod render;
pub mod single;

use std::fmt;

use crate::config::EnvId;

pub use acrobot::Acrobot;
pub use batch::Batch;
pub use batched::BatchedCartPole;
pub use cartpole::{CartPole, CartPoleDynamics, Step, DEFAULT_MAX_EPISODE_STEPS};
pub use dynamics::{env_seed, Dynamics, EnvRng, EnvSpec};
pub use envs::Envs;
pub use mountain_car::MountainCar;
pub use single::{Outcome, Single};

/// Length of a CartPole observation: cart position, cart velocity, pole angle, pole angular velocity.
pub const OBS_DIM: usize = 4;

/// Number of discrete actions: 0 pushes the cart left, 1 pushes it right.
pub const N_ACTIONS: usize = 2;

/// The sizes and limits of the environment `id`.
pub fn spec(id: EnvId) -> EnvSpec {
    match id {
        EnvId::CartPole => cartpole::SPEC,
        EnvId::Acrobot => Acrobot::SPEC,
        EnvId::MountainCar => MountainCar::SPEC,
    }
}

/// Misuse of an environment by its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvError {
    /// An action outside `0..N_ACTIONS`.
    InvalidAction(i64),
    /// An action outside `0..n_actions` of the named environment.
    ActionOutOfRange {
        /// Gymnasium's id of the environment.
        env: &'static str,
        /// The action given.
        action: i64,
        /// Number of actions the environment has.
        n_actions: usize,
    },
    /// `step` on an episode that has ended (or never started) without a reset since.
    NeedsReset,
    /// A batched step given a number of actions different from the number of envs.
    ActionCount {
        /// Number of envs in the batch.
        expected: usize,
        /// Number of actions given.
        got: usize,
    },
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidAction(action) => {
                write!(f, "invalid CartPole action {action}: expected 0 (left) or 1 (right)")
            }
            Self::ActionOutOfRange {
                env,
                action,
                n_actions,
            } => write!(
                f,
                "invalid {env} action {action}: expected 0 to {}",
                n_actions.saturating_sub(1)
            ),
            Self::NeedsReset => write!(
                f,
                "environment stepped after its episode ended (or before the first reset): call reset first"
            ),
            Self::ActionCount { expected, got } => write!(
                f,
                "batched environment got {got} actions for {expected} environments"
            ),
        }
    }
}

impl std::error::Error for EnvError {}

//! The environments: qnet's own, each step-for-step identical to Gymnasium 1.x (CartPole-v1
//! ([`CartPole`](crate::env::CartPole)), Acrobot-v1 ([`Acrobot`](crate::env::Acrobot)) and
//! MountainCar-v0 ([`MountainCar`](crate::env::MountainCar)), each a
//! [`Dynamics`](crate::env::Dynamics), stepped as one env ([`Single`](crate::env::Single)) or N
//! with auto-reset ([`Batch`](crate::env::Batch))), any a program using qnet adds the same way
//! ([`register`](crate::env::registry::register)), and any Gymnasium environment through the bridge ([`gym`](crate::env::gym)).
//! [`resolve`](crate::env::registry::resolve) finds the one `env.id` names; [`Envs`](crate::env::Envs) is a batch of
//! it.

pub mod acrobot;
pub mod batch;
pub mod cartpole;
mod cartpole_arrays;
pub mod dynamics;
pub mod envs;
pub mod gym;
pub mod mountain_car;
pub mod registry;
pub mod render;
pub mod single;
pub mod vec_env;

use std::fmt;

pub use acrobot::Acrobot;
pub use batch::Batch;
pub use cartpole::CartPole;
pub use dynamics::{env_seed, Dynamics, EnvRng, EnvSpec};
pub use envs::Envs;
pub use mountain_car::MountainCar;
pub use registry::{register, resolve, Registration, Resolved};
pub use single::{Outcome, Single};
pub use vec_env::VecEnv;

/// Misuse of an environment by its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvError {
    /// An action outside `0..n_actions` of the named environment.
    ActionOutOfRange {
        /// The id of the environment.
        env: String,
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

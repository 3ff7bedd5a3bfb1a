//! Which environments `env.id` can name, in one place: qnet's own (CartPole-v1, Acrobot-v1,
//! MountainCar-v0), those a program using qnet as a library adds ([`register`]), and any
//! Gymnasium environment as `gym:ID`, through the bridge. [`resolve`] turns a config's `env`
//! section into what the rest of qnet steps and reads its sizes from.

use std::ops::Range;
use std::sync::{LazyLock, Mutex, RwLock};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};

use super::batch::Batch;
use super::dynamics::{Dynamics, EnvSpec};
use super::envs::Envs;
use super::gym::{self, GymEnvs, GymMake};
use super::render::{DrawnEnv, Scene};
use super::single::Single;
use super::vec_env::VecEnv;
use super::{cartpole_arrays, Acrobot, CartPole, MountainCar};
use crate::config::{clip, EnvConfig};

/// Makes envs number `envs` of a batch seeded with `seed`, truncating after `limit` steps.
type MakeBatch = fn(envs: Range<usize>, seed: u64, limit: u32) -> Box<dyn VecEnv>;
/// Reads a batch back from the JSON its `to_json` wrote.
type RestoreBatch = fn(json: &str) -> serde_json::Result<Box<dyn VecEnv>>;
/// Makes one env seeded with `seed`, truncating after `limit` steps, that draws its frames.
type MakeDrawn = fn(seed: u64, limit: u32) -> Box<dyn DrawnEnv>;

/// One environment implemented in Rust: its spec and how to make, restore and draw it.
#[derive(Debug, Clone)]
pub struct Registration {
    spec: EnvSpec,
    batch: MakeBatch,
    restore: RestoreBatch,
    drawn: Option<MakeDrawn>,
}

impl Registration {
    /// The environment of dynamics `D`, under the id in `D::SPEC`; `qnet render` cannot draw
    /// it (see [`Registration::drawn`]).
    pub fn of<D: Dynamics>() -> Self {
        Self {
            spec: D::SPEC,
            batch: |envs, seed, limit| Box::new(Batch::<D>::of_envs(envs, seed, limit)),
            restore: |json| Ok(Box::new(serde_json::from_str::<Batch<D>>(json)?)),
            drawn: None,
        }
    }

    /// The environment of dynamics `S`, which `qnet render` draws as its [`Scene`] says.
    pub fn drawn<S: Scene>() -> Self {
        Self {
            drawn: Some(|seed, limit| Box::new(Single::<S>::with_max_episode_steps(seed, limit))),
            ..Self::of::<S>()
        }
    }

    /// Its sizes and limits.
    pub fn spec(&self) -> &EnvSpec {
        &self.spec
    }
}

/// The environments written in Rust, qnet's own first.
static REGISTRY: LazyLock<RwLock<Vec<Registration>>> = LazyLock::new(|| {
    let cartpole = Registration {
        // Checkpoints of qnet 0.2 hold a CartPole batch as a struct of arrays.
        restore: |json| Ok(Box::new(cartpole_arrays::read(json)?)),
        ..Registration::drawn::<CartPole>()
    };
    RwLock::new(vec![
        cartpole,
        Registration::drawn::<Acrobot>(),
        Registration::drawn::<MountainCar>(),
    ])
});

/// Adds an environment written in Rust (a type implementing [`Dynamics`], of a crate that
/// uses qnet as a library), so that `env.id` can name it by the id in its spec. An id that
/// is taken, empty or starts with `gym:` is refused.
pub fn register(registration: Registration) -> Result<()> {
    let id = registration.spec.id.to_string();
    if id.is_empty() || id.starts_with(crate::config::EnvId::GYM_PREFIX) {
        bail!("{id:?} cannot name an environment written in Rust");
    }
    let mut registry = REGISTRY
        .write()
        .map_err(|_| anyhow!("the environment registry is poisoned"))?;
    if registry.iter().any(|r| r.spec.id == id) {
        bail!("an environment named {id} is registered already");
    }
    registry.push(registration);
    Ok(())
}

/// The registered environment `id`.
fn find(id: &str) -> Option<Registration> {
    REGISTRY
        .read()
        .ok()?
        .iter()
        .find(|r| r.spec.id == id)
        .cloned()
}

/// The spec of the environment written in Rust that `id` names, without starting anything;
/// `None` for a Gymnasium environment or an unknown id.
pub fn rust_spec(id: &str) -> Option<EnvSpec> {
    find(id).map(|registration| registration.spec)
}

/// The ids of the environments written in Rust.
pub fn ids() -> Vec<String> {
    REGISTRY
        .read()
        .map(|r| r.iter().map(|r| r.spec.id.to_string()).collect())
        .unwrap_or_default()
}

/// Specs of Gymnasium environments already asked for, by their `make` request: a process
/// starts a worker to learn an environment's spaces once.
static GYM_SPECS: LazyLock<Mutex<Vec<(GymMake, EnvSpec)>>> = LazyLock::new(Default::default);

/// A config's environment, resolved: its spec, the time limit in force, and how to make it.
#[derive(Debug, Clone)]
pub struct Resolved {
    spec: EnvSpec,
    time_limit: u32,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Rust(Registration),
    Gym { make: GymMake, processes: usize },
}

/// The environment `env` names. A `gym:` environment's spaces are asked of a Python worker
/// (once per process): one whose spaces qnet cannot train (continuous actions, ...) is
/// refused here, as is one with no time limit where `env.max_episode_steps` sets none.
pub fn resolve(env: &EnvConfig) -> Result<Resolved> {
    let Some(gym_id) = env.id.gym_id() else {
        let Some(registration) = find(env.id.as_str()) else {
            return Err(unknown(env.id.as_str()));
        };
        let spec = registration.spec.clone();
        return Ok(Resolved {
            time_limit: env.max_episode_steps.unwrap_or(spec.max_episode_steps),
            spec,
            kind: Kind::Rust(registration),
        });
    };
    let make = GymMake {
        id: gym_id.to_owned(),
        kwargs: env.kwargs.clone().into_iter().collect(),
        wrappers: env
            .wrappers
            .iter()
            .map(|w| (w.class.clone(), w.kwargs.clone().into_iter().collect()))
            .collect(),
        max_episode_steps: None,
        timeout: Duration::from_secs_f64(env.timeout_seconds),
    };
    let spec = gym_spec(&make)?;
    let time_limit = env.max_episode_steps.unwrap_or(spec.max_episode_steps);
    Ok(Resolved {
        spec,
        time_limit,
        kind: Kind::Gym {
            // The limit in force, whether the config's or the registered one.
            make: GymMake {
                max_episode_steps: Some(time_limit),
                ..make
            },
            processes: env.processes,
        },
    })
}

/// The spec of the Gymnasium environment `make` (with its registered time limit), from a
/// worker started for it unless this process has asked before.
fn gym_spec(make: &GymMake) -> Result<EnvSpec> {
    if let Some((_, spec)) = GYM_SPECS
        .lock()
        .ok()
        .and_then(|known| known.iter().find(|(m, _)| m == make).cloned())
    {
        return Ok(spec);
    }
    let reported = GymEnvs::probe(&gym::python(), make)?;
    let label = make.label();
    let Some(max_episode_steps) = reported.max_episode_steps else {
        bail!(
            "{label} registers no time limit (max_episode_steps): set env.max_episode_steps, \
             since every episode qnet plays must end"
        );
    };
    let spec = EnvSpec {
        id: label.into(),
        obs_dim: reported.obs_size(),
        n_actions: reported.n_actions,
        max_episode_steps,
        reward_threshold: reported.reward_threshold,
        returns: None,
    };
    if let Ok(mut known) = GYM_SPECS.lock() {
        known.push((make.clone(), spec.clone()));
    }
    Ok(spec)
}

/// The error for an id that names nothing: the ids there are, the nearest first.
fn unknown(id: &str) -> anyhow::Error {
    let mut known = ids();
    known.sort_by_key(|k| distance(&k.to_lowercase(), &id.to_lowercase()));
    let near = known
        .first()
        .filter(|k| distance(&k.to_lowercase(), &id.to_lowercase()) <= k.len() / 3)
        .map(|k| format!(" (did you mean {k}?)"))
        .unwrap_or_default();
    anyhow!(
        "env.id: {:?} is not an environment qnet has{near}: qnet's own are {}, and any \
         Gymnasium environment trains through the bridge as gym:ID (gym:{}, \
         gym:LunarLander-v3, gym:module:EnvId for one a module registers)",
        clip(id),
        known.join(", "),
        clip(id)
    )
}

/// Levenshtein distance, for suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(previous + 1).min(row[j] + 1);
        }
    }
    row[b.len()]
}

impl Resolved {
    /// The environment's sizes and limits (its registered time limit).
    pub fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// The time limit in force: `env.max_episode_steps`, or the registered one.
    pub fn time_limit(&self) -> u32 {
        self.time_limit
    }

    /// Why "solved" is not judged under the time limit in force, or `None` where it is.
    pub fn solved_not_judged(&self) -> Option<String> {
        self.spec.solved_not_judged(self.time_limit)
    }

    /// The reward threshold, where "solved" is judged.
    pub fn threshold(&self) -> Option<f64> {
        self.spec.threshold_at(self.time_limit)
    }

    /// True for a Gymnasium environment, whose envs run in Python workers (and whose state a
    /// checkpoint cannot hold).
    pub fn is_gym(&self) -> bool {
        matches!(self.kind, Kind::Gym { .. })
    }

    /// Envs number `envs` of the batch seeded with `seed` (env `i` seeded with
    /// [`super::env_seed`]`(seed, i)`), under the time limit in force; call
    /// [`Envs::reset_all`] before stepping.
    pub fn batch(&self, envs: Range<usize>, seed: u64) -> Result<Envs> {
        let inner: Box<dyn VecEnv> = match &self.kind {
            Kind::Rust(registration) => (registration.batch)(envs, seed, self.time_limit),
            Kind::Gym { make, processes } => Box::new(GymEnvs::new(
                &gym::python(),
                make,
                envs.len(),
                *processes,
                seed,
                None,
            )),
        };
        Ok(Envs::new(self.spec.clone(), inner))
    }

    /// The batch a checkpoint holds (what [`Envs::to_json`] wrote).
    pub fn restore(&self, json: &str) -> Result<Envs> {
        match &self.kind {
            Kind::Rust(registration) => {
                Ok(Envs::new(self.spec.clone(), (registration.restore)(json)?))
            }
            Kind::Gym { .. } => bail!(
                "{}: a Gymnasium environment's envs cannot be restored from a checkpoint",
                self.spec.id
            ),
        }
    }

    /// One env seeded with `seed`, truncating after `max_steps`, drawn after each step as
    /// Gymnasium renders it (a Gymnasium environment's `rgb_array` render).
    pub fn drawn(&self, seed: u64, max_steps: u32) -> Result<Box<dyn DrawnEnv>> {
        match &self.kind {
            Kind::Rust(registration) => match registration.drawn {
                Some(drawn) => Ok(drawn(seed, max_steps)),
                None => bail!(
                    "{} has no renderer: qnet render draws only environments that implement \
                     env::render::Scene",
                    self.spec.id
                ),
            },
            Kind::Gym { make, .. } => Ok(Box::new(gym::Drawn::new(
                &gym::python(),
                &GymMake {
                    max_episode_steps: Some(max_steps),
                    ..make.clone()
                },
                seed,
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(id: &str) -> EnvConfig {
        let mut env = crate::config::Config::default().env;
        env.id = id.parse().expect("an id");
        env
    }

    #[test]
    fn qnets_own_environments_resolve_to_their_specs() -> Result<()> {
        for (id, limit) in [
            ("CartPole-v1", 500),
            ("Acrobot-v1", 500),
            ("MountainCar-v0", 200),
        ] {
            let resolved = resolve(&config(id))?;
            assert_eq!(resolved.spec().id, id);
            assert_eq!(resolved.time_limit(), limit);
            assert!(resolved.solved_not_judged().is_none() && !resolved.is_gym());
            let mut envs = resolved.batch(0..3, 7)?;
            envs.reset_all()?;
            assert_eq!(envs.len(), 3);
        }
        Ok(())
    }

    #[test]
    fn an_unknown_id_lists_the_known_ones_and_the_nearest() {
        let err = resolve(&config("Cartpole-v1"))
            .expect_err("unknown")
            .to_string();
        assert!(
            err.contains("(did you mean CartPole-v1?)")
                && err.contains("CartPole-v1, Acrobot-v1, MountainCar-v0")
                && err.contains("gym:Cartpole-v1"),
            "{err}"
        );
        let err = resolve(&config("Pong")).expect_err("unknown").to_string();
        assert!(!err.contains("did you mean"), "{err}");
    }

    #[test]
    fn a_taken_or_bridged_id_cannot_be_registered() {
        let err = register(Registration::of::<CartPole>()).expect_err("taken");
        assert!(err.to_string().contains("registered already"), "{err}");
    }

    #[test]
    fn returns_follow_the_time_limit_and_solved_needs_the_registered_one() {
        assert_eq!(CartPole::SPEC.returns_within(200), Some((0.0, 200.0)));
        assert_eq!(Acrobot::SPEC.returns_within(1000), Some((-1000.0, 0.0)));
        assert!(Acrobot::SPEC.solved_not_judged(499).is_some());
        assert_eq!(Acrobot::SPEC.threshold_at(500), Some(-100.0));
        assert_eq!(MountainCar::SPEC.threshold_at(1000), Some(-110.0));
    }
}

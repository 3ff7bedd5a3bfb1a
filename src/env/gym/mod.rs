//! Any Gymnasium environment with discrete actions, through a bridge: envs made by
//! `gymnasium.make` in Python worker processes (`worker.py`), stepped from Rust through
//! shared memory.
//!
//! The semantics are Gymnasium 1.x's, as qnet's own envs keep them: env `i` is seeded once,
//! with [`env_seed`]`(seed, i)`, at its first reset; an episode that ends resets in the same
//! step, and the observation that ended it is kept apart ([`GymEnvs::final_obs`]) so that a
//! truncated episode bootstraps from it; termination and truncation are Gymnasium's own
//! flags (its `TimeLimit` wrapper sets the latter). The envs are stepped by one worker
//! process, or split across several that step in parallel.

mod layout;
mod process;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use layout::Layout;
use process::Worker;

use crate::env::render::{rgb_frame, DrawnEnv, Frame};
use crate::env::single::Outcome;
use crate::env::vec_env::VecEnv;
use crate::env::{env_seed, EnvError};

/// Environment variable naming the Python interpreter that runs the workers.
pub const PYTHON_ENV: &str = "QNET_PYTHON";

/// The Python interpreter the bridge runs: `QNET_PYTHON`, else the virtual environment
/// `scripts/setup.sh` makes in the qnet checkout, else `python3` on the `PATH`. A run
/// directory never chooses it: resuming someone else's run must not run a program of theirs.
pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os(PYTHON_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.is_file() {
        return venv;
    }
    PathBuf::from("python3")
}

/// What to make: `gymnasium.make(id, **kwargs)`, wrapped in `wrappers` (each a
/// `gymnasium.Wrapper` class by dotted path, with its keyword arguments), with an optional
/// time limit in place of the registered one.
#[derive(Debug, Clone, PartialEq)]
pub struct GymMake {
    /// What Gymnasium accepts as an id, `module:EnvId` included.
    pub id: String,
    /// Keyword arguments of the environment, as JSON.
    pub kwargs: serde_json::Map<String, Value>,
    /// `(class path, keyword arguments)` of each wrapper, innermost first.
    pub wrappers: Vec<(String, serde_json::Map<String, Value>)>,
    /// `max_episode_steps` for `gymnasium.make`; `None` keeps the registered limit.
    pub max_episode_steps: Option<u32>,
    /// Most seconds any request may take before the worker is taken to hang.
    pub timeout: Duration,
}

impl GymMake {
    /// What errors call the environment.
    pub fn label(&self) -> String {
        format!("gym:{}", crate::config::clip(&self.id))
    }

    fn request(&self, n: usize, render_mode: Option<&str>) -> Value {
        let wrappers: Vec<Value> = self
            .wrappers
            .iter()
            .map(|(class, kwargs)| json!({"class": class, "kwargs": kwargs}))
            .collect();
        json!({
            "op": "make",
            "id": self.id,
            "kwargs": self.kwargs,
            "wrappers": wrappers,
            "max_episode_steps": self.max_episode_steps,
            "render_mode": render_mode,
            "n": n,
        })
    }
}

/// A Gymnasium environment's spaces and registration, as its worker reported them.
#[derive(Debug, Clone, PartialEq)]
pub struct GymSpec {
    /// The id of its registration.
    pub id: String,
    /// The observation's shape.
    pub obs_shape: Vec<usize>,
    /// The observation's dtype (`float32`, `uint8`, `bool`, ...).
    pub obs_dtype: String,
    /// Discrete actions `0..n_actions` (shifted by the space's `start` in Python).
    pub n_actions: usize,
    /// The time limit (`None`: no `TimeLimit` wrapper).
    pub max_episode_steps: Option<u32>,
    /// The registered reward threshold, if any.
    pub reward_threshold: Option<f64>,
    /// Frames per second of its renders, if it says.
    pub render_fps: Option<f64>,
}

impl GymSpec {
    fn from_json(spec: &Value, label: &str) -> Result<Self> {
        let bad = |what: &str| anyhow!("{label}: the worker's spec has {what}");
        let obs_shape = spec["obs_shape"]
            .as_array()
            .ok_or_else(|| bad("no obs_shape"))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| bad("a bad obs_shape"))?;
        let n_actions = spec["n_actions"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| bad("no actions"))?;
        let max_episode_steps = match &spec["max_episode_steps"] {
            Value::Null => None,
            limit => Some(
                limit
                    .as_u64()
                    .and_then(|l| u32::try_from(l).ok())
                    .ok_or_else(|| bad("a bad max_episode_steps"))?,
            ),
        };
        Ok(Self {
            id: spec["id"].as_str().unwrap_or_default().to_owned(),
            obs_dtype: spec["obs_dtype"].as_str().unwrap_or_default().to_owned(),
            obs_shape,
            n_actions,
            max_episode_steps,
            reward_threshold: spec["reward_threshold"].as_f64(),
            render_fps: spec["render_fps"].as_f64(),
        })
    }

    /// Floats per observation.
    pub fn obs_size(&self) -> usize {
        self.obs_shape.iter().product()
    }
}

/// Each worker of a batch and the envs (indices into the batch) it holds.
type Workers = Vec<(Worker, Range<usize>)>;

/// Started workers and the spaces they reported.
type Started = (GymSpec, Workers);

/// What makes two batches' workers interchangeable: interpreter, environment, envs,
/// processes and render mode.
type PoolKey = (PathBuf, GymMake, usize, usize, Option<&'static str>);

/// Workers of batches that were dropped, kept for the next batch of the same kind (an
/// evaluation every few thousand steps would otherwise start Python each time). At most
/// [`IDLE_BATCHES`] batches' worth; they end with the process.
static IDLE: LazyLock<Mutex<Vec<(PoolKey, Started)>>> = LazyLock::new(Default::default);

/// Most idle batches of workers kept.
const IDLE_BATCHES: usize = 4;

impl Drop for GymEnvs {
    fn drop(&mut self) {
        let key = self.pool_key();
        if let (Some(started), Ok(mut idle)) = (self.started.take(), IDLE.lock()) {
            // A worker that failed may be dead or half-way through a step: not kept.
            if self.healthy {
                idle.push((key, started));
                if idle.len() > IDLE_BATCHES {
                    idle.remove(0);
                }
            }
        }
    }
}

/// N envs of one Gymnasium environment, stepped together with auto-reset, in one or more
/// worker processes, which start at the first reset.
pub struct GymEnvs {
    python: PathBuf,
    make: GymMake,
    processes: usize,
    render_mode: Option<&'static str>,
    label: String,
    /// The spaces the workers reported, and each worker with the envs (indices into the
    /// batch) it holds; `None` until they start.
    started: Option<Started>,
    obs: Vec<f32>,
    final_obs: Vec<f32>,
    rewards: Vec<f32>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    elapsed: Vec<u32>,
    episode_lengths: Vec<u32>,
    /// Reset since the workers started: steps are allowed.
    reset: bool,
    /// No request to the workers has failed.
    healthy: bool,
    /// What env `i`'s first reset is seeded from.
    seed: u64,
    /// Scratch for what crosses the shared memory in other types.
    scratch_f64: Vec<f64>,
    scratch_u8: Vec<u8>,
}

impl std::fmt::Debug for GymEnvs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GymEnvs")
            .field("env", &self.label)
            .field("envs", &self.len())
            .field("processes", &self.processes)
            .field("started", &self.started.is_some())
            .finish()
    }
}

/// Starts the workers of `n` envs of `make` split over `processes`; each must report the
/// same spaces.
fn start_workers(
    python: &Path,
    make: &GymMake,
    n: usize,
    processes: usize,
    render_mode: Option<&str>,
) -> Result<Started> {
    let label = make.label();
    let processes = processes.clamp(1, n);
    let mut workers = Vec::with_capacity(processes);
    let mut spec: Option<GymSpec> = None;
    for part in 0..processes {
        let envs = n * part / processes..n * (part + 1) / processes;
        let mut worker = Worker::spawn(python, &label, make.timeout)?;
        let reply = worker.request(&make.request(envs.len(), render_mode))?;
        let this = GymSpec::from_json(&reply.json["spec"], &label)?;
        if let Some(first) = &spec {
            if *first != this {
                bail!("{label}: its workers report different spaces ({first:?}, {this:?})");
            }
        }
        let layout = Layout::new(envs.len(), this.obs_size())
            .ok_or_else(|| anyhow!("{label}: its observations are too large to share"))?;
        worker.attach(layout)?;
        spec = Some(this);
        workers.push((worker, envs));
    }
    Ok((spec.context("no worker started")?, workers))
}

impl GymEnvs {
    /// `n` envs (at least one) of `make`, to be split over `processes` workers started with
    /// `python` at the first reset, env `i` seeded with [`env_seed`]`(seed, i)` there;
    /// `render_mode` is Gymnasium's (`Some("rgb_array")` for [`GymEnvs::render`]).
    pub fn new(
        python: &Path,
        make: &GymMake,
        n: usize,
        processes: usize,
        seed: u64,
        render_mode: Option<&'static str>,
    ) -> Self {
        let n = n.max(1);
        Self {
            python: python.to_path_buf(),
            make: make.clone(),
            processes,
            render_mode,
            label: make.label(),
            started: None,
            obs: Vec::new(),
            final_obs: Vec::new(),
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            elapsed: vec![0; n],
            episode_lengths: vec![0; n],
            reset: false,
            healthy: true,
            seed,
            scratch_f64: vec![0.0; n],
            scratch_u8: vec![0; n],
        }
    }

    /// The spaces and registration of `make`, as a worker started for it reports them.
    pub fn probe(python: &Path, make: &GymMake) -> Result<GymSpec> {
        start_workers(python, make, 1, 1, None).map(|(spec, _)| spec)
    }

    /// What workers of this batch are kept idle under, for another batch of the same kind.
    fn pool_key(&self) -> PoolKey {
        (
            self.python.clone(),
            self.make.clone(),
            self.len(),
            self.processes,
            self.render_mode,
        )
    }

    /// The workers, started if they were not (or taken from those a batch of the same kind
    /// left idle: every reset seeds the envs anew, so they serve as well as new ones).
    fn workers(&mut self) -> Result<(&GymSpec, &mut Workers)> {
        if self.started.is_none() {
            let n = self.len();
            let key = self.pool_key();
            let idle = IDLE.lock().ok().and_then(|mut idle| {
                let at = idle.iter().position(|(k, _)| *k == key)?;
                Some(idle.remove(at).1)
            });
            let started = match idle {
                Some(started) => started,
                None => start_workers(
                    &self.python,
                    &self.make,
                    n,
                    self.processes,
                    self.render_mode,
                )?,
            };
            let obs_size = started.0.obs_size();
            self.obs = vec![0.0; n * obs_size];
            self.final_obs = vec![0.0; n * obs_size];
            self.started = Some(started);
        }
        match &mut self.started {
            Some((spec, workers)) => Ok((spec, workers)),
            None => bail!("{}: its workers did not start", self.label),
        }
    }

    /// The environment's spaces and registration, once the workers have started.
    pub fn spec(&self) -> Option<&GymSpec> {
        self.started.as_ref().map(|(spec, _)| spec)
    }

    /// Number of envs.
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// True for a batch of zero envs (never: [`GymEnvs::new`] makes at least one).
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    /// Starts an episode in every env, env `i` seeded with [`env_seed`]`(seed, i)` (the seed
    /// the batch was made with); returns the flat observations.
    pub fn reset_all(&mut self) -> Result<&[f32]> {
        let seed = self.seed;
        self.workers()?;
        self.healthy = false;
        let Some((spec, workers)) = &mut self.started else {
            bail!("{}: its workers did not start", self.label);
        };
        let size = spec.obs_size();
        for (worker, envs) in workers {
            let seeds: Vec<u64> = envs.clone().map(|i| env_seed(seed, i)).collect();
            worker.control(&json!({"op": "reset", "seeds": seeds}))?;
            let layout = worker.layout()?;
            worker.shm().read(
                layout.obs,
                &mut self.obs[envs.start * size..envs.end * size],
            );
        }
        self.elapsed.fill(0);
        self.terminated.fill(false);
        self.truncated.fill(false);
        self.reset = true;
        self.healthy = true;
        Ok(&self.obs)
    }

    /// Steps every env with its action, resetting those whose episode ends. An invalid
    /// action or a step before [`GymEnvs::reset_all`] is refused before anything is sent.
    pub fn step(&mut self, actions: &[i64]) -> Result<()> {
        let n = self.len();
        if actions.len() != n {
            return Err(EnvError::ActionCount {
                expected: n,
                got: actions.len(),
            }
            .into());
        }
        let (Some((spec, workers)), true) = (&mut self.started, self.reset) else {
            return Err(EnvError::NeedsReset.into());
        };
        if let Some(&action) = actions
            .iter()
            .find(|&&a| usize::try_from(a).map_or(true, |a| a >= spec.n_actions))
        {
            bail!(
                "invalid {} action {action}: expected 0 to {}",
                self.label,
                spec.n_actions - 1
            );
        }
        // Every worker steps at once; then each is read back in turn.
        self.healthy = false;
        for (worker, envs) in workers.iter_mut() {
            let layout = worker.layout()?;
            worker.shm().write(layout.actions, &actions[envs.clone()]);
            worker.start_step()?;
        }
        let size = spec.obs_size();
        for (worker, envs) in workers.iter_mut() {
            worker.finish_step()?;
            let layout = worker.layout()?;
            let shm = worker.shm();
            let (obs, floats) = (envs.start * size..envs.end * size, envs.clone());
            shm.read(layout.obs, &mut self.obs[obs.clone()]);
            shm.read(layout.final_obs, &mut self.final_obs[obs]);
            shm.read(layout.rewards, &mut self.scratch_f64[floats.clone()]);
            for (reward, &raw) in self.rewards[floats.clone()]
                .iter_mut()
                .zip(&self.scratch_f64[floats.clone()])
            {
                *reward = raw as f32;
            }
            shm.read(layout.terminated, &mut self.scratch_u8[floats.clone()]);
            for (flag, &raw) in self.terminated[floats.clone()]
                .iter_mut()
                .zip(&self.scratch_u8[floats.clone()])
            {
                *flag = raw != 0;
            }
            shm.read(layout.truncated, &mut self.scratch_u8[floats.clone()]);
            for (flag, &raw) in self.truncated[floats.clone()]
                .iter_mut()
                .zip(&self.scratch_u8[floats])
            {
                *flag = raw != 0;
            }
        }
        for i in 0..n {
            self.elapsed[i] += 1;
            if self.terminated[i] || self.truncated[i] {
                self.episode_lengths[i] = self.elapsed[i];
                self.elapsed[i] = 0;
            }
        }
        self.healthy = true;
        Ok(())
    }

    /// Observations after the last call, flat; for envs that just ended, the first
    /// observation of their new episode.
    pub fn obs(&self) -> &[f32] {
        &self.obs
    }

    /// Flat observations that ended episodes (meaningful where an episode just ended).
    pub fn final_obs(&self) -> &[f32] {
        &self.final_obs
    }

    /// Rewards of the last step (Gymnasium's float64, as float32).
    pub fn rewards(&self) -> &[f32] {
        &self.rewards
    }

    /// Per env: the last step ended its episode in a terminal state.
    pub fn terminated(&self) -> &[bool] {
        &self.terminated
    }

    /// Per env: the last step ended its episode by truncation (the time limit).
    pub fn truncated(&self) -> &[bool] {
        &self.truncated
    }

    /// Per env: length of the episode that just ended; meaningful only where it ended.
    pub fn episode_lengths(&self) -> &[u32] {
        &self.episode_lengths
    }

    /// Env `index`'s `rgb_array` render: (height, width, RGB bytes). The batch must have been
    /// made with `render_mode` `rgb_array`.
    pub fn render(&mut self, index: usize) -> Result<(usize, usize, Vec<u8>)> {
        self.workers()?;
        self.healthy = false;
        let Some((_, workers)) = &mut self.started else {
            bail!("{}: its workers did not start", self.label);
        };
        let (worker, envs) = workers
            .iter_mut()
            .find(|(_, envs)| envs.contains(&index))
            .with_context(|| format!("no env {index} to render"))?;
        let reply = worker.control(&json!({"op": "render", "index": index - envs.start}))?;
        self.healthy = true;
        let shape: Vec<usize> = reply.json["frame"]
            .as_array()
            .map(|dims| {
                dims.iter()
                    .filter_map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                    .collect()
            })
            .unwrap_or_default();
        let pixels = reply.blob.unwrap_or_default();
        match shape.as_slice() {
            &[height, width, 3] if height * width * 3 == pixels.len() => {
                Ok((height, width, pixels))
            }
            _ => bail!("{}: its render is not an RGB frame ({shape:?})", self.label),
        }
    }
}

impl VecEnv for GymEnvs {
    fn len(&self) -> usize {
        GymEnvs::len(self)
    }

    fn is_whole(&self) -> bool {
        true
    }

    fn max_episode_steps(&self) -> u32 {
        self.make
            .max_episode_steps
            .or(self.spec().and_then(|spec| spec.max_episode_steps))
            .unwrap_or(u32::MAX)
    }

    fn reset_all(&mut self) -> Result<()> {
        GymEnvs::reset_all(self).map(drop)
    }

    fn step(&mut self, actions: &[i64]) -> Result<()> {
        GymEnvs::step(self, actions)
    }

    fn obs(&self) -> &[f32] {
        GymEnvs::obs(self)
    }

    fn final_obs(&self) -> &[f32] {
        GymEnvs::final_obs(self)
    }

    fn rewards(&self) -> &[f32] {
        GymEnvs::rewards(self)
    }

    fn terminated(&self) -> &[bool] {
        GymEnvs::terminated(self)
    }

    fn truncated(&self) -> &[bool] {
        GymEnvs::truncated(self)
    }

    fn episode_lengths(&self) -> &[u32] {
        GymEnvs::episode_lengths(self)
    }

    fn to_json(&self) -> Option<serde_json::Result<String>> {
        None
    }
}

/// One env of a Gymnasium environment, drawn after each step by its `rgb_array` render, for
/// `qnet render`.
#[derive(Debug)]
pub struct Drawn {
    envs: GymEnvs,
    steps: u32,
}

impl Drawn {
    /// One env of `make`, seeded with [`env_seed`]`(seed, 0)` (a batch's first env), rendering.
    pub fn new(python: &Path, make: &GymMake, seed: u64) -> Self {
        Self {
            envs: GymEnvs::new(python, make, 1, 1, seed, Some("rgb_array")),
            steps: 0,
        }
    }
}

impl DrawnEnv for Drawn {
    fn fps(&self) -> u32 {
        // Gymnasium's default for environments that do not say.
        self.envs
            .spec()
            .and_then(|spec| spec.render_fps)
            .filter(|fps| fps.is_finite() && *fps >= 1.0)
            .map_or(30, |fps| fps.round().min(100.0) as u32)
    }

    fn reset(&mut self) -> Result<&[f32]> {
        self.steps = 0;
        self.envs.reset_all()
    }

    fn step(&mut self, action: i64) -> Result<Outcome> {
        self.envs.step(&[action])?;
        self.steps += 1;
        Ok(Outcome {
            reward: self.envs.rewards[0],
            terminated: self.envs.terminated[0],
            truncated: self.envs.truncated[0],
        })
    }

    fn obs(&self) -> &[f32] {
        // After an episode's last step the batch has reset already; the frame drawn last is
        // of the state before, and the episode ends there.
        &self.envs.obs
    }

    fn frame(&mut self, episode_return: f64) -> Result<Frame> {
        let (height, width, pixels) = self.envs.render(0)?;
        let (Ok(width), Ok(height)) = (u32::try_from(width), u32::try_from(height)) else {
            bail!("{}: its render is too large to draw", self.envs.label);
        };
        rgb_frame(width, height, &pixels, self.steps, episode_return)
    }
}

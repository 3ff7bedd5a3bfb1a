//! Runs grouped by environment, then by setting: the report's sections and its groups.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::names::group_names;
use crate::config::{Config, DeviceSpec, EnvId, ReplayDevice};
use crate::many::sweep::RunState;
use crate::platform::read::load_config;

/// One run directory as the report reads it.
#[derive(Debug, Clone)]
pub struct Run {
    /// Its directory.
    pub dir: PathBuf,
    /// Its resolved config.
    pub config: Config,
    /// How far it got.
    pub state: RunState,
}

impl Run {
    /// Reads the run in `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        Ok(Self {
            config: load_config(&dir.join("config.yaml"), &[])
                .with_context(|| format!("reading the run {}", dir.display()))?,
            state: RunState::of(dir)?,
            dir: dir.to_path_buf(),
        })
    }

    /// Its config with what does not change its results (seed, devices, checkpoints)
    /// set to the defaults: runs with equal keys belong to one group.
    fn group_key(&self) -> Config {
        let mut cfg = self.config.clone();
        let defaults = Config::default();
        cfg.seed = 0;
        cfg.device = DeviceSpec::Auto;
        cfg.replay.device = ReplayDevice::Auto;
        cfg.checkpoint = defaults.checkpoint;
        cfg
    }
}

/// The runs of one setting of one environment.
#[derive(Debug)]
pub(super) struct Setting<'r> {
    /// The environment its runs played.
    pub env: &'r EnvId,
    /// What tells it from the other settings of its environment.
    pub name: String,
    /// Its runs, in the order they were found.
    pub runs: Vec<&'r Run>,
}

/// `runs` grouped by environment, the environments in the order their first run comes, and
/// within each by setting (its config less what does not change results), in the same order.
/// Each setting is named apart from its environment's other settings only: the section it is
/// reported in already names the environment.
pub(super) fn settings(runs: &[Run]) -> Result<Vec<Setting<'_>>> {
    let mut envs: Vec<&EnvId> = Vec::new();
    for run in runs {
        if !envs.contains(&&run.config.env.id) {
            envs.push(&run.config.env.id);
        }
    }
    let mut settings = Vec::new();
    for env in envs {
        let mut keys: Vec<Config> = Vec::new();
        let mut members: Vec<Vec<&Run>> = Vec::new();
        for run in runs.iter().filter(|run| run.config.env.id == *env) {
            let key = run.group_key();
            match keys.iter().position(|k| *k == key) {
                Some(i) => members[i].push(run),
                None => {
                    keys.push(key);
                    members.push(vec![run]);
                }
            }
        }
        let names = group_names(&keys)?;
        settings.extend(names.into_iter().zip(members).map(|(name, runs)| Setting {
            env,
            name,
            runs,
        }));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(env: &str, lr: f64, seed: u64) -> Run {
        let env: EnvId = env.parse().expect("an id");
        let mut config = Config::default();
        config.env.id = env.clone();
        config.optimizer.lr = lr;
        config.seed = seed;
        Run {
            dir: PathBuf::from(format!("{}/{lr}/seed{seed}", env.as_str())),
            config,
            state: RunState::New,
        }
    }

    /// (environment, name, the runs' directories) of each setting.
    fn summary(settings: &[Setting<'_>]) -> Vec<(EnvId, String, Vec<String>)> {
        settings
            .iter()
            .map(|s| {
                let dirs = s.runs.iter().map(|r| r.dir.display().to_string());
                (s.env.clone(), s.name.clone(), dirs.collect())
            })
            .collect()
    }

    #[test]
    fn runs_group_by_environment_then_setting_named_within_their_environment() -> Result<()> {
        let [acrobot, cartpole, mountain_car] = ["Acrobot-v1", "CartPole-v1", "MountainCar-v0"];
        let id = |name: &str| -> EnvId { name.parse().expect("an id") };
        let runs = [
            run(acrobot, 1e-3, 0),
            run(cartpole, 1e-3, 0),
            run(acrobot, 3e-3, 0),
            run(mountain_car, 1e-3, 0),
            run(cartpole, 1e-3, 1),
            run(acrobot, 1e-3, 1),
        ];
        let owned = |s: &[&str]| s.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            summary(&settings(&runs)?),
            [
                (
                    id(acrobot),
                    "optimizer.lr=0.001".to_owned(),
                    owned(&["Acrobot-v1/0.001/seed0", "Acrobot-v1/0.001/seed1"])
                ),
                (
                    id(acrobot),
                    "optimizer.lr=0.003".to_owned(),
                    owned(&["Acrobot-v1/0.003/seed0"])
                ),
                // A lone setting of its environment is named by its experiment, and no name
                // repeats the environment its section names.
                (
                    id(cartpole),
                    "cartpole".to_owned(),
                    owned(&["CartPole-v1/0.001/seed0", "CartPole-v1/0.001/seed1"])
                ),
                (
                    id(mountain_car),
                    "cartpole".to_owned(),
                    owned(&["MountainCar-v0/0.001/seed0"])
                ),
            ]
        );
        Ok(())
    }

    #[test]
    fn seeds_and_devices_do_not_split_a_setting() -> Result<()> {
        let mut other_device = run("CartPole-v1", 1e-3, 5);
        other_device.config.device = DeviceSpec::Cpu;
        let runs = [run("CartPole-v1", 1e-3, 0), other_device];
        let found = settings(&runs)?;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].runs.len(), 2);
        Ok(())
    }
}

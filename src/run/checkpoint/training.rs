//! The resumable training checkpoint: one safetensors file in which each component of a run
//! (the learner, the replay buffer, the loop with its envs and RNGs, the records, the best
//! model) keeps a part of its own. A part is named arrays, stored as `<part>/<array>` (f32,
//! or f64 where sums must restore bit for bit), and a small state as JSON in the file's
//! metadata under `state/<part>`. Components hand their parts over and take them back
//! through [`Checkpointed`]; this module knows the layout, not what the parts mean. One file,
//! written atomically, so a kill at any instant leaves the previous checkpoint intact.

use crate::platform::read::read_bytes;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::{Dtype, SafeTensors};
use serde::de::DeserializeOwned;

use crate::learn::state::{Checkpointed, Part};
use crate::platform::atomic::write_atomic;

/// File name of the training checkpoint inside a run directory.
pub const FILE_NAME: &str = "checkpoint.safetensors";
const FORMAT_KEY: &str = "format";
const FORMAT: &str = "qnet-training-checkpoint-v2";
const CONFIG_KEY: &str = "config";
/// Metadata keys of the parts' states begin with this.
const STATE_PREFIX: &str = "state/";

/// The names of a training checkpoint's parts, one per component of a run.
pub mod part {
    /// Online and target networks, Adam's moments and steps, pending update statistics.
    pub const LEARNER: &str = "learner";
    /// The replay rows, the next slot, the priorities.
    pub const REPLAY: &str = "replay";
    /// The loop's counters, RNGs, envs and n-step windows.
    pub const LOOP: &str = "loop";
    /// How far metrics.csv and the event file had been written.
    pub const RECORDS: &str = "records";
    /// The best periodic evaluation and its parameters.
    pub const BEST: &str = "best";
}

/// Everything a checkpoint holds: the run's config and one part per component.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingCheckpoint {
    /// The resolved config the run was started with, as YAML.
    pub config_yaml: String,
    /// The components' parts, by name ([`part`]).
    pub parts: BTreeMap<String, Part>,
}

impl TrainingCheckpoint {
    /// Part `name`.
    pub fn part(&self, name: &str) -> Result<&Part> {
        self.parts
            .get(name)
            .with_context(|| format!("the checkpoint has no '{name}' part"))
    }

    /// Hands part `name` back to `component`.
    pub fn restore(&self, name: &str, component: &mut impl Checkpointed) -> Result<()> {
        component
            .load_part(self.part(name)?)
            .with_context(|| format!("restoring the checkpoint's '{name}' part"))
    }

    /// The state of part `name`, decoded.
    pub fn state<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        self.part(name)?
            .state()
            .with_context(|| format!("reading the checkpoint's '{name}' part"))
    }

    /// Writes the checkpoint to `path`, atomically, streaming each array to the file (no
    /// copy of the replay buffer is made on the way).
    pub fn save(&self, path: &Path) -> Result<()> {
        let header = self.header()?;
        write_atomic(path, |file| {
            let mut out = BufWriter::new(file);
            out.write_all(&(header.len() as u64).to_le_bytes())?;
            out.write_all(&header)?;
            for part in self.parts.values() {
                for value in part.f32s.values().flatten() {
                    out.write_all(&value.to_le_bytes())?;
                }
            }
            for part in self.parts.values() {
                for value in part.f64s.values().flatten() {
                    out.write_all(&value.to_le_bytes())?;
                }
            }
            out.flush()?;
            Ok(())
        })
    }

    /// The safetensors JSON header (keys sorted, so equal checkpoints are equal bytes),
    /// padded with spaces to a multiple of 8 bytes as the format asks. Arrays appear in the
    /// order [`TrainingCheckpoint::save`] writes them: every part's f32 arrays, then its f64s.
    fn header(&self) -> Result<Vec<u8>> {
        let mut header = serde_json::Map::new();
        let mut offset = 0usize;
        let f32s = self.parts.iter().flat_map(|(part, p)| {
            p.f32s
                .iter()
                .map(move |(name, v)| (part, name, "F32", v.len(), 4))
        });
        let f64s = self.parts.iter().flat_map(|(part, p)| {
            p.f64s
                .iter()
                .map(move |(name, v)| (part, name, "F64", v.len(), 8))
        });
        for (part, name, dtype, len, width) in f32s.chain(f64s) {
            if part.contains('/') {
                bail!("a checkpoint part's name may not contain '/': '{part}'");
            }
            let key = format!("{part}/{name}");
            if header.contains_key(&key) {
                bail!("the checkpoint has two arrays named '{key}'");
            }
            let end = offset + width * len;
            header.insert(
                key,
                serde_json::json!({"dtype": dtype, "shape": [len], "data_offsets": [offset, end]}),
            );
            offset = end;
        }
        let mut metadata = serde_json::Map::new();
        metadata.insert(FORMAT_KEY.to_owned(), FORMAT.into());
        metadata.insert(CONFIG_KEY.to_owned(), self.config_yaml.clone().into());
        for (part, p) in &self.parts {
            metadata.insert(format!("{STATE_PREFIX}{part}"), p.state.clone().into());
        }
        header.insert("__metadata__".to_owned(), metadata.into());
        let mut text = serde_json::to_vec(&header).context("encoding the checkpoint header")?;
        text.resize(text.len().div_ceil(8) * 8, b' ');
        Ok(text)
    }

    /// Reads a checkpoint written by [`TrainingCheckpoint::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = read_bytes(path, u64::MAX).with_context(|| {
            format!(
                "reading the training checkpoint {}: a run directory gets one every \
                 checkpoint.every_seconds of training, on Ctrl-C and at the end",
                path.display()
            )
        })?;
        Self::decode(&bytes).with_context(|| match format_of(&bytes) {
            Some(format) if format != FORMAT => {
                format!("{} was written by another version of qnet", path.display())
            }
            _ => format!(
                "{} is not a readable qnet training checkpoint (truncated or corrupt?)",
                path.display()
            ),
        })
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let (_, header) = SafeTensors::read_metadata(bytes)?;
        let metadata = header.metadata().clone().unwrap_or_default();
        match metadata.get(FORMAT_KEY).map(String::as_str) {
            Some(FORMAT) => {}
            Some(other) => bail!(
                "it is format {other}, which this qnet ({}) does not read (it reads \
                 {FORMAT}); finish the run with the qnet that started it, or start it again",
                env!("CARGO_PKG_VERSION")
            ),
            None => bail!("its metadata does not say format {FORMAT}"),
        }
        let config_yaml = metadata
            .get(CONFIG_KEY)
            .cloned()
            .with_context(|| format!("its metadata has no '{CONFIG_KEY}'"))?;
        let mut parts: BTreeMap<String, Part> = metadata
            .iter()
            .filter_map(|(key, state)| {
                let name = key.strip_prefix(STATE_PREFIX)?;
                let part = Part {
                    state: state.clone(),
                    f32s: BTreeMap::new(),
                    f64s: BTreeMap::new(),
                };
                Some((name.to_owned(), part))
            })
            .collect();
        let tensors = SafeTensors::deserialize(bytes)?;
        for (key, view) in tensors.tensors() {
            let Some((part, name)) = key.split_once('/') else {
                bail!("tensor '{key}' is not named <part>/<array>");
            };
            let Some(part) = parts.get_mut(part) else {
                bail!("tensor '{key}' belongs to no part with a state");
            };
            match view.dtype() {
                Dtype::F32 => {
                    let values = view
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    part.f32s.insert(name.to_owned(), values);
                }
                Dtype::F64 => {
                    let values = view
                        .data()
                        .chunks_exact(8)
                        .map(|b| {
                            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                        })
                        .collect();
                    part.f64s.insert(name.to_owned(), values);
                }
                other => bail!("tensor '{key}' is {other:?}, not F32 or F64"),
            }
        }
        Ok(Self { config_yaml, parts })
    }
}

/// The format a checkpoint's metadata names, if its header can be read at all.
fn format_of(bytes: &[u8]) -> Option<String> {
    let (_, header) = SafeTensors::read_metadata(bytes).ok()?;
    header.metadata().as_ref()?.get(FORMAT_KEY).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn sample() -> TrainingCheckpoint {
        let learner = Part {
            state: "{\"adam_steps\":12}".into(),
            f32s: BTreeMap::from([
                ("online".into(), vec![1.5, -2.0, f32::MIN_POSITIVE]),
                ("adam.m".into(), vec![]),
            ]),
            f64s: BTreeMap::new(),
        };
        let replay = Part {
            state: "{\"next\":3}".into(),
            f32s: BTreeMap::from([("rows".into(), vec![0.25; 7])]),
            f64s: BTreeMap::from([("priorities".into(), vec![0.1, 1e-300, 3.0])]),
        };
        let records = Part {
            state: "{\"csv_bytes\":120}".into(),
            f32s: BTreeMap::new(),
            f64s: BTreeMap::new(),
        };
        TrainingCheckpoint {
            config_yaml: "seed: 3\n".into(),
            parts: BTreeMap::from([
                (part::LEARNER.into(), learner),
                (part::REPLAY.into(), replay),
                (part::RECORDS.into(), records),
            ]),
        }
    }

    #[test]
    fn round_trips_bit_for_bit() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(FILE_NAME);
        sample().save(&path)?;
        let loaded = TrainingCheckpoint::load(&path)?;
        assert_eq!(loaded, sample());
        // PyTorch's reader sees each component's arrays under its part's name.
        let bytes = fs::read(&path)?;
        let tensors = SafeTensors::deserialize(&bytes)?;
        let mut names = tensors.names();
        names.sort();
        assert_eq!(
            names,
            [
                "learner/adam.m",
                "learner/online",
                "replay/priorities",
                "replay/rows"
            ]
        );
        let state: serde_json::Value = loaded.state(part::REPLAY)?;
        assert_eq!(state["next"], 3);
        Ok(())
    }

    #[test]
    fn a_missing_part_or_array_is_named() -> Result<()> {
        let checkpoint = sample();
        let err = format!("{:#}", checkpoint.part(part::BEST).unwrap_err());
        assert!(err.contains("no 'best' part"), "{err}");
        let err = format!(
            "{:#}",
            checkpoint.part(part::LEARNER)?.f32s("target").unwrap_err()
        );
        assert!(err.contains("no 'target' array"), "{err}");
        Ok(())
    }

    #[test]
    fn missing_truncated_and_foreign_files_are_named_errors() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(FILE_NAME);
        let err = format!("{:#}", TrainingCheckpoint::load(&path).unwrap_err());
        assert!(err.contains("checkpoint.safetensors"), "{err}");
        sample().save(&path)?;
        let bytes = fs::read(&path)?;
        fs::write(&path, &bytes[..bytes.len() / 2])?;
        let err = format!("{:#}", TrainingCheckpoint::load(&path).unwrap_err());
        assert!(err.contains("truncated or corrupt"), "{err}");
        fs::write(&path, "not a checkpoint")?;
        assert!(TrainingCheckpoint::load(&path).is_err());
        // A checkpoint of an older layout says so.
        let at = bytes
            .windows(FORMAT.len())
            .position(|w| w == FORMAT.as_bytes())
            .context("the format in the header")?;
        let mut old = bytes.clone();
        old[at + FORMAT.len() - 1] = b'1';
        fs::write(&path, old)?;
        let err = format!("{:#}", TrainingCheckpoint::load(&path).unwrap_err());
        assert!(
            err.contains("written by another version of qnet")
                && err.contains("format qnet-training-checkpoint-v1"),
            "{err}"
        );
        Ok(())
    }
}

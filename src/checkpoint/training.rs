//! The resumable training checkpoint: one safetensors file holding every array (network
//! and target weights, Adam moments and replay rows as f32 tensors, replay priorities as
//! f64 tensors, whose sums must restore bit for bit), and the loop's state
//! (counters, RNG and env states, metrics) as JSON in its metadata. One file, written
//! atomically, so a kill at any instant leaves the previous checkpoint intact.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::{Dtype, SafeTensors};

use crate::atomic::write_atomic;

/// File name of the training checkpoint inside a run directory.
pub const FILE_NAME: &str = "checkpoint.safetensors";
const FORMAT_KEY: &str = "format";
const FORMAT: &str = "qnet-training-checkpoint-v1";
const STATE_KEY: &str = "state";
const CONFIG_KEY: &str = "config";

/// Everything a checkpoint holds, opaque to this module.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingCheckpoint {
    /// The resolved config the run was started with, as YAML.
    pub config_yaml: String,
    /// The training loop's state, as JSON.
    pub state_json: String,
    /// Named flat f32 arrays.
    pub arrays: BTreeMap<String, Vec<f32>>,
    /// Named flat f64 arrays.
    pub arrays_f64: BTreeMap<String, Vec<f64>>,
}

impl TrainingCheckpoint {
    /// Writes the checkpoint to `path`, atomically, streaming each array to the file (no
    /// copy of the replay buffer is made on the way).
    pub fn save(&self, path: &Path) -> Result<()> {
        let header = self.header()?;
        write_atomic(path, |file| {
            let mut out = BufWriter::new(file);
            out.write_all(&(header.len() as u64).to_le_bytes())?;
            out.write_all(&header)?;
            for values in self.arrays.values() {
                for value in values {
                    out.write_all(&value.to_le_bytes())?;
                }
            }
            for values in self.arrays_f64.values() {
                for value in values {
                    out.write_all(&value.to_le_bytes())?;
                }
            }
            out.flush()?;
            Ok(())
        })
    }

    /// The safetensors JSON header (keys sorted, so equal checkpoints are equal bytes),
    /// padded with spaces to a multiple of 8 bytes as the format asks.
    fn header(&self) -> Result<Vec<u8>> {
        let mut header = serde_json::Map::new();
        let mut offset = 0usize;
        let sizes = self
            .arrays
            .iter()
            .map(|(name, v)| (name, "F32", v.len(), 4))
            .chain(
                self.arrays_f64
                    .iter()
                    .map(|(name, v)| (name, "F64", v.len(), 8)),
            );
        for (name, dtype, len, width) in sizes {
            if header.contains_key(name) {
                bail!("the checkpoint has two arrays named '{name}'");
            }
            let end = offset + width * len;
            header.insert(
                name.clone(),
                serde_json::json!({"dtype": dtype, "shape": [len], "data_offsets": [offset, end]}),
            );
            offset = end;
        }
        header.insert(
            "__metadata__".to_owned(),
            serde_json::json!({
                FORMAT_KEY: FORMAT,
                STATE_KEY: self.state_json,
                CONFIG_KEY: self.config_yaml,
            }),
        );
        let mut text = serde_json::to_vec(&header).context("encoding the checkpoint header")?;
        text.resize(text.len().div_ceil(8) * 8, b' ');
        Ok(text)
    }

    /// Reads a checkpoint written by [`TrainingCheckpoint::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).with_context(|| {
            format!(
                "reading the training checkpoint {}: a run directory gets one every \
                 checkpoint.every env steps, on Ctrl-C and at the end",
                path.display()
            )
        })?;
        Self::decode(&bytes).with_context(|| {
            format!(
                "{} is not a readable qnet training checkpoint (truncated or corrupt?)",
                path.display()
            )
        })
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let (_, header) = SafeTensors::read_metadata(bytes)?;
        let metadata = header.metadata().clone().unwrap_or_default();
        if metadata.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT) {
            bail!("its metadata does not say format {FORMAT}");
        }
        let field = |key: &str| {
            metadata
                .get(key)
                .cloned()
                .with_context(|| format!("its metadata has no '{key}'"))
        };
        let tensors = SafeTensors::deserialize(bytes)?;
        let (mut arrays, mut arrays_f64) = (BTreeMap::new(), BTreeMap::new());
        for (name, view) in tensors.tensors() {
            match view.dtype() {
                Dtype::F32 => {
                    let values = view
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    arrays.insert(name, values);
                }
                Dtype::F64 => {
                    let values = view
                        .data()
                        .chunks_exact(8)
                        .map(|b| {
                            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                        })
                        .collect();
                    arrays_f64.insert(name, values);
                }
                other => bail!("tensor '{name}' is {other:?}, not F32 or F64"),
            }
        }
        Ok(Self {
            config_yaml: field(CONFIG_KEY)?,
            state_json: field(STATE_KEY)?,
            arrays,
            arrays_f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TrainingCheckpoint {
        TrainingCheckpoint {
            config_yaml: "seed: 3\n".into(),
            state_json: "{\"env_steps\":12}".into(),
            arrays: BTreeMap::from([
                ("online".into(), vec![1.5, -2.0, f32::MIN_POSITIVE]),
                ("replay".into(), vec![]),
            ]),
            arrays_f64: BTreeMap::from([("priorities".into(), vec![0.1, 1e-300, 3.0])]),
        }
    }

    #[test]
    fn round_trips_bit_for_bit() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(FILE_NAME);
        sample().save(&path)?;
        assert_eq!(TrainingCheckpoint::load(&path)?, sample());
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
        Ok(())
    }
}

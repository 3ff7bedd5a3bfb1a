//! qnet's TensorBoard event files are byte-for-byte what TensorBoard's own writer produces
//! for the same events at the same wall times.

use std::fs;

use crate::common::{python_script, text};
use qnet::artifacts::tensorboard::{push_file_version, push_scalar};

#[test]
fn event_files_match_tensorboards_writer_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = 1_795_600_000.125;
    let mut bytes = Vec::new();
    push_file_version(&mut bytes, start);
    let mut scalars = Vec::new();
    // The tags a run writes, with the values and steps it writes, plus edge cases.
    let events: [(&str, i64, f32); 12] = [
        ("train/episode_return", 21, 21.0),
        ("train/episode_length", 21, 21.0),
        ("train/epsilon", 21, 0.997_375),
        ("train/loss", 530, 0.012_345_678),
        ("train/mean_q", 530, -3.25),
        ("eval/mean_return", 500, 9.4),
        ("eval/std_return", 500, 0.0),
        ("perf/env_steps_per_second", 500, 8123.456),
        ("final_eval/mean_return", 50_000, 500.0),
        ("train/loss", 0, f32::MIN_POSITIVE),
        ("train/loss", i64::MAX, -0.0),
        ("train/mean_q", 7, 3.0e38),
    ];
    for (i, (tag, step, value)) in events.into_iter().enumerate() {
        let wall_time = start + 0.5 * i as f64;
        push_scalar(&mut bytes, wall_time, step, tag, value);
        scalars.push(serde_json::json!({
            "wall_time": wall_time, "step": step, "tag": tag, "value": value,
        }));
    }
    let events_file = dir.path().join("events.out.tfevents.1795600000.test.qnet");
    fs::write(&events_file, &bytes).expect("write events");
    let spec = dir.path().join("spec.json");
    let spec_json = serde_json::json!({"file_version_wall_time": start, "scalars": scalars});
    fs::write(&spec, spec_json.to_string()).expect("write spec");

    let output = python_script("tests/python/check_tensorboard.py")
        .arg("bytes")
        .arg(&events_file)
        .arg(&spec)
        .output()
        .expect("python runs");
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("byte-identical"), "{stdout}");
}

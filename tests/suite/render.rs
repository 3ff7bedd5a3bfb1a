//! `qnet render` on each environment: a short-trained model's greedy episode as a GIF of
//! Gymnasium's screen size for that environment, one frame per state, at its render rate.

use std::path::Path;

use crate::common::*;

/// Trains `config` for a few hundred steps into `out`.
fn train_briefly(config: &str, out: &Path) {
    let mut command = qnet();
    command
        .args(["train", "--config", config, "--quiet", "--out"])
        .arg(out);
    for set in [
        "device=cpu",
        "train.total_env_steps=400",
        "replay.learning_starts=200",
        "eval.every=0",
        "eval.final_episodes=1",
    ] {
        command.args(["--set", set]);
    }
    let output = run(&mut command);
    assert!(output.status.success(), "{config}: {:?}", text(&output));
}

/// The step count in `qnet render`'s closing line ("...: 30 steps, return -30, ...").
fn steps_in(stdout: &str) -> usize {
    stdout
        .split(" steps,")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|steps| steps.parse().ok())
        .unwrap_or_else(|| panic!("no step count in {stdout:?}"))
}

#[test]
fn render_draws_acrobot_and_mountaincar_episodes_at_their_own_size_and_rate() {
    let dir = tempfile::tempdir().expect("tempdir");
    // (config, default GIF name, Gymnasium's screen size and render_fps, GIF frame delay in
    // hundredths of a second).
    let cases = [
        ("configs/acrobot.yaml", "acrobot.gif", (500, 500), 15, 7),
        (
            "configs/mountaincar.yaml",
            "mountaincar.gif",
            (600, 400),
            30,
            3,
        ),
    ];
    for (config, gif_name, size, fps, delay) in cases {
        let run_dir = dir.path().join(gif_name.trim_end_matches(".gif"));
        train_briefly(config, &run_dir);
        // No --out: the GIF is named after the environment, in the working directory.
        let output = run(qnet()
            .current_dir(dir.path())
            .args(["render", "--max-steps", "30", "--checkpoint"])
            .arg(&run_dir));
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{config}: {stdout}\n{stderr}");
        let steps = steps_in(&stdout);
        assert!((1..=30).contains(&steps), "{stdout}");
        assert!(
            stdout.contains(&format!("{} frames at {fps} fps", steps + 1)),
            "{stdout}"
        );
        let bytes = std::fs::read(dir.path().join(gif_name)).expect("the GIF named after the env");
        let (screen, frames, delays) = decode_gif(&bytes);
        assert_eq!(screen, size, "{config}");
        assert_eq!(frames, steps + 1, "{config}: a frame per state");
        assert!(delays.iter().all(|&d| d == delay), "{config}: {delays:?}");
    }
}

/// Without `--max-steps` an episode ends at the environment's registered time limit, as `qnet
/// eval` plays it: a MountainCar-v0 model that has not learned to reach the flag runs for 200
/// steps and returns -200.
#[test]
fn render_cuts_an_episode_at_the_environments_time_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    train_briefly("configs/mountaincar.yaml", &run_dir);
    let output = run(qnet()
        .args(["render", "--out"])
        .arg(dir.path().join("episode.gif"))
        .arg("--checkpoint")
        .arg(&run_dir));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("200 steps, return -200,"), "{stdout}");
}

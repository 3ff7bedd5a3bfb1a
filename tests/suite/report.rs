//! `qnet report`: runs found in sweeps and single run directories alike, grouped by
//! environment and setting, and statistics that PyPI's rliable reproduces.

use std::fs;
use std::path::Path;

use crate::common::*;
use qnet::config::{Config, Procedure};
use qnet::platform::read::load_config;
use qnet::run::metrics::{RunStatus, Summary, CSV_HEADER};

/// Final returns of two settings' runs: CartPole's heavy ties at 500, a few collapses.
const A: [f64; 10] = [
    500.0, 500.0, 500.0, 487.3, 500.0, 152.4, 500.0, 431.9, 500.0, 498.2,
];
const B: [f64; 12] = [
    500.0, 213.7, 500.0, 341.0, 189.5, 500.0, 476.1, 402.3, 500.0, 266.6, 500.0, 455.0,
];

/// Writes a finished run with `final_return` into `dir`, as `qnet train` would leave it.
fn fake_run(dir: &Path, lr: f64, seed: u64, final_return: f64) {
    fs::create_dir_all(dir).expect("mkdir");
    let mut config = Config::default();
    config.optimizer.lr = lr;
    config.seed = seed;
    fs::write(dir.join("config.yaml"), config.to_yaml().expect("yaml")).expect("config");
    let solved = (final_return >= 475.0).then_some(10_000 + 500 * seed);
    let summary = Summary {
        status: RunStatus::Finished,
        experiment: config.experiment.clone(),
        env_steps: 50_000,
        gradient_updates: 49_000,
        episodes: 400,
        train_seconds: 6.0,
        env_steps_per_second: 8000.0,
        final_eval_mean: Some(final_return),
        final_eval_std: Some(1.0),
        final_eval_min: Some(final_return - 1.0),
        final_eval_max: Some(final_return + 1.0),
        final_eval_episodes: Some(100),
        final_eval_solved: Some(final_return >= 475.0),
        solved_at_step: solved,
        solved_at_seconds: solved.map(|s| s as f64 / 8000.0),
        confirmed_at_step: None,
        confirmed_at_seconds: None,
        solved_not_judged: None,
        best_eval_mean: Some(final_return.max(480.0)),
        best_eval_step: Some(20_000),
        diverged_at_step: None,
        divergence: None,
        seed,
        device: "cpu".to_owned(),
        qnet_version: env!("CARGO_PKG_VERSION").to_owned(),
        env: None,
        provenance: None,
    };
    summary.write(dir).expect("summary");
    let mut csv = format!("{CSV_HEADER}\n");
    for step in [25_000u64, 50_000] {
        let value = final_return * step as f64 / 50_000.0;
        csv.push_str(&format!("eval,{step},1,,,,,,{value},0,{value},{value},1\n"));
    }
    fs::write(dir.join("metrics.csv"), csv).expect("metrics");
}

fn report_json(out: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(out.join("report.json")).expect("report.json"))
        .expect("json")
}

#[test]
fn statistics_match_rliable() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One setting as a sweep, the other as loose run directories.
    for (seed, score) in A.iter().enumerate() {
        fake_run(
            &dir.path().join(format!("sweep/a/seed{seed}")),
            1e-3,
            seed as u64,
            *score,
        );
    }
    for (seed, score) in B.iter().enumerate() {
        fake_run(
            &dir.path().join(format!("loose-{seed}")),
            3e-3,
            seed as u64,
            *score,
        );
    }
    let out = dir.path().join("report");
    let mut command = qnet();
    command.arg("report").arg(dir.path().join("sweep"));
    for seed in 0..B.len() {
        command.arg(dir.path().join(format!("loose-{seed}")));
    }
    let output = run(command.args(["--reps", "10000", "--out"]).arg(&out));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("| `optimizer.lr=0.001` | 10/10 |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| `optimizer.lr=0.003` | 12/12 |"),
        "{stdout}"
    );
    for file in [
        "report.md",
        "report.csv",
        "report.json",
        "learning_curves.svg",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }

    let report = report_json(&out);
    let groups = report["groups"].as_array().expect("groups");
    let mut scores = serde_json::Map::new();
    let mut results = serde_json::Map::new();
    for (group, expected) in groups.iter().zip([&A[..], &B[..]]) {
        let name = group["name"].as_str().expect("name").to_owned();
        let finals: Vec<f64> = group["scores"]["final_return"]
            .as_array()
            .expect("scores")
            .iter()
            .filter_map(serde_json::Value::as_f64)
            .collect();
        assert_eq!(finals, expected, "{name}");
        let stats = &group["stats"];
        let pair = |key: &str| {
            (
                stats[key]["point"].clone(),
                serde_json::json!([stats[key]["lo"], stats[key]["hi"]]),
            )
        };
        let (iqm, iqm_ci) = pair("final_iqm");
        let (median, median_ci) = pair("final_median");
        let (mean, mean_ci) = pair("final_mean");
        let (success, success_ci) = pair("success_rate");
        results.insert(
            name.clone(),
            serde_json::json!({
                "threshold": 475.0,
                "iqm": iqm, "iqm_ci": iqm_ci,
                "median": median, "median_ci": median_ci,
                "mean": mean, "mean_ci": mean_ci,
                "success_rate": success, "success_rate_ci": success_ci,
            }),
        );
        scores.insert(name, serde_json::json!(finals));
    }
    let comparison = &report["comparisons"][0];
    let poi = &comparison["probability_of_improvement"];
    let input = serde_json::json!({
        "reps": report["reps"],
        "confidence": report["confidence"],
        "groups": scores,
        "results": results,
        "probability_of_improvement": [{
            "x": comparison["x"], "y": comparison["y"],
            "value": poi["point"], "ci": [poi["lo"], poi["hi"]],
        }],
    });
    let input_path = dir.path().join("rliable-input.json");
    fs::write(&input_path, input.to_string()).expect("write");
    let output = python_script("tests/python/check_rliable.py")
        .arg(&input_path)
        .output()
        .expect("python");
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "rliable disagrees:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OK"), "{stdout}");
}

#[test]
fn reports_are_reproducible_and_name_a_baseline() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (seed, score) in A.iter().enumerate().take(6) {
        fake_run(
            &dir.path().join(format!("a/seed{seed}")),
            1e-3,
            seed as u64,
            *score,
        );
        fake_run(
            &dir.path().join(format!("b/seed{seed}")),
            3e-3,
            seed as u64,
            B[seed],
        );
        fake_run(
            &dir.path().join(format!("c/seed{seed}")),
            1e-2,
            seed as u64,
            500.0,
        );
    }
    let report = |out: &str, extra: &[&str]| {
        let out = dir.path().join(out);
        let output = run(qnet()
            .arg("report")
            .arg(dir.path())
            .args(["--reps", "2000", "--out"])
            .arg(&out)
            .args(extra));
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        (stdout, report_json(&out))
    };
    let (first, json) = report("r1", &[]);
    let (again, _) = report("r2", &[]);
    assert_eq!(first, again.replace("/r2", "/r1"));
    // Three groups: every pair is compared.
    assert_eq!(json["comparisons"].as_array().map(Vec::len), Some(3));
    assert!(
        first.contains("is better than") || first.contains("no clear difference"),
        "{first}"
    );
    let (_, json) = report("r3", &["--baseline", "optimizer.lr=0.001"]);
    let comparisons = json["comparisons"].as_array().expect("comparisons");
    assert_eq!(comparisons.len(), 2);
    assert!(comparisons.iter().all(|c| c["y"] == "optimizer.lr=0.001"));
    // c (all 500) against a: P(c > a) is the share of a's runs below 500, ties half.
    let c_vs_a = comparisons
        .iter()
        .find(|c| c["x"] == "optimizer.lr=0.01")
        .expect("c vs a");
    let below = A[..6].iter().filter(|&&s| s < 500.0).count() as f64;
    let expected = (below + 0.5 * (6.0 - below)) / 6.0;
    let got = c_vs_a["probability_of_improvement"]["point"]
        .as_f64()
        .expect("p");
    assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");

    let output = run(qnet()
        .arg("report")
        .arg(dir.path())
        .args(["--baseline", "nope"]));
    assert_clean_error(&output, &["--baseline \"nope\"", "optimizer.lr=0.001"]);
    let empty = tempfile::tempdir().expect("tempdir");
    let output = run(qnet().arg("report").arg(empty.path()));
    assert_clean_error(&output, &["no qnet runs"]);
}

#[test]
fn a_never_solved_run_counts_at_its_procedures_budget_and_each_run_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runs: Vec<_> = (0..3u64)
        .map(|seed| dir.path().join(format!("tutorial/seed{seed}")))
        .collect();
    for (seed, run_dir) in runs.iter().enumerate() {
        fake_run(run_dir, 1e-3, seed as u64, 200.0);
        // The tutorial ignores train.total_env_steps (50,000 here) and ran its iterations.
        let path = run_dir.join("config.yaml");
        let mut config = load_config(&path, &[]).expect("config");
        config.train.procedure = Procedure::Tutorial;
        fs::write(&path, config.to_yaml().expect("yaml")).expect("config");
        let mut summary = Summary::read(run_dir).expect("read").expect("summary");
        summary.env_steps = 20_000 + 1_000 * seed as u64;
        summary.write(run_dir).expect("summary");
    }
    std::os::unix::fs::symlink(dir.path().join("tutorial"), dir.path().join("link"))
        .expect("symlink");
    let out = dir.path().join("report");
    let output = run(qnet()
        .arg("report")
        .arg(dir.path().join("tutorial"))
        .arg(&runs[0])
        .arg(dir.path().join("link"))
        .args(["--reps", "1000", "--out"])
        .arg(&out));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let group = &report_json(&out)["groups"][0];
    assert_eq!(group["runs"].as_array().map(Vec::len), Some(3), "{group}");
    assert_eq!(
        group["scores"]["steps_to_solve"],
        serde_json::json!([20_000.0, 21_000.0, 22_000.0])
    );
}

#[test]
fn a_sweep_over_environments_reports_each_in_its_own_section() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sweep = dir.path().join("sweep");
    let mut command = qnet();
    command.arg("sweep").arg("--out").arg(&sweep);
    for set in TINY {
        command.args(["--set", set]);
    }
    let output = run(command.args([
        "--grid",
        "env.id=CartPole-v1,Acrobot-v1",
        "--grid",
        "optimizer.lr=1e-3,3e-3",
        "--seeds",
        "2",
        "--jobs",
        "2",
    ]));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let out = dir.path().join("report");
    let output = run(qnet()
        .arg("report")
        .arg(&sweep)
        .args(["--reps", "1000", "--out"])
        .arg(&out));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");

    // A section per environment, in the order the runs were found, each with its threshold,
    // its two settings (named without the environment) and the one comparison between them.
    let md = fs::read_to_string(out.join("report.md")).expect("report.md");
    let acrobot = md
        .find("## Acrobot-v1\n\nSuccess: final return >= -100 (Acrobot-v1's reward threshold).")
        .expect(&md);
    let cartpole = md
        .find("## CartPole-v1\n\nSuccess: final return >= 475 (CartPole-v1's reward threshold).")
        .expect(&md);
    assert!(acrobot < cartpole, "{md}");
    for section in [&md[acrobot..cartpole], &md[cartpole..]] {
        for setting in [
            "| `optimizer.lr=0.001` | 2/2 |",
            "| `optimizer.lr=0.003` | 2/2 |",
        ] {
            assert!(section.contains(setting), "{setting} in\n{section}");
        }
        let compared = "| `optimizer.lr=0.001` | `optimizer.lr=0.003` |";
        assert_eq!(section.matches(compared).count(), 1, "{section}");
        assert!(!section.contains("env.id"), "{section}");
    }

    // Each row of report.json and report.csv names its environment, and a group holds only
    // runs of it: Acrobot's returns are at most 0, CartPole's at least 8.
    let report = report_json(&out);
    assert_eq!(
        report["environments"],
        serde_json::json!([
            {"env": "Acrobot-v1", "threshold": -100.0},
            {"env": "CartPole-v1", "threshold": 475.0},
        ])
    );
    let groups = report["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 4);
    for group in groups {
        let env = group["env"].as_str().expect("env");
        let finals = group["scores"]["final_return"].as_array().expect("scores");
        assert_eq!(finals.len(), 2, "{group}");
        for score in finals.iter().filter_map(serde_json::Value::as_f64) {
            let fits = match env {
                "Acrobot-v1" => (-500.0..=0.0).contains(&score),
                _ => (8.0..=500.0).contains(&score),
            };
            assert!(fits, "{env}: {score}");
        }
        for run_dir in group["runs"].as_array().expect("runs") {
            let run_dir = run_dir.as_str().expect("run dir");
            assert!(run_dir.contains(&format!("env.id={env}")), "{run_dir}");
        }
    }
    let comparisons = report["comparisons"].as_array().expect("comparisons");
    let envs: Vec<&str> = comparisons
        .iter()
        .filter_map(|c| c["env"].as_str())
        .collect();
    assert_eq!(envs, ["Acrobot-v1", "CartPole-v1"]);
    let csv = fs::read_to_string(out.join("report.csv")).expect("report.csv");
    let rows: Vec<&str> = csv
        .lines()
        .map(|l| l.split(",\"optimizer").next().unwrap_or(l))
        .collect();
    assert!(rows[0].starts_with("env,setting,runs,"), "{csv}");
    assert_eq!(
        rows[1..],
        ["Acrobot-v1", "Acrobot-v1", "CartPole-v1", "CartPole-v1"]
    );

    // The plot has a row per environment, its captions naming it.
    let svg = fs::read_to_string(out.join("learning_curves.svg")).expect("svg");
    assert!(svg.contains("height=\"1120\""), "two rows of 560");
    for env in ["Acrobot-v1", "CartPole-v1"] {
        for caption in [
            "Evaluation return: IQM",
            "Performance profile of final returns",
        ] {
            assert!(
                svg.contains(&format!("{env}: {caption}")),
                "{env}: {caption}"
            );
        }
    }

    // A baseline is the group of that name in each environment.
    let output = run(qnet()
        .arg("report")
        .arg(&sweep)
        .args([
            "--reps",
            "1000",
            "--baseline",
            "optimizer.lr=0.003",
            "--out",
        ])
        .arg(&out));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let comparisons = report_json(&out)["comparisons"].clone();
    assert_eq!(
        comparisons.as_array().map(Vec::len),
        Some(2),
        "{comparisons}"
    );
    for (c, env) in comparisons
        .as_array()
        .into_iter()
        .flatten()
        .zip(["Acrobot-v1", "CartPole-v1"])
    {
        assert_eq!(
            (c["env"].as_str(), c["x"].as_str(), c["y"].as_str()),
            (
                Some(env),
                Some("optimizer.lr=0.001"),
                Some("optimizer.lr=0.003")
            )
        );
    }
}

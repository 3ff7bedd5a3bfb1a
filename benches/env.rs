//! Environment throughput: scalar steps/s as a policy loop drives one env, and batched env
//! steps/s on one core, for CartPole-v1, Acrobot-v1 and MountainCar-v0.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use qnet::env::{Acrobot, Batch, CartPole, Dynamics, MountainCar, Single};

/// Steps per scalar benchmark iteration: long enough to cover many episode ends.
const SCALAR_STEPS: u64 = 10_000;
/// Batched steps per benchmark iteration.
const BATCH_STEPS: u64 = 100;

/// Cheap deterministic action pattern over `n_actions` actions, so the benchmark measures the
/// env, not an RNG.
fn action_of(step: u64, index: usize, n_actions: usize) -> i64 {
    (((step.wrapping_mul(0x9E37_79B9) >> 7) ^ index as u64) % n_actions as u64) as i64
}

/// `<name>_scalar/step_and_reset_on_done` and `<name>_batched/{256,1024}` for dynamics `D`.
fn generic<D: Dynamics>(c: &mut Criterion, name: &str) {
    let n_actions = D::SPEC.n_actions;
    let mut group = c.benchmark_group(format!("{name}_scalar"));
    group.throughput(Throughput::Elements(SCALAR_STEPS));
    group.bench_function("step_and_reset_on_done", |b| {
        let mut env = Single::<D>::new(0);
        env.reset();
        b.iter(|| {
            for t in 0..SCALAR_STEPS {
                match env.step(action_of(t, 0, n_actions)) {
                    Ok(outcome) => {
                        black_box(env.obs());
                        if outcome.terminated || outcome.truncated {
                            black_box(env.reset());
                        }
                    }
                    Err(err) => panic!("benchmark loop broke the env contract: {err}"),
                }
            }
        });
    });
    group.finish();

    let mut group = c.benchmark_group(format!("{name}_batched"));
    for n in [256usize, 1024] {
        group.throughput(Throughput::Elements(BATCH_STEPS * n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let mut envs = Batch::<D>::new(n, 0, D::SPEC.max_episode_steps);
            envs.reset_all();
            let actions: Vec<Vec<i64>> = (0..BATCH_STEPS)
                .map(|t| (0..n).map(|i| action_of(t, i, n_actions)).collect())
                .collect();
            b.iter(|| {
                for step_actions in &actions {
                    if let Err(err) = envs.step(step_actions) {
                        panic!("benchmark loop broke the env contract: {err}");
                    }
                    black_box(envs.obs());
                }
            });
        });
    }
    group.finish();
}

fn cartpole(c: &mut Criterion) {
    generic::<CartPole>(c, "cartpole");
}

fn acrobot(c: &mut Criterion) {
    generic::<Acrobot>(c, "acrobot");
}

fn mountain_car(c: &mut Criterion) {
    generic::<MountainCar>(c, "mountaincar");
}

criterion_group!(benches, cartpole, acrobot, mountain_car);
criterion_main!(benches);

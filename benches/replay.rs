//! Replay sampling: a uniform minibatch, and a prioritized one (sum-tree draws, importance
//! weights, then the priority update from TD errors), from a full buffer.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use qnet::env::{CartPole, Dynamics, EnvSpec};
use qnet::learn::replay::{Prioritization, ReplayBuffer, Transition};
use rand::SeedableRng;
use rand_pcg::Pcg64;
use tch::Device;

const BATCH: usize = 128;
/// CartPole-sized rows.
const CARTPOLE: &EnvSpec = &CartPole::SPEC;
const OBS_DIM: usize = CARTPOLE.obs_dim;

fn full_buffer(capacity: usize, prioritized: bool) -> ReplayBuffer {
    let prioritization = prioritized.then_some(Prioritization {
        alpha: 0.6,
        eps: 1e-6,
    });
    let mut buffer = ReplayBuffer::new(
        capacity,
        (OBS_DIM, CartPole::SPEC.n_actions),
        Device::Cpu,
        Device::Cpu,
        prioritization,
    )
    .expect("a replay buffer");
    let obs = [0.1f32; OBS_DIM];
    for i in 0..capacity {
        buffer
            .push(Transition {
                obs: &obs,
                next_obs: &obs,
                action: (i % 2) as i64,
                reward: 1.0,
                terminated: i % 50 == 0,
                discount: 0.99,
            })
            .expect("push");
    }
    buffer
}

fn sampling(c: &mut Criterion) {
    let mut group = c.benchmark_group("replay_sample_128");
    group.throughput(Throughput::Elements(BATCH as u64));
    for capacity in [50_000, 1_000_000] {
        let mut uniform = full_buffer(capacity, false);
        let mut rng = Pcg64::seed_from_u64(1);
        group.bench_with_input(BenchmarkId::new("uniform", capacity), &capacity, |b, _| {
            b.iter(|| {
                black_box(uniform.sample(BATCH, &mut rng, 0.4).expect("sample"));
            })
        });
        let mut prioritized = full_buffer(capacity, true);
        // TD errors as the learner hands them back.
        let td_errors: Vec<f32> = (0..BATCH).map(|i| (i as f32 * 0.37).fract()).collect();
        group.bench_with_input(
            BenchmarkId::new("prioritized_with_update", capacity),
            &capacity,
            |b, _| {
                b.iter(|| {
                    black_box(prioritized.sample(BATCH, &mut rng, 0.4).expect("sample"));
                    prioritized.update_priorities(&td_errors).expect("update");
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, sampling);
criterion_main!(benches);

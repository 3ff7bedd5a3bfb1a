//! The host Adam step (gradient clipping, then the moments and parameters) on a
//! buffer the size of the default network's (4-64-64 with a dueling head: 4,675 parameters).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qnet::learn::optim::{AdamConfig, HostAdam};

const PARAMS: usize = 4 * 64 + 64 + 64 * 64 + 64 + 64 + 1 + 64 * 2 + 2;

fn adam_step(c: &mut Criterion) {
    let config = AdamConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let mut adam = HostAdam::new(config, PARAMS).expect("Adam state");
    let mut params: Vec<f32> = (0..PARAMS).map(|i| (i % 97) as f32 * 1e-2 - 0.5).collect();
    let gradient: Vec<f32> = (0..PARAMS).map(|i| (i % 89) as f32 * 1e-3 - 0.04).collect();
    let mut grad = gradient.clone();
    let mut group = c.benchmark_group("adam_step_on_host");
    group.throughput(Throughput::Elements(PARAMS as u64));
    for (name, max_norm) in [("no_clipping", None), ("clipped_to_0.1", Some(0.1))] {
        group.bench_function(name, |b| {
            b.iter(|| {
                grad.copy_from_slice(&gradient);
                adam.step(black_box(&mut params), &mut grad, max_norm, 1e-3)
                    .expect("a step");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, adam_step);
criterion_main!(benches);

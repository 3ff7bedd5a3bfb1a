use super::checkpoint::{ReplayState, ROWS};
use super::*;
use crate::env::{CartPole, Dynamics, EnvSpec};
use crate::learn::rows::Rows;
use crate::learn::state::Checkpointed;
use rand::SeedableRng;
use rand_pcg::Pcg64;

/// Floats per CartPole observation.
const CARTPOLE: &EnvSpec = &CartPole::SPEC;
const OBS_DIM: usize = CARTPOLE.obs_dim;
/// CartPole-sized rows.
const LAYOUT: RowLayout = RowLayout::new(OBS_DIM);
const ROW: usize = LAYOUT.floats();
const ACTION: usize = LAYOUT.action();
const REWARD: usize = LAYOUT.reward();
const DISCOUNT: usize = LAYOUT.discount();
const TERMINATED: usize = LAYOUT.terminated();

fn push_numbered(buffer: &mut ReplayBuffer, n: usize) -> Result<()> {
    for i in 0..n {
        let v = i as f32;
        buffer.push(Transition {
            obs: &[v; OBS_DIM],
            next_obs: &[v + 0.5; OBS_DIM],
            action: (i % 2) as i64,
            reward: v,
            terminated: i % 3 == 0,
            discount: 0.5 + 0.01 * v,
        })?;
    }
    Ok(())
}

fn uniform(capacity: usize) -> Result<ReplayBuffer> {
    ReplayBuffer::new(capacity, (OBS_DIM, 2), Device::Cpu, Device::Cpu, None)
}

fn prioritized(capacity: usize) -> Result<ReplayBuffer> {
    let p = Prioritization {
        alpha: 1.0,
        eps: 1e-6,
    };
    ReplayBuffer::new(capacity, (OBS_DIM, 2), Device::Cpu, Device::Cpu, Some(p))
}

#[test]
fn ring_overwrites_the_oldest() -> Result<()> {
    let mut buffer = uniform(4)?;
    push_numbered(&mut buffer, 6)?;
    assert_eq!(buffer.len(), 4);
    let part = buffer.save_part()?;
    let rewards: Vec<f32> = part
        .f32s(ROWS)?
        .chunks_exact(ROW)
        .map(|r| r[REWARD])
        .collect();
    assert_eq!(rewards, [4.0, 5.0, 2.0, 3.0]);
    assert_eq!(part.state::<ReplayState>()?.next, 2);
    Ok(())
}

#[test]
fn samples_are_consistent_rows_and_cover_the_buffer() -> Result<()> {
    let mut buffer = uniform(100)?;
    push_numbered(&mut buffer, 10)?;
    let mut rng = Pcg64::seed_from_u64(3);
    let mut seen = [false; 10];
    for _ in 0..50 {
        let batch = buffer.sample(8, &mut rng, 0.0)?.to_tensors(Device::Cpu)?;
        assert_eq!(batch.obs.size(), [8, OBS_DIM as i64]);
        assert_eq!(batch.actions.size(), [8, 1]);
        assert!(batch.weights.is_none());
        for b in 0..8 {
            let v = batch.obs.double_value(&[b, 0]);
            let i = v as usize;
            seen[i] = true;
            assert_eq!(batch.next_obs.double_value(&[b, 3]), v + 0.5);
            assert_eq!(batch.rewards.double_value(&[b]), v);
            assert_eq!(batch.actions.int64_value(&[b, 0]), (i % 2) as i64);
            let terminated = if i % 3 == 0 { 1.0 } else { 0.0 };
            assert_eq!(batch.terminated.double_value(&[b]), terminated);
            let discount = f64::from(0.5 + 0.01 * i as f32);
            assert_eq!(batch.discounts.double_value(&[b]), discount);
        }
    }
    assert!(
        seen.iter().all(|&s| s),
        "uniform sampling missed a transition"
    );
    Ok(())
}

/// A minibatch read in place as columns holds what the tensors made of it hold.
#[test]
fn a_minibatchs_columns_are_its_tensors_columns() -> Result<()> {
    let mut buffer = prioritized(20)?;
    push_numbered(&mut buffer, 20)?;
    let sampled = buffer.sample(6, &mut Pcg64::seed_from_u64(4), 0.5)?;
    let batch = sampled.to_tensors(Device::Cpu)?;
    let parts = sampled.host_columns().expect("host rows");
    let column = |t: &Tensor| Vec::<f32>::try_from(t.to_kind(Kind::Float).reshape([-1]));
    let read = |rows: Rows<'_>, cols: usize| -> Vec<f32> {
        (0..rows.rows())
            .flat_map(|r| (0..cols).map(move |c| rows.at(r, c)))
            .collect()
    };
    assert_eq!(read(parts.obs, OBS_DIM), column(&batch.obs)?);
    assert_eq!(read(parts.next_obs, OBS_DIM), column(&batch.next_obs)?);
    assert_eq!(read(parts.actions, 1), column(&batch.actions)?);
    assert_eq!(read(parts.rewards, 1), column(&batch.rewards)?);
    assert_eq!(read(parts.discounts, 1), column(&batch.discounts)?);
    assert_eq!(read(parts.terminated, 1), column(&batch.terminated)?);
    let weights = batch.weights.as_ref().map(column).transpose()?;
    assert_eq!(parts.weights.map(<[f32]>::to_vec), weights);
    // Rows that are not whole, or weights that do not match them, are refused.
    assert!(Minibatch::from_rows(&[0.0; ROW + 1], None, LAYOUT).is_err());
    assert!(Minibatch::from_rows(&[0.0; 2 * ROW], Some(&[1.0]), LAYOUT).is_err());
    // Rows gathered on a device make the same tensors, and no host columns.
    let rows = Tensor::from_slice(&buffer.gathered).view([6, ROW as i64]);
    let on_device = Minibatch::on_device(&rows, Some(&buffer.weights), LAYOUT);
    assert!(on_device.host_columns().is_none());
    let again = on_device.to_tensors(Device::Cpu)?;
    assert!(again.obs.equal(&batch.obs) && again.terminated.equal(&batch.terminated));
    let same_weights = again.weights.zip(batch.weights).map(|(a, b)| a.equal(&b));
    assert_eq!(same_weights, Some(true));
    Ok(())
}

#[test]
fn its_checkpoint_part_round_trips_and_samples_identically() -> Result<()> {
    for make in [uniform, prioritized] {
        let mut a = make(7)?;
        push_numbered(&mut a, 12)?;
        let mut b = make(7)?;
        b.load_part(&a.save_part()?)?;
        assert_eq!(a.save_part()?, b.save_part()?);
        push_numbered(&mut a, 3)?;
        push_numbered(&mut b, 3)?;
        assert_eq!(a.save_part()?, b.save_part()?);
        let batch_a = a
            .sample(16, &mut Pcg64::seed_from_u64(1), 0.5)?
            .to_tensors(Device::Cpu)?;
        let batch_b = b
            .sample(16, &mut Pcg64::seed_from_u64(1), 0.5)?
            .to_tensors(Device::Cpu)?;
        assert!(batch_a.obs.equal(&batch_b.obs));
        // A part that cannot come from a buffer of this size is refused.
        let mut small = make(3)?;
        assert!(small.load_part(&a.save_part()?).is_err());
    }
    // Priorities and no priorities do not mix.
    let mut with = prioritized(7)?;
    push_numbered(&mut with, 2)?;
    assert!(uniform(7)?.load_part(&with.save_part()?).is_err());
    Ok(())
}

#[test]
fn device_storage_code_path_matches_host_storage() -> Result<()> {
    // Exercised on the CPU through the Device variant's staging and index_copy_ path,
    // uniform and prioritized (priorities stay on the host either way).
    for make in [uniform, prioritized] {
        let mut host = make(5)?;
        let mut staged = make(5)?;
        staged.storage = Storage::Device {
            rows: Tensor::zeros([5, ROW as i64], (Kind::Float, Device::Cpu)),
            staged: Vec::new(),
            staged_slots: Vec::new(),
        };
        push_numbered(&mut host, 13)?;
        push_numbered(&mut staged, 13)?;
        assert_eq!(host.save_part()?, staged.save_part()?);
        let mut r1 = Pcg64::seed_from_u64(9);
        let mut r2 = Pcg64::seed_from_u64(9);
        for _ in 0..3 {
            // Training on the CPU, both hand over rows in host memory.
            let columns = |batch: Minibatch<'_>| {
                batch.host_columns().map(|c| {
                    let rewards: Vec<f32> =
                        (0..c.rewards.rows()).map(|i| c.rewards.at(i, 0)).collect();
                    (rewards, c.weights.map(<[f32]>::to_vec))
                })
            };
            let from_host = columns(host.sample(16, &mut r1, 0.5)?).expect("host rows");
            let from_staged = columns(staged.sample(16, &mut r2, 0.5)?).expect("host rows");
            assert_eq!(from_host, from_staged);
            // The rewards as TD errors.
            host.update_priorities(&from_host.0)?;
            staged.update_priorities(&from_staged.0)?;
        }
        assert_eq!(host.save_part()?, staged.save_part()?);
    }
    Ok(())
}

/// New transitions start at the largest priority; updates set `(|d| + eps)^alpha`; a
/// sample follows the priorities, and its weights are `(N P(i))^-beta` over their max.
#[test]
fn prioritized_sampling_follows_td_errors() -> Result<()> {
    let mut buffer = prioritized(4)?;
    push_numbered(&mut buffer, 4)?;
    let mut rng = Pcg64::seed_from_u64(5);
    // All at priority 1: a stratified batch of 4 takes each slot once, weights 1.
    let weights = buffer
        .sample(4, &mut rng, 1.0)?
        .host_columns()
        .and_then(|c| c.weights.map(<[f32]>::to_vec));
    let mut drawn: Vec<usize> = buffer.slots.clone();
    drawn.sort_unstable();
    assert_eq!(drawn, [0, 1, 2, 3]);
    assert_eq!(weights, Some(vec![1.0; 4]));
    // TD errors 1, 3, 0, 4 (in the order drawn, which is slot order).
    buffer.update_priorities(&[1.0, 3.0, 0.0, 4.0])?;
    let p = buffer.priorities.as_ref().expect("prioritized");
    assert!((p.tree.get(1).unwrap_or(0.0) - (3.0 + 1e-6)).abs() < 1e-9);
    assert_eq!(p.max, 4.0 + 1e-6);
    // 80k samples: frequencies within 1% of p_i / sum p (slot 2 has only eps).
    let mut counts = [0usize; 4];
    for _ in 0..20_000 {
        buffer.sample(4, &mut rng, 1.0)?;
        for &slot in &buffer.slots {
            counts[slot] += 1;
        }
    }
    let total: f64 = [1.0, 3.0, 0.0, 4.0].iter().map(|e| e + 1e-6).sum();
    for (slot, error) in [1.0, 3.0, 0.0, 4.0].iter().enumerate() {
        let expected = (error + 1e-6) / total;
        let got = counts[slot] as f64 / 80_000.0;
        assert!(
            (got - expected).abs() < 0.01,
            "slot {slot}: {got} vs {expected}"
        );
    }
    // Weights: slot 1 and slot 3 drawn together; w ~ p^-beta, normalised by the max.
    buffer.slots = vec![1, 3];
    let p = buffer.priorities.as_ref().expect("prioritized");
    let mut w = Vec::new();
    importance_weights(p, &buffer.slots, 4, 1.0, &mut w)?;
    assert!(
        (w[0] - 1.0).abs() < 1e-6 && (f64::from(w[1]) - 3.0 / 4.0).abs() < 1e-6,
        "{w:?}"
    );
    // A new transition starts at the largest priority.
    push_numbered(&mut buffer, 1)?;
    let p = buffer.priorities.as_ref().expect("prioritized");
    assert_eq!(p.tree.get(0), Some(4.0 + 1e-6));
    // A NaN TD error is an error, not a corrupt tree.
    buffer.sample(2, &mut rng, 1.0)?;
    assert!(buffer.update_priorities(&[f32::NAN, 1.0]).is_err());
    // As many errors as the minibatch had transitions, or an error.
    buffer.sample(2, &mut rng, 1.0)?;
    assert!(buffer.update_priorities(&[1.0]).is_err());
    Ok(())
}

/// An action outside the env's is refused when stored, and so is a checkpoint row holding
/// one; rows in the folded layout (`gamma^k (1 - terminated)` as one value) load as the same
/// transitions.
#[test]
fn actions_are_checked_when_stored_and_folded_rows_load() -> Result<()> {
    let mut buffer = uniform(4)?;
    let bad = Transition {
        obs: &[0.0; OBS_DIM],
        next_obs: &[0.0; OBS_DIM],
        action: 2,
        reward: 1.0,
        terminated: false,
        discount: 0.9,
    };
    assert!(buffer.push(bad).is_err());
    assert!(buffer.push(Transition { action: -1, ..bad }).is_err());
    push_numbered(&mut buffer, 3)?;
    let saved = buffer.save_part()?;
    let mut corrupt = saved.clone();
    if let Some(rows) = corrupt.f32s.get_mut(ROWS) {
        rows[ACTION] = 7.0;
    }
    assert!(uniform(4)?.load_part(&corrupt).is_err());
    // The same rows folded, as a checkpoint without `row_floats` holds them.
    let folded: Vec<f32> = saved
        .f32s(ROWS)?
        .chunks_exact(ROW)
        .flat_map(|row| {
            let mut folded = row[..DISCOUNT].to_vec();
            folded.push(row[DISCOUNT] * (1.0 - row[TERMINATED]));
            folded
        })
        .collect();
    let mut old = saved.clone();
    old.f32s.insert(ROWS.to_owned(), folded);
    old.state = old.state.replace(&format!(",\"row_floats\":{ROW}"), "");
    assert!(!old.state.contains("row_floats"), "{}", old.state);
    let mut restored = uniform(4)?;
    restored.load_part(&old)?;
    let unfolded = restored.save_part()?;
    let pairs = unfolded
        .f32s(ROWS)?
        .chunks_exact(ROW)
        .zip(saved.f32s(ROWS)?.chunks_exact(ROW));
    for (a, b) in pairs {
        assert_eq!(a[..DISCOUNT], b[..DISCOUNT]);
        assert_eq!(a[TERMINATED], b[TERMINATED]);
        // A terminated transition's discount is never read.
        if b[TERMINATED] == 0.0 {
            assert_eq!(a[DISCOUNT], b[DISCOUNT]);
        }
    }
    Ok(())
}

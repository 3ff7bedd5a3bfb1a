use super::*;
use crate::config::{Config, Implementation};
use crate::env::{CartPole, Dynamics};
use crate::learn::qfunction::{self, QFunction};
use crate::learn::replay::{Batch, RowLayout};

/// CartPole-v1's sizes and limits.
const CARTPOLE: &EnvSpec = &CartPole::SPEC;
/// CartPole's rows.
const LAYOUT: RowLayout = RowLayout::new(CARTPOLE.obs_dim);
use tch::{Kind, Reduction};

/// A minibatch as sampling gathers it (replay rows in host memory, and weights), and
/// the same as tensors.
struct Sampled {
    rows: Vec<f32>,
    weights: Option<Vec<f32>>,
    tensors: Batch,
}

impl Sampled {
    fn new(rows: Vec<f32>, weights: Option<Vec<f32>>) -> Result<Self> {
        let tensors =
            Minibatch::from_rows(&rows, weights.as_deref(), LAYOUT)?.to_tensors(Device::Cpu)?;
        Ok(Self {
            rows,
            weights,
            tensors,
        })
    }

    fn rows(&self) -> Minibatch<'_> {
        Minibatch::from_rows(&self.rows, self.weights.as_deref(), LAYOUT).expect("whole rows")
    }

    /// The online network's Q(s, a = 1) for the first observation (the action `batch`
    /// takes).
    fn q_taken(&self, learner: &Learner) -> f64 {
        online(learner)
            .forward(&self.tensors.obs)
            .double_value(&[0, 1])
    }
}

/// A copy of the learner's online network, to read its Q-values.
fn online(learner: &Learner) -> Box<dyn QFunction> {
    let flat = learner.parameters().expect("parameters").copy();
    qfunction::with_parameters(learner.spec().clone(), flat).expect("a network")
}

/// A copy of the learner's target network, read from its checkpoint part.
fn target(learner: &mut Learner) -> Option<Box<dyn QFunction>> {
    let part = learner.save_part().expect("a part");
    let flat = Tensor::from_slice(part.f32s(TARGET).ok()?);
    Some(qfunction::with_parameters(learner.spec().clone(), flat).expect("a network"))
}

/// Starts `to` from `from`'s parameters, target and optimizer state.
fn copy_state(from: &mut Learner, to: &mut Learner) -> Result<()> {
    to.load_part(&from.save_part()?)
}

/// One transition: obs, next obs, action 1, reward, discount `gamma`, terminated.
fn batch(terminated: f32, reward: f32, gamma: f32) -> Sampled {
    let row = [
        0.01f32, 0.0, 0.02, 0.0, 0.02, 0.1, 0.01, -0.1, 1.0, reward, gamma, terminated,
    ];
    Sampled::new(row.to_vec(), None).expect("one row")
}

/// A random minibatch of `n` transitions, half of them weighted when `weighted`.
fn random_batch(n: i64, weighted: bool) -> Sampled {
    let opts = (Kind::Float, Device::Cpu);
    let columns = [
        Tensor::randn([n, 8], opts),
        Tensor::randint(2, [n, 1], opts),
        Tensor::ones([n, 1], opts) * 3.0,
        // Discounts gamma^k in (0, 1), some transitions terminated.
        Tensor::rand([n, 1], opts),
        Tensor::randint(2, [n, 1], opts),
    ];
    let rows = Vec::<f32>::try_from(Tensor::cat(&columns, 1).flatten(0, -1)).expect("rows");
    let weights = weighted.then(|| Vec::<f32>::try_from(Tensor::rand([n], opts)).expect("weights"));
    Sampled::new(rows, weights).expect("a random minibatch")
}

fn all_close(a: &[f32], b: &[f32], rtol: f32, atol: f32) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= atol + rtol * y.abs())
}

fn learner(lr: f64) -> Result<Learner> {
    let mut cfg = Config::default();
    cfg.optimizer.lr = lr;
    cfg.agent.gamma = 0.9;
    Learner::new(&cfg, CARTPOLE, Device::Cpu, 3)
}

/// With a repeated transition, Q(s, a) converges to its TD target: r alone when
/// terminated, r + discount * max Q_target(s') when not (a truncated step keeps that).
#[test]
fn q_converges_to_the_td_target_and_termination_stops_the_bootstrap() -> Result<()> {
    for terminated in [1.0f32, 0.0] {
        let mut learner = learner(1e-2)?;
        let b = batch(terminated, 1.0, 0.81);
        let next_max = target(&mut learner).map_or(0.0, |t| {
            t.forward(&b.tensors.next_obs).max().double_value(&[])
        });
        for _ in 0..500 {
            learner.update(&b.rows(), 1e-2)?;
        }
        let q = b.q_taken(&learner);
        let expected = 1.0 + 0.81 * f64::from(1.0 - terminated) * next_max;
        assert!(
            (q - expected).abs() < 1e-3,
            "terminated={terminated}: q {q} vs {expected}"
        );
    }
    Ok(())
}

/// An `nn::seq` with the learner's online weights, and its variables in flat order.
fn autograd_copy(
    learner: &Learner,
) -> Result<(tch::nn::VarStore, tch::nn::Sequential, Vec<Tensor>)> {
    use tch::nn;
    let vs = nn::VarStore::new(Device::Cpu);
    let (trunk, head) = learner.spec().layers();
    let mut seq = nn::seq();
    for (i, layer) in trunk.iter().chain(&head).enumerate() {
        if i > 0 {
            seq = seq.add_fn(|x| x.relu());
        }
        seq = seq.add(nn::linear(
            &vs.root() / layer.name.as_str(),
            layer.fan_in,
            layer.fan_out,
            Default::default(),
        ));
    }
    let by_name = vs.variables();
    let mut variables = Vec::new();
    for (name, value) in learner.spec().named_parameters(&learner.parameters()?)? {
        let variable = by_name[&name].shallow_clone();
        tch::no_grad(|| variable.shallow_clone().copy_(&value));
        variables.push(variable);
    }
    Ok((vs, seq, variables))
}

/// The update's gradient is autograd's gradient of the loss written out in full
/// (importance weights, n-step discounts, termination, both losses).
#[test]
fn the_update_gradient_is_the_losss_gradient() -> Result<()> {
    use tch::nn::Module;
    for (loss, weighted) in [(Loss::Mse, false), (Loss::Huber, true), (Loss::Mse, true)] {
        let mut cfg = Config::default();
        cfg.agent.loss = loss;
        let mut learner = Learner::new(&cfg, CARTPOLE, Device::Cpu, 9)?;
        tch::manual_seed(4);
        let b = random_batch(16, weighted);
        // The default config: a target network, no Double DQN.
        let next = target(&mut learner)
            .map(|t| t.forward(&b.tensors.next_obs).amax(1, false))
            .unwrap_or_else(|| b.tensors.rewards.zeros_like());
        let not_terminated = 1.0 - &b.tensors.terminated;
        let td_target = &b.tensors.rewards + &b.tensors.discounts * not_terminated * next;
        let (_vs, seq, variables) = autograd_copy(&learner)?;
        let q = seq
            .forward(&b.tensors.obs)
            .gather(1, &b.tensors.actions, false)
            .squeeze_dim(1);
        let per_sample = match loss {
            Loss::Mse => (&q - &td_target).square(),
            Loss::Huber => q.huber_loss(&td_target, Reduction::None, 1.0),
        };
        let objective = match &b.tensors.weights {
            Some(w) => (per_sample * w).mean(Kind::Float),
            None => per_sample.mean(Kind::Float),
        };
        let grads = Tensor::run_backward(&[objective], &variables, false, false);
        let autograd = Tensor::cat(
            &grads.iter().map(|g| g.flatten(0, -1)).collect::<Vec<_>>(),
            0,
        );
        learner.update(&b.rows(), 1e-3)?;
        let diff = (learner.kernel.gradient()? - &autograd)
            .abs()
            .max()
            .double_value(&[]);
        assert!(
            diff < 1e-5,
            "{loss:?}, weighted {weighted}: gradient differs by {diff}"
        );
        assert!(autograd.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }
    Ok(())
}

/// Several whole updates (forward, loss, backward, clipping, Adam) through the fast path
/// (the host kernel where there is one) and through the reference give the same
/// networks, for each head.
#[test]
fn fast_and_reference_learners_take_the_same_updates() -> Result<()> {
    for dueling in [false, true] {
        let mut learners = Vec::new();
        for implementation in [Implementation::Fast, Implementation::Reference] {
            let mut cfg = Config::default();
            cfg.network.dueling = dueling;
            cfg.network.implementation = implementation;
            cfg.agent.double_dqn = true;
            cfg.agent.loss = Loss::Huber;
            cfg.optimizer.max_grad_norm = Some(1.0);
            learners.push(Learner::new(&cfg, CARTPOLE, Device::Cpu, 21)?);
        }
        // libtorch's generator is shared by tests running in parallel: start both from
        // the very same parameters rather than from the same seed.
        let (first, second) = learners.split_at_mut(1);
        copy_state(&mut first[0], &mut second[0])?;
        for step in 0..10 {
            tch::manual_seed(100 + step);
            let b = random_batch(32, step % 2 == 0);
            let errors: Vec<Vec<f32>> = learners
                .iter_mut()
                .map(|l| {
                    l.update(&b.rows(), 1e-2)?;
                    Ok(l.td_errors()?.to_vec())
                })
                .collect::<Result<_>>()?;
            let (fast, reference) = (learners[0].parameters()?, learners[1].parameters()?);
            let diff = (fast - reference).abs().max().double_value(&[]);
            assert!(
                diff < 1e-5,
                "dueling {dueling}, update {step}: parameters differ by {diff}"
            );
            assert!(all_close(&errors[0], &errors[1], 1e-5, 1e-5));
        }
    }
    Ok(())
}

/// The host kernel takes the updates the libtorch ops take (parameters, TD errors and
/// statistics after several whole updates, and greedy actions), for every head,
/// activation, loss, target choice, and with and without importance weights.
#[test]
fn the_host_kernel_takes_the_updates_the_ops_take() -> Result<()> {
    use crate::config::Activation;
    if !qfunction::blas_available() {
        return Ok(());
    }
    let cases = [
        (true, Activation::Relu, Loss::Mse, true, 50, vec![16, 8]),
        (true, Activation::Tanh, Loss::Huber, false, 50, vec![16, 8]),
        (false, Activation::Relu, Loss::Huber, true, 0, vec![16, 8]),
        (false, Activation::Tanh, Loss::Mse, false, 50, vec![12]),
        (true, Activation::Relu, Loss::Huber, true, 0, vec![64, 64]),
    ];
    for (dueling, activation, loss, double_dqn, target_every, hidden) in cases {
        let what = format!(
            "dueling {dueling}, {activation:?}, {loss:?}, double {double_dqn}, \
             target every {target_every}, hidden {hidden:?}"
        );
        let mut cfg = Config::default();
        cfg.network.dueling = dueling;
        cfg.network.activation = activation;
        cfg.network.hidden = hidden;
        cfg.agent.loss = loss;
        cfg.agent.double_dqn = double_dqn;
        cfg.agent.target_update_every = target_every;
        cfg.optimizer.max_grad_norm = Some(1.0);
        cfg.agent.tau = if target_every > 0 { 0.5 } else { 1.0 };
        let mut host = Learner::new(&cfg, CARTPOLE, Device::Cpu, 5)?;
        let mut ops = Learner::build(&cfg, CARTPOLE, Device::Cpu, 5, false)?;
        assert_eq!(
            (host.kernel(), ops.kernel()),
            ("host kernel", "libtorch ops")
        );
        copy_state(&mut host, &mut ops)?;
        for step in 0..8 {
            tch::manual_seed(200 + step);
            let b = random_batch(48, step % 2 == 1);
            host.update(&b.rows(), 1e-2)?;
            let host_errors = host.td_errors()?.to_vec();
            ops.update(&b.rows(), 1e-2)?;
            let ops_errors = ops.td_errors()?.to_vec();
            if step == 3 {
                host.update_target()?;
                ops.update_target()?;
            }
            let diff = (host.parameters()? - ops.parameters()?)
                .abs()
                .max()
                .double_value(&[]);
            assert!(
                diff < 2e-5,
                "{what}, update {step}: parameters differ by {diff}"
            );
            assert!(
                all_close(&host_errors, &ops_errors, 1e-4, 1e-5),
                "{what}, update {step}: TD errors differ"
            );
        }
        let (h, o) = (host.take_stats(), ops.take_stats());
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * (1.0 + b.abs());
        assert!(
            h.zip(o)
                .is_some_and(|(h, o)| close(h.loss, o.loss) && close(h.mean_q, o.mean_q)),
            "{what}: statistics differ: {h:?} against {o:?}"
        );
        let obs = Tensor::randn([64, 4], (Kind::Float, Device::Cpu));
        let flat: Vec<f32> = Vec::try_from(obs.flatten(0, -1))?;
        let (mut from_host, mut from_ops) = (vec![0i64; 64], vec![0i64; 64]);
        host.greedy_actions(&flat, &mut from_host)?;
        ops.greedy_actions(&flat, &mut from_ops)?;
        let argmax: Vec<i64> = Vec::try_from(online(&ops).forward(&obs).argmax(1, false))?;
        assert_eq!(from_host, from_ops, "{what}: greedy actions differ");
        assert_eq!(
            from_ops, argmax,
            "{what}: greedy actions are not the argmax"
        );
        // A few rows at a time, as acting asks (the kernel's loops, not BLAS).
        for rows in [1, 3] {
            let mut few = vec![0i64; rows];
            host.greedy_actions(&flat[..rows * 4], &mut few)?;
            assert_eq!(few, argmax[..rows], "{what}: greedy actions of {rows} rows");
        }
        // Acting reads the same network through the kernel.
        let mut rng = <rand_pcg::Pcg64 as rand::SeedableRng>::seed_from_u64(1);
        let mut acted = vec![0i64; 64];
        host.act(&flat, 0.0, &mut rng, &mut acted)?;
        assert_eq!(acted, from_ops, "{what}: acting");
    }
    Ok(())
}

#[test]
fn target_network_moves_only_when_updated() -> Result<()> {
    let mut learner = learner(1e-2)?;
    let flat = |net: Option<Box<dyn QFunction>>| net.map(|t| t.flat().copy());
    let before = flat(target(&mut learner));
    learner.update(&batch(0.0, 1.0, 0.9).rows(), 1e-2)?;
    let after = flat(target(&mut learner));
    assert!(before
        .as_ref()
        .zip(after.as_ref())
        .is_some_and(|(a, b)| a.equal(b)));
    let online = learner.parameters()?;
    assert!(before.is_some_and(|b| !online.equal(&b)));
    learner.update_target()?;
    let synced =
        flat(target(&mut learner)).map(|t| t.equal(&learner.parameters().expect("parameters")));
    assert_eq!(synced, Some(true));
    Ok(())
}

#[test]
fn acting_explores_at_rate_epsilon_and_is_greedy_otherwise() -> Result<()> {
    use rand::SeedableRng;
    let learner = learner(1e-3)?;
    let obs = [0.01f32, 0.2, -0.03, 0.1].repeat(1000);
    let mut greedy = [0i64];
    learner.greedy_actions(&obs[..4], &mut greedy)?;
    let greedy = greedy[0];
    let mut rng = rand_pcg::Pcg64::seed_from_u64(5);
    let mut actions = vec![0i64; 1000];
    learner.act(&obs, 0.0, &mut rng, &mut actions)?;
    assert!(actions.iter().all(|&a| a == greedy));
    learner.act(&obs, 1.0, &mut rng, &mut actions)?;
    let other = actions.iter().filter(|&&a| a != greedy).count();
    assert!(
        (400..600).contains(&other),
        "{other} of 1000 random actions differ"
    );
    learner.act(&obs, 0.3, &mut rng, &mut actions)?;
    let other = actions.iter().filter(|&&a| a != greedy).count();
    assert!(
        (100..200).contains(&other),
        "{other} of 1000 at epsilon 0.3 differ"
    );
    Ok(())
}

#[test]
fn stats_average_the_updates_since_the_last_read() -> Result<()> {
    let mut learner = learner(1e-3)?;
    assert!(learner.take_stats().is_none());
    // A terminal transition with reward 1 from a fresh net: the loss is (Q - 1)^2.
    let b = batch(1.0, 1.0, 0.9);
    let q0 = b.q_taken(&learner);
    learner.update(&b.rows(), 1e-3)?;
    let q1 = b.q_taken(&learner);
    learner.update(&b.rows(), 1e-3)?;
    let stats = learner.take_stats().expect("two updates ran");
    let expected = ((q0 - 1.0).powi(2) + (q1 - 1.0).powi(2)) / 2.0;
    assert!(
        (stats.loss - expected).abs() < 1e-5,
        "{} vs {expected}",
        stats.loss
    );
    assert!((stats.mean_q - (q0 + q1) / 2.0).abs() < 1e-5);
    assert!(learner.take_stats().is_none());
    Ok(())
}

//! Replays Gymnasium's own CartPole-v1 trajectories (`tests/fixtures/cartpole_golden.bin`,
//! written by `gen_cartpole_golden.py`) through `Single<CartPole>` and demands bit-exact
//! agreement.

use qnet::env::{CartPole, Dynamics, EnvError, Single};

const FIXTURE: &[u8] = include_bytes!("../fixtures/cartpole_golden.bin");

/// Little-endian cursor over the fixture; panics name the offset, as a broken fixture is a test failure.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let chunk = self
            .bytes
            .get(self.pos..self.pos + N)
            .unwrap_or_else(|| panic!("fixture truncated at byte {}", self.pos));
        self.pos += N;
        chunk.try_into().expect("slice has length N")
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn f64s(&mut self) -> [f64; 4] {
        std::array::from_fn(|_| f64::from_le_bytes(self.take()))
    }
    fn f32s(&mut self) -> [f32; 4] {
        std::array::from_fn(|_| f32::from_le_bytes(self.take()))
    }
}

/// Bit patterns, so that exact equality also distinguishes -0.0 from 0.0.
fn bits(obs: &[f32]) -> Vec<u32> {
    obs.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn replays_gymnasium_trajectories_bit_exactly() {
    let mut reader = Reader {
        bytes: FIXTURE,
        pos: 0,
    };
    assert_eq!(&reader.take::<4>(), b"QNCP", "fixture magic");
    assert_eq!(reader.u32(), 1, "fixture version");
    let version_len = usize::from(reader.u8());
    let version = &FIXTURE[reader.pos..reader.pos + version_len];
    assert!(version.starts_with(b"1."), "expected gymnasium 1.x fixture");
    reader.pos += version_len;
    let n_episodes = reader.u32();
    assert!(n_episodes >= 1000, "only {n_episodes} episodes");

    let mut env = Single::<CartPole>::new(0);
    let (mut steps, mut terminations, mut truncations) = (0u64, 0u32, 0u32);
    for episode in 0..n_episodes {
        let initial_state = reader.f64s();
        let reset_obs = reader.f32s();
        assert_eq!(
            bits(env.reset_to(initial_state)),
            bits(&reset_obs),
            "episode {episode} reset"
        );
        assert_eq!(env.state(), initial_state);
        let n_steps = reader.u32();
        for t in 0..n_steps {
            let flags = reader.u8();
            let expected_obs = reader.f32s();
            let step = env
                .step(i64::from(flags & 1))
                .unwrap_or_else(|err| panic!("episode {episode} step {t}: {err}"));
            let at = format!("episode {episode} step {t}: {step:?}");
            assert_eq!(
                bits(env.obs()),
                bits(&expected_obs),
                "{at} vs {expected_obs:?}"
            );
            assert_eq!(step.terminated, flags & 2 != 0, "{at} terminated");
            assert_eq!(step.truncated, flags & 4 != 0, "{at} truncated");
            let expected_reward = if flags & 8 != 0 { 1.0 } else { 0.0 };
            assert_eq!(step.reward, expected_reward, "{at} reward");
            // Gymnasium ends every episode exactly where the fixture's episode ends.
            assert_eq!(
                step.terminated || step.truncated,
                t + 1 == n_steps,
                "{at} end"
            );
            if step.truncated {
                assert_eq!(
                    n_steps,
                    CartPole::SPEC.max_episode_steps,
                    "{at} truncated early"
                );
            }
            terminations += u32::from(step.terminated);
            truncations += u32::from(step.truncated);
        }
        assert_eq!(env.elapsed_steps(), n_steps);
        assert_eq!(
            env.step(0),
            Err(EnvError::NeedsReset),
            "episode {episode} ran on"
        );
        steps += u64::from(n_steps);
    }
    assert_eq!(reader.pos, FIXTURE.len(), "trailing bytes in fixture");
    assert!(truncations > 0, "fixture covers no truncation");
    assert!(terminations > 900, "fixture covers too few terminations");
    assert!(steps > 20_000, "fixture covers only {steps} steps");
}

//! Replays a `QNGC` fixture (Gymnasium's own trajectories, written by
//! `tests/fixtures/gen_classic_golden.py`, whose docstring gives the layout) through
//! `Single<D>` and demands bit-exact states, observations, rewards and flags.

use qnet::env::{Dynamics, EnvError, Single};

/// Little-endian cursor over a fixture; panics name the offset, as a broken fixture is a test failure.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
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
    fn f32(&mut self) -> f32 {
        f32::from_le_bytes(self.take())
    }
    fn f64s<const N: usize>(&mut self) -> [f64; N] {
        std::array::from_fn(|_| f64::from_le_bytes(self.take()))
    }
    fn f32s(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
    fn text(&mut self) -> String {
        let len = usize::from(self.u8());
        let text = self
            .bytes
            .get(self.pos..self.pos + len)
            .unwrap_or_else(|| panic!("fixture truncated at byte {}", self.pos));
        self.pos += len;
        String::from_utf8(text.to_vec()).expect("fixture text is ASCII")
    }
}

/// One step as Gymnasium took it, for the env-specific coverage checks.
pub struct GoldenStep<const S: usize> {
    /// The state before the step.
    pub before: [f64; S],
    /// The state after the step.
    pub after: [f64; S],
    /// The step terminated the episode.
    pub terminated: bool,
    /// The step truncated the episode.
    pub truncated: bool,
}

/// What a replay covered.
#[derive(Default, Debug)]
pub struct Coverage {
    pub episodes: u32,
    pub drawn_episodes: u32,
    pub steps: u32,
    pub terminations: u32,
    pub truncations: u32,
}

/// Bit patterns, so that exact equality also distinguishes -0.0 from 0.0.
fn bits32(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn bits64<const S: usize>(values: [f64; S]) -> [u64; S] {
    values.map(f64::to_bits)
}

/// Distance in units in the last place between two finite floats of one sign.
fn ulps(a: f32, b: f32) -> u32 {
    a.to_bits().abs_diff(b.to_bits())
}

/// Replays `fixture` through `Single<D>`, calling `visit` on every step; `reset_obs_ulps`
/// says, per observation component, how far a drawn episode's reset observation may be
/// from qnet's (Gymnasium's differs where numpy computes it in float32).
pub fn replay<D, const S: usize>(
    fixture: &[u8],
    reset_obs_ulps: &[u32],
    mut visit: impl FnMut(&GoldenStep<S>),
) -> Coverage
where
    D: Dynamics<State = [f64; S]>,
{
    let spec = D::SPEC;
    let mut reader = Reader {
        bytes: fixture,
        pos: 0,
    };
    assert_eq!(&reader.take::<4>(), b"QNGC", "fixture magic");
    assert_eq!(reader.u32(), 1, "fixture version");
    assert!(reader.text().starts_with("1."), "expected gymnasium 1.x");
    assert_eq!(reader.text(), spec.id, "fixture env");
    assert_eq!(usize::from(reader.u8()), S, "state size");
    assert_eq!(usize::from(reader.u8()), spec.obs_dim, "observation size");
    assert_eq!(reader.u32(), spec.max_episode_steps, "time limit");
    let n_episodes = reader.u32();
    assert_eq!(reset_obs_ulps.len(), spec.obs_dim);

    let mut env = Single::<D>::new(0);
    let mut coverage = Coverage::default();
    for episode in 0..n_episodes {
        let drawn = match reader.u8() {
            0 => true,
            1 => false,
            kind => panic!("episode {episode}: unknown kind {kind}"),
        };
        let initial_state = reader.f64s::<S>();
        let reset_obs = reader.f32s(spec.obs_dim);
        let obs = env.reset_to(initial_state).to_vec();
        if drawn {
            for (i, (&ours, &theirs)) in obs.iter().zip(&reset_obs).enumerate() {
                assert!(
                    ulps(ours, theirs) <= reset_obs_ulps[i],
                    "episode {episode} reset obs[{i}]: {ours:e} vs {theirs:e}"
                );
            }
        } else {
            assert_eq!(bits32(&obs), bits32(&reset_obs), "episode {episode} reset");
        }
        let n_steps = reader.u32();
        for t in 0..n_steps {
            let action = reader.u8();
            let flags = reader.u8();
            let reward = reader.f32();
            let state = reader.f64s::<S>();
            let expected_obs = reader.f32s(spec.obs_dim);
            let before = env.state();
            let outcome = env
                .step(i64::from(action))
                .unwrap_or_else(|err| panic!("episode {episode} step {t}: {err}"));
            let at = format!("episode {episode} step {t} from {before:?} action {action}");
            assert_eq!(bits64(env.state()), bits64(state), "{at}: state {state:?}");
            assert_eq!(bits32(env.obs()), bits32(&expected_obs), "{at}: obs");
            assert_eq!(outcome.reward.to_bits(), reward.to_bits(), "{at}: reward");
            assert_eq!(outcome.terminated, flags & 1 != 0, "{at}: terminated");
            assert_eq!(outcome.truncated, flags & 2 != 0, "{at}: truncated");
            if outcome.terminated || outcome.truncated {
                // Gymnasium ends every episode exactly where the fixture's episode ends.
                assert_eq!(t + 1, n_steps, "{at}: episode went on in Gymnasium");
                assert_eq!(env.step(0), Err(EnvError::NeedsReset), "{at}: ran on");
            }
            if outcome.truncated {
                assert_eq!(n_steps, spec.max_episode_steps, "{at}: truncated early");
            }
            coverage.terminations += u32::from(outcome.terminated);
            coverage.truncations += u32::from(outcome.truncated);
            visit(&GoldenStep {
                before,
                after: state,
                terminated: outcome.terminated,
                truncated: outcome.truncated,
            });
        }
        coverage.episodes += 1;
        coverage.drawn_episodes += u32::from(drawn);
        coverage.steps += n_steps;
    }
    assert_eq!(reader.pos, fixture.len(), "trailing bytes in fixture");
    coverage
}

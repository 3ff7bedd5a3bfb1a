//! A batch of CartPoles in its struct-of-arrays form, one array per state component (`x`,
//! `x_dot`, `theta`, `theta_dot`) beside the per-env arrays a [`Batch`] holds, as the
//! checkpoints of qnet 0.2 store it; read into a [`Batch`] of [`CartPole`]s so that those runs
//! resume where they stopped, on the same episodes.

use serde::de::Error as _;
use serde::Deserialize;

use super::batch::Batch;
use super::cartpole::CartPole;
use super::dynamics::EnvRng;

/// The struct-of-arrays form, field for field.
#[derive(Debug, Deserialize)]
struct CartPoleArrays {
    x: Vec<f64>,
    x_dot: Vec<f64>,
    theta: Vec<f64>,
    theta_dot: Vec<f64>,
    rngs: Vec<EnvRng>,
    elapsed_steps: Vec<u32>,
    max_episode_steps: u32,
    obs: Vec<f32>,
    final_obs: Vec<f32>,
    rewards: Vec<f32>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    episode_lengths: Vec<u32>,
    started: bool,
}

impl CartPoleArrays {
    /// The same envs as a [`Batch`]: env `i`'s state is `[x[i], x_dot[i], theta[i],
    /// theta_dot[i]]`, everything else is carried over as it is. Errors when the four state
    /// arrays differ in length (the other arrays are checked where any batch read from a file
    /// is, by [`Batch::is_whole`]).
    fn into_batch(self) -> Result<Batch<CartPole>, String> {
        let n = self.x.len();
        let lengths = [self.x_dot.len(), self.theta.len(), self.theta_dot.len()];
        if lengths != [n; 3] {
            return Err(format!(
                "its state arrays x, x_dot, theta and theta_dot hold {n}, {}, {} and {} envs",
                lengths[0], lengths[1], lengths[2]
            ));
        }
        let states = (0..n)
            .map(|i| [self.x[i], self.x_dot[i], self.theta[i], self.theta_dot[i]])
            .collect();
        Ok(Batch {
            states,
            rngs: self.rngs,
            elapsed_steps: self.elapsed_steps,
            max_episode_steps: self.max_episode_steps,
            obs: self.obs,
            final_obs: self.final_obs,
            rewards: self.rewards,
            terminated: self.terminated,
            truncated: self.truncated,
            episode_lengths: self.episode_lengths,
            started: self.started,
        })
    }
}

/// The batch of CartPoles `json` holds, as [`Batch`] writes it or in the struct-of-arrays
/// form. JSON in neither form gets the error of reading it as a [`Batch`].
pub(super) fn read(json: &str) -> serde_json::Result<Batch<CartPole>> {
    let batch_error = match serde_json::from_str(json) {
        Ok(batch) => return Ok(batch),
        Err(err) => err,
    };
    match serde_json::from_str::<CartPoleArrays>(json) {
        Ok(arrays) => arrays.into_batch().map_err(serde_json::Error::custom),
        Err(_) => Err(batch_error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three CartPoles seeded with 2024 and truncating at 20 steps, after `reset_all` and 30
    /// steps of [`actions`], as qnet 0.2 wrote them: two episodes were truncated at 20 steps
    /// and one terminated at 18.
    const STRUCT_OF_ARRAYS: &str = r#"{"x":[-0.057274507088027005,0.04970720215682255,0.08617515495590307],"x_dot":[-0.3631245688123783,0.3968331273033039,-0.011677149797603176],"theta":[0.08767788436106566,-0.029757185359452955,-0.09108931059547487],"theta_dot":[0.7151933639873009,-0.5996032950419508,-0.1597183147701018],"rngs":[{"state":246721945677324210151652765835812323495},{"state":339833457379570999258537903511017121661},{"state":271309386169396312301634060670010176519}],"elapsed_steps":[10,10,12],"max_episode_steps":20,"obs":[-0.057274505,-0.36312458,0.08767788,0.7151934,0.0497072,0.39683312,-0.029757185,-0.5996033,0.08617516,-0.01167715,-0.09108931,-0.15971832],"final_obs":[-0.08443957,-0.023087816,0.1543318,0.38272136,0.11170643,0.05207942,-0.22307684,-0.6189409,-0.080938,-0.3763955,0.21142766,1.1556265],"rewards":[1.0,1.0,1.0],"terminated":[false,false,false],"truncated":[false,false,false],"episode_lengths":[20,20,18],"started":true}"#;

    /// The actions of step `t`.
    fn actions(t: i64) -> Vec<i64> {
        (0..3).map(|i| (t / 2 + i) % 2).collect()
    }

    /// The batch the struct-of-arrays JSON was written from, stepped as it was.
    fn same_batch_stepped_here() -> Batch<CartPole> {
        let mut batch = Batch::new(3, 2024, 20);
        batch.reset_all();
        for t in 0..30 {
            batch.step(&actions(t)).expect("valid actions");
        }
        batch
    }

    #[test]
    fn struct_of_arrays_reads_as_the_batch_it_was() -> serde_json::Result<()> {
        let mut read_back = read(STRUCT_OF_ARRAYS)?;
        let mut here = same_batch_stepped_here();
        assert_eq!(here.episode_lengths(), [20, 20, 18]);
        // Every field, RNG states included.
        assert_eq!(
            serde_json::to_string(&read_back)?,
            serde_json::to_string(&here)?
        );
        assert_eq!(
            read_back.state(2),
            Some([
                0.08617515495590307,
                -0.011677149797603176,
                -0.09108931059547487,
                -0.1597183147701018
            ])
        );
        // And it goes on with the same episodes, through resets drawn from the carried RNGs.
        let mut ended = 0;
        for t in 30..130 {
            read_back.step(&actions(t)).expect("valid actions");
            here.step(&actions(t)).expect("valid actions");
            assert_eq!(read_back.obs(), here.obs());
            assert_eq!(read_back.terminated(), here.terminated());
            assert_eq!(read_back.truncated(), here.truncated());
            ended += here.terminated().iter().filter(|&&done| done).count();
        }
        assert!(ended > 0, "no episode ended");
        Ok(())
    }

    #[test]
    fn a_batch_in_its_own_form_reads_as_itself() -> serde_json::Result<()> {
        let here = same_batch_stepped_here();
        let json = serde_json::to_string(&here)?;
        assert_eq!(serde_json::to_string(&read(&json)?)?, json);
        Ok(())
    }

    #[test]
    fn state_arrays_of_different_lengths_are_refused() {
        let short = STRUCT_OF_ARRAYS.replace(
            r#""theta_dot":[0.7151933639873009,-0.5996032950419508,-0.1597183147701018]"#,
            r#""theta_dot":[0.7151933639873009]"#,
        );
        assert_ne!(short, STRUCT_OF_ARRAYS);
        let err = read(&short).expect_err("a short theta_dot").to_string();
        assert!(
            err.contains("x, x_dot, theta and theta_dot hold 3, 3, 3 and 1 envs"),
            "{err}"
        );
    }

    #[test]
    fn json_in_neither_form_gets_the_batch_error() {
        let err = read(r#"{"x":[0.0]}"#)
            .expect_err("neither form")
            .to_string();
        assert!(err.contains("missing field `states`"), "{err}");
    }
}

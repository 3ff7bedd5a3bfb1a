//! Frames of an environment's state, each drawn the way Gymnasium 1.x's own `render` draws that
//! environment (pygame, `rgb_array`), plus a step / return overlay.
//!
//! Pixels only: no file formats and no tensors. Each environment's [`Scene`] lives in its own
//! file here and gives the screen size, frame rate, palette and geometry of Gymnasium's
//! renderer; what they share (the frame, pygame's drawing, the overlay) is here and in `draw`.
//! The one deliberate difference from Gymnasium: anti-aliased outlines are left out, so a frame
//! holds only the few colours of its scene's palette and the GIFs made from them stay small.

pub mod acrobot;
pub mod cartpole;
mod draw;
pub mod mountain_car;

use super::{Acrobot, CartPole, Dynamics, EnvError, MountainCar, Outcome, Single};
use crate::config::EnvId;

/// Background colour of every scene, as in Gymnasium.
pub const WHITE: [u8; 3] = [255, 255, 255];
/// Overlay text colour, in every scene's palette (Gymnasium's black).
pub const BLACK: [u8; 3] = [0, 0, 0];

/// Distance of the overlay from the frame's top-left corner, in pixels.
const OVERLAY_MARGIN: i64 = 8;

/// An RGB image, row-major, top row first, three bytes per pixel, every pixel one of the
/// colours of its palette.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The colours the frame holds: its scene's [`Scene::PALETTE`].
    pub palette: &'static [[u8; 3]],
    /// `width * height * 3` bytes: R, G, B of each pixel, rows top to bottom.
    pub pixels: Vec<u8>,
}

impl Frame {
    /// The colour at column `x`, row `y` (row 0 at the top), or `None` outside the frame.
    #[cfg(test)]
    fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let at = (y as usize * self.width as usize + x as usize) * 3;
        Some([self.pixels[at], self.pixels[at + 1], self.pixels[at + 2]])
    }

    /// Rows (top first) of the pixels of `colour` in column `x`.
    #[cfg(test)]
    fn rows_of(&self, x: u32, colour: [u8; 3]) -> Vec<u32> {
        (0..self.height)
            .filter(|&y| self.pixel(x, y) == Some(colour))
            .collect()
    }
}

/// How an environment's state looks: Gymnasium's `render` for it, without anti-aliasing.
pub trait Scene: Dynamics {
    /// Frame width in pixels (Gymnasium's screen width).
    const WIDTH: u32;
    /// Frame height in pixels (Gymnasium's screen height).
    const HEIGHT: u32;
    /// Frames per second (Gymnasium's `metadata["render_fps"]`).
    const FPS: u32;
    /// Every colour a frame can hold, [`WHITE`] and [`BLACK`] among them.
    const PALETTE: &'static [[u8; 3]];
    /// Draws `state` on `canvas`, a white frame whose row `y` is `y` pixels above the bottom
    /// edge, as Gymnasium draws before flipping the surface. Must not panic, whatever the
    /// state: parts outside the frame are clipped.
    fn draw(state: &Self::State, canvas: &mut Frame);
}

/// The frame of `state` as Gymnasium draws it, with "step N  return R" in the top-left corner.
pub fn frame<S: Scene>(state: &S::State, step: u32, episode_return: f64) -> Frame {
    let mut frame = Frame::filled(S::WIDTH, S::HEIGHT, S::PALETTE, WHITE);
    S::draw(state, &mut frame);
    frame.flip_vertically();
    let overlay = format!("step {step}  return {episode_return:.0}");
    frame.text(&overlay, OVERLAY_MARGIN, OVERLAY_MARGIN, BLACK);
    frame
}

/// One environment stepped an action at a time and drawn after each step, whichever
/// environment it is.
pub trait DrawnEnv {
    /// Frames per second that play the episode as Gymnasium's human render mode does.
    fn fps(&self) -> u32;
    /// Starts an episode from a state drawn from the reset distribution; returns its observation.
    fn reset(&mut self) -> &[f32];
    /// Applies `action` for one step; the new observation is [`DrawnEnv::obs`].
    fn step(&mut self, action: i64) -> Result<Outcome, EnvError>;
    /// The observation after the last reset or step.
    fn obs(&self) -> &[f32];
    /// The current state's frame, its overlay giving the steps since the reset and
    /// `episode_return`.
    fn frame(&self, episode_return: f64) -> Frame;
}

impl<S: Scene> DrawnEnv for Single<S> {
    fn fps(&self) -> u32 {
        S::FPS
    }

    fn reset(&mut self) -> &[f32] {
        Single::reset(self)
    }

    fn step(&mut self, action: i64) -> Result<Outcome, EnvError> {
        Single::step(self, action)
    }

    fn obs(&self) -> &[f32] {
        Single::obs(self)
    }

    fn frame(&self, episode_return: f64) -> Frame {
        frame::<S>(&self.state(), self.elapsed_steps(), episode_return)
    }
}

/// One env of environment `id` seeded with `seed` (as a batch seeds its envs, so
/// [`super::env_seed`]`(seed, 0)` gives a batch's first env), truncating after `max_steps`
/// steps; call [`DrawnEnv::reset`] before stepping.
pub fn drawn_env(id: EnvId, seed: u64, max_steps: u32) -> Box<dyn DrawnEnv> {
    match id {
        EnvId::CartPole => Box::new(Single::<CartPole>::with_max_episode_steps(seed, max_steps)),
        EnvId::Acrobot => Box::new(Single::<Acrobot>::with_max_episode_steps(seed, max_steps)),
        EnvId::MountainCar => Box::new(Single::<MountainCar>::with_max_episode_steps(
            seed, max_steps,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each environment's frames: its size, its frame rate, and only its palette's colours,
    /// over an episode of alternating actions.
    fn check_episode(id: EnvId, size: (u32, u32), fps: u32) -> anyhow::Result<()> {
        let mut env = drawn_env(id, 5, 40);
        assert_eq!(env.fps(), fps, "{id}");
        env.reset();
        let mut episode_return = 0.0;
        for t in 0..40i64 {
            let frame = env.frame(episode_return);
            assert_eq!((frame.width, frame.height), size, "{id}");
            assert_eq!(frame.pixels.len(), (size.0 * size.1 * 3) as usize);
            assert!(frame.palette.contains(&WHITE) && frame.palette.contains(&BLACK));
            assert!(
                frame
                    .pixels
                    .chunks_exact(3)
                    .all(|p| frame.palette.contains(&[p[0], p[1], p[2]])),
                "{id}: a colour outside the palette"
            );
            let outcome = env.step(t % 3 % crate::env::spec(id).n_actions as i64)?;
            episode_return += f64::from(outcome.reward);
            if outcome.terminated || outcome.truncated {
                break;
            }
        }
        Ok(())
    }

    #[test]
    fn each_environment_draws_at_gymnasiums_size_and_rate() -> anyhow::Result<()> {
        check_episode(EnvId::CartPole, (600, 400), 50)?;
        check_episode(EnvId::Acrobot, (500, 500), 15)?;
        check_episode(EnvId::MountainCar, (600, 400), 30)
    }

    #[test]
    fn overlay_shows_text_that_changes_with_the_step() {
        let state = [-0.5, 0.0];
        let blank = frame::<MountainCar>(&state, 0, 0.0);
        let first = frame::<MountainCar>(&state, 7, -7.0);
        let later = frame::<MountainCar>(&state, 123, -123.0);
        let inked = |frame: &Frame| {
            (0..40)
                .flat_map(|y| (0..200).map(move |x| (x, y)))
                .filter(|&(x, y)| frame.pixel(x, y) == Some(BLACK))
                .count()
        };
        assert!(
            inked(&first) > 100,
            "overlay has {} black pixels",
            inked(&first)
        );
        assert_ne!(first.pixels, later.pixels);
        assert_ne!(blank.pixels, first.pixels);
    }
}

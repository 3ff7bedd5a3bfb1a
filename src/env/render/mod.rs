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

use std::sync::LazyLock;

use anyhow::{bail, Result};

use super::{Dynamics, Outcome, Single};

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
    /// Starts an episode; returns its first observation.
    fn reset(&mut self) -> Result<&[f32]>;
    /// Applies `action` for one step; the new observation is [`DrawnEnv::obs`].
    fn step(&mut self, action: i64) -> Result<Outcome>;
    /// The observation after the last reset or step.
    fn obs(&self) -> &[f32];
    /// The current state's frame, its overlay giving the steps since the reset and
    /// `episode_return`.
    fn frame(&mut self, episode_return: f64) -> Result<Frame>;
}

impl<S: Scene> DrawnEnv for Single<S> {
    fn fps(&self) -> u32 {
        S::FPS
    }

    fn reset(&mut self) -> Result<&[f32]> {
        Ok(Single::reset(self))
    }

    fn step(&mut self, action: i64) -> Result<Outcome> {
        Ok(Single::step(self, action)?)
    }

    fn obs(&self) -> &[f32] {
        Single::obs(self)
    }

    fn frame(&mut self, episode_return: f64) -> Result<Frame> {
        Ok(frame::<S>(
            &self.state(),
            self.elapsed_steps(),
            episode_return,
        ))
    }
}

/// The colours of a frame drawn from any RGB image (a Gymnasium environment's `rgb_array`
/// render): 6 levels of red and blue and 7 of green, black and white among them.
pub static RGB_CUBE: LazyLock<Vec<[u8; 3]>> = LazyLock::new(|| {
    let levels = |n: u32| (0..n).map(move |i| (i * 255 / (n - 1)) as u8);
    levels(6)
        .flat_map(|r| levels(7).flat_map(move |g| levels(6).map(move |b| [r, g, b])))
        .collect()
});

/// The nearest level of `n` evenly spaced ones in 0..=255 to `value`.
fn level(value: u8, n: u32) -> u8 {
    let step = (u32::from(value) * (n - 1) + 127) / 255;
    (step * 255 / (n - 1)) as u8
}

/// An RGB image (`height` rows of `width` pixels, three bytes each) as a frame of
/// [`RGB_CUBE`]'s colours, with the step / return overlay.
pub fn rgb_frame(
    width: u32,
    height: u32,
    pixels: &[u8],
    step: u32,
    episode_return: f64,
) -> Result<Frame> {
    if pixels.len() != width as usize * height as usize * 3 {
        bail!(
            "an RGB image of {width}x{height} pixels has {} bytes",
            pixels.len()
        );
    }
    let palette: &'static [[u8; 3]] = RGB_CUBE.as_slice();
    let pixels = pixels
        .chunks_exact(3)
        .flat_map(|p| [level(p[0], 6), level(p[1], 7), level(p[2], 6)])
        .collect();
    let mut frame = Frame {
        width,
        height,
        palette,
        pixels,
    };
    let overlay = format!("step {step}  return {episode_return:.0}");
    frame.text(&overlay, OVERLAY_MARGIN, OVERLAY_MARGIN, BLACK);
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MountainCar;

    /// Each environment's frames: its size, its frame rate, and only its palette's colours,
    /// over an episode of alternating actions.
    fn check_episode(id: &str, size: (u32, u32), fps: u32) -> anyhow::Result<()> {
        let mut cfg = crate::config::Config::default().env;
        cfg.id = id.parse().map_err(anyhow::Error::msg)?;
        let resolved = crate::env::registry::resolve(&cfg)?;
        let mut env = resolved.drawn(5, 40)?;
        assert_eq!(env.fps(), fps, "{id}");
        env.reset()?;
        let mut episode_return = 0.0;
        for t in 0..40i64 {
            let frame = env.frame(episode_return)?;
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
            let outcome = env.step(t % 3 % resolved.spec().n_actions as i64)?;
            episode_return += f64::from(outcome.reward);
            if outcome.terminated || outcome.truncated {
                break;
            }
        }
        Ok(())
    }

    #[test]
    fn each_environment_draws_at_gymnasiums_size_and_rate() -> anyhow::Result<()> {
        check_episode("CartPole-v1", (600, 400), 50)?;
        check_episode("Acrobot-v1", (500, 500), 15)?;
        check_episode("MountainCar-v0", (600, 400), 30)
    }

    #[test]
    fn an_rgb_image_is_drawn_in_the_cubes_colours() -> anyhow::Result<()> {
        let pixels: Vec<u8> = (0..=255u8).flat_map(|v| [v, 255 - v, v / 2]).collect();
        let frame = rgb_frame(256, 1, &pixels, 0, 0.0)?;
        assert_eq!(frame.palette.len(), 252);
        assert!(frame
            .pixels
            .chunks_exact(3)
            .all(|p| frame.palette.contains(&[p[0], p[1], p[2]])));
        assert_eq!(&frame.pixels[..3], &[0, 255, 0]);
        assert!(rgb_frame(2, 2, &pixels[..9], 0, 0.0).is_err());
        Ok(())
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

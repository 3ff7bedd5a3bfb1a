//! Animated GIFs of rendered episodes, small enough to commit and show in a README.
//!
//! Frames are streamed in one at a time, so a 500-step episode never needs all its
//! frames in memory. The GIF takes its size and colours from its first frame: the global
//! palette is the frame's palette plus one transparent slot. Each frame after the first
//! stores only the rectangle that changed, with unchanged pixels inside it transparent and
//! disposal "keep": the bodies that move and the overlay digits are all that change, so most
//! of each image compresses to runs of one index.

use std::borrow::Cow;
use std::io::Write;

use anyhow::{bail, ensure, Context};
use gif::{DisposalMethod, Encoder, Repeat};

use crate::env::render::Frame;

/// Streams [`Frame`]s of one size and palette into an infinitely looping GIF written to `W`.
pub struct GifWriter<W: Write> {
    encoder: Encoder<W>,
    width: u16,
    height: u16,
    /// The colours of every frame, in palette-index order.
    palette: &'static [[u8; 3]],
    /// GIF delay per frame, in hundredths of a second.
    delay: u16,
    /// Palette indices of the last frame written, or None before the first.
    previous: Option<Vec<u8>>,
}

impl<W: Write> GifWriter<W> {
    /// Starts a GIF of `first`'s size and palette playing `fps` frames per second, with
    /// `first` as its first frame.
    pub fn start(writer: W, first: &Frame, fps: u32) -> anyhow::Result<Self> {
        let delay = delay_for(fps)?;
        let (width, height) = (first.width, first.height);
        let (Ok(gif_width), Ok(gif_height)) = (u16::try_from(width), u16::try_from(height)) else {
            bail!("a GIF is at most 65535 pixels a side, not {width}x{height}");
        };
        let colours = first.palette.len();
        ensure!(
            (1..256).contains(&colours),
            "a GIF frame holds 1 to 255 colours besides the transparent one, not {colours}"
        );
        // GIF palettes hold a power of two colours: the frame's, the transparent slot, and
        // white padding.
        let mut palette = vec![255; (colours + 1).next_power_of_two() * 3];
        for (slot, colour) in palette.chunks_exact_mut(3).zip(first.palette) {
            slot.copy_from_slice(colour);
        }
        let mut encoder = Encoder::new(writer, gif_width, gif_height, &palette)
            .context("writing the GIF header")?;
        encoder
            .set_repeat(Repeat::Infinite)
            .context("writing the GIF loop extension")?;
        let mut gif = Self {
            encoder,
            width: gif_width,
            height: gif_height,
            palette: first.palette,
            delay,
            previous: None,
        };
        gif.push(first)?;
        Ok(gif)
    }

    /// Appends one frame, which must have the first frame's size and palette.
    pub fn push(&mut self, frame: &Frame) -> anyhow::Result<()> {
        ensure!(
            frame.width == u32::from(self.width) && frame.height == u32::from(self.height),
            "frame is {}x{} but the GIF is {}x{}",
            frame.width,
            frame.height,
            self.width,
            self.height
        );
        ensure!(
            frame.pixels.len() == usize::from(self.width) * usize::from(self.height) * 3,
            "frame has {} bytes of pixels, not 3 per pixel",
            frame.pixels.len()
        );
        ensure!(
            frame.palette == self.palette,
            "frame's palette {:?} is not the GIF's {:?}",
            frame.palette,
            self.palette
        );
        let indices: Vec<u8> = frame
            .pixels
            .chunks_exact(3)
            .map(|rgb| palette_index(self.palette, rgb))
            .collect();
        let mut gif_frame = match &self.previous {
            None => gif::Frame {
                width: self.width,
                height: self.height,
                buffer: Cow::Borrowed(&indices),
                ..gif::Frame::default()
            },
            Some(previous) => self.changed_part(previous, &indices),
        };
        gif_frame.delay = self.delay;
        gif_frame.dispose = DisposalMethod::Keep;
        self.encoder
            .write_frame(&gif_frame)
            .context("encoding a GIF frame")?;
        self.previous = Some(indices);
        Ok(())
    }

    /// Ends the GIF and hands back the writer.
    pub fn finish(self) -> anyhow::Result<W> {
        self.encoder.into_inner().context("writing the GIF trailer")
    }

    /// The bounding box of the pixels that differ from `previous`, with the
    /// unchanged ones inside it transparent; a single transparent pixel when
    /// nothing changed, since every time step still needs its own delay.
    fn changed_part(&self, previous: &[u8], current: &[u8]) -> gif::Frame<'static> {
        let width = usize::from(self.width);
        // The slot after the palette's colours (at most 255 of them).
        let transparent = self.palette.len() as u8;
        let mut bounds: Option<(usize, usize, usize, usize)> = None;
        for (at, _) in previous
            .iter()
            .zip(current)
            .enumerate()
            .filter(|(_, (old, new))| old != new)
        {
            let (x, y) = (at % width, at / width);
            bounds = Some(match bounds {
                None => (x, y, x, y),
                Some((left, top, right, bottom)) => {
                    (left.min(x), top.min(y), right.max(x), bottom.max(y))
                }
            });
        }
        let Some((left, top, right, bottom)) = bounds else {
            return gif::Frame {
                width: 1,
                height: 1,
                transparent: Some(transparent),
                buffer: Cow::Owned(vec![transparent]),
                ..gif::Frame::default()
            };
        };
        let mut buffer = Vec::with_capacity((right - left + 1) * (bottom - top + 1));
        for y in top..=bottom {
            let row = y * width + left..=y * width + right;
            buffer.extend(
                previous[row.clone()]
                    .iter()
                    .zip(&current[row])
                    .map(|(old, new)| if old == new { transparent } else { *new }),
            );
        }
        // The bounds lie inside a frame whose sides fit in u16, so these cannot truncate.
        gif::Frame {
            left: left as u16,
            top: top as u16,
            width: (right - left + 1) as u16,
            height: (bottom - top + 1) as u16,
            transparent: Some(transparent),
            buffer: Cow::Owned(buffer),
            ..gif::Frame::default()
        }
    }
}

/// GIF delay in hundredths of a second for `fps`, rounded. Rates above 50 fps are
/// refused because browsers play delays under 2 as 10, i.e. far too slowly.
fn delay_for(fps: u32) -> anyhow::Result<u16> {
    ensure!(
        (1..=50).contains(&fps),
        "GIF frame rate must be 1 to 50 fps, not {fps}"
    );
    // Rounds 100 / fps to the nearest integer; at most 100, so it fits in u16.
    Ok(((100 + fps / 2) / fps) as u16)
}

/// The index in `palette` of an RGB pixel: its exact colour, or else the nearest.
fn palette_index(palette: &[[u8; 3]], rgb: &[u8]) -> u8 {
    // Rendered frames only hold palette colours, so the exact match is the hot path.
    if let Some(exact) = palette.iter().position(|colour| colour[..] == *rgb) {
        return exact as u8;
    }
    let distance = |colour: &[u8; 3]| -> u32 {
        colour
            .iter()
            .zip(rgb)
            .map(|(&a, &b)| u32::from(a.abs_diff(b)).pow(2))
            .sum()
    };
    let nearest = (0..palette.len())
        .min_by_key(|&i| distance(&palette[i]))
        .unwrap_or(0);
    nearest as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::render::cartpole::{AXLE_COLOUR, POLE_COLOUR};
    use crate::env::render::{frame, Scene, BLACK, WHITE};
    use crate::env::{Acrobot, CartPole};

    /// One Euler step of CartPole-v1's dynamics (Gymnasium's constants), only to
    /// make realistic test episodes.
    fn step(state: [f64; 4], push_right: bool) -> [f64; 4] {
        let [x, x_dot, theta, theta_dot] = state;
        let force = if push_right { 10.0 } else { -10.0 };
        let (sin, cos) = theta.sin_cos();
        let temp = (force + 0.05 * theta_dot * theta_dot * sin) / 1.1;
        let theta_acc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos * cos / 1.1));
        let x_acc = temp - 0.05 * theta_acc * cos / 1.1;
        [
            x + 0.02 * x_dot,
            x_dot + 0.02 * x_acc,
            theta + 0.02 * theta_dot,
            theta_dot + 0.02 * theta_acc,
        ]
    }

    /// Frames of an episode balanced by a bang-bang controller, like a trained
    /// agent's, pushed into a 50 fps GIF as they are rendered.
    fn encode_balanced_episode(steps: u32) -> anyhow::Result<Vec<u8>> {
        let mut state = [0.0, 0.0, 0.05, 0.0];
        let mut writer = GifWriter::start(Vec::new(), &frame::<CartPole>(&state, 0, 0.0), 50)?;
        for t in 1..steps {
            let lean = state[2] + 0.5 * state[3] + 0.01 * state[0] + 0.05 * state[1];
            state = step(state, lean > 0.0);
            writer.push(&frame::<CartPole>(&state, t, f64::from(t)))?;
        }
        writer.finish()
    }

    #[test]
    fn decodes_back_to_the_same_frames_at_50_fps() -> anyhow::Result<()> {
        let states = [
            [0.0, 0.0, 0.05, 0.0],
            [0.01, 0.2, 0.04, -0.3],
            [0.3, 0.2, -0.1, -0.3],
        ];
        let mut frames: Vec<Frame> = states
            .iter()
            .map(|s| frame::<CartPole>(s, 1, 1.0))
            .collect();
        frames.push(frame::<CartPole>(&states[2], 2, 2.0)); // only the overlay changes
        frames.push(frames[3].clone()); // an unchanged frame must still take its time step
        let mut writer = GifWriter::start(Vec::new(), &frames[0], 50)?;
        for frame in &frames[1..] {
            writer.push(frame)?;
        }
        let bytes = writer.finish()?;

        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::RGBA);
        let mut decoder = options.read_info(bytes.as_slice())?;
        assert_eq!((decoder.width(), decoder.height()), (600, 400));
        // Composite the sub-images as a viewer would (disposal: keep).
        let mut canvas = vec![0u8; 600 * 400 * 4];
        let mut count = 0;
        while let Some(part) = decoder.read_next_frame()? {
            assert_eq!(part.delay, 2, "50 fps is 2 hundredths per frame");
            assert_eq!(part.dispose, DisposalMethod::Keep);
            for (i, rgba) in part.buffer.chunks_exact(4).enumerate() {
                let x = usize::from(part.left) + i % usize::from(part.width);
                let y = usize::from(part.top) + i / usize::from(part.width);
                if rgba[3] != 0 {
                    canvas[(y * 600 + x) * 4..][..4].copy_from_slice(rgba);
                }
            }
            let expected = &frames[count];
            let decoded: Vec<u8> = canvas
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect();
            assert!(
                decoded == expected.pixels,
                "frame {count} differs after decoding"
            );
            count += 1;
        }
        assert_eq!(count, frames.len());
        let rgb_at = |x: usize, y: usize| {
            [
                canvas[(y * 600 + x) * 4],
                canvas[(y * 600 + x) * 4 + 1],
                canvas[(y * 600 + x) * 4 + 2],
            ]
        };
        assert_eq!(rgb_at(599, 0), WHITE);
        assert_eq!(rgb_at(0, 299), BLACK);
        // The last state's cart sits at 300 + 0.3 * 125 px, its pole leaning left.
        assert_eq!(rgb_at(337, 292), AXLE_COLOUR);
        assert_eq!(rgb_at(333, 250), POLE_COLOUR);
        Ok(())
    }

    #[test]
    fn a_500_step_episode_stays_small() -> anyhow::Result<()> {
        let bytes = encode_balanced_episode(500)?;
        assert!(
            bytes.len() < 1024 * 1024,
            "500 frames took {} bytes",
            bytes.len()
        );
        Ok(())
    }

    #[test]
    fn rejects_bad_rates_sizes_and_palettes() {
        let cartpole = frame::<CartPole>(&[0.0; 4], 0, 0.0);
        assert!(GifWriter::start(Vec::new(), &cartpole, 0).is_err());
        assert!(GifWriter::start(Vec::new(), &cartpole, 100).is_err());
        let huge = Frame {
            width: 70_000,
            height: 1,
            palette: &[WHITE],
            pixels: vec![255; 210_000],
        };
        assert!(GifWriter::start(Vec::new(), &huge, 50).is_err());
        let small = Frame {
            width: 2,
            height: 2,
            palette: cartpole.palette,
            pixels: vec![255; 12],
        };
        let acrobot = frame::<Acrobot>(&[0.0; 4], 0, 0.0);
        let recoloured = Frame {
            palette: Acrobot::PALETTE,
            ..cartpole.clone()
        };
        for other in [small, acrobot, recoloured] {
            let pushed = GifWriter::start(Vec::new(), &cartpole, 50)
                .and_then(|mut writer| writer.push(&other));
            assert!(pushed.is_err(), "{}x{}", other.width, other.height);
        }
    }

    #[test]
    fn takes_size_and_colours_from_the_first_frame() -> anyhow::Result<()> {
        let first = frame::<Acrobot>(&[0.5, -0.5, 0.0, 0.0], 3, -3.0);
        let bytes = GifWriter::start(Vec::new(), &first, 15)?.finish()?;
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::RGBA);
        let mut decoder = options.read_info(bytes.as_slice())?;
        assert_eq!((decoder.width(), decoder.height()), (500, 500));
        let palette = decoder.global_palette().map(<[u8]>::to_vec);
        let part = decoder.read_next_frame()?.context("one frame")?;
        assert_eq!(part.delay, 7, "15 fps is 6.7 hundredths per frame");
        let decoded: Vec<u8> = part
            .buffer
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        assert!(decoded == first.pixels, "the frame differs after decoding");
        // The frame's four colours, the transparent slot, and padding to eight.
        let palette = palette.context("a global palette")?;
        assert_eq!(palette.len(), 8 * 3);
        assert_eq!(palette[..12], *Acrobot::PALETTE.concat());
        Ok(())
    }

    #[test]
    fn delays_round_to_hundredths() -> anyhow::Result<()> {
        assert_eq!(delay_for(50)?, 2);
        assert_eq!(delay_for(30)?, 3);
        assert_eq!(delay_for(1)?, 100);
        Ok(())
    }

    #[test]
    fn off_palette_colours_map_to_the_nearest() {
        let palette = CartPole::PALETTE;
        assert_eq!(palette_index(palette, &[250, 250, 250]), 0);
        assert_eq!(palette_index(palette, &[200, 150, 100]), 2);
    }
}

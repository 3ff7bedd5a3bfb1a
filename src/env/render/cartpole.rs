//! CartPole-v1's frames: Gymnasium 1.x's `CartPoleEnv.render`, a 600x400 screen at 50 frames
//! per second (real time for its 0.02 s step), with the anti-aliased outlines left out.

use super::draw::{rotate, to_pixel};
use super::{Frame, Scene, BLACK, WHITE};
use crate::env::cartpole::{CartPole, HALF_POLE_LENGTH, X_THRESHOLD};

/// Pole colour, as in Gymnasium.
pub const POLE_COLOUR: [u8; 3] = [202, 152, 101];
/// Axle colour, as in Gymnasium.
pub const AXLE_COLOUR: [u8; 3] = [129, 132, 203];

/// Pole thickness in pixels.
const POLE_WIDTH: f64 = 10.0;
/// Cart size in pixels.
const CART_WIDTH: f64 = 50.0;
const CART_HEIGHT: f64 = 30.0;
/// Height of the cart's centre line and of the track, in pixels above the bottom edge.
const CART_Y: f64 = 100.0;

impl Scene for CartPole {
    const WIDTH: u32 = 600;
    const HEIGHT: u32 = 400;
    const FPS: u32 = 50;
    const PALETTE: &'static [[u8; 3]] = &[WHITE, BLACK, POLE_COLOUR, AXLE_COLOUR];

    /// `state` = (x, x_dot, theta, theta_dot): the cart on the track, the pole on its axle.
    /// Non-finite values draw at 0.
    fn draw(state: &[f64; 4], frame: &mut Frame) {
        let width = f64::from(Self::WIDTH);
        let scale = width / (2.0 * X_THRESHOLD);
        let pole_len = scale * (2.0 * HALF_POLE_LENGTH);
        let axle_offset = CART_HEIGHT / 4.0;
        let cart_x = state[0] * scale + width / 2.0;

        let (half_w, half_h) = (CART_WIDTH / 2.0, CART_HEIGHT / 2.0);
        let cart = [
            (-half_w, -half_h),
            (-half_w, half_h),
            (half_w, half_h),
            (half_w, -half_h),
        ]
        .map(|(dx, dy)| (cart_x + dx, CART_Y + dy));
        frame.fill_polygon(&cart, BLACK);

        // Gymnasium rotates by -theta: positive theta tips the pole clockwise, i.e. to the
        // right once the image is upright.
        let half_pole = POLE_WIDTH / 2.0;
        let pole = [
            (-half_pole, -half_pole),
            (-half_pole, pole_len - half_pole),
            (half_pole, pole_len - half_pole),
            (half_pole, -half_pole),
        ]
        .map(|corner| {
            let (rx, ry) = rotate(corner, -state[2]);
            (rx + cart_x, ry + CART_Y + axle_offset)
        });
        frame.fill_polygon(&pole, POLE_COLOUR);

        // Gymnasium passes int() of the centre and radius to gfxdraw.
        let axle = (to_pixel(cart_x), to_pixel(CART_Y + axle_offset));
        frame.fill_circle(axle, to_pixel(POLE_WIDTH / 2.0), AXLE_COLOUR);

        // The track is drawn last, over everything on its row, as in Gymnasium.
        frame.hline(0, i64::from(Self::WIDTH), to_pixel(CART_Y), BLACK);
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame;
    use super::*;

    /// Mean column of the pixels of `colour` in rows `rows`, or None if there are none.
    fn mean_column(frame: &Frame, rows: std::ops::Range<u32>, colour: [u8; 3]) -> Option<f64> {
        let columns: Vec<u32> = rows
            .flat_map(|y| (0..frame.width).map(move |x| (x, y)))
            .filter(|&(x, y)| frame.pixel(x, y) == Some(colour))
            .map(|(x, _)| x)
            .collect();
        (!columns.is_empty())
            .then(|| columns.iter().map(|&x| f64::from(x)).sum::<f64>() / columns.len() as f64)
    }

    /// Cart rows after the flip, without the track row (299).
    const CART_ROWS: std::ops::Range<u32> = 285..299;

    #[test]
    fn frame_is_600_by_400_rgb() {
        let frame = frame::<CartPole>(&[0.0; 4], 0, 0.0);
        assert_eq!((frame.width, frame.height), (600, 400));
        assert_eq!(frame.pixels.len(), 600 * 400 * 3);
    }

    #[test]
    fn background_is_white_and_track_is_black() {
        let frame = frame::<CartPole>(&[0.0; 4], 0, 0.0);
        for (x, y) in [(599, 0), (0, 399), (599, 399), (300, 50), (100, 200)] {
            assert_eq!(frame.pixel(x, y), Some(WHITE), "({x}, {y})");
        }
        // Gymnasium's hline at y = 100 lands on row 400 - 1 - 100 after the flip.
        assert_eq!(frame.pixel(0, 299), Some(BLACK));
        assert_eq!(frame.pixel(599, 299), Some(BLACK));
        assert_eq!(frame.pixel(10, 298), Some(WHITE));
    }

    #[test]
    fn cart_is_centred_and_moves_right_with_x() {
        let centre = mean_column(&frame::<CartPole>(&[0.0; 4], 0, 0.0), CART_ROWS, BLACK);
        let moved = mean_column(
            &frame::<CartPole>(&[1.0, 0.0, 0.0, 0.0], 0, 0.0),
            CART_ROWS,
            BLACK,
        );
        let (centre, moved) = (centre.unwrap_or(f64::NAN), moved.unwrap_or(f64::NAN));
        assert!((centre - 300.0).abs() <= 1.0, "cart centre at {centre}");
        // One metre is 600 / 4.8 = 125 pixels.
        assert!(
            (moved - centre - 125.0).abs() <= 1.0,
            "cart moved to {moved}"
        );
    }

    #[test]
    fn pole_is_upright_at_zero_and_leans_with_theta() {
        let upright = frame::<CartPole>(&[0.0; 4], 0, 0.0);
        let top_row =
            (0..400).find(|&y| (0..600).any(|x| upright.pixel(x, y) == Some(POLE_COLOUR)));
        // Top edge at 100 + 7.5 + 125 - 5 = 227.5, truncated to 227, flipped to row 399 - 227.
        assert_eq!(top_row, Some(172));
        let column = |theta: f64| {
            let frame = frame::<CartPole>(&[0.0, 0.0, theta, 0.0], 0, 0.0);
            mean_column(&frame, 100..250, POLE_COLOUR).unwrap_or(f64::NAN)
        };
        assert!((column(0.0) - 300.0).abs() <= 1.0);
        assert!(
            column(0.2) > 310.0,
            "theta > 0 leans right: {}",
            column(0.2)
        );
        assert!(
            column(-0.2) < 290.0,
            "theta < 0 leans left: {}",
            column(-0.2)
        );
    }

    #[test]
    fn axle_sits_on_the_cart() {
        let frame = frame::<CartPole>(&[0.0; 4], 0, 0.0);
        // Centre int(107.5) = 107 flips to row 292.
        assert_eq!(frame.pixel(300, 292), Some(AXLE_COLOUR));
        assert_eq!(frame.pixel(305, 292), Some(AXLE_COLOUR));
        assert_eq!(frame.pixel(306, 292), Some(BLACK));
    }

    #[test]
    fn frames_use_only_the_palette_and_survive_absurd_states() {
        for state in [
            [0.3, 1.0, -0.15, 2.0],
            [f64::NAN; 4],
            [1e300, 0.0, -1e300, 0.0],
            [2.6, 0.0, 3.0, 0.0],
        ] {
            let frame = frame::<CartPole>(&state, u32::MAX, f64::INFINITY);
            assert!(frame
                .pixels
                .chunks_exact(3)
                .all(|p| CartPole::PALETTE.contains(&[p[0], p[1], p[2]])));
        }
    }
}

//! Acrobot-v1's frames: Gymnasium 1.x's `AcrobotEnv.render`, a 500x500 screen at 15 frames per
//! second, with the anti-aliased outlines left out.

use std::f64::consts::FRAC_PI_2;

use super::draw::{rotate, to_pixel};
use super::{Frame, Scene, BLACK, WHITE};
use crate::env::acrobot::{Acrobot, LINK_LENGTH_1, LINK_LENGTH_2};

/// Link colour, as in Gymnasium.
pub const LINK_COLOUR: [u8; 3] = [0, 204, 204];
/// Joint colour, as in Gymnasium.
pub const JOINT_COLOUR: [u8; 3] = [204, 204, 0];

/// Side of the square screen in pixels (Gymnasium's `SCREEN_DIM`).
const SCREEN_DIM: u32 = 500;

impl Scene for Acrobot {
    const WIDTH: u32 = SCREEN_DIM;
    const HEIGHT: u32 = SCREEN_DIM;
    const FPS: u32 = 15;
    const PALETTE: &'static [[u8; 3]] = &[WHITE, BLACK, LINK_COLOUR, JOINT_COLOUR];

    /// `state` = (theta1, theta2, ...): the bar the tip must rise above, and the two links
    /// hanging from the centre of the screen, each with a joint at its upper end. Both angles
    /// 0 is hanging straight down; positive angles turn counter-clockwise.
    fn draw(state: &[f64; 4], frame: &mut Frame) {
        let screen = f64::from(SCREEN_DIM);
        // The world shown reaches 0.2 m beyond the outstretched links each way.
        let bound = LINK_LENGTH_1 + LINK_LENGTH_2 + 0.2;
        let scale = screen / (bound * 2.0);
        let offset = screen / 2.0;
        let [theta1, theta2, ..] = *state;

        // The bar at 1 m above the pivot, which pygame's draw.line gets in whole pixels.
        let bar_y = to_pixel(scale + offset);
        let bar = (
            to_pixel(-2.2 * scale + offset),
            to_pixel(2.2 * scale + offset),
        );
        frame.line((bar.0, bar_y), (bar.1, bar_y), BLACK);

        // Gymnasium's p1 = (-l1 cos t1, l1 sin t1) with its coordinates swapped: the first
        // joint at the pivot, the second at the first link's end.
        let elbow = (
            LINK_LENGTH_1 * theta1.sin() * scale,
            -LINK_LENGTH_1 * theta1.cos() * scale,
        );
        let links = [
            ((0.0, 0.0), theta1 - FRAC_PI_2, LINK_LENGTH_1 * scale),
            (elbow, theta1 + theta2 - FRAC_PI_2, LINK_LENGTH_2 * scale),
        ];
        let half_width = 0.1 * scale;
        for ((x, y), angle, length) in links {
            let (x, y) = (x + offset, y + offset);
            let link = [
                (0.0, -half_width),
                (0.0, half_width),
                (length, half_width),
                (length, -half_width),
            ]
            .map(|corner| {
                let (rx, ry) = rotate(corner, angle);
                (rx + x, ry + y)
            });
            frame.fill_polygon(&link, LINK_COLOUR);
            frame.fill_circle(
                (to_pixel(x), to_pixel(y)),
                to_pixel(half_width),
                JOINT_COLOUR,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::PI;

    use super::super::frame;
    use super::*;

    #[test]
    fn frame_is_500_by_500_with_the_bar_one_metre_above_the_pivot() {
        let frame = frame::<Acrobot>(&[0.0; 4], 0, 0.0);
        assert_eq!((frame.width, frame.height), (500, 500));
        // scale = 500 / 4.4; the bar at int(250 + 113.6) = 363 flips to row 499 - 363.
        for x in [0, 120, 499] {
            assert_eq!(frame.rows_of(x, BLACK), vec![136], "column {x}");
        }
    }

    #[test]
    fn links_hang_straight_down_at_rest() {
        let frame = frame::<Acrobot>(&[0.0; 4], 0, 0.0);
        // The pivot at (250, 250) flips to row 249; the links reach 2 * 113.6 px below it.
        assert_eq!(frame.pixel(250, 249), Some(JOINT_COLOUR));
        assert_eq!(frame.pixel(250, 250 + 113), Some(JOINT_COLOUR), "elbow");
        assert_eq!(frame.pixel(250, 249 + 200), Some(LINK_COLOUR));
        assert_eq!(frame.pixel(250, 249 + 230), Some(WHITE), "below the tip");
        // Links are 0.2 m = 22.7 px wide, their sides at 250 -+ 11.4 truncated.
        let across: Vec<u32> = (0..500)
            .filter(|&x| frame.pixel(x, 300) == Some(LINK_COLOUR))
            .collect();
        assert_eq!(across.first().zip(across.last()), Some((&238, &261)));
        assert_eq!(
            frame.pixel(250, 100),
            Some(WHITE),
            "nothing above the pivot"
        );
    }

    #[test]
    fn links_swing_counter_clockwise_with_positive_angles() {
        // theta1 = pi/2 swings the first link out to the right; theta2 = pi/2 then turns
        // the second one up.
        let frame = frame::<Acrobot>(&[PI / 2.0, PI / 2.0, 0.0, 0.0], 0, 0.0);
        assert_eq!(frame.pixel(300, 249), Some(LINK_COLOUR));
        assert_eq!(frame.pixel(200, 249), Some(WHITE));
        // The elbow at 250 + 113.6 px, the second link rising from it.
        assert_eq!(frame.pixel(363, 249), Some(JOINT_COLOUR));
        assert_eq!(frame.pixel(363, 249 - 80), Some(LINK_COLOUR));
        assert_eq!(frame.pixel(363, 249 + 80), Some(WHITE));
    }

    #[test]
    fn frames_use_only_the_palette_and_survive_absurd_states() {
        for state in [
            [0.3, -2.0, 4.0, -9.0],
            [f64::NAN; 4],
            [1e300, -1e300, 0.0, 0.0],
            [f64::INFINITY, 0.0, 0.0, 0.0],
        ] {
            let frame = frame::<Acrobot>(&state, u32::MAX, f64::NEG_INFINITY);
            assert!(frame
                .pixels
                .chunks_exact(3)
                .all(|p| Acrobot::PALETTE.contains(&[p[0], p[1], p[2]])));
        }
    }
}

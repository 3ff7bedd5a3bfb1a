//! MountainCar-v0's frames: Gymnasium 1.x's `MountainCarEnv.render`, a 600x400 screen at 30
//! frames per second, with the anti-aliased track drawn as plain one-pixel lines and the
//! anti-aliased outlines left out.

use super::draw::{rotate, to_pixel};
use super::{Frame, Scene, BLACK, WHITE};
use crate::env::mountain_car::{MountainCar, GOAL_POSITION, MAX_POSITION, MIN_POSITION};

/// Wheel colour, as in Gymnasium.
pub const WHEEL_COLOUR: [u8; 3] = [128, 128, 128];
/// Flag colour, as in Gymnasium.
pub const FLAG_COLOUR: [u8; 3] = [204, 204, 0];

/// Points of the track's polyline (Gymnasium's `np.linspace(min, max, 100)`).
const TRACK_POINTS: u32 = 100;
/// Car size in pixels.
const CAR_WIDTH: f64 = 40.0;
const CAR_HEIGHT: f64 = 20.0;
/// Gap between the track and the car's underside, in pixels.
const CLEARANCE: f64 = 10.0;
/// Flagpole height in pixels.
const FLAGPOLE_HEIGHT: i64 = 50;

/// The hill's height at `position`, in metres above the bottom of the screen (Gymnasium's
/// `_height`).
fn height(position: f64) -> f64 {
    (3.0 * position).sin() * 0.45 + 0.55
}

impl Scene for MountainCar {
    const WIDTH: u32 = 600;
    const HEIGHT: u32 = 400;
    const FPS: u32 = 30;
    const PALETTE: &'static [[u8; 3]] = &[WHITE, BLACK, WHEEL_COLOUR, FLAG_COLOUR];

    /// `state` = (position, velocity): the track, the car on it tilted by Gymnasium's
    /// `cos(3 position)` radians, its two wheels, and the flag at the goal position.
    fn draw(state: &[f64; 2], frame: &mut Frame) {
        let scale = f64::from(Self::WIDTH) / (MAX_POSITION - MIN_POSITION);
        let to_screen = |position: f64| (position - MIN_POSITION) * scale;

        // numpy's linspace: i * step + start, the last point exactly the end.
        let step = (MAX_POSITION - MIN_POSITION) / f64::from(TRACK_POINTS - 1);
        let track: Vec<(i64, i64)> = (0..TRACK_POINTS)
            .map(|i| {
                if i == TRACK_POINTS - 1 {
                    MAX_POSITION
                } else {
                    f64::from(i) * step + MIN_POSITION
                }
            })
            .map(|x| (to_pixel(to_screen(x)), to_pixel(height(x) * scale)))
            .collect();
        for segment in track.windows(2) {
            frame.line(segment[0], segment[1], BLACK);
        }

        let position = state[0];
        let tilt = (3.0 * position).cos();
        let place = |corner: (f64, f64)| {
            let (x, y) = rotate(corner, tilt);
            (
                x + to_screen(position),
                y + CLEARANCE + height(position) * scale,
            )
        };
        let (left, right, top, bottom) = (-CAR_WIDTH / 2.0, CAR_WIDTH / 2.0, CAR_HEIGHT, 0.0);
        let car = [(left, bottom), (left, top), (right, top), (right, bottom)].map(place);
        frame.fill_polygon(&car, BLACK);
        for axle in [CAR_WIDTH / 4.0, -CAR_WIDTH / 4.0] {
            let (x, y) = place((axle, 0.0));
            let radius = to_pixel(CAR_HEIGHT / 2.5);
            frame.fill_circle((to_pixel(x), to_pixel(y)), radius, WHEEL_COLOUR);
        }

        let flag_x = to_pixel(to_screen(GOAL_POSITION));
        let flag_bottom = to_pixel(height(GOAL_POSITION) * scale);
        let flag_top = flag_bottom + FLAGPOLE_HEIGHT;
        frame.vline(flag_x, flag_bottom, flag_top, BLACK);
        let flag = [
            (flag_x, flag_top),
            (flag_x, flag_top - 10),
            (flag_x + 25, flag_top - 5),
        ]
        .map(|(x, y)| (x as f64, y as f64));
        frame.fill_polygon(&flag, FLAG_COLOUR);
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame;
    use super::*;

    /// Mean column of the pixels of `colour`, or NaN if there are none.
    fn mean_column(frame: &Frame, colour: [u8; 3]) -> f64 {
        let columns: Vec<f64> = (0..frame.height)
            .flat_map(|y| (0..frame.width).map(move |x| (x, y)))
            .filter(|&(x, y)| frame.pixel(x, y) == Some(colour))
            .map(|(x, _)| f64::from(x))
            .collect();
        columns.iter().sum::<f64>() / columns.len() as f64
    }

    #[test]
    fn frame_is_600_by_400_with_the_flag_at_the_goal() {
        let frame = frame::<MountainCar>(&[-0.5, 0.0], 0, 0.0);
        assert_eq!((frame.width, frame.height), (600, 400));
        // The pole at int(1.7 * 600 / 1.8) = 566, from int(0.99887 * 333.3) = 332 up to 382,
        // rows 399 - 382 to 399 - 332 once flipped; the flag covers its top 11 rows.
        let flag_rows: Vec<u32> = (17..=27).collect();
        let pole_rows: Vec<u32> = (28..=67).collect();
        assert_eq!(frame.rows_of(566, FLAG_COLOUR), flag_rows);
        assert_eq!(frame.rows_of(566, BLACK), pole_rows);
        assert_eq!(frame.pixel(566, 16), Some(WHITE));
        // The flag reaches 25 px to the right, its tip 5 px below the pole's top.
        assert_eq!(frame.pixel(590, 22), Some(FLAG_COLOUR));
        assert_eq!(frame.pixel(592, 22), Some(WHITE));
        assert_eq!(frame.pixel(567, 28), Some(WHITE));
    }

    #[test]
    fn track_follows_the_hill() {
        let frame = frame::<MountainCar>(&[-0.5, 0.0], 0, 0.0);
        // Valley floor (position -pi/6, height 0.1 m = 33 px) and the hill at the right edge
        // (height 0.55 + 0.45 sin 1.8 = 0.9877 m = 329 px), flipped.
        let valley = to_pixel((-std::f64::consts::FRAC_PI_6 + 1.2) * 600.0 / 1.8) as u32;
        assert!(frame.rows_of(valley, BLACK).contains(&(399 - 33)));
        assert!(frame.rows_of(599, BLACK).contains(&(399 - 329)));
        // Every column has some track.
        assert!((0..600).all(|x| !frame.rows_of(x, BLACK).is_empty()));
    }

    #[test]
    fn car_moves_along_the_track_with_its_position() {
        for position in [-1.0, -0.5, 0.0, 0.45] {
            let frame = frame::<MountainCar>(&[position, 0.0], 0, 0.0);
            let expected = (position + 1.2) * 600.0 / 1.8;
            let wheels = mean_column(&frame, WHEEL_COLOUR);
            assert!(
                (wheels - expected).abs() < 2.0,
                "position {position}: wheels at {wheels}, expected {expected}"
            );
        }
    }

    #[test]
    fn car_stands_level_on_its_wheels_at_the_valley_floor() {
        // At -pi/6 the tilt cos(3 position) is a quarter turn's 1e-16 from 0: no rotation.
        let frame = frame::<MountainCar>(&[-std::f64::consts::FRAC_PI_6, 0.0], 0, 0.0);
        // Centre at 225.5 px; body from 10 + 33.3 px above the bottom to 20 px higher, i.e.
        // rows 336 to 356 once flipped, and 40 px wide.
        let body: Vec<u32> = (336..=356).collect();
        let above_the_track = frame
            .rows_of(225, BLACK)
            .into_iter()
            .filter(|row| (100..366).contains(row))
            .collect::<Vec<_>>();
        assert_eq!(above_the_track, body);
        // (Further out, the track rises through that row.)
        let across: Vec<u32> = (180..270)
            .filter(|&x| frame.pixel(x, 340) == Some(BLACK))
            .collect();
        assert_eq!(across.first().zip(across.last()), Some((&205, &245)));
        // Wheels of radius 8 centred on the body's bottom edge at 225.5 -+ 10 px, their lowest
        // row two above the track's (row 399 - 33).
        for wheel in [215, 235] {
            let rows: Vec<u32> = (348..=364).collect();
            assert_eq!(frame.rows_of(wheel, WHEEL_COLOUR), rows, "wheel at {wheel}");
        }
        assert_eq!(frame.pixel(225, 366), Some(BLACK), "track");
    }

    #[test]
    fn frames_use_only_the_palette_and_survive_absurd_states() {
        for state in [
            [0.6, 0.07],
            [-1.2, -0.07],
            [f64::NAN; 2],
            [1e300, 0.0],
            [f64::NEG_INFINITY, 0.0],
        ] {
            let frame = frame::<MountainCar>(&state, u32::MAX, f64::NAN);
            assert!(frame
                .pixels
                .chunks_exact(3)
                .all(|p| MountainCar::PALETTE.contains(&[p[0], p[1], p[2]])));
        }
    }
}

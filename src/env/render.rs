//! Frames of a CartPole-v1 state, drawn the way Gymnasium 1.x's pygame renderer
//! (`CartPoleEnv.render`) draws them, plus a step / return overlay.
//!
//! Pixels only: no file formats and no tensors. Geometry and colours follow
//! Gymnasium; the one deliberate difference is that the anti-aliased outlines
//! (`gfxdraw.aapolygon` / `aacircle`) are left out, so every frame uses only the
//! four colours of [`PALETTE`] and the GIFs made from them stay small.

/// Frame width in pixels (Gymnasium's `screen_width`).
pub const WIDTH: u32 = 600;
/// Frame height in pixels (Gymnasium's `screen_height`).
pub const HEIGHT: u32 = 400;

/// Background colour.
pub const WHITE: [u8; 3] = [255, 255, 255];
/// Cart, track and overlay text colour.
pub const BLACK: [u8; 3] = [0, 0, 0];
/// Pole colour, as in Gymnasium.
pub const POLE_COLOUR: [u8; 3] = [202, 152, 101];
/// Axle colour, as in Gymnasium.
pub const AXLE_COLOUR: [u8; 3] = [129, 132, 203];
/// Every colour a rendered frame can contain.
pub const PALETTE: [[u8; 3]; 4] = [WHITE, BLACK, POLE_COLOUR, AXLE_COLOUR];

/// Half the width of the world shown, in metres (Gymnasium's `x_threshold`).
const X_THRESHOLD: f64 = 2.4;
/// Half the pole's length, in metres (Gymnasium's `length`).
const HALF_POLE_LENGTH: f64 = 0.5;
/// Pole thickness in pixels.
const POLE_WIDTH: f64 = 10.0;
/// Cart size in pixels.
const CART_WIDTH: f64 = 50.0;
const CART_HEIGHT: f64 = 30.0;
/// Height of the cart's centre line and of the track, in pixels above the bottom
/// edge (Gymnasium draws with y up, then flips the surface).
const CART_Y: f64 = 100.0;
/// Overlay placement and size: the 8x8 font doubled so it stays legible when a
/// README shows the GIF scaled down.
const OVERLAY_MARGIN: i64 = 8;
const OVERLAY_SCALE: i64 = 2;

/// An RGB image, row-major, top row first, three bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes: R, G, B of each pixel, rows top to bottom.
    pub pixels: Vec<u8>,
}

impl Frame {
    /// A frame of one colour.
    fn filled(width: u32, height: u32, colour: [u8; 3]) -> Self {
        let count = width as usize * height as usize;
        Self {
            width,
            height,
            pixels: colour.repeat(count),
        }
    }

    /// The colour at column `x`, row `y` (row 0 at the top), or `None` outside the frame.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let at = (y as usize * self.width as usize + x as usize) * 3;
        Some([self.pixels[at], self.pixels[at + 1], self.pixels[at + 2]])
    }

    /// Paints one pixel; coordinates outside the frame are clipped silently.
    fn put(&mut self, x: i64, y: i64, colour: [u8; 3]) {
        if (0..i64::from(self.width)).contains(&x) && (0..i64::from(self.height)).contains(&y) {
            let at = (y as usize * self.width as usize + x as usize) * 3;
            self.pixels[at..at + 3].copy_from_slice(&colour);
        }
    }

    /// Paints columns `x0..=x1` of row `y`, clipped to the frame.
    fn hline(&mut self, x0: i64, x1: i64, y: i64, colour: [u8; 3]) {
        if !(0..i64::from(self.height)).contains(&y) {
            return;
        }
        let first = x0.max(0);
        let last = x1.min(i64::from(self.width) - 1);
        for x in first..=last {
            self.put(x, y, colour);
        }
    }

    /// Mirrors the rows, as `pygame.transform.flip(surf, False, True)` does.
    fn flip_vertically(&mut self) {
        let row_len = self.width as usize * 3;
        let rows = self.height as usize;
        for top in 0..rows / 2 {
            let (upper, lower) = self.pixels.split_at_mut((rows - 1 - top) * row_len);
            upper[top * row_len..(top + 1) * row_len].swap_with_slice(&mut lower[..row_len]);
        }
    }
}

/// Draws `state` = (x, x_dot, theta, theta_dot) as Gymnasium's CartPole-v1 does,
/// with "step N  return R" in the top-left corner. Never panics, whatever the
/// state: parts outside the frame are clipped and non-finite values draw at 0.
pub fn render_frame(state: &[f64; 4], step: u32, episode_return: f64) -> Frame {
    let mut frame = Frame::filled(WIDTH, HEIGHT, WHITE);
    let width = f64::from(WIDTH);
    let scale = width / (2.0 * X_THRESHOLD);
    let pole_len = scale * (2.0 * HALF_POLE_LENGTH);
    let axle_offset = CART_HEIGHT / 4.0;
    let cart_x = state[0] * scale + width / 2.0;

    // Until the flip below, y grows upwards from the bottom edge, as in Gymnasium.
    let (half_w, half_h) = (CART_WIDTH / 2.0, CART_HEIGHT / 2.0);
    let cart = [
        (-half_w, -half_h),
        (-half_w, half_h),
        (half_w, half_h),
        (half_w, -half_h),
    ]
    .map(|(dx, dy)| (cart_x + dx, CART_Y + dy));
    fill_polygon(&mut frame, &cart, BLACK);

    // pygame's Vector2.rotate_rad(-theta): positive theta tips the pole clockwise,
    // i.e. to the right once the image is upright.
    let half_pole = POLE_WIDTH / 2.0;
    let (sin, cos) = (-state[2]).sin_cos();
    let pole = [
        (-half_pole, -half_pole),
        (-half_pole, pole_len - half_pole),
        (half_pole, pole_len - half_pole),
        (half_pole, -half_pole),
    ]
    .map(|(px, py)| {
        let (rx, ry) = (px * cos - py * sin, px * sin + py * cos);
        (cart_x + rx, CART_Y + axle_offset + ry)
    });
    fill_polygon(&mut frame, &pole, POLE_COLOUR);

    // Gymnasium passes int() of the centre and radius to gfxdraw.
    let axle = (to_pixel(cart_x), to_pixel(CART_Y + axle_offset));
    fill_circle(&mut frame, axle, to_pixel(POLE_WIDTH / 2.0), AXLE_COLOUR);

    // The track is drawn last, over everything on its row, as in Gymnasium.
    frame.hline(0, i64::from(WIDTH), to_pixel(CART_Y), BLACK);
    frame.flip_vertically();

    let overlay = format!("step {step}  return {episode_return:.0}");
    draw_text(&mut frame, &overlay, OVERLAY_MARGIN, OVERLAY_MARGIN, BLACK);
    frame
}

/// Truncates towards zero like Python's `int()`, bounded so that later integer
/// arithmetic cannot overflow for absurd states; NaN becomes 0.
fn to_pixel(coordinate: f64) -> i64 {
    coordinate.clamp(-1e6, 1e6) as i64
}

/// Fills a polygon with the rule of SDL_gfx's `filledPolygon`, which pygame's
/// `gfxdraw.filled_polygon` uses: integer vertices, every row from the lowest to
/// the highest vertex, edges half-open in y, crossings rounded, spans inclusive.
fn fill_polygon(frame: &mut Frame, vertices: &[(f64, f64)], colour: [u8; 3]) {
    let points: Vec<(i64, i64)> = vertices
        .iter()
        .map(|&(x, y)| (to_pixel(x), to_pixel(y)))
        .collect();
    let Some(min_y) = points.iter().map(|p| p.1).min() else {
        return;
    };
    let max_y = points.iter().map(|p| p.1).max().unwrap_or(min_y);
    let mut crossings = Vec::with_capacity(points.len());
    for y in min_y.max(0)..=max_y.min(i64::from(frame.height) - 1) {
        crossings.clear();
        for (i, &start) in points.iter().enumerate() {
            let end = points[(i + 1) % points.len()];
            let (low, high) = if start.1 < end.1 {
                (start, end)
            } else {
                (end, start)
            };
            if low.1 == high.1 {
                continue;
            }
            let inside = (low.1..high.1).contains(&y) || (y == max_y && y > low.1 && y <= high.1);
            if inside {
                let t = (y - low.1) as f64 / (high.1 - low.1) as f64;
                crossings.push(low.0 as f64 + t * (high.0 - low.0) as f64);
            }
        }
        crossings.sort_by(f64::total_cmp);
        for span in crossings.chunks_exact(2) {
            frame.hline(span[0].round() as i64, span[1].round() as i64, y, colour);
        }
    }
}

/// Fills the disc that SDL_gfx's midpoint `filledCircle` covers: for integer
/// radii this is exactly the set with dx^2 + dy^2 <= r^2 + r.
fn fill_circle(frame: &mut Frame, (cx, cy): (i64, i64), radius: i64, colour: [u8; 3]) {
    let limit = radius * radius + radius;
    for dy in -radius..=radius {
        let mut reach = 0;
        while (reach + 1) * (reach + 1) + dy * dy <= limit {
            reach += 1;
        }
        frame.hline(cx - reach, cx + reach, cy + dy, colour);
    }
}

/// Writes ASCII `text` with the public-domain 8x8 bitmap font from `font8x8`,
/// scaled by [`OVERLAY_SCALE`]; characters outside ASCII draw as blanks.
fn draw_text(frame: &mut Frame, text: &str, left: i64, top: i64, colour: [u8; 3]) {
    let advance = 8 * OVERLAY_SCALE;
    for (index, character) in text.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY
            .get(character as usize)
            .copied()
            .unwrap_or_default();
        let glyph_left = left + index as i64 * advance;
        for (row, bits) in glyph.iter().enumerate() {
            // Bit 0 of each row byte is the leftmost pixel.
            for column in (0..8).filter(|c| bits & (1 << c) != 0) {
                let x = glyph_left + column * OVERLAY_SCALE;
                let y = top + row as i64 * OVERLAY_SCALE;
                for (dx, dy) in
                    (0..OVERLAY_SCALE).flat_map(|dx| (0..OVERLAY_SCALE).map(move |dy| (dx, dy)))
                {
                    frame.put(x + dx, y + dy, colour);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
        let frame = render_frame(&[0.0; 4], 0, 0.0);
        assert_eq!((frame.width, frame.height), (600, 400));
        assert_eq!(frame.pixels.len(), 600 * 400 * 3);
    }

    #[test]
    fn background_is_white_and_track_is_black() {
        let frame = render_frame(&[0.0; 4], 0, 0.0);
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
        let centre = mean_column(&render_frame(&[0.0; 4], 0, 0.0), CART_ROWS, BLACK);
        let moved = mean_column(
            &render_frame(&[1.0, 0.0, 0.0, 0.0], 0, 0.0),
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
        let upright = render_frame(&[0.0; 4], 0, 0.0);
        let top_row =
            (0..HEIGHT).find(|&y| (0..WIDTH).any(|x| upright.pixel(x, y) == Some(POLE_COLOUR)));
        // Top edge at 100 + 7.5 + 125 - 5 = 227.5, truncated to 227, flipped to row 399 - 227.
        assert_eq!(top_row, Some(172));
        let column = |theta: f64| {
            let frame = render_frame(&[0.0, 0.0, theta, 0.0], 0, 0.0);
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
        let frame = render_frame(&[0.0; 4], 0, 0.0);
        // Centre int(107.5) = 107 flips to row 292.
        assert_eq!(frame.pixel(300, 292), Some(AXLE_COLOUR));
        assert_eq!(frame.pixel(305, 292), Some(AXLE_COLOUR));
        assert_eq!(frame.pixel(306, 292), Some(BLACK));
    }

    #[test]
    fn overlay_shows_text_that_changes_with_the_step() {
        let blank = render_frame(&[0.0; 4], 0, 0.0);
        let first = render_frame(&[0.0; 4], 7, 7.0);
        let later = render_frame(&[0.0; 4], 123, 123.0);
        let inked = |frame: &Frame| {
            (0..40)
                .flat_map(|y| (0..WIDTH).map(move |x| (x, y)))
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

    #[test]
    fn frames_use_only_the_palette_and_survive_absurd_states() {
        for state in [
            [0.3, 1.0, -0.15, 2.0],
            [f64::NAN; 4],
            [1e300, 0.0, -1e300, 0.0],
            [2.6, 0.0, 3.0, 0.0],
        ] {
            let frame = render_frame(&state, u32::MAX, f64::INFINITY);
            assert!(frame
                .pixels
                .chunks_exact(3)
                .all(|p| PALETTE.contains(&[p[0], p[1], p[2]])));
        }
    }
}

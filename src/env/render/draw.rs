//! The drawing Gymnasium's classic-control renderers do through pygame, on a [`Frame`]: filled
//! polygons and circles with SDL_gfx's rules, one-pixel lines, pygame's vector rotation, the
//! vertical flip, and an 8x8 bitmap font for the overlay.
//!
//! pygame's anti-aliased outlines (`gfxdraw.aapolygon`, `aacircle`, `draw.aalines`) have no
//! counterpart here: their blended edge colours would leave each frame's small palette.

use std::f64::consts::{FRAC_PI_2, TAU};

use super::Frame;

/// Scale of the overlay font: the 8x8 glyphs doubled so they stay legible when a README
/// shows the GIF scaled down.
const TEXT_SCALE: i64 = 2;

impl Frame {
    /// A `width` x `height` frame of one colour, which will hold only colours of `palette`.
    pub(super) fn filled(
        width: u32,
        height: u32,
        palette: &'static [[u8; 3]],
        colour: [u8; 3],
    ) -> Self {
        let count = width as usize * height as usize;
        Self {
            width,
            height,
            palette,
            pixels: colour.repeat(count),
        }
    }

    /// Paints one pixel; coordinates outside the frame are clipped silently.
    pub(super) fn put(&mut self, x: i64, y: i64, colour: [u8; 3]) {
        if (0..i64::from(self.width)).contains(&x) && (0..i64::from(self.height)).contains(&y) {
            let at = (y as usize * self.width as usize + x as usize) * 3;
            self.pixels[at..at + 3].copy_from_slice(&colour);
        }
    }

    /// Paints columns `x0..=x1` of row `y` (either order), clipped to the frame.
    pub(super) fn hline(&mut self, x0: i64, x1: i64, y: i64, colour: [u8; 3]) {
        if !(0..i64::from(self.height)).contains(&y) {
            return;
        }
        let first = x0.min(x1).max(0);
        let last = x0.max(x1).min(i64::from(self.width) - 1);
        for x in first..=last {
            self.put(x, y, colour);
        }
    }

    /// Paints rows `y0..=y1` of column `x` (either order), as `gfxdraw.vline` does.
    pub(super) fn vline(&mut self, x: i64, y0: i64, y1: i64, colour: [u8; 3]) {
        let first = y0.min(y1).max(0);
        let last = y0.max(y1).min(i64::from(self.height) - 1);
        for y in first..=last {
            self.put(x, y, colour);
        }
    }

    /// A one-pixel line between integer points, both ends included, as pygame's `draw.line`
    /// draws it (Bresenham's algorithm, stepping from the first point).
    pub(super) fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), colour: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), (y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let mut err = if dx > dy { dx } else { -dy } / 2;
        let (mut x, mut y) = (x0, y0);
        while (x, y) != (x1, y1) {
            self.put(x, y, colour);
            let e2 = err;
            if e2 > -dx {
                err -= dy;
                x += sx;
            }
            if e2 < dy {
                err += dx;
                y += sy;
            }
        }
        self.put(x1, y1, colour);
    }

    /// Mirrors the rows, as `pygame.transform.flip(surf, False, True)` does.
    pub(super) fn flip_vertically(&mut self) {
        let row_len = self.width as usize * 3;
        let rows = self.height as usize;
        for top in 0..rows / 2 {
            let (upper, lower) = self.pixels.split_at_mut((rows - 1 - top) * row_len);
            upper[top * row_len..(top + 1) * row_len].swap_with_slice(&mut lower[..row_len]);
        }
    }

    /// Fills a polygon as SDL_gfx's `filledPolygonColor`, which pygame's
    /// `gfxdraw.filled_polygon` runs, does: vertices truncated to whole pixels, every row from
    /// the lowest vertex to the highest, edges half-open in y (closed at the top row), each
    /// crossing in 16.16 fixed point, and each span from just right of its left crossing to
    /// just left of its right one, rounded to the nearest pixel.
    pub(super) fn fill_polygon(&mut self, vertices: &[(f64, f64)], colour: [u8; 3]) {
        const ONE: i64 = 1 << 16;
        const HALF: i64 = 1 << 15;
        let points: Vec<(i64, i64)> = vertices
            .iter()
            .map(|&(x, y)| (to_pixel(x), to_pixel(y)))
            .collect();
        let Some(min_y) = points.iter().map(|p| p.1).min() else {
            return;
        };
        let max_y = points.iter().map(|p| p.1).max().unwrap_or(min_y);
        let round = |fixed: i64| (fixed >> 16) + ((fixed & HALF) >> 15);
        let mut crossings = Vec::with_capacity(points.len());
        for y in min_y.max(0)..=max_y.min(i64::from(self.height) - 1) {
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
                let inside =
                    (low.1..high.1).contains(&y) || (y == max_y && y > low.1 && y <= high.1);
                if inside {
                    // C's integer division, truncating towards zero as Rust's does.
                    let along = ONE * (y - low.1) / (high.1 - low.1);
                    crossings.push(along * (high.0 - low.0) + ONE * low.0);
                }
            }
            crossings.sort_unstable();
            for span in crossings.chunks_exact(2) {
                self.hline(round(span[0] + 1), round(span[1] - 1), y, colour);
            }
        }
    }

    /// Fills a disc as SDL_gfx's `filledCircleColor`, which pygame's `gfxdraw.filled_circle`
    /// runs, does: a midpoint walk over one octant from the top, filling each row once, when
    /// the walk first reaches it. That leaves the rows at +-`radius` a single pixel and the
    /// disc a little narrower than the set with dx^2 + dy^2 <= r^2 + r.
    pub(super) fn fill_circle(&mut self, (cx, cy): (i64, i64), radius: i64, colour: [u8; 3]) {
        if radius < 0 {
            return;
        }
        let (mut x, mut y) = (0, radius);
        let (mut filled_x, mut filled_y) = (None, None);
        let (mut decision, mut step_east, mut step_south_east) = (1 - radius, 3, 5 - 2 * radius);
        while x <= y {
            // Rows +-y, `x` either side of the centre.
            if filled_y != Some(y) {
                self.hline(cx - x, cx + x, cy + y, colour);
                self.hline(cx - x, cx + x, cy - y, colour);
                filled_y = Some(y);
            }
            // Rows +-x, `y` either side, unless the diagonal already filled them.
            if filled_x != Some(x) {
                if x != y {
                    self.hline(cx - y, cx + y, cy + x, colour);
                    self.hline(cx - y, cx + y, cy - x, colour);
                }
                filled_x = Some(x);
            }
            if decision < 0 {
                decision += step_east;
                step_south_east += 2;
            } else {
                decision += step_south_east;
                step_south_east += 4;
                y -= 1;
            }
            step_east += 2;
            x += 1;
        }
    }

    /// Writes ASCII `text` with the public-domain 8x8 bitmap font from `font8x8`, doubled,
    /// its top-left corner at (`left`, `top`); characters outside ASCII draw as blanks.
    pub(super) fn text(&mut self, text: &str, left: i64, top: i64, colour: [u8; 3]) {
        let advance = 8 * TEXT_SCALE;
        for (index, character) in text.chars().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY
                .get(character as usize)
                .copied()
                .unwrap_or_default();
            let glyph_left = left + index as i64 * advance;
            for (row, bits) in glyph.iter().enumerate() {
                // Bit 0 of each row byte is the leftmost pixel.
                for column in (0..8).filter(|c| bits & (1 << c) != 0) {
                    let x = glyph_left + column * TEXT_SCALE;
                    let y = top + row as i64 * TEXT_SCALE;
                    for (dx, dy) in
                        (0..TEXT_SCALE).flat_map(|dx| (0..TEXT_SCALE).map(move |dy| (dx, dy)))
                    {
                        self.put(x + dx, y + dy, colour);
                    }
                }
            }
        }
    }
}

/// Truncates towards zero like Python's `int()`, bounded so that later integer arithmetic
/// cannot overflow for absurd states; NaN becomes 0.
pub(super) fn to_pixel(coordinate: f64) -> i64 {
    coordinate.clamp(-1e6, 1e6) as i64
}

/// `pygame.math.Vector2(point).rotate_rad(angle)`: counter-clockwise (with y up) by `angle`
/// taken modulo a full turn, and exact within 1e-6 rad of a quarter turn, where pygame swaps
/// and negates the coordinates instead of multiplying by a sine and cosine.
pub(super) fn rotate((x, y): (f64, f64), angle: f64) -> (f64, f64) {
    // pygame's vector epsilon.
    const EPSILON: f64 = 1e-6;
    let mut angle = angle % TAU;
    if angle < 0.0 {
        angle += TAU;
    }
    if (angle + EPSILON) % FRAC_PI_2 < 2.0 * EPSILON {
        return match ((angle + EPSILON) / FRAC_PI_2) as u8 {
            1 => (-y, x),
            2 => (-x, -y),
            3 => (y, -x),
            _ => (x, y),
        };
    }
    let (sin, cos) = angle.sin_cos();
    (cos * x - sin * y, sin * x + cos * y)
}

#[cfg(test)]
mod tests {
    use super::super::{BLACK, WHITE};
    use super::*;

    const PALETTE: &[[u8; 3]] = &[WHITE, BLACK];

    fn inked(frame: &Frame) -> Vec<(u32, u32)> {
        (0..frame.height)
            .flat_map(|y| (0..frame.width).map(move |x| (x, y)))
            .filter(|&(x, y)| frame.pixel(x, y) == Some(BLACK))
            .collect()
    }

    #[test]
    fn lines_join_their_ends_one_pixel_per_step_of_the_long_axis() {
        let mut frame = Frame::filled(20, 10, PALETTE, WHITE);
        frame.line((2, 1), (17, 6), BLACK);
        // pygame.draw.line's pixels for the same ends, row by row.
        let expected: Vec<(u32, u32)> = [(1, 2..4), (2, 4..7), (3, 7..10), (4, 10..13)]
            .into_iter()
            .chain([(5, 13..16), (6, 16..18)])
            .flat_map(|(y, columns)| columns.map(move |x| (x, y)))
            .collect();
        assert_eq!(inked(&frame), expected);
        let mut point = Frame::filled(4, 4, PALETTE, WHITE);
        point.line((1, 2), (1, 2), BLACK);
        assert_eq!(inked(&point), vec![(1, 2)]);
    }

    #[test]
    fn discs_are_pygames() {
        // pygame 2.6's gfxdraw.filled_circle: how far each row reaches either side of the
        // centre, from the top row to the centre row (the lower half mirrors it).
        let pygame: [(i64, &[i64]); 6] = [
            (0, &[0]),
            (1, &[0, 1]),
            (2, &[0, 2, 2]),
            (5, &[0, 3, 4, 5, 5, 5]),
            (8, &[0, 3, 5, 6, 7, 7, 8, 8, 8]),
            (11, &[0, 4, 6, 7, 8, 9, 10, 10, 11, 11, 11, 11]),
        ];
        for (radius, reaches) in pygame {
            let mut frame = Frame::filled(40, 40, PALETTE, WHITE);
            frame.fill_circle((20, 20), radius, BLACK);
            let mut expected: Vec<(u32, u32)> = Vec::new();
            for dy in -radius..=radius {
                let reach = reaches[(radius - dy.abs()) as usize];
                let y = (20 + dy) as u32;
                expected.extend((20 - reach..=20 + reach).map(|x| (x as u32, y)));
            }
            assert_eq!(inked(&frame), expected, "radius {radius}");
        }
    }

    #[test]
    fn rotation_is_pygames() {
        // Exact at quarter turns, whichever way round and however many turns.
        assert_eq!(rotate((3.0, 4.0), FRAC_PI_2), (-4.0, 3.0));
        assert_eq!(rotate((3.0, 4.0), -FRAC_PI_2), (4.0, -3.0));
        assert_eq!(rotate((3.0, 4.0), 5.0 * std::f64::consts::PI), (-3.0, -4.0));
        assert_eq!(rotate((3.0, 4.0), 0.0), (3.0, 4.0));
        // pygame's own result for Vector2(3, 4).rotate_rad(-1): the angle is first taken to
        // 2 pi - 1, whose sine and cosine differ from those of -1 in the last bits.
        assert_eq!(
            rotate((3.0, 4.0), -1.0),
            (4.986790856836005, -0.36320373095113156)
        );
    }

    #[test]
    fn flipping_mirrors_rows() {
        let mut frame = Frame::filled(3, 3, PALETTE, WHITE);
        frame.put(0, 0, BLACK);
        frame.flip_vertically();
        assert_eq!(inked(&frame), vec![(0, 2)]);
    }
}

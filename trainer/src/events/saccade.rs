//! Converted MNIST: an event set made from still MNIST digits the way N-MNIST was recorded
//! (Orchard et al. 2015), for an offline end-to-end benchmark. There, an ATIS sensor on a
//! pan-tilt unit made three 100 ms saccades in a triangle in front of a monitor showing the
//! digit; every pixel whose log intensity changed by the sensor's contrast threshold fired an ON
//! or OFF event, and the recordings were cropped to 34 × 34 pixels.
//!
//! Here the digit (28 × 28, at offset 1 in the 34 × 34 window) moves along the same kind of
//! triangle: down and right, up and right, back left, each saccade 100 ms with a smooth
//! `(1 − cos πτ) / 2` profile (events peak mid-saccade, as in the real recordings). Each sensor
//! pixel samples the moving image bilinearly, in log intensity `ln(ε + I)`, every `step_us`;
//! whenever it has moved `threshold` away from the pixel's reference level an event fires at the
//! linearly interpolated crossing time and the reference moves by one threshold. No noise,
//! no refractory period: the same digit always gives the same events. The files it writes are
//! **converted MNIST, never N-MNIST**: results on them are labelled as such.

use super::Event;

/// How digits become events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SaccadeConfig {
    /// Log-intensity contrast threshold of an event.
    pub threshold: f32,
    /// Duration of one saccade, µs.
    pub saccade_us: u32,
    /// Simulation step, µs.
    pub step_us: u32,
    /// The triangle's vertices after the start `(0, 0)`: displacement `(dx, dy)` in pixels.
    pub vertices: [(f32, f32); 2],
    /// ε of `ln(ε + I)`, intensity `I` in 0..=1: the dark level, so that black is finite.
    pub dark: f32,
}

impl Default for SaccadeConfig {
    /// The threshold is calibrated to the event count of the real N-MNIST sample (4 325
    /// events): on MNIST's first 1 000 training digits 0.27 gives 4 332 on average (0.25: 5 011,
    /// 0.29: 4 147, 0.5: 2 169).
    fn default() -> Self {
        SaccadeConfig {
            threshold: 0.27,
            saccade_us: 100_000,
            step_us: 1_000,
            vertices: [(1.75, 3.5), (3.5, 0.0)],
            dark: 0.1,
        }
    }
}

/// The sensor window (N-MNIST's 34 × 34).
pub const SENSOR: usize = super::NMNIST_SIZE as usize;
/// Where the digit's top-left corner sits in the window at the start.
const OFFSET: f32 = 1.0;

/// The image's displacement at time `t_us` of the three saccades.
fn displacement(c: &SaccadeConfig, t_us: f64) -> (f32, f32) {
    let corners = [(0.0, 0.0), c.vertices[0], c.vertices[1], (0.0, 0.0)];
    let per = f64::from(c.saccade_us);
    let k = ((t_us / per) as usize).min(2);
    let tau = ((t_us - k as f64 * per) / per).clamp(0.0, 1.0);
    let s = ((1.0 - (std::f64::consts::PI * tau).cos()) / 2.0) as f32;
    let (a, b) = (corners[k], corners[k + 1]);
    (a.0 + s * (b.0 - a.0), a.1 + s * (b.1 - a.1))
}

/// The log intensity every sensor pixel sees with the digit displaced by `(dx, dy)`.
fn log_frame(image: &[u8], (h, w): (usize, usize), (dx, dy): (f32, f32), dark: f32) -> Vec<f32> {
    let at = |y: i64, x: i64| -> f32 {
        if (0..h as i64).contains(&y) && (0..w as i64).contains(&x) {
            f32::from(image[y as usize * w + x as usize]) / 255.0
        } else {
            0.0
        }
    };
    let mut out = Vec::with_capacity(SENSOR * SENSOR);
    for sy in 0..SENSOR {
        for sx in 0..SENSOR {
            // The image point this sensor pixel sees.
            let (fx, fy) = (sx as f32 - OFFSET - dx, sy as f32 - OFFSET - dy);
            let (x0, y0) = (fx.floor(), fy.floor());
            let (ax, ay) = (fx - x0, fy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let i = (1.0 - ay) * ((1.0 - ax) * at(y0, x0) + ax * at(y0, x0 + 1))
                + ay * ((1.0 - ax) * at(y0 + 1, x0) + ax * at(y0 + 1, x0 + 1));
            out.push((dark + i).ln());
        }
    }
    out
}

/// The events of one `h × w` grey-scale digit (row-major, 0..=255) over three saccades, in
/// time order (ties by pixel, row-major).
pub fn saccade_events(image: &[u8], shape: (usize, usize), c: &SaccadeConfig) -> Vec<Event> {
    assert_eq!(image.len(), shape.0 * shape.1, "image of the stated shape");
    let end = 3 * u64::from(c.saccade_us);
    let step = u64::from(c.step_us.max(1));
    let mut reference = log_frame(image, shape, (0.0, 0.0), c.dark);
    let mut before = reference.clone();
    let mut events = Vec::new();
    let mut t0 = 0u64;
    while t0 < end {
        let t1 = (t0 + step).min(end);
        let now = log_frame(image, shape, displacement(c, t1 as f64), c.dark);
        let first = events.len();
        for (p, (&l0, &l1)) in before.iter().zip(&now).enumerate() {
            let r = &mut reference[p];
            // Every threshold crossed between the two samples, at its interpolated time.
            while (l1 - *r).abs() >= c.threshold {
                let on = l1 > *r;
                *r += if on { c.threshold } else { -c.threshold };
                let frac = if l1 == l0 {
                    1.0
                } else {
                    ((*r - l0) / (l1 - l0)).clamp(0.0, 1.0)
                };
                events.push(Event {
                    x: (p % SENSOR) as u16,
                    y: (p / SENSOR) as u16,
                    on,
                    t_us: t0 + (frac as f64 * (t1 - t0) as f64).round() as u64,
                });
            }
        }
        events[first..].sort_by_key(|e| e.t_us);
        before = now;
        t0 = t1;
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digit() -> Vec<u8> {
        // A bright bar: edges in both directions.
        (0..28 * 28)
            .map(|i| if (10..18).contains(&(i % 28)) { 255 } else { 0 })
            .collect()
    }

    #[test]
    fn a_blank_image_gives_no_events() {
        let c = SaccadeConfig::default();
        assert!(saccade_events(&[0; 28 * 28], (28, 28), &c).is_empty());
        // A uniform grey square still has edges against the black surround.
        assert!(!saccade_events(&[200; 28 * 28], (28, 28), &c).is_empty());
    }

    #[test]
    fn events_are_in_the_window_in_time_order_and_deterministic() {
        let c = SaccadeConfig::default();
        let e = saccade_events(&digit(), (28, 28), &c);
        assert!(e.len() > 100, "{} events", e.len());
        assert!(e.windows(2).all(|w| w[0].t_us <= w[1].t_us));
        assert!(e
            .iter()
            .all(|e| usize::from(e.x) < SENSOR && usize::from(e.y) < SENSOR));
        assert!(e.last().unwrap().t_us <= 300_000);
        assert!(e.iter().any(|e| e.on) && e.iter().any(|e| !e.on));
        assert_eq!(e, saccade_events(&digit(), (28, 28), &c));
    }

    #[test]
    fn a_vertical_bar_fires_nothing_while_the_image_moves_only_vertically() {
        // The first saccade also moves right: a pure vertical move is checked on a
        // configuration whose first leg is straight down.
        let c = SaccadeConfig {
            vertices: [(0.0, 3.0), (3.0, 0.0)],
            ..SaccadeConfig::default()
        };
        let e = saccade_events(&digit(), (28, 28), &c);
        let first_leg = e.iter().filter(|e| e.t_us < 100_000);
        // Only the bar's ends (rows 0 and 27 of the image) change while it slides down.
        assert!(first_leg
            .clone()
            .all(|e| usize::from(e.y) <= 5 || usize::from(e.y) >= 28));
        assert!(first_leg.count() > 0);
    }

    #[test]
    fn the_triangle_closes_and_peaks_mid_saccade() {
        let c = SaccadeConfig::default();
        assert_eq!(displacement(&c, 0.0), (0.0, 0.0));
        assert_eq!(displacement(&c, 300_000.0), (0.0, 0.0));
        assert_eq!(displacement(&c, 100_000.0), c.vertices[0]);
        assert_eq!(displacement(&c, 200_000.0), c.vertices[1]);
        let (x1, _) = displacement(&c, 45_000.0);
        let (x2, _) = displacement(&c, 55_000.0);
        let (x3, _) = displacement(&c, 90_000.0);
        let (x4, _) = displacement(&c, 100_000.0);
        assert!(x2 - x1 > x4 - x3, "faster mid-saccade");
    }
}

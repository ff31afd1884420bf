//! Event-camera recordings (issue 38): readers that validate what they read and name the file
//! and byte offset of anything wrong, writers for round trips, and framing into per-step input
//! maps. Formats: N-MNIST's binary events (`nmnist.rs`); AEDAT 3.1 polarity packets with the
//! DVS128 Gesture label segments, and jAER's AEDAT 2.0 of CIFAR10-DVS ([`aedat`]).

use std::path::Path;

use crate::data::DataError;

pub mod aedat;
pub mod aedat4;
mod dataset;
mod nmnist;
pub mod saccade;
pub mod sets;

pub use dataset::{load_event_set, load_event_split, FramingConfig};
pub use nmnist::{parse_nmnist, read_nmnist, write_nmnist, NMNIST_SIZE};

/// One event: a pixel whose log intensity rose (`on`) or fell by the sensor's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Column.
    pub x: u16,
    /// Row.
    pub y: u16,
    /// Brightness increase (ON) rather than decrease (OFF).
    pub on: bool,
    /// Microseconds since the start of the recording.
    pub t_us: u64,
}

/// A format error naming the file.
pub(crate) fn format_error(path: &Path, reason: String) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        reason,
    }
}

/// The bytes of a recording, or an error naming it.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    Ok(spikeforge_model::io::read(path)?)
}

/// How a recording is cut into time steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bins {
    /// Equal spans of time between the first and the last event.
    Time,
    /// Equal numbers of events (the last step takes the remainder).
    Count,
}

/// How events become input frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// Sensor width and height.
    pub width: u16,
    /// Sensor height.
    pub height: u16,
    /// Time steps T.
    pub steps: usize,
    /// How the recording is cut into steps.
    pub bins: Bins,
    /// Spatial down-sampling: a frame pixel gathers `factor × factor` sensor pixels.
    pub factor: u16,
    /// The largest count a pixel keeps (1: binary frames).
    pub clip: u8,
}

/// `steps` frames of `(height / factor) × (width / factor) × 2` counts, `[t][y][x][c]`, channel
/// 0 the OFF events and 1 the ON events, each count clipped to `clip`. Deterministic.
pub fn frames(events: &[Event], f: &Framing) -> Vec<u8> {
    let (w, h) = (
        (f.width / f.factor) as usize,
        (f.height / f.factor) as usize,
    );
    let plane = h * w * 2;
    let mut out = vec![0u8; f.steps * plane];
    if events.is_empty() || f.steps == 0 {
        return out;
    }
    let (t0, t1) = (events[0].t_us, events[events.len() - 1].t_us);
    let span = (t1 - t0 + 1) as u128;
    for (i, e) in events.iter().enumerate() {
        let step = match f.bins {
            Bins::Time => ((e.t_us - t0) as u128 * f.steps as u128 / span) as usize,
            Bins::Count => i * f.steps / events.len(),
        };
        let (x, y) = ((e.x / f.factor) as usize, (e.y / f.factor) as usize);
        if x >= w || y >= h {
            continue;
        }
        let cell = &mut out[step * plane + (y * w + x) * 2 + usize::from(e.on)];
        *cell = (*cell + 1).min(f.clip);
    }
    out
}

/// The shape of framed events: `steps` frames of `height × width × channels`, `[t][y][x][c]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameShape {
    /// Time steps.
    pub steps: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Channels (2: OFF and ON).
    pub channels: usize,
}

/// Augmentation that suits events: the same shift of every frame by `(dx, dy)` pixels (what
/// enters is empty: no events), then a horizontal mirror when `flip` (for CIFAR10-DVS, whose
/// classes are mirror-symmetric; not for digits or gestures, whose direction matters).
pub fn shift_and_flip(frames: &[u8], s: FrameShape, dx: i32, dy: i32, flip: bool) -> Vec<u8> {
    let mut out = vec![0u8; frames.len()];
    let (w, h, c) = (s.width as i32, s.height as i32, s.channels);
    for t in 0..s.steps {
        let plane = t * s.height * s.width * c;
        for y in 0..h {
            for x in 0..w {
                let (sx, sy) = (x - dx, y - dy);
                if sx < 0 || sx >= w || sy < 0 || sy >= h {
                    continue;
                }
                let ox = if flip { w - 1 - x } else { x };
                let src = plane + ((sy * w + sx) as usize) * c;
                let dst = plane + ((y * w + ox) as usize) * c;
                out[dst..dst + c].copy_from_slice(&frames[src..src + c]);
            }
        }
    }
    out
}

/// A random [`shift_and_flip`]: shifts uniform in `−max_shift..=max_shift`, a mirror with
/// probability ½ when `flip`. Deterministic for the generator's seed.
pub fn augment(
    frames: &[u8],
    s: FrameShape,
    max_shift: i32,
    flip: bool,
    rng: &mut impl rand::Rng,
) -> Vec<u8> {
    let dx = rng.gen_range(-max_shift..=max_shift);
    let dy = rng.gen_range(-max_shift..=max_shift);
    let mirror = flip && rng.gen_bool(0.5);
    shift_and_flip(frames, s, dx, dy, mirror)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_move_every_frame_alike_and_flips_mirror_columns() {
        let s = FrameShape {
            steps: 2,
            height: 3,
            width: 4,
            channels: 2,
        };
        // One ON event at (y 1, x 0) in step 0, one OFF at (y 2, x 3) in step 1.
        let mut fr = vec![0u8; 2 * 3 * 4 * 2];
        fr[(4) * 2 + 1] = 1;
        fr[24 + (2 * 4 + 3) * 2] = 3;
        let at =
            |v: &[u8], t: usize, y: usize, x: usize, ch: usize| v[t * 24 + (y * 4 + x) * 2 + ch];
        let moved = shift_and_flip(&fr, s, 1, -1, false);
        assert_eq!(at(&moved, 0, 0, 1, 1), 1);
        assert_eq!(
            moved.iter().map(|&v| v as u32).sum::<u32>(),
            1,
            "the step-1 event left the frame"
        );
        let flipped = shift_and_flip(&fr, s, 0, 0, true);
        assert_eq!((at(&flipped, 0, 1, 3, 1), at(&flipped, 1, 2, 0, 0)), (1, 3));
        assert_eq!(
            shift_and_flip(&flipped, s, 0, 0, true),
            fr,
            "a mirror twice is the identity"
        );
        use rand::SeedableRng;
        let a = augment(
            &fr,
            s,
            2,
            true,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(4),
        );
        let b = augment(
            &fr,
            s,
            2,
            true,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(4),
        );
        assert_eq!(a, b, "deterministic for a seed");
    }

    #[test]
    fn frames_bin_by_time_or_count_split_polarity_clip_and_downsample() {
        let ev = |x, y, on, t_us| Event { x, y, on, t_us };
        // Three events early, one late: by time the late one is alone in step 1.
        let events = [
            ev(0, 0, true, 0),
            ev(0, 0, true, 1),
            ev(3, 3, false, 2),
            ev(2, 1, true, 99),
        ];
        let f = Framing {
            width: 4,
            height: 4,
            steps: 2,
            bins: Bins::Time,
            factor: 2,
            clip: 255,
        };
        let fr = frames(&events, &f);
        // 2 × 2 × 2 per step; pixel (0,0) ON = 2, pixel (1,1) OFF = 1 in step 0.
        assert_eq!(&fr[..8], &[0, 2, 0, 0, 0, 0, 1, 0]);
        assert_eq!(&fr[8..], &[0, 0, 0, 1, 0, 0, 0, 0]);
        // By count, two events per step; binary frames clip the double ON.
        let f = Framing {
            bins: Bins::Count,
            clip: 1,
            ..f
        };
        let fr = frames(&events, &f);
        assert_eq!(&fr[..8], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&fr[8..], &[0, 0, 0, 1, 0, 0, 1, 0]);
    }
}

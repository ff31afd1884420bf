//! Event-camera recordings (issue 38): readers that validate what they read and name the file
//! and byte offset of anything wrong, writers for round trips, and framing into per-step input
//! maps. Formats: N-MNIST's binary events (`nmnist.rs`); AEDAT 3.1 polarity packets with the
//! DVS128 Gesture label segments, and jAER's AEDAT 2.0 of CIFAR10-DVS ([`aedat`]).

use std::path::{Path, PathBuf};

use crate::data::DataError;

pub mod aedat;
mod nmnist;

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
    std::fs::read(path).map_err(|error| DataError::Io {
        path: PathBuf::from(path),
        error,
    })
}

/// How a recording is cut into time steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[cfg(test)]
mod tests {
    use super::*;

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

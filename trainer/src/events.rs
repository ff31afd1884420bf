//! Event-camera recordings (issue 38): readers that validate what they read and name the file
//! and byte offset of anything wrong. So far the N-MNIST binary format (Orchard et al. 2015):
//! 5 bytes per event, `x`, `y`, then polarity in bit 7 of byte 2 and a 23-bit timestamp in µs
//! (bits 22–16 in byte 2, 15–8 in byte 3, 7–0 in byte 4); an event with `y = 240` is no event
//! but a timestamp overflow marker that adds 2^13 µs to every later timestamp (the dataset's
//! own MATLAB reader, `Read_Ndataset.m`).

use std::path::{Path, PathBuf};

use crate::data::DataError;

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

/// The N-MNIST sensor window: 34 × 34 pixels (the ATIS recording cropped around the digit).
pub const NMNIST_SIZE: u16 = 34;
/// Bytes per N-MNIST event.
const NMNIST_EVENT_BYTES: usize = 5;
/// `y` of a timestamp overflow marker.
const NMNIST_OVERFLOW_Y: u8 = 240;
/// What an overflow marker adds to the later timestamps.
const NMNIST_OVERFLOW_US: u64 = 1 << 13;

fn format_error(path: &Path, reason: String) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        reason,
    }
}

/// Reads an N-MNIST recording: every event in range (`x`, `y` < 34), timestamps in order.
pub fn read_nmnist(path: &Path) -> Result<Vec<Event>, DataError> {
    let bytes = std::fs::read(path).map_err(|error| DataError::Io {
        path: PathBuf::from(path),
        error,
    })?;
    parse_nmnist(path, &bytes)
}

/// Parses the bytes of an N-MNIST recording (`path` only names it in errors).
pub fn parse_nmnist(path: &Path, bytes: &[u8]) -> Result<Vec<Event>, DataError> {
    if !bytes.len().is_multiple_of(NMNIST_EVENT_BYTES) {
        let whole = bytes.len() - bytes.len() % NMNIST_EVENT_BYTES;
        return Err(format_error(
            path,
            format!(
                "{} bytes is not a whole number of 5-byte events: the last event, at byte offset {whole}, is cut short (a truncated file?)",
                bytes.len()
            ),
        ));
    }
    let mut events = Vec::with_capacity(bytes.len() / NMNIST_EVENT_BYTES);
    let mut offset_us = 0u64;
    let mut last_t = 0u64;
    for (i, e) in bytes.chunks_exact(NMNIST_EVENT_BYTES).enumerate() {
        let at = i * NMNIST_EVENT_BYTES;
        if e[1] == NMNIST_OVERFLOW_Y {
            offset_us += NMNIST_OVERFLOW_US;
            continue;
        }
        let (x, y) = (e[0] as u16, e[1] as u16);
        if x >= NMNIST_SIZE || y >= NMNIST_SIZE {
            return Err(format_error(
                path,
                format!(
                    "event {i} at byte offset {at}: pixel ({x}, {y}) is outside the 34 × 34 N-MNIST window"
                ),
            ));
        }
        let t = (((e[2] & 0x7f) as u64) << 16) | ((e[3] as u64) << 8) | e[4] as u64;
        let t_us = t + offset_us;
        if t_us < last_t {
            return Err(format_error(
                path,
                format!(
                    "event {i} at byte offset {at}: timestamp {t_us} µs is before the previous event's {last_t} µs"
                ),
            ));
        }
        last_t = t_us;
        events.push(Event {
            x,
            y,
            on: e[2] & 0x80 != 0,
            t_us,
        });
    }
    Ok(events)
}

/// Writes events in the N-MNIST format, with overflow markers where timestamps pass a
/// multiple of 2^13 µs beyond the 23-bit field (events must be in time order).
pub fn write_nmnist(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.len() * NMNIST_EVENT_BYTES);
    let mut offset_us = 0u64;
    for e in events {
        while e.t_us.saturating_sub(offset_us) >= 1 << 23 {
            out.extend_from_slice(&[0, NMNIST_OVERFLOW_Y, 0, 0, 0]);
            offset_us += NMNIST_OVERFLOW_US;
        }
        let t = e.t_us.saturating_sub(offset_us);
        out.extend_from_slice(&[
            e.x as u8,
            e.y as u8,
            (u8::from(e.on) << 7) | ((t >> 16) & 0x7f) as u8,
            (t >> 8) as u8,
            t as u8,
        ]);
    }
    out
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

    fn reason(bytes: &[u8]) -> String {
        match parse_nmnist(Path::new("r.bin"), bytes) {
            Err(DataError::Format { reason, .. }) => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn written_events_read_back_with_overflow_markers() {
        let events = vec![
            Event {
                x: 0,
                y: 0,
                on: true,
                t_us: 5,
            },
            Event {
                x: 33,
                y: 12,
                on: false,
                t_us: (1 << 23) - 1,
            },
            // Past the 23-bit field: overflow markers carry the rest.
            Event {
                x: 7,
                y: 33,
                on: true,
                t_us: (1 << 23) + 40_000,
            },
        ];
        let bytes = write_nmnist(&events);
        assert!(bytes.len() > 15, "markers were written");
        assert_eq!(parse_nmnist(Path::new("w.bin"), &bytes).unwrap(), events);
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

    #[test]
    fn bad_recordings_say_where() {
        let good = write_nmnist(&[Event {
            x: 1,
            y: 2,
            on: true,
            t_us: 100,
        }]);
        assert!(reason(&good[..4]).contains("byte offset 0, is cut short"));
        assert!(reason(&[40, 2, 0, 0, 1]).contains("pixel (40, 2) is outside"));
        let mut late_then_early = write_nmnist(&[Event {
            x: 1,
            y: 2,
            on: true,
            t_us: 100,
        }]);
        late_then_early.extend_from_slice(&[1, 2, 0, 0, 50]);
        let r = reason(&late_then_early);
        assert!(
            r.contains("event 1 at byte offset 5") && r.contains("before"),
            "{r}"
        );
    }
}

//! N-MNIST's binary format (Orchard et al. 2015): 5 bytes per event, `x`, `y`, then polarity
//! in bit 7 of byte 2 and a 23-bit timestamp in µs (bits 22–16 in byte 2, 15–8 in byte 3, 7–0
//! in byte 4); an event with `y = 240` is no event but a timestamp overflow marker that adds
//! 2^13 µs to every later timestamp (the dataset's own MATLAB reader, `Read_Ndataset.m`).

use std::path::Path;

use super::{format_error, read_file, Event};
use crate::data::DataError;

/// The N-MNIST sensor window: 34 × 34 pixels (the ATIS recording cropped around the digit).
pub const NMNIST_SIZE: u16 = 34;
/// Bytes per N-MNIST event.
const NMNIST_EVENT_BYTES: usize = 5;
/// `y` of a timestamp overflow marker.
const NMNIST_OVERFLOW_Y: u8 = 240;
/// What an overflow marker adds to the later timestamps.
const NMNIST_OVERFLOW_US: u64 = 1 << 13;

/// Reads an N-MNIST recording: every event in range (`x`, `y` < 34), timestamps in order.
pub fn read_nmnist(path: &Path) -> Result<Vec<Event>, DataError> {
    parse_nmnist(path, &read_file(path)?)
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

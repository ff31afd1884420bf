//! AEDAT 4 (iniVation DV) recordings, read with the `aedat` crate: an XML IO header naming
//! the streams, then LZ4- or Zstd-compressed FlatBuffers packets. Only the polarity events of
//! the first event stream are kept; frames, IMU samples and triggers are skipped. Checked as
//! every other reader checks: coordinates on the sensor, timestamps in order.

use std::path::Path;

use aedat::base::{Decoder, StreamContent};
use aedat::events_generated::size_prefixed_root_as_event_packet;

use super::{format_error, Event};
use crate::data::DataError;

/// What an AEDAT 4 recording holds: its events (microseconds from the first event) and its
/// sensor's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aedat4 {
    /// Polarity events in time order.
    pub events: Vec<Event>,
    /// The event stream's width and height.
    pub sensor: (u16, u16),
}

/// Reads the polarity events of an AEDAT 4 recording.
pub fn read_aedat4(path: &Path) -> Result<Aedat4, DataError> {
    let bad = |why: String| format_error(path, why);
    let decoder =
        Decoder::new_from_file(path).map_err(|e| bad(format!("not AEDAT 4: {}", describe(&e))))?;
    let Some((&stream, sensor)) = decoder
        .id_to_stream
        .iter()
        .filter(|(_, s)| matches!(s.content, StreamContent::Events))
        .min_by_key(|(id, _)| **id)
        .map(|(id, s)| (id, (s.width, s.height)))
    else {
        return Err(bad("no event stream in its IO header".into()));
    };
    let mut events: Vec<Event> = Vec::new();
    let mut first_t: Option<i64> = None;
    for (k, packet) in decoder.enumerate() {
        let packet = packet.map_err(|e| bad(format!("packet {k}: {}", describe(&e))))?;
        if packet.stream_id != stream {
            continue;
        }
        let parsed = size_prefixed_root_as_event_packet(&packet.buffer)
            .map_err(|e| bad(format!("packet {k}: not an event packet: {e}")))?;
        for (i, e) in parsed.elements().unwrap_or_default().iter().enumerate() {
            let at = || format!("packet {k}, event {i}");
            let (x, y) = (e.x(), e.y());
            if x < 0 || y < 0 || x as u16 >= sensor.0 || y as u16 >= sensor.1 {
                return Err(bad(format!(
                    "{}: pixel ({x}, {y}) is outside the {}×{} sensor",
                    at(),
                    sensor.0,
                    sensor.1
                )));
            }
            let t0 = *first_t.get_or_insert(e.t());
            let t = e.t() - t0;
            if t < 0 || events.last().is_some_and(|p| (t as u64) < p.t_us) {
                return Err(bad(format!("{}: time goes back (t = {} µs)", at(), e.t())));
            }
            events.push(Event {
                x: x as u16,
                y: y as u16,
                on: e.on(),
                t_us: t as u64,
            });
        }
    }
    Ok(Aedat4 { events, sensor })
}

/// The crate's error with its cause (its own text says only "IO error" for a short read).
fn describe(e: &aedat::base::ParseError) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample recording the `aedat` crate ships (a DAVIS346), where cargo unpacked it.
    fn crate_sample() -> std::path::PathBuf {
        let home = std::env::var_os("CARGO_HOME")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo")
            });
        let src = home.join("registry").join("src");
        std::fs::read_dir(&src)
            .unwrap()
            .map(|d| {
                d.unwrap()
                    .path()
                    .join("aedat-1.3.3")
                    .join("test_data.aedat4")
            })
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("aedat-1.3.3/test_data.aedat4 under {}", src.display()))
    }

    #[test]
    fn the_aedat_crates_sample_reads_as_a_davis346_recording() {
        let r = read_aedat4(&crate_sample()).unwrap();
        assert_eq!(r.sensor, (346, 260));
        let on = r.events.iter().filter(|e| e.on).count();
        let last = r.events.last().unwrap().t_us;
        println!("{} events, {on} ON, {last} µs", r.events.len());
        // The crate's own test (test.py) counts 1 024 790 bytes of events: 78 830 records of
        // 13 bytes (t i64, x i16, y i16, on u8).
        assert_eq!(r.events.len(), 78_830);
        assert!(on > 0 && on < r.events.len());
        assert!(r.events.iter().all(|e| e.x < 346 && e.y < 260));
        assert!(r.events.windows(2).all(|w| w[0].t_us <= w[1].t_us));
    }

    #[test]
    fn damaged_aedat4_files_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(crate_sample()).unwrap();
        let cut = dir.path().join("cut.aedat4");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let wrong = dir.path().join("wrong.aedat4");
        std::fs::write(&wrong, b"#!AER-DAT3.1\r\nnothing").unwrap();
        for p in [cut, wrong] {
            let err = read_aedat4(&p).unwrap_err().to_string();
            assert!(err.contains(&p.display().to_string()), "{err}");
        }
    }
}

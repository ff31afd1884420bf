//! AEDAT files of the two DVS128 datasets.
//!
//! - **AEDAT 3.1** (DVS128 Gesture, recorded with cAER): ASCII header lines starting with `#`,
//!   the first `#!AER-DAT3.1`, the last `#!END-HEADER`; then packets, each a 28-byte
//!   little-endian header (`eventType` u16, `eventSource` u16, `eventSize` u32,
//!   `eventTSOffset` u32, `eventTSOverflow` u32, `eventCapacity` u32, `eventNumber` u32,
//!   `eventValid` u32) and `eventNumber × eventSize` bytes. Polarity events (type 1, 8 bytes):
//!   a u32 address (`x` in bits 30–17, `y` in 16–2, polarity in bit 1, valid in bit 0) and a
//!   u32 timestamp in µs, extended by `eventTSOverflow · 2^31`. Packets of other types are
//!   skipped; invalid events are dropped. A recording's `*_labels.csv` (`class,
//!   startTime_usec, endTime_usec`) cuts it into labelled samples.
//! - **AEDAT 2.0** (CIFAR10-DVS, recorded with jAER): `#` header lines (`#!AER-DAT2.0` first),
//!   then big-endian 8-byte events: a u32 address (DVS128: `x` in bits 7–1, `y` in bits 14–8,
//!   polarity in bit 0, 1 = OFF as jAER writes it) and a u32 timestamp in µs. Readers
//!   disagree about the axes: spikingjelly's CIFAR10-DVS loader maps this address to
//!   `(127 − y, 127 − x)`; here `x` and `y` are jAER's own fields, unflipped.

use std::path::Path;

use super::{format_error, read_file, Event};
use crate::data::DataError;

/// The DVS128 sensor: 128 × 128 pixels.
pub const DVS128_SIZE: u16 = 128;
const AEDAT3_MAGIC: &str = "#!AER-DAT3.1";
const AEDAT2_MAGIC: &str = "#!AER-DAT2.0";
const END_HEADER: &str = "#!END-HEADER";
const PACKET_HEADER: usize = 28;
const POLARITY_EVENT: u16 = 1;
const POLARITY_EVENT_BYTES: usize = 8;

/// The length of the `#` header: lines from the start that begin with `#`, up to and including
/// `end` when given, else up to the first line that does not start with `#`.
fn header_len(
    path: &Path,
    bytes: &[u8],
    magic: &str,
    end: Option<&str>,
) -> Result<usize, DataError> {
    if !bytes.starts_with(magic.as_bytes()) {
        let found: String = String::from_utf8_lossy(&bytes[..bytes.len().min(16)])
            .chars()
            .map(|c| if c.is_control() { '.' } else { c })
            .collect();
        return Err(format_error(
            path,
            format!(
                "not an {} file: it starts with {found:?}, not {magic:?}",
                &magic[2..]
            ),
        ));
    }
    let mut at = 0;
    while at < bytes.len() && bytes[at] == b'#' {
        let line_end = bytes[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |p| at + p + 1);
        let line = String::from_utf8_lossy(&bytes[at..line_end]);
        at = line_end;
        if end.is_some_and(|e| line.trim_end() == e) {
            return Ok(at);
        }
    }
    match end {
        Some(e) => Err(format_error(
            path,
            format!("the header has no {e:?} line before byte offset {at}"),
        )),
        None => Ok(at),
    }
}

/// Checks that the event at `offset` is not earlier than the last one, and moves `last` on.
fn in_order(path: &Path, offset: usize, t_us: u64, last: &mut u64) -> Result<(), DataError> {
    if t_us < *last {
        return Err(format_error(
            path,
            format!(
                "the event at byte offset {offset}: timestamp {t_us} µs is before the previous event's {last} µs"
            ),
        ));
    }
    *last = t_us;
    Ok(())
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Reads an AEDAT 3.1 recording's polarity events (DVS128: `x`, `y` < 128, timestamps in
/// order).
pub fn read_aedat3(path: &Path) -> Result<Vec<Event>, DataError> {
    parse_aedat3(path, &read_file(path)?)
}

/// Parses the bytes of an AEDAT 3.1 recording (`path` only names it in errors).
pub fn parse_aedat3(path: &Path, bytes: &[u8]) -> Result<Vec<Event>, DataError> {
    let mut at = header_len(path, bytes, AEDAT3_MAGIC, Some(END_HEADER))?;
    let mut events = Vec::new();
    let mut last_t = 0u64;
    while at < bytes.len() {
        if bytes.len() - at < PACKET_HEADER {
            return Err(format_error(
                path,
                format!("the packet header at byte offset {at} is cut short (a truncated file?)"),
            ));
        }
        let h = &bytes[at..at + PACKET_HEADER];
        let kind = u16::from_le_bytes([h[0], h[1]]);
        let size = u32_le(&h[4..]) as usize;
        let overflow = u32_le(&h[12..]) as u64;
        let number = u32_le(&h[20..]) as usize;
        let body = at + PACKET_HEADER;
        let len = number
            .checked_mul(size)
            .filter(|&n| n <= bytes.len() - body);
        let Some(len) = len else {
            return Err(format_error(
                path,
                format!(
                    "the packet at byte offset {at} announces {number} events of {size} bytes, more than the {} bytes left (a truncated file?)",
                    bytes.len() - body
                ),
            ));
        };
        if kind == POLARITY_EVENT {
            if size != POLARITY_EVENT_BYTES {
                return Err(format_error(
                    path,
                    format!(
                        "the polarity packet at byte offset {at} has {size}-byte events, not 8"
                    ),
                ));
            }
            for (i, e) in bytes[body..body + len].chunks_exact(size).enumerate() {
                let (addr, ts) = (u32_le(e), u32_le(&e[4..]));
                if addr & 1 == 0 {
                    continue;
                }
                let (x, y) = (
                    ((addr >> 17) & 0x7fff) as u16,
                    ((addr >> 2) & 0x7fff) as u16,
                );
                let offset = body + i * size;
                if x >= DVS128_SIZE || y >= DVS128_SIZE {
                    return Err(format_error(
                        path,
                        format!("the event at byte offset {offset}: pixel ({x}, {y}) is outside the 128 × 128 DVS128 array"),
                    ));
                }
                let t_us = (overflow << 31) | (ts as u64 & 0x7fff_ffff);
                in_order(path, offset, t_us, &mut last_t)?;
                events.push(Event {
                    x,
                    y,
                    on: addr & 2 != 0,
                    t_us,
                });
            }
        }
        at = body + len;
    }
    Ok(events)
}

/// Writes events as an AEDAT 3.1 file: a header and polarity packets of at most `per_packet`
/// events, a new packet wherever the timestamps pass a multiple of 2^31 µs (the packet's
/// overflow counter carries the high bits).
pub fn write_aedat3(events: &[Event], per_packet: usize) -> Vec<u8> {
    let mut out =
        format!("{AEDAT3_MAGIC}\r\n#Format: RAW\r\n#Source 1: DVS128\r\n{END_HEADER}\r\n")
            .into_bytes();
    let packets = events
        .chunk_by(|a, b| a.t_us >> 31 == b.t_us >> 31)
        .flat_map(|run| run.chunks(per_packet.max(1)));
    for chunk in packets {
        let overflow = (chunk[0].t_us >> 31) as u32;
        let n = chunk.len() as u32;
        for v in [
            POLARITY_EVENT as u32 | (1 << 16), // type 1, source 1
            POLARITY_EVENT_BYTES as u32,
            4,
            overflow,
            n,
            n,
            n,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for e in chunk {
            let addr = ((e.x as u32) << 17) | ((e.y as u32) << 2) | (u32::from(e.on) << 1) | 1;
            out.extend_from_slice(&addr.to_le_bytes());
            out.extend_from_slice(&((e.t_us & 0x7fff_ffff) as u32).to_le_bytes());
        }
    }
    out
}

/// One labelled sample of a recording: `class` from `start_us` (inclusive) to `end_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Class, 1-based as the file writes it.
    pub class: u32,
    /// First microsecond.
    pub start_us: u64,
    /// One past the last microsecond.
    pub end_us: u64,
}

/// Reads a DVS128 Gesture `*_labels.csv` and checks it against its recording's events: a
/// header `class,startTime_usec,endTime_usec`, classes 1..=`classes`, each segment non-empty,
/// in order, not overlapping, and within the recording's time span.
pub fn read_labels(path: &Path, events: &[Event], classes: u32) -> Result<Vec<Segment>, DataError> {
    let text = String::from_utf8(read_file(path)?)
        .map_err(|_| format_error(path, "not UTF-8 text".into()))?;
    parse_labels(path, &text, events, classes)
}

/// Parses label segments (`path` only names the file in errors).
pub fn parse_labels(
    path: &Path,
    text: &str,
    events: &[Event],
    classes: u32,
) -> Result<Vec<Segment>, DataError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    match lines.next() {
        Some((_, h)) if h.trim() == "class,startTime_usec,endTime_usec" => {}
        other => {
            return Err(format_error(
                path,
                format!(
                    "line 1: expected the header \"class,startTime_usec,endTime_usec\", found {:?}",
                    other.map_or("", |(_, l)| l)
                ),
            ))
        }
    }
    let span = match (events.first(), events.last()) {
        (Some(a), Some(b)) => (a.t_us, b.t_us + 1),
        _ => (0, 0),
    };
    let mut out: Vec<Segment> = Vec::new();
    for (k, line) in lines {
        let bad = |why: String| format_error(path, format!("line {}: {why}", k + 1));
        let f: Vec<&str> = line.trim().split(',').collect();
        let nums: Option<Vec<u64>> = f.iter().map(|x| x.trim().parse().ok()).collect();
        let Some([class, start, end]) = nums.as_deref().and_then(|n| <[u64; 3]>::try_from(n).ok())
        else {
            return Err(bad(format!(
                "expected three unsigned integers, found {line:?}"
            )));
        };
        if class == 0 || class > classes as u64 {
            return Err(bad(format!("class {class} is not in 1..={classes}")));
        }
        if start >= end {
            return Err(bad(format!("the segment {start}..{end} µs is empty")));
        }
        if let Some(prev) = out.last() {
            if start < prev.end_us {
                return Err(bad(format!(
                    "the segment starts at {start} µs, before the previous one ends ({} µs)",
                    prev.end_us
                )));
            }
        }
        if start < span.0 || end > span.1 {
            return Err(bad(format!(
                "the segment {start}..{end} µs lies outside the recording's events ({}..{} µs): labels of another recording?",
                span.0, span.1
            )));
        }
        out.push(Segment {
            class: class as u32,
            start_us: start,
            end_us: end,
        });
    }
    Ok(out)
}

/// The events of one segment (events in time order).
pub fn cut<'a>(events: &'a [Event], s: &Segment) -> &'a [Event] {
    let a = events.partition_point(|e| e.t_us < s.start_us);
    let b = events.partition_point(|e| e.t_us < s.end_us);
    &events[a..b]
}

/// Reads a jAER AEDAT 2.0 recording of a DVS128 (CIFAR10-DVS).
pub fn read_aedat2(path: &Path) -> Result<Vec<Event>, DataError> {
    parse_aedat2(path, &read_file(path)?)
}

/// Parses the bytes of an AEDAT 2.0 recording (`path` only names it in errors).
pub fn parse_aedat2(path: &Path, bytes: &[u8]) -> Result<Vec<Event>, DataError> {
    let start = header_len(path, bytes, AEDAT2_MAGIC, None)?;
    let body = &bytes[start..];
    if !body.len().is_multiple_of(8) {
        return Err(format_error(
            path,
            format!(
                "{} bytes of events is not a whole number of 8-byte events: the last, at byte offset {}, is cut short (a truncated file?)",
                body.len(),
                start + body.len() / 8 * 8
            ),
        ));
    }
    let mut events = Vec::with_capacity(body.len() / 8);
    let mut last_t = 0u64;
    for (i, e) in body.chunks_exact(8).enumerate() {
        let addr = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let t_us = u32::from_be_bytes([e[4], e[5], e[6], e[7]]) as u64;
        let offset = start + 8 * i;
        if addr >> 15 != 0 {
            return Err(format_error(
                path,
                format!("the event at byte offset {offset}: address {addr:#x} has bits above the DVS128's 15"),
            ));
        }
        in_order(path, offset, t_us, &mut last_t)?;
        events.push(Event {
            x: ((addr >> 1) & 0x7f) as u16,
            y: ((addr >> 8) & 0x7f) as u16,
            on: addr & 1 == 0,
            t_us,
        });
    }
    Ok(events)
}

/// Writes events as a jAER AEDAT 2.0 file (DVS128 addresses; timestamps below 2^32).
pub fn write_aedat2(events: &[Event]) -> Vec<u8> {
    let mut out =
        format!("{AEDAT2_MAGIC}\r\n# This is a raw AE data file created by spikeforge\r\n")
            .into_bytes();
    for e in events {
        let addr = ((e.y as u32) << 8) | ((e.x as u32) << 1) | u32::from(!e.on);
        out.extend_from_slice(&addr.to_be_bytes());
        out.extend_from_slice(&(e.t_us as u32).to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Event> {
        (0..300u64)
            .map(|i| Event {
                x: (i * 7 % 128) as u16,
                y: (i * 13 % 128) as u16,
                on: i % 3 == 0,
                t_us: 1_000 + i * 37,
            })
            .collect()
    }

    fn reason(r: Result<Vec<Event>, DataError>) -> String {
        match r {
            Err(DataError::Format { reason, .. }) => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn aedat3_round_trips_across_packets_and_the_31_bit_overflow() {
        let mut events = sample();
        events.push(Event {
            x: 127,
            y: 0,
            on: true,
            t_us: (1 << 31) + 5,
        });
        let bytes = write_aedat3(&events, 64);
        assert_eq!(parse_aedat3(Path::new("g.aedat"), &bytes).unwrap(), events);
    }

    #[test]
    fn aedat2_round_trips() {
        let events = sample();
        let bytes = write_aedat2(&events);
        assert_eq!(parse_aedat2(Path::new("c.aedat"), &bytes).unwrap(), events);
    }

    #[test]
    fn bad_aedat_files_say_what_and_where() {
        let p = Path::new("x.aedat");
        let good3 = write_aedat3(&sample(), 100);
        let r = reason(parse_aedat3(p, &good3[..good3.len() - 3]));
        assert!(
            r.contains("more than the") && r.contains("byte offset"),
            "{r}"
        );
        let r = reason(parse_aedat3(p, b"#!AER-DAT2.0\r\n"));
        assert!(r.contains("not an AER-DAT3.1 file"), "{r}");
        let r = reason(parse_aedat3(p, b"#!AER-DAT3.1\r\n#no end\r\n"));
        assert!(r.contains("no \"#!END-HEADER\" line"), "{r}");
        let mut far = sample();
        far[5].x = 200;
        let r = reason(parse_aedat3(p, &write_aedat3(&far, 100)));
        assert!(
            r.contains("pixel (200, 65) is outside the 128 × 128"),
            "{r}"
        );
        let good2 = write_aedat2(&sample());
        let r = reason(parse_aedat2(p, &good2[..good2.len() - 1]));
        assert!(r.contains("is cut short"), "{r}");
        let mut back = sample();
        back[10].t_us = 1;
        let r = reason(parse_aedat2(p, &write_aedat2(&back)));
        assert!(r.contains("timestamp 1 µs is before"), "{r}");
    }

    #[test]
    fn label_segments_cut_a_recording_and_must_match_it() {
        let events = sample(); // 1 000 ..= 12 063 µs
        let p = Path::new("user01_labels.csv");
        let csv = "class,startTime_usec,endTime_usec\n3,1000,5000\n11,6000,12064\n";
        let s = parse_labels(p, csv, &events, 11).unwrap();
        assert_eq!(s.len(), 2);
        let first = cut(&events, &s[0]);
        assert!(first.iter().all(|e| (1000..5000).contains(&e.t_us)));
        assert_eq!(first.len(), 109);
        let err = |text: &str| match parse_labels(p, text, &events, 11) {
            Err(DataError::Format { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(err("start,end\n").contains("line 1: expected the header"));
        let h = "class,startTime_usec,endTime_usec\n";
        assert!(err(&format!("{h}12,1000,2000\n")).contains("line 2: class 12 is not in 1..=11"));
        assert!(err(&format!("{h}1,3000,2000\n")).contains("is empty"));
        assert!(
            err(&format!("{h}1,1000,4000\n2,3000,5000\n")).contains("line 3: the segment starts")
        );
        assert!(err(&format!("{h}1,90000000,90005000\n")).contains("labels of another recording?"));
        assert!(err(&format!("{h}1,a,2\n")).contains("three unsigned integers"));
    }
}

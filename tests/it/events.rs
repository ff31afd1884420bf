//! Event-camera readers on the real N-MNIST recording in `../shared/data/neuromorphic/` (its
//! facts are in `../shared/data/README.md`).

use spikeforge_trainer::events::{read_nmnist, write_nmnist, NMNIST_SIZE};
use std::path::Path;

const SAMPLE: &str = "../shared/data/neuromorphic/sample_nmnist.bin";

#[test]
fn the_real_nmnist_recording_reads_as_documented_and_round_trips() {
    let events = read_nmnist(Path::new(SAMPLE)).unwrap();
    assert_eq!(events.len(), 4325);
    assert_eq!(events.iter().filter(|e| e.on).count(), 2145);
    assert!(events
        .iter()
        .all(|e| e.x < NMNIST_SIZE && e.y < NMNIST_SIZE));
    let (first, last) = (events.first().unwrap().t_us, events.last().unwrap().t_us);
    assert_eq!((first, last), (654, 311_175));
    // Written back, the bytes are the file's (it has no overflow markers).
    assert_eq!(write_nmnist(&events), std::fs::read(SAMPLE).unwrap());
}

#[test]
fn a_truncated_recording_names_the_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.bin");
    let bytes = std::fs::read(SAMPLE).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 2]).unwrap();
    let e = read_nmnist(&cut).unwrap_err().to_string();
    assert!(
        e.contains("cut.bin") && e.contains("byte offset 21620"),
        "{e}"
    );
}

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

/// `spikeforge events` on written files of each format: what they hold, and for every kind of
/// damage a clear error naming the file and a non-zero exit.
#[test]
fn the_events_command_reads_each_format_and_refuses_damaged_files() {
    use spikeforge_trainer::events::{aedat, Event};
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<Event> = (0..200u64)
        .map(|i| Event {
            x: (i * 5 % 128) as u16,
            y: (i * 11 % 128) as u16,
            on: i % 2 == 0,
            t_us: 500 + i * 10,
        })
        .collect();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let g = write("user01_led.aedat", &aedat::write_aedat3(&events, 50));
    let c = write("airplane_0.aedat", &aedat::write_aedat2(&events));
    let labels = write(
        "user01_led_labels.csv",
        b"class,startTime_usec,endTime_usec\n1,500,1000\n4,1200,2490\n",
    );
    let (ok, out, err) = crate::util::run(&["events", &g, "--labels", &labels]);
    assert!(ok, "{err}");
    assert!(
        out.contains("Aedat3, 200 events, 100 ON, x 0..=127, y 0..=127, t 500..=2490 µs"),
        "{out}"
    );
    assert!(
        out.contains("2 segments") && out.contains("class  4  1200..2490 µs  129 events"),
        "{out}"
    );
    let (ok, out, err) = crate::util::run(&["events", &c]);
    assert!(ok && out.contains("Aedat2, 200 events"), "{out}{err}");

    let bad3 = aedat::write_aedat3(&events, 50);
    let cut = write("cut.aedat", &bad3[..bad3.len() - 5]);
    let mut far = events.clone();
    far[3].y = 300;
    let far = write("far.aedat", &aedat::write_aedat3(&far, 50));
    let nm = write("far.bin", &[40, 1, 0, 0, 9]);
    let wrong = write(
        "other_labels.csv",
        b"class,startTime_usec,endTime_usec\n1,90000,95000\n",
    );
    for (args, want) in [
        (vec![cut.clone()], "cut.aedat: the packet at byte offset"),
        (
            vec![c.clone(), "--format".into(), "aedat3".into()],
            "not an AER-DAT3.1 file",
        ),
        (vec![far.clone()], "far.aedat: the event at byte offset"),
        (
            vec![nm.clone()],
            "far.bin: event 0 at byte offset 0: pixel (40, 1) is outside",
        ),
        (
            vec![g.clone(), "--labels".into(), wrong.clone()],
            "other_labels.csv: line 2: the segment 90000..95000 µs lies outside",
        ),
    ] {
        let mut a = vec!["events".to_string()];
        a.extend(args);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (ok, _, err) = crate::util::run(&a);
        assert!(!ok, "{a:?} succeeded");
        assert!(err.contains(want), "{a:?}: {err}");
    }
}

/// `spikeforge mnist-events` on the first digits of MNIST: N-MNIST's layout, files every reader
/// takes, a card that says what the set is, and about N-MNIST's event count per sample.
#[test]
fn converted_mnist_is_written_in_nmnist_layout_and_labelled_as_converted() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cm");
    let run = crate::util::bin()
        .args([
            "mnist-events",
            "--limit",
            "20",
            "--data",
            "../shared/data/mnist",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("converted MNIST (not N-MNIST)"), "{stdout}");
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("converted-mnist.json")).unwrap())
            .unwrap();
    assert!(card["what"].as_str().unwrap().contains("not N-MNIST"));
    for (split, s) in ["Train", "Test"]
        .iter()
        .zip(card["splits"].as_array().unwrap())
    {
        let files: Vec<_> = (0..10)
            .flat_map(|d| std::fs::read_dir(out.join(split).join(d.to_string())).unwrap())
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 20, "{split}");
        let mut total = 0;
        for f in &files {
            let ev = read_nmnist(f).unwrap();
            assert!(ev.iter().all(|e| e.x < NMNIST_SIZE && e.y < NMNIST_SIZE));
            assert!(ev.last().unwrap().t_us <= 300_000);
            total += ev.len();
        }
        assert_eq!(total as f64 / 20.0, s["events_mean"].as_f64().unwrap());
        // Calibrated to the real sample's 4 325 events; digits vary by about a factor of 3.
        assert!(
            (2_500.0..6_500.0).contains(&(total as f64 / 20.0)),
            "{total}"
        );
    }
    // A missing MNIST is refused before anything is written.
    let missing = crate::util::bin()
        .args(["mnist-events", "--data", "/nonexistent", "--out"])
        .arg(dir.path().join("none"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(!dir.path().join("none").exists());
}

/// `spikeforge data --dataset SET --data DIR` on event sets laid out as their releases unpack:
/// ready with their counts, and not usable (exit non-zero, the damaged file named) when a part
/// is missing or a recording does not read.
#[test]
fn the_data_command_checks_the_layout_of_event_sets() {
    use spikeforge_trainer::events::{aedat, write_nmnist, Event};
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<Event> = (0..60u64)
        .map(|i| Event {
            x: (i * 5 % 34) as u16,
            y: (i * 11 % 34) as u16,
            on: i % 2 == 0,
            t_us: 500 + i * 10,
        })
        .collect();
    let put = |rel: &str, bytes: &[u8]| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    for split in ["Train", "Test"] {
        for d in 0..10 {
            put(
                &format!("nm/{split}/{d}/{d:05}.bin"),
                &write_nmnist(&events),
            );
        }
    }
    put("gest/user01_led.aedat", &aedat::write_aedat3(&events, 20));
    put(
        "gest/user01_led_labels.csv",
        b"class,startTime_usec,endTime_usec\n1,500,800\n",
    );
    for class in spikeforge_trainer::events::sets::CIFAR10_DVS_CLASSES {
        put(
            &format!("c10/{class}/cifar10_{class}_0.aedat"),
            &aedat::write_aedat2(&events),
        );
    }
    let path = |rel: &str| dir.path().join(rel).to_str().unwrap().to_string();
    for (set, rel, want) in [
        ("nmnist", "nm", "10 recordings in 10 class folders"),
        ("dvs-gesture", "gest", "1 labelled recordings"),
        ("cifar10-dvs", "c10", "10 recordings in 10 class folders"),
    ] {
        let (ok, out, err) = crate::util::run(&["data", "--dataset", set, "--data", &path(rel)]);
        assert!(ok, "{set}: {out}{err}");
        assert!(
            out.contains(": ready") && out.contains(want),
            "{set}: {out}"
        );
    }
    // Damage: a truncated recording, a recording without its labels, a missing class folder.
    put("nm/Test/0/00000.bin", &write_nmnist(&events)[..7]);
    put("gest/user02_led.aedat", &aedat::write_aedat3(&events, 20));
    std::fs::remove_dir_all(dir.path().join("c10/truck")).unwrap();
    for (set, rel, want) in [
        ("nmnist", "nm", "00000.bin"),
        ("dvs-gesture", "gest", "user02_led_labels.csv"),
        ("cifar10-dvs", "c10", "truck"),
    ] {
        let (ok, out, err) = crate::util::run(&["data", "--dataset", set, "--data", &path(rel)]);
        assert!(!ok, "{set}: {out}");
        assert!(
            out.contains("not usable") && out.contains(want),
            "{set}: {out}"
        );
        assert!(err.contains("is not usable"), "{set}: {err}");
    }
}

/// Training on framed events (converted MNIST, T = 2, binary frames): the run frames the set,
/// trains through time and exports the IR's `frames` encoding, whose golden model the summary
/// evaluates on the framed test split with the float network's accuracy; framing options on a
/// set of still images are refused.
#[test]
fn a_run_on_framed_events_exports_the_frames_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("cm");
    let set = set.to_str().unwrap();
    let (ok, _, err) = crate::util::run(&[
        "mnist-events",
        "--limit",
        "120",
        "--data",
        "../shared/data/mnist",
        "--out",
        set,
    ]);
    assert!(ok, "{err}");
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    let (ok, stdout, err) = crate::util::run(&[
        "train",
        "--dataset",
        "converted-mnist",
        "--data",
        set,
        "--time-steps",
        "2",
        "--arch",
        "34x34x2-4C3-MP2-6C3b-MP2-10C1-GAP",
        "--epochs",
        "1",
        "--val",
        "20",
        "--quiet",
        "--out",
        out,
    ]);
    assert!(ok, "{stdout}{err}");
    assert!(
        stdout.contains("100 train / 20 validation images), T = 2"),
        "{stdout}"
    );
    let model = crate::util::read_json(&dir.path().join("run/model.json"));
    assert_eq!(model["version"], 2);
    assert_eq!(model["input"]["encoding"], "frames");
    assert_eq!(model["input"]["pixel_bits"], 1);
    assert_eq!(model["input"]["channels"], 2);
    let summary = crate::util::read_json(&dir.path().join("run/summary.json"));
    assert_eq!(summary["test_images"], 120);
    // No leak (the event sets' default) and a hard reset: the export is exact at T = 2.
    assert_eq!(summary["float_accuracy"], summary["integer_accuracy"]);
    // eval and cosim frame the test recordings as the run did: the same integer accuracy,
    // and the RTL equal to the golden model on them.
    let model_path = dir.path().join("run/model.json");
    let model_path = model_path.to_str().unwrap();
    let data = ["--dataset", "converted-mnist", "--data", set];
    let mut eval = vec!["eval", model_path];
    eval.extend(data);
    let (ok, stdout, err) = crate::util::run(&eval);
    let acc = 100.0 * summary["integer_accuracy"].as_f64().unwrap();
    assert!(
        ok && stdout.contains(&format!("= {acc:.2} %")),
        "{acc} {stdout}{err}"
    );
    let mut cosim = vec!["cosim", model_path, "--limit", "6"];
    cosim.extend(data);
    let (ok, stdout, err) = crate::util::run(&cosim);
    assert!(ok && stdout.contains("6/6 bit-exact"), "{stdout}{err}");
    let (ok, _, err) =
        crate::util::run(&["train", "--dataset", "mnist", "--clip", "3", "--out", out]);
    assert!(
        !ok && err.contains("--clip and --factor frame event sets"),
        "{err}"
    );
}

/// A `frames` model (what training on events exports) goes the whole way through the CLI:
/// `inspect` estimates it, `gen --board` writes its design with the board top, and `cosim`
/// runs random samples through the tapped core and through the board's serial line, equal to
/// the golden model.
#[test]
fn a_frames_model_is_generated_and_co_simulated_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames.json");
    let arch = spikeforge_model::arch::parse("8x8x2-4C3b-MP2-3C1-GAP").unwrap();
    let model = spikeforge_model::random::random_frames_model(&arch, 4, 1, 3).unwrap();
    spikeforge_model::save(&model, &path).unwrap();
    let path = path.to_str().unwrap();
    let (ok, out, err) = crate::util::run(&["inspect", path]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("estimate on") && out.contains("T = 4"),
        "{out}"
    );
    let rtl = dir.path().join("rtl");
    let rtl_s = rtl.to_str().unwrap();
    let (ok, out, err) = crate::util::run(&["gen", path, "--board", "icebreaker", "--out", rtl_s]);
    assert!(ok, "{out}{err}");
    let manifest = std::fs::read_to_string(rtl.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"steps\": 4"), "{manifest}");
    let (ok, out, err) = crate::util::run(&["cosim", path, "--rtl", rtl_s, "--random", "5"]);
    assert!(ok && out.contains("5/5 bit-exact"), "{out}{err}");
    let (ok, out, err) = crate::util::run(&[
        "cosim",
        path,
        "--rtl",
        rtl_s,
        "--random",
        "3",
        "--serial",
        "--board",
        "icebreaker",
    ]);
    assert!(ok && out.contains("3/3 class bytes"), "{out}{err}");
}

//! The trainer end to end on real Fashion-MNIST images: a short run learns, its exported
//! integer model runs bit-exact through the RTL on test images (and re-exports identically with
//! the BatchNorm re-estimation that training did), and a resumed run equals an uninterrupted one.

use std::path::{Path, PathBuf};

use crate::util;

/// A small network that learns within seconds on 1 000 images.
const ARCH: &str = "28x28x1-8C3-MP2-16C3-MP2-10";

fn train(out: &Path, epochs: &str, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec![
        "train",
        "--arch",
        ARCH,
        "--limit",
        "1000",
        "--val",
        "100",
        "--epochs",
        epochs,
        "--lr",
        "5e-3",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    util::run(&args)
}

/// The float and integer test accuracy of a finished run's summary, asserted to agree.
fn float_and_integer(out: &Path) -> (f64, f64) {
    let s = util::read_json(&out.join("summary.json"));
    let (float, int) = (
        s["float_accuracy"].as_f64().unwrap(),
        s["integer_accuracy"].as_f64().unwrap(),
    );
    assert!(
        (float - int).abs() <= 0.005,
        "float {float} vs integer {int}"
    );
    (float, int)
}

/// The exported model's bytes in a run directory.
fn model_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.json")).unwrap()
}

/// Trains `epochs` epochs with `extra` twice: uninterrupted into `dir/whole`, and stopped after
/// `stop` epochs into `dir/parts`, then continued with a plain `--resume` (so the checkpoint must
/// carry `extra`). `at_stop` inspects the interrupted checkpoint. Asserts that both runs export
/// the same model.json; returns both directories and the uninterrupted run's stdout.
fn whole_and_resumed(
    dir: &Path,
    epochs: &str,
    stop: &str,
    extra: &[&str],
    at_stop: impl FnOnce(&serde_json::Value),
) -> (PathBuf, PathBuf, String) {
    let (whole, parts) = (dir.join("whole"), dir.join("parts"));
    let (ok, stdout, err) = train(&whole, epochs, extra);
    assert!(ok, "{err}");
    let (ok, _, err) = train(&parts, epochs, &[extra, &["--stop-after", stop]].concat());
    assert!(ok, "{err}");
    at_stop(&util::read_json(&parts.join("checkpoint.json")));
    let (ok, _, err) = train(&parts, epochs, &["--resume"]);
    assert!(ok, "{err}");
    assert_eq!(
        model_bytes(&whole),
        model_bytes(&parts),
        "model after resume differs"
    );
    (whole, parts, stdout)
}

#[test]
fn a_short_run_learns_and_its_integer_model_is_bit_exact_in_the_rtl() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (ok, stdout, err) = train(&out, "3", &[]);
    assert!(ok, "{err}");
    let (_, int) = float_and_integer(&out);
    // Chance is 10 %; 900 training images for 3 epochs reach far more.
    assert!(
        int > 0.6,
        "integer test accuracy {int} after a short run\n{stdout}"
    );
    let s = util::read_json(&out.join("summary.json"));
    assert_eq!(s["test_images"], 10000);
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 3, "one JSON line per epoch");
    let png = std::fs::read(out.join("training.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    // The exported model on real test images through the generated RTL.
    let model = out.join("model.json");
    let stdout = util::cosim_test_images_bit_exact(&model, 100);
    assert!(stdout.contains("RTL accuracy:"), "{stdout}");
    util::assert_eval_prints(&model, None, int);
    // Training re-estimated BatchNorm on its 900 training images before exporting; `export`
    // doing so again on the same images gives the same model, on fewer images another one.
    let ckpt = out.join("checkpoint.json");
    let export = |n: &str, file: &str| {
        let path = out.join(file);
        let args = [
            "export",
            ckpt.to_str().unwrap(),
            "--bn-recalibrate",
            n,
            "--out",
            path.to_str().unwrap(),
        ];
        let (ok, stdout, err) = util::run(&args);
        assert!(ok, "{err}");
        assert!(
            stdout.contains(&format!("re-estimated on the first {n} training images")),
            "{stdout}"
        );
        std::fs::read(path).unwrap()
    };
    let exported = std::fs::read(&model).unwrap();
    assert!(
        export("900", "same.json") == exported,
        "re-estimation at export differs from training's"
    );
    assert!(
        export("300", "fewer.json") != exported,
        "--bn-recalibrate changed nothing"
    );
}

#[test]
fn a_resumed_run_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    // Interrupted after epoch 1 (the schedule still plans 2), then resumed.
    let (whole, parts, _) = whole_and_resumed(dir.path(), "2", "1", &[], |ck| {
        assert_eq!(ck["epoch"], 1);
    });
    let net = |p: &Path| {
        let v = util::read_json(&p.join("checkpoint.json"));
        (v["net"].clone(), v["optimizer"].clone())
    };
    assert_eq!(
        net(&whole),
        net(&parts),
        "weights or optimiser state differ after resume"
    );
}

#[test]
fn a_resume_logs_each_epoch_once_even_after_a_stop_between_log_line_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (ok, _, err) = train(&out, "2", &["--stop-after", "1"]);
    assert!(ok, "{err}");
    // As if the run died after logging epoch 2 but before saving its checkpoint.
    let log_path = out.join("log.jsonl");
    let first = std::fs::read_to_string(&log_path).unwrap();
    let orphan = first.replacen("\"epoch\":1,", "\"epoch\":2,", 1);
    std::fs::write(&log_path, format!("{first}{orphan}")).unwrap();
    let (ok, _, err) = train(&out, "2", &["--resume"]);
    assert!(ok, "{err}");
    let epochs: Vec<u64> = log_lines(&out)
        .iter()
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 2]);
    let kept = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        kept.starts_with(&first),
        "the resumed log rewrote epoch 1's line"
    );
}

#[test]
fn weight_averaging_ends_the_run_with_the_mean_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let swa = ["--swa-epochs", "2", "--swa-lr", "1e-3"];
    // Interrupted inside the averaging phase: the checkpoint carries the running mean.
    let (whole, parts, stdout) = whole_and_resumed(dir.path(), "3", "2", &swa, |ck| {
        assert_eq!(ck["swa"]["epochs"], serde_json::json!([2]));
    });
    assert!(
        stdout.contains("weight average of epochs 2–3 (2 networks), BatchNorm re-estimated"),
        "{stdout}"
    );
    let ck = util::read_json(&whole.join("checkpoint.json"));
    let lrs: Vec<f64> = (0..3)
        .map(|e| ck["log"][e]["lr"].as_f64().unwrap())
        .collect();
    // Epoch 1 anneals from --lr to --swa-lr; epochs 2 and 3 are flat.
    for (got, want) in lrs.iter().zip([5e-3, 1e-3, 1e-3]) {
        assert!((got - want).abs() < 1e-9, "{lrs:?}");
    }
    assert!(ck.get("swa").is_none(), "the running mean outlived the run");
    assert_eq!(ck["swa_log"]["epochs"], serde_json::json!([2, 3]));
    let summary = util::read_json(&whole.join("summary.json"));
    assert_eq!(summary["swa"], ck["swa_log"]);
    assert!(
        summary["integer_accuracy"].as_f64().unwrap() > 0.6,
        "{summary}"
    );
    let net = |p: &Path| util::read_json(&p.join("checkpoint.json"))["net"].clone();
    assert_eq!(net(&whole), net(&parts), "mean after resume differs");
}

#[test]
fn a_resumed_run_can_shorten_its_schedule_but_not_below_what_it_has_done() {
    // A run planned for 4 epochs and cut to 3 after the second continues on the 3-epoch
    // schedule: its third epoch starts at the learning rate of a run planned for 3.
    let dir = tempfile::tempdir().unwrap();
    let (short, cut) = (dir.path().join("short"), dir.path().join("cut"));
    let qat = ["--qat-epochs", "1"];
    let (ok, _, err) = train(&short, "3", &qat);
    assert!(ok, "{err}");
    let (ok, _, err) = train(&cut, "4", &[&qat[..], &["--stop-after", "2"]].concat());
    assert!(ok, "{err}");
    let (ok, _, err) = train(&cut, "1", &["--resume"]);
    assert!(!ok);
    assert!(
        err.contains("--epochs 1 is fewer than the 2 epochs the checkpoint has done"),
        "{err}"
    );
    let (ok, _, err) = train(&cut, "3", &["--resume"]);
    assert!(ok, "{err}");
    let lrs = |p: &Path| -> Vec<f64> {
        log_lines(p)
            .iter()
            .map(|e| e["lr"].as_f64().unwrap())
            .collect()
    };
    let (a, b) = (lrs(&short), lrs(&cut));
    assert_eq!(a.len(), 3, "{a:?}");
    assert_eq!(b.len(), 3, "{b:?}");
    assert_eq!(
        a[2], b[2],
        "the shortened run is not on the 3-epoch schedule"
    );
    assert_ne!(
        a[1], b[1],
        "the first two epochs were not on the 4-epoch schedule"
    );
    assert!(
        cut.join("model.json").exists(),
        "the shortened run did not finish"
    );
}

#[test]
fn bwo_patience_given_on_resume_starts_bwo_and_freezes_the_binary_set() {
    // ε = 1 and no decision on the initial weights: the estimator decides at each epoch end
    // while BWO (patience 10) has not started.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let args = [
        "--ale-no-start",
        "--ale-threshold",
        "1",
        "--stop-after",
        "1",
    ];
    let (ok, _, err) = train(&out, "3", &args);
    assert!(ok, "{err}");
    let (ok, _, err) = train(&out, "3", &["--resume", "--bwo-patience", "0"]);
    assert!(ok, "{err}");
    let decisions: Vec<usize> = precisions_and_decisions(&out).iter().map(|p| p.1).collect();
    assert_eq!(
        decisions,
        [1, 0, 0],
        "BWO did not start and freeze at the end of epoch 2"
    );
    let ck = util::read_json(&out.join("checkpoint.json"));
    assert_eq!(ck["bwo_active"], true);
    assert_eq!(ck["config"]["bwo_patience"], 0);
}

/// The lines of a run's `log.jsonl`, one JSON object per epoch.
fn log_lines(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Per epoch of `log.jsonl`: the layers' precisions and how many estimator decisions it logged.
fn precisions_and_decisions(out: &Path) -> Vec<(Vec<String>, usize)> {
    log_lines(out)
        .iter()
        .map(|v| {
            let p = v["precision"].as_array().unwrap();
            let p = p.iter().map(|x| x.as_str().unwrap().to_string()).collect();
            (p, v["decisions"].as_array().unwrap().len())
        })
        .collect()
}

#[test]
fn the_estimator_stops_re_deciding_once_bwo_starts_unless_told_otherwise() {
    // BWO starts at the end of epoch 1 (patience 0). ε = 1 makes the estimator want the one
    // candidate layer (the 16-channel convolution) binary at its first epoch-end decision.
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--bwo-patience",
        "0",
        "--ale-no-start",
        "--ale-threshold",
        "1",
    ];
    let frozen = dir.path().join("frozen");
    let (ok, _, err) = train(&frozen, "2", &args);
    assert!(ok, "{err}");
    let full = || vec!["full".to_string(); 3];
    assert_eq!(
        precisions_and_decisions(&frozen),
        vec![(full(), 0), (full(), 0)],
        "the binary set changed after BWO started"
    );
    let free = dir.path().join("free");
    let (ok, _, err) = train(
        &free,
        "2",
        &[&args[..], &["--ale-freeze-with-bwo", "false"]].concat(),
    );
    assert!(ok, "{err}");
    let log = precisions_and_decisions(&free);
    assert_eq!(log[0], (full(), 1), "epoch 1 ends with one decision");
    assert_eq!(log[1].0, ["full", "binary", "full"]);
}

#[test]
fn label_smoothing_trains_and_checkpoints_of_a_run_average_into_one_model() {
    // ε = 10 keeps the one candidate layer binary from the start to the end: every snapshot
    // has the same binary set, as after BWO freezes it in a real run.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let args = ["--ale-threshold", "10", "--label-smoothing", "0.1"];
    let (ok, _, err) = train(&out, "2", &[&args[..], &["--stop-after", "1"]].concat());
    assert!(ok, "{err}");
    let ckpt = out.join("checkpoint.json");
    let e1 = dir.path().join("e1.json");
    std::fs::copy(&ckpt, &e1).unwrap();
    let (ok, _, err) = train(&out, "2", &["--resume"]);
    assert!(ok, "{err}");
    let ck = util::read_json(&ckpt);
    assert_eq!(ck["config"]["label_smoothing"].as_f64(), Some(0.1));
    assert_eq!(ck["net"]["params"][1]["precision"], "binary");
    let s = util::read_json(&out.join("summary.json"));
    assert!(s["integer_accuracy"].as_f64().unwrap() > 0.6, "{s}");

    let export = |extra: &[&str], file: &str| {
        let path = dir.path().join(file);
        let mut a = vec![
            "export",
            ckpt.to_str().unwrap(),
            "--bn-recalibrate",
            "900",
            "--out",
            path.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        let (ok, stdout, err) = util::run(&a);
        assert!(ok, "{err}");
        (std::fs::read(path).unwrap(), stdout)
    };
    let (plain, _) = export(&[], "plain.json");
    // The mean of a network with itself is that network, bit for bit.
    let (itself, stdout) = export(&["--average", ckpt.to_str().unwrap()], "itself.json");
    assert!(
        stdout.contains("averaged 2 checkpoints (epochs [2, 2])"),
        "{stdout}"
    );
    assert!(
        itself == plain,
        "averaging a checkpoint with itself changed the model"
    );
    let (mean, stdout) = export(
        &["--average", e1.to_str().unwrap(), "--eval", "10000"],
        "mean.json",
    );
    assert!(stdout.contains("epochs [2, 1]"), "{stdout}");
    assert!(mean != plain, "the mean of epochs 1 and 2 equals epoch 2");
    // The averaged model is evaluated like a trained one. Its mean weights lie off the
    // integer grid that fake quantisation trained on, so float and integer may differ a little.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("test accuracy on 10000 images"))
        .unwrap_or_else(|| panic!("no accuracy line: {stdout}"));
    let gap: f64 = line
        .rsplit("gap ")
        .next()
        .and_then(|g| g.trim_end_matches(" points").parse().ok())
        .unwrap_or_else(|| panic!("no gap in {line}"));
    assert!(gap.abs() <= 0.2, "{line}");
}

#[test]
fn random_erasing_learns_changes_the_training_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // The checkpoint keeps the option: a plain --resume goes on erasing.
    let (whole, _, _) = whole_and_resumed(dir.path(), "2", "1", &["--erase", "0.5"], |_| {});
    let plain = dir.path().join("plain");
    let (ok, _, err) = train(&plain, "2", &[]);
    assert!(ok, "{err}");
    assert_ne!(
        model_bytes(&whole),
        model_bytes(&plain),
        "erasing changed nothing"
    );
    let s = util::read_json(&whole.join("summary.json"));
    assert!(s["integer_accuracy"].as_f64().unwrap() > 0.6, "{s}");
}

#[test]
fn distillation_learns_from_a_teacher_resumes_exactly_and_refuses_a_changed_teacher() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = dir.path().join("teacher");
    let (ok, _, err) = train(&teacher, "2", &[]);
    assert!(ok, "{err}");
    let ckpt = teacher.join("checkpoint.json");
    // The run directory stands for its checkpoint.
    let kd = [
        "--teacher",
        teacher.to_str().unwrap(),
        "--distill-weight",
        "0.7",
        "--distill-temperature",
        "2",
    ];
    let (whole, parts, stdout) = whole_and_resumed(&dir.path().join("kd"), "2", "1", &kd, |ck| {
        let t = &ck["config"]["distill"]["teachers"][0];
        assert_eq!(t["sha256"].as_str().unwrap().len(), 64, "{t}");
        assert!(
            t["path"]
                .as_str()
                .unwrap()
                .ends_with("teacher/checkpoint.json"),
            "{t}"
        );
    });
    assert!(
        stdout.contains("distilling from 1 teacher(s), λ = 0.7, τ = 2")
            && stdout.contains("as the ensemble the network learns from"),
        "{stdout}"
    );
    // The teacher's own run had the same seed and options, so any difference is the teacher's.
    assert_ne!(
        model_bytes(&whole),
        model_bytes(&teacher),
        "distillation changed nothing"
    );
    let s = util::read_json(&whole.join("summary.json"));
    assert!(s["integer_accuracy"].as_f64().unwrap() > 0.6, "{s}");
    assert_eq!(s["distill"]["temperature"], 2.0);
    // The summary names how good the teacher was: its own last validation figure, and as an
    // ensemble of one the same (a temperature does not move the argmax).
    let teacher_log = util::read_json(&ckpt)["log"].as_array().unwrap().clone();
    let teacher_val = teacher_log.last().unwrap()["val_acc"].as_f64().unwrap();
    assert_eq!(
        s["teachers"]["accuracy"][0].as_f64(),
        Some(teacher_val),
        "{s}"
    );
    assert_eq!(
        s["teachers"]["ensemble_accuracy"].as_f64(),
        Some(teacher_val),
        "{s}"
    );
    // A teacher that changed since the run started is refused when the run resumes.
    let mut bytes = std::fs::read(&ckpt).unwrap();
    bytes.push(b'\n');
    std::fs::write(&ckpt, bytes).unwrap();
    let (ok, _, err) = train(&parts, "3", &["--resume"]);
    assert!(!ok, "a changed teacher was accepted");
    assert!(
        err.contains("teacher/checkpoint.json: this teacher changed since the run started"),
        "{err}"
    );
}

#[test]
fn a_resume_keeps_the_runs_split_architecture_and_steps_and_refuses_another_split() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (ok, _, err) = train(&out, "2", &["--stop-after", "1", "--time-steps", "2"]);
    assert!(ok, "{err}");
    let out_s = out.to_str().unwrap();
    // Another T is another network.
    let (ok, _, err) = util::run(&["train", "--resume", "--time-steps", "3", "--out", out_s]);
    assert!(!ok && err.contains("at T = 2, not"), "{err}");
    // Only --resume and --out: the run's architecture, T and split, not the defaults.
    let (ok, stdout, err) = util::run(&["train", "--resume", "--quiet", "--out", out_s]);
    assert!(ok, "{err}");
    assert!(
        stdout.contains("900 train / 100 validation images), T = 2"),
        "{stdout}"
    );
    let (ok, _, err) = util::run(&[
        "train", "--resume", "--val", "200", "--epochs", "3", "--out", out_s,
    ]);
    assert!(!ok);
    assert!(
        err.contains("--val and --limit cannot change on --resume"),
        "{err}"
    );
}

#[test]
fn narrow_pixels_train_export_and_run_bit_exact_from_the_dataset_and_an_idx_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (ok, stdout, err) = train(&out, "2", &["--input-bits", "2"]);
    assert!(ok, "{err}");
    let (_, int) = float_and_integer(&out);
    assert!(
        int > 0.5,
        "integer accuracy {int} at 2-bit pixels\n{stdout}"
    );
    let model = out.join("model.json");
    let m = util::read_json(&model);
    assert_eq!(m["input"]["pixel_bits"], 2);
    // `eval` and `cosim` shift the dataset's 8-bit pixels to the model's two bits.
    util::assert_eval_prints(&model, None, int);
    util::cosim_test_images_bit_exact(&model, 20);
    // An IDX file is 8-bit images too; raw bytes are values as the model takes them, and an
    // 8-bit value is out of a 2-bit model's range.
    let idx = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    let (ok, stdout, err) = util::run(&[
        "infer",
        model.to_str().unwrap(),
        "--input",
        idx,
        "--limit",
        "3",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("image ")).count(),
        3,
        "{stdout}"
    );
    let raw = dir.path().join("raw.bin");
    std::fs::write(&raw, vec![200u8; 28 * 28]).unwrap();
    let (ok, _, err) = util::run(&[
        "infer",
        model.to_str().unwrap(),
        "--input",
        raw.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("raw.bin") && err.contains("value 200"),
        "{err}"
    );
    for (bits, why) in [("9", "1 to 8 bits"), ("0", "1 to 8 bits")] {
        let (ok, _, err) = train(&dir.path().join("bad"), "1", &["--input-bits", bits]);
        assert!(!ok && err.contains(why), "--input-bits {bits}: {err}");
    }
}

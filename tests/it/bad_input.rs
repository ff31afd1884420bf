//! Bad input: each gives a clear error naming the file and what is wrong, a non-zero exit,
//! and no partial output.

use std::path::PathBuf;

use crate::util;

fn reference() -> serde_json::Value {
    util::read_json(&util::reference("ref_conv"))
}

/// Runs `gen MODEL --out OUT`; returns whether it succeeded and its stderr.
fn gen(model: &std::path::Path, out: &std::path::Path) -> (bool, String) {
    let (ok, _, err) = util::run(&[
        "gen",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    (ok, err)
}

/// Writes `text` as a model, runs `gen` on it, and checks the failure.
fn gen_fails(text: &str, expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("bad.json");
    std::fs::write(&model, text).unwrap();
    let out = dir.path().join("rtl");
    let (ok, err) = gen(&model, &out);
    assert!(!ok, "gen accepted a bad model");
    assert!(
        err.contains("bad.json"),
        "error does not name the file: {err}"
    );
    for e in expect {
        assert!(err.contains(e), "error lacks `{e}`: {err}");
    }
    assert!(!out.exists(), "partial output left behind");
    let leftovers: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(leftovers, vec![model], "temporary files left behind");
}

#[test]
fn a_missing_model_file_is_named_with_its_reason_once() {
    let d = tempfile::tempdir().unwrap();
    let (missing, out) = (d.path().join("absent.json"), d.path().join("rtl"));
    let (ok, err) = gen(&missing, &out);
    assert!(!ok, "gen accepted a missing model");
    assert!(err.contains("absent.json"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(!out.exists(), "output written for a missing model");
}

#[test]
fn malformed_json() {
    gen_fails(
        "{ \"format\": \"spikeforge-hardware-model\", ",
        &["line 1", "EOF"],
    );
}

#[test]
fn truncated_model_file() {
    let text = serde_json::to_string_pretty(&reference()).unwrap();
    gen_fails(&text[..text.len() / 2], &["line"]);
}

#[test]
fn wrong_ir_version() {
    let mut m = reference();
    m["version"] = 3.into();
    gen_fails(
        &m.to_string(),
        &["IR version 3 is not supported", "versions 1 to 2"],
    );
}

/// Per-step frames need IR version 2: a version-1 file that names them is refused.
#[test]
fn a_frames_model_needs_ir_version_2() {
    let mut m = reference();
    m["version"] = 1.into();
    m["input"]["encoding"] = "frames".into();
    gen_fails(
        &m.to_string(),
        &["the \"frames\" input encoding needs IR version 2"],
    );
}

#[test]
fn inconsistent_shapes() {
    let mut m = reference();
    m["layers"][0]["neuron"]["bias"] = serde_json::json!([1, 2, 3]);
    m["layers"][1]["synapse"]["kernel"] = 4.into();
    gen_fails(
        &m.to_string(),
        &[
            "layers[0].neuron.bias",
            "expected 2 values",
            "layers[1].synapse.kernel",
        ],
    );
    let mut m = reference();
    m["layers"][0]["synapse"]["padding"] = "valid".into();
    m["input"]["height"] = 2.into();
    gen_fails(&m.to_string(), &["layers[0].synapse", "does not fit"]);
}

#[test]
fn weights_out_of_range() {
    let mut m = reference();
    m["layers"][1]["weights"]["values"][3] = 9.into();
    gen_fails(
        &m.to_string(),
        &["layers[1].weights.values[3]", "does not fit 4-bit"],
    );
}

#[test]
fn truncated_weights() {
    let mut m = reference();
    let signs = m["layers"][0]["weights"]["signs"]
        .as_str()
        .unwrap()
        .to_string();
    m["layers"][0]["weights"]["signs"] = signs[..signs.len() - 2].into();
    gen_fails(&m.to_string(), &["layers[0].weights.signs", "truncated"]);
}

#[test]
fn input_image_of_the_wrong_size() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img.bin");
    std::fs::write(&img, [0u8; 35]).unwrap();
    let model = util::reference("ref_conv");
    for cmd in ["infer", "cosim"] {
        let flag = if cmd == "infer" {
            "--input"
        } else {
            "--images"
        };
        let (ok, _, err) = util::run(&[cmd, model.to_str().unwrap(), flag, img.to_str().unwrap()]);
        assert!(!ok);
        assert!(
            err.contains("img.bin") && err.contains("35 bytes") && err.contains("36"),
            "{cmd}: {err}"
        );
    }
}

#[test]
fn verilator_missing() {
    let model = util::reference("ref_conv");
    let cache = tempfile::tempdir().unwrap();
    let out = util::bin()
        .env("SPIKEFORGE_VERILATOR", "/nonexistent/verilator")
        .env("SPIKEFORGE_CACHE", cache.path())
        .args(["cosim", model.to_str().unwrap(), "--random", "2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("apt-get install verilator"), "{err}");
    assert_eq!(
        std::fs::read_dir(cache.path()).unwrap().count(),
        0,
        "partial cache output"
    );
}

#[test]
fn impossible_folding_says_what_would_fold() {
    let model = util::reference("ref_conv");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rtl");
    let (ok, _, err) = util::run(&[
        "gen",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--fold",
        "1=2,1",
    ]);
    assert!(!ok);
    assert!(
        err.contains("PE = 2 does not divide Cout = 3") && err.contains("[1, 3]"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn an_unknown_inspect_target_fails_before_any_report() {
    let model = util::reference("ref_mlp");
    let (ok, out, err) = util::run(&["inspect", model.to_str().unwrap(), "--target", "ice99"]);
    assert!(!ok, "inspect accepted an unknown target");
    assert!(
        err.contains("unknown target `ice99`") && err.contains("ice40-up5k"),
        "{err}"
    );
    assert!(out.is_empty(), "partial report before the error: {out}");
}

#[test]
fn a_cosim_limit_without_images_to_limit_is_refused() {
    let model = util::reference("ref_conv");
    let (ok, out, err) = util::run(&["cosim", model.to_str().unwrap(), "--limit", "5"]);
    assert!(!ok, "--limit was ignored: {out}");
    assert!(
        err.contains("--limit applies to --images or --dataset") && err.contains("--random N"),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");
}

#[test]
fn architecture_that_does_not_parse_points_at_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.json");
    let (ok, _, err) = util::run(&[
        "random-model",
        "--arch",
        "28x28x1-16C3b-32Q3-10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("token 3 `32Q3`") && err.contains("^^^^"),
        "{err}"
    );
    assert!(!out.exists());
}

/// IDX bytes: magic `00 00 08 dims`, big-endian dimensions, then the body.
fn idx(dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

/// A Fashion-MNIST-shaped directory of `n` images, with one file replaced by `bad`.
fn dataset_dir(n: u32, bad: Option<(&str, Vec<u8>)>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let img = idx(&[n, 28, 28], &vec![7u8; (n * 784) as usize]);
    let lab = idx(&[n], &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>());
    for split in ["train", "t10k"] {
        std::fs::write(dir.path().join(format!("{split}-images-idx3-ubyte")), &img).unwrap();
        std::fs::write(dir.path().join(format!("{split}-labels-idx1-ubyte")), &lab).unwrap();
    }
    if let Some((name, bytes)) = bad {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

/// `train --data DIR` must fail before training, naming the file and the problem.
fn train_fails(dir: &std::path::Path, expect: &[&str]) {
    let out = dir.join("out");
    let (ok, stdout, err) = util::run(&[
        "train",
        "--data",
        dir.to_str().unwrap(),
        "--arch",
        "28x28x1-4C3-MP2-10",
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok, "train accepted bad data: {stdout}");
    for e in expect {
        assert!(err.contains(e), "error lacks `{e}`: {err}");
    }
    assert!(!out.join("model.json").exists(), "a model was written");
}

#[test]
fn numbers_out_of_range_are_refused_before_any_work() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let cases: [&[&str]; 20] = [
        &["demo", "--epochs", "0"],
        &["demo", "--time-steps", "0"],
        &["demo", "--images", "0"],
        &["train", "--limit", "0"],
        &["train", "--epochs", "0"],
        &["train", "--batch", "0"],
        &["train", "--time-steps", "65"],
        &["random-model", "--arch", "8x8-4C3-3", "--time-steps", "0"],
        &["bench", "--train", "8x8-4C3-3", "--batch", "0"],
        &["bench", "--train", "8x8-4C3-3", "--time-steps", "0"],
        &["train", "--lr", "0"],
        &["train", "--lr", "nan"],
        &["train", "--swa-lr", "inf"],
        &["train", "--momentum", "1"],
        &["train", "--weight-decay", "nan"],
        &["train", "--ale-cap", "1.5"],
        &["convert", "--lr", "0"],
        &["convert", "--epochs", "0"],
        &["train", "--distill-weight", "1.5"],
        &["train", "--distill-temperature", "0"],
    ];
    for args in cases {
        let (ok, stdout, err) = util::run(&[args, &["--out", out.to_str().unwrap()]].concat());
        assert!(!ok, "{args:?} accepted");
        assert!(
            err.contains(&format!("invalid value '{}'", args[args.len() - 1])),
            "{args:?}: {err}"
        );
        assert!(stdout.is_empty(), "{args:?} printed {stdout}");
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    }
}

#[test]
fn a_validation_split_that_leaves_no_training_images_is_refused_before_any_output() {
    let d = dataset_dir(20, None);
    let out = d.path().join("out");
    let (ok, _, err) = util::run(&[
        "train",
        "--data",
        d.path().to_str().unwrap(),
        "--arch",
        "28x28x1-4C3-MP2-10",
        "--val",
        "20",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("20 validation image(s) leave no training images: the training set has 20"),
        "{err}"
    );
    assert!(!out.exists(), "the output directory was created");
}

#[test]
fn bad_dataset_files_are_named_with_the_problem() {
    let truncated = {
        let mut v = idx(&[20, 28, 28], &[0u8; 784 * 20]);
        v.truncate(16 + 784 * 3 + 5);
        v
    };
    let d = dataset_dir(20, Some(("train-images-idx3-ubyte", truncated)));
    train_fails(d.path(), &["train-images-idx3-ubyte", "truncated"]);

    let mut wrong_magic = idx(&[20, 28, 28], &[0u8; 784 * 20]);
    wrong_magic[3] = 1;
    let d = dataset_dir(20, Some(("train-images-idx3-ubyte", wrong_magic)));
    train_fails(d.path(), &["train-images-idx3-ubyte", "wrong magic number"]);

    let d = dataset_dir(
        20,
        Some(("train-labels-idx1-ubyte", idx(&[19], &[1u8; 19]))),
    );
    train_fails(
        d.path(),
        &[
            "train-images-idx3-ubyte",
            "20 images",
            "train-labels-idx1-ubyte",
            "19 labels",
        ],
    );

    // Gzip magic followed by garbage: a corrupt download.
    let d = dataset_dir(20, None);
    std::fs::remove_file(d.path().join("t10k-images-idx3-ubyte")).unwrap();
    std::fs::write(
        d.path().join("t10k-images-idx3-ubyte.gz"),
        [0x1f, 0x8b, 8, 0, 1, 2, 3],
    )
    .unwrap();
    train_fails(
        d.path(),
        &["t10k-images-idx3-ubyte.gz", "corrupt or truncated gzip"],
    );

    let d = dataset_dir(
        20,
        Some(("t10k-labels-idx1-ubyte", idx(&[20], &[12u8; 20]))),
    );
    train_fails(d.path(), &["t10k-labels-idx1-ubyte", "label 12"]);

    // `spikeforge data` reports the same problem for the file.
    let (ok, out, _) = util::run(&[
        "data",
        "--dataset",
        "fashion-mnist",
        "--data",
        d.path().to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(out.contains("checksum differs"), "{out}");
}

#[test]
fn a_missing_dataset_says_how_to_install_it() {
    let d = tempfile::tempdir().unwrap();
    train_fails(
        d.path(),
        &[
            "fashion-mnist",
            "train-images-idx3-ubyte.gz",
            "apt-get install dataset-fashion-mnist",
        ],
    );
    let (ok, _, err) = util::run(&[
        "eval",
        "x.json",
        "--dataset",
        "cifar10",
        "--data",
        "/nonexistent",
    ]);
    assert!(!ok);
    assert!(err.contains("x.json"), "{err}");
    let (ok, _, err) = util::run(&["train", "--dataset", "imagenet", "--epochs", "1"]);
    assert!(!ok);
    assert!(
        err.contains("unknown dataset `imagenet`") && err.contains("fashion-mnist"),
        "{err}"
    );
}

#[test]
fn an_architecture_that_does_not_parse_points_at_the_token() {
    let d = tempfile::tempdir().unwrap();
    let (ok, _, err) = util::run(&[
        "train",
        "--arch",
        "28x28x1-16C3-32Q3-10",
        "--out",
        d.path().to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("token 3 `32Q3`"), "{err}");
    assert!(err.contains("             ^^^^"), "{err}");
    assert!(!d.path().join("checkpoint.json").exists());
    // Parses, but does not fit the dataset.
    let out = d.path().join("run");
    let (ok, _, err) = util::run(&[
        "train",
        "--arch",
        "32x32x3-8C3-MP2-10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("takes 32×32×3 images") && err.contains("28×28×1"),
        "{err}"
    );
    assert!(!out.exists(), "partial output left behind");
}

#[test]
fn a_diverging_run_stops_and_keeps_the_last_good_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().to_str().unwrap();
    let args = |extra: &[&'static str]| {
        let mut v = vec![
            "train",
            "--arch",
            "28x28x1-4C3-MP2-10",
            "--limit",
            "300",
            "--val",
            "50",
            "--epochs",
            "3",
            "--optimizer",
            "sgd",
            "--quiet",
            "--out",
            out,
        ];
        v.extend_from_slice(extra);
        v
    };
    let (ok, _, err) = util::run(&args(&["--stop-after", "1"]));
    assert!(ok, "{err}");
    let good = std::fs::read(d.path().join("checkpoint.json")).unwrap();
    let (ok, _, err) = util::run(&args(&["--resume", "--lr", "1e38"]));
    assert!(!ok, "a run with lr 1e38 finished");
    assert!(err.contains("diverged") && err.contains("epoch 2"), "{err}");
    assert!(
        err.contains("last good checkpoint") && err.contains("checkpoint.json (epoch 1)"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(d.path().join("checkpoint.json")).unwrap(),
        good
    );
}

#[test]
fn label_smoothing_or_erasing_out_of_range_and_unaverageable_checkpoints_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let (ok, _, err) = util::run(&[
        "train",
        "--label-smoothing",
        "1.5",
        "--out",
        d.path().to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("--label-smoothing") && err.contains("1.5 is not in [0, 1)"),
        "{err}"
    );
    let (ok, _, err) = util::run(&["train", "--erase", "2", "--out", d.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("--erase") && err.contains("2 is not a probability in [0, 1]"),
        "{err}"
    );
    // Two one-epoch runs of different architectures cannot be averaged.
    let ckpt = |arch: &str, name: &str| {
        let out = d.path().join(name);
        let (ok, _, err) = util::run(&[
            "train",
            "--arch",
            arch,
            "--limit",
            "300",
            "--val",
            "50",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        out.join("checkpoint.json").to_str().unwrap().to_string()
    };
    let (a, b) = (
        ckpt("28x28x1-4C3-MP2-10", "a"),
        ckpt("28x28x1-6C3-MP2-10", "b"),
    );
    let model = d.path().join("mean.json");
    let export = |extra: &[&str]| {
        let mut v = vec![
            "export",
            &a,
            "--average",
            &b,
            "--out",
            model.to_str().unwrap(),
        ];
        v.extend_from_slice(extra);
        util::run(&v)
    };
    let (ok, _, err) = export(&[]);
    assert!(!ok);
    assert!(err.contains("--average needs --bn-recalibrate"), "{err}");
    let (ok, _, err) = export(&["--bn-recalibrate", "100"]);
    assert!(!ok);
    assert!(
        err.contains(&a) && err.contains(&b) && err.contains("network 1 cannot be averaged"),
        "{err}"
    );
    assert!(!model.exists(), "partial output left behind");
    // A missing dataset fails before the averaging prints anything.
    let no_data = d.path().join("no-data");
    let (ok, stdout, err) = export(&[
        "--bn-recalibrate",
        "100",
        "--data",
        no_data.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stdout.is_empty(), "printed before failing: {stdout}");
    assert!(err.contains("no-data"), "{err}");
    assert!(!model.exists(), "partial output left behind");
}

#[test]
fn exporting_a_hardware_model_instead_of_a_checkpoint_says_so() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m.json");
    let model = util::reference("ref_conv");
    let (ok, _, err) = util::run(&[
        "export",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok, "export accepted a hardware model");
    assert!(
        err.contains("ref_conv.json") && err.contains("this is an exported hardware model"),
        "{err}"
    );
    assert!(!out.exists(), "partial output left behind");
}

#[test]
fn weight_averaging_that_cannot_work_is_refused_before_any_output() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run");
    let train = |extra: &[&str]| {
        let mut v = vec!["train", "--epochs", "3", "--out", out.to_str().unwrap()];
        v.extend_from_slice(extra);
        util::run(&v)
    };
    let cases: [(&[&str], &str); 3] = [
        (
            &["--swa-epochs", "3"],
            "--swa-epochs 3 leaves no epochs of the 3",
        ),
        (
            &["--swa-epochs", "1", "--bn-recalibrate", "0"],
            "--swa-epochs needs --bn-recalibrate N > 0",
        ),
        (
            &["--swa-epochs", "1", "--swa-lr", "0"],
            "0 is not a positive finite learning rate",
        ),
    ];
    for (args, expect) in cases {
        let (ok, _, err) = train(args);
        assert!(!ok, "{args:?} accepted");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} left output behind");
    }
}

#[test]
fn distillation_that_cannot_work_is_refused_before_any_output() {
    let d = dataset_dir(20, None);
    let dir = d.path().to_str().unwrap();
    let out = d.path().join("out");
    let train = |extra: &[&str]| {
        let mut v = vec!["train", "--data", dir, "--arch", "28x28x1-4C3-MP2-10"];
        v.extend_from_slice(&["--limit", "20", "--val", "5", "--epochs", "1", "--quiet"]);
        v.extend_from_slice(extra);
        util::run(&v)
    };
    // A teacher for 14×14 images: a real checkpoint whose input was edited.
    let (ok, _, err) = train(&["--out", d.path().join("t").to_str().unwrap()]);
    assert!(ok, "{err}");
    let mut ck = util::read_json(&d.path().join("t/checkpoint.json"));
    ck["net"]["input"] = serde_json::json!([14, 14, 1]);
    let small = d.path().join("small.json");
    std::fs::write(&small, ck.to_string()).unwrap();
    let missing = d.path().join("missing.json");
    let model = util::reference("ref_conv");
    let (small, missing, model) = (
        small.to_str().unwrap(),
        missing.to_str().unwrap(),
        model.to_str().unwrap(),
    );
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["--teacher", missing],
            &["missing.json: teacher checkpoint:"],
        ),
        (
            &["--teacher", model],
            &["ref_conv.json", "this is an exported hardware model"],
        ),
        (
            &["--teacher", small],
            &["small.json: this teacher takes (14, 14, 1) images into 10 classes, the student (28, 28, 1)"],
        ),
        (
            &["--distill-weight", "0.5"],
            &["--distill-weight and --distill-temperature need --teacher"],
        ),
        (
            &["--teacher", small, "--resume"],
            &["--teacher cannot change on --resume"],
        ),
    ];
    for (args, expect) in cases {
        let (ok, _, err) = train(&[args, &["--out", out.to_str().unwrap()]].concat());
        assert!(!ok, "{args:?} accepted");
        for e in expect {
            assert!(err.contains(e), "{args:?}: error lacks `{e}`: {err}");
        }
        assert!(!out.exists(), "{args:?} left output behind");
    }
}

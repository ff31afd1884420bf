//! Bad input: each gives a clear error naming the file and what is wrong, a non-zero exit,
//! and no partial output.

use std::path::PathBuf;

use crate::util;

fn reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(util::reference("ref_conv")).unwrap()).unwrap()
}

/// Writes `text` as a model, runs `gen` on it, and checks the failure.
fn gen_fails(text: &str, expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("bad.json");
    std::fs::write(&model, text).unwrap();
    let out = dir.path().join("rtl");
    let (ok, _, err) = util::run(&[
        "gen",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
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
    m["version"] = 2.into();
    gen_fails(
        &m.to_string(),
        &["IR version 2 is not supported", "version 1"],
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

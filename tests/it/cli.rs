//! Every subcommand, smoke-tested through the binary.

use crate::util;

fn reference(name: &str) -> String {
    util::reference(name).display().to_string()
}

#[test]
fn random_model_then_gen_twice_gives_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.json");
    let (ok, out, err) = util::run(&[
        "random-model",
        "--arch",
        "8x8-3C3b-MP2-2",
        "--time-steps",
        "2",
        "--seed",
        "4",
        "--out",
        m.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("T = 2"));
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for d in [&a, &b] {
        let (ok, out, err) = util::run(&[
            "gen",
            m.to_str().unwrap(),
            "--out",
            d.to_str().unwrap(),
            "--fold",
            "0=3,1",
        ]);
        assert!(ok, "{err}");
        assert!(out.contains("cycles per image"));
    }
    let files: Vec<_> = std::fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(files.len() > 5);
    for f in files {
        assert_eq!(
            std::fs::read(a.join(&f)).unwrap(),
            std::fs::read(b.join(&f)).unwrap(),
            "{f:?} differs"
        );
    }
}

#[test]
fn cosim_random_images_from_rtl_dir_and_from_a_file() {
    let model = reference("ref_conv");
    let dir = tempfile::tempdir().unwrap();
    let rtl = dir.path().join("rtl");
    assert!(util::run(&["gen", &model, "--out", rtl.to_str().unwrap()]).0);
    let (ok, out, err) = util::run(&[
        "cosim",
        &model,
        "--rtl",
        rtl.to_str().unwrap(),
        "--random",
        "30",
        "--seed",
        "2",
        "--stall",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("30/30 bit-exact"), "{out}");
    let imgs = dir.path().join("imgs.bin");
    std::fs::write(
        &imgs,
        (0..36 * 5)
            .map(|i| (i * 7 % 256) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let (ok, out, err) = util::run(&["cosim", &model, "--images", imgs.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("5/5 bit-exact"), "{out}");
    let (ok, out, _) = util::run(&[
        "infer",
        &model,
        "--input",
        imgs.to_str().unwrap(),
        "--limit",
        "2",
    ]);
    assert!(ok && out.contains("image 1: class"), "{out}");
}

#[test]
fn cosim_refuses_rtl_of_another_model() {
    let dir = tempfile::tempdir().unwrap();
    let rtl = dir.path().join("rtl");
    assert!(util::run(&["gen", &reference("ref_mlp"), "--out", rtl.to_str().unwrap()]).0);
    let (ok, _, err) = util::run(&[
        "cosim",
        &reference("ref_conv"),
        "--rtl",
        rtl.to_str().unwrap(),
    ]);
    assert!(!ok, "cosim accepted RTL generated from another model");
    assert!(
        err.contains("not from the given model") && err.contains("spikeforge gen"),
        "{err}"
    );
}

#[test]
fn cosim_reads_idx_images_and_writes_vcd() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("imgs-idx3-ubyte");
    let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 6, 0, 0, 0, 6];
    bytes.extend((0..108).map(|i| (i * 13 % 256) as u8));
    std::fs::write(&idx, bytes).unwrap();
    let vcd = dir.path().join("w.vcd");
    let (ok, out, err) = util::run(&[
        "cosim",
        &reference("ref_conv"),
        "--images",
        idx.to_str().unwrap(),
        "--vcd",
        vcd.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("3/3 bit-exact"), "{out}");
    assert!(std::fs::read_to_string(&vcd)
        .unwrap()
        .contains("$enddefinitions"));
}

#[test]
fn inspect_and_doctor() {
    let (ok, out, err) = util::run(&["inspect", &reference("ref_mlp")]);
    assert!(ok, "{err}");
    assert!(
        out.contains("cycles per image") && out.contains("l0"),
        "{out}"
    );
    let (ok, out, _) = util::run(&["doctor"]);
    assert!(ok);
    assert!(
        out.contains("verilator") && out.contains("tools found"),
        "{out}"
    );
}

#[test]
fn demo_runs_end_to_end_on_a_small_model() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = util::run(&[
        "demo",
        "--out",
        dir.path().to_str().unwrap(),
        "--arch",
        "28x28x1-2C3s2-MP2-10C1-GAP",
        "--epochs",
        "1",
        "--limit",
        "1000",
        "--images",
        "20",
    ]);
    assert!(ok, "{err}");
    for want in [
        "test accuracy on 10000 images: float",
        "20/20 bit-exact",
        "accuracy            float    integer  RTL",
        "below all-full-precision",
        "images/s; bitstream",
    ] {
        assert!(out.contains(want), "demo output lacks `{want}`:\n{out}");
    }
    assert!(dir
        .path()
        .join("rtl/build/icebreaker/fashion_mnist_albsnn_icebreaker.bin")
        .exists());
    // The demo's report, rendered by a real browser.
    let page = dir.path().join("report.html");
    assert!(
        out.contains(&format!("report: {}", page.display())),
        "{out}"
    );
    let dom = util::render_in_chromium(&page);
    for section in spikeforge_report::SECTIONS {
        assert!(
            dom.contains(&format!("<section id=\"{section}\">")),
            "section {section} missing from the rendered page"
        );
    }
    for text in [
        "20/20 bit-exact",
        "Fmax",
        "weight bits",
        "channel 0, step 0",
    ] {
        assert!(
            dom.contains(text),
            "`{text}` missing from the rendered page"
        );
    }
}

#[test]
fn bench_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("b.json");
    let (ok, out, err) = util::run(&["bench", "--images", "300", "--out", json.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("golden img/s"), "{out}");
    let v = util::read_json(&json);
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["bit_exact"], 300);
}

#[test]
fn gen_target_chooses_a_folding_that_fits_and_says_why_when_none_does() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("rtl");
    let conv = reference("ref_conv");
    // The layers not named by --fold are chosen for the device; the named one is kept.
    let (ok, out, err) = util::run(&[
        "gen",
        &conv,
        "--out",
        out_dir.to_str().unwrap(),
        "--target",
        "ice40-up5k",
        "--fold",
        "0=1,1",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("folding for ice40-up5k"), "{out}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["folding"]["layers"][0]["pe"], 1, "{manifest}");
    // The chosen folding's estimate is under the caps (85 % of 5 280 LC, 90 % of 30 RAMs).
    let model = spikeforge_model::load(std::path::Path::new(&conv)).unwrap();
    let folding: spikeforge_hdl_gen::Folding =
        serde_json::from_value(manifest["folding"].clone()).unwrap();
    let e = spikeforge_hdl_gen::estimate::estimate(
        &model,
        &folding,
        spikeforge_constraints::Family::Ice40,
    )
    .unwrap();
    assert!(e.total.cells <= 0.85 * 5280.0, "{:?}", e.total);
    assert!(e.total.ram_blocks <= 27.0, "{:?}", e.total);

    // The selected Fashion-MNIST network's weights alone outgrow the UP5K's block RAM.
    let (ok, _, err) = util::run(&[
        "gen",
        "models/fashion-mnist-t1-ulx3s.json",
        "--out",
        dir.path().join("sel").to_str().unwrap(),
        "--target",
        "ice40-up5k",
    ]);
    assert!(!ok);
    assert!(
        err.contains("no folding fits ice40-up5k") && err.contains("block RAM"),
        "{err}"
    );
    assert!(err.contains("it fits") && err.contains("ecp5-85k"), "{err}");
    assert!(!dir.path().join("sel").exists(), "no partial output");
}

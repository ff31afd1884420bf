//! The `frames` input encoding (IR version 2): each time step has its own input map.

use std::path::Path;

use spikeforge_model::ir::{Encoding, FRAMES_VERSION, VERSION};
use spikeforge_model::{arch, load, random, Golden, Model};

/// A random LIF model of `a` turned into a frames model.
fn framed(a: &str, t: u32, seed: u64) -> (Model, Model) {
    let direct = random::random_model(&arch::parse(a).unwrap(), t, seed).unwrap();
    let mut frames = direct.clone();
    frames.input.encoding = Encoding::Frames;
    frames.version = FRAMES_VERSION;
    spikeforge_model::validate::validate(&frames).unwrap();
    (direct, frames)
}

#[test]
fn each_step_of_the_first_layer_sees_its_own_frame() {
    let m = load::from_json(
        r#"{"format":"spikeforge-hardware-model","version":2,"name":"m",
        "input":{"height":1,"width":2,"channels":1,"pixel_bits":4,"encoding":"frames"},
        "time_steps":3,
        "layers":[{"name":"l0","synapse":{"kind":"dense","out_features":1},
          "weights":{"kind":"integer","bits":4,"values":[1,2]},
          "neuron":{"kind":"none","bias":[0]},"pool":null}],
        "head":{"kind":"gap_argmax"}}"#,
        Path::new("f.json"),
    )
    .unwrap();
    let g = Golden::new(&m);
    assert_eq!(g.image_len(), 6, "T = 3 frames of 1×2×1");
    // Frames (t, x): t0 = [1, 0], t1 = [0, 1], t2 = [2, 3].
    let inf = g.run_one(&[1, 0, 0, 1, 2, 3], true);
    assert_eq!(inf.trace.unwrap()[0].values, [1, 2, 2 + 6]);
    assert_eq!(inf.logits, [11]);
}

#[test]
fn equal_frames_give_the_direct_models_answer_bit_for_bit() {
    for (a, t, seed) in [
        ("12x12x1-8C3-MP2-8C3b-10C1i8-GAP", 4, 3),
        ("8x8x2-6C3s2-SP2-10i6-GAP", 2, 5),
    ] {
        let (direct, frames) = framed(a, t, seed);
        let gd = Golden::new(&direct);
        let gf = Golden::new(&frames);
        let images = random::random_images(&direct, 4, seed);
        let n = gd.image_len();
        for img in images.chunks(n) {
            let repeated: Vec<u8> = (0..t).flat_map(|_| img.iter().copied()).collect();
            assert_eq!(gd.run_one(img, true), gf.run_one(&repeated, true), "{a}");
        }
    }
}

#[test]
fn different_frames_change_the_answer() {
    let (_, frames) = framed("12x12x1-8C3-MP2-8C3b-10C1i8-GAP", 4, 3);
    let g = Golden::new(&frames);
    let n = g.image_len();
    let images = random::random_images(&frames, 2, 9);
    let (a, b) = images.split_at(n);
    // Frames 0..2 of the first image and the last frame of the second.
    let mut mixed = a.to_vec();
    let frame = n / 4;
    mixed[3 * frame..].copy_from_slice(&b[3 * frame..]);
    let (ta, tm) = (g.run_one(a, true), g.run_one(&mixed, true));
    let first = |i: &spikeforge_model::Inference, step: usize| {
        let t = &i.trace.as_ref().unwrap()[0];
        (0..t.shape.height as usize * t.shape.width as usize)
            .flat_map(|p| (0..t.shape.channels as usize).map(move |c| (p, c)))
            .map(|(p, c)| t.at(p, step, c))
            .collect::<Vec<_>>()
    };
    for s in 0..3 {
        assert_eq!(first(&ta, s), first(&tm, s), "step {s} saw the same frame");
    }
    assert_ne!(first(&ta, 3), first(&tm, 3), "step 3 saw another frame");
}

#[test]
fn the_version_rule() {
    let (direct, frames) = framed("8x8x1-4C3-MP2-10C1i8-GAP", 2, 1);
    // Models without frames are written as version 1, as before.
    assert_eq!(direct.version, VERSION);
    assert!(load::to_json(&direct).contains("\"version\": 1,"));
    assert_eq!(spikeforge_model::ir::version_for(Encoding::Frames), 2);
    // A version-1 file cannot use frames; version 3 is from the future.
    let mut v1 = frames.clone();
    v1.version = 1;
    let e = load::from_json(&load::to_json(&v1), Path::new("v1.json")).unwrap_err();
    assert!(
        e.to_string()
            .contains("the \"frames\" input encoding needs IR version 2, found 1"),
        "{e}"
    );
    let mut v3 = frames.clone();
    v3.version = 3;
    let e = load::from_json(&load::to_json(&v3), Path::new("v3.json")).unwrap_err();
    assert!(
        e.to_string().contains("IR version 3 is not supported"),
        "{e}"
    );
    // Frames belong to LIF coding.
    let tsa = random::random_coded_model(
        &arch::parse("8x8x1-4C3-SP2-10C1i8-GAP").unwrap(),
        2,
        1,
        spikeforge_model::ir::Coding::Tsa,
    )
    .unwrap();
    let mut bad = tsa.clone();
    bad.input.encoding = Encoding::Frames;
    bad.version = 2;
    let e = load::from_json(&load::to_json(&bad), Path::new("t.json")).unwrap_err();
    assert!(e.to_string().contains("input.encoding"), "{e}");
    // A wrong byte count says how many frames an image has.
    let g = Golden::new(&frames);
    let e = g.run_batch(&[0; 64], false).unwrap_err();
    assert!(e.to_string().contains("(8×8×1 × 2 frames)"), "{e}");
}

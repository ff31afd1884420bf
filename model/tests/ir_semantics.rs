//! The points of `docs/ir.md` that a reader implementing the IR could otherwise only guess,
//! one test each, on small models written as the JSON the page describes.

use std::path::Path;

use spikeforge_model::golden::{Golden, LayerTrace};
use spikeforge_model::{load, Model};

fn model(json: &str) -> Model {
    load::from_json(json, Path::new("test.json")).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

fn trace(m: &Model, image: &[u8]) -> Vec<LayerTrace> {
    Golden::new(m).run_one(image, true).trace.unwrap()
}

/// A one-layer LIF-coded model over a 1×1×1 input.
fn lif_model(t: u32, lif: &str, weight: i32) -> Model {
    model(&format!(
        r#"{{"format":"spikeforge-hardware-model","version":1,"name":"m",
        "input":{{"height":1,"width":1,"channels":1,"pixel_bits":4,"encoding":"direct"}},
        "time_steps":{t},
        "layers":[
          {{"name":"l0","synapse":{{"kind":"dense","out_features":1}},
            "weights":{{"kind":"integer","bits":4,"values":[{weight}]}},
            "neuron":{lif},"pool":null}},
          {{"name":"l1","synapse":{{"kind":"dense","out_features":1}},
            "weights":{{"kind":"integer","bits":4,"values":[1]}},
            "neuron":{{"kind":"none","bias":[0]}},"pool":null}}],
        "head":{{"kind":"gap_argmax"}}}}"#
    ))
}

/// A TSA-coded model over a 1×1×1 input: `tsa` hidden neuron, then `binary` (or integer)
/// dense readout weights `readout`.
fn tsa_model(t: u32, w0: i32, tsa: &str, readout: &str) -> Model {
    model(&format!(
        r#"{{"format":"spikeforge-hardware-model","version":1,"name":"m",
        "input":{{"height":1,"width":1,"channels":1,"pixel_bits":8,"encoding":"first_step"}},
        "time_steps":{t},
        "layers":[
          {{"name":"l0","synapse":{{"kind":"dense","out_features":1}},
            "weights":{{"kind":"integer","bits":4,"values":[{w0}]}},
            "neuron":{tsa},"pool":null}},
          {{"name":"l1","synapse":{{"kind":"dense","out_features":1}},
            "weights":{readout},
            "neuron":{{"kind":"tsa_readout","bias":[0]}},"pool":null}}],
        "head":{{"kind":"gap_argmax"}}}}"#
    ))
}

#[test]
fn a_dense_layer_outputs_a_1x1_map_of_its_features_over_the_flattened_input() {
    // 2×1×2 input flattened as [y][x][c]: weights [out][y][x][c].
    let m = model(
        r#"{"format":"spikeforge-hardware-model","version":1,"name":"m",
        "input":{"height":2,"width":1,"channels":2,"pixel_bits":4,"encoding":"direct"},
        "time_steps":1,
        "layers":[{"name":"l0","synapse":{"kind":"dense","out_features":3},
          "weights":{"kind":"integer","bits":4,"values":[1,0,0,0, 0,1,0,0, 1,2,3,4]},
          "neuron":{"kind":"none","bias":[0,0,100]},"pool":null}],
        "head":{"kind":"gap_argmax"}}"#,
    );
    // Pixels (y0,c0)=1, (y0,c1)=2, (y1,c0)=3, (y1,c1)=4.
    let t = trace(&m, &[1, 2, 3, 4]);
    let s = t[0].shape;
    assert_eq!((s.height, s.width, s.channels), (1, 1, 3));
    assert_eq!(t[0].values, [1, 2, 1 + 4 + 9 + 16 + 100]);
}

#[test]
fn the_tsa_clamp_applies_at_every_local_step_including_the_silent_ones() {
    // Input −1000 at k = 1 (250 × −4), no positive spike so no negative one either; silent
    // steps k = 2, 3 double u and clamp it at 1024 (4·threshold + 255·4, the least that
    // validation allows): u = −1000, −2000 → −1024, −2048 → −1024. Without the clamp at
    // k > T the last doubling would reach −4000.
    let tsa = r#"{"kind":"tsa","bias":[0],"threshold":[1],"polarity":"+","clamp":[1024],
        "silent":2,"negative":"after_positive"}"#;
    let m = tsa_model(1, -4, tsa, r#"{"kind":"integer","bits":4,"values":[1]}"#);
    let t = trace(&m, &[250]);
    let seen = t[0].membrane_seen.unwrap();
    assert_eq!(seen.lo, -2048, "{seen:?}");
    assert_eq!(t[0].values, [0], "no spike: none positive came first");
}

#[test]
fn a_tsa_polarity_minus_negates_the_current_and_not_the_bias() {
    // acc = 3 at k = 1, bias 5, threshold 3, T = 2. '-': u = −3 + 5 = 2 (no spike), then
    // u = 4 ≥ 3: spike. Had the bias been negated too, u = −8 and nothing fires; with '+',
    // u = 8 fires at once (8 − 6 = 2, then 4 fires again).
    let run = |polarity: &str| {
        let tsa = format!(
            r#"{{"kind":"tsa","bias":[5],"threshold":[3],"polarity":"{polarity}","clamp":[272],
            "silent":0,"negative":"after_positive"}}"#
        );
        let m = tsa_model(2, 1, &tsa, r#"{"kind":"integer","bits":4,"values":[1]}"#);
        trace(&m, &[3])[0].values.clone()
    };
    assert_eq!(run("-"), [0, 1]);
    assert_eq!(run("+"), [1, 1]);
}

#[test]
fn a_tsa_readout_has_bias_only_and_no_polarity_clamp_or_silent_steps() {
    for field in [r#""polarity":"+""#, r#""clamp":[10]"#, r#""silent":1"#] {
        let json = format!(
            r#"{{"format":"spikeforge-hardware-model","version":1,"name":"m",
            "input":{{"height":1,"width":1,"channels":1,"pixel_bits":8,"encoding":"first_step"}},
            "time_steps":1,
            "layers":[{{"name":"l0","synapse":{{"kind":"dense","out_features":1}},
              "weights":{{"kind":"integer","bits":4,"values":[1]}},
              "neuron":{{"kind":"tsa_readout","bias":[0],{field}}},"pool":null}}],
            "head":{{"kind":"gap_argmax"}}}}"#
        );
        let e = load::from_json(&json, Path::new("r.json")).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{field}: {e}");
    }
    // u ← 2u + acc over the T steps, no clamp: the hidden layer fires +1, +1, +1 (input
    // 200 ≥ threshold 1 keeps it saturated), and 7 × 2^k-weighted ones give 1·4 + 1·2 + 1.
    let tsa = r#"{"kind":"tsa","bias":[0],"threshold":[1],"polarity":"+","clamp":[1279],
        "silent":0,"negative":"after_positive"}"#;
    let m = tsa_model(3, 5, tsa, r#"{"kind":"integer","bits":4,"values":[7]}"#);
    let t = trace(&m, &[200]);
    assert_eq!(t[0].values, [1, 1, 1]);
    assert_eq!(t[1].values, [7 * 4 + 7 * 2 + 7], "one value per position");
}

#[test]
fn a_binary_layer_on_signed_inputs_uses_twos_complement_bit_planes() {
    // Ternary inputs −1/0/+1 are 2-bit two's complement on the streams: plane 1 weighs −2.
    // The current is Σ x·w with w = ±1, which is Σ_b s_b·2^b·(2·popcount(x_b ∧ w⁺) −
    // popcount(x_b)) with s_b = −1 for the top plane and +1 below it.
    let m = model(
        r#"{"format":"spikeforge-hardware-model","version":1,"name":"m",
        "input":{"height":1,"width":1,"channels":1,"pixel_bits":8,"encoding":"first_step"},
        "time_steps":1,
        "layers":[
          {"name":"l0","synapse":{"kind":"dense","out_features":6},
            "weights":{"kind":"integer","bits":4,"values":[1,1,1,1,1,1]},
            "neuron":{"kind":"tsa","bias":[0,0,0,0,0,0],"threshold":[1,1,1,1,1,1],
              "polarity":"++++++","clamp":[259,259,259,259,259,259],"silent":0,
              "negative":"always"},"pool":null},
          {"name":"l1","synapse":{"kind":"dense","out_features":2},
            "weights":{"kind":"binary","signs":"a50b"},
            "neuron":{"kind":"tsa_readout","bias":[0,0]},"pool":null}],
        "head":{"kind":"gap_argmax"}}"#,
    );
    let x: [i64; 6] = [1, -1, 0, -1, 1, 1];
    let currents = Golden::new(&m).currents(1, &x, 1);
    // signs "a50b": bytes 0xa5, 0x0b, bits LSB first: 1,0,1,0,0,1,0,1, 1,1,0,1,...
    let bits: Vec<bool> = [0xa5u8, 0x0b]
        .iter()
        .flat_map(|b| (0..8).map(move |i| b >> i & 1 == 1))
        .collect();
    for c in 0..2 {
        let w: Vec<bool> = bits[c * 6..c * 6 + 6].to_vec();
        let direct: i64 = x
            .iter()
            .zip(&w)
            .map(|(x, &p)| if p { *x } else { -x })
            .sum();
        let plane = |b: u32| -> i64 {
            let xb: Vec<bool> = x.iter().map(|&v| (v as u64 >> b) & 1 == 1).collect();
            let agree = xb.iter().zip(&w).filter(|(x, w)| **x && **w).count() as i64;
            let total = xb.iter().filter(|x| **x).count() as i64;
            (2 * agree - total) << b
        };
        assert_eq!(currents[c], direct, "channel {c}");
        assert_eq!(currents[c], plane(0) - plane(1), "channel {c}");
    }
}

#[test]
fn pixel_values_above_pixel_bits_are_an_error_not_masked() {
    let m = lif_model(
        1,
        r#"{"kind":"lif","bias":[0],"threshold":[1],"polarity":"+","leak":{"kind":"none"},
            "reset":"hard","fire":"ge"}"#,
        1,
    );
    let g = Golden::new(&m);
    assert!(g.run_batch(&[15], false).is_ok());
    let e = g.run_batch(&[3, 16], false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "image 1, byte 0: pixel value 16 exceeds the model's 4-bit pixels"
    );
}

#[test]
fn a_negative_threshold_with_subtract_reset_fires_every_step_and_raises_the_membrane() {
    // Threshold −3, no input: v = 0 ≥ −3 fires, v' = v − (−3) = 3; then 3, 6, 9 …
    let lif = r#"{"kind":"lif","bias":[0],"threshold":[-3],"polarity":"+",
        "leak":{"kind":"none"},"reset":"subtract","fire":"ge"}"#;
    let m = lif_model(4, lif, 1);
    let t = trace(&m, &[0]);
    assert_eq!(t[0].values, [1, 1, 1, 1]);
    let seen = t[0].membrane_seen.unwrap();
    assert_eq!(
        (seen.lo, seen.hi),
        (0, 12),
        "v = 0, 3, 6, 9; v' after the last = 12"
    );
    // The width analysis bounds the ramp over the T steps.
    let w = spikeforge_model::widths::analyse(&m).unwrap();
    let bound = w.layers[0].membrane.unwrap();
    assert!(bound.lo <= 0 && bound.hi >= 12, "{bound:?}");
    // Hard reset returns to 0: the same spikes, the membrane stays at 0.
    let hard = lif_model(4, &lif.replace("subtract", "hard"), 1);
    let t = trace(&hard, &[0]);
    assert_eq!(t[0].values, [1, 1, 1, 1]);
    assert_eq!(t[0].membrane_seen.unwrap().hi, 0);
}

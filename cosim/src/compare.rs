//! The comparison of an RTL run with the golden model's traces: every layer's tap stream and
//! the result beats, decoded field by field, with the first divergence named (layer,
//! channel, position, step).

use spikeforge_hdl_gen::Manifest;
use spikeforge_model::{Inference, Model};

/// Raw words the RTL produced.
pub struct RtlRun {
    /// Result beats, `output.tdata_bits` rounded up to 32-bit words each.
    pub out: Vec<u32>,
    /// Per layer, tap beats.
    pub taps: Vec<Vec<u32>>,
    /// Cycles simulated.
    pub cycles: u64,
}

/// Reads `width` bits at `bit` from little-endian words, sign-extending if `signed`.
pub fn field(words: &[u32], bit: usize, width: u32, signed: bool) -> i64 {
    let mut v: u64 = 0;
    for b in 0..width as usize {
        let p = bit + b;
        v |= (((words[p / 32] >> (p % 32)) & 1) as u64) << b;
    }
    if signed && width < 64 && (v >> (width - 1)) & 1 == 1 {
        (v | (!0u64 << width)) as i64
    } else {
        v as i64
    }
}

/// The first place where the RTL and the golden model disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Image index.
    pub image: usize,
    /// Layer index (`None` for the head's class/logits).
    pub layer: Option<usize>,
    /// Layer name, or `head`.
    pub layer_name: String,
    /// Channel (or class).
    pub channel: usize,
    /// Position (row, column) in the layer's output map.
    pub position: (u32, u32),
    /// Time step.
    pub step: u32,
    /// Golden value.
    pub expected: i64,
    /// RTL value.
    pub actual: i64,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "image {}, layer {} ({}), channel {}, position ({}, {}), time step {}: expected {}, RTL gave {}",
            self.image,
            self.layer.map_or("head".into(), |l| l.to_string()),
            self.layer_name,
            self.channel,
            self.position.0,
            self.position.1,
            self.step,
            self.expected,
            self.actual
        )
    }
}

/// Outcome of co-simulating a batch.
#[derive(Debug, Clone)]
pub struct Report {
    /// Images run.
    pub images: usize,
    /// Images whose every tap and result matched.
    pub bit_exact: usize,
    /// Cycles simulated.
    pub cycles: u64,
    /// First divergence, if any.
    pub first_mismatch: Option<Mismatch>,
    /// The RTL's classes per image.
    pub classes: Vec<usize>,
}

/// Compares an RTL run with golden inferences (with traces).
pub fn compare(model: &Model, manifest: &Manifest, golden: &[Inference], rtl: &RtlRun) -> Report {
    let out_words = manifest.output.tdata_bits.div_ceil(32) as usize;
    let mut first: Option<Mismatch> = None;
    let mut exact = 0;
    let mut classes = Vec::with_capacity(golden.len());
    for (i, inf) in golden.iter().enumerate() {
        let mismatch = compare_image(model, manifest, i, inf, rtl, out_words);
        let words = &rtl.out[i * out_words..(i + 1) * out_words];
        classes.push(field(words, 0, manifest.output.class_bits, false) as usize);
        match mismatch {
            None => exact += 1,
            Some(m) if first.is_none() => first = Some(m),
            Some(_) => {}
        }
    }
    Report {
        images: golden.len(),
        bit_exact: exact,
        cycles: rtl.cycles,
        first_mismatch: first,
        classes,
    }
}

fn compare_image(
    model: &Model,
    manifest: &Manifest,
    image: usize,
    inf: &Inference,
    rtl: &RtlRun,
    out_words: usize,
) -> Option<Mismatch> {
    let trace = inf
        .trace
        .as_ref()
        .expect("golden inferences for comparison carry traces");
    for (l, (lm, tr)) in manifest.layers.iter().zip(trace).enumerate() {
        let beats = lm.beats_per_image as usize;
        let groups = (lm.channels / lm.beat_channels) as usize;
        let g = lm.beat_channels as usize;
        let tw = lm.tap_bits.div_ceil(32) as usize;
        for b in 0..beats {
            let beat = &rtl.taps[l][(image * beats + b) * tw..][..tw];
            let (pos, group) = (b / groups, b % groups);
            for step in 0..tr.steps as usize {
                for e in 0..g {
                    let ch = group * g + e;
                    let actual = field(
                        beat,
                        (step * g + e) * lm.value_bits as usize,
                        lm.value_bits,
                        lm.value_signed,
                    );
                    let expected = tr.at(pos, step, ch);
                    if actual != expected {
                        return Some(Mismatch {
                            image,
                            layer: Some(l),
                            layer_name: model.layers[l].name.clone(),
                            channel: ch,
                            position: (
                                (pos / lm.width as usize) as u32,
                                (pos % lm.width as usize) as u32,
                            ),
                            step: step as u32,
                            expected,
                            actual,
                        });
                    }
                }
            }
        }
    }
    let o = &manifest.output;
    let words = &rtl.out[image * out_words..(image + 1) * out_words];
    let head = |channel: usize, expected: i64, actual: i64| Mismatch {
        image,
        layer: None,
        layer_name: "head".into(),
        channel,
        position: (0, 0),
        step: 0,
        expected,
        actual,
    };
    for (c, &e) in inf.logits.iter().enumerate() {
        let a = field(
            words,
            (o.class_bits + c as u32 * o.logit_bits) as usize,
            o.logit_bits,
            true,
        );
        if a != e {
            return Some(head(c, e, a));
        }
    }
    let class = field(words, 0, o.class_bits, false);
    (class != inf.class as i64).then(|| head(inf.class, inf.class as i64, class))
}

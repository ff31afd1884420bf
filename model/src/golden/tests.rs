//! The golden model's neuron tests: methods-spec §2.8's vectors, the TSA clamp lemma, leaks.
use super::*;

#[test]
fn argmax_lowest_index_wins_ties() {
    assert_eq!(argmax(&[1, 3, 3, 2]), 1);
    assert_eq!(argmax(&[-5, -5]), 0);
}

fn tsa(threshold: i32, clamp: i32, silent: u32, negative: NegativeSpikes) -> Tsa {
    Tsa {
        bias: vec![0],
        threshold: vec![threshold],
        polarity: "+".into(),
        clamp: vec![clamp],
        silent,
        negative,
    }
}

/// Spikes of one TSA channel whose whole input `a` arrives at the first step.
fn train(n: &Tsa, t: u32, a: i64) -> (Vec<i64>, i64) {
    let mut out = vec![0; t as usize];
    let (u, _) = run_tsa(n, 0, t, |k| if k == 0 { a } else { 0 }, |m, s| out[m] = s);
    (out, u)
}

/// methods-spec §2.8, first table: β = 2, θ = 1, ternary rounding, input fully known, T = 6.
/// In integers the compare level is θ/2, so θ = 1 is 160 with threshold 80 and no silent
/// step (the pixel layer's case, register C7).
#[test]
fn spec_2_8_float_vectors() {
    let n = tsa(80, 1 << 20, 0, NegativeSpikes::AfterPositive);
    for (a, spikes, decoded) in [
        (0.6, [1, -1, 0, 1, 0, -1], 0.59375),
        (0.75, [1, 0, -1, 0, 0, 0], 0.75),
        (0.3, [0, 1, -1, 0, 1, 0], 0.3125),
        (1.0, [1, 0, 0, 0, 0, 0], 1.0),
        (1.3, [1, 1, -1, 0, 1, 0], 1.3125),
    ] {
        let (got, _) = train(&n, 6, (a * 160.0_f64).round() as i64);
        assert_eq!(got, spikes, "a = {a}");
        let value: f64 = got
            .iter()
            .enumerate()
            .map(|(m, &s)| s as f64 / (1u32 << m) as f64)
            .sum();
        assert_eq!(value, decoded, "a = {a}");
    }
}

/// methods-spec §2.8, the integer single-neuron example: θ_q = 16, one silent step,
/// weights [10, −7, 5], bias 3, T = 6.
#[test]
fn spec_2_8_integer_neuron() {
    let w = [10, -7, 5];
    let inputs = [
        [1, 0, 1],
        [0, 1, -1],
        [1, 1, 0],
        [0, 0, 1],
        [-1, 0, 0],
        [0, 1, 1],
    ];
    let mut n = tsa(16, 2 * 16 + 25, 1, NegativeSpikes::AfterPositive);
    n.bias = vec![3];
    let current = |k: usize| -> i64 { inputs[k].iter().zip(w).map(|(x, w)| x * w).sum() };
    let mut out = vec![0; 6];
    let (u, _) = run_tsa(&n, 0, 6, current, |m, s| out[m] = s);
    assert_eq!(out, [1, 0, -1, 0, 1, -1]);
    assert_eq!(u, 12);
    let decoded: f64 = out
        .iter()
        .enumerate()
        .map(|(m, &s)| 16.0 * s as f64 / (1u32 << m) as f64)
        .sum();
    assert_eq!(decoded, 12.5);
}

/// §2.4: with the whole input known at the first step, `|â − a| ≤ θ·2^−T` for
/// `0 ≤ a ≤ 1.5·θ` (here θ = 160).
#[test]
fn decoded_error_is_within_the_bound() {
    let n = tsa(80, 1 << 20, 0, NegativeSpikes::AfterPositive);
    for t in [4u32, 6, 8] {
        for a in 0..=240i64 {
            let (s, _) = train(&n, t, a);
            let num: i64 = s
                .iter()
                .enumerate()
                .map(|(m, &v)| v << (t as usize - 1 - m))
                .sum();
            // â = 160·num / 2^(t−1); compare 2^(t−1)·|â − a| ≤ 2^(t−1)·160·2^−t = 80.
            let err = (160 * num - (a << (t - 1))).abs();
            assert!(err <= 80, "T = {t}, a = {a}: {s:?}");
        }
    }
}

/// The 1-bit guard keeps the decoded output ≥ 0 (ReLU); without it the neuron codes the
/// identity, negative values included.
#[test]
fn guard_makes_relu_and_always_makes_identity() {
    for a in [-100i64, -60, -30] {
        let (s, _) = train(&tsa(80, 1 << 20, 0, NegativeSpikes::AfterPositive), 6, a);
        assert!(s.iter().all(|&v| v == 0), "a = {a}: {s:?}");
        let (s, _) = train(&tsa(80, 1 << 20, 0, NegativeSpikes::Always), 6, a);
        assert!(s.contains(&-1), "a = {a}: {s:?}");
    }
}

/// The saturation lemma (register C9): clamping at `4θ + M` never changes a spike, while
/// the spec's `2θ + M` does when `M` is small against `θ`.
#[test]
fn lemma_clamp_changes_no_spike() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut spec_bound_failures = 0;
    for trial in 0..2000 {
        let t = rng.gen_range(2..=10);
        let thr = rng.gen_range(1..=40);
        let m: i64 = rng.gen_range(1..=200);
        let inputs: Vec<i64> = (0..t).map(|_| rng.gen_range(-m..=m)).collect();
        let silent = rng.gen_range(0..=2);
        let neg = if rng.gen_bool(0.5) {
            NegativeSpikes::Always
        } else {
            NegativeSpikes::AfterPositive
        };
        let run = |clamp: i64| {
            let mut out = vec![0; t as usize];
            let n = tsa(thr, clamp as i32, silent, neg);
            run_tsa(&n, 0, t, |k| inputs[k], |i, s| out[i] = s);
            out
        };
        assert_eq!(run(4 * thr as i64 + m), run(1 << 30), "trial {trial}");
        spec_bound_failures += (run(2 * thr as i64 + m) != run(1 << 30)) as usize;
    }
    assert!(
        spec_bound_failures > 0,
        "the spec's 2θ + M bound was expected to change spikes in some trial"
    );
}

#[test]
fn leak_shifts_floor_toward_minus_infinity() {
    assert_eq!(leak(Leak::Shift { shift: 2 }, -5), -2);
    assert_eq!(leak(Leak::Shift { shift: 2 }, 5), 1);
    assert_eq!(leak(Leak::Decay { shift: 1 }, -5), -2);
    assert_eq!(leak(Leak::Decay { shift: 1 }, 5), 3);
}

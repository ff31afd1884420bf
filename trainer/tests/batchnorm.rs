//! BatchNorm recalibration: after `recalibrate_bn`, every layer's statistics are the mean and
//! (unbiased) variance of the pre-activations that layer receives in evaluation mode, that is
//! with the layers before it normalised by their own recalibrated statistics.

use spikeforge_trainer::linalg::matmul;
use spikeforge_trainer::net::{random_images, Net};
use spikeforge_trainer::ops::LifConfig;

fn eval_mode_statistics(net: &mut Net, images: &[u8], l: usize) -> (Vec<f64>, Vec<f64>) {
    let f = net.forward(images, false, true);
    let x2 = &f.inputs.as_ref().expect("recorded")[l];
    let (w, _) = net.effective_weights(l);
    let y = matmul(x2.view(), w.t());
    let n = y.nrows() as f64;
    let mean: Vec<f64> = (0..y.ncols())
        .map(|c| y.column(c).iter().map(|&v| v as f64).sum::<f64>() / n)
        .collect();
    let var = (0..y.ncols())
        .map(|c| {
            let m = mean[c];
            y.column(c)
                .iter()
                .map(|&v| (v as f64 - m).powi(2))
                .sum::<f64>()
                / (n - 1.0)
        })
        .collect();
    (mean, var)
}

#[test]
fn recalibrated_statistics_are_those_of_the_evaluation_mode_inputs() {
    for (arch, t) in [
        ("8x8x1-6C3-MP2-8C3-AP2-5-4-GAP", 1),
        ("8x8x2-5C3-AP2-6C3-4C1-GAP", 3),
    ] {
        let mut net = Net::new(arch, t, LifConfig::default(), false, 11).unwrap();
        // Statistics far from the data's, as after a drifting running average.
        for p in &mut net.params {
            if let Some(bn) = p.bn.as_mut() {
                bn.mean.iter_mut().for_each(|m| *m = 3.0);
                bn.var.iter_mut().for_each(|v| *v = 40.0);
            }
        }
        let (h, w, c) = net.input;
        // More images than one internal chunk, so chunked sums are exercised.
        let images = random_images(300, h * w * c, 5);
        net.recalibrate_bn(&images);
        let mut checked = 0;
        for l in 0..net.specs.len() {
            let Some(bn) = net.params[l].bn.clone() else {
                continue;
            };
            let (mean, var) = eval_mode_statistics(&mut net, &images, l);
            for ch in 0..mean.len() {
                let tol = 1e-4 * (1.0 + mean[ch].abs() + var[ch]);
                assert!(
                    (bn.mean[ch] as f64 - mean[ch]).abs() < tol,
                    "{arch}: layer {l} channel {ch}: mean {} against {}",
                    bn.mean[ch],
                    mean[ch]
                );
                assert!(
                    (bn.var[ch] as f64 - var[ch]).abs() < tol,
                    "{arch}: layer {l} channel {ch}: variance {} against {}",
                    bn.var[ch],
                    var[ch]
                );
            }
            checked += 1;
        }
        assert!(checked >= 2, "{arch}: {checked} BatchNorm layers checked");
    }
}

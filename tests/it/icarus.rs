//! The second simulator: generated designs run in Icarus Verilog (the simulator most cocotb
//! users have) with a small hand-written testbench, on real Fashion-MNIST test images, equal
//! to the golden model. Every design of the differential suite also runs two images through
//! Icarus (`differential::check_model`).

use spikeforge_hdl_gen::fold;
use spikeforge_model::arch;
use spikeforge_model::random::random_model;

use crate::util;

/// The first `n` Fashion-MNIST test images, from the Debian package's files.
pub fn fashion_mnist_test_images(n: usize) -> Vec<u8> {
    let dir = std::path::Path::new("/usr/share/datasets/fashion-mnist");
    let split = spikeforge_trainer::data::read_idx_split(
        &dir.join("t10k-images-idx3-ubyte.gz"),
        &dir.join("t10k-labels-idx1-ubyte.gz"),
        10,
    )
    .expect("Fashion-MNIST is installed (dataset-fashion-mnist)");
    split.images[..n * 784].to_vec()
}

#[test]
fn icarus_runs_a_generated_design_on_real_images_bit_exact() {
    let model = random_model(
        &arch::parse("28x28x1-4C3i8-MP2-8C3b-MP2-10C1i8-GAP").unwrap(),
        2,
        util::seed(),
    )
    .unwrap();
    let folding = fold::resolve(&model, &[]).unwrap();
    let design = util::design(&model, &folding);
    let dir = tempfile::tempdir().unwrap();
    util::write(&design, dir.path());
    let images = fashion_mnist_test_images(4);
    util::assert_icarus_matches_golden(dir.path(), &design, &model, &images, "28x28 conv net");
}

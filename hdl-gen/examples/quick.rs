use spikeforge_model::{arch, random};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let a = arch::parse(&args[1]).unwrap();
    let t: u32 = args[2].parse().unwrap();
    let m = random::random_model(&a, t, 1).unwrap();
    let f = spikeforge_hdl_gen::fold::resolve(&m, &[]).unwrap();
    let d = spikeforge_hdl_gen::generate(&m, &f).unwrap();
    spikeforge_hdl_gen::write_design(&d, std::path::Path::new(&args[3])).unwrap();
}

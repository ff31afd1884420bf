//! spikeforge: the command-line front of the toolchain. Orchestration only: every stage lives
//! in a library crate (`spikeforge-model`, `spikeforge-hdl-gen`, `spikeforge-cosim`).

mod cmd;
mod images;
mod settings;

use clap::{Parser, Subcommand};

/// Spiking neural networks to bit-exact, verified FPGA designs.
#[derive(Parser)]
#[command(name = "spikeforge", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the main job end to end on a reference model: model → gen → lint → cosim → synth.
    Demo(cmd::demo::Args),
    /// Trains an ALBSNN on a dataset and exports its integer hardware model.
    Train(Box<cmd::train::Args>),
    /// Trains a ReLU ANN and converts it to a TSA-coded (ternary-spike, CSS) hardware model;
    /// `--sweep 2,4,6,8,12` tabulates accuracy against T.
    Convert(cmd::convert::Args),
    /// Exports a training checkpoint as an integer hardware model.
    Export(cmd::export::Args),
    /// Golden-model (= RTL) accuracy of a hardware model on a dataset's test set.
    Eval(cmd::eval::Args),
    /// Lists the datasets found, checks their files, says how to get missing ones.
    Data(cmd::data::Args),
    /// Builds a valid random model of an architecture (for tests and benchmarks).
    RandomModel(cmd::random_model::Args),
    /// Generates Verilog, ROM images and a manifest for a model.
    Gen(cmd::gen::Args),
    /// Co-simulates the generated RTL against the golden model, bit for bit.
    Cosim(cmd::cosim::Args),
    /// Runs the open FPGA flow (Yosys, nextpnr, icepack/ecppack) on a generated design and
    /// reports resources, Fmax and images/s.
    Synth(cmd::synth::Args),
    /// Runs the golden model on images and prints classes and logits.
    Infer(cmd::infer::Args),
    /// Shows a model's layers, weight storage, datapath widths and cycle estimates.
    Inspect(cmd::inspect::Args),
    /// One self-contained HTML page for a run or design directory: training curves, the
    /// estimator's decisions, the accuracy ladder, spike rates and a spike raster, weight
    /// storage, the synthesis report.
    Report(cmd::report::Args),
    /// Reads and checks an event-camera recording (N-MNIST, AEDAT 3.1, AEDAT 2.0) and its
    /// label segments; says what is in it.
    Events(cmd::events::Args),
    /// Makes converted MNIST: MNIST digits as N-MNIST-style event recordings (three simulated
    /// saccades), for an offline event-data benchmark. Not N-MNIST.
    MnistEvents(cmd::mnist_events::Args),
    /// Lists the external tools spikeforge uses, their versions, and how to install them.
    Doctor(cmd::doctor::Args),
    /// Measures golden-model and co-simulation throughput; writes JSON.
    Bench(cmd::bench::Args),
}

fn main() -> std::process::ExitCode {
    // Like other command-line tools, end quietly when the reader of stdout goes away
    // (`spikeforge gen … | head`) instead of panicking on the failed write.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Training allocates and frees the same large activation buffers every step; glibc would
    // hand each back to the kernel (mmap/munmap) and page-fault it in again, zeroed: about a
    // tenth of a training step. Keep them in the heap instead.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: plain allocator tuning before any allocation-heavy work or thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Events(a) => cmd::events::run(a),
        Command::MnistEvents(a) => cmd::mnist_events::run(a),
        Command::Train(a) => cmd::train::run(*a),
        Command::Convert(a) => cmd::convert::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Data(a) => cmd::data::run(a),
        Command::RandomModel(a) => cmd::random_model::run(a),
        Command::Gen(a) => cmd::gen::run(a),
        Command::Cosim(a) => cmd::cosim::run(a),
        Command::Synth(a) => cmd::synth::run(a),
        Command::Infer(a) => cmd::infer::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Doctor(a) => cmd::doctor::run(a),
        Command::Bench(a) => cmd::bench::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

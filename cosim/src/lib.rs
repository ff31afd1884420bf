//! spikeforge-cosim: builds a generated design with Verilator into a shared library (cached
//! by content hash, locked so parallel builds are safe), streams images through it from Rust
//! and compares every layer's output stream, beat by beat and bit by bit, with the golden
//! model's trace. A mismatch reports the first divergence.
#![warn(missing_docs)]

mod compare;
pub mod harness;

pub use compare::{compare, field, Mismatch, Report, RtlRun};

use spikeforge_model::IoError;
use std::path::{Path, PathBuf};
use std::process::Command;

use libloading::Library;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use spikeforge_hdl_gen::Manifest;
use spikeforge_model::{Golden, Model};
use thiserror::Error;

/// Why co-simulation could not run (a mismatch is a result, not an error).
#[derive(Debug, Error)]
pub enum CosimError {
    /// Verilator is not installed.
    #[error("`{0}` was not found: co-simulation needs Verilator (Debian/Ubuntu: `apt-get install verilator`; run `spikeforge doctor` to check every tool)")]
    VerilatorMissing(String),
    /// Verilator or the C++ compiler failed.
    #[error("building the simulation failed (log: {log}):\n{tail}")]
    Build {
        /// The full build log.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },
    /// File-system trouble.
    #[error(transparent)]
    Io(#[from] spikeforge_model::IoError),
    /// The shared library could not be loaded.
    #[error("loading {path}: {message}")]
    Load {
        /// The library.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The design stopped producing results.
    #[error("the design produced {got} of {expected} results within {cycles} cycles (deadlock?)")]
    Timeout {
        /// Results seen.
        got: u32,
        /// Results expected.
        expected: u32,
        /// Cycle limit.
        cycles: u64,
    },
    /// A layer emitted more beats than its map has positions.
    #[error("a layer tap produced more beats than its output map has positions")]
    TapOverflow,
    /// The serial line carried a malformed byte, or more bytes than images sent.
    #[error("the serial line sent a malformed byte or more class bytes than images")]
    Serial,
    /// Images do not fit the model.
    #[error(transparent)]
    Input(#[from] spikeforge_model::golden::GoldenError),
    /// The RTL directory does not hold a readable design.
    #[error("{path}: {message}")]
    Design {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CosimError + '_ {
    move |error| IoError::at(path)(error).into()
}

/// How to build the simulation.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The Verilator executable.
    pub verilator: String,
    /// Where built libraries are cached (one directory per content hash).
    pub cache_dir: PathBuf,
    /// C++ optimisation level passed to the compiler (`-O0`..`-O3`).
    pub opt: u8,
    /// Build with VCD tracing support.
    pub trace: bool,
}

/// The version line of Verilator, or [`CosimError::VerilatorMissing`].
pub fn verilator_version(verilator: &str) -> Result<String, CosimError> {
    let out = Command::new(verilator)
        .arg("--version")
        .output()
        .map_err(|_| CosimError::VerilatorMissing(verilator.into()))?;
    if !out.status.success() {
        return Err(CosimError::VerilatorMissing(verilator.into()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs `verilator --lint-only -Wall` on a design written to `dir` (synthesis top) and
/// returns what it complained about: empty when the design is lint-clean.
/// Every top is linted: the network top, the UART shell and the board top.
pub fn lint(verilator: &str, dir: &Path, manifest: &Manifest) -> Result<String, CosimError> {
    let mut tops = vec![manifest.top.clone(), manifest.shell.top.clone()];
    tops.extend(manifest.board.as_ref().map(|b| b.top.clone()));
    let mut complaints = String::new();
    for top in tops {
        let out = Command::new(verilator)
            .args(["--lint-only", "-Wall", "--top-module", &top])
            .args(manifest.sources.iter().map(|s| dir.join(s)))
            .output()
            .map_err(|_| CosimError::VerilatorMissing(verilator.into()))?;
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            complaints += &format!("{top}: exit status {:?}\n{text}", out.status.code());
        } else {
            complaints += &text;
        }
    }
    Ok(complaints)
}

/// A built, loaded simulation of one design.
pub struct Simulator {
    lib: Library,
    lib_path: PathBuf,
    manifest: Manifest,
}

type NewFn = unsafe extern "C" fn(*const std::os::raw::c_char) -> *mut std::ffi::c_void;
type FreeFn = unsafe extern "C" fn(*mut std::ffi::c_void);
type RunFn = unsafe extern "C" fn(
    *mut std::ffi::c_void,
    *const u8,
    u32,
    *mut u32,
    *const *mut u32,
    u64,
    u64,
) -> i64;

type SerialRunFn =
    unsafe extern "C" fn(*mut std::ffi::c_void, *const u8, u32, *mut u8, u64, u64) -> i64;

/// Class bytes that came back over the serial line.
#[derive(Debug, Clone)]
pub struct SerialRun {
    /// One per image.
    pub classes: Vec<u8>,
    /// Clock cycles.
    pub cycles: u64,
}

impl Simulator {
    /// Builds (or finds in the cache) and loads the simulation of a design's core, with
    /// every layer tapped.
    pub fn build(
        manifest: &Manifest,
        files: &[(String, Vec<u8>)],
        opts: &BuildOptions,
    ) -> Result<Self, CosimError> {
        let top = SimTop {
            module: manifest.core.clone(),
            harness: harness::source(manifest),
            params: Vec::new(),
        };
        Self::build_top(manifest, files, opts, top)
    }

    /// Builds the simulation of the serial-line top: the UART shell, or the board top when
    /// `board` (which resets itself), at `clks` cycles per UART bit.
    pub fn build_serial(
        manifest: &Manifest,
        files: &[(String, Vec<u8>)],
        opts: &BuildOptions,
        board: bool,
        clks: u32,
    ) -> Result<Self, CosimError> {
        let module = match (&manifest.board, board) {
            (Some(b), true) => b.top.clone(),
            (None, true) => {
                return Err(CosimError::Design {
                    path: "manifest.json".into(),
                    message: "the design has no board top (generate it with `gen --board`)".into(),
                })
            }
            _ => manifest.shell.top.clone(),
        };
        let top = SimTop {
            module,
            harness: harness::uart_source(manifest, !board, clks),
            params: vec![format!(
                "-G{}={clks}",
                spikeforge_hdl_gen::names::CLKS_PER_BIT
            )],
        };
        Self::build_top(manifest, files, opts, top)
    }

    fn build_top(
        manifest: &Manifest,
        files: &[(String, Vec<u8>)],
        opts: &BuildOptions,
        top: SimTop,
    ) -> Result<Self, CosimError> {
        let version = verilator_version(&opts.verilator)?;
        let harness = top.harness.clone();
        let mut h = Sha256::new();
        for (name, data) in files {
            h.update(name.as_bytes());
            h.update((data.len() as u64).to_le_bytes());
            h.update(data);
        }
        h.update(harness.as_bytes());
        h.update(top.module.as_bytes());
        h.update(top.params.concat().as_bytes());
        h.update(version.as_bytes());
        h.update([opts.opt, opts.trace as u8]);
        h.update(make_flags(opts.opt).as_bytes());
        let key: String = h
            .finalize()
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::create_dir_all(&opts.cache_dir).map_err(io(&opts.cache_dir))?;
        let dir = opts.cache_dir.join(&key);
        let lib_path = dir.join("libsim.so");
        // One builder per key; others wait, then find the finished library.
        let lock_path = opts.cache_dir.join(format!("{key}.lock"));
        let lock = std::fs::File::create(&lock_path).map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        if !lib_path.exists() {
            build_into(&dir, manifest, files, &top, opts)?;
        }
        drop(lock);
        // SAFETY: the library is our own harness, built just now from generated sources;
        // its initialisers only set up Verilator's runtime.
        let lib = unsafe { Library::new(&lib_path) }.map_err(|e| CosimError::Load {
            path: lib_path.clone(),
            message: e.to_string(),
        })?;
        Ok(Simulator {
            lib,
            lib_path,
            manifest: manifest.clone(),
        })
    }

    /// The manifest of the simulated design.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Streams `n` images (concatenated bytes) through the design. `stall_seed != 0` inserts
    /// pseudo-random gaps in the input and back-pressure on the output.
    pub fn run(
        &self,
        images: &[u8],
        n: u32,
        stall_seed: u64,
        vcd: Option<&Path>,
    ) -> Result<RtlRun, CosimError> {
        let m = &self.manifest;
        let out_words = m.output.tdata_bits.div_ceil(32) as usize;
        let mut out = vec![0u32; n as usize * out_words];
        let mut taps: Vec<Vec<u32>> = m
            .layers
            .iter()
            .map(|l| {
                vec![
                    0u32;
                    n as usize * l.beats_per_image as usize * l.tap_bits.div_ceil(32) as usize
                ]
            })
            .collect();
        let tap_ptrs: Vec<*mut u32> = taps.iter_mut().map(|t| t.as_mut_ptr()).collect();
        let max_cycles = 1000
            + 20 * (m.latency_cycles + m.cycles_per_image * n as u64)
                * if stall_seed != 0 { 4 } else { 1 };
        let vcd_c =
            vcd.map(|p| std::ffi::CString::new(p.to_string_lossy().as_bytes()).unwrap_or_default());
        // SAFETY: symbols come from the harness generated for this very manifest; every buffer
        // is sized from the same manifest (the harness refuses to write past the tap sizes).
        let vcd_ptr = vcd_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        let cycles = unsafe {
            let run: libloading::Symbol<RunFn> =
                self.lib.get(b"sf_run").map_err(|e| self.load_err(e))?;
            self.with_instance(vcd_ptr, |h| {
                run(
                    h,
                    images.as_ptr(),
                    n,
                    out.as_mut_ptr(),
                    tap_ptrs.as_ptr(),
                    stall_seed,
                    max_cycles,
                )
            })?
        };
        match cycles {
            -1 => Err(CosimError::Timeout {
                got: 0,
                expected: n,
                cycles: max_cycles,
            }),
            -2 => Err(CosimError::TapOverflow),
            c => Ok(RtlRun {
                out,
                taps,
                cycles: c as u64,
            }),
        }
    }

    /// Sends `n` images over the simulated serial line of a simulation built with
    /// [`Simulator::build_serial`] and returns the class bytes that came back.
    /// `gap_seed != 0` leaves random idle gaps between bytes.
    pub fn run_serial(
        &self,
        images: &[u8],
        n: u32,
        gap_seed: u64,
        clks: u32,
    ) -> Result<SerialRun, CosimError> {
        let m = &self.manifest;
        let line = serial_order(m, &images[..m.shell.image_bytes as usize * n as usize]);
        let images: &[u8] = &line;
        let mut classes = vec![0u8; n as usize];
        let per_image = m.shell.image_bytes as u64 * 10 * clks as u64 * 3
            + 20 * (m.latency_cycles + m.cycles_per_image);
        let max_cycles = 10_000 + per_image * n as u64;
        // SAFETY: symbols come from the serial harness generated for this manifest;
        // `classes` holds `n` bytes and the harness writes at most `n`.
        let cycles = unsafe {
            let run: libloading::Symbol<SerialRunFn> =
                self.lib.get(b"sf_uart_run").map_err(|e| self.load_err(e))?;
            self.with_instance(std::ptr::null(), |h| {
                run(
                    h,
                    images.as_ptr(),
                    n,
                    classes.as_mut_ptr(),
                    gap_seed,
                    max_cycles,
                )
            })?
        };
        match cycles {
            -1 => Err(CosimError::Timeout {
                got: 0,
                expected: n,
                cycles: max_cycles,
            }),
            -3 => Err(CosimError::Serial),
            c => Ok(SerialRun {
                classes,
                cycles: c as u64,
            }),
        }
    }

    /// Calls `f` with a fresh instance of the simulation (its own Verilator context), freed
    /// afterwards.
    ///
    /// # Safety
    /// `f` must only pass the handle to this library's functions.
    unsafe fn with_instance<R>(
        &self,
        vcd: *const std::os::raw::c_char,
        f: impl FnOnce(*mut std::ffi::c_void) -> R,
    ) -> Result<R, CosimError> {
        // SAFETY: `sf_new`/`sf_free` are the harness's own constructor and destructor.
        unsafe {
            let new: libloading::Symbol<NewFn> =
                self.lib.get(b"sf_new").map_err(|e| self.load_err(e))?;
            let free: libloading::Symbol<FreeFn> =
                self.lib.get(b"sf_free").map_err(|e| self.load_err(e))?;
            let h = new(vcd);
            let r = f(h);
            free(h);
            Ok(r)
        }
    }

    fn load_err(&self, e: libloading::Error) -> CosimError {
        CosimError::Load {
            path: self.lib_path.clone(),
            message: e.to_string(),
        }
    }
}

/// Images (frames `[step][position][channel]`) in the order the UART shell takes their bytes:
/// beat by beat, each beat's values frame by frame (the manifest's `shell.protocol`). The
/// identity (no copy) for a design whose beats carry one step.
pub fn serial_order<'a>(m: &Manifest, images: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    let steps = m.input.steps as usize;
    if steps == 1 {
        return images.into();
    }
    let beat = (m.input.pixels_per_beat * m.input.channels) as usize;
    let frame = beat * m.input.beats_per_image as usize;
    let mut out = Vec::with_capacity(images.len());
    for image in images.chunks(frame * steps) {
        for b in 0..m.input.beats_per_image as usize {
            for t in 0..steps {
                let from = t * frame + b * beat;
                out.extend_from_slice(&image[from..from + beat]);
            }
        }
    }
    out.into()
}

/// The optimisation levels given to Verilator's make. verilated.mk compiles the model's
/// per-cycle code with `OPT_FAST` (default `-Os`) and the runtime with `OPT_GLOBAL` (`-Os`),
/// both after `-CFLAGS` on the command line, so a level given only as a C flag is overridden.
fn make_flags(opt: u8) -> String {
    format!("OPT_FAST=-O{opt} OPT_GLOBAL=-O{opt}")
}

/// What a simulation is built around.
struct SimTop {
    module: String,
    harness: String,
    /// Extra `-G` parameter overrides.
    params: Vec<String>,
}

fn build_into(
    dir: &Path,
    manifest: &Manifest,
    files: &[(String, Vec<u8>)],
    top: &SimTop,
    opts: &BuildOptions,
) -> Result<(), CosimError> {
    let harness = &top.harness;
    let tmp = dir.with_extension("building");
    let _ = std::fs::remove_dir_all(&tmp);
    let rtl = tmp.join("rtl");
    std::fs::create_dir_all(&rtl).map_err(io(&rtl))?;
    for (name, data) in files {
        std::fs::write(rtl.join(name), data).map_err(io(&rtl))?;
    }
    let cpp = tmp.join("harness.cpp");
    std::fs::write(&cpp, harness).map_err(io(&cpp))?;
    // ROM images are read at run time from the final (renamed) directory.
    let rom_dir = format!(
        "-GROM_DIR=\"{}/rtl/\"",
        std::path::absolute(dir).map_err(io(dir))?.display()
    );
    let mut cmd = Command::new(&opts.verilator);
    cmd.current_dir(&tmp)
        .args([
            "--cc",
            "--exe",
            "--build",
            "-j",
            "2",
            "-Wno-fatal",
            "--x-assign",
            "fast",
            "--x-initial",
            "fast",
        ])
        .args([
            "--prefix",
            harness::PREFIX,
            "--top-module",
            &top.module,
            "-Mdir",
            "obj",
        ])
        .arg(&rom_dir)
        .args(&top.params)
        .args([
            "-CFLAGS",
            &format!("-fPIC -O{}", opts.opt),
            "-MAKEFLAGS",
            &make_flags(opts.opt),
            "-LDFLAGS",
            "-shared",
            "-o",
            "libsim.so",
        ]);
    if opts.trace {
        cmd.args(["--trace", "-CFLAGS", "-DSF_TRACE"]);
    }
    cmd.arg(std::path::absolute(&cpp).map_err(io(&cpp))?);
    for s in &manifest.sources {
        cmd.arg(format!("rtl/{s}"));
    }
    let out = cmd
        .output()
        .map_err(|_| CosimError::VerilatorMissing(opts.verilator.clone()))?;
    let log = tmp.join("build.log");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&log, &text).map_err(io(&log))?;
    let built = tmp.join("obj").join("libsim.so");
    if !out.status.success() || !built.exists() {
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        return Err(CosimError::Build {
            log,
            tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    std::fs::rename(&built, tmp.join("libsim.so")).map_err(io(&built))?;
    let _ = std::fs::remove_dir_all(tmp.join("obj"));
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir).map_err(io(dir))
}

/// Co-simulates `images` (concatenated) on a built design: golden model with traces, RTL
/// run, exact comparison.
pub fn cosimulate(
    model: &Model,
    sim: &Simulator,
    images: &[u8],
    stall_seed: u64,
    vcd: Option<&Path>,
    progress: Progress,
) -> Result<Report, CosimError> {
    let golden = Golden::new(model);
    let n = golden.check_images(images)?;
    let expected = golden.run_batch(images, true)?;
    let rtl = if vcd.is_some() {
        let r = sim.run(images, n as u32, stall_seed, vcd)?;
        progress(n);
        r
    } else {
        run_parallel(sim, images, n, golden.image_len(), stall_seed, progress)?
    };
    Ok(compare(model, sim.manifest(), &expected, &rtl))
}

/// Called with the number of images just finished, from any thread.
pub type Progress<'a> = &'a (dyn Fn(usize) + Sync);

/// Largest number of images one simulation instance runs in one go.
pub const MAX_CHUNK: usize = 512;

/// Runs the images on one simulation instance per thread (each with its own Verilator
/// context) and concatenates the streams in image order.
pub fn run_parallel(
    sim: &Simulator,
    images: &[u8],
    n: usize,
    image_len: usize,
    stall_seed: u64,
    progress: Progress,
) -> Result<RtlRun, CosimError> {
    use rayon::prelude::*;
    // Chunks bound the tap buffers and let progress be reported as they complete.
    let per = n
        .div_ceil(rayon::current_num_threads().max(1))
        .clamp(1, MAX_CHUNK);
    let parts: Vec<RtlRun> = images
        .par_chunks(per * image_len)
        .map(|chunk| {
            let k = chunk.len() / image_len;
            let r = sim.run(chunk, k as u32, stall_seed, None);
            progress(k);
            r
        })
        .collect::<Result<_, _>>()?;
    let mut all = RtlRun {
        out: Vec::new(),
        taps: vec![Vec::new(); sim.manifest().layers.len()],
        cycles: 0,
    };
    for p in parts {
        all.out.extend(p.out);
        for (a, t) in all.taps.iter_mut().zip(p.taps) {
            a.extend(t);
        }
        all.cycles += p.cycles;
    }
    Ok(all)
}

/// The outcome of sending images over the simulated serial line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialReport {
    /// Images sent.
    pub images: usize,
    /// Class bytes equal to the golden model's class.
    pub agree: usize,
    /// The first disagreement: `(image, golden class, byte received)`.
    pub first_mismatch: Option<(usize, u32, u8)>,
    /// Clock cycles of the whole exchange.
    pub cycles: u64,
}

impl SerialReport {
    /// Every class byte matched.
    pub fn passed(&self) -> bool {
        self.agree == self.images
    }
}

/// Sends every image over the serial line of `sim` (built with
/// [`Simulator::build_serial`]), in parallel chunks, and compares each class byte with the
/// golden model.
pub fn cosimulate_serial(
    model: &Model,
    sim: &Simulator,
    images: &[u8],
    gap_seed: u64,
    clks: u32,
    progress: Progress,
) -> Result<SerialReport, CosimError> {
    let golden = Golden::new(model);
    let n = golden.check_images(images)?;
    let expected = golden.run_batch(images, false)?;
    let len = golden.image_len();
    let chunk = n.div_ceil(rayon::current_num_threads().max(1)).clamp(1, 64);
    let runs: Vec<Result<SerialRun, CosimError>> = images
        .par_chunks(chunk * len)
        .enumerate()
        .map(|(i, c)| {
            let k = c.len() / len;
            let seed = if gap_seed == 0 {
                0
            } else {
                gap_seed + i as u64
            };
            let r = sim.run_serial(c, k as u32, seed, clks);
            progress(k);
            r
        })
        .collect();
    let mut classes = Vec::with_capacity(n);
    let mut cycles = 0;
    for r in runs {
        let r = r?;
        classes.extend(r.classes);
        cycles += r.cycles;
    }
    let first_mismatch = expected
        .iter()
        .zip(&classes)
        .enumerate()
        .find(|(_, (e, &c))| e.class as u64 != c as u64)
        .map(|(i, (e, &c))| (i, e.class as u32, c));
    Ok(SerialReport {
        images: n,
        agree: expected
            .iter()
            .zip(&classes)
            .filter(|(e, &c)| e.class as u64 == c as u64)
            .count(),
        first_mismatch,
        cycles,
    })
}

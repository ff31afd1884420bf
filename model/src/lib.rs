//! spikeforge-model: the hardware-model IR at the centre of spikeforge, its validation and
//! bit-width analysis, the compact architecture notation, random models, and the golden
//! model — the bit-exact integer semantics every generated design is checked against.
//!
//! This crate depends on no other spikeforge crate.
#![warn(missing_docs)]

pub mod arch;
pub mod geometry;
pub mod golden;
pub mod io;
pub mod ir;
pub mod load;
pub mod random;
pub mod validate;
pub mod weights;
pub mod widths;

pub use golden::{Golden, Inference, LayerTrace};
pub use io::IoError;
pub use ir::Model;
pub use load::{load, model_hash, save, ModelError};

//! The ALBSNN trainer (methods-spec §1): spiking networks with LIF neurons trained by
//! surrogate gradients through time, layers binary or full precision as an accuracy-loss
//! estimator decides, binary weight optimisation, a global-average-pooling head; and the
//! export of the trained network as an integer hardware model whose golden model (= RTL)
//! accuracy is reported next to the float one. It also trains ReLU ANNs and converts them to
//! TSA-coded spiking networks (CSS, methods-spec §2.6).
//!
//! Written by hand on ndarray, rayon and one gemm wrapper; every backward pass is checked
//! against finite differences in the tests.

pub mod ale;
pub mod average;
pub mod conv;
pub mod convert;
pub mod data;
pub mod distill;
pub mod events;
pub mod export;
pub mod fused;
pub mod linalg;
pub mod net;
pub mod ops;
pub mod optim;
pub mod plot;
pub mod popcount;
pub mod session;
pub mod swa;
pub mod train;

pub use data::{Dataset, Split};
pub use net::Net;
pub use train::{Checkpoint, TrainConfig};

//! The integration tests: one binary, one module per topic.

mod bad_input;
mod cli;
mod differential;
mod events;
mod flow;
mod golden_files;
mod icarus;
mod models;
mod netlist;
mod train;
mod tsa;
mod util;

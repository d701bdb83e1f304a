//! What xtask's binaries and tests share: [`pipeline`], the whole pipeline
//! on this machine (`xtask local`, `show` and `load`, the end-to-end and
//! template tests in `xtask/tests/`, the `bench` binary), and [`scale`], a
//! campaign book at scale and the tools' reads on it. The verbs' command
//! lines are in `main.rs` (xtask) and `bin/bench/` (bench).
#![deny(clippy::too_many_lines)] // no function over 80 lines: clippy.toml

pub mod pipeline;
pub mod scale;

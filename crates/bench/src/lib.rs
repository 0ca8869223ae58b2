//! Plexus benchmarks: the harness behind `plx bench`.

mod cmd_bench;
mod cmd_bench_cluster;

pub use cmd_bench::{run, BenchCmd};

use plexus_client as client;
use plexus_client::home;

/// The paths the benchmarks were written against when they lived in the `plx` crate.
mod cmd_node {
    pub use plexus_client::sign_with;
    pub use plexus_node::threads_per_node;
}

/// See [`cmd_node`].
mod cmd_cluster {
    pub use plexus_client::members;
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! openraft's storage conformance suite, run against the cluster state's redb log store and
//! state machine (a fresh `cluster.redb` in a temporary directory for every case).

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use plexus_cluster::raft::{open_storage, LogStore, StateMachine, TypeConfig};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (log, sm) = open_storage(dir.path(), 0).expect("the cluster state opens");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).expect("the storage passes openraft's suite");
}

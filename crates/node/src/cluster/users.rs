//! `sys.usr`'s registry on the replicated cluster state: a registration, removal or rename
//! is acknowledged once a majority of voters committed it, and every node's kernel follows
//! the replicated registry ([`super::sync_state`]).

use plexus_cluster::raft::{ClusterRaft, Command, Response};
use plexus_identity::PublicKey;
use plexus_kernel::{BoxFuture, Error};
use plexus_services::sys_usr::Registry;

use super::store::raft_error;

/// The cluster-wide user registry.
pub struct ReplicatedUsers {
    pub(crate) raft: ClusterRaft,
}

impl ReplicatedUsers {
    async fn write(&self, cmd: Command) -> Result<(), Error> {
        match self.raft.write(cmd).await.map_err(raft_error)? {
            // The state machine refuses with sys.usr's own codes (`usr.name.taken`…).
            Response::Err { code, message } => Err(Error::new(&code, message)),
            _ => Ok(()),
        }
    }
}

impl Registry for ReplicatedUsers {
    fn add<'a>(&'a self, key: PublicKey, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.write(Command::AddUser {
            name: name.to_owned(),
            key: key.to_bytes(),
        }))
    }

    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.write(Command::RemoveUser {
            name: name.to_owned(),
        }))
    }

    fn rename<'a>(&'a self, name: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.write(Command::RenameUser {
            name: name.to_owned(),
            to: to.to_owned(),
        }))
    }

    fn add_invite(&self, id: [u8; 32], expires_ms: u64) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.write(Command::AddUserInvite { id, expires_ms }))
    }

    fn add_invited<'a>(
        &'a self,
        key: PublicKey,
        name: &'a str,
        invite: [u8; 32],
        now_ms: u64,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.write(Command::AddInvitedUser {
            name: name.to_owned(),
            key: key.to_bytes(),
            invite,
            now_ms,
        }))
    }
}

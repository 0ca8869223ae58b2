//! `sys.usr`'s registry on the replicated cluster state: a registration, removal or rename
//! is acknowledged once a majority of voters committed it, and every node's kernel follows
//! the replicated registry ([`super::sync_state`]).

use plexus_cluster::raft::{ClusterRaft, Command, Response};
use plexus_identity::PublicKey;
use plexus_kernel::{BoxFuture, Error};
use plexus_services::sys_usr::Registry;
use plexus_store::Once;

use super::store::raft_error;

/// The cluster-wide user registry.
pub struct ReplicatedUsers {
    pub(crate) raft: ClusterRaft,
}

impl ReplicatedUsers {
    /// Writes `cmd`, for the signed message `once` if any ([`Command::Once`]).
    async fn write(&self, cmd: Command, once: Option<Once>) -> Result<(), Error> {
        let cmd = match once {
            None => cmd,
            Some(o) => Command::Once {
                once: (o.message, o.time_ms, o.evaluation),
                command: Box::new(cmd),
            },
        };
        match self.raft.write(cmd).await.map_err(raft_error)? {
            // The state machine refuses with sys.usr's own codes (`usr.name.taken`…).
            Response::Err { code, message } => Err(Error::new(&code, message)),
            _ => Ok(()),
        }
    }
}

impl Registry for ReplicatedUsers {
    fn add<'a>(
        &'a self,
        key: PublicKey,
        name: &'a str,
        once: Option<Once>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let cmd = Command::AddUser {
            name: name.to_owned(),
            key: key.to_bytes(),
        };
        Box::pin(self.write(cmd, once))
    }

    fn remove<'a>(&'a self, name: &'a str, once: Option<Once>) -> BoxFuture<'a, Result<(), Error>> {
        let cmd = Command::RemoveUser {
            name: name.to_owned(),
        };
        Box::pin(self.write(cmd, once))
    }

    fn rename<'a>(
        &'a self,
        name: &'a str,
        to: &'a str,
        once: Option<Once>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let cmd = Command::RenameUser {
            name: name.to_owned(),
            to: to.to_owned(),
        };
        Box::pin(self.write(cmd, once))
    }

    fn add_invite(
        &self,
        id: [u8; 32],
        expires_ms: u64,
        once: Option<Once>,
    ) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.write(Command::AddUserInvite { id, expires_ms }, once))
    }

    fn add_invited<'a>(
        &'a self,
        key: PublicKey,
        name: &'a str,
        invite: [u8; 32],
        now_ms: u64,
        once: Option<Once>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let cmd = Command::AddInvitedUser {
            name: name.to_owned(),
            key: key.to_bytes(),
            invite,
            now_ms,
        };
        Box::pin(self.write(cmd, once))
    }
}

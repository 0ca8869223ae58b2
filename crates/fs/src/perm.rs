//! Who may do what to a file or directory: an owner, mode bits without groups, and an admin
//! who may do anything.
//!
//! A mode is the usual nine bits (`0o754`), of which the owner's three apply to the owner and
//! the others' three to every other user: Plexus has no groups, so the group's three are kept
//! as written (and shown) but never decide. Directories follow POSIX: listing one needs `r`,
//! going through it (to anything below) needs `x`, and adding, removing or renaming an entry
//! needs `w` and `x`.

/// What an operation needs of one file or directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read a file, list a directory.
    Read,
    /// Write a file, change a directory's entries.
    Write,
    /// Run a file, go through a directory.
    Exec,
}

impl Access {
    fn bit(self) -> u16 {
        match self {
            Access::Read => 0o4,
            Access::Write => 0o2,
            Access::Exec => 0o1,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Exec => "execute",
        }
    }
}

/// The mode bits a mode may have (`rwxrwxrwx`).
pub const MODE_BITS: u16 = 0o777;

/// Who is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The user's public key.
    pub user: [u8; 32],
    /// Whether the user is the cluster's admin.
    pub admin: bool,
}

/// An access refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} is not {access}able by {who} (mode {mode:03o})")]
pub struct Denied {
    /// What was asked of it.
    pub access: &'static str,
    /// Its description (a path, given by the caller).
    pub what: String,
    /// `its owner` or `other users`.
    pub who: &'static str,
    /// Its mode.
    pub mode: u16,
}

/// Whether `actor` may have `access` to a file or directory owned by `owner` with `mode`;
/// `what` names it in the refusal.
pub fn check(
    actor: &Actor,
    owner: &[u8; 32],
    mode: u16,
    access: Access,
    what: &str,
) -> Result<(), Denied> {
    if actor.admin {
        return Ok(());
    }
    let (bits, who) = if &actor.user == owner {
        ((mode >> 6) & 0o7, "its owner")
    } else {
        (mode & 0o7, "other users")
    };
    if bits & access.bit() != 0 {
        Ok(())
    } else {
        Err(Denied {
            access: access.word(),
            what: what.to_owned(),
            who,
            mode: mode & MODE_BITS,
        })
    }
}

/// `rwxr-x---` for a mode, with `d` or `-` in front for a directory or a file.
pub fn mode_text(mode: u16, dir: bool) -> String {
    let mut text = String::with_capacity(10);
    text.push(if dir { 'd' } else { '-' });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 0o7;
        text.push(if bits & 0o4 != 0 { 'r' } else { '-' });
        text.push(if bits & 0o2 != 0 { 'w' } else { '-' });
        text.push(if bits & 0o1 != 0 { 'x' } else { '-' });
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: [u8; 32] = [1; 32];
    const YOU: [u8; 32] = [2; 32];

    fn actor(user: [u8; 32], admin: bool) -> Actor {
        Actor { user, admin }
    }

    #[test]
    fn owner_bits_for_the_owner_other_bits_for_the_rest_and_admin_for_all() {
        let me = actor(ME, false);
        let you = actor(YOU, false);
        let admin = actor(YOU, true);
        assert!(check(&me, &ME, 0o640, Access::Read, "/a").is_ok());
        assert!(check(&me, &ME, 0o640, Access::Write, "/a").is_ok());
        assert!(check(&me, &ME, 0o640, Access::Exec, "/a").is_err());
        // The group's bits decide nothing.
        let denied = check(&you, &ME, 0o640, Access::Read, "/a").unwrap_err();
        assert_eq!(
            denied.to_string(),
            "/a is not readable by other users (mode 640)"
        );
        assert!(check(&you, &ME, 0o604, Access::Read, "/a").is_ok());
        assert!(check(&admin, &ME, 0o000, Access::Write, "/a").is_ok());
        let own = check(&me, &ME, 0o077, Access::Read, "/a").unwrap_err();
        assert_eq!(own.who, "its owner");
    }

    #[test]
    fn modes_read_as_ls_shows_them() {
        assert_eq!(mode_text(0o754, false), "-rwxr-xr--");
        assert_eq!(mode_text(0o700, true), "drwx------");
        assert_eq!(mode_text(0, false), "----------");
    }
}

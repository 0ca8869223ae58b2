//! Who owns a store entry and who may read or change it. The rules: `docs/storage.md`,
//! "Ownership".

use plexus_units::Path;

use crate::{Once, StoreError};

/// Who loads or saves: the author of the root message, and whether they are an admin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The user's public key.
    pub user: [u8; 32],
    /// Whether the user is an admin (who may read and change every entry).
    pub admin: bool,
}

/// The owner of a top-level entry, and whether the entry is private to them. An entry with
/// no owner recorded (saved before owners were recorded, or the node's seed) belongs to the
/// admins and is public.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The owner's public key.
    pub user: [u8; 32],
    /// Whether only the owner (and admins) may read the entry.
    pub private: bool,
}

/// How a save is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SaveBy {
    /// Who saves.
    pub caller: Caller,
    /// Makes the entry private (`Some(true)`) or public (`Some(false)`); `None` keeps it as
    /// it is (a new entry is public).
    pub private: Option<bool>,
    /// The signed message the save is made for, if any.
    pub once: Option<Once>,
}

impl Caller {
    /// Whether the caller may read an entry with this owner record.
    pub fn may_read(&self, owner: Option<&Owner>) -> bool {
        match owner {
            Some(o) if o.private => self.admin || o.user == self.user,
            _ => true,
        }
    }

    /// The owner record of the top-level entry named by `path[0]` after the caller saves in
    /// it with `private`, given whether the entry exists and its current record; refused with
    /// [`StoreError::Denied`] if the entry exists and belongs to someone else (an entry with
    /// no owner belongs to the admins). A new entry belongs to the caller.
    pub fn save_owner(
        &self,
        path: &Path,
        exists: bool,
        owner: Option<Owner>,
        private: Option<bool>,
    ) -> Result<Option<Owner>, StoreError> {
        if !exists {
            return Ok(Some(Owner {
                user: self.user,
                private: private.unwrap_or(false),
            }));
        }
        if !(self.admin || owner.is_some_and(|o| o.user == self.user)) {
            let entry = path.segments().get(..1).unwrap_or_default().to_vec();
            return Err(StoreError::Denied(
                Path::new(entry).unwrap_or_else(|| path.clone()),
            ));
        }
        Ok(match (owner, private) {
            (Some(o), p) => Some(Owner {
                private: p.unwrap_or(o.private),
                ..o
            }),
            (None, Some(p)) => Some(Owner {
                user: self.user,
                private: p,
            }),
            (None, None) => None,
        })
    }
}

impl Owner {
    /// The record as stored: the key, then 1 for private or 0.
    pub fn to_bytes(&self) -> [u8; 33] {
        let mut b = [0u8; 33];
        b[..32].copy_from_slice(&self.user);
        b[32] = u8::from(self.private);
        b
    }

    /// A stored record; `None` if the bytes are not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Owner> {
        let (user, private) = bytes.split_first_chunk::<32>()?;
        match private {
            [0] => Some(Owner {
                user: *user,
                private: false,
            }),
            [1] => Some(Owner {
                user: *user,
                private: true,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ANN: Caller = Caller {
        user: [1; 32],
        admin: false,
    };
    const BOB: Caller = Caller {
        user: [2; 32],
        admin: false,
    };
    const ADMIN: Caller = Caller {
        user: [9; 32],
        admin: true,
    };

    fn p(t: &str) -> Path {
        Path::parse_dotted(t).unwrap()
    }

    #[test]
    fn new_entries_belong_to_their_creator() {
        let o = ANN.save_owner(&p("a.b"), false, None, None).unwrap();
        assert_eq!(
            o,
            Some(Owner {
                user: ANN.user,
                private: false
            })
        );
        let o = ANN.save_owner(&p("a"), false, None, Some(true)).unwrap();
        assert!(o.unwrap().private);
    }

    #[test]
    fn only_the_owner_or_an_admin_changes_an_entry() {
        let ann = Some(Owner {
            user: ANN.user,
            private: false,
        });
        let e = BOB.save_owner(&p("a.b.c"), true, ann, None).unwrap_err();
        assert!(
            matches!(&e, StoreError::Denied(path) if *path == p("a")),
            "{e}"
        );
        assert_eq!(ANN.save_owner(&p("a.b"), true, ann, None).unwrap(), ann);
        // An admin keeps the owner, and may change the privacy.
        let o = ADMIN.save_owner(&p("a"), true, ann, Some(true)).unwrap();
        assert_eq!(
            o,
            Some(Owner {
                user: ANN.user,
                private: true
            })
        );
        // An entry without an owner is the admins'.
        assert!(ANN.save_owner(&p("seed"), true, None, None).is_err());
        assert_eq!(
            ADMIN.save_owner(&p("seed"), true, None, None).unwrap(),
            None
        );
    }

    #[test]
    fn private_entries_are_read_by_their_owner_and_admins() {
        let private = Owner {
            user: ANN.user,
            private: true,
        };
        assert!(ANN.may_read(Some(&private)));
        assert!(ADMIN.may_read(Some(&private)));
        assert!(!BOB.may_read(Some(&private)));
        assert!(BOB.may_read(None));
        assert!(BOB.may_read(Some(&Owner {
            private: false,
            ..private
        })));
    }

    #[test]
    fn owner_records_round_trip_and_refuse_garbage() {
        for private in [false, true] {
            let o = Owner {
                user: [7; 32],
                private,
            };
            assert_eq!(Owner::from_bytes(&o.to_bytes()), Some(o));
        }
        assert_eq!(Owner::from_bytes(&[0; 32]), None);
        assert_eq!(
            Owner::from_bytes(&[[0; 32].as_slice(), &[2]].concat()),
            None
        );
    }
}

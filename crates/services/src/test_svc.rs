//! Testing aids: `test.echo`, `test.dump`, `test.void`.
//!
//! Changes from vnix:
//!
//! - `test.echo` gives its (evaluated) message as its value; vnix returned the message
//!   unchanged as a *reply*, so only a `{msg:…}` input yielded a value;
//! - `test.dump` shows who sent the message by key as well as by name, the message's size
//!   and BLAKE3 hash of its canonical encoding, and the hash and signature of the signed root
//!   message the call derives from (vnix showed a SHA3 hash and the message's own ECDSA
//!   signature, made by the node with a key it held for the user);
//! - `test.void` evaluates its message (so the streams in it run) and gives no value; vnix's
//!   gave no reply at all.

use std::sync::Arc;

use plexus_kernel::{BoxFuture, Command, Cx, Delivery, Example, Help, Outcome, Service};
use plexus_units::{Map, Unit};

/// The `test.echo` service: gives its message, evaluated, as its value.
pub struct TestEcho {
    help: Help,
}

/// The `test.dump` service: describes the message it receives, unevaluated.
pub struct TestDump {
    help: Help,
}

/// The `test.void` service: evaluates its message and gives no value.
pub struct TestVoid {
    help: Help,
}

/// The `test.echo` service.
pub fn echo() -> Arc<dyn Service> {
    Arc::new(TestEcho {
        help: Help {
            name: "test.echo",
            info: "Test echo service: gives its message, evaluated, as its value",
            tut: vec![
                Example {
                    info: "Echo a unit",
                    com: "{msg:[1 2] x:y}@test.echo",
                    res: Some("{msg:[1 2] x:y}"),
                },
                Example {
                    info: "Streams in the message are evaluated first",
                    com: "[a b@test.echo]@test.echo",
                    res: Some("[a b]"),
                },
            ],
            man: vec![Command {
                name: "echo",
                info: "Any message: gives it back, evaluated",
                forms: &["u"],
            }],
        },
    })
}

/// The `test.dump` service.
pub fn dump() -> Arc<dyn Service> {
    Arc::new(TestDump {
        help: Help {
            name: "test.dump",
            info: "Test dump service: describes the message it receives (not evaluated) and \
                   who sent it",
            // A dump shows the sender's key, so its value differs from user to user: the
            // example discards it with test.void (registered with test.dump), and the
            // manual shows a whole dump.
            tut: vec![Example {
                info: "Dump a message (the dump is discarded here by test.void; sent by admin \
                       from an unsigned test context it reads {ath:admin pub:x\"<admin's \
                       key>\" size:4 hash:`8a9a617d82c25d539335c130b0e4bfe3aafdb215e3e65bab63420db5fbb2499b` \
                       root:`0000…` sig:- msg:hi})",
                com: "hi@test.dump@test.void",
                res: None,
            }],
            man: vec![Command {
                name: "dump",
                info: "Any message, not evaluated: gives {ath (the sender's registered name, \
                       or -) pub (the sender's public key) size (bytes of the message's \
                       canonical encoding) hash (hex BLAKE3 of that encoding) root (hex hash \
                       of the signed root message this call derives from) sig (its signature, \
                       or - when the call did not come from a signed message) msg (the \
                       message)}",
                forms: &["u"],
            }],
        },
    })
}

/// The `test.void` service.
pub fn void() -> Arc<dyn Service> {
    Arc::new(TestVoid {
        help: Help {
            name: "test.void",
            info: "Test void service: evaluates its message and gives no value",
            tut: vec![Example {
                info: "No value",
                com: "[1 2 3]@test.void",
                res: None,
            }],
            man: vec![Command {
                name: "void",
                info: "Any message: evaluates it (its streams run) and gives no value",
                forms: &["u"],
            }],
        },
    })
}

impl Service for TestEcho {
    fn help(&self) -> &Help {
        &self.help
    }

    fn call<'a>(&'a self, _cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { Ok(Some(msg)) })
    }
}

impl Service for TestVoid {
    fn help(&self) -> &Help {
        &self.help
    }

    fn call<'a>(&'a self, _cx: &'a Cx, _msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { Ok(None) })
    }
}

impl Service for TestDump {
    fn help(&self) -> &Help {
        &self.help
    }

    fn delivery(&self) -> Delivery {
        Delivery::Raw
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let bytes = plexus_units::encode(&msg);
            let author = cx.author();
            let mut m = Map::new();
            m.insert(
                Unit::str("ath"),
                cx.kernel()
                    .user_name(author)
                    .map_or(Unit::None, |n| Unit::str(&n)),
            );
            m.insert(Unit::str("pub"), author.to_unit());
            m.insert(Unit::str("size"), Unit::int(bytes.len() as i64));
            m.insert(Unit::str("hash"), Unit::str(&blake3::hash(&bytes).to_hex()));
            m.insert(Unit::str("root"), Unit::str(&hex(cx.root_hash())));
            m.insert(
                Unit::str("sig"),
                cx.root_signature().map_or(Unit::None, |s| {
                    Unit::Bytes(bytes::Bytes::copy_from_slice(s))
                }),
            );
            m.insert(Unit::str("msg"), msg);
            Ok(Some(Unit::Map(m)))
        })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

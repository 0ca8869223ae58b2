//! Key files and public identities: round trips, passphrases, hostile files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plexus_identity::{KdfParams, KeyFile, KeyFileError, KeyKind, Keypair, PublicIdentity};
use rand::rngs::OsRng;

/// Cheap Argon2id parameters so tests stay fast.
fn cheap() -> KdfParams {
    KdfParams::new(8, 1, 1).unwrap()
}

fn keypair(kind: KeyKind, name: &str) -> Keypair {
    Keypair::generate(kind, name, &mut OsRng).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn plain_round_trip_for_users_and_nodes() {
    for (kind, name) in [(KeyKind::User, "alice"), (KeyKind::Node, "lab-3.rack_2")] {
        let kp = keypair(kind, name);
        let file = KeyFile::from_keypair(&kp, None, &mut OsRng).unwrap();
        assert!(!file.is_encrypted());
        assert_eq!(file.kdf_params(), None);
        let text = file.to_text();
        assert_eq!(
            text,
            format!(
                "{{plexus:key kind:{kind} name:{name} public:x\"{}\" secret:x\"{}\"}}",
                hex(kp.public().as_bytes()),
                hex(&kp.secret_bytes()[..])
            )
        );
        let back = KeyFile::parse(&text).unwrap();
        assert_eq!(
            (back.kind(), back.name(), back.public()),
            (kind, name, kp.public())
        );
        let un = back.unlock(None).unwrap();
        assert_eq!(un.public(), kp.public());
        assert_eq!(un.kind(), kind);
        assert_eq!(un.name(), name);
        // A plain file ignores a passphrase.
        assert!(back.unlock(Some("whatever")).is_ok());
        // Surrounding whitespace and a final newline are fine.
        assert!(KeyFile::parse(&format!("\n  {text}\n")).is_ok());
    }
}

#[test]
fn encrypted_round_trip() {
    let kp = keypair(KeyKind::User, "alice");
    let file = KeyFile::from_keypair_with(&kp, Some("tr0ub4dor&3"), cheap(), &mut OsRng).unwrap();
    assert!(file.is_encrypted());
    let text = file.to_text();
    assert!(!text.contains(&hex(&kp.secret_bytes()[..])));
    assert!(text.contains("encrypted:{kdf:argon2id m_cost:8 t_cost:1 p_cost:1 salt:x\""));
    assert!(text.contains(" cipher:xchacha20poly1305 nonce:x\""));
    let back = KeyFile::parse(&text).unwrap();
    assert_eq!(back.to_text(), text);
    assert_eq!(back.kdf_params(), Some(cheap()));
    let un = back.unlock(Some("tr0ub4dor&3")).unwrap();
    assert_eq!(*un.secret_bytes(), *kp.secret_bytes());
    // Fresh salt and nonce every time.
    let again = KeyFile::from_keypair_with(&kp, Some("tr0ub4dor&3"), cheap(), &mut OsRng).unwrap();
    assert_ne!(again.to_text(), text);
}

#[test]
fn default_parameters_are_owasp() {
    let p = KdfParams::default();
    assert_eq!((p.m_kib(), p.t(), p.p()), (19_456, 2, 1));
}

#[test]
fn wrong_or_missing_passphrase() {
    let kp = keypair(KeyKind::User, "alice");
    let file = KeyFile::from_keypair_with(&kp, Some("right"), cheap(), &mut OsRng).unwrap();
    assert_eq!(
        file.unlock(Some("wrong")).unwrap_err(),
        KeyFileError::WrongPassphrase
    );
    assert_eq!(
        file.unlock(Some("")).unwrap_err(),
        KeyFileError::WrongPassphrase
    );
    assert_eq!(
        file.unlock(None).unwrap_err(),
        KeyFileError::PassphraseRequired
    );
    let msg = file.unlock(Some("wrong")).unwrap_err().to_string();
    assert!(msg.contains("wrong passphrase"), "{msg}");
    assert_eq!(
        KeyFile::from_keypair(&kp, Some(""), &mut OsRng).unwrap_err(),
        KeyFileError::EmptyPassphrase
    );
}

#[test]
fn sealed_secret_cannot_move_to_another_file() {
    let a = keypair(KeyKind::User, "alice");
    let b = keypair(KeyKind::User, "alice");
    let fa = KeyFile::from_keypair_with(&a, Some("pw"), cheap(), &mut OsRng)
        .unwrap()
        .to_text();
    let fb = KeyFile::from_keypair_with(&b, Some("pw"), cheap(), &mut OsRng)
        .unwrap()
        .to_text();
    // b's public key with a's sealed secret.
    let cut = |t: &str| t.find(" encrypted:").unwrap();
    let swapped = format!("{}{}", &fb[..cut(&fb)], &fa[cut(&fa)..]);
    let f = KeyFile::parse(&swapped).unwrap();
    assert_eq!(
        f.unlock(Some("pw")).unwrap_err(),
        KeyFileError::WrongPassphrase
    );
    // Changing the KDF parameters changes the key.
    let t2 = fa.replace("t_cost:1", "t_cost:2");
    assert_eq!(
        KeyFile::parse(&t2).unwrap().unlock(Some("pw")).unwrap_err(),
        KeyFileError::WrongPassphrase
    );
}

#[test]
fn secret_must_match_public_key() {
    let a = keypair(KeyKind::User, "alice");
    let b = keypair(KeyKind::User, "alice");
    let text = KeyFile::from_keypair(&a, None, &mut OsRng)
        .unwrap()
        .to_text();
    let forged = text.replace(&hex(a.public().as_bytes()), &hex(b.public().as_bytes()));
    let f = KeyFile::parse(&forged).unwrap();
    assert_eq!(f.unlock(None).unwrap_err(), KeyFileError::SecretMismatch);
}

fn err(text: &str) -> KeyFileError {
    KeyFile::parse(text).unwrap_err()
}

#[test]
fn truncated_files_are_refused() {
    let kp = keypair(KeyKind::User, "alice");
    for pass in [None, Some("pw")] {
        let text = KeyFile::from_keypair_with(&kp, pass, cheap(), &mut OsRng)
            .unwrap()
            .to_text();
        for len in 0..text.len() {
            assert!(
                KeyFile::parse(&text[..len]).is_err(),
                "prefix {len} of {text}"
            );
        }
    }
}

#[test]
fn malformed_files_get_clear_errors() {
    let kp = keypair(KeyKind::User, "alice");
    let plain = KeyFile::from_keypair(&kp, None, &mut OsRng)
        .unwrap()
        .to_text();
    let sealed = KeyFile::from_keypair_with(&kp, Some("pw"), cheap(), &mut OsRng)
        .unwrap()
        .to_text();
    let pk = hex(kp.public().as_bytes());
    let field = |e: KeyFileError| match e {
        KeyFileError::Field { field, .. } => field,
        other => panic!("expected a field error, got {other}"),
    };

    assert!(matches!(err("garbage {"), KeyFileError::Syntax(_)));
    assert!(matches!(err("[1 2 3]"), KeyFileError::NotA { .. }));
    assert!(matches!(err("{a:1}"), KeyFileError::NotA { .. }));
    assert!(matches!(
        err(&plain.replace("plexus:key", "plexus:identity")),
        KeyFileError::NotA { .. }
    ));
    assert_eq!(
        err(&plain.replace(" name:alice", "")),
        KeyFileError::MissingField { field: "name" }
    );
    assert_eq!(
        err(&plain.replace(" name:alice", " name:alice color:blue")),
        KeyFileError::UnknownField {
            field: "color".into()
        }
    );
    assert_eq!(
        field(err(&plain.replace("kind:user", "kind:admin"))),
        "kind"
    );
    assert_eq!(
        field(err(&plain.replace("name:alice", "name:`al ice`"))),
        "name"
    );
    assert_eq!(
        field(err(
            &plain.replace("name:alice", &format!("name:{}", "a".repeat(65)))
        )),
        "name"
    );
    assert_eq!(field(err(&plain.replace("name:alice", "name:7"))), "name");
    assert_eq!(field(err(&plain.replace(&pk, &pk[2..]))), "public");
    assert_eq!(
        field(err(
            &plain.replace(&format!("public:x\"{pk}\""), "public:abc")
        )),
        "public"
    );
    let short_secret = plain.replace("secret:x\"", "secret:x\"00");
    assert_eq!(field(err(&short_secret)), "secret");
    assert_eq!(
        err(&format!(
            "{{plexus:key kind:user name:alice public:x\"{pk}\"}}"
        )),
        KeyFileError::MissingField { field: "secret" }
    );
    let both = plain.replace('}', &sealed[sealed.find(" encrypted:").unwrap()..]);
    assert_eq!(field(err(&both)), "encrypted");

    assert_eq!(
        field(err(&sealed.replace("argon2id", "scrypt"))),
        "encrypted.kdf"
    );
    assert_eq!(
        field(err(&sealed.replace("xchacha20poly1305", "aes"))),
        "encrypted.cipher"
    );
    assert_eq!(
        field(err(&sealed.replace("m_cost:8", "m_cost:-8"))),
        "encrypted.m_cost"
    );
    assert_eq!(
        field(err(
            &sealed.replace("m_cost:8", "m_cost:99999999999999999999999")
        )),
        "encrypted.m_cost"
    );
    assert_eq!(
        field(err(&sealed.replace("t_cost:1", "t_cost:x"))),
        "encrypted.t_cost"
    );
    assert_eq!(
        err(&sealed.replace(" p_cost:1", "")),
        KeyFileError::MissingField {
            field: "encrypted.p_cost"
        }
    );
    let salt_at = sealed.find("salt:x\"").unwrap() + 7;
    let short_salt = format!("{}{}", &sealed[..salt_at], &sealed[salt_at + 2..]); // 15 bytes
    let e = err(&short_salt);
    assert!(
        e.to_string().contains("expected 16 to 64 bytes, found 15"),
        "{e}"
    );
    assert_eq!(field(e), "encrypted.salt");
    assert_eq!(
        field(err(&sealed.replace("nonce:x\"", "nonce:x\"00"))),
        "encrypted.nonce"
    );
    assert_eq!(
        field(err(&sealed.replace("data:x\"", "data:x\"00"))),
        "encrypted.data"
    );
}

/// A crafted file cannot ask for more than 1 GiB, 64 passes or 16 lanes.
#[test]
fn hostile_kdf_parameters_are_refused_before_any_work() {
    let kp = keypair(KeyKind::User, "alice");
    let sealed = KeyFile::from_keypair_with(&kp, Some("pw"), cheap(), &mut OsRng)
        .unwrap()
        .to_text();
    for (from, to) in [
        ("m_cost:8", "m_cost:1048577"),
        ("m_cost:8", "m_cost:4294967295"),
        ("t_cost:1", "t_cost:65"),
        ("t_cost:1", "t_cost:0"),
        ("p_cost:1", "p_cost:17"),
        ("p_cost:1", "p_cost:0"),
        ("m_cost:8 t_cost:1 p_cost:1", "m_cost:8 t_cost:1 p_cost:2"), // m < 8·p
    ] {
        assert!(
            matches!(err(&sealed.replace(from, to)), KeyFileError::KdfParams(_)),
            "{to}"
        );
    }
    // The largest accepted values parse (unlocking them would be slow, so we don't).
    let max = sealed
        .replace("m_cost:8", "m_cost:1048576")
        .replace("t_cost:1", "t_cost:64")
        .replace("p_cost:1", "p_cost:16");
    assert_eq!(
        KeyFile::parse(&max).unwrap().kdf_params(),
        Some(KdfParams::new(1 << 20, 64, 16).unwrap())
    );
    // Oversized input is refused by size.
    let huge = format!("{{plexus:key x:`{}`}}", "a".repeat(100_000));
    assert!(matches!(err(&huge), KeyFileError::Syntax(_)));
}

#[test]
fn public_identity_round_trip_and_errors() {
    let kp = keypair(KeyKind::Node, "node-7");
    let file = KeyFile::from_keypair(&kp, None, &mut OsRng).unwrap();
    let text = file.public_identity();
    assert_eq!(
        text,
        format!(
            "{{plexus:identity kind:node name:node-7 public:x\"{}\"}}",
            hex(kp.public().as_bytes())
        )
    );
    assert_eq!(kp.public_identity(), text);
    let id = PublicIdentity::parse(&text).unwrap();
    assert_eq!(id, file.identity());
    assert_eq!(
        (id.kind(), id.name(), id.public()),
        (KeyKind::Node, "node-7", kp.public())
    );
    assert_eq!(id.to_string(), text);
    assert!(PublicIdentity::try_new(KeyKind::User, "", kp.public()).is_err());
    // A key file is not an identity and vice versa; identities carry no secrets.
    assert!(matches!(
        PublicIdentity::parse(&file.to_text()),
        Err(KeyFileError::NotA { .. })
    ));
    let with_secret = text.replace('}', " secret:x\"00\"}");
    assert!(matches!(
        PublicIdentity::parse(&with_secret),
        Err(KeyFileError::UnknownField { .. })
    ));
}

/// A deterministic "RNG" that counts up from a start byte, to pin test vectors.
struct Counting(u8);

impl rand_core::RngCore for Counting {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.0;
            self.0 = self.0.wrapping_add(1);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for Counting {}

/// The key file test vector of `docs/identity.md`: if this changes, the format changed.
#[test]
fn key_file_test_vector_is_stable() {
    let secret: [u8; 32] = core::array::from_fn(|i| i as u8);
    let kp = Keypair::from_secret_bytes(KeyKind::User, "alice", &secret).unwrap();
    let text = KeyFile::from_keypair_with(&kp, Some("pw"), cheap(), &mut Counting(0))
        .unwrap()
        .to_text();
    let expected = "{plexus:key kind:user name:alice \
        public:x\"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8\" \
        encrypted:{kdf:argon2id m_cost:8 t_cost:1 p_cost:1 \
        salt:x\"000102030405060708090a0b0c0d0e0f\" cipher:xchacha20poly1305 \
        nonce:x\"101112131415161718191a1b1c1d1e1f2021222324252627\" \
        data:x\"3d89aec45f6c1d475787e1ca6a610d231b2516ef3986d887585b2802ef27d0cd\
        2a9935a63866e6a83070bb559854f18a\"}}";
    assert_eq!(text, expected);
    let back = KeyFile::parse(expected)
        .unwrap()
        .unlock(Some("pw"))
        .unwrap();
    assert_eq!(*back.secret_bytes(), secret);
    let plain = KeyFile::from_keypair(&kp, None, &mut Counting(0))
        .unwrap()
        .to_text();
    assert_eq!(
        plain,
        "{plexus:key kind:user name:alice \
         public:x\"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8\" \
         secret:x\"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"}"
    );
}

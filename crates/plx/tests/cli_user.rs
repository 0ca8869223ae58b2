//! `plx user …` and `plx msg …` end to end.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Plx;

#[test]
fn new_user_becomes_current_with_a_private_key_file() {
    let plx = Plx::new();
    let out = plx.run(&["user", "new", "alice"], b"").ok();
    assert!(out.starts_with("created user alice"), "{out}");
    let key = plx.home.path().join("users/alice.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let list = plx.run(&["user", "list"], b"").ok();
    assert!(list.starts_with("* alice"), "{list}");
    plx.run(&["user", "new", "bob"], b"").ok();
    let list = plx.run(&["user", "list"], b"").ok();
    assert!(list.contains("* alice") && list.contains("  bob"), "{list}");
    plx.run(&["user", "use", "bob"], b"").ok();
    let show = plx.run(&["user", "show"], b"").ok();
    assert!(show.starts_with("name        bob (current)"), "{show}");
}

#[test]
fn bad_names_and_duplicates_are_refused() {
    let plx = Plx::new();
    plx.run(&["user", "new", "alice"], b"").ok();
    plx.run(&["user", "new", "alice"], b"").fails();
    plx.run(&["user", "new", "../evil"], b"").fails();
    plx.run(&["user", "new", ""], b"").fails();
    plx.run(&["user", "use", "nobody"], b"").fails();
    plx.run(&["user", "show", "nobody"], b"").fails();
}

#[test]
fn first_signature_creates_a_default_user() {
    let plx = Plx::new();
    let run = plx.run(&["msg", "sign"], b"(neg 5)@math.calc");
    let signed = run.ok();
    assert!(
        run.stderr.contains("created user \"tester\""),
        "{}",
        run.stderr
    );
    let verified = plx.run(&["msg", "verify"], signed.as_bytes());
    assert_eq!(verified.ok(), "(neg 5)@math.calc\n");
    assert!(
        verified.stderr.contains("signed by tester"),
        "{}",
        verified.stderr
    );
}

#[test]
fn tampered_messages_fail_verification() {
    let plx = Plx::new();
    let signed = plx.run(&["msg", "sign"], b"{pay:10}").ok();
    let tampered = signed.replace("pay:10", "pay:99");
    assert_ne!(tampered, signed);
    let err = plx.run(&["msg", "verify"], tampered.as_bytes()).fails();
    assert!(err.contains("signature"), "{err}");
}

#[test]
fn binary_and_hex_forms_verify() {
    let plx = Plx::new();
    let hex = plx.run(&["msg", "sign", "--hex"], b"[1 2 3]").ok();
    assert_eq!(
        plx.run(&["msg", "verify", "--hex"], hex.as_bytes()).ok(),
        "[1 2 3]\n"
    );
    let bin = plx.run(&["msg", "sign", "--binary"], b"[1 2 3]");
    bin.ok();
    assert_eq!(plx.run(&["msg", "verify"], &bin.stdout).ok(), "[1 2 3]\n");
    let mut flipped = bin.stdout.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    plx.run(&["msg", "verify"], &flipped).fails();
}

#[test]
fn export_and_import_carry_a_user_to_another_device() {
    let a = Plx::new();
    a.run(&["user", "new", "carol"], b"").ok();
    let exported = a.run(&["user", "export", "carol"], b"");
    let key_text = exported.ok();
    assert!(exported.stderr.contains("not encrypted"));
    let signed = a.run(&["msg", "sign"], b"hello").ok();

    let b = Plx::new();
    b.run(&["user", "import"], key_text.as_bytes()).ok();
    let verified = b.run(&["msg", "verify"], signed.as_bytes());
    verified.ok();
    assert!(
        verified.stderr.contains("signed by carol"),
        "{}",
        verified.stderr
    );
    // The same user signs on the second device with the same public key.
    let show_a = a.run(&["user", "show", "carol"], b"").ok();
    let show_b = b.run(&["user", "show", "carol"], b"").ok();
    let key_line = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("public key"))
            .unwrap()
            .to_owned()
    };
    assert_eq!(key_line(&show_a), key_line(&show_b));

    let public = a.run(&["user", "export", "--public", "carol"], b"").ok();
    assert!(!public.contains("secret"), "{public}");
    b.run(&["user", "import"], public.as_bytes()).fails();
    b.run(&["user", "import"], b"{garbage").fails();
}

#[test]
fn encrypted_keys_need_the_passphrase() {
    let plx = Plx::new();
    plx.run_env(
        &["user", "new", "dave", "--encrypt"],
        b"",
        &[("PLX_PASSPHRASE", "correct horse")],
    )
    .ok();
    let text = std::fs::read_to_string(plx.home.path().join("users/dave.key")).unwrap();
    assert!(text.contains("encrypted"), "{text}");
    let signed = plx
        .run_env(
            &["msg", "sign"],
            b"1",
            &[("PLX_PASSPHRASE", "correct horse")],
        )
        .ok();
    assert_eq!(plx.run(&["msg", "verify"], signed.as_bytes()).ok(), "1\n");
    let err = plx
        .run_env(&["msg", "sign"], b"1", &[("PLX_PASSPHRASE", "wrong")])
        .fails();
    assert!(err.contains("passphrase"), "{err}");
    // No terminal and no variable: a clear error rather than a hang.
    let err = plx.run(&["msg", "sign"], b"1").fails();
    assert!(err.contains("PLX_PASSPHRASE"), "{err}");
}

#[test]
fn corrupt_key_files_give_clear_errors() {
    let plx = Plx::new();
    plx.run(&["user", "new", "erin"], b"").ok();
    let path = plx.home.path().join("users/erin.key");
    for garbage in [&b""[..], b"{plexus:key}", b"\xff\xfe", b"[[[[[[[["] {
        std::fs::write(&path, garbage).unwrap();
        let err = plx.run(&["msg", "sign", "--user", "erin"], b"1").fails();
        assert!(err.contains("erin.key"), "{err}");
    }
}

//! `plx unit …` end to end.

mod common;

use common::Plx;

#[test]
fn fmt_prints_canonical_form() {
    let plx = Plx::new();
    let out = plx
        .run(
            &["unit", "fmt"],
            b"[ 1  2.50 `a`  'b c' {k : v} ] // comment\n",
        )
        .ok();
    assert_eq!(out, "[1 2.5 a `b c` {k:v}]\n");
}

#[test]
fn fmt_pretty_and_short() {
    let plx = Plx::new();
    let out = plx
        .run(&["unit", "fmt", "--pretty"], b"{say:[x {k:v}]}")
        .ok();
    assert_eq!(out, "{\n  say:[\n    x\n    {\n      k:v\n    }\n  ]\n}\n");
    let out = plx
        .run(&["unit", "fmt", "--short", "2"], b"[abcdef 2 3]")
        .ok();
    assert_eq!(out, "[ab.. 2 ..]\n");
}

#[test]
fn fmt_reads_a_file() {
    let plx = Plx::new();
    let path = plx.home.path().join("in.unit");
    std::fs::write(&path, "(neg 5)@math.calc").unwrap();
    let out = plx.run(&["unit", "fmt", path.to_str().unwrap()], b"").ok();
    assert_eq!(out, "(neg 5)@math.calc\n");
}

#[test]
fn parse_errors_show_a_caret_and_fail() {
    let plx = Plx::new();
    let err = plx.run(&["unit", "fmt"], b"[a b\n  (c d e)]").fails();
    assert!(err.contains("line 2, column 8"), "{err}");
    assert!(err.contains("2 |   (c d e)]"), "{err}");
    assert!(err.contains("  |        ^"), "{err}");
}

#[test]
fn check_reports_kind() {
    let plx = Plx::new();
    let out = plx.run(&["unit", "check"], b"{a:[1 2]}").ok();
    assert!(out.starts_with("ok: map, depth 2"), "{out}");
    plx.run(&["unit", "check"], b"{a:1 a:2}").fails();
}

#[test]
fn check_binary_documents() {
    let plx = Plx::new();
    let encoded = plx.run(&["unit", "encode"], b"{a:[1 2] b:`text`}@svc");
    encoded.ok();
    let out = plx
        .run(&["unit", "check", "--binary"], &encoded.stdout)
        .ok();
    assert_eq!(
        out,
        format!(
            "ok: stream, depth 3, {} bytes encoded\n",
            encoded.stdout.len()
        )
    );
    let out = plx
        .run(&["unit", "check", "--binary", "--hex"], b"01c24142")
        .ok();
    assert_eq!(out, "ok: list, depth 1, 4 bytes encoded\n");
    // A duplicate key, a non-canonical int and a truncated list are refused.
    let err = plx
        .run(&["unit", "check", "--binary", "--hex"], b"01d2816100816100")
        .fails();
    assert!(err.contains("duplicate map key"), "{err}");
    let err = plx
        .run(&["unit", "check", "--binary", "--hex"], b"010405")
        .fails();
    assert!(err.contains("non-canonical"), "{err}");
    let err = plx
        .run(&["unit", "check", "--binary", "--hex"], b"01c241")
        .fails();
    assert!(err.contains("truncated"), "{err}");
    // --hex only goes with --binary.
    plx.run(&["unit", "check", "--hex"], b"01c24142").fails();
}

#[test]
fn encode_decode_round_trip() {
    let plx = Plx::new();
    let text = "{msg:[1 2.5 x\"00ff\" @a.b t -] who:`λ user`}@test.echo:node-b".as_bytes();
    let encoded = plx.run(&["unit", "encode"], text);
    encoded.ok();
    let bin = encoded.stdout;
    let back = plx.run(&["unit", "decode"], &bin).ok();
    assert_eq!(
        back,
        "{msg:[1 2.5 x\"00ff\" @a.b t -] who:`λ user`}@test.echo:node-b\n"
    );
    let hex = plx.run(&["unit", "encode", "--hex"], b"[1 2]").ok();
    assert_eq!(hex, "01c24142\n");
    let back = plx.run(&["unit", "decode", "--hex"], b"01 c2 41 42").ok();
    assert_eq!(back, "[1 2]\n");
}

#[test]
fn decode_rejects_bad_bytes() {
    let plx = Plx::new();
    let err = plx.run(&["unit", "decode", "--hex"], b"01c241").fails();
    assert!(err.contains("truncated"), "{err}");
    let err = plx.run(&["unit", "decode", "--hex"], b"0204").fails();
    assert!(err.contains("version"), "{err}");
    plx.run(&["unit", "decode", "--hex"], b"zz").fails();
    plx.run(&["unit", "decode"], b"").fails();
}

#[test]
fn json_round_trip() {
    let plx = Plx::new();
    let json = plx.run(&["unit", "json"], b"{a:[1 2.5 t -] b:`x`}").ok();
    assert_eq!(json, "{\"a\":[1,2.5,true,null],\"b\":\"x\"}\n");
    let back = plx.run(&["unit", "from-json"], json.as_bytes()).ok();
    assert_eq!(back, "{a:[1 2.5 t -] b:x}\n");
    plx.run(&["unit", "from-json"], b"{\"a\":1,\"a\":2}")
        .fails();
}

#[test]
fn missing_file_and_bad_arguments_fail_cleanly() {
    let plx = Plx::new();
    let err = plx.run(&["unit", "fmt", "/nonexistent/file"], b"").fails();
    assert!(err.contains("cannot open"), "{err}");
    plx.run(&["unit", "fmt", "--indent", "99"], b"1").fails();
    plx.run(&["unit", "nonsense"], b"").fails();
    plx.run(&["--bogus"], b"").fails();
    plx.run(&["unit", "fmt"], &[0xff, 0xfe, 0x00]).fails();
}

#[test]
fn hostile_input_is_refused_quickly() {
    let plx = Plx::new();
    let deep = vec![b'['; 1_000_000];
    let err = plx.run(&["unit", "check"], &deep).fails();
    assert!(err.contains("nesting deeper"), "{err}");
    let digits = vec![b'9'; 100_000];
    let err = plx.run(&["unit", "check"], &digits).fails();
    assert!(err.contains("digits"), "{err}");
}

//! Writes the seed corpus in `seeds/`: a few example units as text, binary and JSON.
//! Run from the `fuzz` directory: `cargo +nightly run --example gen_seeds`.

use std::fs;
use std::path::Path;

use plexus_units::{encode, json, parse, to_pretty, to_text};

const EXAMPLES: &[&str] = &[
    "-",
    "[t f true false 0x00 0x1f 0xff]",
    "[0 -7 63 64 -33 9223372036854775808 -123456789012345678901234567890]",
    "[1.5 -0.5 1.05 1e40 2.5E-3 0.0 -1.5e-7]",
    "[abc #ff0000 λ_#x.y `a b` 'it\\'s' \"q\" `` `123` `t` `0x1f` `\\n\\t\\\\\\u{1F600}`]",
    "[x\"\" x\"00ff\" @a.b.0 @a.`b c`.0]",
    "{mul:[2 {inc:4} (sub (10 3))]}@math.calc",
    "{say:[x {k:v}] nice:2}@io.term:node-b",
    "{k@s:v k2@s:n: v2 (a b):[] [1]:{} 1:one 1.0:dec}",
    "a@b:n@c:`node two`",
    "// comment\n{ a : [ 1 /* two */ 2 ] }",
    "{id:42 name:`Ada Lovelace` tags:[math poet] score:99.5 active:t meta:{born:1815}}",
];

fn write(dir: &Path, i: usize, data: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(format!("seed-{i:02}")), data).unwrap();
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (i, text) in EXAMPLES.iter().enumerate() {
        let u = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        write(&root.join("parse_text"), 2 * i, text.as_bytes());
        write(
            &root.join("parse_text"),
            2 * i + 1,
            to_pretty(&u, 2).as_bytes(),
        );
        write(&root.join("decode_binary"), i, &encode(&u));
        write(&root.join("json"), i, json::to_json(&u).as_bytes());
        assert_eq!(parse(&to_text(&u)).unwrap(), u);
    }
    println!("wrote {} examples to {}", EXAMPLES.len(), root.display());
}

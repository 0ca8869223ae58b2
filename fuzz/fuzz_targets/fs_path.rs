//! Arbitrary bytes as a path of the cluster tree, alone and against a working directory:
//! parsing never panics, and what parses is normalized, within bounds and parses to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_fs::{FsPath, MAX_NAME_BYTES, MAX_PATH_BYTES};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (cwd, rel) = text.split_once('\n').unwrap_or((text, ""));
    for parsed in [
        FsPath::parse(cwd),
        FsPath::parse(cwd).and_then(|dir| dir.resolve(rel)),
    ] {
        let Ok(path) = parsed else { continue };
        let s = path.as_str();
        assert!(s.starts_with('/') && s.len() <= MAX_PATH_BYTES, "{s:?}");
        assert!(path.names().all(|n| {
            !n.is_empty() && n != "." && n != ".." && n.len() <= MAX_NAME_BYTES && !n.contains('\0')
        }));
        assert_eq!(FsPath::parse(s).as_ref(), Ok(&path), "{s:?} parses to itself");
    }
});

//! The program cache behind `--copy`: content-addressed, private, atomic, bounded, runnable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use plexus_proc::{CacheError, ExitStatus, Stream, MAX_PROGRAM_BYTES};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn cached_programs_are_private_and_shared_by_content() {
    let s = supervisor();
    let script = b"#!/bin/sh\necho cached \"$@\"\n";
    let path = s.sup.cache_program(script, None).unwrap();
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        blake3_hex(script)
    );
    assert_eq!(std::fs::read(&path).unwrap(), script);
    assert_eq!(mode(&path), 0o700);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let inode = || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
    let first = inode();
    assert_eq!(
        s.sup.cache_program(script, None).unwrap(),
        path,
        "same bytes, same file"
    );
    // A rewrite would go through a temporary file and a rename: another inode.
    assert_eq!(inode(), first, "not rewritten");
    let other = s
        .sup
        .cache_program(b"#!/bin/sh\necho other\n", None)
        .unwrap();
    assert_ne!(other, path);
    // Only finished files are in the directory.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    s.sup
        .spawn("c", &spec(path.to_str().unwrap(), &["arg"]))
        .await
        .unwrap();
    assert_eq!(s.sup.wait("c").await.unwrap(), ExitStatus::Exited(0));
    assert_eq!(
        s.sup.read_log("c", Stream::Stdout).unwrap(),
        b"cached arg\n"
    );
}

fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[tokio::test]
async fn the_extension_keeps_the_interpreter() {
    let s = supervisor();
    let path = s
        .sup
        .cache_program(b"print('from the cache')\n", Some("py"))
        .unwrap();
    assert_eq!(path.extension().unwrap(), "py");
    s.sup
        .spawn("py", &spec(path.to_str().unwrap(), &[]))
        .await
        .unwrap();
    assert_eq!(s.sup.wait("py").await.unwrap(), ExitStatus::Exited(0));
    assert_eq!(
        s.sup.read_log("py", Stream::Stdout).unwrap(),
        b"from the cache\n"
    );
}

#[tokio::test]
async fn bad_programs_are_refused() {
    let s = supervisor();
    for ext in ["", "a/b", "..", "x.y", &"e".repeat(17)] {
        let err = s.sup.cache_program(b"x", Some(ext)).unwrap_err();
        assert!(
            matches!(err, CacheError::BadExtension(_)),
            "{ext:?}: {err:?}"
        );
    }
    let huge = vec![0u8; MAX_PROGRAM_BYTES + 1];
    let err = s.sup.cache_program(&huge, None).unwrap_err();
    assert!(matches!(err, CacheError::TooLarge { .. }), "{err:?}");
    assert!(
        !s.dir.path().join("state/programs").exists()
            || std::fs::read_dir(s.dir.path().join("state/programs"))
                .unwrap()
                .count()
                == 0
    );
}

//! Properties of paths: any text parses or is refused without panicking, what parses is
//! normalized and within bounds, and resolving is joining then normalizing.

#![allow(clippy::unwrap_used)]

use plexus_fs::{FsPath, MAX_NAME_BYTES, MAX_PATH_BYTES};
use proptest::prelude::*;

/// Path-like text: names, `.`, `..`, empty parts, odd characters.
fn path_text() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        Just(String::new()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        "[a-z]{1,8}",
        "[^/\u{0}]{1,4}",
        Just("\u{0}".to_owned()),
        Just("x".repeat(MAX_NAME_BYTES + 1)),
    ];
    (any::<bool>(), proptest::collection::vec(part, 0..8)).prop_map(|(absolute, parts)| {
        let body = parts.join("/");
        if absolute {
            format!("/{body}")
        } else {
            body
        }
    })
}

proptest! {
    #[test]
    fn what_parses_is_normalized_and_parses_to_itself(text in path_text()) {
        if let Ok(p) = FsPath::parse(&text) {
            let s = p.as_str();
            prop_assert!(s.starts_with('/') && s.len() <= MAX_PATH_BYTES);
            prop_assert!(p.is_root() || !s.ends_with('/'));
            for name in p.names() {
                prop_assert!(!name.is_empty() && name != "." && name != "..");
                prop_assert!(name.len() <= MAX_NAME_BYTES && !name.contains('\0'));
            }
            prop_assert_eq!(FsPath::parse(s).unwrap(), p.clone());
            if let Some((dir, name)) = p.split() {
                prop_assert_eq!(dir.join(name).unwrap(), p);
            }
        }
    }

    #[test]
    fn resolving_is_joining_then_normalizing(cwd in path_text(), rel in path_text()) {
        let Ok(cwd) = FsPath::parse(&cwd) else { return Ok(()) };
        let joined = if rel.starts_with('/') { rel.clone() } else { format!("{cwd}/{rel}") };
        match (cwd.resolve(&rel), FsPath::parse(&joined)) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            // An empty relative path is refused alone, but joins to the directory itself.
            (Err(_), Ok(_)) => prop_assert!(rel.is_empty()),
            (Ok(_), Err(_)) => prop_assert!(joined.len() > MAX_PATH_BYTES),
            (Err(_), Err(_)) => {}
        }
    }
}

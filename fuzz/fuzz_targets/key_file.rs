//! Arbitrary text as a key file or public identity: parsing never panics (unlocking, which runs
//! the memory-hard KDF, is left out), and what parses prints back to something that parses the
//! same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_identity::{KeyFile, PublicIdentity};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = KeyFile::parse(text) {
        let again = KeyFile::parse(&file.to_text()).expect("printed key file parses");
        assert_eq!(again.to_text(), file.to_text());
        let _ = file.kdf_params();
    }
    if let Ok(id) = PublicIdentity::parse(text) {
        assert_eq!(PublicIdentity::parse(&id.to_text()).ok(), Some(id));
    }
});

//! Arbitrary bytes as a process record (what the cluster's log, its snapshots and `node.redb`
//! carry): decoding never panics, and what decodes is valid and survives a round trip. (Not
//! necessarily canonical: postcard accepts overlong varints; stores re-encode what they keep.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_store::procs::PROC_ENCODING;
use plexus_store::ProcRecord;

fuzz_target!(|data: &[u8]| {
    // As given, and behind the right version byte (so most inputs reach postcard).
    let mut framed = vec![PROC_ENCODING];
    framed.extend_from_slice(data);
    for input in [data, framed.as_slice()] {
        if let Ok(record) = ProcRecord::decode(input) {
            assert!(record.validate().is_ok());
            assert_eq!(ProcRecord::decode(&record.encode()).ok(), Some(record));
        }
    }
});

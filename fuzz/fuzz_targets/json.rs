//! Arbitrary bytes as JSON: reading never panics, and whatever reads writes back to JSON that
//! reads to the same unit (compact and pretty).
#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_units::json::{from_json, to_json, to_json_pretty};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(u) = from_json(text) else {
        return;
    };
    let json = to_json(&u);
    match from_json(&json) {
        Ok(back) => assert_eq!(back, u, "JSON round trip of {json}"),
        Err(e) => panic!("written JSON {json} does not read: {e}"),
    }
    let pretty = to_json_pretty(&u);
    match from_json(&pretty) {
        Ok(back) => assert_eq!(back, u, "pretty JSON round trip of {pretty}"),
        Err(e) => panic!("written pretty JSON {pretty} does not read: {e}"),
    }
    // Also through the other forms.
    assert_eq!(
        plexus_units::decode(&plexus_units::encode(&u)).as_ref(),
        Ok(&u)
    );
});

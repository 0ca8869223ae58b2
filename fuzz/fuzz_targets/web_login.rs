//! Arbitrary text as a web login token (`POST /api/login`): reading and checking it never
//! panics, nothing unsigned is accepted, and a token that decodes encodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_web::login::{Logins, Token, PREFIX};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for candidate in [text.to_owned(), format!("{PREFIX}{text}")] {
        if let Ok(token) = Token::decode(&candidate) {
            assert_eq!(Token::decode(&token.encode()).ok(), Some(token.clone()));
            let now = token.claims.expires_ms.saturating_sub(1);
            let accepted = Logins::new(&token.claims.desktop).accept(&candidate, now);
            // Only a real signature by the token's user opens a session.
            assert!(accepted.is_err() || token.check(&token.claims.desktop, now).is_ok());
        }
    }
});

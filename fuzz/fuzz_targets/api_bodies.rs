//! Any bytes as a JSON API request body, through the public report parser and every
//! command parser: no panic, refusals name their fields, accepted commands keep the text
//! rules and read back from their stored JSON (checked in `avvik::web::commands::fuzz_api_body`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avvik::web::commands::fuzz_api_body(data);
});

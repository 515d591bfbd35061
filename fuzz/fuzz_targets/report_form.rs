//! Any bytes as a posted report form (`application/x-www-form-urlencoded`), read as the
//! handler reads them, through the form parser and the report rules: no panic, and every
//! outcome keeps the parser's promises (checked in `avvik::web::report_input::fuzz_report_form`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avvik::web::report_input::fuzz_report_form(data);
});

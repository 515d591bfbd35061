//! Any bytes as an NDJSON export, through the chain checks of `avvik import` and
//! `avvik verify` (`verify_export`, `ChainChecker`), the import's counter recovery and the
//! register fold: no panic, and the walks agree (checked in `avvik::cli::fuzz_import`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avvik::cli::fuzz_import(data);
});

//! Any bytes through the e-mail intake parser: no panic, no hang, bounded output.
#![no_main]

use avvik::intake::parse::{Limits, Verdict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_message_bytes: 64 * 1024,
        max_attachment_bytes: 16 * 1024,
    };
    let a = avvik::intake::fuzz_target(data, &limits);
    if let Verdict::Accept(acc) = &a.verdict {
        assert!(!acc.title.is_empty() && acc.title.chars().count() <= 200);
        assert!(!acc.description.is_empty() && acc.description.chars().count() <= 20_000);
        // The whole text of a long body is kept as an attachment of avvik's own making,
        // bounded by the message size rather than the attachment limit.
        assert!(acc
            .attachments
            .iter()
            .filter(|x| x.filename != avvik::intake::parse::FULL_TEXT_NAME)
            .all(|x| x.bytes.len() <= limits.max_attachment_bytes));
        assert!(acc
            .attachments
            .iter()
            .all(|x| !x.filename.contains('/') && !x.filename.contains('\\')));
    }
});

//! Text out of a parsed message: bodies in unknown charsets, HTML as text, forwarded
//! messages summed up, 8-bit headers, and the line and length rules every text taken
//! from mail goes through. Pure functions, no I/O, no panics on any input.

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::parse::{HTML_RENDER_MAX, HTML_WIDTH, TITLE_MAX};

/// A header sent as raw 8-bit bytes that are not UTF-8 (old Outlook, scanners and
/// printers that mail) comes out of mail-parser with U+FFFD for each such byte. Read those
/// bytes in the charset the message declares for its text, or else Windows-1252, and let
/// mail-parser decode the result (encoded words may sit in it too) as an unstructured
/// header. `None` when the header is absent or valid UTF-8 (then mail-parser's reading
/// stands).
pub(super) fn raw_8bit_header(msg: &Message<'_>, name: &str) -> Option<String> {
    use mail_parser::decoders::charsets::map::charset_decoder;
    let h = msg
        .headers()
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))?;
    let raw = msg
        .raw_message()
        .get(h.offset_start as usize..h.offset_end as usize)?;
    if std::str::from_utf8(raw).is_ok() {
        return None;
    }
    // The declared charset of the message, or of its first text part (a multipart's own
    // Content-Type names none). UTF-8 is what the bytes just failed to be.
    let declared = std::iter::once(msg.content_type())
        .chain(msg.parts.iter().map(|p| p.content_type()))
        .flatten()
        .find_map(|c| c.attribute("charset"))
        .filter(|c| !c.eq_ignore_ascii_case("utf-8") && !c.eq_ignore_ascii_case("utf8"));
    let decode = declared
        .and_then(|c| charset_decoder(c.as_bytes()))
        .or_else(|| charset_decoder(b"windows-1252"))?;
    let text = decode(raw);
    let one_header = format!("Subject: {}\r\n\r\n", text.trim());
    let parsed = MessageParser::default().parse_headers(one_header.as_bytes())?;
    parsed.subject().map(str::to_string)
}

/// All text bodies (HTML-only parts converted to text by mail-parser), in order.
pub(super) fn body_text(msg: &Message<'_>) -> String {
    let mut out = String::new();
    for part in msg.text_bodies() {
        let text = match &part.body {
            PartType::Text(t) if t.contains('\u{FFFD}') => {
                unknown_charset_text(msg, part).unwrap_or_else(|| t.to_string())
            }
            PartType::Text(t) => t.to_string(),
            PartType::Html(h) => html_to_text(h),
            _ => continue,
        };
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&text);
    }
    out
}

/// A text part in a charset mail-parser does not know (`unknown-8bit`, typos) was decoded
/// as UTF-8 with replacement characters. Most such mail here is Windows-1252: decode the
/// part's bytes (transfer encoding undone by mail-parser's decoders) as that instead.
pub(super) fn unknown_charset_text(msg: &Message<'_>, part: &MessagePart<'_>) -> Option<String> {
    use mail_parser::decoders::{base64, charsets, quoted_printable};
    let charset = part.content_type()?.attribute("charset")?;
    if charsets::map::charset_decoder(charset.as_bytes()).is_some() {
        return None;
    }
    let start = part.raw_body_offset() as usize;
    let end = part.raw_end_offset() as usize;
    let raw = msg.raw_message().get(start..end.max(start))?;
    let bytes = match part
        .content_transfer_encoding()
        .map(|e| e.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("quoted-printable") => quoted_printable::quoted_printable_decode(raw)?,
        Some("base64") => base64::base64_decode(raw)?,
        _ => raw.to_vec(),
    };
    match String::from_utf8(bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            let decode = charsets::map::charset_decoder(b"windows-1252")?;
            Some(decode(e.as_bytes()))
        }
    }
}

/// HTML as readable text: blocks on their own lines, scripts and styles dropped, link
/// targets kept as numbered references (they matter in phishing reports).
pub(super) fn html_to_text(html: &str) -> String {
    if html.len() > HTML_RENDER_MAX {
        return mail_parser::decoders::html::html_to_text(html);
    }
    html2text::config::plain()
        .string_from_read(html.as_bytes(), HTML_WIDTH)
        .unwrap_or_else(|_| mail_parser::decoders::html::html_to_text(html))
}

pub(super) fn forwarded_summary(inner: &Message<'_>) -> String {
    let mut s = String::from("\n\n--- Bifogat meddelande ---\n");
    if let Some(f) = inner.from().and_then(|a| a.first()) {
        let who = match (f.name(), f.address()) {
            (Some(n), Some(a)) => format!("{n} <{a}>"),
            (None, Some(a)) => a.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        };
        s.push_str(&format!("Från: {}\n", bounded_line(&who, 300)));
    }
    if let Some(sub) = inner.subject() {
        s.push_str(&format!("Ämne: {}\n", bounded_line(sub, TITLE_MAX)));
    }
    s.push('\n');
    s.push_str(&body_text(inner));
    s
}

/// One line: control characters and runs of white space become one space; bounded.
pub(crate) fn bounded_line(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars * 4));
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() || c.is_control() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    truncate_chars(&out, max_chars)
}

/// Text for people: `\n` line ends, no control characters but tabs, no trailing blanks.
pub(super) fn clean_text(s: &str) -> String {
    let s = s.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<String> = s
        .split('\n')
        .map(|line| {
            line.chars()
                .filter(|c| *c == '\t' || !c.is_control())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect();
    let mut out = lines.join("\n");
    // At most one empty line in a row.
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    out.trim().to_string()
}

pub(super) fn truncate_chars(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// A reply's own words: the text before the quoted original (an attribution line such as
/// "Den ... skrev:" or "On ... wrote:", Outlook's "-----Original Message-----" or a
/// "Från:"/"From:" header block) and without trailing `>` lines.
pub fn strip_quoted(body: &str) -> String {
    let lines: Vec<&str> = body.lines().collect();
    let mut end = lines.len();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        let lower = t.to_lowercase();
        let attribution = (lower.starts_with("den ") || lower.starts_with("on "))
            && (lower.contains(" skrev") || lower.contains(" wrote"))
            && lower.ends_with(':');
        let separator = lower.starts_with("-----original message")
            || lower.starts_with("-----ursprungligt meddelande")
            || lower.starts_with("________________________________");
        let header_block = (lower.starts_with("från:") || lower.starts_with("from:"))
            && lines.get(i + 1).is_some_and(|next| {
                let n = next.trim().to_lowercase();
                n.starts_with("skickat:") || n.starts_with("sent:") || n.starts_with("datum:")
            });
        if attribution || separator || header_block {
            end = i;
            break;
        }
    }
    let mut kept = &lines[..end];
    while let Some((last, rest)) = kept.split_last() {
        let t = last.trim();
        if t.is_empty() || t.starts_with('>') {
            kept = rest;
        } else {
            break;
        }
    }
    kept.join("\n")
}

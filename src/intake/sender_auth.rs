//! Is an e-mail's From address its real sender? avvik does not check DKIM or SPF
//! itself: it takes the verdict the receiving MTA wrote in an `Authentication-Results`
//! header (RFC 8601), and only from an MTA whose `authserv-id` is configured as trusted
//! (`intake.trusted_authserv_ids`; empty, the default, trusts nothing, so all mail counts as
//! unverified). The sender counts as verified when that header says
//! - `dmarc=pass` with `header.from` the From domain, or
//! - `dkim=pass` with a signing domain `header.d` aligned with the From domain (the same
//!   domain, or a parent domain of it — DMARC's relaxed alignment), or
//! - `spf=pass` with `smtp.mailfrom` in the From domain itself (SPF alone checks the
//!   envelope sender; only when that is the From domain does it say anything about From).
//!
//! Only the topmost header naming a trusted `authserv-id` counts: the MTA prepends its own
//! and must remove any that arrive with its id (RFC 8601 section 5), so a header added
//! below it by the sender is never believed.

/// One `method=result` with its properties (`ptype.property=value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodResult {
    pub method: String,
    pub result: String,
    pub props: Vec<(String, String)>,
}

impl MethodResult {
    fn prop(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One parsed `Authentication-Results` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResults {
    pub authserv_id: String,
    pub results: Vec<MethodResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    Word(&'a str),
    Quoted(usize),
    Eq,
    Semi,
}

/// Splits a header value into RFC 8601 tokens: comments (nested, with quoted-pairs)
/// dropped, quoted strings unescaped, `=` and `;` separate. `None` when it is malformed
/// (an unclosed comment or quoted string).
fn tokens(value: &str) -> Option<(Vec<Tok<'_>>, Vec<String>)> {
    let mut out = Vec::new();
    let mut quoted = Vec::new();
    let mut chars = value.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {}
            '(' => {
                let mut depth = 1usize;
                while depth > 0 {
                    match chars.next()?.1 {
                        '\\' => {
                            chars.next()?;
                        }
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                }
            }
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next()?.1 {
                        '\\' => s.push(chars.next()?.1),
                        '"' => break,
                        other => s.push(other),
                    }
                }
                out.push(Tok::Quoted(quoted.len()));
                quoted.push(s);
            }
            '=' => out.push(Tok::Eq),
            ';' => out.push(Tok::Semi),
            _ => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, d)) = chars.peek() {
                    if " \t\r\n()\";=".contains(d) {
                        break;
                    }
                    end = j + d.len_utf8();
                    chars.next();
                }
                out.push(Tok::Word(&value[i..end]));
            }
        }
    }
    Some((out, quoted))
}

/// The `authserv-id` a header names (its first token), without parsing the rest.
fn authserv_id_of(value: &str) -> Option<String> {
    let (toks, quoted) = tokens(value).unwrap_or_default();
    match toks.first() {
        Some(Tok::Word(w)) => Some((*w).to_string()),
        Some(Tok::Quoted(n)) => Some(quoted[*n].clone()),
        _ => {
            // Malformed further on: the id is still the first word.
            let w = value
                .trim_start()
                .split([' ', '\t', '\r', '\n', ';', '('])
                .next()?;
            (!w.is_empty()).then(|| w.to_string())
        }
    }
}

/// Parses one header value (after the colon, unfolded or not). `None` when it does not
/// follow RFC 8601's grammar well enough to be believed.
pub fn parse(value: &str) -> Option<AuthResults> {
    let (toks, quoted) = tokens(value)?;
    let text = |t: &Tok<'_>| -> Option<String> {
        match t {
            Tok::Word(w) => Some((*w).to_string()),
            Tok::Quoted(n) => Some(quoted[*n].clone()),
            _ => None,
        }
    };
    // The statements between semicolons.
    let mut parts = toks.split(|t| *t == Tok::Semi);
    let head = parts.next()?;
    // authserv-id [ authres-version ]
    let authserv_id = match head {
        [id] | [id, Tok::Word(_)] => text(id)?,
        _ => return None,
    };
    if authserv_id.is_empty() {
        return None;
    }
    let mut results = Vec::new();
    for part in parts {
        match part {
            [] => continue,
            [Tok::Word(w)] if w.eq_ignore_ascii_case("none") => continue,
            [Tok::Word(method), Tok::Eq, Tok::Word(result), rest @ ..] => {
                let method = method
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                let mut props = Vec::new();
                let mut rest = rest;
                while let [key, Tok::Eq, val, more @ ..] = rest {
                    let key = match key {
                        Tok::Word(k) => k.to_ascii_lowercase(),
                        _ => return None,
                    };
                    let val = text(val)?;
                    if key != "reason" {
                        props.push((key, val));
                    }
                    rest = more;
                }
                if !rest.is_empty() {
                    return None;
                }
                results.push(MethodResult {
                    method,
                    result: result.to_ascii_lowercase(),
                    props,
                });
            }
            _ => return None,
        }
    }
    Some(AuthResults {
        authserv_id,
        results,
    })
}

/// The domain of an address or `@domain` value, lower-cased.
fn domain_of(v: &str) -> String {
    v.rsplit('@')
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// DMARC relaxed alignment, without a public-suffix list: the same domain, or `from` a
/// subdomain of `signer` where `signer` has at least two labels.
fn aligned(signer: &str, from: &str) -> bool {
    !signer.is_empty()
        && (signer == from || (signer.contains('.') && from.ends_with(&format!(".{signer}"))))
}

/// What the trusted MTA said about the From address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated: by which method.
    Verified(&'static str),
    /// Not authenticated, with a reason for the log.
    Unverified(&'static str),
}

impl Verdict {
    pub fn is_verified(&self) -> bool {
        matches!(self, Verdict::Verified(_))
    }
}

/// `headers`: the raw `Authentication-Results` values, topmost first; `from`: the From
/// address; `trusted`: the configured `authserv-id`s.
pub fn verify(headers: &[String], from: &str, trusted: &[String]) -> Verdict {
    if trusted.is_empty() {
        return Verdict::Unverified("no trusted authserv-id is configured");
    }
    let from_domain = domain_of(from);
    if from_domain.is_empty() {
        return Verdict::Unverified("the From address has no domain");
    }
    let is_trusted = |h: &&String| {
        authserv_id_of(h).is_some_and(|id| trusted.iter().any(|t| t.eq_ignore_ascii_case(&id)))
    };
    let Some(topmost) = headers.iter().find(is_trusted) else {
        return Verdict::Unverified("no Authentication-Results from a trusted authserv-id");
    };
    let Some(ar) = parse(topmost) else {
        return Verdict::Unverified("the trusted Authentication-Results header does not parse");
    };
    for r in ar.results.iter().filter(|r| r.result == "pass") {
        match r.method.as_str() {
            "dmarc" if r.prop("header.from").map(domain_of).as_deref() == Some(&from_domain) => {
                return Verdict::Verified("dmarc")
            }
            "dkim"
                if r.prop("header.d")
                    .or_else(|| r.prop("header.i"))
                    .is_some_and(|d| aligned(&domain_of(d), &from_domain)) =>
            {
                return Verdict::Verified("dkim")
            }
            "spf" if r.prop("smtp.mailfrom").map(domain_of).as_deref() == Some(&from_domain) => {
                return Verdict::Verified("spf")
            }
            _ => {}
        }
    }
    Verdict::Unverified("no aligned dkim, dmarc or spf pass for the From domain")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_rfc_8601_examples() {
        let r = parse(
            " example.com (a comment; with a semicolon);\r\n\tdkim=pass (good signature) header.d=kommunen.se header.s=\"sel;1\";\r\n spf=fail smtp.mailfrom=x@evil.example; dmarc = pass header.from = kommunen.se",
        )
        .unwrap();
        assert_eq!(r.authserv_id, "example.com");
        assert_eq!(r.results.len(), 3);
        assert_eq!(r.results[0].method, "dkim");
        assert_eq!(r.results[0].prop("header.s"), Some("sel;1"));
        assert_eq!(r.results[1].result, "fail");
        assert_eq!(r.results[2].prop("header.from"), Some("kommunen.se"));
        let none = parse("mx.kommunen.se 1; none").unwrap();
        assert!(none.results.is_empty());
        assert_eq!(parse("mx.example; dkim=pass (unclosed"), None);
        assert_eq!(parse("mx.example; dkim pass"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn only_a_trusted_aligned_pass_verifies() {
        let trusted = t(&["mx.kommunen.se"]);
        let from = "ciso@kommunen.se";
        let ok = |h: &[&str]| verify(&t(h), from, &trusted).is_verified();
        assert!(ok(&["mx.kommunen.se; dkim=pass header.d=kommunen.se"]));
        assert!(ok(&["MX.Kommunen.SE; dmarc=pass header.from=kommunen.se"]));
        assert!(ok(&[
            "mx.kommunen.se; spf=pass smtp.mailfrom=ciso@kommunen.se"
        ]));
        // The signer a parent of the From domain: aligned; an unrelated one: not.
        assert!(verify(
            &t(&["mx.kommunen.se; dkim=pass header.d=kommunen.se"]),
            "a@it.kommunen.se",
            &trusted
        )
        .is_verified());
        assert!(!ok(&["mx.kommunen.se; dkim=pass header.d=evil.example"]));
        assert!(!ok(&["mx.kommunen.se; dkim=pass header.d=se"]));
        assert!(!ok(&["mx.kommunen.se; dkim=fail header.d=kommunen.se"]));
        assert!(!ok(&[
            "mx.kommunen.se; spf=pass smtp.mailfrom=x@evil.example"
        ]));
        // Another authserv-id, or none trusted at all.
        assert!(!ok(&["evil.example; dkim=pass header.d=kommunen.se"]));
        assert!(!verify(
            &t(&["mx.kommunen.se; dkim=pass header.d=kommunen.se"]),
            from,
            &[]
        )
        .is_verified());
        // Only the topmost trusted header counts: one below it claiming a pass does not.
        assert!(!ok(&[
            "mx.kommunen.se; dkim=none",
            "mx.kommunen.se; dkim=pass header.d=kommunen.se"
        ]));
        // A malformed trusted header is not skipped for one below it.
        assert!(!ok(&[
            "mx.kommunen.se; dkim=pass (broken",
            "mx.kommunen.se; dkim=pass header.d=kommunen.se"
        ]));
        // Headers of other servers above it do not matter.
        assert!(ok(&[
            "other.example; dkim=fail",
            "mx.kommunen.se; dkim=pass header.d=kommunen.se"
        ]));
        // Unicode and escapes in values never break the parser.
        assert!(parse("mx.example; dkim=pass reason=\"sm\\å\u{e5}\" header.d=x.se").is_some());
    }
}

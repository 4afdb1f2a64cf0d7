//! The WebDAV request headers that Depot reads before dav-server does, so
//! that both read them alike: conditions that dav-server's parsers would
//! read past the end of (they panic, and the connection closes without an
//! answer) are refused first, ranges it would overflow on are taken out or
//! refused, and `Overwrite` means "do not" only when dav-server will take
//! it so.

use axum::http::HeaderMap;

/// The first conditional header that dav-server could not parse without
/// reading past its end, if any: an entity tag that is a lone quote (in
/// `If-Match`, `If-None-Match` or `If-Range`), or an `If` header whose `<…>`
/// or `[…]` token does not close.
pub(super) fn unreadable_condition(headers: &HeaderMap) -> Option<&'static str> {
    let texts = |name: &'static str| {
        headers
            .get_all(name)
            .into_iter()
            .map(move |value| (name, String::from_utf8_lossy(value.as_bytes())))
    };
    for (name, text) in texts("if-match").chain(texts("if-none-match")) {
        if text.split(',').any(|tag| lone_quote(tag.trim())) {
            return Some(name);
        }
    }
    for (name, text) in texts("if-range") {
        if lone_quote(&text) {
            return Some(name);
        }
    }
    for (name, text) in texts("if") {
        if !if_tokens_close(text.as_bytes()) {
            return Some(name);
        }
    }
    None
}

/// An entity tag of a lone quote, weak or not.
fn lone_quote(tag: &str) -> bool {
    tag.strip_prefix("W/").unwrap_or(tag) == "\""
}

/// Whether every `<…>` and `[…]` token of an `If` header closes outside a
/// quoted string, as dav-server's scanner takes for granted (a blank ends
/// a token too: dav-server refuses it then, without reading further).
fn if_tokens_close(text: &[u8]) -> bool {
    pointy_if_tokens(text).is_some()
}

/// The paths that the `<…>` tokens of the `If` headers name, as dav-server
/// reads them: an absolute URL's path. dav-server looks up the resource a
/// tagged list names, to compare its entity tag, wherever that path leads,
/// past its prefix's check as a request's path once was (`store.rs`). A
/// state token (`urn:uuid:…`) names no path.
pub(super) fn if_paths(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("if")
        .into_iter()
        .filter_map(|value| pointy_if_tokens(value.as_bytes()))
        .flatten()
        .filter_map(|token| url::Url::parse(std::str::from_utf8(token).ok()?).ok())
        .map(|url| url.path().to_owned())
        .filter(|path| path.starts_with('/'))
        .collect()
}

/// The insides of an `If` header's `<…>` tokens, scanned as dav-server
/// scans them; `None` if one of them or of its `[…]` tokens does not close.
fn pointy_if_tokens(text: &[u8]) -> Option<Vec<&[u8]>> {
    let mut pointy = Vec::new();
    let mut at = 0;
    while let Some(&open) = text.get(at) {
        let close = match open {
            b'<' => b'>',
            b'[' => b']',
            _ => {
                at += 1;
                continue;
            }
        };
        let mut quoted = false;
        at += 1;
        let start = at;
        loop {
            let &byte = text.get(at)?;
            if (byte == close && !quoted) || b" \t\r\n".contains(&byte) {
                break;
            }
            quoted ^= byte == b'"';
            at += 1;
        }
        if open == b'<' {
            pointy.push(&text[start..at]);
        }
        at += 1;
    }
    Some(pointy)
}

/// Takes out a `Range` that names a byte position no file reaches, so
/// that the whole file is sent (as a server may for any range): dav-server
/// adds one to a range's end unchecked, and `bytes=1-18446744073709551615`
/// wrapped into an answer of zeros without end. Answers the name of a
/// write's range header that names one (`Content-Range`, SabreDAV's
/// `X-Update-Range`), to be refused.
pub(super) fn unreachable_range(headers: &mut HeaderMap) -> Option<&'static str> {
    let past_any_file = |name: &'static str, headers: &HeaderMap| {
        headers
            .get_all(name)
            .into_iter()
            .any(|value| names_a_position_past_any_file(value.as_bytes()))
    };
    if past_any_file("range", headers) {
        headers.remove("range");
    }
    ["content-range", "x-update-range"]
        .into_iter()
        .find(|name| past_any_file(name, headers))
}

/// Whether a number of 19 digits or more stands in a range header: past
/// 10^18 bytes, no file's position.
fn names_a_position_past_any_file(text: &[u8]) -> bool {
    text.split(|byte| !byte.is_ascii_digit())
        .any(|digits| digits.len() >= 19)
}

/// Whether a `COPY` or `MOVE` asks not to replace what stands at its
/// destination: one `Overwrite` of exactly `F`, the only form dav-server
/// takes so (any other, it replaces).
pub(super) fn keeps_destination(headers: &HeaderMap) -> bool {
    let mut overwrite = headers.get_all("overwrite").into_iter();
    matches!(
        (overwrite.next(), overwrite.next()),
        (Some(value), None) if value.as_bytes() == b"F"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn conditions_dav_server_would_read_past_are_named() {
        for (name, value) in [
            ("if-match", "\""),
            ("if-none-match", "\"a\", W/\""),
            ("if-range", "\""),
            ("if", "<a"),
            ("if", "(<a"),
            ("if", "[\"x"),
            ("if", "[\"x]"),
            ("if", "(<urn:a> [\"e\"]) <b"),
        ] {
            assert_eq!(
                unreadable_condition(&headers(&[(name, value)])),
                Some(name),
                "{value}"
            );
        }
        for (name, value) in [
            ("if-match", "*"),
            ("if-match", "\"a\", W/\"b\""),
            ("if-none-match", "\"\""),
            ("if-range", "Wed, 21 Oct 2015 07:28:00 GMT"),
            ("if", "(<urn:uuid:a> [\"e\"])"),
            ("if", "</store/x> (Not <urn:a>)"),
            ("if", "<a b"),
        ] {
            assert_eq!(
                unreadable_condition(&headers(&[(name, value)])),
                None,
                "{value}"
            );
        }
    }

    #[test]
    fn the_paths_an_if_header_names_are_its_urls() {
        let if_paths_of = |value| if_paths(&headers(&[("if", value)]));
        assert_eq!(
            if_paths_of("<http://h/store/a%20b> ([\"e\"]) <http://h/storeX/etc/passwd> ([\"f\"])"),
            ["/store/a%20b", "/storeX/etc/passwd"]
        );
        assert_eq!(
            if_paths_of("<x:/storeX/etc> (Not <urn:uuid:a>)"),
            ["/storeX/etc"]
        );
        for none in [
            "(<urn:uuid:a> [\"e\"])",
            "(<opaquelocktoken:a>)",
            "</store/x> ([\"e\"])",
        ] {
            assert!(if_paths_of(none).is_empty(), "{none}");
        }
    }

    #[test]
    fn ranges_past_any_file_are_taken_out_or_named() {
        let mut read = headers(&[("range", "bytes=1-18446744073709551615")]);
        assert_eq!(unreachable_range(&mut read), None);
        assert!(read.get("range").is_none());
        let mut fair = headers(&[("range", "bytes=0-99,200-")]);
        assert_eq!(unreachable_range(&mut fair), None);
        assert!(fair.get("range").is_some());
        for name in ["content-range", "x-update-range"] {
            let value = "bytes 1-18446744073709551615/*";
            assert_eq!(
                unreachable_range(&mut headers(&[(name, value)])),
                Some(name)
            );
        }
    }

    #[test]
    fn only_one_overwrite_of_f_keeps_the_destination() {
        assert!(keeps_destination(&headers(&[("overwrite", "F")])));
        for pairs in [
            &[][..],
            &[("overwrite", "T")],
            &[("overwrite", "f")],
            &[("overwrite", "F"), ("overwrite", "F")],
        ] {
            assert!(!keeps_destination(&headers(pairs)), "{pairs:?}");
        }
    }
}

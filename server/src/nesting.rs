//! How deeply a request's body may nest. Parsers that build a tree, or
//! deserialize into `serde_json::Value`, recurse once per level: quick-xml
//! sets no bound of its own (a few KB of nested `<specifics>` overflowed
//! the stack), serde_json's is 128, and the tree dav-server builds of a
//! WebDAV body (xmltree) has none (64 KiB of `<a>` would nest 21,845 levels
//! deep, far past a worker thread's stack: the whole server would abort).
//! Every body parsed so is first read flat here, by the parser that builds
//! its tree, and refused past [`MAX_DEPTH`]; what else is wrong with it is
//! the parser's to say.

/// How deeply a body may nest XML elements, or JSON objects and arrays.
pub const MAX_DEPTH: usize = 32;

/// Why a body is refused for its depth.
pub fn too_deep() -> String {
    format!("the body nests deeper than {MAX_DEPTH} levels")
}

/// Whether JSON nests deeper than [`MAX_DEPTH`], counting brackets and
/// braces outside strings. Malformed JSON may be miscounted; its parser
/// refuses it anyway.
pub fn json_too_deep(bytes: &[u8]) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Whether XML's elements nest deeper than [`MAX_DEPTH`], reading its
/// events without building anything. Malformed XML is read as far as it
/// goes; its parser refuses it anyway.
pub fn xml_too_deep(bytes: &[u8]) -> bool {
    use quick_xml::events::Event;

    let mut reader = quick_xml::Reader::from_reader(bytes);
    // Tags are counted as written: a mismatched end is the parser's to
    // refuse, not a way to reset the count.
    reader.config_mut().check_end_names = false;
    let mut buffer = Vec::new();
    let mut depth = 0usize;
    loop {
        match reader.read_event_into(&mut buffer) {
            Ok(Event::Start(_)) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            Ok(Event::Empty(_)) if depth >= MAX_DEPTH => return true,
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Eof) | Err(_) => return false,
            Ok(_) => {}
        }
        buffer.clear();
    }
}

/// Whether a WebDAV body is refused before dav-server reads it: it names a
/// document type (which may declare entities that expand to elements, a
/// few bytes each nesting thousands deep; no WebDAV client sends one), or
/// its elements nest deeper than [`MAX_DEPTH`]. Read with the parser
/// dav-server's tree (xmltree) is built with, and as it reads it (encoding,
/// entities), so that what is counted here is what it would build. A body
/// that parser cannot read is refused by dav-server at the same point.
pub fn webdav_refusal(bytes: &[u8]) -> Option<String> {
    use xml::reader::{EventReader, XmlEvent};

    let mut depth = 0usize;
    for event in EventReader::new(bytes) {
        match event {
            Ok(XmlEvent::Doctype { .. }) => {
                return Some("a document type declaration is not taken here".into())
            }
            Ok(XmlEvent::StartElement { .. }) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(too_deep());
                }
            }
            Ok(XmlEvent::EndElement { .. }) => depth = depth.saturating_sub(1),
            Ok(XmlEvent::EndDocument) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, close: &str, levels: usize) -> Vec<u8> {
        format!("{}{}", open.repeat(levels), close.repeat(levels)).into_bytes()
    }

    #[test]
    fn deep_bodies_are_found_and_shallow_ones_pass() {
        assert!(!xml_too_deep(&nested("<a>", "</a>", MAX_DEPTH)));
        assert!(xml_too_deep(&nested("<a>", "</a>", MAX_DEPTH + 1)));
        // Unclosed, or malformed after the depth is passed, still counts.
        assert!(xml_too_deep("<a>".repeat(21_845).as_bytes()));
        assert!(xml_too_deep(
            format!("{}<<>", "<a>".repeat(MAX_DEPTH + 1)).as_bytes()
        ));
        assert!(!xml_too_deep(
            b"<propfind xmlns=\"DAV:\"><allprop/></propfind>"
        ));
        assert!(!json_too_deep(&nested("[", "]", MAX_DEPTH)));
        assert!(json_too_deep(&nested("[", "]", MAX_DEPTH + 1)));
        assert!(!json_too_deep(
            b"{\"a\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}"
        ));
    }

    /// A WebDAV body is read as dav-server's parser reads it: entities
    /// declared in a document type, and other encodings, hide no depth.
    #[test]
    fn webdav_bodies_are_read_as_dav_server_reads_them() {
        let plain = br#"<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>"#;
        assert_eq!(webdav_refusal(plain), None);
        assert_eq!(webdav_refusal(b""), None);
        assert_eq!(webdav_refusal(b"not xml"), None);
        assert!(webdav_refusal(&nested("<a>", "</a>", MAX_DEPTH + 1)).is_some());
        assert!(webdav_refusal("<a>".repeat(21_845).as_bytes()).is_some());
        // Elements an entity expands to: a few bytes, thousands deep.
        let entity = format!(
            "<!DOCTYPE p [<!ENTITY e \"{}\">]><p>{}</p>",
            "<a>".repeat(40),
            "&e;".repeat(50)
        );
        let refusal = webdav_refusal(entity.as_bytes()).unwrap();
        assert!(refusal.contains("document type"), "{refusal}");
        // The same nesting in UTF-16, which a reader of UTF-8 stops at.
        let mut utf16 = vec![0xFF, 0xFE];
        for unit in "<a>".repeat(MAX_DEPTH + 1).encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        assert!(webdav_refusal(&utf16).is_some());
    }
}

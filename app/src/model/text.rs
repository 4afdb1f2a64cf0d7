//! The rule every name and title shares: no control characters, and no
//! bidirectional formatting characters, which make text display otherwise
//! than it reads (`evil\u{202E}gpj.iso` shows as `evilosi.jpg`).

use crate::error::CoreError;

/// The most a free-form attribute (ViCE's `specifics`, MWS's `extensions`
/// and `features`, Coopr's `providermap`) may take, as compact JSON. Every
/// listed record carries its attributes, so they bound what a page of a
/// thousand records costs the server: Glance, likewise, holds an image to
/// 128 properties of 255 characters.
pub const MAX_DOCUMENT_BYTES: usize = 16 << 10;

/// The most a short word of a record (an OS or hypervisor type, a template's
/// name, a feature) may take.
pub const MAX_WORD_BYTES: usize = 255;

/// The deepest a free-form attribute may nest, and the most values (each
/// object, array, key's value and array element) it may hold: a page of a
/// thousand records parses them all, and sixteen kilobytes of `[0,0,…]`
/// nested a hundred deep take sixteen times that parsed and a hundred and
/// thirty times that printed `pretty`.
pub const MAX_DOCUMENT_DEPTH: usize = 16;
pub const MAX_DOCUMENT_VALUES: usize = 1024;

/// Refuses a document longer than [`MAX_DOCUMENT_BYTES`] as compact JSON,
/// deeper than [`MAX_DOCUMENT_DEPTH`] or holding more than
/// [`MAX_DOCUMENT_VALUES`] values; `field` names it in the message. Counted
/// as it is written, and given up at a limit.
pub fn bounded_document(field: &str, value: &impl serde::Serialize) -> Result<(), CoreError> {
    /// Reads compact JSON as it is written, and fails past a limit.
    #[derive(Default)]
    struct Counter {
        bytes: usize,
        depth: usize,
        values: usize,
        in_string: bool,
        escaped: bool,
    }
    impl Counter {
        fn take(&mut self, byte: u8) -> bool {
            if self.in_string {
                match byte {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
                return true;
            }
            match byte {
                b'"' => self.in_string = true,
                b'[' | b'{' => {
                    self.depth += 1;
                    // The container is a value; so is what follows it.
                    self.values += 1;
                }
                b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                b',' => self.values += 1,
                _ => {}
            }
            self.depth <= MAX_DOCUMENT_DEPTH && self.values <= MAX_DOCUMENT_VALUES
        }
    }
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.bytes += bytes.len();
            if self.bytes > MAX_DOCUMENT_BYTES || !bytes.iter().all(|&byte| self.take(byte)) {
                return Err(std::io::ErrorKind::FileTooLarge.into());
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    match serde_json::to_writer(Counter::default(), value) {
        Ok(()) => Ok(()),
        Err(_) => Err(CoreError::invalid(format!(
            "{field} may take at most {MAX_DOCUMENT_BYTES} bytes as JSON, nest at most \
             {MAX_DOCUMENT_DEPTH} deep and hold at most {MAX_DOCUMENT_VALUES} values"
        ))),
    }
}

/// Refuses a word longer than [`MAX_WORD_BYTES`] or not plain text.
pub fn bounded_word(field: &str, text: &str) -> Result<(), CoreError> {
    if text.len() > MAX_WORD_BYTES {
        return Err(CoreError::invalid(format!(
            "{field} may be at most {MAX_WORD_BYTES} bytes"
        )));
    }
    plain_text(field, text)
}

/// Whether `c` is a bidirectional formatting character: an embedding or
/// override (U+202A–U+202E), an isolate (U+2066–U+2069), or a directional
/// mark (U+200E, U+200F, U+061C).
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// Refuses text holding a control character (C0, DEL, C1) or a bidirectional
/// formatting character; `field` names the text in the message.
pub fn plain_text(field: &str, text: &str) -> Result<(), CoreError> {
    match text.chars().find(|&c| c.is_control() || is_bidi_control(c)) {
        None => Ok(()),
        Some(c) => Err(CoreError::invalid(format!(
            "{field} may not contain control characters or bidirectional formatting \
             characters (found U+{:04X})",
            u32::from(c)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bidi_control_is_refused_and_named() {
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ] {
            assert!(is_bidi_control(c), "{c:?}");
            let error = plain_text("title", &format!("evil{c}gpj.iso"))
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("title may not contain"), "{error}");
            assert!(
                error.contains(&format!("U+{:04X}", u32::from(c))),
                "{error}"
            );
        }
    }

    use serde_json::Value;

    #[test]
    fn documents_and_words_are_bounded() {
        let document = |bytes: usize| serde_json::json!({ "k": "x".repeat(bytes - 8) });
        assert_eq!(
            bounded_document("specifics", &document(MAX_DOCUMENT_BYTES)),
            Ok(())
        );
        let error = bounded_document("specifics", &document(MAX_DOCUMENT_BYTES + 1)).unwrap_err();
        assert!(
            error.to_string().starts_with("specifics may take at most"),
            "{error}"
        );
        let many: serde_json::Map<_, _> = (0..5000)
            .map(|key| (key.to_string(), Value::from(0)))
            .collect();
        assert!(bounded_document("extensions", &Value::Object(many)).is_err());
        assert_eq!(bounded_word("osType", &"l".repeat(MAX_WORD_BYTES)), Ok(()));
        assert!(bounded_word("osType", &"l".repeat(MAX_WORD_BYTES + 1)).is_err());
        assert!(bounded_word("osType", "a\nb").is_err());
    }

    #[test]
    fn documents_are_bounded_in_shape_too() {
        let nested =
            |depth: usize| (0..depth).fold(Value::from(0), |inner, _| Value::Array(vec![inner]));
        assert_eq!(
            bounded_document("extensions", &nested(MAX_DOCUMENT_DEPTH)),
            Ok(())
        );
        let error = bounded_document("extensions", &nested(MAX_DOCUMENT_DEPTH + 1)).unwrap_err();
        assert!(
            error.to_string().contains("nest at most 16 deep"),
            "{error}"
        );
        // A key in quotes, braces and commas in strings are no values.
        let quoted = serde_json::json!({ "{[,": "]},\"[".repeat(1000) });
        assert_eq!(bounded_document("extensions", &quoted), Ok(()));
        // 8,000 small values fit in 16 KiB, and are refused.
        let zeros = Value::Array(vec![Value::from(0); 8000]);
        assert!(bounded_document("extensions", &zeros).is_err());
        let some = Value::Array(vec![Value::from(0); MAX_DOCUMENT_VALUES - 1]);
        assert_eq!(bounded_document("extensions", &some), Ok(()));
    }

    #[test]
    fn control_characters_are_refused() {
        for text in ["a\nb", "a\u{0}b", "tab\t", "del\u{7f}", "c1\u{85}"] {
            assert!(plain_text("name", text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn other_text_in_any_script_is_plain() {
        for text in [
            "",
            "disk é.img",
            "ubuntu-22.04 (server)",
            "صورة القرص",
            "דיסק",
            "ディスク",
            "💿 media",
            "zero\u{200B}width",
        ] {
            assert_eq!(plain_text("name", text), Ok(()), "{text:?}");
            assert!(!text.chars().any(is_bidi_control), "{text:?}");
        }
    }
}

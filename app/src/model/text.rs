//! The rule every name and title shares: no control characters, and no
//! bidirectional formatting characters, which make text display otherwise
//! than it reads (`evil\u{202E}gpj.iso` shows as `evilosi.jpg`).

use crate::error::CoreError;

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

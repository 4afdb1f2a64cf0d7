//! Reading single values of a descriptor: hrefs, numbers, units, text.

use std::collections::HashSet;

use super::*;

/// The most attributes an element read for its attributes may hold: the
/// descriptors exporters write have a handful.
const MAX_ATTRIBUTES: usize = 64;

/// Fills an empty slot: of two attributes with one local name (in different
/// namespaces), the first is kept.
pub(super) fn keep_first(slot: &mut Option<String>, value: String) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

/// Fills an empty slot, or refuses a second attribute of one local name (in
/// another namespace) where readers differ on which they take: the first,
/// the last, or the one of the namespace they ask for. An href or file
/// reference read one way by Depot and another by a hypervisor would have
/// it open a file Depot never checked as the disk.
pub(super) fn keep_only(
    slot: &mut Option<String>,
    value: String,
    element: &str,
    name: &str,
) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!(
            "a {element} element gives its {name} twice, in two namespaces: readers differ on \
             which they take"
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// Calls `visit` with the local name and the normalized value (entities
/// resolved) of each attribute of `element`, namespace declarations left
/// out: `xmlns:href="..."` declares a prefix, it is no href.
///
/// quick-xml's own check for an attribute given twice compares each with
/// every one before it: half a million in one element would take minutes.
/// Elements are held to [`MAX_ATTRIBUTES`], and told apart by a set.
pub(super) fn each_attribute(
    element: &BytesStart<'_>,
    mut visit: impl FnMut(&str, String) -> Result<(), String>,
) -> Result<(), String> {
    let mut attributes = element.attributes();
    attributes.with_checks(false);
    let mut keys = HashSet::new();
    for attribute in attributes {
        let attribute = attribute.map_err(unreadable)?;
        if keys.len() == MAX_ATTRIBUTES {
            return Err(format!(
                "the descriptor holds an element with more than {MAX_ATTRIBUTES} attributes"
            ));
        }
        if !keys.insert(attribute.key.into_inner()) {
            return Err("unreadable descriptor: an element holds one attribute twice".into());
        }
        if attribute.key.as_namespace_binding().is_some() {
            continue;
        }
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(unreadable)?;
        visit(attribute.key.local_name().into_inner(), value.into_owned())?;
    }
    Ok(())
}

/// Refuses an href that could make a hypervisor read anything but a file
/// beside the descriptor. It is checked as written and percent-decoded,
/// since readers that treat it as a URI decode `%2e%2e` to `..`.
pub(super) fn check_href(href: &str) -> Result<(), String> {
    match percent_encoding::percent_decode_str(href).decode_utf8() {
        Ok(decoded) if is_plain_name(href) && is_plain_name(&decoded) => Ok(()),
        _ => Err(not_plain(href)),
    }
}

/// A relative name made of plain segments: not empty, not absolute, no `..`
/// anywhere (as the store sync checks it), no backslash (a Windows path
/// separator), no colon (a scheme such as `http:` or `file:`, a drive letter,
/// and so any `://`), no `?` or `#` (a reader that takes the href for a URI
/// reads `a.cert#x.vmdk` as `a.cert`), no empty or `.` segment, no control
/// or bidirectional formatting character.
pub(super) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TEXT
        && !name.starts_with('/')
        && !name.contains("..")
        && !name
            .chars()
            .any(|c| matches!(c, '\\' | ':' | '?' | '#') || c.is_control() || is_bidi_control(c))
        && name
            .split('/')
            .all(|segment| !segment.is_empty() && segment != ".")
}

/// A value as stored: trimmed, cut to [`MAX_TEXT`] bytes at a character
/// boundary, and dropped when empty or when it holds a control or
/// bidirectional formatting character (such text would display otherwise
/// than it reads, so no text is better than altered text).
pub(super) fn clean(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let value = trimmed[..floor_boundary(trimmed, MAX_TEXT)].trim_end();
    let plain = !value.chars().any(|c| c.is_control() || is_bidi_control(c));
    (plain && !value.is_empty()).then(|| value.to_owned())
}

/// A cleaned value read as a whole number; None when absent or not one.
pub(super) fn number<T: std::str::FromStr>(raw: Option<&str>) -> Option<T> {
    clean(raw?)?.parse().ok()
}

/// Memory in MiB, rounded down: the product is taken in `u128`, where two
/// `u64` always fit, so only a result beyond `u64` is unknown.
pub(super) fn memory_mib(quantity: Option<&str>, units: Option<&str>) -> Option<u64> {
    let quantity = u128::from(number::<u64>(quantity)?);
    // A memory item without units is unknown: guessing MiB could make the
    // stored, filterable size wrong by a factor of a million.
    let unit = u128::from(unit_bytes(units?)?);
    u64::try_from(quantity * unit / MIB).ok()
}

/// The bytes in one of the allocation units DSP0243 and exporters write:
/// programmatic units (`byte`, `byte * 2^20`, `byte * 1024`, factors of
/// `N` or `N^E` joined by `*`) or the older names (`MegaBytes`, `GB`, …),
/// whose prefixes OVF tools read as powers of 1024. None when unknown or
/// too large for a `u64`.
pub(super) fn unit_bytes(units: &str) -> Option<u64> {
    let units = units.trim();
    let named = match units.to_ascii_lowercase().as_str() {
        "byte" | "bytes" | "b" => Some(1),
        "kilobyte" | "kilobytes" | "kb" | "kib" => Some(1 << 10),
        "megabyte" | "megabytes" | "mb" | "mib" => Some(1 << 20),
        "gigabyte" | "gigabytes" | "gb" | "gib" => Some(1 << 30),
        "terabyte" | "terabytes" | "tb" | "tib" => Some(1 << 40),
        _ => None,
    };
    if named.is_some() {
        return named;
    }
    let mut factors = units.split('*');
    let base = factors.next()?.trim();
    if !base.eq_ignore_ascii_case("byte") && !base.eq_ignore_ascii_case("bytes") {
        return None;
    }
    factors.try_fold(1u64, |total, factor| {
        let factor = match factor.split_once('^') {
            Some((base, exponent)) => base
                .trim()
                .parse::<u64>()
                .ok()?
                .checked_pow(exponent.trim().parse::<u32>().ok()?)?,
            None => factor.trim().parse::<u64>().ok()?,
        };
        total.checked_mul(factor)
    })
}

/// The largest index at most `at` that starts a character of `text`.
pub(super) fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Text from the descriptor made safe to show in a message: control and
/// bidirectional formatting characters replaced, and at most 128 characters.
pub(super) fn printable(text: &str) -> String {
    const SHOWN: usize = 128;
    let mut shown: String = text
        .chars()
        .take(SHOWN)
        .map(|c| {
            if c.is_control() || is_bidi_control(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    if text.chars().nth(SHOWN).is_some() {
        shown.push('…');
    }
    shown
}

/// The reason for a descriptor that is not well-formed XML.
pub(super) fn unreadable(error: impl std::fmt::Display) -> String {
    format!("unreadable descriptor: {}", printable(&error.to_string()))
}

pub(super) fn not_plain(href: &str) -> String {
    format!(
        "a file reference is not a plain name: \"{}\"",
        printable(href)
    )
}

pub(super) fn too_many(what: &str) -> String {
    format!("the descriptor lists more than {MAX_ENTRIES} {what}")
}

//! Strings from events shown to people (errors, notifications, `status`): control characters
//! and the invisible ones that reorder or hide text (bidi overrides, zero-width marks) are
//! written as `\u{…}` escapes, so a hostile tag cannot forge a line, colour a terminal or make
//! one release read as another.

use std::borrow::Cow;

fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `s` as it may be shown: unchanged when it is plain, else with each unsafe character escaped.
pub fn shown(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Free text from an event (a reason) as it is kept: at most `max` bytes, cut at a character
/// boundary and marked, so no event can grow a document by more than that.
pub fn clipped(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The longest identifier kept from an event (event ids, deployment ids, names): EventBridge
/// ids are 36 characters, ECR repository names at most 256, alarm names 255.
pub const MAX_ID: usize = 256;
/// The longest free text kept from an event (a reason): longer is clipped.
pub const MAX_REASON: usize = 1024;

/// A stable fingerprint of `bytes` (two FNV-1a 64-bit hashes with different offsets, as 32 hex
/// characters): the same in every agent version and process. For telling versions apart, not
/// for security.
pub fn fingerprint(bytes: &[u8]) -> String {
    let fnv = |offset: u64| {
        bytes.iter().fold(offset, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    format!(
        "{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x6c62_272e_07bb_0142)
    )
}

/// An ECR image tag as ECR accepts one (`[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`, the Docker
/// reference's tag grammar): anything else in an event was not written by ECR.
pub fn is_image_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    tag.len() <= 128
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_keeps_short_text_and_cuts_long_text_at_a_character() {
        assert_eq!(clipped("short", 10), "short");
        let long = "é".repeat(600);
        let c = clipped(&long, MAX_REASON);
        assert!(c.len() <= MAX_REASON && c.ends_with('…'), "{}", c.len());
    }

    #[test]
    fn control_and_bidi_characters_are_escaped_and_plain_text_is_kept() {
        assert_eq!(shown("main-1a2b3c4"), "main-1a2b3c4");
        assert_eq!(shown("main-\u{202E}4c3b2a1"), "main-\\u{202e}4c3b2a1");
        assert_eq!(shown("v1\n[prod] deployed"), "v1\\u{a}[prod] deployed");
        assert_eq!(shown("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(shown("a\u{200B}b"), "a\\u{200b}b");
        assert!(is_image_tag("main-1a2b3c4") && is_image_tag("v1.2.3_rc"));
        for bad in ["", "-x", ".x", "a b", "main-\u{202E}1", &"a".repeat(129)] {
            assert!(!is_image_tag(bad), "{bad:?}");
        }
    }
}

//! Key and value names: stored as Latin-1 ("compressed") or UTF-16LE, compared without case.
//!
//! Sources: msuhanov/regf specification, "Key node" flag KEY_COMP_NAME (0x0020) and "Key value"
//! flag VALUE_COMP_NAME (0x0001): when set, each byte is one character (an "extended ASCII"
//! string, i.e. UTF-16 code units below 256 with the high byte dropped).

/// Decodes a stored name. `compressed` names are Latin-1; others are UTF-16LE, where an odd
/// trailing byte is ignored and unpaired surrogates become U+FFFD.
pub fn decode(bytes: &[u8], compressed: bool) -> String {
    if compressed {
        bytes.iter().map(|&b| char::from(b)).collect()
    } else {
        utf16le_lossy(bytes)
    }
}

/// UTF-16LE to a `String`, lossy, stopping at nothing (callers cut at NUL themselves).
pub fn utf16le_lossy(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| c.try_into().map(u16::from_le_bytes).unwrap_or(0))
        .collect();
    String::from_utf16_lossy(&units)
}

/// Windows compares names by their upper-case forms; this uses Unicode simple upper-casing,
/// which agrees with Windows' table for ASCII and the common Latin, Greek and Cyrillic letters.
pub fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars().map(upper).eq(b.chars().map(upper))
}

fn upper(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        // Multi-character expansions (e.g. German sharp s) stay as they are, like Windows.
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_ascii_and_latin_without_case() {
        assert!(eq_ignore_case("WinREVersion", "winreversion"));
        assert!(eq_ignore_case("Ünïcødé", "üNÏCØDÉ"));
        assert!(!eq_ignore_case("Objects", "Object"));
        assert!(eq_ignore_case("straße", "STRAßE"));
    }

    #[test]
    fn decodes_both_encodings() {
        assert_eq!(decode(b"ROOT", true), "ROOT");
        assert_eq!(decode(&[0xe9], true), "é");
        assert_eq!(decode(&[0x22, 0x21, 0x41, 0x00], false), "™A");
        assert_eq!(decode(&[0x41, 0x00, 0x42], false), "A");
    }
}

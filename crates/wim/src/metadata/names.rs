//! File name comparison the way Windows and wimlib order and look up names.
//!
//! Names are compared as UTF-16 code units, each first mapped through an upper-case table,
//! shorter-name-first on a common prefix, and then, to break ties between names that differ only
//! in case, compared exactly. NTFS keeps its own table (`$UpCase`); we build ours from Unicode's
//! simple upper-case mapping of each BMP code unit (one code unit to one code unit; surrogates
//! and characters whose upper case is not a single BMP character map to themselves). That agrees
//! with `$UpCase` on the scripts Windows file names use in practice; the rare characters where
//! the tables differ (Unicode versions newer than the volume's table) can sort or match
//! differently than on a given Windows version.
//!
// Sources: wimlib src/encoding.c (`cmp_utf16le_strings`), src/dentry.c (`collate_dentry_names`).

use std::cmp::Ordering;
use std::sync::OnceLock;

/// The upper-case table: one entry per UTF-16 code unit.
fn table() -> &'static [u16] {
    static TABLE: OnceLock<Vec<u16>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|unit| {
                let Some(c) = char::from_u32(u32::from(unit)) else {
                    return unit;
                };
                let mut upper = c.to_uppercase();
                match (upper.next(), upper.next()) {
                    (Some(u), None) => u16::try_from(u32::from(u)).unwrap_or(unit),
                    _ => unit,
                }
            })
            .collect()
    })
}

/// The upper-case form of one UTF-16 code unit.
pub fn upcase(unit: u16) -> u16 {
    table().get(usize::from(unit)).copied().unwrap_or(unit)
}

/// Compares two names ignoring case.
pub fn cmp_ignore_case(a: &[u16], b: &[u16]) -> Ordering {
    let t = table();
    let fold = |u: &u16| t.get(usize::from(*u)).copied().unwrap_or(*u);
    a.iter().map(fold).cmp(b.iter().map(fold))
}

/// The order of names in a directory: ignoring case, then exactly.
pub fn collate(a: &[u16], b: &[u16]) -> Ordering {
    cmp_ignore_case(a, b).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn folds_and_orders_like_windows() {
        assert_eq!(
            cmp_ignore_case(&u("System32"), &u("SYSTEM32")),
            Ordering::Equal
        );
        assert_eq!(cmp_ignore_case(&u("ärger"), &u("ÄRGER")), Ordering::Equal);
        // Folded: "A" (0x41) < "[" (0x5B) < "_" (0x5F); exactly, "_" < "a".
        assert_eq!(collate(&u("a"), &u("_x")), Ordering::Less);
        assert_eq!(collate(&u("["), &u("_x")), Ordering::Less);
        assert_eq!(collate(&u("README.txt"), &u("Readme.TXT")), Ordering::Less);
        assert_eq!(collate(&u("ab"), &u("ABC")), Ordering::Less);
        // Surrogates are left alone.
        assert_eq!(upcase(0xD835), 0xD835);
        assert_eq!(upcase(u16::from(b'q')), u16::from(b'Q'));
    }
}

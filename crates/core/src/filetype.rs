//! What a file that is not a disk image is, from its first bytes, so that `scan` can say "this
//! is a PNG" instead of "no WinRE". Signatures: the file formats' own specifications (ELF, PNG,
//! JPEG/JFIF, GIF, PDF, ZIP, gzip RFC 1952, xz, bzip2, zstd RFC 8878, 7z, POSIX tar "ustar" at
//! 257, SQLite, the DOS/PE "MZ" header, the WIM header "MSWIM").

/// Bytes [`name_of`] looks at.
pub const SNIFF_BYTES: usize = 512;

/// The kind of file `head` (its first bytes, up to [`SNIFF_BYTES`]) starts, when it is a known
/// format that is not a disk image.
pub fn name_of(head: &[u8]) -> Option<&'static str> {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"\x7fELF", "an ELF executable or library"),
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"GIF87a", "a GIF image"),
        (b"GIF89a", "a GIF image"),
        (b"%PDF-", "a PDF document"),
        (b"PK\x03\x04", "a ZIP archive"),
        (b"\x1f\x8b", "a gzip file"),
        (b"\xfd7zXZ\x00", "an xz file"),
        (b"BZh", "a bzip2 file"),
        (b"\x28\xb5\x2f\xfd", "a zstd file"),
        (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
        (b"SQLite format 3\x00", "an SQLite database"),
        (
            b"MSWIM\x00\x00\x00",
            "a WIM file (use `winre verify` or `winre wim info`)",
        ),
        (b"MZ", "a DOS/Windows executable"),
    ];
    if let Some((_, name)) = SIGNATURES.iter().find(|(magic, _)| head.starts_with(magic)) {
        return Some(name);
    }
    if head.get(257..262) == Some(b"ustar") {
        return Some("a tar archive");
    }
    None
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            name_of(b"\x7fELF\x02\x01"),
            Some("an ELF executable or library")
        );
        assert_eq!(name_of(b"\x89PNG\r\n\x1a\n\0\0"), Some("a PNG image"));
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(name_of(&tar), Some("a tar archive"));
        assert_eq!(name_of(&[0u8; 512]), None);
        assert_eq!(name_of(b"EFI PART"), None);
    }
}

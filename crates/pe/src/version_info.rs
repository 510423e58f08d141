//! VS_VERSIONINFO: a tree of blocks, each a length, a value length, a type, a UTF-16 key and a
//! value, then child blocks, every part 32-bit aligned. The root holds VS_FIXEDFILEINFO (the
//! binary versions) and two children: StringFileInfo (string tables, one per language and code
//! page) and VarFileInfo (the Translation list).
//!
//! The whole tree sits inside the root's 16-bit length, so it is at most 64 KiB: every loop
//! and allocation here is bounded by that, whatever the lengths inside claim.
//!
//! Sources: Microsoft Win32 docs "VS_VERSIONINFO", "VS_FIXEDFILEINFO", "StringFileInfo",
//! "StringTable", "String", "VarFileInfo" and "Var" (learn.microsoft.com/windows/win32/menurc).

use std::fmt;
use std::ops::Range;

use serde::Serialize;
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::error::{at, Error, Result};

const FIXED_FILE_INFO_SIGNATURE: u32 = 0xFEEF_04BD;
/// Size of a block's length, value length and type fields.
const BLOCK_HEADER_BYTES: usize = 6;
/// wType of a block whose value is UTF-16 text (its value length counts 16-bit units).
const TYPE_TEXT: u16 = 1;

/// VS_FIXEDFILEINFO (52 bytes).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct FixedFileInfoDisk {
    /// +0x00 0xFEEF04BD
    signature: U32,
    /// +0x04 structure version
    struct_version: U32,
    /// +0x08 file version, major << 16 | minor
    file_version_ms: U32,
    /// +0x0C file version, build << 16 | revision
    file_version_ls: U32,
    /// +0x10 product version, major << 16 | minor
    product_version_ms: U32,
    /// +0x14 product version, build << 16 | revision
    product_version_ls: U32,
    /// +0x18 which bits of file_flags are valid
    file_flags_mask: U32,
    /// +0x1C VS_FF_* (debug, patched, prerelease...)
    file_flags: U32,
    /// +0x20 VOS_* target OS
    file_os: U32,
    /// +0x24 VFT_* (application, DLL, driver...)
    file_type: U32,
    /// +0x28 VFT2_* subtype
    file_subtype: U32,
    /// +0x2C file date, high part (almost always 0)
    file_date_ms: U32,
    /// +0x30 file date, low part
    file_date_ls: U32,
}

/// A four-part binary version, major.minor.build.revision (for Windows: 10.0.BUILD.UBR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FourPartVersion {
    /// e.g. 10
    pub major: u16,
    /// e.g. 0
    pub minor: u16,
    /// e.g. 22621
    pub build: u16,
    /// e.g. 3233 (the update build revision)
    pub revision: u16,
}

impl FourPartVersion {
    fn from_parts(ms: u32, ls: u32) -> Self {
        let [b0, b1, b2, b3] = ms.to_be_bytes();
        let [c0, c1, c2, c3] = ls.to_be_bytes();
        Self {
            major: u16::from_be_bytes([b0, b1]),
            minor: u16::from_be_bytes([b2, b3]),
            build: u16::from_be_bytes([c0, c1]),
            revision: u16::from_be_bytes([c2, c3]),
        }
    }
}

impl fmt::Display for FourPartVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.major, self.minor, self.build, self.revision
        )
    }
}

/// The binary part of the version resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixedFileInfo {
    /// dwFileVersionMS/LS.
    pub file_version: FourPartVersion,
    /// dwProductVersionMS/LS.
    pub product_version: FourPartVersion,
    /// VS_FF_* flags, already masked by dwFileFlagsMask.
    pub file_flags: u32,
    /// VOS_* target OS.
    pub file_os: u32,
    /// VFT_* file type.
    pub file_type: u32,
}

/// One string table: the strings for one language and code page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StringTable {
    /// Eight hex digits: language then code page, e.g. "040904B0".
    pub key: String,
    /// (name, value) pairs in stored order, e.g. ("FileVersion", "10.0.22621.1 (WinBuild...)").
    pub strings: Vec<(String, String)>,
}

/// A language and code page pair from VarFileInfo\Translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Translation {
    /// Windows language ID, e.g. 0x0409.
    pub language: u16,
    /// Code page, e.g. 1200 (UTF-16LE).
    pub code_page: u16,
}

/// A parsed VS_VERSIONINFO resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    /// VS_FIXEDFILEINFO, when the resource has one.
    pub fixed: Option<FixedFileInfo>,
    /// StringFileInfo's tables, in stored order.
    pub string_tables: Vec<StringTable>,
    /// VarFileInfo\Translation, in stored order.
    pub translations: Vec<Translation>,
}

impl VersionInfo {
    /// The string `name` (e.g. "FileVersion") from the first table that has it.
    pub fn string(&self, name: &str) -> Option<&str> {
        self.string_tables.iter().find_map(|table| {
            table
                .strings
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        })
    }
}

/// One block of the tree, with the ranges of its value and children inside the resource.
struct Block<'a> {
    key: String,
    value_type: u16,
    value: &'a [u8],
    /// Where `value` starts in the resource.
    value_start: usize,
    children: Range<usize>,
    /// Where the next sibling starts (aligned).
    next: usize,
}

fn align4(offset: usize) -> usize {
    offset.saturating_add(3) & !3
}

/// Reads UTF-16LE units from `bytes` up to a NUL or the end; returns the text and the bytes
/// used, NUL included.
fn utf16_until_nul(bytes: &[u8]) -> (String, usize) {
    let mut units = Vec::new();
    let mut used = 0usize;
    for pair in bytes.chunks_exact(2) {
        used = used.saturating_add(2);
        let unit = u16::from_le_bytes([
            pair.first().copied().unwrap_or(0),
            pair.get(1).copied().unwrap_or(0),
        ]);
        if unit == 0 {
            break;
        }
        units.push(unit);
    }
    (String::from_utf16_lossy(&units), used)
}

/// The parsed resource and the file offset of its first byte, for error messages.
struct Resource<'a> {
    bytes: &'a [u8],
    file_offset: usize,
}

impl<'a> Resource<'a> {
    fn corrupt(&self, what: &str, at_byte: usize, detail: impl Into<String>) -> Error {
        Error::corrupt(what, at(self.file_offset.saturating_add(at_byte)), detail)
    }

    /// The block at `start`, which must end by `limit`.
    fn block(&self, start: usize, limit: usize, what: &str) -> Result<Block<'a>> {
        let header = start
            .checked_add(BLOCK_HEADER_BYTES)
            .and_then(|end| self.bytes.get(start..end.min(limit)))
            .filter(|h| h.len() == BLOCK_HEADER_BYTES)
            .ok_or_else(|| self.corrupt(what, start, "block header runs past its parent"))?;
        let field = |i: usize| {
            u16::from_le_bytes([
                header.get(i).copied().unwrap_or(0),
                header.get(i.saturating_add(1)).copied().unwrap_or(0),
            ])
        };
        let (length, value_length, value_type) =
            (usize::from(field(0)), usize::from(field(2)), field(4));
        if length < BLOCK_HEADER_BYTES {
            return Err(self.corrupt(
                what,
                start,
                format!("block length {length}, at least {BLOCK_HEADER_BYTES} needed"),
            ));
        }
        let end = start.saturating_add(length);
        if end > limit {
            return Err(self.corrupt(
                what,
                start,
                format!(
                    "block length {length} runs {} bytes past its parent",
                    end.saturating_sub(limit)
                ),
            ));
        }
        let key_start = start.saturating_add(BLOCK_HEADER_BYTES);
        let (key, key_bytes) = utf16_until_nul(self.bytes.get(key_start..end).unwrap_or_default());
        let value_start = align4(key_start.saturating_add(key_bytes)).min(end);
        let value_bytes = if value_type == TYPE_TEXT {
            value_length.saturating_mul(2)
        } else {
            value_length
        };
        let value_end = value_start.saturating_add(value_bytes).min(end);
        Ok(Block {
            key,
            value_type,
            value: self.bytes.get(value_start..value_end).unwrap_or_default(),
            value_start,
            children: align4(value_end).min(end)..end,
            next: align4(end),
        })
    }

    /// The child blocks in `range`, in order.
    fn children(&self, range: Range<usize>, what: &str) -> Result<Vec<Block<'a>>> {
        let mut blocks = Vec::new();
        let mut at_byte = range.start;
        // Each block is at least 6 bytes, so this ends within range.len() / 6 steps.
        while at_byte < range.end {
            // Trailing padding shorter than a block header is not a block.
            if range.end.saturating_sub(at_byte) < BLOCK_HEADER_BYTES {
                break;
            }
            let block = self.block(at_byte, range.end, what)?;
            at_byte = block.next;
            blocks.push(block);
        }
        Ok(blocks)
    }
}

/// Parses a VS_VERSIONINFO resource; `file_offset` is where its bytes sit in the PE file (used
/// in error messages). Refuses a root whose key is not "VS_VERSION_INFO", a fixed-info block with
/// a wrong signature, and blocks whose lengths leave their parent.
pub fn parse(bytes: &[u8], file_offset: usize) -> Result<VersionInfo> {
    let resource = Resource { bytes, file_offset };
    let root = resource.block(0, bytes.len(), "VS_VERSIONINFO")?;
    if root.key != "VS_VERSION_INFO" {
        return Err(resource.corrupt(
            "VS_VERSIONINFO",
            0,
            format!("key {:?}, expected \"VS_VERSION_INFO\"", root.key),
        ));
    }
    let fixed = fixed_file_info(&resource, root.value, root.value_start)?;
    let mut info = VersionInfo {
        fixed,
        string_tables: Vec::new(),
        translations: Vec::new(),
    };
    for child in resource.children(root.children, "VS_VERSIONINFO child")? {
        match child.key.as_str() {
            "StringFileInfo" => {
                for table in resource.children(child.children, "StringTable")? {
                    let mut strings = Vec::new();
                    for string in resource.children(table.children, "String")? {
                        let value = if string.value_type == TYPE_TEXT || !string.value.is_empty() {
                            utf16_until_nul(string.value).0
                        } else {
                            String::new()
                        };
                        strings.push((string.key, value));
                    }
                    info.string_tables.push(StringTable {
                        key: table.key,
                        strings,
                    });
                }
            }
            "VarFileInfo" => {
                for var in resource.children(child.children, "Var")? {
                    if var.key == "Translation" {
                        info.translations
                            .extend(var.value.chunks_exact(4).map(|pair| {
                                let word = |i: usize| {
                                    u16::from_le_bytes([
                                        pair.get(i).copied().unwrap_or(0),
                                        pair.get(i.saturating_add(1)).copied().unwrap_or(0),
                                    ])
                                };
                                Translation {
                                    language: word(0),
                                    code_page: word(2),
                                }
                            }));
                    }
                }
            }
            // Other children are not defined by the format; ignoring them loses nothing we report.
            _ => {}
        }
    }
    Ok(info)
}

fn fixed_file_info(
    resource: &Resource<'_>,
    value: &[u8],
    value_at: usize,
) -> Result<Option<FixedFileInfo>> {
    if value.is_empty() {
        return Ok(None);
    }
    let (disk, _) = FixedFileInfoDisk::read_from_prefix(value).map_err(|_| {
        resource.corrupt(
            "VS_FIXEDFILEINFO",
            value_at,
            format!("{} bytes, expected 52", value.len()),
        )
    })?;
    if disk.signature.get() != FIXED_FILE_INFO_SIGNATURE {
        return Err(resource.corrupt(
            "VS_FIXEDFILEINFO",
            value_at,
            format!(
                "signature 0x{:08x}, expected 0x{FIXED_FILE_INFO_SIGNATURE:08x}",
                disk.signature.get()
            ),
        ));
    }
    Ok(Some(FixedFileInfo {
        file_version: FourPartVersion::from_parts(
            disk.file_version_ms.get(),
            disk.file_version_ls.get(),
        ),
        product_version: FourPartVersion::from_parts(
            disk.product_version_ms.get(),
            disk.product_version_ls.get(),
        ),
        file_flags: disk.file_flags.get() & disk.file_flags_mask.get(),
        file_os: disk.file_os.get(),
        file_type: disk.file_type.get(),
    }))
}

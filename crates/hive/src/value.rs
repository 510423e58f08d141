//! Key values ("vk"), their data (inline, one cell, or "db" big-data segments) and typed views.
//!
//! Sources: msuhanov/regf specification, sections "Key value" (data size bit 31 = data inline in
//! the offset field, at most 4 bytes), "Data types" and "Big data" (values above 16344 bytes are
//! split in segments of 16344 bytes when the hive's minor version is above 3). hivex writes big
//! values as one large cell instead; both forms are read.

use std::fmt;

use serde::Serialize;
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::cell::{u16_at, u32_at, NO_CELL};
use crate::error::{Error, Result};
use crate::name;
use crate::{Hive, ReadAt};

/// Largest value data read (Windows documents 1 MB as the practical limit for a value).
pub const MAX_VALUE_BYTES: u32 = 16 << 20;
/// Data per big-data segment.
pub const BIG_DATA_SEGMENT_BYTES: u32 = 16344;
/// VALUE_COMP_NAME: the name is Latin-1, not UTF-16LE.
const VALUE_COMP_NAME: u16 = 0x0001;
/// Bit 31 of the data size: the data sits in the data offset field.
const DATA_INLINE: u32 = 0x8000_0000;

/// The fixed part of a key value as stored (20 bytes, then the name).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct KeyValueDisk {
    /// +0x00 "vk"
    pub signature: [u8; 2],
    /// +0x02 name length in bytes (0 = the default value)
    pub name_len: U16,
    /// +0x04 data size; bit 31 set = data inline in `data_offset`
    pub data_size: U32,
    /// +0x08 data cell, or the data itself
    pub data_offset: U32,
    /// +0x0C REG_* type
    pub data_type: U32,
    /// +0x10 VALUE_* flags
    pub flags: U16,
    /// +0x12 unused
    pub spare: U16,
}

/// A registry value type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum ValueType {
    /// REG_NONE (0)
    None,
    /// REG_SZ (1)
    Sz,
    /// REG_EXPAND_SZ (2)
    ExpandSz,
    /// REG_BINARY (3)
    Binary,
    /// REG_DWORD (4)
    Dword,
    /// REG_DWORD_BIG_ENDIAN (5)
    DwordBigEndian,
    /// REG_LINK (6)
    Link,
    /// REG_MULTI_SZ (7)
    MultiSz,
    /// REG_RESOURCE_LIST (8)
    ResourceList,
    /// REG_FULL_RESOURCE_DESCRIPTOR (9)
    FullResourceDescriptor,
    /// REG_RESOURCE_REQUIREMENTS_LIST (10)
    ResourceRequirementsList,
    /// REG_QWORD (11)
    Qword,
    /// Any other number (allowed by the format).
    Other(u32),
}

impl From<u32> for ValueType {
    fn from(t: u32) -> Self {
        match t {
            0 => ValueType::None,
            1 => ValueType::Sz,
            2 => ValueType::ExpandSz,
            3 => ValueType::Binary,
            4 => ValueType::Dword,
            5 => ValueType::DwordBigEndian,
            6 => ValueType::Link,
            7 => ValueType::MultiSz,
            8 => ValueType::ResourceList,
            9 => ValueType::FullResourceDescriptor,
            10 => ValueType::ResourceRequirementsList,
            11 => ValueType::Qword,
            other => ValueType::Other(other),
        }
    }
}

impl ValueType {
    /// The number stored in the hive.
    pub fn code(self) -> u32 {
        match self {
            ValueType::None => 0,
            ValueType::Sz => 1,
            ValueType::ExpandSz => 2,
            ValueType::Binary => 3,
            ValueType::Dword => 4,
            ValueType::DwordBigEndian => 5,
            ValueType::Link => 6,
            ValueType::MultiSz => 7,
            ValueType::ResourceList => 8,
            ValueType::FullResourceDescriptor => 9,
            ValueType::ResourceRequirementsList => 10,
            ValueType::Qword => 11,
            ValueType::Other(t) => t,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ValueType::None => "REG_NONE",
            ValueType::Sz => "REG_SZ",
            ValueType::ExpandSz => "REG_EXPAND_SZ",
            ValueType::Binary => "REG_BINARY",
            ValueType::Dword => "REG_DWORD",
            ValueType::DwordBigEndian => "REG_DWORD_BIG_ENDIAN",
            ValueType::Link => "REG_LINK",
            ValueType::MultiSz => "REG_MULTI_SZ",
            ValueType::ResourceList => "REG_RESOURCE_LIST",
            ValueType::FullResourceDescriptor => "REG_FULL_RESOURCE_DESCRIPTOR",
            ValueType::ResourceRequirementsList => "REG_RESOURCE_REQUIREMENTS_LIST",
            ValueType::Qword => "REG_QWORD",
            ValueType::Other(t) => return write!(f, "type 0x{t:x}"),
        };
        f.write_str(name)
    }
}

/// A key value record, checked (its data not yet read).
#[derive(Debug, Clone)]
pub struct ValueRecord {
    /// The record's cell, relative to the hive bins data.
    pub cell_offset: u32,
    /// The value's name ("" for the default value).
    pub name: String,
    /// The value's type.
    pub value_type: ValueType,
    /// Size of the data in bytes.
    pub data_size_bytes: u32,
    /// True when the data sits in `data_field` itself.
    pub inline: bool,
    /// The data offset field: a cell offset, or up to 4 bytes of inline data.
    pub data_field: u32,
}

impl ValueRecord {
    /// Checks the key value in `cell` (the cell's data, read from `cell_offset`).
    pub fn parse(cell: &[u8], cell_offset: u32) -> Result<Self> {
        let corrupt =
            |detail: String| Error::corrupt("key value", crate::file_offset(cell_offset), detail);
        let (disk, rest) = KeyValueDisk::read_from_prefix(cell).map_err(|_| {
            corrupt(format!(
                "cell holds {} bytes, a key value needs 20",
                cell.len()
            ))
        })?;
        if &disk.signature != b"vk" {
            return Err(corrupt(format!(
                "signature is {:02x?}, expected \"vk\"",
                disk.signature
            )));
        }
        let name_len = usize::from(disk.name_len.get());
        let name_bytes = rest.get(..name_len).ok_or_else(|| {
            corrupt(format!(
                "name of {name_len} bytes runs past the cell ({} bytes after the header)",
                rest.len()
            ))
        })?;
        let raw_size = disk.data_size.get();
        let inline = raw_size & DATA_INLINE != 0;
        let data_size_bytes = raw_size & !DATA_INLINE;
        if inline && data_size_bytes > 4 {
            return Err(corrupt(format!(
                "inline data of {data_size_bytes} bytes (at most 4 fit)"
            )));
        }
        if data_size_bytes > MAX_VALUE_BYTES {
            return Err(corrupt(format!(
                "data size {data_size_bytes} exceeds the cap of {MAX_VALUE_BYTES} bytes"
            )));
        }
        Ok(ValueRecord {
            cell_offset,
            name: name::decode(name_bytes, disk.flags.get() & VALUE_COMP_NAME != 0),
            value_type: ValueType::from(disk.data_type.get()),
            data_size_bytes,
            inline,
            data_field: disk.data_offset.get(),
        })
    }
}

/// A registry value inside a [`Hive`]; its data is read by [`Value::data`] and the typed views.
pub struct Value<'h, R> {
    hive: &'h Hive<R>,
    record: ValueRecord,
}

impl<R> fmt::Debug for Value<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("record", &self.record)
            .finish()
    }
}

impl<'h, R: ReadAt> Value<'h, R> {
    pub(crate) fn new(hive: &'h Hive<R>, record: ValueRecord) -> Self {
        Value { hive, record }
    }

    /// The value's name ("" for the default value).
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        self.record.value_type
    }

    /// The checked record.
    pub fn record(&self) -> &ValueRecord {
        &self.record
    }

    /// The raw data bytes, exactly as many as the record declares.
    pub fn data(&self) -> Result<Vec<u8>> {
        let r = &self.record;
        let size = r.data_size_bytes as usize;
        if r.inline {
            return Ok(r
                .data_field
                .to_le_bytes()
                .get(..size)
                .unwrap_or(&[])
                .to_vec());
        }
        if size == 0 {
            return Ok(Vec::new());
        }
        let cells = &self.hive.cells;
        let mut cell = cells.read(r.data_field, "value data")?;
        if cell.len() >= size {
            cell.truncate(size);
            return Ok(cell);
        }
        let at = crate::file_offset(r.data_field);
        if cell.get(..2) != Some(b"db".as_slice()) {
            return Err(Error::corrupt(
                "value data",
                at,
                format!(
                    "the value declares {size} bytes, its data cell holds {}",
                    cell.len()
                ),
            ));
        }
        let corrupt = |detail: String| Error::corrupt("big data", at, detail);
        let segments = u16_at(&cell, 2).ok_or_else(|| corrupt("cell too short".into()))?;
        let list = u32_at(&cell, 4).ok_or_else(|| corrupt("cell too short".into()))?;
        let list_cell = cells.read(list, "big data segments list")?;
        if list_cell.len() < usize::from(segments).saturating_mul(4) {
            return Err(corrupt(format!(
                "{segments} segments, the list cell holds {} bytes",
                list_cell.len()
            )));
        }
        let mut data = Vec::with_capacity(size);
        for i in 0..usize::from(segments) {
            let remaining = size.saturating_sub(data.len());
            if remaining == 0 {
                break;
            }
            let seg = u32_at(&list_cell, i.saturating_mul(4)).unwrap_or(NO_CELL);
            let seg_cell = cells.read(seg, "big data segment")?;
            let want = remaining.min(BIG_DATA_SEGMENT_BYTES as usize);
            let part = seg_cell.get(..want).ok_or_else(|| {
                corrupt(format!(
                    "segment {i} holds {} bytes, {want} expected",
                    seg_cell.len()
                ))
            })?;
            data.extend_from_slice(part);
        }
        if data.len() != size {
            return Err(corrupt(format!(
                "{segments} segments hold {} bytes, the value declares {size}",
                data.len()
            )));
        }
        Ok(data)
    }

    fn expect(&self, ok: bool, expected: &str) -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(Error::UnexpectedType {
                name: self.record.name.clone(),
                expected: expected.into(),
                actual: self.record.value_type.to_string(),
            })
        }
    }

    /// A REG_SZ / REG_EXPAND_SZ / REG_LINK value as text, up to its first NUL (a missing NUL
    /// is tolerated; unpaired surrogates become U+FFFD; %VARIABLES% are not expanded).
    pub fn as_string(&self) -> Result<String> {
        let t = self.record.value_type;
        self.expect(
            matches!(t, ValueType::Sz | ValueType::ExpandSz | ValueType::Link),
            "REG_SZ or REG_EXPAND_SZ",
        )?;
        Ok(utf16_strings(&self.data()?)
            .into_iter()
            .next()
            .unwrap_or_default())
    }

    /// A REG_MULTI_SZ value as its list of strings (ends at the first empty string).
    pub fn as_multi_string(&self) -> Result<Vec<String>> {
        self.expect(self.record.value_type == ValueType::MultiSz, "REG_MULTI_SZ")?;
        Ok(utf16_strings(&self.data()?))
    }

    /// A REG_DWORD (little-endian) or REG_DWORD_BIG_ENDIAN value.
    pub fn as_u32(&self) -> Result<u32> {
        let t = self.record.value_type;
        self.expect(
            matches!(t, ValueType::Dword | ValueType::DwordBigEndian),
            "REG_DWORD",
        )?;
        let data = self.data()?;
        let bytes: [u8; 4] = data.as_slice().try_into().map_err(|_| {
            Error::corrupt(
                "value data",
                crate::file_offset(self.record.cell_offset),
                format!("REG_DWORD of {} bytes", data.len()),
            )
        })?;
        Ok(if t == ValueType::Dword {
            u32::from_le_bytes(bytes)
        } else {
            u32::from_be_bytes(bytes)
        })
    }

    /// A REG_QWORD value.
    pub fn as_u64(&self) -> Result<u64> {
        self.expect(self.record.value_type == ValueType::Qword, "REG_QWORD")?;
        let data = self.data()?;
        let bytes: [u8; 8] = data.as_slice().try_into().map_err(|_| {
            Error::corrupt(
                "value data",
                crate::file_offset(self.record.cell_offset),
                format!("REG_QWORD of {} bytes", data.len()),
            )
        })?;
        Ok(u64::from_le_bytes(bytes))
    }
}

/// Splits UTF-16LE data at NULs into strings, stopping at the first empty one; an odd trailing
/// byte is ignored and a missing final NUL is tolerated.
pub fn utf16_strings(data: &[u8]) -> Vec<String> {
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| c.try_into().map(u16::from_le_bytes).unwrap_or(0))
        .collect();
    units
        .split(|&u| u == 0)
        .take_while(|s| !s.is_empty())
        .map(String::from_utf16_lossy)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn splits_strings_with_and_without_terminators() {
        let mut d = utf16("a\0bc\0\0");
        assert_eq!(utf16_strings(&d), ["a", "bc"]);
        d = utf16("abc");
        assert_eq!(utf16_strings(&d), ["abc"]);
        d.push(0x41);
        assert_eq!(utf16_strings(&d), ["abc"]);
        assert!(utf16_strings(&[]).is_empty());
    }
}

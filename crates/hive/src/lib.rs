//! A small read-only reader of Windows registry hive files (regf), enough for the BCD store and
//! the SOFTWARE hive. Written for winre, which is MIT OR Apache-2.0 (the `nt-hive` crate is GPL).
//!
//! The hive is read through [`ReadAt`], one cell at a time with a 1 MiB page cache, so a 100 MiB
//! SOFTWARE hive inside a disk image is never loaded whole. Every offset is checked against the
//! hive bins data, every size against its cell and a named cap, and subkey lists against their
//! key's recorded count, so hostile input yields [`Error::Corrupt`], never a panic or a hang.
//!
//! ```no_run
//! # fn main() -> winre_hive::Result<()> {
//! let hive = winre_hive::Hive::open(winre_readat::FileReader::open("SOFTWARE")?)?;
//! let key = hive.key(r"Microsoft\Windows NT\CurrentVersion")?;
//! if let Some(v) = key.and_then(|k| k.value("WinREVersion").transpose()).transpose()? {
//!     println!("{}", v.as_string()?);
//! }
//! # Ok(()) }
//! ```
//!
//! Not read: transaction logs (.LOG1/.LOG2; a dirty hive is reported by [`Hive::health`]), class
//! names, security descriptors, volatile keys, hive versions before 1.2.

#![forbid(unsafe_code)]

mod base_block;
mod bins;
mod cell;
mod error;
mod key;
mod name;
mod value;

pub use base_block::{checksum, BaseBlock, HiveHealth, BASE_BLOCK_BYTES};
pub use bins::BinsSummary;
pub use cell::{MAX_CELL_BYTES, NO_CELL};
pub use error::{Error, Result};
pub use key::{Key, KeyNode, Subkeys, MAX_SUBKEYS_PER_KEY, MAX_VALUES_PER_KEY};
pub use name::eq_ignore_case;
pub use value::{
    utf16_strings, Value, ValueRecord, ValueType, BIG_DATA_SEGMENT_BYTES, MAX_VALUE_BYTES,
};
pub use winre_readat::ReadAt;

use cell::Cells;

/// File offset of a cell offset (cell offsets are relative to the hive bins data).
pub(crate) fn file_offset(cell_offset: u32) -> u64 {
    BASE_BLOCK_BYTES.saturating_add(u64::from(cell_offset))
}

/// An open registry hive.
pub struct Hive<R> {
    base: BaseBlock,
    cells: Cells<R>,
}

impl<R: ReadAt> Hive<R> {
    /// Reads and checks the base block and the first hive bin header of `reader`. Refuses
    /// transaction logs, hive versions other than 1.2 to 1.6, and files shorter than the hive
    /// bins data they declare. A dirty hive opens; see [`Hive::health`].
    pub fn open(reader: R) -> Result<Self> {
        let mut header = [0u8; 512];
        reader.read_exact_at(0, &mut header).map_err(|e| {
            Error::corrupt(
                "base block",
                0,
                format!("cannot read the 512-byte header ({e})"),
            )
        })?;
        let base = BaseBlock::parse(&header)?;
        let bins = base.hive_bins_data_size_bytes;
        let needed = BASE_BLOCK_BYTES.saturating_add(u64::from(bins));
        if reader.len() < needed {
            return Err(Error::corrupt(
                "base block",
                0,
                format!(
                    "the hive declares {bins} bytes of hive bins data ({needed} bytes in all), the file holds {} (truncated?)",
                    reader.len()
                ),
            ));
        }
        let mut hbin = [0u8; 32];
        reader.read_exact_at(BASE_BLOCK_BYTES, &mut hbin)?;
        let bin_offset = cell::u32_at(&hbin, 4).unwrap_or(u32::MAX);
        let bin_size = cell::u32_at(&hbin, 8).unwrap_or(0);
        if hbin.get(..4) != Some(b"hbin".as_slice())
            || bin_offset != 0
            || bin_size == 0
            || bin_size & (base_block::HBIN_ALIGN_BYTES - 1) != 0
            || bin_size > bins
        {
            return Err(Error::corrupt(
                "hive bin",
                BASE_BLOCK_BYTES,
                format!(
                    "first hive bin header: signature {:02x?}, offset {bin_offset}, size {bin_size} \
                     (expected \"hbin\", 0, a multiple of 4096 up to {bins})",
                    hbin.get(..4).unwrap_or(&[])
                ),
            ));
        }
        Ok(Hive {
            cells: Cells::new(reader, bins),
            base,
        })
    }

    /// The checked base block.
    pub fn base_block(&self) -> &BaseBlock {
        &self.base
    }

    /// Whether the primary file is consistent (sequence numbers, header checksum).
    pub fn health(&self) -> HiveHealth {
        self.base.health()
    }

    /// The root key.
    pub fn root(&self) -> Result<Key<'_, R>> {
        Key::read(self, self.base.root_cell_offset)
    }

    /// The key at a backslash-separated path below the root, if it exists.
    pub fn key(&self, path: &str) -> Result<Option<Key<'_, R>>> {
        self.root()?.path(path)
    }

    /// The underlying reader.
    pub fn reader(&self) -> &R {
        self.cells.reader()
    }
}

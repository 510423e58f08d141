//! Cells: the allocation unit of the hive bins data, read on demand through a small page cache.
//!
//! Sources: msuhanov/regf specification, sections "Hive bin" and "Cell". A cell starts with an
//! i32 size (negative = allocated) that includes the size field itself; offsets to cells are
//! relative to the start of the hive bins data (file offset 4096), and 0xFFFFFFFF means "none".
//!
//! Hive bin headers are checked for the first bin only: finding the bin that holds an arbitrary
//! cell would need a scan of the whole file (100+ MiB for SOFTWARE). Instead every cell is checked
//! against the end of the hive bins data, its own size, and the caps below.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use winre_readat::ReadAt;

use crate::base_block::BASE_BLOCK_BYTES;
use crate::error::{Error, Result};

/// Offset value meaning "no cell".
pub const NO_CELL: u32 = u32::MAX;
/// Largest cell read. Windows keeps value data above 16344 bytes in "db" segments, so real cells
/// stay small; hivex writes big values as one cell, and 16 MiB leaves room for that.
pub const MAX_CELL_BYTES: u32 = 16 << 20;
/// Page size of the read cache.
const PAGE_BYTES: u32 = 4096;
/// Pages kept (1 MiB); the cache is simply emptied when full.
const CACHE_PAGES: usize = 256;
/// Reads longer than this bypass the cache.
const UNCACHED_READ_BYTES: usize = 64 << 10;

/// The hive bins data of one hive, read cell by cell.
pub struct Cells<R> {
    reader: R,
    bins_size_bytes: u32,
    cache: Mutex<HashMap<u32, Arc<[u8]>>>,
}

impl<R: ReadAt> Cells<R> {
    /// Wraps `reader`; the caller has checked that `4096 + bins_size_bytes <= reader.len()`.
    pub fn new(reader: R, bins_size_bytes: u32) -> Self {
        Cells {
            reader,
            bins_size_bytes,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The underlying reader.
    pub fn reader(&self) -> &R {
        &self.reader
    }

    /// Reads the data of the allocated cell at `rel` (relative to the hive bins data), without
    /// its size field. `what` names the expected record for error messages.
    pub fn read(&self, rel: u32, what: &str) -> Result<Vec<u8>> {
        let file_offset = BASE_BLOCK_BYTES.saturating_add(u64::from(rel));
        let corrupt = |detail: String| Error::corrupt(what, file_offset, detail);
        if rel == NO_CELL {
            return Err(corrupt(
                "the reference is 0xFFFFFFFF (no cell) where a cell is required".into(),
            ));
        }
        if rel & 3 != 0 {
            return Err(corrupt(format!(
                "cell offset 0x{rel:x} is not 4-byte aligned"
            )));
        }
        let header_end = rel
            .checked_add(4)
            .filter(|&end| end <= self.bins_size_bytes);
        if header_end.is_none() {
            return Err(corrupt(format!(
                "cell offset 0x{rel:x} is past the end of the hive bins data ({} bytes)",
                self.bins_size_bytes
            )));
        }
        let mut size_field = [0u8; 4];
        self.read_bins(rel, &mut size_field)?;
        let size = i32::from_le_bytes(size_field);
        if size >= 0 {
            return Err(corrupt(if size == 0 {
                "cell size is 0".to_string()
            } else {
                format!("cell is free (size +{size}), but a key or value refers to it")
            }));
        }
        let cell_bytes = size.unsigned_abs();
        if cell_bytes < 8 || cell_bytes & 3 != 0 {
            return Err(corrupt(format!(
                "cell size {cell_bytes} is below 8 or not a multiple of 4"
            )));
        }
        if cell_bytes > MAX_CELL_BYTES {
            return Err(corrupt(format!(
                "cell size {cell_bytes} exceeds the cap of {MAX_CELL_BYTES} bytes"
            )));
        }
        let end = rel
            .checked_add(cell_bytes)
            .filter(|&end| end <= self.bins_size_bytes);
        if end.is_none() {
            return Err(corrupt(format!(
                "cell of {cell_bytes} bytes at 0x{rel:x} runs past the end of the hive bins data ({} bytes)",
                self.bins_size_bytes
            )));
        }
        let data_len = usize::try_from(cell_bytes.saturating_sub(4))
            .map_err(|_| corrupt("cell size does not fit in memory".into()))?;
        let mut data = vec![0u8; data_len];
        self.read_bins(rel.saturating_add(4), &mut data)?;
        Ok(data)
    }

    /// Reads `buf.len()` bytes at `rel` in the hive bins data, checking the bounds.
    pub fn read_raw(&self, rel: u32, buf: &mut [u8]) -> Result<()> {
        let end = u32::try_from(buf.len())
            .ok()
            .and_then(|n| rel.checked_add(n));
        if end.is_none_or(|end| end > self.bins_size_bytes) {
            return Err(Error::corrupt(
                "hive bins data",
                BASE_BLOCK_BYTES.saturating_add(u64::from(rel)),
                format!(
                    "read of {} bytes runs past the end ({} bytes)",
                    buf.len(),
                    self.bins_size_bytes
                ),
            ));
        }
        self.read_bins(rel, buf)
    }

    /// Reads `buf.len()` bytes at `rel` in the hive bins data; the caller has bounds-checked.
    fn read_bins(&self, rel: u32, buf: &mut [u8]) -> Result<()> {
        if buf.len() > UNCACHED_READ_BYTES {
            let offset = BASE_BLOCK_BYTES.saturating_add(u64::from(rel));
            self.reader.read_exact_at(offset, buf)?;
            return Ok(());
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = u32::try_from(done).ok().and_then(|d| rel.checked_add(d));
            let Some(pos) = pos else {
                return Err(Error::corrupt("cell", u64::from(rel), "offset overflow"));
            };
            let page_start = pos & !(PAGE_BYTES - 1);
            let page = self.page(page_start)?;
            let in_page = usize::try_from(pos & (PAGE_BYTES - 1)).unwrap_or(0);
            let src = page.get(in_page..).unwrap_or(&[]);
            let dst = buf.get_mut(done..).unwrap_or(&mut []);
            let n = src.len().min(dst.len());
            if n == 0 {
                return Err(Error::corrupt(
                    "cell",
                    u64::from(pos),
                    "read past the hive bins data",
                ));
            }
            dst.get_mut(..n)
                .unwrap_or(&mut [])
                .copy_from_slice(src.get(..n).unwrap_or(&[]));
            done = done.saturating_add(n);
        }
        Ok(())
    }

    fn page(&self, page_start: u32) -> Result<Arc<[u8]>> {
        if let Ok(cache) = self.cache.lock() {
            if let Some(page) = cache.get(&page_start) {
                return Ok(Arc::clone(page));
            }
        }
        let len = PAGE_BYTES.min(self.bins_size_bytes.saturating_sub(page_start));
        let mut page = vec![0u8; len as usize];
        self.reader.read_exact_at(
            BASE_BLOCK_BYTES.saturating_add(u64::from(page_start)),
            &mut page,
        )?;
        let page: Arc<[u8]> = page.into();
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_PAGES {
                cache.clear();
            }
            cache.insert(page_start, Arc::clone(&page));
        }
        Ok(page)
    }
}

/// Little-endian field readers over a cell's bytes; `None` when the cell is too short.
pub fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    bytes
        .get(at..at.checked_add(2)?)?
        .try_into()
        .ok()
        .map(u16::from_le_bytes)
}

/// See [`u16_at`].
pub fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at.checked_add(4)?)?
        .try_into()
        .ok()
        .map(u32::from_le_bytes)
}

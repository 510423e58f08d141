//! A full walk of the hive bins and their cells, for integrity checks (`Hive::check_bins`).
//!
//! Sources: msuhanov/regf specification, "Hive bin" (signature "hbin", offset of the bin relative
//! to the hive bins data, size a multiple of 4096) and "Cell" (cells fill a bin without gaps).
//! Normal reads do not need this walk; it reads every cell header of the file once.

use serde::Serialize;

use crate::base_block::HBIN_ALIGN_BYTES;
use crate::cell::u32_at;
use crate::error::{Error, Result};
use crate::{file_offset, Hive, ReadAt};

/// What a walk of the hive bins found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BinsSummary {
    /// Number of hive bins.
    pub bins: u64,
    /// Cells marked allocated (negative size).
    pub allocated_cells: u64,
    /// Cells marked free (positive size).
    pub free_cells: u64,
    /// Bytes in allocated cells, size fields included.
    pub allocated_bytes: u64,
}

impl<R: ReadAt> Hive<R> {
    /// Walks every hive bin and every cell header in it, checking that bins follow each other
    /// with matching offsets and that cells fill each bin exactly. Refuses the first break.
    pub fn check_bins(&self) -> Result<BinsSummary> {
        let bins_size = self.base.hive_bins_data_size_bytes;
        let mut summary = BinsSummary {
            bins: 0,
            allocated_cells: 0,
            free_cells: 0,
            allocated_bytes: 0,
        };
        let mut bin_start = 0u32;
        while bin_start < bins_size {
            let mut header = [0u8; 32];
            self.cells.read_raw(bin_start, &mut header)?;
            let corrupt =
                |detail: String| Error::corrupt("hive bin", file_offset(bin_start), detail);
            if header.get(..4) != Some(b"hbin".as_slice()) {
                return Err(corrupt(format!(
                    "signature {:02x?}, expected \"hbin\"",
                    header.get(..4).unwrap_or(&[])
                )));
            }
            let recorded = u32_at(&header, 4).unwrap_or(u32::MAX);
            if recorded != bin_start {
                return Err(corrupt(format!(
                    "records offset 0x{recorded:x}, found at 0x{bin_start:x}"
                )));
            }
            let size = u32_at(&header, 8).unwrap_or(0);
            let bin_end = bin_start.checked_add(size).filter(|&end| end <= bins_size);
            let Some(bin_end) = bin_end.filter(|_| size != 0 && size & (HBIN_ALIGN_BYTES - 1) == 0)
            else {
                return Err(corrupt(format!(
                    "size {size} is not a non-zero multiple of 4096 within the hive bins data ({bins_size} bytes)"
                )));
            };
            summary.bins = summary.bins.saturating_add(1);
            let mut cell = bin_start.saturating_add(32);
            while cell < bin_end {
                let mut size_field = [0u8; 4];
                self.cells.read_raw(cell, &mut size_field)?;
                let raw = i32::from_le_bytes(size_field);
                let len = raw.unsigned_abs();
                let fits = cell.checked_add(len).is_some_and(|end| end <= bin_end);
                if len < 8 || len & 3 != 0 || !fits {
                    return Err(Error::corrupt(
                        "cell",
                        file_offset(cell),
                        format!("size {raw} does not fit the hive bin ending at 0x{bin_end:x} (or is below 8 / not a multiple of 4)"),
                    ));
                }
                if raw < 0 {
                    summary.allocated_cells = summary.allocated_cells.saturating_add(1);
                    summary.allocated_bytes =
                        summary.allocated_bytes.saturating_add(u64::from(len));
                } else {
                    summary.free_cells = summary.free_cells.saturating_add(1);
                }
                cell = cell.saturating_add(len);
            }
            bin_start = bin_end;
        }
        Ok(summary)
    }
}

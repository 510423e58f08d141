//! The `Read + Seek` view the `ntfs` crate reads through, with a read budget.
//!
//! The crate follows on-disk pointers (index subnodes, attribute lists) without remembering where
//! it has been, so a hostile volume whose B-tree points back at itself would keep it reading for
//! ever. Every operation gets a fresh cursor that refuses to read more than [`READ_BUDGET_BYTES`];
//! a loop then ends in an error instead of a hang.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use winre_readat::{Cursor, ReadAt};

/// Metadata one operation (a path lookup, opening a file) may read. Real lookups read kilobytes;
/// a file in a million fragments reads a few megabytes of MFT records.
pub const READ_BUDGET_BYTES: u64 = 256 * 1024 * 1024;

/// A cursor over the volume that fails once it has read its budget.
pub(crate) struct NtfsCursor {
    inner: Cursor<Arc<dyn ReadAt>>,
    remaining: u64,
}

impl NtfsCursor {
    pub(crate) fn new(volume: Arc<dyn ReadAt>) -> Self {
        Self::with_budget(volume, READ_BUDGET_BYTES)
    }

    pub(crate) fn with_budget(volume: Arc<dyn ReadAt>, budget_bytes: u64) -> Self {
        Self {
            inner: Cursor::new(volume),
            remaining: budget_bytes,
        }
    }
}

impl Read for NtfsCursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.remaining {
            return Err(io::Error::other(format!(
                "read more than {READ_BUDGET_BYTES} bytes of NTFS metadata in one operation: the volume's structures loop"
            )));
        }
        let n = self.inner.read(buf)?;
        self.remaining = self.remaining.saturating_sub(n as u64);
        Ok(n)
    }
}

impl Seek for NtfsCursor {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.inner.seek(to)
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_ends_reading() {
        let mut c = NtfsCursor::with_budget(Arc::new(vec![7u8; 100]), 10);
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).unwrap();
        c.seek(SeekFrom::Start(0)).unwrap();
        c.read_exact(&mut buf).unwrap();
        assert!(c
            .read_exact(&mut buf)
            .unwrap_err()
            .to_string()
            .contains("loop"));
    }
}

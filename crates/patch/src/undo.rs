//! `winre undo`: puts an image back as it was before a journaled patch, from the journal.
//!
//! A sealed journal (the patch may have written anything) is replayed in full: every saved
//! region is written back, newest record first, the file is cut back to its old length, and
//! every region is read back and checked against its CRC32. A journal without a seal means the
//! process stopped while saving, before any image write; `undo` checks that the image's length
//! and mtime are still those recorded, and then has nothing to restore.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::ImageFile;
use crate::journal::{self, JournalState};

/// What an undo did.
#[derive(Debug, Clone, Serialize)]
pub struct UndoReport {
    /// The journal's state before the undo.
    pub state_before: JournalState,
    /// Regions written back.
    pub regions_restored: u64,
    /// Bytes written back.
    pub bytes_restored: u64,
    /// The file length set, when the patch had changed it.
    pub truncated_to: Option<u64>,
    /// Where a torn or damaged journal tail was cut off (offset, reason).
    pub torn_tail: Option<(u64, String)>,
    /// True when the image had not been written and nothing needed restoring.
    pub image_was_untouched: bool,
}

/// Restores `image_path` from the journal at `journal_path`. Refuses a journal made for another
/// file (device and inode differ), a sealed journal that lacks records its header announced
/// (truncated or damaged after it was written: a full restore is impossible), and an unsealed
/// journal whose image has been changed since.
pub fn undo(image_path: &Path, journal_path: &Path, allow_device: bool) -> Result<UndoReport> {
    let j = journal::read(journal_path)?;
    let mut image = ImageFile::open(image_path, allow_device)?;
    let now = image.identity()?;
    if now.dev != j.identity.dev || now.ino != j.identity.ino {
        return Err(Error::Refused(format!(
            "journal {} was written for {} (device {}, inode {}), not this file (device {}, inode {})",
            journal_path.display(),
            j.image_path,
            j.identity.dev,
            j.identity.ino,
            now.dev,
            now.ino
        )));
    }
    let mut report = UndoReport {
        state_before: j.state,
        regions_restored: 0,
        bytes_restored: 0,
        truncated_to: None,
        torn_tail: j.torn_at.clone(),
        image_was_untouched: false,
    };
    match j.state {
        JournalState::Undone => return Ok(report),
        JournalState::Saving => {
            if now.len != j.identity.len
                || now.mtime_sec != j.identity.mtime_sec
                || now.mtime_nsec != j.identity.mtime_nsec
            {
                let tail = j
                    .torn_at
                    .as_ref()
                    .map(|(at, why)| format!(" (it ends in a damaged record at byte {at}: {why})"))
                    .unwrap_or_default();
                return Err(Error::Refused(format!(
                    "journal {} has no seal record{tail}, but the image has changed since the journal was begun: the journal was cut short after the resize wrote, and the image cannot be fully restored from it",
                    journal_path.display()
                )));
            }
            report.image_was_untouched = true;
        }
        JournalState::Sealed | JournalState::Complete => {
            if j.records_read() != j.planned_records {
                return Err(Error::corrupt(
                    "journal",
                    j.torn_at.as_ref().map_or(j.file_len, |t| t.0),
                    format!(
                        "the journal is sealed but only {} of its {} saved regions read back intact ({}); the image cannot be fully restored from it",
                        j.records_read(),
                        j.planned_records,
                        j.torn_at.as_ref().map_or("records missing", |t| t.1.as_str())
                    ),
                ));
            }
            // Write back the bytes within the old length first (the disk may be longer now).
            let mut buf = Vec::new();
            for region in j.regions.iter().rev() {
                journal::region_bytes(journal_path, region, &mut buf)?;
                image.write_at(region.offset, &buf)?;
                report.regions_restored = report.regions_restored.saturating_add(1);
                report.bytes_restored = report.bytes_restored.saturating_add(region.len);
            }
            if image.disk_len() != j.identity.len && image.kind() == crate::image::ImageKind::Raw {
                image.set_len(j.identity.len)?;
                report.truncated_to = Some(j.identity.len);
            }
            image.sync()?;
            for region in &j.regions {
                buf.resize(crate::bytes::usize_of(region.len, "journal region")?, 0);
                image.read_at(region.offset, &mut buf)?;
                if crc32fast::hash(&buf) != region.crc32 {
                    return Err(Error::Verify(format!(
                        "restored region at {} ({} bytes) does not match its journal CRC32",
                        region.offset, region.len
                    )));
                }
            }
        }
    }
    // For a container: qemu-nbd has closed it cleanly before the journal says it is restored.
    image.close()?;
    journal::append_state(journal_path, &j, JournalState::Undone)?;
    Ok(report)
}

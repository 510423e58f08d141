//! Whether an NTFS volume was left in a state where its bytes on disk are not the whole truth:
//! the dirty flag, a live hibernation file (hibernate or Fast Startup), a `$LogFile` whose
//! restart area says transactions may still need replaying. Forensic readers note it (what is
//! read may be older than what Windows holds); writers refuse such a volume.
//!
//! Sources: the Linux-NTFS documentation (flatcap.github.io/linux-ntfs: `$Volume`
//! `$VOLUME_INFORMATION` flags, bit 0 "dirty"; `$LogFile` restart page "RSTR"/"CHKD" with the
//! restart area offset at 0x18, the restart area's `client_in_use_list` at 0x0C and `flags` at
//! 0x0E, bit 1 "volume is clean"); ntfs-3g's logfile.c, which calls a log clean when no client
//! is in use or the clean bit is set; `hiberfil.sys` headers "HIBR" / "WAKE" (case varies) as
//! ntfs-3g's volume.c and Volatility read them.

use serde::Serialize;
use winre_readat::ReadAt;

use super::NtfsVolume;
use crate::Result;

/// The hibernation file at the root of a Windows volume.
pub const HIBERFIL_PATH: &str = r"\hiberfil.sys";

/// `$Volume` flag: the volume was not cleanly unmounted (or a check is scheduled).
pub const VOLUME_IS_DIRTY: u16 = 0x0001;

/// MFT record of `$LogFile`.
const LOGFILE_RECORD: u64 = 2;
/// Restart area flag: the volume was cleanly shut down.
const RESTART_VOLUME_IS_CLEAN: u16 = 0x0002;
/// `client_in_use_list` when no log client is active.
const LOGFILE_NO_CLIENT: u16 = 0xffff;
/// Bytes of `$LogFile` read: the first restart page's first sector (the fields used lie there,
/// before the update sequence fix-up at bytes 510..512).
const RESTART_BYTES: usize = 510;

/// What an NTFS volume's own metadata says about how it was left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VolumeState {
    /// `$Volume`'s dirty flag is set.
    pub dirty: bool,
    /// The first four bytes of `\hiberfil.sys` when they are a live header (HIBR, WAKE).
    pub hibernation: Option<String>,
    /// Why `$LogFile` is not clean, when it is not.
    pub logfile_unclean: Option<String>,
}

impl VolumeState {
    /// Reads the flags, the hibernation file's header and `$LogFile`'s first restart page.
    pub fn read(volume: &NtfsVolume) -> Result<Self> {
        Ok(Self {
            dirty: volume.volume_flags()? & VOLUME_IS_DIRTY != 0,
            hibernation: hibernation(volume)?,
            logfile_unclean: logfile_unclean(volume)?,
        })
    }
}

/// The live header of `\hiberfil.sys` ("HIBR", "WAKE", any case), if it has one.
pub fn hibernation(volume: &NtfsVolume) -> Result<Option<String>> {
    let Some(file) = volume.open_file(HIBERFIL_PATH)? else {
        return Ok(None);
    };
    if file.size() < 4 {
        return Ok(None);
    }
    let mut magic = [0u8; 4];
    file.data_reader()?.read_exact_at(0, &mut magic)?;
    let live = magic.eq_ignore_ascii_case(b"hibr") || magic.eq_ignore_ascii_case(b"wake");
    Ok(live.then(|| String::from_utf8_lossy(&magic).into_owned()))
}

fn logfile_unclean(volume: &NtfsVolume) -> Result<Option<String>> {
    let file = volume.open_record(LOGFILE_RECORD)?;
    if file.size() < RESTART_BYTES as u64 {
        return Ok(None);
    }
    let mut page = [0u8; RESTART_BYTES];
    file.data_reader()?.read_exact_at(0, &mut page)?;
    Ok(restart_page_unclean(&page))
}

/// Why the restart page `page` (the first 510 bytes of `$LogFile`) says the log is not clean;
/// `None` for a clean one or an emptied log (all 0xFF, as mkntfs and ntfs-3g leave it).
pub fn restart_page_unclean(page: &[u8]) -> Option<String> {
    let u16_at = |at: usize| -> Option<u16> {
        let bytes = page.get(at..at.checked_add(2)?)?;
        Some(u16::from_le_bytes([*bytes.first()?, *bytes.get(1)?]))
    };
    if page.iter().all(|&b| b == 0xff) || page.iter().all(|&b| b == 0) {
        return None;
    }
    let magic = page.get(..4).unwrap_or_default();
    if magic != b"RSTR" && magic != b"CHKD" {
        return Some(format!(
            "$LogFile does not start with a restart page (magic {:?}, expected \"RSTR\")",
            String::from_utf8_lossy(magic)
        ));
    }
    let area = usize::from(u16_at(0x18)?);
    let (Some(in_use), Some(flags)) = (
        area.checked_add(0x0c).and_then(u16_at),
        area.checked_add(0x0e).and_then(u16_at),
    ) else {
        return Some(format!(
            "$LogFile's restart area offset {area} lies outside its first sector"
        ));
    };
    (in_use != LOGFILE_NO_CLIENT && flags & RESTART_VOLUME_IS_CLEAN == 0).then(|| {
        format!(
            "$LogFile's restart area has a log client in use (list head {in_use}) and its clean flag unset (flags 0x{flags:04x}): logged changes may not be on disk yet"
        )
    })
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    fn page(in_use: u16, flags: u16) -> Vec<u8> {
        let mut p = vec![0u8; RESTART_BYTES];
        p[..4].copy_from_slice(b"RSTR");
        p[0x18..0x1a].copy_from_slice(&0x30u16.to_le_bytes());
        p[0x30 + 0x0c..0x30 + 0x0e].copy_from_slice(&in_use.to_le_bytes());
        p[0x30 + 0x0e..0x30 + 0x10].copy_from_slice(&flags.to_le_bytes());
        p
    }

    #[test]
    #[allow(clippy::indexing_slicing)]
    fn restart_areas() {
        assert_eq!(restart_page_unclean(&[0xff; RESTART_BYTES]), None);
        assert_eq!(restart_page_unclean(&page(0xffff, 0)), None);
        assert_eq!(
            restart_page_unclean(&page(0, RESTART_VOLUME_IS_CLEAN)),
            None
        );
        assert!(restart_page_unclean(&page(0, 0)).is_some_and(|w| w.contains("in use")));
        let mut junk = page(0, 0);
        junk[..4].copy_from_slice(b"BAAD");
        assert!(restart_page_unclean(&junk).is_some_and(|w| w.contains("BAAD")));
        let mut far = page(0, 0);
        far[0x18..0x1a].copy_from_slice(&0x1f8u16.to_le_bytes());
        assert!(restart_page_unclean(&far).is_some_and(|w| w.contains("outside")));
    }
}

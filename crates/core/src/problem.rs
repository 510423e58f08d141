//! A finding in a report: a stable machine code beside the sentence for people.
//!
//! The codes are a public contract (README, "Problem codes"): pipelines match on `code`, never on
//! `message`, so a code is never renamed or reused; a new kind of finding gets a new code.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One finding: `{"code": "short_of_space", "message": "partition 4 has ..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// What kind of finding this is.
    pub code: ProblemCode,
    /// One human-readable sentence.
    pub message: String,
}

impl Problem {
    pub fn new(code: ProblemCode, message: impl Into<String>) -> Self {
        Problem {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Declares [`ProblemCode`] from one list: each variant with its JSON name, so the enum, its
/// serde names and [`ProblemCode::as_str`] cannot drift apart. Add new codes at the end.
macro_rules! problem_codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// The kinds of finding, written in JSON as their snake_case names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum ProblemCode {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)*
        }

        impl ProblemCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ProblemCode] = &[$(ProblemCode::$variant),*];

            /// The code as written in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ProblemCode::$variant => $name,)*
                }
            }
        }
    };
}

problem_codes! {
    /// A BitLocker volume winre cannot look inside.
    Bitlocker = "bitlocker",
    /// An NTFS volume (or a file on it) could not be read.
    VolumeUnreadable = "volume_unreadable",
    /// No NTFS volume with `\Windows\System32`.
    NoOsVolume = "no_os_volume",
    /// ReAgent.xml exists but could not be read or parsed.
    ReagentUnreadable = "reagent_unreadable",
    /// The OS volume has no ReAgent.xml.
    NoReagent = "no_reagent",
    /// The BCD store could not be read.
    BcdUnreadable = "bcd_unreadable",
    /// The SOFTWARE hive could not be read.
    SoftwareUnreadable = "software_unreadable",
    /// The registry's WinREVersion is not a version.
    RegistryVersionInvalid = "registry_version_invalid",
    /// Winre.wim was found but could not be read.
    WimUnreadable = "wim_unreadable",
    /// ReAgent.xml points at a partition offset where no partition starts.
    ReagentOffsetMismatch = "reagent_offset_mismatch",
    /// No Winre.wim anywhere.
    WinreNotFound = "winre_not_found",
    /// WinRE is disabled.
    WinreDisabled = "winre_disabled",
    /// Winre.wim is not where ReAgent.xml says.
    WinreElsewhere = "winre_elsewhere",
    /// ReAgent.xml and the BCD name different WinRE entries.
    BcdIdMismatch = "bcd_id_mismatch",
    /// The OS loader has no recoverysequence.
    NoRecoverySequence = "no_recovery_sequence",
    /// The WIM XML and the registry disagree on the WinRE version.
    VersionMismatch = "version_mismatch",
    /// Winre.wim is a sparse file.
    SparseWim = "sparse_wim",
    /// The recovery partition lies before the OS partition.
    RecoveryBeforeOs = "recovery_before_os",
    /// The WinRE volume has less free space than updates need.
    ShortOfSpace = "short_of_space",
    /// The free space of the WinRE volume could not be counted.
    FreeSpaceUnknown = "free_space_unknown",
    /// A file version inside Winre.wim (winpeshl.exe, winload) disagrees with the WIM XML.
    FileVersionMismatch = "file_version_mismatch",
    /// The file is not a disk image at all (an ELF, a PNG, an archive, ...).
    NotADiskImage = "not_a_disk_image",
    /// A partition ends past the end of the image (a truncated copy).
    PartitionPastEnd = "partition_past_end",
    /// A partition table, but no partition holds a file system winre can read.
    NoFilesystem = "no_filesystem",
    /// No partition table and no file system at the start of the disk (blank, or unknown data).
    NoPartitionTable = "no_partition_table",
    /// Something else the partition table reader noticed about a partition (overlap, outside the
    /// usable area, first sector unreadable).
    PartitionTable = "partition_table",
    /// No partition table: the image is one volume (listed as partition 1).
    BareVolume = "bare_volume",
    /// The NTFS dirty flag is set (`$Volume` flags): the volume was not cleanly unmounted.
    VolumeDirty = "volume_dirty",
    /// `hiberfil.sys` has a live header (HIBR/WAKE): Windows is hibernated or used Fast Startup.
    OsHibernated = "os_hibernated",
    /// `$LogFile` has a restart area that is not clean: transactions may not be applied.
    LogfileUnclean = "logfile_unclean",
    /// A winre resize journal lies next to the image.
    ResizeJournal = "resize_journal",
    /// Winre.wim failed verification (`--verify`).
    WimCorrupt = "wim_corrupt",
}

impl ProblemCode {
    /// The exit code `winre scan` gives an image with this finding, for findings that say the
    /// image is not what it seems (2: not readable as a disk, 1: damaged); `None` for the rest.
    pub fn scan_exit_code(self) -> Option<u8> {
        match self {
            ProblemCode::NotADiskImage => Some(2),
            ProblemCode::PartitionPastEnd
            | ProblemCode::NoFilesystem
            | ProblemCode::NoPartitionTable => Some(1),
            _ => None,
        }
    }
}

/// Adds a finding to `problems`.
pub fn push(problems: &mut Vec<Problem>, code: ProblemCode, message: impl Into<String>) {
    problems.push(Problem::new(code, message));
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_is_code_and_message_and_as_str_matches_serde() {
        let p = Problem::new(ProblemCode::ShortOfSpace, "short");
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"code":"short_of_space","message":"short"}"#
        );
        let back: Problem = serde_json::from_str(r#"{"code":"no_reagent","message":"m"}"#).unwrap();
        assert_eq!(back.code, ProblemCode::NoReagent);
        for &code in ProblemCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert!(code
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }
}

//! Findings of a scan as data: a stable machine code and a sentence for people.
//!
//! The codes are a public contract (README, "Problem codes"): scripts match on `code`, people read
//! `message`. Add codes; never rename one.

use serde::Serialize;

/// One finding: `{"code": "short_of_space", "message": "partition 4 has ..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What kind of finding it is.
    pub code: ProblemCode,
    /// The finding, one sentence naming what and where.
    pub message: String,
}

impl Problem {
    /// A finding with its code.
    pub fn new(code: ProblemCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The stable machine code of a [`Problem`] (serialized in snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    // The image itself.
    /// The file is not a disk image at all (an ELF, a PNG, an archive, ...).
    NotADiskImage,
    /// A partition ends past the end of the image (a truncated copy).
    PartitionPastEnd,
    /// A partition table, but no partition holds a file system winre can read.
    NoFilesystem,
    /// No partition table and no file system at the start of the disk (blank, or unknown data).
    NoPartitionTable,
    /// Something else the partition table reader noticed about a partition (overlap, outside the
    /// usable area, first sector unreadable).
    PartitionTable,
    /// No partition table: the image is one volume (listed as partition 1).
    BareVolume,
    /// A BitLocker-encrypted partition.
    Bitlocker,
    /// An NTFS volume that could not be read.
    VolumeUnreadable,
    // Volume state (forensic notes: the bytes read may be older than what Windows holds).
    /// The NTFS dirty flag is set (`$Volume` flags): the volume was not cleanly unmounted.
    VolumeDirty,
    /// `hiberfil.sys` has a live header (HIBR/WAKE): Windows is hibernated or used Fast Startup.
    OsHibernated,
    /// `$LogFile` has a restart area that is not clean: transactions may not be applied.
    LogfileUnclean,
    /// A winre resize journal lies next to the image.
    ResizeJournal,
    // WinRE.
    /// No NTFS volume with `\Windows\System32`.
    NoOsVolume,
    /// ReAgent.xml is missing or cannot be read.
    Reagent,
    /// The BCD store cannot be read, or its WinRE entries are inconsistent.
    Bcd,
    /// The SOFTWARE hive cannot be read, or its WinREVersion is not a version.
    SoftwareHive,
    /// No Winre.wim anywhere winre looks.
    WinreNotFound,
    /// WinRE is disabled.
    WinreDisabled,
    /// Winre.wim is not where ReAgent.xml or the BCD say.
    WinreLocation,
    /// Winre.wim could not be read (or looked for).
    WimUnreadable,
    /// Winre.wim failed verification (`--verify`).
    WimCorrupt,
    /// Winre.wim's XML version and the registry's claim differ.
    VersionMismatch,
    /// Winre.wim is a sparse file.
    SparseWim,
    /// The recovery partition lies before the OS partition.
    RecoveryBeforeOs,
    /// The WinRE volume has less free space than updates need (or it cannot be counted).
    ShortOfSpace,
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

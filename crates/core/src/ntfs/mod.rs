//! NTFS access for the scan: open a volume inside a partition, find files by path as Windows
//! does (case-insensitively), read them in place through their data runs, and count free space.
//!
//! Parsing is done by the `ntfs` crate (Colin Finck); this module adapts it to
//! [`winre_readat::ReadAt`], gathers the data runs of files whose `$DATA` spans several MFT
//! records, enforces the valid data length, and turns the crate's errors into ours.

pub(crate) mod cursor;
mod file;
mod free_space;
pub mod layout;
mod record;
pub mod state;
pub(crate) mod volume;

pub use file::{DataRun, FileAttributes, FileHandle, FileTimes};
pub use free_space::FreeSpace;
pub use volume::{DirectoryEntry, NtfsVolume, MAX_PATH_COMPONENTS};

#[cfg(test)]
mod tests {
    /// The scan shares a volume and its files between rayon workers.
    #[test]
    fn volume_and_files_are_shareable() {
        fn shareable<T: Send + Sync>() {}
        shareable::<super::NtfsVolume>();
        shareable::<super::FileHandle>();
    }
}

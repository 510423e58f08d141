//! Raw (dd) images: the file is the disk.

use std::path::Path;
use std::sync::Arc;

use winre_readat::{FileReader, ReadAt};

use super::{ContainerInfo, Disk, Format};
use crate::Result;

/// Opens a raw image. The logical sector size is 512 until the partition table says otherwise.
pub fn open(path: &Path) -> Result<Disk> {
    Ok(from_reader(Arc::new(FileReader::open(path)?)))
}

/// A raw image over any byte source.
pub fn from_reader(file: Arc<dyn ReadAt>) -> Disk {
    let size = file.len();
    Disk {
        reader: file,
        info: ContainerInfo {
            format: Format::Raw,
            variant: "raw".into(),
            virtual_size: size,
            sector_size: 512,
            allocated_bytes: None,
            notes: Vec::new(),
            chain: Vec::new(),
        },
    }
}

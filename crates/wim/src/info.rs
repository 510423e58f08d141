//! The `wim info` report.

use serde::Serialize;
use winre_readat::ReadAt;

use crate::blob_table::BlobEntry;
use crate::header::HeaderSummary;
use crate::wim::Wim;
use crate::xml::ImageXml;

/// What `winre wim info` shows: header fields, the XML's images and a summary of the blob table.
#[derive(Debug, Clone, Serialize)]
pub struct WimInfo {
    /// Size of the WIM file.
    pub file_size_bytes: u64,
    /// Header fields.
    pub header: HeaderSummary,
    /// True when the header names an integrity table.
    pub has_integrity_table: bool,
    /// The XML's root TOTALBYTES.
    pub xml_total_bytes: Option<u64>,
    /// Entries in the blob table, all kinds.
    pub blob_table_entries: usize,
    /// Distinct blobs (metadata included).
    pub blob_count: usize,
    /// True when some blobs sit in solid resources.
    pub has_solid_resources: bool,
    /// Number of solid resources.
    pub solid_resource_count: usize,
    /// One per image.
    pub images: Vec<ImageInfo>,
    /// Oddities that did not stop reading.
    pub warnings: Vec<String>,
}

/// One image: its XML fields and its metadata resource.
#[derive(Debug, Clone, Serialize)]
pub struct ImageInfo {
    /// XML fields (index, name, ..., version).
    #[serde(flatten)]
    pub xml: ImageXml,
    /// True for the boot image.
    pub bootable: bool,
    /// Its metadata resource, when the blob table has one.
    pub metadata: Option<BlobEntry>,
}

impl WimInfo {
    /// Builds the report from an open WIM (reads nothing more).
    pub fn new<R: ReadAt>(wim: &Wim<R>) -> Self {
        let header = wim.header();
        Self {
            file_size_bytes: wim.reader().len(),
            header: HeaderSummary::from(header),
            has_integrity_table: header.integrity.is_some(),
            xml_total_bytes: wim.xml().total_bytes,
            blob_table_entries: wim.blob_table().entry_count,
            blob_count: wim.blob_table().blobs.len(),
            has_solid_resources: wim.blob_table().has_solid,
            solid_resource_count: wim.blob_table().solid_resources.len(),
            images: wim
                .images()
                .iter()
                .map(|xml| ImageInfo {
                    xml: xml.clone(),
                    bootable: header.boot_index != 0 && header.boot_index == xml.index,
                    metadata: wim.image_metadata(xml.index).copied(),
                })
                .collect(),
            warnings: wim.warnings().to_vec(),
        }
    }
}

//! An open WIM: header, blob table and XML data, read through any [`ReadAt`].

use winre_readat::ReadAt;

use crate::blob_table::{BlobEntry, BlobTable, MAX_BLOB_TABLE_BYTES};
use crate::codec::Compression;
use crate::header::{Header, HEADER_SIZE};
use crate::integrity::IntegrityTable;
use crate::reshdr::ResourceHeader;
use crate::resource::{read_to_vec, stream, DecoderPool, Fault, ResourceSpec};
use crate::xml::{self, ImageXml, WimXml, MAX_XML_BYTES};
use crate::{Error, Result};

/// Reads and checks the 208-byte header at the start of `reader`.
pub fn read_header<R: ReadAt + ?Sized>(reader: &R) -> Result<Header> {
    let len = reader.len();
    if len < HEADER_SIZE {
        return Err(Error::corrupt(
            "WIM header",
            0,
            format!("file holds {len} bytes, a header needs {HEADER_SIZE}"),
        ));
    }
    let mut buf = [0u8; HEADER_SIZE as usize];
    reader.read_exact_at(0, &mut buf)?;
    Header::parse(&buf)
}

/// A single-part WIM opened for reading.
#[derive(Debug)]
pub struct Wim<R> {
    reader: R,
    header: Header,
    blob_table: BlobTable,
    xml: WimXml,
    warnings: Vec<String>,
}

impl<R: ReadAt> Wim<R> {
    /// Opens a WIM: reads the header, the XML data and the blob table, and nothing else (a few
    /// KiB to a few MiB for a real WIM), so it is cheap on a WIM inside a disk image. Refuses a
    /// bad header or structure as [`Error::Corrupt`]; split, pipable and encrypted WIMs and
    /// metadata in solid resources as [`Error::Unsupported`]. Solid WIMs open (their header,
    /// XML and images can be listed) but their blobs cannot be read yet.
    pub fn open(reader: R) -> Result<Self> {
        let header = read_header(&reader)?;
        Self::open_with_header(reader, header)
    }

    /// [`Wim::open`] with a header already read by [`read_header`].
    pub fn open_with_header(reader: R, header: Header) -> Result<Self> {
        let file_len = reader.len();
        header.check_within(file_len)?;
        let xml_bytes = read_to_vec(
            &reader,
            &Self::spec_of(&header, header.xml),
            MAX_XML_BYTES.min(file_len),
            "XML data",
        )?;
        let xml = xml::parse(&xml_bytes, header.xml.offset, header.image_count)?;
        drop(xml_bytes);
        let table_cap = MAX_BLOB_TABLE_BYTES.min(file_len);
        let table_bytes = read_to_vec(
            &reader,
            &Self::spec_of(&header, header.blob_table),
            table_cap,
            "blob table",
        )?;
        let blob_table = BlobTable::parse(&table_bytes, header.blob_table.offset, &header)?;
        let mut warnings = blob_table.warnings.clone();
        let found = blob_table.metadata.len();
        if u64::try_from(found).unwrap_or(u64::MAX) < u64::from(header.image_count) {
            warnings.push(format!(
                "metadata resources found for {found} of {} images",
                header.image_count
            ));
        }
        Ok(Self {
            reader,
            header,
            blob_table,
            xml,
            warnings,
        })
    }

    fn spec_of(header: &Header, reshdr: ResourceHeader) -> ResourceSpec {
        ResourceSpec {
            reshdr,
            compression: header.compression,
            chunk_size_bytes: header.chunk_size_bytes,
        }
    }

    /// How to read the resource `reshdr` of this WIM.
    pub fn spec(&self, reshdr: ResourceHeader) -> ResourceSpec {
        Self::spec_of(&self.header, reshdr)
    }

    /// The checked header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The blob table.
    pub fn blob_table(&self) -> &BlobTable {
        &self.blob_table
    }

    /// The XML data.
    pub fn xml(&self) -> &WimXml {
        &self.xml
    }

    /// The images' XML fields, by index (1, 2, ...).
    pub fn images(&self) -> &[ImageXml] {
        &self.xml.images
    }

    /// The metadata resource of image `index` (1-based), matched in blob table order.
    pub fn image_metadata(&self, index: u32) -> Option<&BlobEntry> {
        self.blob_table
            .metadata
            .get(usize::try_from(index).ok()?.checked_sub(1)?)
    }

    /// Oddities that do not stop reading (duplicate entries, missing metadata).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The underlying reader.
    pub fn reader(&self) -> &R {
        &self.reader
    }

    /// Reads the integrity table, when there is one (see [`IntegrityTable::read`]).
    pub fn integrity_table(&self) -> Result<Option<IntegrityTable>> {
        IntegrityTable::read(&self.reader, &self.header)
    }

    /// Reads a whole blob into memory, refusing one larger than `max_bytes`.
    pub fn read_blob(&self, blob: &BlobEntry, max_bytes: u64) -> Result<Vec<u8>> {
        read_to_vec(
            &self.reader,
            &self.spec(blob.reshdr),
            max_bytes,
            &format!("blob {}", blob.sha1),
        )
    }

    /// Streams a blob's bytes, in order and one piece (at most one chunk) at a time, to `sink`.
    /// This is the one entry point for reading file data: callers never look at how the blob is
    /// stored. Memory: about two chunks, whatever the blob's size.
    pub fn stream_blob(
        &self,
        blob: &BlobEntry,
        sink: impl FnMut(&[u8]) -> std::result::Result<(), Fault>,
    ) -> std::result::Result<(), Fault> {
        let spec = self.spec(blob.reshdr);
        let pool = if blob.reshdr.is_compressed() && spec.compression != Compression::None {
            Some(
                DecoderPool::new(
                    spec.compression,
                    usize::try_from(spec.chunk_size_bytes).unwrap_or(usize::MAX),
                )
                .map_err(Fault::Unsupported)?,
            )
        } else {
            None
        };
        stream(&self.reader, &spec, pool.as_ref(), sink)
    }
}

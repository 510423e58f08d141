//! An open WIM: header, blob table and XML data, read through any [`ReadAt`].

use std::sync::{Arc, OnceLock};

use winre_readat::ReadAt;

use crate::blob_table::{BlobEntry, BlobTable, MAX_BLOB_TABLE_BYTES};
use crate::codec::Compression;
use crate::header::{Header, HEADER_SIZE};
use crate::integrity::IntegrityTable;
use crate::reshdr::ResourceHeader;
use crate::resource::{read_to_vec, stream, DecoderPool, Fault, ResourceSpec};
use crate::solid::{self, ChunkCache, SolidChunks, SolidResource};
use crate::xml::{self, ImageXml, WimXml, MAX_XML_BYTES};
use crate::{Error, Result};

/// Reads and checks the WIM header: the 208 bytes at the start of `reader`, or for a wimlib
/// pipable WIM (whose first header has no blob table or XML entries) the complete copy in the
/// last 208 bytes, which must carry the pipable magic too.
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
    let first = Header::parse(&buf)?;
    if !first.pipable {
        return Ok(first);
    }
    let at = len.saturating_sub(HEADER_SIZE);
    if at < HEADER_SIZE {
        return Err(Error::corrupt(
            "pipable WIM trailing header",
            at,
            format!("file of {len} bytes is too small to hold two headers"),
        ));
    }
    reader.read_exact_at(at, &mut buf)?;
    let last = Header::parse(&buf).map_err(|e| match e {
        Error::Corrupt {
            what,
            offset,
            detail,
        } => Error::Corrupt {
            what: format!("pipable WIM trailing {what}"),
            offset: at.saturating_add(offset),
            detail,
        },
        other => other,
    })?;
    if !last.pipable {
        return Err(Error::corrupt(
            "pipable WIM trailing header",
            at,
            "the last 208 bytes do not carry the \"WLPWM\" magic of the first header",
        ));
    }
    Ok(last)
}

/// A single-part WIM opened for reading.
#[derive(Debug)]
pub struct Wim<R> {
    reader: R,
    header: Header,
    blob_table: BlobTable,
    xml: WimXml,
    warnings: Vec<String>,
    /// Per solid resource: its chunk table and decoders, loaded on first use.
    solid: Vec<SolidState>,
    /// The last solid chunk decoded by [`Wim::stream_blob`].
    chunk_cache: ChunkCache,
}

/// What reading a solid resource needs, loaded once (a failed load is retried next time).
#[derive(Default)]
struct SolidState {
    chunks: OnceLock<Arc<SolidChunks>>,
    pool: OnceLock<Arc<DecoderPool>>,
}

impl std::fmt::Debug for SolidState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolidState")
            .field("chunks_loaded", &self.chunks.get().is_some())
            .finish()
    }
}

impl<R: ReadAt> Wim<R> {
    /// Opens a WIM: reads the header, the XML data and the blob table, and nothing else (a few
    /// KiB to a few MiB for a real WIM), so it is cheap on a WIM inside a disk image. Refuses a
    /// bad header or structure as [`Error::Corrupt`]; split and encrypted WIMs and metadata in
    /// solid resources as [`Error::Unsupported`]. A pipable WIM is read through the complete
    /// header at its end. For a solid WIM, the 16-byte header of each solid resource is read
    /// too (to place its blobs); chunk tables are read when first needed.
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
        let blob_table =
            BlobTable::parse_in(&table_bytes, header.blob_table.offset, &header, &reader)?;
        let mut warnings = blob_table.warnings.clone();
        let found = blob_table.metadata.len();
        if u64::try_from(found).unwrap_or(u64::MAX) < u64::from(header.image_count) {
            warnings.push(format!(
                "metadata resources found for {found} of {} images",
                header.image_count
            ));
        }
        let solid = blob_table
            .solid_resources
            .iter()
            .map(|_| SolidState::default())
            .collect();
        Ok(Self {
            reader,
            header,
            blob_table,
            xml,
            warnings,
            solid,
            chunk_cache: ChunkCache::default(),
        })
    }

    fn spec_of(header: &Header, reshdr: ResourceHeader) -> ResourceSpec {
        ResourceSpec {
            reshdr,
            compression: header.compression,
            chunk_size_bytes: header.chunk_size_bytes,
            pipable: header.pipable,
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
        if blob.solid.is_some() {
            let size = blob.size_bytes();
            if size > max_bytes {
                return Err(Error::corrupt(
                    format!("blob {}", blob.sha1),
                    blob.reshdr.offset,
                    format!("{size} bytes exceeds the limit of {max_bytes}"),
                ));
            }
            let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            self.stream_blob(blob, |piece| {
                out.extend_from_slice(piece);
                Ok(())
            })?;
            return Ok(out);
        }
        read_to_vec(
            &self.reader,
            &self.spec(blob.reshdr),
            max_bytes,
            &format!("blob {}", blob.sha1),
        )
    }

    /// Streams a blob's bytes, in order and one piece (at most one chunk) at a time, to `sink`.
    /// This is the one entry point for reading file data: callers never look at how the blob is
    /// stored. Memory: about two chunks, whatever the blob's size. A blob inside a solid
    /// resource decodes only the chunks that cover it (and the last chunk decoded is kept, so
    /// the next small blob of the same chunk costs no decoding).
    pub fn stream_blob(
        &self,
        blob: &BlobEntry,
        sink: impl FnMut(&[u8]) -> std::result::Result<(), Fault>,
    ) -> std::result::Result<(), Fault> {
        if let Some(place) = blob.solid {
            let chunks = self.solid_chunks(place.resource)?;
            let pool = self.solid_pool(place.resource)?;
            return solid::stream_range(
                &self.reader,
                place.resource,
                &chunks,
                &pool,
                &self.chunk_cache,
                place.offset_bytes,
                blob.size_bytes(),
                sink,
            );
        }
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

    fn solid_state(
        &self,
        index: usize,
    ) -> std::result::Result<(&SolidResource, &SolidState), Fault> {
        match (
            self.blob_table.solid_resources.get(index),
            self.solid.get(index),
        ) {
            (Some(res), Some(state)) => Ok((res, state)),
            _ => Err(Fault::Layout(Error::corrupt(
                "solid resource",
                0,
                format!("no solid resource number {index}"),
            ))),
        }
    }

    /// The checked chunk table of solid resource `index` (of
    /// [`BlobTable::solid_resources`]), read on first use (see [`SolidChunks::load`]).
    pub fn solid_chunks(&self, index: usize) -> std::result::Result<Arc<SolidChunks>, Fault> {
        let (res, state) = self.solid_state(index)?;
        if let Some(c) = state.chunks.get() {
            return Ok(Arc::clone(c));
        }
        let loaded = Arc::new(SolidChunks::load(&self.reader, res).map_err(|e| match e {
            Error::Io(e) => Fault::Read(Error::Io(e)),
            e => Fault::Layout(e),
        })?);
        Ok(Arc::clone(state.chunks.get_or_init(|| loaded)))
    }

    /// The decoders of solid resource `index`, created on first use.
    pub fn solid_pool(&self, index: usize) -> std::result::Result<Arc<DecoderPool>, Fault> {
        let (res, state) = self.solid_state(index)?;
        if let Some(p) = state.pool.get() {
            return Ok(Arc::clone(p));
        }
        let pool = Arc::new(res.decoder_pool().map_err(|e| match e {
            Error::Unsupported(m) => Fault::Unsupported(Error::Unsupported(m)),
            e => Fault::Layout(e),
        })?);
        Ok(Arc::clone(state.pool.get_or_init(|| pool)))
    }
}

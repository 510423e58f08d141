//! qcow2 (QEMU copy-on-write, versions 2 and 3).
//!
//! The guest is cut into clusters of 2^cluster_bits bytes. A two-level table maps them: the L1
//! table (loaded at open) points at L2 tables (one cluster each, read on demand through a small
//! cache), whose entries say where each guest cluster is stored: a cluster-aligned file offset,
//! a raw-deflate compressed cluster at a byte offset, a zero cluster (version 3), or nothing
//! (zeros, or the backing file's bytes).
//!
//! Read, refused: encryption, an external data file, extended L2 entries (subclusters) and
//! non-zlib compression are reported as unsupported. Snapshots and bitmaps are ignored: the
//! active image is read. Refcounts are not needed to read.
//
// Sources: QEMU, docs/interop/qcow2.rst ("Header", "Header extensions", "Cluster mapping",
// "Compressed Clusters Descriptor").

use std::io::{self};
use std::sync::Arc;

use winre_readat::ReadAt;
use zerocopy::big_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use super::chain::{parent_path, Chain};
use super::lru_cache::LruCache;
use super::mapped::{MappedReader, Mapper, Mapping, Run};
use super::{ContainerInfo, Disk, Format, OpenOptions};
use crate::{Error, Result};

/// Smallest and largest cluster sizes QEMU defines (512 B to 2 MiB).
const MIN_CLUSTER_BITS: u32 = 9;
const MAX_CLUSTER_BITS: u32 = 21;
/// QEMU's own limit on the L1 table (32 MiB, enough for a 2 PiB disk at 64 KiB clusters).
const MAX_L1_BYTES: u64 = 32 << 20;
/// QEMU's limit on the backing file name.
const MAX_BACKING_NAME_BYTES: u32 = 1023;
/// Bytes of L2 tables kept in memory, at least two tables (a 2 MiB-cluster L2 is 2 MiB).
const L2_CACHE_BYTES: u64 = 8 << 20;
/// Decompressed clusters kept, so small reads inside one compressed cluster inflate it once.
const COMPRESSED_CACHE_ENTRIES: usize = 8;
/// `allocated_bytes` is counted at open only when the L2 tables to read total at most this.
const MAX_COUNTED_L2_BYTES: u64 = 8 << 20;

/// L1 / standard L2 entry: the cluster-aligned offset (bits 9..55).
const OFFSET_MASK: u64 = 0x00FF_FFFF_FFFF_FE00;
/// L2 entry: the cluster is compressed.
const COMPRESSED_FLAG: u64 = 1 << 62;
/// L2 entry of a standard cluster: reads as zeros (version 3).
const ZERO_FLAG: u64 = 1;

/// Incompatible feature bits (version 3).
const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTENDED_L2: u64 = 1 << 4;

/// Header extension: the backing file's format name.
const EXT_BACKING_FORMAT: u32 = 0xE279_2ACA;
const EXT_END: u32 = 0;

/// The header, big-endian. Version 2 ends at +0x48; version 3 adds the rest.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct HeaderDisk {
    magic: [u8; 4],               // +0x00 "QFI\xfb"
    version: U32,                 // +0x04 2 or 3
    backing_file_offset: U64,     // +0x08 0 = no backing file
    backing_file_size: U32,       // +0x10 name length, no NUL
    cluster_bits: U32,            // +0x14
    size: U64,                    // +0x18 guest size in bytes
    crypt_method: U32,            // +0x20 0 none, 1 AES, 2 LUKS
    l1_size: U32,                 // +0x24 L1 entries
    l1_table_offset: U64,         // +0x28
    refcount_table_offset: U64,   // +0x30
    refcount_table_clusters: U32, // +0x38
    nb_snapshots: U32,            // +0x3C
    snapshots_offset: U64,        // +0x40
    incompatible_features: U64,   // +0x48 (v3)
    compatible_features: U64,     // +0x50 (v3)
    autoclear_features: U64,      // +0x58 (v3)
    refcount_order: U32,          // +0x60 (v3)
    header_length: U32,           // +0x64 (v3) 104 or more
    compression_type: u8,         // +0x68 (v3, if header_length > 104) 0 zlib, 1 zstd
    padding: [u8; 7],             // +0x69
}

const V2_HEADER_BYTES: u32 = 72;
const V3_MIN_HEADER_BYTES: u32 = 104;

/// The checked header.
struct Header {
    version: u32,
    cluster_bits: u32,
    size: u64,
    l1_entries: u64,
    l1_at: u64,
    backing: Option<(String, Option<String>)>,
    notes: Vec<String>,
}

impl Header {
    fn read(file: &dyn ReadAt) -> Result<Self> {
        let len = file.len();
        let mut bytes = [0u8; 112];
        let have = usize::try_from(len.min(112)).unwrap_or(112);
        file.read_exact_at(0, bytes.get_mut(..have).unwrap_or_default())?;
        let raw = HeaderDisk::ref_from_bytes(&bytes)
            .map_err(|_| Error::corrupt("qcow2 header", 0, "short"))?;
        let version = raw.version.get();
        let header_bytes = match version {
            2 => V2_HEADER_BYTES,
            3 => raw.header_length.get(),
            other => {
                return Err(Error::Unsupported(format!(
                    "qcow2 version {other} (2 and 3 are read)"
                )))
            }
        };
        if version == 3 && (header_bytes < V3_MIN_HEADER_BYTES || header_bytes % 8 != 0) {
            return Err(Error::corrupt(
                "qcow2 header",
                0x64,
                format!("header length {header_bytes} (expected a multiple of 8, at least 104)"),
            ));
        }
        if u64::from(header_bytes) > len {
            return Err(Error::corrupt(
                "qcow2 header",
                0,
                format!("{header_bytes} byte header, file is {len} bytes"),
            ));
        }
        let cluster_bits = raw.cluster_bits.get();
        if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
            return Err(Error::corrupt("qcow2 header", 0x14, format!("cluster_bits {cluster_bits} (expected {MIN_CLUSTER_BITS} to {MAX_CLUSTER_BITS})")));
        }
        let cluster_bytes = 1u64 << cluster_bits;
        match raw.crypt_method.get() {
            0 => {}
            method => {
                return Err(Error::Unsupported(format!(
                    "encrypted qcow2 (crypt_method {method})"
                )))
            }
        }
        let mut notes = Vec::new();
        if version == 3 {
            let incompatible = raw.incompatible_features.get();
            if incompatible & INCOMPAT_DATA_FILE != 0 {
                return Err(Error::Unsupported(
                    "qcow2 with an external data file".into(),
                ));
            }
            if incompatible & INCOMPAT_EXTENDED_L2 != 0 {
                return Err(Error::Unsupported(
                    "qcow2 with extended L2 entries (subclusters)".into(),
                ));
            }
            if incompatible & INCOMPAT_COMPRESSION != 0
                && header_bytes > V3_MIN_HEADER_BYTES
                && raw.compression_type != 0
            {
                return Err(Error::Unsupported(format!(
                    "qcow2 compression type {} (only zlib is read)",
                    raw.compression_type
                )));
            }
            let unknown = incompatible
                & !(INCOMPAT_DIRTY
                    | INCOMPAT_CORRUPT
                    | INCOMPAT_DATA_FILE
                    | INCOMPAT_COMPRESSION
                    | INCOMPAT_EXTENDED_L2);
            if unknown != 0 {
                return Err(Error::Unsupported(format!(
                    "qcow2 incompatible feature bits 0x{unknown:x}"
                )));
            }
            if incompatible & INCOMPAT_DIRTY != 0 {
                notes.push("qcow2 is marked dirty (not closed cleanly): refcounts may be stale, the data is read as written".into());
            }
            if incompatible & INCOMPAT_CORRUPT != 0 {
                notes
                    .push("qcow2 is marked corrupt by QEMU: its tables may be inconsistent".into());
            }
        }
        let size = raw.size.get();
        // Each L2 table (one cluster) maps cluster_bytes / 8 clusters.
        let l2_span = 1u64
            .checked_shl(cluster_bits.saturating_mul(2).saturating_sub(3))
            .unwrap_or(u64::MAX);
        let l1_needed = size.div_ceil(l2_span);
        let l1_size = u64::from(raw.l1_size.get());
        if l1_size < l1_needed {
            return Err(Error::corrupt(
                "qcow2 header",
                0x24,
                format!("L1 table has {l1_size} entries, a {size} byte disk needs {l1_needed}"),
            ));
        }
        let l1_bytes = l1_needed.saturating_mul(8);
        if l1_bytes > MAX_L1_BYTES {
            return Err(Error::Unsupported(format!(
                "qcow2 L1 table of {l1_bytes} bytes (QEMU's limit is {MAX_L1_BYTES})"
            )));
        }
        let l1_at = raw.l1_table_offset.get();
        if l1_needed > 0
            && (!l1_at.is_multiple_of(cluster_bytes)
                || l1_at.checked_add(l1_bytes).is_none_or(|end| end > len))
        {
            return Err(Error::corrupt("qcow2 header", 0x28, format!("L1 table of {l1_bytes} bytes at offset {l1_at} is unaligned or ends past the end of the file ({len} bytes)")));
        }
        let backing = read_backing(file, raw, version, header_bytes, cluster_bytes)?;
        Ok(Header {
            version,
            cluster_bits,
            size,
            l1_entries: l1_needed,
            l1_at,
            backing,
            notes,
        })
    }
}

/// The backing file's name and, from the header extension, its format.
fn read_backing(
    file: &dyn ReadAt,
    raw: &HeaderDisk,
    version: u32,
    header_bytes: u32,
    cluster_bytes: u64,
) -> Result<Option<(String, Option<String>)>> {
    let at = raw.backing_file_offset.get();
    if at == 0 {
        return Ok(None);
    }
    let name_len = raw.backing_file_size.get();
    if name_len > MAX_BACKING_NAME_BYTES
        || at
            .checked_add(u64::from(name_len))
            .is_none_or(|end| end > file.len().min(cluster_bytes))
    {
        return Err(Error::corrupt(
            "qcow2 header",
            0x08,
            format!(
                "backing file name of {name_len} bytes at {at} is not inside the first cluster"
            ),
        ));
    }
    let mut name = vec![0u8; name_len as usize];
    file.read_exact_at(at, &mut name)?;
    let name = String::from_utf8_lossy(&name).into_owned();
    let format = backing_format(file, version, header_bytes, cluster_bytes.min(at))?;
    Ok(Some((name, format)))
}

/// Walks the header extensions (between the header and `end`) for the backing format name.
fn backing_format(
    file: &dyn ReadAt,
    version: u32,
    header_bytes: u32,
    end: u64,
) -> Result<Option<String>> {
    let mut at = u64::from(if version == 2 {
        V2_HEADER_BYTES
    } else {
        header_bytes
    });
    // Each step advances by at least 8 bytes, and `at` stays below `end` (one cluster at most).
    while at.saturating_add(8) <= end {
        let mut head = [0u8; 8];
        file.read_exact_at(at, &mut head)?;
        let [t0, t1, t2, t3, l0, l1, l2, l3] = head;
        let kind = u32::from_be_bytes([t0, t1, t2, t3]);
        let length = u64::from(u32::from_be_bytes([l0, l1, l2, l3]));
        if kind == EXT_END {
            break;
        }
        let data_at = at.saturating_add(8);
        if data_at.checked_add(length).is_none_or(|e| e > end) {
            return Err(Error::corrupt(
                "qcow2 header extension",
                at,
                format!("{length} bytes of data run past offset {end}"),
            ));
        }
        if kind == EXT_BACKING_FORMAT {
            let mut name = vec![0u8; usize::try_from(length).unwrap_or(0)];
            file.read_exact_at(data_at, &mut name)?;
            return Ok(Some(String::from_utf8_lossy(&name).into_owned()));
        }
        at = data_at.saturating_add(length.next_multiple_of(8));
    }
    Ok(None)
}

/// Opens a qcow2 image (standing alone: a backing file is only looked for in
/// `options.parents`; [`super::open`] also follows the recorded name).
pub fn open(file: Arc<dyn ReadAt>, options: &OpenOptions) -> Result<Disk> {
    open_in(file, options, &Chain::top(None, options))
}

/// Opens a qcow2 image in `chain`; its backing file is opened as raw when the child says so,
/// else by its magic.
pub(crate) fn open_in(file: Arc<dyn ReadAt>, options: &OpenOptions, chain: &Chain) -> Result<Disk> {
    let header = Header::read(file.as_ref())?;
    let mut notes = header.notes.clone();
    let mut below = Vec::new();
    let parent = match &header.backing {
        None => None,
        Some((name, format)) => {
            let as_raw = format.as_deref() == Some("raw");
            let (parent, links) =
                chain.open_parent("qcow2 backing file", &[name.clone()], as_raw, options)?;
            if parent.info.virtual_size < header.size {
                notes.push(format!(
                    "backing file {} is {} bytes, smaller than the image: the rest reads as zeros",
                    parent_path(&links),
                    parent.info.virtual_size
                ));
            }
            notes.push(format!(
                "backing file {} (recorded as {name})",
                parent_path(&links)
            ));
            below = links;
            Some(parent.reader)
        }
    };
    let mut l1_raw = vec![
        0u8;
        usize::try_from(header.l1_entries.saturating_mul(8))
            .map_err(|_| Error::Unsupported("L1 larger than memory".into()))?
    ];
    file.read_exact_at(header.l1_at, &mut l1_raw)?;
    let l1: Vec<u64> = l1_raw
        .chunks_exact(8)
        .map(|c| c.try_into().map(u64::from_be_bytes).unwrap_or(0))
        .collect();
    let l2_cache_tables = usize::try_from(L2_CACHE_BYTES >> header.cluster_bits)
        .unwrap_or(2)
        .max(2);
    let map = ClusterMap {
        file: Arc::clone(&file),
        cluster_bits: header.cluster_bits,
        size: header.size,
        l1,
        l1_at: header.l1_at,
        has_backing: parent.is_some(),
        l2_tables: LruCache::new(l2_cache_tables),
        inflated: LruCache::new(COMPRESSED_CACHE_ENTRIES),
    };
    // A damaged L2 table is reported when the guest bytes it maps are read, not here.
    let allocated_bytes = map.count_allocated().ok().flatten();
    let virtual_size = header.size;
    let reader = MappedReader::new(map, file, parent, virtual_size);
    Ok(Disk {
        reader: Arc::new(reader),
        info: ContainerInfo {
            format: Format::Qcow2,
            variant: format!("v{}", header.version),
            virtual_size,
            sector_size: 512,
            allocated_bytes,
            notes,
            chain: below,
        },
    })
}

/// Guest-to-file map of a qcow2 image.
struct ClusterMap {
    file: Arc<dyn ReadAt>,
    cluster_bits: u32,
    size: u64,
    l1: Vec<u64>,
    l1_at: u64,
    has_backing: bool,
    l2_tables: LruCache<Vec<u64>>,
    inflated: LruCache<Vec<u8>>,
}

impl ClusterMap {
    fn cluster_bytes(&self) -> u64 {
        1u64 << self.cluster_bits
    }

    /// Entries per L2 table, as a shift.
    fn l2_bits(&self) -> u32 {
        self.cluster_bits.saturating_sub(3)
    }

    /// The L2 table that L1 entry `index` points at, or None when it is unallocated.
    fn l2_table(&self, index: u64) -> Result<Option<Arc<Vec<u64>>>> {
        let entry_at = self.l1_at.saturating_add(index.saturating_mul(8));
        let what = || format!("qcow2 L1 entry {index}");
        let entry = usize::try_from(index)
            .ok()
            .and_then(|i| self.l1.get(i))
            .copied()
            .ok_or_else(|| Error::corrupt(what(), entry_at, "beyond the table"))?;
        let l2_at = entry & OFFSET_MASK;
        if l2_at == 0 {
            return Ok(None);
        }
        let cluster = self.cluster_bytes();
        let file_len = self.file.len();
        if !l2_at.is_multiple_of(cluster)
            || l2_at.checked_add(cluster).is_none_or(|end| end > file_len)
        {
            return Err(Error::corrupt(
                what(),
                entry_at,
                format!("L2 table at offset {l2_at} (0x{l2_at:x}) is unaligned or ends past the end of the file ({file_len} bytes)"),
            ));
        }
        let table = self.l2_tables.get_or_load(l2_at, || -> Result<Vec<u64>> {
            let mut raw = vec![0u8; usize::try_from(cluster).unwrap_or(0)];
            self.file.read_exact_at(l2_at, &mut raw)?;
            Ok(raw
                .chunks_exact(8)
                .map(|c| c.try_into().map(u64::from_be_bytes).unwrap_or(0))
                .collect())
        })?;
        Ok(Some(table))
    }

    /// Guest clusters with stored data (standard or compressed), in bytes; None when counting
    /// would read more than [`MAX_COUNTED_L2_BYTES`] of L2 tables.
    fn count_allocated(&self) -> Result<Option<u64>> {
        let tables = self.l1.iter().filter(|&&e| e & OFFSET_MASK != 0).count() as u64;
        if tables.saturating_mul(self.cluster_bytes()) > MAX_COUNTED_L2_BYTES {
            return Ok(None);
        }
        let mut clusters = 0u64;
        for index in 0..self.l1.len() as u64 {
            if let Some(table) = self.l2_table(index)? {
                clusters = clusters.saturating_add(
                    table
                        .iter()
                        .filter(|&&e| {
                            e & COMPRESSED_FLAG != 0 || (e & OFFSET_MASK != 0 && e & ZERO_FLAG == 0)
                        })
                        .count() as u64,
                );
            }
        }
        Ok(Some(clusters.saturating_mul(self.cluster_bytes())))
    }

    /// Decompresses the cluster an L2 entry with the compressed flag describes into `out`
    /// (one cluster long).
    fn inflate(&self, entry: u64, out: &mut [u8]) -> Result<()> {
        // The offset takes the low 62 - (cluster_bits - 8) bits, the count of extra 512-byte
        // sectors the bits above it, up to bit 61.
        let offset_bits = 62u32.saturating_sub(self.cluster_bits.saturating_sub(8));
        let offset_mask = (1u64 << offset_bits).saturating_sub(1);
        let host = entry & offset_mask;
        let sectors_mask = (1u64 << self.cluster_bits.saturating_sub(8)).saturating_sub(1);
        let sectors = ((entry >> offset_bits) & sectors_mask).saturating_add(1);
        let stored = sectors.saturating_mul(512).saturating_sub(host % 512);
        let file_len = self.file.len();
        let what = "qcow2 compressed cluster";
        if host >= file_len {
            return Err(Error::corrupt(
                what,
                host,
                format!("starts past the end of the file ({file_len} bytes)"),
            ));
        }
        // The sector count rounds up, so the last cluster in the file may claim bytes past its end.
        let stored = stored.min(file_len.saturating_sub(host));
        let mut input = vec![0u8; usize::try_from(stored).unwrap_or(0)];
        self.file.read_exact_at(host, &mut input)?;
        let mut inflater = flate2::Decompress::new(false);
        let status = inflater.decompress(&input, out, flate2::FlushDecompress::Finish);
        let produced = inflater.total_out();
        match status {
            Ok(_) if produced == out.len() as u64 => Ok(()),
            Ok(_) => Err(Error::corrupt(
                what,
                host,
                format!("inflates to {produced} bytes, a cluster is {}", out.len()),
            )),
            Err(e) => Err(Error::corrupt(what, host, format!("deflate stream: {e}"))),
        }
    }
}

impl Mapper for ClusterMap {
    fn map(&self, guest: u64) -> Result<Mapping> {
        let cluster = self.cluster_bytes();
        let within = guest & cluster.saturating_sub(1);
        let cluster_start = guest.saturating_sub(within);
        let cluster_guest_bytes = cluster.min(self.size.saturating_sub(cluster_start));
        let rest = cluster_guest_bytes.saturating_sub(within).max(1);
        let absent = if self.has_backing {
            Run::Parent
        } else {
            Run::Zero
        };
        let l1_index = guest >> self.cluster_bits.saturating_add(self.l2_bits());
        let Some(table) = self.l2_table(l1_index)? else {
            // The whole L2 span is unallocated; report up to its end to skip it in one step.
            let span = 1u64 << self.cluster_bits.saturating_add(self.l2_bits());
            let span_rest = span.saturating_sub(guest & span.saturating_sub(1));
            return Ok(Mapping {
                run: absent,
                len: span_rest.min(self.size.saturating_sub(guest)).max(1),
            });
        };
        let l2_index = (guest >> self.cluster_bits) & ((1u64 << self.l2_bits()).saturating_sub(1));
        let entry = usize::try_from(l2_index)
            .ok()
            .and_then(|i| table.get(i))
            .copied()
            .unwrap_or(0);
        if entry & COMPRESSED_FLAG != 0 {
            return Ok(Mapping {
                run: Run::Special {
                    unit: entry,
                    skip: within,
                },
                len: rest,
            });
        }
        if entry & ZERO_FLAG != 0 {
            return Ok(Mapping {
                run: Run::Zero,
                len: rest,
            });
        }
        let host = entry & OFFSET_MASK;
        if host == 0 {
            return Ok(Mapping {
                run: absent,
                len: rest,
            });
        }
        let file_len = self.file.len();
        if !host.is_multiple_of(cluster)
            || host
                .checked_add(cluster_guest_bytes)
                .is_none_or(|end| end > file_len)
        {
            let l2_at = self
                .l1
                .get(usize::try_from(l1_index).unwrap_or(usize::MAX))
                .copied()
                .unwrap_or(0)
                & OFFSET_MASK;
            return Err(Error::corrupt(
                format!("qcow2 L2 entry {l2_index} of L1 entry {l1_index} (guest offset {cluster_start})"),
                l2_at.saturating_add(l2_index.saturating_mul(8)),
                format!("cluster at offset {host} (0x{host:x}) is unaligned or ends past the end of the file ({file_len} bytes)"),
            ));
        }
        Ok(Mapping {
            run: Run::Host(host.saturating_add(within)),
            len: rest,
        })
    }

    fn read_special(&self, entry: u64, skip: u64, buf: &mut [u8]) -> Result<()> {
        let cluster = usize::try_from(self.cluster_bytes()).unwrap_or(0);
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        if skip == 0 && buf.len() == cluster {
            return self.inflate(entry, buf);
        }
        let data = self.inflated.get_or_load(entry, || -> Result<Vec<u8>> {
            let mut out = vec![0u8; cluster];
            self.inflate(entry, &mut out)?;
            Ok(out)
        })?;
        let part = skip
            .checked_add(buf.len())
            .and_then(|end| data.get(skip..end))
            .ok_or_else(|| {
                Error::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "read reaches past a compressed cluster",
                ))
            })?;
        buf.copy_from_slice(part);
        Ok(())
    }
}

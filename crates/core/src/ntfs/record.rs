//! The few fields of an MFT file record that the `ntfs` crate reads but does not expose: the
//! non-resident attribute header's VCN range and sizes, above all the initialized size (the
//! "valid data length", past which a file reads as zeros whatever its clusters hold).
//!
//! We re-read the record the crate already located, undo its update sequence (the "fixups" that
//! protect each 512-byte stride of a multi-sector record), and parse the header at the offset the
//! crate gave us.
//!
// Sources: the Linux-NTFS documentation ("FILE record", "Attribute header", "Update sequence"),
// flatcap.github.io/linux-ntfs/ntfs/concepts/file_record.html and .../attribute_header.html;
// [MS-FSCC] 2.1.5 for the 64-bit file reference.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout};

use crate::error::{Error, Result};
use winre_readat::ReadAt;

/// The largest MFT record we read (Windows uses 1 KiB, 4 KiB on 4Kn disks).
pub const MAX_RECORD_BYTES: u32 = 64 * 1024;

/// Update sequences protect strides of this size, whatever the sector size.
const STRIDE_BYTES: usize = 512;

/// On-disk MFT file record header (the part we use).
#[derive(FromBytes, KnownLayout, Immutable)]
#[repr(C)]
struct RecordHeaderDisk {
    /// +0x00 "FILE"
    magic: [u8; 4],
    /// +0x04 offset of the update sequence array
    usa_offset: U16,
    /// +0x06 entries in the update sequence array, the sequence number itself included
    usa_count: U16,
}

/// On-disk header of a non-resident attribute.
#[derive(FromBytes, KnownLayout, Immutable)]
#[repr(C)]
struct NonResidentHeaderDisk {
    /// +0x00 attribute type
    _ty: U32,
    /// +0x04 length of the attribute record
    length: U32,
    /// +0x08 1 when non-resident
    non_resident: u8,
    /// +0x09 name length in UTF-16 units
    _name_length: u8,
    /// +0x0A offset of the name
    _name_offset: U16,
    /// +0x0C flags: 0x0001 compressed, 0x4000 encrypted, 0x8000 sparse
    flags: U16,
    /// +0x0E attribute instance
    _instance: U16,
    /// +0x10 first VCN this attribute maps
    lowest_vcn: U64,
    /// +0x18 last VCN this attribute maps (-1 when it maps none)
    highest_vcn: U64,
    /// +0x20 offset of the mapping pairs (data runs)
    mapping_pairs_offset: U16,
    /// +0x22 log2 of the compression unit in clusters
    _compression_unit: u8,
    /// +0x23
    _reserved: [u8; 5],
    /// +0x28 allocated bytes (first fragment only)
    allocated_bytes: U64,
    /// +0x30 data size in bytes (first fragment only)
    data_bytes: U64,
    /// +0x38 initialized size ("valid data length") in bytes (first fragment only)
    initialized_bytes: U64,
}

/// The checked fields of a non-resident attribute header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonResidentHeader {
    /// First VCN this attribute (fragment) maps.
    pub lowest_vcn: u64,
    /// One past the last VCN it maps (`lowest_vcn` when it maps none).
    pub end_vcn: u64,
    /// Attribute flags (0x0001 compressed, 0x4000 encrypted, 0x8000 sparse).
    pub flags: u16,
    /// Allocated bytes (meaningful in the fragment with `lowest_vcn == 0`).
    pub allocated_bytes: u64,
    /// Data size in bytes (likewise).
    pub data_bytes: u64,
    /// Initialized size, the valid data length, in bytes (likewise).
    pub initialized_bytes: u64,
}

/// Reads the MFT record at `record_offset` of the volume and returns the non-resident attribute
/// header at `attribute_offset` bytes into it.
pub fn non_resident_header(
    volume: &dyn ReadAt,
    record_offset: u64,
    record_bytes: u32,
    attribute_offset: u64,
) -> Result<NonResidentHeader> {
    let record = read_record(volume, record_offset, record_bytes)?;
    parse_non_resident(&record, record_offset, attribute_offset)
}

/// Checks the non-resident attribute headers at `attribute_offsets` in the record at
/// `record_offset`. The `ntfs` crate reads their fields without checking that they fit in the
/// record (and would panic on a hostile one), so every record is checked here first.
pub fn check_non_resident_headers(
    volume: &dyn ReadAt,
    record_offset: u64,
    record_bytes: u32,
    attribute_offsets: &[u64],
) -> Result<()> {
    if attribute_offsets.is_empty() {
        return Ok(());
    }
    let record = read_record(volume, record_offset, record_bytes)?;
    for &offset in attribute_offsets {
        parse_non_resident(&record, record_offset, offset)?;
    }
    Ok(())
}

fn parse_non_resident(
    record: &[u8],
    record_offset: u64,
    attribute_offset: u64,
) -> Result<NonResidentHeader> {
    let at = usize::try_from(attribute_offset).unwrap_or(usize::MAX);
    let bytes = record.get(at..).unwrap_or_default();
    let what = "non-resident attribute header";
    let position = record_offset.saturating_add(attribute_offset);
    let (header, _) = NonResidentHeaderDisk::read_from_prefix(bytes).map_err(|_| {
        Error::corrupt(
            what,
            position,
            "the attribute runs past the end of its MFT record",
        )
    })?;
    if header.non_resident != 1 {
        return Err(Error::corrupt(
            what,
            position,
            format!("non-resident flag is {}", header.non_resident),
        ));
    }
    let length = u64::from(header.length.get());
    if length < 0x40 || attribute_offset.saturating_add(length) > record.len() as u64 {
        return Err(Error::corrupt(
            what,
            position,
            format!("attribute length {length} does not fit the record"),
        ));
    }
    let runs_offset = u64::from(header.mapping_pairs_offset.get());
    if runs_offset < 0x40 || runs_offset > length {
        return Err(Error::corrupt(
            what,
            position,
            format!("data runs offset {runs_offset} lies outside the attribute of {length} bytes"),
        ));
    }
    let lowest_vcn = header.lowest_vcn.get();
    let highest_vcn = header.highest_vcn.get();
    // highest_vcn is -1 (all ones) for an attribute that maps no cluster.
    let end_vcn = if highest_vcn == u64::MAX {
        lowest_vcn
    } else {
        highest_vcn.saturating_add(1)
    };
    if end_vcn < lowest_vcn {
        return Err(Error::corrupt(
            what,
            position,
            format!("highest VCN {highest_vcn} is below lowest VCN {lowest_vcn}"),
        ));
    }
    Ok(NonResidentHeader {
        lowest_vcn,
        end_vcn,
        flags: header.flags.get(),
        allocated_bytes: header.allocated_bytes.get(),
        data_bytes: header.data_bytes.get(),
        initialized_bytes: header.initialized_bytes.get(),
    })
}

/// Reads one MFT record and undoes its update sequence.
fn read_record(volume: &dyn ReadAt, offset: u64, record_bytes: u32) -> Result<Vec<u8>> {
    let what = "MFT record";
    if record_bytes > MAX_RECORD_BYTES
        || !(record_bytes as usize).is_multiple_of(STRIDE_BYTES)
        || record_bytes == 0
    {
        return Err(Error::corrupt(
            what,
            offset,
            format!("record size {record_bytes} is not a multiple of 512 up to 64 KiB"),
        ));
    }
    let mut record = vec![0u8; record_bytes as usize];
    volume.read_exact_at(offset, &mut record)?;
    let (header, _) = RecordHeaderDisk::read_from_prefix(record.as_slice())
        .map_err(|_| Error::corrupt(what, offset, "shorter than its header"))?;
    if &header.magic != b"FILE" {
        return Err(Error::corrupt(
            what,
            offset,
            format!("signature is {:02x?}, expected \"FILE\"", header.magic),
        ));
    }
    let usa_offset = usize::from(header.usa_offset.get());
    let usa_count = usize::from(header.usa_count.get());
    let strides = record.len() / STRIDE_BYTES;
    if usa_count != strides.saturating_add(1) {
        return Err(Error::corrupt(
            what,
            offset,
            format!(
                "update sequence has {usa_count} entries, expected {} for {record_bytes} bytes",
                strides.saturating_add(1)
            ),
        ));
    }
    let usa_end = usa_offset.saturating_add(usa_count.saturating_mul(2));
    let usa = record
        .get(usa_offset..usa_end)
        .ok_or_else(|| {
            Error::corrupt(
                what,
                offset,
                format!("update sequence at {usa_offset} runs past the record"),
            )
        })?
        .to_vec();
    let mut entries = usa.chunks_exact(2);
    let usn = entries.next().unwrap_or_default();
    for (stride, saved) in entries.enumerate() {
        let end = stride.saturating_add(1).saturating_mul(STRIDE_BYTES);
        let tail = record.get_mut(end.saturating_sub(2)..end).ok_or_else(|| {
            Error::corrupt(what, offset, "update sequence stride past the record")
        })?;
        if tail != usn {
            return Err(Error::corrupt(
                what,
                offset,
                format!("stride {stride} ends with {tail:02x?}, not the update sequence number {usn:02x?} (torn write)"),
            ));
        }
        tail.copy_from_slice(saved);
    }
    Ok(record)
}

//! A deliberately tiny, test-only reader of the parts of a WIM the codec tests need: the header
//! fields, the blob table and each blob's chunk table. It trusts its input (fixtures written by
//! wimlib-imagex) and panics on anything unexpected. The real reader is `winre_wim`'s own.
//!
//! Sources: wimlib include/wimlib/header.h, include/wimlib/resource.h, src/blob_table.c,
//! src/resource.c (chunk table layout).

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
#![allow(clippy::arithmetic_side_effects)]

use std::path::Path;
use winre_wim::codec::Compression;

pub const RESHDR_COMPRESSED: u8 = 0x04;
pub const RESHDR_METADATA: u8 = 0x02;

pub struct Blob {
    pub sha1: [u8; 20],
    pub flags: u8,
    pub offset: u64,
    pub stored_size: u64,
    pub size: u64,
}

pub struct Wim {
    pub bytes: Vec<u8>,
    pub chunk_size: usize,
    pub compression: Compression,
    pub blobs: Vec<Blob>,
}

/// One chunk: its stored bytes and its uncompressed size. Stored raw when the sizes are equal.
pub struct Chunk<'a> {
    pub data: &'a [u8],
    pub size: usize,
}

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Reads a 24-byte resource header: u56 stored size, u8 flags, u64 offset, u64 original size.
fn reshdr(b: &[u8]) -> (u64, u8, u64, u64) {
    (le(&b[0..7]), b[7], le(&b[8..16]), le(&b[16..24]))
}

impl Wim {
    pub fn open(path: &Path) -> Wim {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            &bytes[0..8],
            b"MSWIM\0\0\0",
            "{}: not a WIM",
            path.display()
        );
        let flags = le(&bytes[0x10..0x14]) as u32;
        let chunk_size = le(&bytes[0x14..0x18]) as usize;
        let compression = if flags & 0x40000 != 0 {
            Compression::Lzx
        } else if flags & 0x20000 != 0 {
            Compression::Xpress
        } else if flags & 0x80000 != 0 {
            Compression::Lzms
        } else {
            Compression::None
        };
        let (table_size, table_flags, table_offset, _) = reshdr(&bytes[0x30..0x48]);
        assert_eq!(table_flags & RESHDR_COMPRESSED, 0, "blob table compressed");
        let table = &bytes[table_offset as usize..(table_offset + table_size) as usize];
        let blobs = table
            .chunks_exact(50)
            .map(|e| {
                let (stored_size, flags, offset, size) = reshdr(&e[0..24]);
                Blob {
                    sha1: e[30..50].try_into().unwrap(),
                    flags,
                    offset,
                    stored_size,
                    size,
                }
            })
            .collect();
        Wim {
            bytes,
            chunk_size,
            compression,
            blobs,
        }
    }

    /// The blobs holding file data (not metadata), with their chunks.
    pub fn data_blobs(&self) -> impl Iterator<Item = &Blob> {
        self.blobs
            .iter()
            .filter(|b| b.flags & RESHDR_METADATA == 0 && b.size != 0)
    }

    /// The chunks of a blob; an uncompressed resource is one "raw chunk" per chunk size.
    pub fn chunks(&self, blob: &Blob) -> Vec<Chunk<'_>> {
        let res = &self.bytes[blob.offset as usize..(blob.offset + blob.stored_size) as usize];
        let cs = self.chunk_size;
        let size = blob.size as usize;
        let n = size.div_ceil(cs);
        let sizes = (0..n).map(|i| cs.min(size - i * cs));
        if blob.flags & RESHDR_COMPRESSED == 0 {
            return sizes
                .enumerate()
                .map(|(i, s)| Chunk {
                    data: &res[i * cs..i * cs + s],
                    size: s,
                })
                .collect();
        }
        let entry = if blob.size > u64::from(u32::MAX) {
            8
        } else {
            4
        };
        let table_len = (n - 1) * entry;
        let mut starts: Vec<usize> = vec![0];
        starts.extend((0..n - 1).map(|i| le(&res[i * entry..(i + 1) * entry]) as usize));
        starts.push(res.len() - table_len);
        let body = &res[table_len..];
        sizes
            .enumerate()
            .map(|(i, s)| Chunk {
                data: &body[starts[i]..starts[i + 1]],
                size: s,
            })
            .collect()
    }
}

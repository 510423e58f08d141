//! One resource read by its header, as the blob and metadata readers do: chunk table, chunk
//! bounds, decoding. Input: offset (u64), size_in_wim with flags (u64), original size (u64),
//! compression (u8: 0 none, 1 XPRESS, 2 LZX, 3 LZMS), log2 chunk size (u8), then the WIM bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use winre_wim::codec::Compression;
use winre_wim::reshdr::{ResourceHeader, ResourceHeaderDisk};
use winre_wim::budget::{MemoryBudget, DEFAULT_BUFFER_BYTES};
use winre_wim::resource::{read_to_vec, stream, stream_parallel, DecoderPool, ResourceSpec};
use zerocopy::FromBytes;

fuzz_target!(|data: &[u8]| {
    let Some((head, file)) = data.split_at_checked(26) else { return };
    let Ok((disk, rest)) = ResourceHeaderDisk::read_from_prefix(head) else { return };
    let compression = match rest[0] % 4 {
        0 => Compression::None,
        1 => Compression::Xpress,
        2 => Compression::Lzx,
        _ => Compression::Lzms,
    };
    let chunk_size_bytes = 1u32 << (rest[1] % 24);
    let spec = ResourceSpec {
        reshdr: ResourceHeader::from(&disk),
        compression,
        chunk_size_bytes,
        pipable: rest[0] & 0x10 != 0,
    };
    let pool = DecoderPool::new(compression, chunk_size_bytes as usize).ok();
    let _ = stream(file, &spec, pool.as_ref(), |_| Ok(()));
    if let Some(pool) = &pool {
        let budget = MemoryBudget::new(DEFAULT_BUFFER_BYTES);
        let _ = stream_parallel(file, &spec, pool, 2, &budget, |_| Ok(()));
    }
    let _ = read_to_vec(file, &spec, 1 << 20, "fuzzed resource");
});

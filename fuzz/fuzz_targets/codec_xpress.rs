//! One Xpress chunk. Input: log2 of the decoder's chunk size (u8, folded into the sizes WIMs
//! allow), the output size (u24 LE, folded into 1..=chunk size), then the compressed bytes.
//! Each input is decoded twice with one decoder, as workers reuse theirs.
#![no_main]
use libfuzzer_sys::fuzz_target;
use winre_wim::codec::{new_decoder, Compression, XPRESS_CHUNK_SIZES};

fuzz_target!(|data: &[u8]| {
    let Some((head, input)) = data.split_at_checked(4) else { return };
    let lo = XPRESS_CHUNK_SIZES.start().trailing_zeros();
    let hi = XPRESS_CHUNK_SIZES.end().trailing_zeros();
    let chunk = 1usize << (lo + u32::from(head[0]) % (hi - lo + 1));
    let out_len = usize::from(head[1]) | usize::from(head[2]) << 8 | usize::from(head[3]) << 16;
    let out_len = out_len % chunk + 1;
    let mut decoder = new_decoder(Compression::Xpress, chunk).expect("a valid chunk size");
    let mut out = vec![0u8; out_len];
    let first = decoder.decompress(input, &mut out).map(|()| out.clone());
    let second = decoder.decompress(input, &mut out).map(|()| out.clone());
    // A decoder's result must not depend on what it decoded before.
    assert_eq!(first, second, "reused decoder disagrees with itself");
});

//! Differential: one XPRESS or LZX chunk through the current decoder and through the reference
//! copy of the decoder before its last speed change (`codec::reference`); both must return the
//! same bytes, or both fail. Input: the format (u8: odd XPRESS, even LZX), then as `codec_xpress`
//! / `codec_lzx`: log2 of the chunk size (u8, folded into the sizes the format allows), the output
//! size (u24 LE, folded into 1..=chunk size), the compressed bytes. The seeds are wimlib-made
//! chunks (fuzz/make-seeds.sh).
#![no_main]
use libfuzzer_sys::fuzz_target;
use winre_wim::codec::{
    new_decoder, reference, Compression, LZX_CHUNK_SIZES, XPRESS_CHUNK_SIZES,
};

fuzz_target!(|data: &[u8]| {
    let Some((head, input)) = data.split_at_checked(5) else { return };
    let (compression, sizes) = if head[0] & 1 == 1 {
        (Compression::Xpress, XPRESS_CHUNK_SIZES)
    } else {
        (Compression::Lzx, LZX_CHUNK_SIZES)
    };
    let lo = sizes.start().trailing_zeros();
    let hi = sizes.end().trailing_zeros();
    let chunk = 1usize << (lo + u32::from(head[1]) % (hi - lo + 1));
    let out_len = usize::from(head[2]) | usize::from(head[3]) << 8 | usize::from(head[4]) << 16;
    let out_len = out_len % chunk + 1;
    let mut new = new_decoder(compression, chunk).expect("a valid chunk size");
    let mut old = reference::new_decoder(compression, chunk).expect("a valid chunk size");
    let (mut a, mut b) = (vec![0u8; out_len], vec![0u8; out_len]);
    let ours = new.decompress(input, &mut a).map(|()| a);
    let theirs = old.decompress(input, &mut b).map(|()| b);
    match (&ours, &theirs) {
        (Ok(x), Ok(y)) => assert!(x == y, "the decoders disagree on the bytes"),
        (Err(_), Err(_)) => {}
        _ => panic!("one decoder failed, the other did not: {:?} vs {:?}", ours.as_ref().err(), theirs.as_ref().err()),
    }
});

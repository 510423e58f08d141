//! Hostile input: truncated files, broken cell sizes, list cycles, offsets past the end, names
//! longer than their cell, and random byte mutations. Every case must end in a clear error (or a
//! reading), never a panic or a hang. Offsets come from fixtures/make-hives.py.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

mod common;

use common::{hive_path, offsets};
use winre_hive::{Error, Hive, Key};

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(hive_path(name)).unwrap()
}

fn patch(mut b: Vec<u8>, at: u64, with: &[u8]) -> Vec<u8> {
    b[at as usize..at as usize + with.len()].copy_from_slice(with);
    b
}

fn handmade_patched(field: &str, delta: u64, with: &[u8]) -> Vec<u8> {
    patch(bytes("handmade.hive"), offsets()[field] + delta, with)
}

fn rel(file_offset: u64) -> [u8; 4] {
    ((file_offset - 4096) as u32).to_le_bytes()
}

#[track_caller]
fn assert_corrupt<T: std::fmt::Debug>(r: Result<T, Error>, needle: &str) {
    match r {
        Err(e @ Error::Corrupt { .. }) => {
            assert!(e.to_string().contains(needle), "{e} lacks {needle:?}")
        }
        other => panic!("expected Corrupt containing {needle:?}, got {other:?}"),
    }
}

fn root_subkeys(b: Vec<u8>) -> Result<Vec<String>, Error> {
    let hive = Hive::open(b)?;
    let root = hive.root()?;
    root.subkeys()?
        .map(|k| k.map(|k| k.name().to_string()))
        .collect()
}

#[test]
fn truncated_hives_are_refused() {
    let full = bytes("software.hive");
    for len in [0usize, 100, 511, 4096, 8192, full.len() / 2, full.len() - 1] {
        let r = Hive::open(full[..len].to_vec()).map(|_| ());
        assert!(
            matches!(r, Err(Error::Corrupt { .. })),
            "length {len}: {r:?}"
        );
    }
    assert_corrupt(Hive::open(full[..8192].to_vec()).map(|_| ()), "truncated");
}

#[test]
fn bad_headers_are_refused_or_unsupported() {
    let b = bytes("bcd.hive");
    assert_corrupt(
        Hive::open(patch(b.clone(), 0, b"regx")).map(|_| ()),
        "signature",
    );
    let fix = |mut b: Vec<u8>| {
        let sum = winre_hive::checksum(&b);
        b[508..512].copy_from_slice(&sum.to_le_bytes());
        b
    };
    let minor1 = fix(patch(b.clone(), 24, &1u32.to_le_bytes()));
    assert!(matches!(
        Hive::open(minor1).map(|_| ()),
        Err(Error::Unsupported(_))
    ));
    let log = fix(patch(b.clone(), 28, &6u32.to_le_bytes()));
    assert!(
        matches!(Hive::open(log).map(|_| ()), Err(Error::Unsupported(m)) if m.contains("transaction log"))
    );
    let odd_bins = fix(patch(b.clone(), 40, &4097u32.to_le_bytes()));
    assert_corrupt(Hive::open(odd_bins).map(|_| ()), "multiple of 4096");
    let no_hbin = patch(b.clone(), 4096, b"hbix");
    assert_corrupt(Hive::open(no_hbin).map(|_| ()), "first hive bin");
    // A wrong checksum is not fatal: the hive is dirty, which is reported.
    let hive = Hive::open(patch(b, 60, b"X")).unwrap();
    assert!(hive.health().dirty && !hive.health().checksum_ok);
}

#[test]
fn broken_cell_sizes_are_reported() {
    let zero = handmade_patched("handmade_root_nk", 0, &0i32.to_le_bytes());
    assert_corrupt(
        Hive::open(zero).unwrap().root().map(|_| ()),
        "cell size is 0",
    );
    for huge in [i32::MIN, -0x7FFF_FFF8, -(1 << 24) - 8, -(1 << 20)] {
        let b = handmade_patched("handmade_root_nk", 0, &huge.to_le_bytes());
        let r = Hive::open(b).unwrap().root().map(|_| ());
        assert!(
            matches!(r, Err(Error::Corrupt { .. })),
            "size {huge}: {r:?}"
        );
    }
    let free = handmade_patched("handmade_root_nk", 0, &96i32.to_le_bytes());
    assert_corrupt(Hive::open(free).unwrap().root().map(|_| ()), "free");
    let tiny = handmade_patched("handmade_root_nk", 0, &(-4i32).to_le_bytes());
    assert_corrupt(Hive::open(tiny).unwrap().root().map(|_| ()), "below 8");
}

#[test]
fn subkey_list_cycles_are_detected() {
    let off = offsets();
    let ri = off["handmade_ri"];
    // ri -> [li, ri, lh]: an index root listing itself.
    let b = patch(bytes("handmade.hive"), ri + 4 + 4 + 4, &rel(ri));
    assert_corrupt(root_subkeys(b), "index root inside an index root");
    // ri -> [li, li, lh]: the same leaf twice.
    let b = patch(
        bytes("handmade.hive"),
        ri + 4 + 4 + 4,
        &rel(off["handmade_li"]),
    );
    assert_corrupt(root_subkeys(b), "listed twice");
    // The li's first entry points back at the root itself.
    let b = patch(
        bytes("handmade.hive"),
        off["handmade_li"] + 4 + 4,
        &rel(off["handmade_root_nk"]),
    );
    assert_corrupt(root_subkeys(b), "itself");
    // The root claims 6 subkeys but its lists hold 7, and the other way round.
    let b = handmade_patched("handmade_root_nk", 4 + 0x14, &6u32.to_le_bytes());
    assert_corrupt(root_subkeys(b), "more subkeys than");
    let b = handmade_patched("handmade_root_nk", 4 + 0x14, &9u32.to_le_bytes());
    assert_corrupt(root_subkeys(b), "records 9 subkeys");
    // A subkeys list that is not a list at all (points at a key node).
    let b = handmade_patched(
        "handmade_root_nk",
        4 + 0x1C,
        &rel(offsets()["handmade_a1_nk"]),
    );
    assert_corrupt(root_subkeys(b), "expected li, lf, lh or ri");
}

#[test]
fn value_data_past_the_end_is_reported() {
    let b = handmade_patched("handmade_small_vk", 4 + 8, &0x7FFF_FFF0u32.to_le_bytes());
    let hive = Hive::open(b).unwrap();
    let small = hive
        .key("C1")
        .unwrap()
        .unwrap()
        .value("Small")
        .unwrap()
        .unwrap();
    assert_corrupt(small.data(), "past the end");
    // A declared size larger than the data cell (and not big data).
    let b = handmade_patched("handmade_small_vk", 4 + 4, &5000u32.to_le_bytes());
    let hive = Hive::open(b).unwrap();
    let small = hive
        .key("C1")
        .unwrap()
        .unwrap()
        .value("Small")
        .unwrap()
        .unwrap();
    assert_corrupt(small.data(), "declares 5000 bytes");
    // Inline data longer than 4 bytes.
    let b = handmade_patched("handmade_small_vk", 4 + 4, &0x8000_0010u32.to_le_bytes());
    let hive = Hive::open(b).unwrap();
    assert_corrupt(
        hive.key("C1").unwrap().unwrap().values().map(|_| ()),
        "inline data",
    );
    // Big data with more segments than its list holds.
    let b = handmade_patched("handmade_db", 4 + 2, &0xFFFFu16.to_le_bytes());
    let hive = Hive::open(b).unwrap();
    let big = hive
        .key("C1")
        .unwrap()
        .unwrap()
        .value("Big")
        .unwrap()
        .unwrap();
    assert_corrupt(big.data(), "segments");
}

#[test]
fn names_longer_than_their_cell_are_reported() {
    let b = handmade_patched("handmade_a1_nk", 4 + 0x48, &0xFFFFu16.to_le_bytes());
    assert_corrupt(root_subkeys(b), "runs past the cell");
    let b = handmade_patched("handmade_small_vk", 4 + 2, &0x4000u16.to_le_bytes());
    let hive = Hive::open(b).unwrap();
    assert_corrupt(
        hive.key("C1").unwrap().unwrap().values().map(|_| ()),
        "runs past the cell",
    );
}

/// Reads everything reachable, with a depth cap (a key node may point back at an ancestor).
fn walk(key: &Key<'_, Vec<u8>>, depth: u32, budget: &mut u32) {
    if depth > 16 || *budget == 0 {
        return;
    }
    *budget -= 1;
    if let Ok(values) = key.values() {
        for v in values {
            let _ = v.data();
            let _ = v.as_string();
            let _ = v.as_multi_string();
        }
    }
    if let Ok(subkeys) = key.subkeys() {
        for k in subkeys.flatten() {
            walk(&k, depth + 1, budget);
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let original = bytes("handmade.hive");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut b = original.clone();
        for _ in 0..1 + next() % 8 {
            // Mostly inside the cells; sometimes the header.
            let at = if next() % 10 == 0 {
                next() % 4096
            } else {
                4096 + next() % (b.len() as u64 - 4096)
            };
            b[at as usize] = next() as u8;
        }
        if let Ok(hive) = Hive::open(b) {
            let _ = hive.check_bins();
            if let Ok(root) = hive.root() {
                let mut budget = 1000;
                walk(&root, 0, &mut budget);
            }
        }
    }
}

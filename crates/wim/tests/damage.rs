//! Damaged WIMs: each case has one expected outcome, and nothing panics. Damage is applied to an
//! in-memory copy of a fixture built by wimlib-imagex; wimlib-imagex verify is asked to agree
//! where it can tell.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use winre_wim::verify::{verify, BlobProblem, VerifyReport};
use winre_wim::{Error, Wim};

fn load(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

fn check(bytes: Vec<u8>) -> winre_wim::Result<VerifyReport> {
    verify(bytes, Default::default(), &|_| {})
}

/// wimlib-imagex verify's verdict on the same bytes (true = it found no problem).
fn wimlib_ok(bytes: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.wim");
    std::fs::write(&path, bytes).unwrap();
    wimlib_verify(&path)
}

fn wimlib_verify(path: &Path) -> bool {
    Command::new("wimlib-imagex")
        .args(["verify", path.to_str().unwrap()])
        .output()
        .expect("wimlib-imagex is required (apt: wimtools)")
        .status
        .success()
}

/// The largest non-metadata blob of a WIM.
fn largest_blob(bytes: &[u8]) -> winre_wim::blob_table::BlobEntry {
    let wim = Wim::open(bytes.to_vec()).unwrap();
    *wim.blob_table()
        .blobs
        .iter()
        .filter(|b| !b.is_metadata())
        .max_by_key(|b| b.reshdr.size_in_wim)
        .unwrap()
}

#[test]
fn intact_fixtures_verify() {
    for name in ["none.wim", "none-check.wim"] {
        let report = check(load(name)).unwrap();
        assert!(report.intact, "{name}: {report:?}");
        assert!(wimlib_verify(&fixtures().join(name)));
    }
}

#[test]
fn flipped_byte_in_uncompressed_blob_is_a_hash_mismatch() {
    let mut bytes = load("none-check.wim");
    let blob = largest_blob(&bytes);
    bytes[(blob.reshdr.offset + blob.reshdr.size_in_wim / 2) as usize] ^= 0x01;
    let report = check(bytes.clone()).unwrap();
    assert!(!report.intact);
    assert_eq!(report.failures.len(), 1, "{report:?}");
    let f = &report.failures[0];
    assert_eq!((f.sha1, f.offset), (blob.sha1, blob.reshdr.offset));
    assert!(matches!(f.problem, BlobProblem::HashMismatch { .. }));
    // The integrity table (--check) sees it too, and the blob points at that window.
    let integrity = report.integrity.as_ref().unwrap();
    assert_eq!(integrity.failures.len(), 1);
    assert_eq!(f.integrity_chunks, [integrity.failures[0].chunk]);
    assert!(!wimlib_ok(&bytes));
}

#[test]
fn flipped_hash_in_blob_table() {
    let mut bytes = load("none-check.wim");
    let wim = Wim::open(bytes.clone()).unwrap();
    let blob = *wim
        .blob_table()
        .blobs
        .iter()
        .find(|b| !b.is_metadata())
        .unwrap();
    let entry = wim.header().blob_table.offset + 50 * blob.table_index as u64;
    bytes[(entry + 30 + 7) as usize] ^= 0x80; // inside the SHA-1 field
    let report = check(bytes.clone()).unwrap();
    assert!(!report.intact);
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert_eq!(report.failures[0].offset, blob.reshdr.offset);
    assert!(matches!(
        report.failures[0].problem,
        BlobProblem::HashMismatch { .. }
    ));
    // The blob table is covered by the integrity table: its last window fails.
    let integrity = report.integrity.as_ref().unwrap();
    assert_eq!(integrity.failures.len(), 1);
    let w = &integrity.failures[0];
    assert!(w.offset <= entry && entry < w.offset + w.len);
    assert!(!wimlib_ok(&bytes));
}

#[test]
fn flipped_size_in_blob_table_is_a_structure_error() {
    let mut bytes = load("none.wim");
    let wim = Wim::open(bytes.clone()).unwrap();
    let blob = *wim
        .blob_table()
        .blobs
        .iter()
        .find(|b| !b.is_metadata())
        .unwrap();
    let entry = wim.header().blob_table.offset + 50 * blob.table_index as u64;
    bytes[(entry + 2) as usize] ^= 0x10; // stored size no longer equals the original size
    assert!(matches!(
        Wim::open(bytes.clone()),
        Err(Error::Corrupt { .. })
    ));
    let report = check(bytes.clone()).unwrap();
    assert!(!report.intact);
    assert!(
        report
            .structure_error
            .as_deref()
            .unwrap()
            .contains("blob table entry"),
        "{report:?}"
    );
    assert!(!wimlib_ok(&bytes));
}

#[test]
fn every_byte_of_the_blob_table_and_xml_flipped() {
    // Whatever a single flipped byte does to these structures, opening returns (never panics),
    // and an error names the structure.
    let bytes = load("none-check.wim");
    let wim = Wim::open(bytes.clone()).unwrap();
    let h = wim.header().clone();
    for region in [h.blob_table, h.xml] {
        for at in region.offset..region.offset + region.size_in_wim {
            let mut damaged = bytes.clone();
            damaged[at as usize] ^= 0xA5;
            match Wim::open(damaged) {
                Ok(_) | Err(Error::Corrupt { .. }) => {}
                Err(e) => panic!("byte {at}: unexpected {e}"),
            }
        }
    }
}

#[test]
fn broken_xml_is_a_structure_error() {
    let mut bytes = load("none-check.wim");
    let xml = Wim::open(bytes.clone()).unwrap().header().xml;
    // The '<' of <WIM>, after the 2-byte byte order mark.
    let at = (xml.offset + 2) as usize;
    assert_eq!(&bytes[at..at + 2], &[b'<', 0]);
    bytes[at] = b'!';
    let err = Wim::open(bytes.clone()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { what, .. } if what == "XML data"),
        "{err}"
    );
    let report = check(bytes.clone()).unwrap();
    assert!(!report.intact && report.structure_error.is_some());
    // The XML is not covered by the integrity table.
    assert!(report.integrity.as_ref().unwrap().failures.is_empty());
    assert!(!wimlib_ok(&bytes));
}

#[test]
fn flipped_integrity_digest_and_size() {
    let bytes = load("none-check.wim");
    let table = Wim::open(bytes.clone())
        .unwrap()
        .header()
        .integrity
        .unwrap();
    let mut damaged = bytes.clone();
    damaged[(table.offset + 12 + 5) as usize] ^= 0x01; // the first digest
    let report = check(damaged.clone()).unwrap();
    assert!(!report.intact);
    assert!(report.failures.is_empty(), "blobs are fine: {report:?}");
    let integrity = report.integrity.unwrap();
    assert_eq!(
        integrity
            .failures
            .iter()
            .map(|f| f.chunk)
            .collect::<Vec<_>>(),
        [0]
    );
    let mut damaged = bytes.clone();
    damaged[table.offset as usize] ^= 0x01; // the size field
    let report = check(damaged).unwrap();
    assert!(!report.intact);
    assert!(report.integrity.unwrap().table_error.is_some());
}

#[test]
fn truncation_at_several_points() {
    let bytes = load("none-check.wim");
    let h = Wim::open(bytes.clone()).unwrap().header().clone();
    // Shorter than a header: the file cannot be checked at all.
    for len in [0, 100, 207] {
        assert!(
            matches!(check(bytes[..len].to_vec()), Err(Error::Corrupt { .. })),
            "{len}"
        );
    }
    // A cut integrity table does not stop the WIM from opening (scan reads only the XML).
    let cut = h.integrity.unwrap().offset as usize + 13;
    let report = check(bytes[..cut].to_vec()).unwrap();
    assert!(report.integrity.unwrap().table_error.is_some() && report.structure_error.is_none());
    assert!(!report.intact);
    assert!(Wim::open(bytes[..cut].to_vec()).is_ok());
    // Anything that cuts the blob table, XML or integrity table away: corruption found.
    for len in [
        208,
        4096,
        bytes.len() / 2,
        h.blob_table.offset as usize + 10,
        h.xml.offset as usize + 10,
        h.integrity.unwrap().offset as usize + 13,
        bytes.len() - 1,
    ] {
        let report = check(bytes[..len].to_vec()).unwrap_or_else(|e| panic!("{len}: {e}"));
        assert!(!report.intact, "{len}");
        assert!(
            report.structure_error.is_some()
                || report.integrity.is_some_and(|i| i.table_error.is_some()),
            "{len}"
        );
        assert!(!wimlib_ok(&bytes[..len]), "{len}");
    }
}

#[test]
fn random_flips_never_panic() {
    let bytes = load("none-check.wim");
    let h = Wim::open(bytes.clone()).unwrap().header().clone();
    let covered = 208..h.blob_table.offset + h.blob_table.size_in_wim;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..48 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut damaged = bytes.clone();
        let at = (state % bytes.len() as u64) as usize;
        damaged[at] ^= (state >> 56) as u8 | 1;
        match check(damaged) {
            // Every byte the integrity table covers is caught.
            Ok(report) => assert!(!report.intact || !covered.contains(&(at as u64)), "{at}"),
            Err(e) => assert!(at < 208, "byte {at}: {e}"),
        }
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Edits image 1's metadata resource of an uncompressed WIM with `edit`, then fixes its SHA-1
/// in the blob table, so every blob still hashes right and only the tree is wrong.
fn patch_metadata(bytes: &mut [u8], edit: impl FnOnce(&mut [u8])) {
    let wim = Wim::open(bytes.to_vec()).unwrap();
    let meta = *wim
        .blob_table()
        .blobs
        .iter()
        .find(|b| b.is_metadata())
        .unwrap();
    assert!(!meta.reshdr.is_compressed(), "needs an uncompressed WIM");
    let start = meta.reshdr.offset as usize;
    let res = &mut bytes[start..start + meta.reshdr.size_in_wim as usize];
    edit(res);
    let digest = winre_wim::digest::Sha1Digest::of(res).0;
    // The blob table holds the old SHA-1 once: replace it.
    let table = wim.header().blob_table;
    let t = &mut bytes[table.offset as usize..(table.offset + table.size_in_wim) as usize];
    let pos = t.windows(20).position(|w| w == meta.sha1.0).unwrap();
    t[pos..pos + 20].copy_from_slice(&digest);
}

/// Makes image 1 cyclic, as wimlib's tests/wims/cyclic.wim is (that file is GPL, so it is
/// rebuilt here): the root's first subdirectory gets the root's children list as its own.
fn make_cyclic(res: &mut [u8]) {
    // Security data (its total length, 8-aligned), then the root dentry.
    let root = (u32::from_le_bytes(res[0..4].try_into().unwrap()) as usize).next_multiple_of(8);
    let children = u64_at(res, root + 0x10) as usize;
    let mut at = children;
    let dir = loop {
        let length = u64_at(res, at) as usize;
        assert!(length != 0, "the root has no subdirectory");
        let attributes = u32::from_le_bytes(res[at + 8..at + 12].try_into().unwrap());
        if attributes & 0x10 != 0 && u64_at(res, at + 0x10) != 0 {
            break at;
        }
        let streams = u16::from_le_bytes(res[at + 0x60..at + 0x62].try_into().unwrap());
        at += length.next_multiple_of(8);
        for _ in 0..streams {
            at += (u64_at(res, at) as usize).next_multiple_of(8);
        }
    };
    res[dir + 0x10..dir + 0x18].copy_from_slice(&(children as u64).to_le_bytes());
}

#[test]
fn a_cyclic_directory_tree_fails_verify_although_every_blob_hashes_right() {
    let mut bytes = load("none.wim");
    patch_metadata(&mut bytes, make_cyclic);
    let report = check(bytes.clone()).unwrap();
    assert!(!report.intact, "{report:#?}");
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    let error = report.structure_error.as_deref().unwrap();
    assert!(
        error.starts_with("image 1: its directory tree cannot be read")
            && error.contains("a directory cycle"),
        "{error}"
    );
    assert!(!wimlib_ok(&bytes), "wimlib-imagex verify also refuses it");
    // The untouched WIM is intact for both.
    let report = check(load("none.wim")).unwrap();
    assert!(report.intact && report.structure_error.is_none());
}

#[test]
fn a_security_block_past_the_end_fails_verify() {
    let mut bytes = load("none.wim");
    patch_metadata(&mut bytes, |res| {
        let len = res.len() as u32;
        res[0..4].copy_from_slice(&(len + 8).to_le_bytes());
    });
    let report = check(bytes.clone()).unwrap();
    assert!(!report.intact && report.failures.is_empty(), "{report:#?}");
    assert!(
        report
            .structure_error
            .as_deref()
            .is_some_and(|e| e.starts_with("image 1: its directory tree cannot be read")),
        "{report:#?}"
    );
    assert!(!wimlib_ok(&bytes), "wimlib-imagex verify also refuses it");
}

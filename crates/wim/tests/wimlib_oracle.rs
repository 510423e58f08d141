//! Our reading of the fixture WIMs against what `wimlib-imagex info` prints about them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

mod common;

use std::collections::BTreeMap;

use common::*;
use winre_readat::{Counting, FileReader};
use winre_wim::codec::Compression;
use winre_wim::{Error, Wim, WimInfo};

fn num(map: &BTreeMap<String, String>, key: &str) -> u64 {
    let v = map
        .get(key)
        .unwrap_or_else(|| panic!("wimlib output lacks {key:?}: {map:?}"));
    let v = v.trim_end_matches(" bytes");
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
        None => v.parse().unwrap_or_else(|_| panic!("{key} = {v:?}")),
    }
}

#[test]
fn header_agrees_with_wimlib() {
    let dir = fixtures();
    for name in READABLE.iter().chain(&["solid.wim"]) {
        let path = dir.join(name);
        let wim =
            Wim::open(FileReader::open(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let h = wim.header();
        let theirs = fields(
            &run(
                "wimlib-imagex",
                &["info", path.to_str().unwrap(), "--header"],
            ),
            "=",
        );
        assert_eq!(u64::from(h.version), num(&theirs, "Version"), "{name}");
        assert_eq!(u64::from(h.flags.0), num(&theirs, "Flags"), "{name}");
        assert_eq!(
            u64::from(h.chunk_size_bytes),
            num(&theirs, "Chunk Size"),
            "{name}"
        );
        assert_eq!(h.guid_hex(), theirs["GUID"], "{name}");
        assert_eq!(
            u64::from(h.part_number),
            num(&theirs, "Part Number"),
            "{name}"
        );
        assert_eq!(
            u64::from(h.total_parts),
            num(&theirs, "Total Parts"),
            "{name}"
        );
        assert_eq!(
            u64::from(h.image_count),
            num(&theirs, "Image Count"),
            "{name}"
        );
        assert_eq!(
            u64::from(h.boot_index),
            num(&theirs, "Boot Index"),
            "{name}"
        );
        for (label, r) in [
            ("Blob Table", h.blob_table),
            ("XML Data", h.xml),
            ("Boot Metadata", h.boot_metadata),
        ] {
            assert_eq!(
                r.size_in_wim,
                num(&theirs, &format!("{label} Size")),
                "{name} {label}"
            );
            assert_eq!(
                r.offset,
                num(&theirs, &format!("{label} Offset")),
                "{name} {label}"
            );
            assert_eq!(
                u64::from(r.flags.0),
                num(&theirs, &format!("{label} Flags")),
                "{name} {label}"
            );
        }
        assert_eq!(
            h.blob_table.original_size,
            num(&theirs, "Blob Table Original_size")
        );
        assert_eq!(h.xml.original_size, num(&theirs, "XML Data Original Size"));
        assert_eq!(
            h.boot_metadata.original_size,
            num(&theirs, "Boot Metadata Original Size")
        );
        let integrity = h.integrity.unwrap_or_default();
        assert_eq!(
            integrity.size_in_wim,
            num(&theirs, "Integrity Size"),
            "{name}"
        );
        assert_eq!(integrity.offset, num(&theirs, "Integrity Offset"), "{name}");
        assert_eq!(
            integrity.original_size,
            num(&theirs, "Integrity Original_size"),
            "{name}"
        );
    }
}

#[test]
fn info_and_images_agree_with_wimlib() {
    let dir = fixtures();
    for name in READABLE.iter().chain(&["solid.wim"]) {
        let path = dir.join(name);
        let wim = Wim::open(FileReader::open(&path).unwrap()).unwrap();
        let info = WimInfo::new(&wim);
        let (theirs, their_images) = wimlib_info(&path);
        let compression = match info.header.compression {
            Compression::None => "None",
            Compression::Xpress => "XPRESS",
            Compression::Lzx => "LZX",
            Compression::Lzms => "LZMS",
        };
        assert_eq!(compression, theirs["Compression"], "{name}");
        assert_eq!(
            u64::from(info.header.boot_index),
            num(&theirs, "Boot Index"),
            "{name}"
        );
        assert_eq!(info.xml_total_bytes, Some(num(&theirs, "Size")), "{name}");
        assert_eq!(
            info.has_integrity_table,
            theirs["Attributes"].contains("Integrity info"),
            "{name}"
        );
        assert_eq!(info.images.len(), their_images.len(), "{name}");
        for (ours, theirs) in info.images.iter().zip(&their_images) {
            let x = &ours.xml;
            let ctx = format!("{name} image {}", x.index);
            assert_eq!(u64::from(x.index), num(theirs, "Index"), "{ctx}");
            assert_eq!(x.name.clone().unwrap_or_default(), theirs["Name"], "{ctx}");
            assert_eq!(
                x.description.clone().unwrap_or_default(),
                theirs["Description"],
                "{ctx}"
            );
            assert_eq!(
                x.dir_count.unwrap_or(0),
                num(theirs, "Directory Count"),
                "{ctx}"
            );
            assert_eq!(
                x.file_count.unwrap_or(0),
                num(theirs, "File Count"),
                "{ctx}"
            );
            assert_eq!(
                x.total_bytes.unwrap_or(0),
                num(theirs, "Total Bytes"),
                "{ctx}"
            );
            assert_eq!(
                x.hard_link_bytes.unwrap_or(0),
                num(theirs, "Hard Link Bytes"),
                "{ctx}"
            );
            let created = x.creation_time.as_ref().unwrap();
            assert_eq!(
                wimlib_time(created.unix_seconds()),
                theirs["Creation Time"],
                "{ctx}"
            );
            let modified = x.last_modification_time.as_ref().unwrap();
            assert_eq!(
                wimlib_time(modified.unix_seconds()),
                theirs["Last Modification Time"],
                "{ctx}"
            );
            assert_eq!(
                x.flags.as_deref(),
                theirs.get("Flags").map(String::as_str),
                "{ctx}"
            );
            assert_eq!(
                if x.wimboot { "yes" } else { "no" },
                theirs["WIMBoot compatible"],
                "{ctx}"
            );
            match &x.windows {
                None => assert!(!theirs.contains_key("Architecture"), "{ctx}"),
                Some(w) => {
                    assert_eq!(w.arch_name, theirs["Architecture"], "{ctx}");
                    assert_eq!(
                        w.product_name.as_deref(),
                        theirs.get("Product Name").map(String::as_str),
                        "{ctx}"
                    );
                    assert_eq!(
                        w.edition_id.as_deref(),
                        theirs.get("Edition ID").map(String::as_str),
                        "{ctx}"
                    );
                    assert_eq!(
                        w.installation_type.as_deref(),
                        theirs.get("Installation Type").map(String::as_str),
                        "{ctx}"
                    );
                    assert_eq!(
                        w.product_type.as_deref(),
                        theirs.get("Product Type").map(String::as_str),
                        "{ctx}"
                    );
                    assert_eq!(
                        w.languages.join(" "),
                        theirs.get("Languages").cloned().unwrap_or_default(),
                        "{ctx}"
                    );
                    assert_eq!(
                        w.default_language.as_deref(),
                        theirs.get("Default Language").map(String::as_str),
                        "{ctx}"
                    );
                    if let Some(v) = &w.version {
                        assert_eq!(v.major.unwrap_or(0), num(theirs, "Major Version"), "{ctx}");
                        assert_eq!(v.minor.unwrap_or(0), num(theirs, "Minor Version"), "{ctx}");
                        assert_eq!(v.build.unwrap_or(0), num(theirs, "Build"), "{ctx}");
                        assert_eq!(
                            v.spbuild.unwrap_or(0),
                            num(theirs, "Service Pack Build"),
                            "{ctx}"
                        );
                        assert_eq!(
                            v.splevel.unwrap_or(0),
                            num(theirs, "Service Pack Level"),
                            "{ctx}"
                        );
                        let version = x.version.unwrap();
                        let expected = format!(
                            "{}.{}.{}.{}",
                            theirs["Major Version"],
                            theirs["Minor Version"],
                            theirs["Build"],
                            theirs["Service Pack Build"]
                        );
                        assert_eq!(version.to_string(), expected, "{ctx}");
                    }
                }
            }
        }
    }
}

#[test]
fn versions_set_by_the_fixture_script() {
    // The script sets these with `wimlib-imagex info --image-property`; read back as versions.
    let dir = fixtures();
    let wim = Wim::open(FileReader::open(dir.join("two-images.wim")).unwrap()).unwrap();
    let versions: Vec<String> = wim
        .images()
        .iter()
        .map(|i| i.version.unwrap().to_string())
        .collect();
    assert_eq!(versions, ["10.0.19041.5728", "10.0.22621.4317"]);
    assert!(wim.images()[0].version < wim.images()[1].version);
    assert_eq!(wim.header().boot_index, 2);
}

#[test]
fn blob_table_agrees_with_wimlib() {
    let dir = fixtures();
    for name in READABLE {
        let path = dir.join(name);
        let wim = Wim::open(FileReader::open(&path).unwrap()).unwrap();
        let theirs = blocks(
            &run(
                "wimlib-imagex",
                &["info", path.to_str().unwrap(), "--blobs"],
            ),
            "=",
        );
        let mut theirs: Vec<(String, u64, u64, u64, u64, bool, bool)> = theirs
            .iter()
            .map(|b| {
                (
                    b["Hash"].trim_start_matches("0x").to_owned(),
                    num(b, "Uncompressed size"),
                    num(b, "Compressed size"),
                    num(b, "Offset in WIM"),
                    num(b, "Reference Count"),
                    b["Flags"].contains("WIM_RESHDR_FLAG_METADATA"),
                    b["Flags"].contains("WIM_RESHDR_FLAG_COMPRESSED"),
                )
            })
            .collect();
        let mut ours: Vec<_> = wim
            .blob_table()
            .blobs
            .iter()
            .map(|b| {
                (
                    b.sha1.to_string(),
                    b.reshdr.original_size,
                    b.reshdr.size_in_wim,
                    b.reshdr.offset,
                    u64::from(b.ref_count),
                    b.is_metadata(),
                    b.reshdr.is_compressed(),
                )
            })
            .collect();
        theirs.sort();
        ours.sort();
        assert!(!ours.is_empty());
        assert_eq!(ours, theirs, "{name}");
        // Metadata matched to images in blob table order, the boot one as the header says.
        assert_eq!(
            wim.blob_table().metadata.len(),
            wim.images().len(),
            "{name}"
        );
        if wim.header().boot_index != 0 {
            let boot = wim.image_metadata(wim.header().boot_index).unwrap();
            assert_eq!(
                boot.reshdr.offset,
                wim.header().boot_metadata.offset,
                "{name}"
            );
        }
    }
}

#[test]
fn opening_reads_only_header_xml_and_blob_table() {
    let dir = fixtures();
    for name in READABLE {
        let counting = Counting::new(FileReader::open(dir.join(name)).unwrap());
        let wim = Wim::open(&counting).unwrap();
        let h = wim.header();
        let expected = 208 + h.xml.size_in_wim + h.blob_table.size_in_wim;
        assert_eq!(counting.stats().bytes, expected, "{name}");
        assert!(
            counting.stats().calls <= 3,
            "{name}: {:?}",
            counting.stats()
        );
    }
}

#[test]
fn unsupported_kinds_are_named() {
    let dir = fixtures();
    let open = |n: &str| Wim::open(FileReader::open(dir.join(n)).unwrap());
    assert!(matches!(open("split.swm"), Err(Error::Unsupported(m)) if m.contains("split")));
    assert!(matches!(open("split2.swm"), Err(Error::Unsupported(m)) if m.contains("part 2 of")));
    // Pipable and solid WIMs open (tests/solid.rs reads them in full).
    assert!(open("pipable.wim").unwrap().header().pipable);
    let solid = open("solid.wim").unwrap();
    assert!(solid.blob_table().has_solid);
    assert_eq!(solid.blob_table().solid_resources.len(), 1);
}

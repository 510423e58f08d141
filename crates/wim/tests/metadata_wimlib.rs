//! The metadata reader against wimlib-imagex: for every fixture WIM, the paths of
//! `wimlib-imagex dir` (same order) and every field of `wimlib-imagex dir --detailed` (short
//! name, attributes, times, reparse tag, link group and count, each stream's name, hash and size).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use winre_readat::FileReader;
use winre_wim::metadata::StreamKind;
use winre_wim::{Image, Wim};

fn open(path: &Path) -> Wim<FileReader> {
    Wim::open(FileReader::open(path).unwrap()).unwrap()
}

fn all_wims() -> Vec<std::path::PathBuf> {
    let trees = common::tree_fixtures();
    let basic = common::fixtures();
    let mut v: Vec<_> = [
        "tree-lzx.wim",
        "tree-none.wim",
        "tree-xpress.wim",
        "ntfs.wim",
        "many.wim",
    ]
    .iter()
    .map(|n| trees.join(n))
    .collect();
    v.extend(common::READABLE.iter().map(|n| basic.join(n)));
    v
}

#[test]
fn paths_equal_wimlib_dir() {
    for path in all_wims() {
        let wim = open(&path);
        for index in 1..=wim.header().image_count {
            let image = Image::open(&wim, index).unwrap();
            let mut ours = Vec::new();
            image.walk(0, |d| ours.push(image.path(d.id)));
            let theirs = common::run(
                "wimlib-imagex",
                &["dir", path.to_str().unwrap(), &index.to_string()],
            );
            let theirs: Vec<&str> = theirs.lines().collect();
            assert_eq!(ours, theirs, "{} image {index}", path.display());
            assert!(image.warnings.is_empty(), "{:?}", image.warnings);
        }
    }
}

/// One `wimlib-imagex dir --detailed` block: its fields and its streams (kind label, name,
/// hash, size).
#[derive(Debug, Default)]
struct Detailed {
    fields: BTreeMap<String, String>,
    streams: Vec<(String, String, u64)>,
}

fn detailed(wim: &Path, index: u32) -> BTreeMap<String, Detailed> {
    let text = common::run(
        "wimlib-imagex",
        &[
            "dir",
            wim.to_str().unwrap(),
            &index.to_string(),
            "--detailed",
        ],
    );
    let mut out = BTreeMap::new();
    for block in
        text.split("----------------------------------------------------------------------------\n")
    {
        let mut d = Detailed::default();
        let mut label: Option<String> = None;
        let mut hash = String::new();
        for line in block.lines() {
            if let Some(l) = line.strip_prefix('\t') {
                label = Some(l.trim_end_matches(':').to_owned());
                continue;
            }
            let Some((k, v)) = line.split_once(" = ") else {
                continue;
            };
            let (k, v) = (k.trim().to_owned(), v.trim().to_owned());
            match (&label, k.as_str()) {
                (None, _) => {
                    d.fields.insert(k, v);
                }
                (Some(_), "Hash") => hash = v.trim_start_matches("0x").to_owned(),
                (Some(l), "Uncompressed size") => {
                    let size = v.trim_end_matches(" bytes").parse().unwrap();
                    d.streams.push((l.clone(), hash.clone(), size));
                }
                _ => {}
            }
        }
        if let Some(p) = d.fields.get("Full Path") {
            out.insert(p.trim_matches('"').to_owned(), d);
        }
    }
    out
}

#[test]
fn fields_equal_wimlib_dir_detailed() {
    for path in all_wims() {
        let wim = open(&path);
        let image = Image::open(&wim, 1).unwrap();
        let theirs = detailed(&path, 1);
        let mut seen = 0;
        // `date` per timestamp is slow: most files share a few timestamps.
        let mut times: BTreeMap<i64, String> = BTreeMap::new();
        let mut time = |secs: i64| {
            times
                .entry(secs)
                .or_insert_with(|| common::wimlib_time(secs))
                .clone()
        };
        image.walk(0, |d| {
            let p = image.path(d.id);
            let t = theirs
                .get(&p)
                .unwrap_or_else(|| panic!("{p} not in wimlib's listing"));
            let f = |k: &str| t.fields.get(k).cloned().unwrap_or_default();
            let ctx = format!("{} {p}", path.display());
            assert_eq!(f("Short Name"), format!("\"{}\"", d.short_name), "{ctx}");
            assert_eq!(
                f("Attributes"),
                format!("{:#010x}", d.attributes()),
                "{ctx}"
            );
            assert_eq!(
                f("Creation Time"),
                time(d.creation_time().unix_seconds()),
                "{ctx}"
            );
            assert_eq!(
                f("Last Write Time"),
                time(d.last_write_time().unix_seconds()),
                "{ctx}"
            );
            assert_eq!(
                f("Last Access Time"),
                time(d.last_access_time().unix_seconds()),
                "{ctx}"
            );
            assert_eq!(f("Link Count"), image.link_count(d).to_string(), "{ctx}");
            assert_eq!(
                f("Link Group ID"),
                format!("{:#018x}", d.record.hard_link_group_id),
                "{ctx}"
            );
            assert_eq!(
                t.fields.get("Reparse Tag").cloned(),
                d.record.reparse_tag.map(|t| format!("{t:#010x}")),
                "{ctx}"
            );
            // Normalisation: wimlib's dir shows a reparse point's reparse stream in the place of
            // its unnamed data stream, and not the (empty) data stream itself.
            let ours: Vec<(String, String, u64)> = d
                .streams()
                .iter()
                .filter(|s| {
                    !(d.is_reparse_point() && s.name.is_none() && s.kind == StreamKind::Data)
                })
                .map(|s| {
                    let label = match (&s.name, s.kind) {
                        (Some(n), _) => format!("Named data stream \"{n}\""),
                        (None, StreamKind::Data) => "Unnamed data stream".to_owned(),
                        (None, StreamKind::ReparsePoint) => "Reparse point stream".to_owned(),
                        (None, StreamKind::EncryptedRaw) => "Raw encrypted data stream".to_owned(),
                    };
                    (
                        label,
                        s.hash.to_string(),
                        image.stream_size_bytes(s).unwrap(),
                    )
                })
                .collect();
            assert_eq!(ours, t.streams, "{ctx}");
            seen += 1;
        });
        assert_eq!(seen, theirs.len(), "{}", path.display());
    }
}

#[test]
fn lookup_is_case_insensitive_and_prefers_exact_names() {
    let wim = open(&common::tree_fixtures().join("tree-lzx.wim"));
    let image = Image::open(&wim, 1).unwrap();
    let exe = image.lookup(r"WINDOWS\system32\WinPeShl.EXE").unwrap();
    assert_eq!(image.path(exe.id), "/Windows/System32/winpeshl.exe");
    assert_eq!(image.lookup("/").unwrap().id, 0);
    assert_eq!(image.lookup("").unwrap().id, 0);
    // Three names differ only in case: an exact name wins; otherwise the first in order.
    for (asked, found) in [
        ("case/Readme.TXT", "/case/Readme.TXT"),
        ("case/readme.txt", "/case/readme.txt"),
        ("case/README.txt", "/case/README.txt"),
        ("case/rEADME.txt", "/case/README.txt"),
        ("unicode/ÄRGER", "/unicode/Ärger"),
        ("unicode/ωMEGA/日本語.TXT", "/unicode/Ωmega/日本語.txt"),
        ("unicode/𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "/unicode/𝔘𝔫𝔦𝔠𝔬𝔡𝔢"),
    ] {
        let d = image.lookup(asked).unwrap_or_else(|| panic!("{asked}"));
        assert_eq!(image.path(d.id), found);
    }
    assert!(image.lookup("case/missing").is_none());
    assert!(image.lookup("case/a/below-a-file").is_none());
    // The data read back equals the source file.
    let src = std::fs::read(common::tree_fixtures().join("src-tree/Windows/System32/winpeshl.exe"))
        .unwrap();
    let data = image
        .read_stream(&wim, exe.unnamed_stream().unwrap(), 1 << 20)
        .unwrap();
    assert_eq!(data, src);
    assert_eq!(
        exe.unnamed_stream_hash().unwrap(),
        winre_wim::Sha1Digest::of(&src)
    );
    let empty = image.lookup("empty/e1").unwrap();
    assert_eq!(empty.unnamed_stream_hash(), None);
    assert!(empty.unnamed_stream().unwrap().hash.is_zero());
}

#[test]
fn missing_image_is_not_found() {
    let wim = open(&common::tree_fixtures().join("tree-lzx.wim"));
    assert!(matches!(
        Image::open(&wim, 2),
        Err(winre_wim::Error::NotFound(_))
    ));
    assert!(matches!(
        Image::open(&wim, 0),
        Err(winre_wim::Error::NotFound(_))
    ));
}

//! `winre wim ls`, `cat` and `extract` as a user runs them, against wimlib-imagex and ntfs-3g:
//! listings equal `wimlib-imagex dir`, extracted bytes equal `wimlib-imagex apply`, named
//! streams equal what `ntfscat` reads from an NTFS volume wimlib applied the image to; and
//! hostile metadata (patched into an uncompressed WIM, its blob table hash fixed) gives clear
//! errors and writes nothing outside the target directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha1::Digest;

fn tree_fixtures() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-tree-wims.sh");
    let out = Command::new("bash").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "make-tree-wims.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn winre(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_winre"))
        .args(args)
        .output()
        .unwrap()
}

fn tool(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap_or_else(|e| panic!("{program} is required (apt: wimtools ntfs-3g): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn ls_equals_wimlib_dir() {
    let dir = tree_fixtures();
    for name in [
        "tree-lzx.wim",
        "tree-none.wim",
        "tree-xpress.wim",
        "ntfs.wim",
        "many.wim",
    ] {
        let wim = dir.join(name);
        let ours = ok(&winre(&["wim", "ls", s(&wim)]));
        let theirs = String::from_utf8(tool("wimlib-imagex", &["dir", s(&wim), "1"])).unwrap();
        assert_eq!(ours, theirs, "{name}");
    }
    // A PATH, given in another case and with backslashes (wimlib on Linux wants the exact case).
    let wim = dir.join("tree-lzx.wim");
    for (ours_path, their_path) in [
        (r"UNICODE\ωmega", "/unicode/Ωmega"),
        ("links", "/links"),
        (r"\Windows\System32\BIG.bin", "/Windows/System32/big.bin"),
    ] {
        let ours = ok(&winre(&["wim", "ls", s(&wim), "1", ours_path]));
        let theirs = String::from_utf8(tool(
            "wimlib-imagex",
            &["dir", s(&wim), "1", &format!("--path={their_path}")],
        ))
        .unwrap();
        assert_eq!(ours, theirs, "{ours_path}");
    }
    let out = winre(&["wim", "ls", s(&wim), "1", "no/such/path"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let out = winre(&["wim", "ls", s(&wim), "7"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn ls_json_fields() {
    let dir = tree_fixtures();
    let wim = dir.join("ntfs.wim");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&winre(&["wim", "ls", "--json", s(&wim), "1", "docs"]))).unwrap();
    assert_eq!(json["image"], 1);
    assert_eq!(json["path"], "/docs");
    let entries = json["entries"].as_array().unwrap();
    let report = entries
        .iter()
        .find(|e| e["path"] == "/docs/report.txt")
        .unwrap();
    let src = dir.join("src-ntfs/docs/report.txt");
    assert_eq!(report["size_bytes"], std::fs::metadata(&src).unwrap().len());
    assert_eq!(report["kind"], "file");
    let names: Vec<&str> = report["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["big", "meta", "Zone.Identifier"]);
    let big = &report["streams"][1];
    assert_eq!(big["size_bytes"], 100_000);
    assert_eq!(
        big["sha1"],
        hex(&sha1::Sha1::digest(
            std::fs::read(dir.join("streams/big")).unwrap()
        ))
    );
    let tree = tree_fixtures().join("tree-lzx.wim");
    let json: serde_json::Value = serde_json::from_str(&ok(&winre(&[
        "wim",
        "ls",
        "--json",
        s(&tree),
        "1",
        "links",
    ])))
    .unwrap();
    let entries = json["entries"].as_array().unwrap();
    let link = entries
        .iter()
        .find(|e| e["path"] == "/links/rel-link")
        .unwrap();
    assert_eq!(link["kind"], "symlink");
    assert_eq!(link["reparse_tag"], 0xA000_000Cu32);
    let a = entries
        .iter()
        .find(|e| e["path"] == "/links/a.txt")
        .unwrap();
    assert_eq!(a["link_count"], 3);
    assert_ne!(a["hard_link_group_id"], 0);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn cat_gives_file_and_stream_bytes() {
    let dir = tree_fixtures();
    let wim = dir.join("tree-lzx.wim");
    for (path, src) in [
        (
            r"windows\SYSTEM32\big.bin",
            "src-tree/Windows/System32/big.bin",
        ),
        (
            "unicode/Ωmega/日本語.txt",
            "src-tree/unicode/Ωmega/日本語.txt",
        ),
        ("links/sub/c.txt", "src-tree/links/a.txt"),
        ("empty/e1", "src-tree/empty/e1"),
    ] {
        let out = winre(&["wim", "cat", s(&wim), "1", path]);
        ok(&out);
        assert_eq!(out.stdout, std::fs::read(dir.join(src)).unwrap(), "{path}");
    }
    assert_eq!(
        winre(&["wim", "cat", s(&wim), "1", "links"]).status.code(),
        Some(2)
    );

    // Named streams, against ntfscat on an NTFS volume wimlib-imagex applied the image to.
    let ntfs = dir.join("ntfs.wim");
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("part.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    tool("mkntfs", &["-F", "-Q", "-q", s(&img)]);
    tool("wimlib-imagex", &["apply", s(&ntfs), "1", s(&img)]);
    for (file, stream) in [
        ("/docs/report.txt", "meta"),
        ("/docs/report.txt", "Zone.Identifier"),
        ("/docs/report.txt", "big"),
        ("/docs/empty-main.txt", "onempty"),
        ("/docs/plain.txt", "vacant"),
        ("/docs", "dirstream"),
    ] {
        let ours = winre(&["wim", "cat", s(&ntfs), "1", &format!("{file}:{stream}")]);
        ok(&ours);
        let theirs = tool("ntfscat", &["-a", "0x80", "-n", stream, s(&img), file]);
        assert_eq!(ours.stdout, theirs, "{file}:{stream}");
    }
    let theirs = tool("ntfscat", &[s(&img), "/docs/report.txt"]);
    let ours = winre(&["wim", "cat", s(&ntfs), "1", "/docs/report.txt"]);
    ok(&ours);
    assert_eq!(ours.stdout, theirs);
    let out = winre(&["wim", "cat", s(&ntfs), "1", "/docs/report.txt:nope"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Every regular file below `root`, relative path -> bytes; and every directory.
fn snapshot(root: &Path) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                dirs.push(rel);
                stack.push(e.path());
            } else if ft.is_file() {
                files.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    files.sort();
    dirs.sort();
    (files, dirs)
}

#[test]
fn extract_equals_wimlib_apply() {
    let dir = tree_fixtures();
    for name in ["tree-lzx.wim", "tree-xpress.wim", "many.wim", "ntfs.wim"] {
        let wim = dir.join(name);
        let tmp = tempfile::tempdir().unwrap();
        let (ours, theirs) = (tmp.path().join("ours"), tmp.path().join("theirs"));
        let out = winre(&["wim", "extract", s(&wim), "1", "/", "-o", s(&ours)]);
        // tree-*: the four symlinks are skipped (exit 1); ntfs.wim: named streams noted.
        let expected = if name == "many.wim" { 0 } else { 1 };
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tool("wimlib-imagex", &["apply", s(&wim), "1", s(&theirs)]);
        assert_eq!(snapshot(&ours), snapshot(&theirs), "{name}");
    }
    // A subdirectory and a file, named in another case: they land under their own names.
    let wim = dir.join("tree-lzx.wim");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    ok(&winre(&[
        "wim",
        "extract",
        s(&wim),
        "1",
        "DEEP",
        r"windows\system32\TEXT.TXT",
        "-o",
        s(&out),
    ]));
    let deep = (1..=40).fold(out.join("deep"), |p, i| p.join(format!("d{i:02}")));
    assert_eq!(
        std::fs::read(deep.join("leaf.txt")).unwrap(),
        b"forty levels down\n"
    );
    assert_eq!(
        std::fs::read(out.join("text.txt")).unwrap(),
        std::fs::read(dir.join("src-tree/Windows/System32/text.txt")).unwrap()
    );
}

#[test]
fn extract_streams_as_name_colon_stream() {
    let dir = tree_fixtures();
    let wim = dir.join("ntfs.wim");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    ok(&winre(&[
        "wim",
        "extract",
        s(&wim),
        "1",
        "docs",
        "-o",
        s(&out),
        "--streams",
    ]));
    for (file, src) in [
        ("docs/report.txt:big", "streams/big"),
        ("docs/report.txt:Zone.Identifier", "streams/zone"),
        ("docs:dirstream", "streams/dir"),
        ("docs/plain.txt:vacant", "streams/empty"),
    ] {
        assert_eq!(
            std::fs::read(out.join(file)).unwrap(),
            std::fs::read(dir.join(src)).unwrap(),
            "{file}"
        );
    }
}

#[test]
fn extract_never_overwrites_or_follows_symlinks() {
    let dir = tree_fixtures();
    let wim = dir.join("tree-lzx.wim");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), b"keep me").unwrap();
    // A symlinked directory and a symlinked file already in DIR, pointing outside.
    std::os::unix::fs::symlink(&outside, out.join("links")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), out.join("text.txt")).unwrap();
    std::fs::write(out.join("big.bin"), b"old").unwrap();

    let files = [
        "links",
        r"Windows\System32\text.txt",
        "Windows/System32/big.bin",
    ];
    let run = |force: bool| {
        let mut args = vec!["wim", "extract", s(&wim), "1"];
        args.extend(files);
        args.extend(["-o", s(&out)]);
        if force {
            args.push("--force");
        }
        winre(&args)
    };
    let r = run(false);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("/links: refused"), "{err}");
    assert!(err.contains("not overwritten"), "{err}");
    assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), b"old");
    // --force replaces files (and the symlink itself), never writes through it.
    let r = run(true);
    assert_eq!(
        r.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(
        std::fs::read(out.join("big.bin")).unwrap(),
        std::fs::read(dir.join("src-tree/Windows/System32/big.bin")).unwrap()
    );
    assert!(!out.join("text.txt").is_symlink());
    assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"keep me");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
}

// ---- hostile metadata ----

/// Copies `tree-none.wim`, lets `patch` edit its (uncompressed) metadata resource in place, and
/// writes the resource's new SHA-1 into its blob table entry.
fn patched(tmp: &Path, patch: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let src = tree_fixtures().join("tree-none.wim");
    let dst = tmp.join("patched.wim");
    std::fs::copy(&src, &dst).unwrap();
    let wim = winre_wim::Wim::open(winre_readat::FileReader::open(&dst).unwrap()).unwrap();
    let meta = *wim.image_metadata(1).unwrap();
    assert!(!meta.reshdr.is_compressed());
    let table_offset = wim.header().blob_table.offset;
    assert!(!wim.header().blob_table.is_compressed());
    drop(wim);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dst)
        .unwrap();
    let mut buf = vec![0u8; meta.reshdr.original_size as usize];
    f.read_exact_at(&mut buf, meta.reshdr.offset).unwrap();
    let len = buf.len();
    patch(&mut buf);
    assert_eq!(buf.len(), len);
    f.write_all_at(&buf, meta.reshdr.offset).unwrap();
    let hash: [u8; 20] = sha1::Sha1::digest(&buf).into();
    f.write_all_at(&hash, table_offset + meta.table_index as u64 * 50 + 30)
        .unwrap();
    dst
}

/// Offset of the dentry named `name` (UTF-16LE, NUL-terminated, preceded by its length).
fn dentry_of(buf: &[u8], name: &str) -> usize {
    let mut pat: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let n = pat.len() as u16;
    pat.extend([0, 0]);
    (102..buf.len() - pat.len())
        .find(|&i| buf[i..].starts_with(&pat) && buf[i - 2..i] == n.to_le_bytes())
        .map(|i| i - 102)
        .unwrap_or_else(|| panic!("no dentry {name}"))
}

fn rename(buf: &mut [u8], from: &str, to: &str) {
    assert_eq!(from.encode_utf16().count(), to.encode_utf16().count());
    let at = dentry_of(buf, from) + 102;
    let to: Vec<u8> = to.encode_utf16().flat_map(u16::to_le_bytes).collect();
    buf[at..at + to.len()].copy_from_slice(&to);
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().unwrap())
}

fn expect_error(wim: &Path, needle: &str) {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        vec!["wim", "ls", s(wim), "1"],
        vec!["wim", "cat", s(wim), "1", "links/a.txt"],
        vec![
            "wim",
            "extract",
            s(wim),
            "1",
            "/",
            "-o",
            tmp.path().join("out").to_str().unwrap(),
        ],
    ] {
        let out = winre(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn hostile_directory_cycles_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // links/sub lists the children of links again: sub -> links' list -> sub -> ...
    let wim = patched(tmp.path(), |buf| {
        let links_list = u64_at(buf, dentry_of(buf, "links") + 0x10);
        let sub = dentry_of(buf, "sub");
        buf[sub + 0x10..sub + 0x18].copy_from_slice(&links_list.to_le_bytes());
    });
    expect_error(&wim, "directory cycle");
    // empty/dir lists itself.
    let wim = patched(tmp.path(), |buf| {
        let d = dentry_of(buf, "dir");
        let parent_list = u64_at(buf, dentry_of(buf, "empty") + 0x10);
        buf[d + 0x10..d + 0x18].copy_from_slice(&parent_list.to_le_bytes());
    });
    expect_error(&wim, "directory cycle");
}

#[test]
fn hostile_lengths_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let wim = patched(tmp.path(), |buf| {
        let d = dentry_of(buf, "a.txt");
        buf[d..d + 8].copy_from_slice(&0xFFFF_FFF0u64.to_le_bytes());
    });
    expect_error(&wim, "runs past the end");
    let wim = patched(tmp.path(), |buf| {
        buf[0..4].copy_from_slice(&0xFFFF_FFF8u32.to_le_bytes());
    });
    expect_error(&wim, "security data");
    // A subdirectory offset far past the end.
    let wim = patched(tmp.path(), |buf| {
        let d = dentry_of(buf, "links");
        buf[d + 0x10..d + 0x18].copy_from_slice(&u64::MAX.to_le_bytes());
    });
    expect_error(&wim, "past the end");
}

#[test]
fn hostile_names_are_refused_and_nothing_escapes() {
    let tmp = tempfile::tempdir().unwrap();
    let wim = patched(tmp.path(), |buf| {
        rename(buf, "Readme.TXT", r"..\..\evil");
        rename(buf, "a.txt", "/tmpx");
        rename(buf, "e1", "C:");
        rename(buf, "e2", "..");
        rename(buf, "d40", "C:x");
    });
    let listing = ok(&winre(&["wim", "ls", s(&wim), "1"]));
    assert!(listing.contains(r"/case/..\..\evil"), "{listing}");
    assert!(!listing.contains("/empty/..\n"), "{listing}");
    let area = tmp.path().join("area");
    let out = area.join("a/b/out");
    let r = winre(&["wim", "extract", s(&wim), "1", "/", "-o", s(&out)]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    for refused in [r"/case/..\..\evil", "/links//tmpx", "/empty/C:", "/d39/C:x"] {
        assert!(
            err.lines()
                .any(|l| l.contains(refused) && l.contains("refused")),
            "{refused}: {err}"
        );
    }
    assert!(err.contains("\"..\""), "the '..' entry is reported: {err}");
    // Nothing outside DIR: the area holds only the path down to DIR.
    let (files, dirs) = snapshot(&area);
    assert!(
        files.iter().all(|(p, _)| p.starts_with("a/b/out/")),
        "{files:?}"
    );
    assert_eq!(dirs.iter().filter(|d| !d.starts_with("a/b/out")).count(), 2);
    assert!(!Path::new("/tmpx").exists());
    assert!(out.join("case/_x").is_file());
}

// ---- verify names the files a damaged blob breaks ----

/// Copies `wim` and flips a byte of the (uncompressed) blob whose content is `content`.
fn damage_blob(wim: &Path, tmp: &Path, content: &[u8]) -> PathBuf {
    let dst = tmp.join("damaged.wim");
    std::fs::copy(wim, &dst).unwrap();
    let hash: [u8; 20] = sha1::Sha1::digest(content).into();
    let opened = winre_wim::Wim::open(winre_readat::FileReader::open(&dst).unwrap()).unwrap();
    let blob = *opened
        .blob_table()
        .blobs
        .iter()
        .find(|b| b.sha1.0 == hash)
        .expect("the blob is in the WIM");
    assert!(!blob.reshdr.is_compressed());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(&dst)
        .unwrap();
    let mut byte = [0u8];
    f.read_exact_at(&mut byte, blob.reshdr.offset).unwrap();
    f.write_all_at(&[byte[0] ^ 0xFF], blob.reshdr.offset)
        .unwrap();
    dst
}

fn uses(json: &serde_json::Value) -> Vec<(String, Option<String>)> {
    let failures = json["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{json}");
    let mut v: Vec<_> = failures[0]["used_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            assert_eq!(u["image"], 1);
            (
                u["path"].as_str().unwrap().to_owned(),
                u["stream"].as_str().map(str::to_owned),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn verify_maps_failed_blobs_to_paths() {
    let dir = tree_fixtures();
    let tmp = tempfile::tempdir().unwrap();
    // A hard-linked file: all three names.
    let wim = damage_blob(&dir.join("tree-none.wim"), tmp.path(), b"linked contents\n");
    let out = winre(&["verify", "--json", s(&wim)]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        uses(&json),
        [
            ("/links/a.txt".to_owned(), None),
            ("/links/b.txt".to_owned(), None),
            ("/links/sub/c.txt".to_owned(), None)
        ]
    );
    let text = String::from_utf8_lossy(&winre(&["verify", s(&wim)]).stdout).into_owned();
    assert!(
        text.contains("used by image 1: /links/sub/c.txt\n"),
        "{text}"
    );
    // Extraction skips the damaged file (leaving nothing of it) and goes on with the rest.
    let out_dir = tmp.path().join("out");
    let r = winre(&["wim", "extract", s(&wim), "1", "links", "-o", s(&out_dir)]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(err.contains("/links/a.txt: its data has SHA-1"), "{err}");
    assert!(!out_dir.join("links/a.txt").exists());
    assert!(out_dir.join("links/sub").is_dir());

    // A named stream whose bytes two files share (an uncompressed copy made by wimlib).
    let none = tmp.path().join("ntfs-none.wim");
    tool(
        "wimlib-imagex",
        &[
            "export",
            s(&dir.join("ntfs.wim")),
            "1",
            s(&none),
            "--compress=none",
        ],
    );
    let sub = tempfile::tempdir().unwrap();
    let wim = damage_blob(
        &none,
        sub.path(),
        &std::fs::read(dir.join("streams/meta")).unwrap(),
    );
    let out = winre(&["verify", "--json", s(&wim)]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        uses(&json),
        [
            (
                "/docs/empty-main.txt".to_owned(),
                Some("onempty".to_owned())
            ),
            ("/docs/report.txt".to_owned(), Some("meta".to_owned()))
        ]
    );
    let text = String::from_utf8_lossy(&winre(&["verify", s(&wim)]).stdout).into_owned();
    assert!(
        text.contains("used by image 1: /docs/report.txt (stream meta)"),
        "{text}"
    );
}

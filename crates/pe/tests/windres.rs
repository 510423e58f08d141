//! Version resources written by binutils' windres and ld (fixtures/make-pe.sh), read back and
//! compared with windres' own decompilation of the same images (`windres -i IMAGE -O rc`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use winre_pe::{read_version_info, Error, FourPartVersion, Translation};

fn fixtures() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let out = Command::new("bash")
        .arg(root.join("make-pe.sh"))
        .output()
        .expect("run make-pe.sh");
    assert!(
        out.status.success(),
        "make-pe.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// What windres reads back from an image: the binary versions and the plain-ASCII strings.
struct Decompiled {
    file_version: FourPartVersion,
    product_version: FourPartVersion,
    strings: Vec<(String, String)>,
}

fn version_line(rc: &str, keyword: &str) -> FourPartVersion {
    let line = rc
        .lines()
        .find(|l| l.trim_start().starts_with(keyword))
        .unwrap_or_else(|| panic!("no {keyword} in\n{rc}"));
    let parts: Vec<u16> = line.trim_start()[keyword.len()..]
        .split(',')
        .map(|p| p.trim().parse().unwrap())
        .collect();
    FourPartVersion {
        major: parts[0],
        minor: parts[1],
        build: parts[2],
        revision: parts[3],
    }
}

fn windres_decompile(image: &Path) -> Decompiled {
    let out = Command::new("x86_64-w64-mingw32-windres")
        .arg("-i")
        .arg(image)
        .args(["-O", "rc"])
        .output()
        .expect("run windres (binutils-mingw-w64-x86-64)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rc = String::from_utf8(out.stdout).unwrap();
    let strings = rc
        .lines()
        .filter_map(|l| l.trim().strip_prefix("VALUE \""))
        .filter_map(|rest| {
            let (name, value) = rest.split_once("\", \"")?;
            Some((name.to_string(), value.strip_suffix('"')?.to_string()))
        })
        .collect();
    Decompiled {
        file_version: version_line(&rc, "FILEVERSION"),
        product_version: version_line(&rc, "PRODUCTVERSION"),
        strings,
    }
}

#[test]
fn versions_and_strings_match_windres() {
    let dir = fixtures();
    for name in ["winpeshl.exe", "winload.efi", "x86.exe"] {
        let image = dir.join(name);
        let bytes = std::fs::read(&image).unwrap();
        let ours = read_version_info(&bytes).unwrap().expect(name);
        let theirs = windres_decompile(&image);
        let fixed = ours.fixed.as_ref().expect("fixed info");
        assert_eq!(fixed.file_version, theirs.file_version, "{name}");
        assert_eq!(fixed.product_version, theirs.product_version, "{name}");
        let ascii: Vec<(String, String)> = ours
            .string_tables
            .iter()
            .flat_map(|t| t.strings.iter().cloned())
            .filter(|(_, v)| v.is_ascii())
            .collect();
        assert_eq!(ascii, theirs.strings, "{name}");
    }
}

#[test]
fn values_from_the_resource_script() {
    let dir = fixtures();
    let bytes = std::fs::read(dir.join("winpeshl.exe")).unwrap();
    let info = read_version_info(&bytes).unwrap().unwrap();
    assert_eq!(
        info.fixed.as_ref().unwrap().file_version.to_string(),
        "10.0.22621.3233"
    );
    assert_eq!(
        info.string("FileVersion"),
        Some("10.0.22621.3233 (WinBuild.160101.0800)")
    );
    assert_eq!(info.string("ProductVersion"), Some("10.0.22621.3234"));
    let keys: Vec<&str> = info.string_tables.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, ["040904B0", "040704B0"]);
    // The script's UTF-8 text, stored by windres as UTF-16.
    let script = std::fs::read_to_string(dir.join("winpeshl.exe.rc")).unwrap();
    let description = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("VALUE \"FileDescription\", \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap();
    assert_eq!(info.string("FileDescription"), Some(description));
    assert_eq!(
        info.translations,
        [
            Translation {
                language: 0x409,
                code_page: 1200
            },
            Translation {
                language: 0x407,
                code_page: 1200
            }
        ]
    );
    // PE32 (i386) takes the other optional-header layout.
    let x86 = std::fs::read(dir.join("x86.exe")).unwrap();
    let info = read_version_info(&x86).unwrap().unwrap();
    assert_eq!(
        info.fixed.as_ref().unwrap().file_version.to_string(),
        "6.3.9600.17415"
    );
}

#[test]
fn no_version_resource_and_not_pe() {
    let dir = fixtures();
    let bytes = std::fs::read(dir.join("noversion.exe")).unwrap();
    assert_eq!(read_version_info(&bytes).unwrap(), None);
    assert!(matches!(
        read_version_info(b"not a PE image\n"),
        Err(Error::NotPe(_))
    ));
}

/// File offset of the resource table, found the way a reader of the format would.
fn rsrc_offset(bytes: &[u8]) -> usize {
    let pe = u32::from_le_bytes(bytes[0x3C..0x40].try_into().unwrap()) as usize;
    let sections = u16::from_le_bytes(bytes[pe + 6..pe + 8].try_into().unwrap()) as usize;
    let optional = u16::from_le_bytes(bytes[pe + 20..pe + 22].try_into().unwrap()) as usize;
    let table = pe + 24 + optional;
    (0..sections)
        .map(|i| &bytes[table + 40 * i..table + 40 * (i + 1)])
        .find(|s| s.starts_with(b".rsrc"))
        .map(|s| u32::from_le_bytes(s[20..24].try_into().unwrap()) as usize)
        .unwrap()
}

#[test]
fn hostile_images_give_errors_not_panics() {
    let dir = fixtures();
    let good = std::fs::read(dir.join("winpeshl.exe")).unwrap();
    // Every truncation.
    for len in 0..good.len() {
        let _ = read_version_info(&good[..len]);
    }
    // The RT_VERSION entry pointed back at the root directory: a cycle, which the fixed
    // three-level walk turns into an error.
    let rsrc = rsrc_offset(&good);
    let mut cyclic = good.clone();
    cyclic[rsrc + 16 + 4..rsrc + 16 + 8].copy_from_slice(&0x8000_0000u32.to_le_bytes());
    let err = read_version_info(&cyclic).unwrap_err().to_string();
    assert!(err.contains("resource"), "{err}");
    // A directory claiming 65535 entries.
    let mut many = good.clone();
    many[rsrc + 14..rsrc + 16].copy_from_slice(&u16::MAX.to_le_bytes());
    let err = read_version_info(&many).unwrap_err().to_string();
    assert!(err.contains("entries run past"), "{err}");
    // Deterministic pseudo-random byte flips over the resource section.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..20_000 {
        let mut bytes = good.clone();
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = rsrc + (state as usize % (good.len() - rsrc));
            bytes[at] = (state >> 32) as u8;
        }
        let _ = read_version_info(&bytes);
    }
}

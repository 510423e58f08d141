//! Helpers shared by the fuzz targets: read a guest disk at spread-out offsets, walk a hive,
//! and give the path-only openers (VMDK, E01) a private file to open.
//!
//! Every target checks one thing: the parser returns (Ok or Err) on any input, without a panic,
//! a hang or an allocation the input did not pay for. Results are discarded.

use std::path::PathBuf;

use winre_readat::ReadAt;

/// Reads the first 64 KiB of `reader`, then 4 KiB at 32 offsets spread over its length, and asks
/// `known_zero` about each: enough to walk the block / grain / cluster tables a header points to,
/// without reading a (possibly terabyte-sized) virtual disk whole.
pub fn sample_reads(reader: &dyn ReadAt) {
    let len = reader.len();
    let mut buf = vec![0u8; 4096];
    for i in 0..16u64 {
        let _ = reader.read_exact_at(i * 4096, &mut buf);
    }
    for i in 0..32u64 {
        let offset = (len / 32).saturating_mul(i).saturating_add(i * 512 + 1);
        let _ = reader.known_zero(offset, 4096);
        let _ = reader.read_exact_at(offset, &mut buf);
    }
    let _ = reader.read_exact_at(len.saturating_sub(4096), &mut buf);
}

/// Visits up to `budget` keys and their values below `key`, at most `depth` levels deep.
pub fn walk_key<R: ReadAt>(key: &winre_hive::Key<'_, R>, depth: u32, budget: &mut u32) {
    if let Ok(values) = key.values() {
        for v in values.iter().take(64) {
            let _ = v.name();
            let _ = v.data();
            let _ = v.as_string();
            let _ = v.as_multi_string();
            let _ = v.as_u32();
            let _ = v.as_u64();
        }
    }
    if depth == 0 {
        return;
    }
    let Ok(subkeys) = key.subkeys() else { return };
    for sub in subkeys {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        if let Ok(sub) = sub {
            walk_key(&sub, depth - 1, budget);
        }
    }
}

/// A directory of this process's own, in /dev/shm when it exists (no disk writes per input).
pub fn scratch_dir() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("winre-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Writes `files` (name, bytes) into [`scratch_dir`] after removing what the last input left
/// there, and returns the directory.
pub fn write_files(files: &[(&str, &[u8])]) -> PathBuf {
    let dir = scratch_dir();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("scratch file");
    }
    dir
}

//! What opening a container and reading its GPT costs: `open_cost IMAGE...` prints, per image,
//! the bytes and read calls that reached the container file and the time taken (median of 20).
//!
//! The GPT reads are the ones any GPT reader makes: LBA 0 (protective MBR), LBA 1 (header), the
//! entry array at LBA 2 (128 entries of 128 bytes), the backup header in the last LBA and the
//! backup array before it.

#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use winre_disk::container::{self, OpenOptions};
use winre_readat::{Counting, FileReader, ReadAt, ReadStats};

fn open_and_read_gpt(
    path: &PathBuf,
) -> Result<(ReadStats, Duration, String), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let file = Arc::new(Counting::new(FileReader::open(path)?));
    let disk = container::open_reader(file.clone(), &OpenOptions::default())?;
    let guest = &disk.reader;
    let mut sector = [0u8; 512];
    guest.read_exact_at(0, &mut sector)?;
    guest.read_exact_at(512, &mut sector)?;
    if &sector[..8] != b"EFI PART" {
        return Err(format!("{}: no GPT header at LBA 1", path.display()).into());
    }
    let mut entries = vec![0u8; 128 * 128];
    guest.read_exact_at(1024, &mut entries)?;
    let last = guest.len() - 512;
    guest.read_exact_at(last, &mut sector)?;
    guest.read_exact_at(last - entries.len() as u64, &mut entries)?;
    let elapsed = start.elapsed();
    let what = format!(
        "{:?} {}, {} bytes",
        disk.info.format, disk.info.variant, disk.info.virtual_size
    );
    Ok((file.stats(), elapsed, what))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for path in std::env::args_os().skip(1).map(PathBuf::from) {
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..20 {
            let (stats, elapsed, what) = open_and_read_gpt(&path)?;
            times.push(elapsed);
            last = Some((stats, what));
        }
        times.sort();
        let (stats, what) = last.ok_or("no run")?;
        println!(
            "{:<28} {:<36} {:>9} bytes read in {:>3} calls, {:>8.3} ms (median of 20)",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            what,
            stats.bytes,
            stats.calls,
            times[times.len() / 2].as_secs_f64() * 1e3
        );
    }
    Ok(())
}

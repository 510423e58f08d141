//! What opening a container and reading its partition table costs: `open_cost IMAGE...` prints,
//! per image, the bytes and read calls that reached the container file (through
//! `winre_readat::Counting`) and the time taken, median of 20 runs. Used by
//! benches/compare-qemu-img.sh on 64 GiB sparse images (targets: < 1 MiB, < 5 ms).

#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::panic
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use winre_disk::container::{self, OpenOptions};
use winre_disk::partition;
use winre_readat::{Counting, FileReader, ReadStats};

/// Opens `path` and reads its partition table (GPT with both headers, or MBR, and the boot
/// sector of each partition).
fn open_and_read_table(
    path: &PathBuf,
) -> Result<(ReadStats, Duration, String), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let file = Arc::new(Counting::new(FileReader::open(path)?));
    let disk = container::open_reader(file.clone(), &OpenOptions::default())?;
    let table = partition::read_table(&disk)?;
    let elapsed = start.elapsed();
    let what = format!(
        "{:?} {} {} GiB, {} partitions",
        disk.info.format,
        disk.info.variant,
        disk.info.virtual_size >> 30,
        table.partitions.len()
    );
    Ok((file.stats(), elapsed, what))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for path in std::env::args_os().skip(1).map(PathBuf::from) {
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..20 {
            let (stats, elapsed, what) = open_and_read_table(&path)?;
            times.push(elapsed);
            last = Some((stats, what));
        }
        times.sort();
        let (stats, what) = last.ok_or("no run")?;
        println!(
            "{:<20} {:<34} {:>8} bytes in {:>3} reads, {:>7.3} ms",
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

//! Streams a container's guest bytes to stdout: `cat IMAGE [PARENT] > guest.raw`.
//! A stand-in for `winre disk cat` in benches/compare-qemu-img.sh. WINRE_CAT_THREADS sets the
//! number of reader threads (default 2).

use std::path::PathBuf;

use winre_disk::container::{self, copy::copy_range, OpenOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let image = PathBuf::from(args.next().ok_or("usage: cat IMAGE [PARENT]")?);
    let options = OpenOptions {
        parent: args.next().map(PathBuf::from),
        ..OpenOptions::default()
    };
    let threads = std::env::var("WINRE_CAT_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let disk = container::open(&image, &options)?;
    let mut out = std::io::stdout().lock();
    copy_range(
        disk.reader.as_ref(),
        0,
        disk.reader.len(),
        &mut out,
        threads,
    )?;
    Ok(())
}

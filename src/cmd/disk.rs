//! `winre disk ...`: containers and partition tables.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, IsTerminal, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Subcommand;
use winre_disk::container::{self, Disk, OpenOptions};
use winre_disk::partition::{self, DiskReport, Scheme};
use winre_readat::{Counting, FileReader, ReadAt};

use super::source::{self, ParentArgs, RemoteArgs};
use crate::cli::progress::Progress;
use crate::cli::size::human;
use crate::cli::Exit;

/// `winre disk` subcommands.
#[derive(Subcommand)]
pub enum DiskCommand {
    /// The container and the partition table, like `sgdisk -p` with kinds and filesystems.
    Info {
        /// The disk image: a local path or a URL (https://..., s3://BUCKET/KEY,
        /// az://ACCOUNT/CONTAINER/BLOB).
        image: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        parents: ParentArgs,
        /// Print to stderr the time and the bytes read to open the container and read the table.
        #[arg(long)]
        stats: bool,
        /// Check the container's stored hash (the MD5 of an E01) by reading the whole image.
        #[arg(long)]
        verify_container: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Stream the guest disk (or one partition) as raw bytes to stdout.
    Cat {
        /// The disk image.
        image: PathBuf,
        /// Only this partition (numbered as `disk info` shows).
        #[arg(long)]
        partition: Option<u32>,
        #[command(flatten)]
        parents: ParentArgs,
    },
}

pub fn run(command: &DiskCommand) -> anyhow::Result<Exit> {
    let (DiskCommand::Info { image, .. } | DiskCommand::Cat { image, .. }) = command;
    source::warn_journal(image, None);
    match command {
        DiskCommand::Info {
            image,
            json,
            parents,
            stats,
            verify_container,
            remote,
        } if source::is_remote(image) => {
            info_remote(image, *json, parents, *stats, *verify_container, remote)
        }
        DiskCommand::Info {
            image,
            json,
            parents,
            stats,
            verify_container,
            ..
        } => info(image, *json, parents, *stats, *verify_container),
        DiskCommand::Cat {
            image,
            partition,
            parents,
        } => cat(image, *partition, parents),
    }
}

fn open(image: &Path, parents: &ParentArgs) -> anyhow::Result<Disk> {
    open_with(image, parents, false)
}

fn open_with(image: &Path, parents: &ParentArgs, verify_container: bool) -> anyhow::Result<Disk> {
    let options = OpenOptions {
        verify_container,
        ..parents.options()
    };
    container::open(image, &options)
        .map_err(|e| source::with_parent_hint(e).context(image.display().to_string()))
}

/// Where `--stats` counted the reads.
enum Counter {
    /// Reads of the image file itself.
    File(Arc<Counting<FileReader>>),
    /// Reads of the guest disk (VMDK and E01 span several files and open by path).
    Guest(Arc<Counting<Arc<dyn ReadAt>>>),
}

fn info(
    image: &Path,
    json: bool,
    parents: &ParentArgs,
    stats: bool,
    verify_container: bool,
) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let context = || format!("{}", image.display());
    let file = Arc::new(Counting::new(
        FileReader::open(image).with_context(context)?,
    ));
    let options = OpenOptions {
        verify_container,
        ..parents.options()
    };
    let (disk, counter) =
        match container::open_reader_for(Arc::clone(&file) as Arc<dyn ReadAt>, image, &options) {
            Ok(disk) => (disk, Counter::File(file)),
            Err(winre_disk::Error::Unsupported(_))
                if matches!(
                    container::detect(file.as_ref()),
                    Ok(container::Format::Vmdk | container::Format::Ewf)
                ) =>
            {
                let disk = open_with(image, parents, verify_container)?;
                let guest = Arc::new(Counting::new(Arc::clone(&disk.reader)));
                let reader = Arc::clone(&guest) as Arc<dyn ReadAt>;
                (
                    Disk {
                        reader,
                        info: disk.info,
                    },
                    Counter::Guest(guest),
                )
            }
            Err(e) => return Err(source::with_parent_hint(e).context(context())),
        };
    let report = partition::report(&disk).with_context(context)?;
    if stats {
        let (s, what) = match &counter {
            Counter::File(c) => (c.stats(), "from the image file"),
            Counter::Guest(c) => (
                c.stats(),
                "from the guest disk; container-internal reads not counted",
            ),
        };
        eprintln!(
            "stats: open + partition table + probes: {:.2} ms, {} bytes in {} reads {what}",
            started.elapsed().as_secs_f64() * 1000.0,
            s.bytes,
            s.calls
        );
    }
    finish_info(image, json, &report)
}

/// `disk info` of an image at a URL; `--stats` counts requests and bytes fetched.
fn info_remote(
    image: &Path,
    json: bool,
    parents: &ParentArgs,
    stats: bool,
    verify_container: bool,
    remote: &RemoteArgs,
) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let options = OpenOptions {
        verify_container,
        ..parents.options()
    };
    let opened = source::open_disk(image, &options, remote)?;
    let report = partition::report(&opened.disk).with_context(|| opened.label.clone())?;
    if let (true, Some(reader)) = (stats, &opened.remote) {
        let fetched = reader.stats();
        eprintln!(
            "stats: open + partition table + probes: {:.2} ms, fetched {} bytes in {} requests",
            started.elapsed().as_secs_f64() * 1000.0,
            fetched.bytes_fetched,
            fetched.requests
        );
    }
    finish_info(Path::new(&opened.label), json, &report)
}

fn finish_info(image: &Path, json: bool, report: &DiskReport) -> anyhow::Result<Exit> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&crate::cli::json::stamped(&report))?
        );
    } else {
        crate::cli::output::print(&render(image, report))?;
    }
    let damaged = report.partitions.iter().any(|p| !p.problems.is_empty())
        || report.partition_table.gpt_source == Some(partition::gpt::Source::Backup);
    Ok(if damaged { Exit::Finding } else { Exit::Ok })
}

fn format_name(format: container::Format) -> String {
    serde_json::to_value(format)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn render(image: &Path, r: &DiskReport) -> String {
    let c = &r.container;
    let t = &r.partition_table;
    let mut s = String::new();
    let ss = u64::from(t.sector_size);
    let _ = writeln!(
        s,
        "Disk {}: {} sectors, {}",
        image.display(),
        c.virtual_size / ss.max(1),
        human(c.virtual_size)
    );
    let _ = writeln!(
        s,
        "Container: {} ({}), {} bytes{}",
        serde_json::to_value(c.format)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        c.variant,
        c.virtual_size,
        c.allocated_bytes
            .map(|a| format!(", {} allocated", human(a)))
            .unwrap_or_default()
    );
    for link in &c.chain {
        let _ = writeln!(
            s,
            "Parent: {} ({}, {})",
            link.path,
            format_name(link.format),
            if link.given {
                "given with --parent".to_string()
            } else {
                format!("recorded as {:?}", link.recorded)
            }
        );
    }
    let _ = writeln!(s, "Sector size (logical): {} bytes", t.sector_size);
    match t.scheme {
        Scheme::Gpt => {
            let source = t.gpt_source.map(|s| s.to_string()).unwrap_or_default();
            let _ = writeln!(s, "Partition table: GPT ({source} header)");
            if let Some(g) = t.disk_guid {
                let _ = writeln!(s, "Disk identifier (GUID): {g}");
            }
            if let Some(n) = t.gpt_entry_count {
                let _ = writeln!(s, "Partition table holds up to {n} entries");
            }
            if let (Some(first), Some(last)) = (t.first_usable_lba, t.last_usable_lba) {
                let _ = writeln!(
                    s,
                    "First usable sector is {first}, last usable sector is {last}"
                );
            }
        }
        Scheme::Mbr => {
            let _ = writeln!(s, "Partition table: MBR");
            if let Some(sig) = t.disk_signature {
                let _ = writeln!(s, "Disk identifier: 0x{sig:08x}");
            }
        }
        Scheme::None => {
            let _ = writeln!(s, "Partition table: none");
        }
    }
    if !r.partitions.is_empty() {
        let _ = writeln!(
            s,
            "\n{:>6}  {:>14}  {:>14}  {:<10}  {:<10}  {:<9}  {:<8}  Name",
            "Number", "Start (sector)", "End (sector)", "Size", "Kind", "Filesys", "Type"
        );
    }
    for p in &r.partitions {
        let kind = serde_json::to_value(p.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let ty = match (p.mbr_type, p.type_guid) {
            (Some(b), _) => format!("0x{b:02x}"),
            (None, Some(g)) => g.to_string().chars().take(8).collect(),
            _ => String::new(),
        };
        let mut name = p.name.clone().unwrap_or_default();
        if p.active == Some(true) {
            name.push_str(" [active]");
        }
        if p.logical == Some(true) {
            name.push_str(" [logical]");
        }
        if let Some(a) = p.attributes.filter(|&a| a != 0) {
            let _ = write!(
                name,
                " [attributes 0x{a:016x}: {}]",
                p.attribute_names.join(", ")
            );
        }
        let _ = writeln!(
            s,
            "{:>6}  {:>14}  {:>14}  {:<10}  {:<10}  {:<9}  {:<8}  {}",
            p.number,
            p.start_lba,
            p.end_lba,
            human(p.size_bytes),
            kind,
            if p.kind == partition::Kind::Extended {
                "-"
            } else {
                p.filesystem.name()
            },
            ty,
            name.trim_start()
        )
        .map(|()| trim_line_end(&mut s));
        for problem in &p.problems {
            let _ = writeln!(s, "        ! partition {}: {problem}", p.number);
        }
    }
    let notes = c.notes.iter().chain(&t.notes).collect::<Vec<_>>();
    if !notes.is_empty() {
        let _ = writeln!(s, "\nNotes:");
        for n in notes {
            let _ = writeln!(s, "  - {n}");
        }
    }
    s
}

/// Drops the spaces before the newline `s` ends with (a partition without a name).
fn trim_line_end(s: &mut String) {
    if s.ends_with('\n') {
        s.pop();
        s.truncate(s.trim_end().len());
        s.push('\n');
    }
}

/// Block size of one read. 1 MiB keeps the buffer in the CPU cache between the read that fills
/// it and the write that empties it: measured (`perf stat`, raw image) to cost less CPU than
/// 4 MiB blocks or parallel reads, and it matches the hole granularity of most containers.
const BLOCK_BYTES: u64 = 1024 * 1024;
/// Blocks the reader may run ahead of the writer.
const BLOCKS_AHEAD: usize = 4;

fn cat(image: &Path, partition: Option<u32>, parents: &ParentArgs) -> anyhow::Result<Exit> {
    let stdout = io::stdout();
    if stdout.is_terminal() {
        return Err(crate::cli::exit::usage(
            "refusing to write disk bytes to a terminal; redirect stdout (winre disk cat IMAGE > out.img)",
        ));
    }
    let disk = open(image, parents)?;
    let source: Arc<dyn ReadAt> = match partition {
        None => Arc::clone(&disk.reader),
        Some(n) => {
            let table =
                partition::read_table(&disk).with_context(|| format!("{}", image.display()))?;
            let Some(p) = table.partition(n) else {
                let numbers: Vec<String> = table
                    .partitions
                    .iter()
                    .map(|p| p.number.to_string())
                    .collect();
                bail!(
                    "{}: no partition {n} (partitions: {})",
                    image.display(),
                    numbers.join(", ")
                );
            };
            let slice = p.reader(&disk).with_context(|| {
                format!(
                    "{}: partition {n} (bytes {}..{})",
                    image.display(),
                    p.start_bytes,
                    p.start_bytes.saturating_add(p.size_bytes)
                )
            })?;
            Arc::new(slice)
        }
    };
    // A File on fd 1, so large writes bypass std's line-buffered Stdout.
    let mut out = File::from(stdout.as_fd().try_clone_to_owned()?);
    let sparse = can_leave_holes(&out);
    match stream(source.as_ref(), &mut out, sparse) {
        Ok(_) => Ok(Exit::Ok),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Exit::Ok),
        Err(e) => Err(anyhow::Error::new(e).context(format!("{}", image.display()))),
    }
}

/// True when `out` (a dup of fd 1) is a new, empty regular file opened without O_APPEND: then
/// all-zero blocks can be skipped with a seek, leaving holes, as `cp --sparse` and qemu-img do.
/// Anything else (a pipe, `>>`, a file already holding data) gets every byte written.
fn can_leave_holes(out: &File) -> bool {
    const O_APPEND: u32 = 0o2000;
    let Ok(meta) = out.metadata() else {
        return false;
    };
    let at_start = { out }.stream_position().is_ok_and(|p| p == 0);
    let flags = std::fs::read_to_string("/proc/self/fdinfo/1")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        });
    meta.is_file() && meta.len() == 0 && at_start && flags.is_some_and(|f| f & O_APPEND == 0)
}

/// True when every byte of `block` is zero. Compares 64-byte pieces folded with OR, which the
/// compiler turns into vector code, and stops at the first piece holding data (the usual case).
fn all_zero(block: &[u8]) -> bool {
    let pieces = block.chunks_exact(64);
    let tail = pieces.remainder();
    pieces
        .into_iter()
        .all(|piece| piece.iter().fold(0u8, |acc, &b| acc | b) == 0)
        && tail.iter().all(|&b| b == 0)
}

/// Zeros to write for blocks the source knows to be zero, when the output cannot hold holes.
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// One block of the source, in order: its bytes, or a length known to read as zeros (a hole,
/// an unallocated block or cluster), which was not read at all.
enum Block {
    Data(Vec<u8>),
    Zero(u64),
}

/// Copies `source` to `out`: a reader thread reads block after block while this thread writes
/// the previous ones. Blocks the source knows to be zero ([`ReadAt::known_zero`]) are not read.
/// Buffers are recycled, so memory stays at a few blocks. With `sparse`, zero blocks (known or
/// read) are seeked over and the file's length set at the end; otherwise their zeros are written.
fn stream(source: &dyn ReadAt, out: &mut File, sparse: bool) -> io::Result<u64> {
    let len = source.len();
    let progress = Progress::bytes("copying", len);
    let (full_tx, full_rx) = mpsc::sync_channel::<io::Result<Block>>(BLOCKS_AHEAD);
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    let mut written = 0u64;
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut at = 0u64;
            while at < len {
                let n = (len - at).min(BLOCK_BYTES);
                let block = if source.known_zero(at, n) {
                    Ok(Block::Zero(n))
                } else {
                    let mut buf = free_rx.try_recv().unwrap_or_default();
                    buf.resize(n as usize, 0);
                    source
                        .read_exact_at(at, &mut buf)
                        .map(|()| Block::Data(buf))
                };
                let failed = block.is_err();
                if full_tx.send(block).is_err() || failed {
                    return;
                }
                at += n;
            }
        });
        for block in full_rx {
            let n = match block? {
                Block::Data(data) => {
                    if sparse && all_zero(&data) {
                        out.seek(SeekFrom::Current(data.len() as i64))?;
                    } else {
                        out.write_all(&data)?;
                    }
                    let n = data.len() as u64;
                    let _ = free_tx.send(data);
                    n
                }
                Block::Zero(n) => {
                    if sparse {
                        out.seek(SeekFrom::Current(n as i64))?;
                    } else {
                        write_zeros(out, n)?;
                    }
                    n
                }
            };
            written += n;
            progress.set(written, len);
        }
        if sparse {
            out.set_len(written)?;
        }
        out.flush()
    })?;
    progress.finish();
    if written != len {
        return Err(io::Error::other(format!("wrote {written} of {len} bytes")));
    }
    Ok(written)
}

/// Writes `n` zero bytes from [`ZEROS`].
fn write_zeros(out: &mut File, mut n: u64) -> io::Result<()> {
    while n > 0 {
        let take = n.min(ZEROS.len() as u64);
        out.write_all(&ZEROS[..take as usize])?;
        n -= take;
    }
    Ok(())
}

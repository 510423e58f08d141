//! `winre resize IMAGE [--apply]`: make the WinRE volume hold the required free space, offline,
//! with an undo journal. Without `--apply` it prints what it would do.
//!
//! Exit codes: 0 done (or nothing needed), 1 a change is needed (dry run), 2 the image could not
//! be read, 3 refused (layout not handled offline, volume tail in use, image open elsewhere, a
//! half-done journal, a device without `--device`), 4 a write or its read-back failed (the
//! journal is sealed: run `winre undo`).
//!
//! qcow2, VHDX, VMDK and dynamic VHDs are planned, journaled and written through qemu-nbd
//! (patch::guest), so the plan and the journal see exactly the guest bytes qemu shows the VM.
//! `--overlay FILE` writes a new qcow2 on top of the image instead of the image itself.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use winre_core::plan::{Plan, PlanOptions, Step, Verdict};
use winre_core::scan::{self, ScanOptions};
use winre_disk::container::{self, ContainerInfo, Disk, Format, OpenOptions};
use winre_disk::partition;
use winre_patch::apply::{self, ApplyReport, Observer};
use winre_patch::image::{ImageFile, ImageKind};
use winre_patch::journal::{self, JournalState};

use crate::cli::progress::Progress;
use crate::cli::size::parse_size;
use crate::cli::Exit;

/// Arguments of `winre resize`.
#[derive(Args)]
pub struct ResizeArgs {
    /// The disk image: raw, fixed VHD, a block device (with --device), or qcow2, VHDX, VMDK
    /// (monolithicSparse, monolithicFlat, twoGbMaxExtent*) and dynamic VHD, which are written
    /// through qemu-nbd: resize and undo on those formats need qemu-nbd and qemu-img installed.
    pub image: PathBuf,
    /// Make the change (without it: print the plan and exit 1 when a change is needed).
    #[arg(long)]
    pub apply: bool,
    /// Free space the WinRE volume needs: 250MiB, 262144000, 1GiB.
    #[arg(long, value_parser = parse_size, default_value = "262144000")]
    pub min_free: u64,
    /// The undo journal (default: IMAGE.winre-journal).
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// May make the image file longer when the recovery partition is the last one (then
    /// preferred over moving it or shrinking the OS volume; as `winre plan --grow-image`).
    #[arg(long)]
    pub grow_image: bool,
    /// Allow writing a block device (unmounted, not in use): an LVM logical volume, the disk of
    /// a stopped VM. Its size comes from the device.
    #[arg(long)]
    pub device: bool,
    /// Write nothing to IMAGE: create the qcow2 FILE backed by it (`qemu-img create -f qcow2
    /// -b IMAGE -F FORMAT FILE`) and resize FILE; boot the VM on FILE, `qemu-img commit` it
    /// later. Needs qemu-img and qemu-nbd. FILE must not exist.
    #[arg(long, value_name = "FILE")]
    pub overlay: Option<PathBuf>,
    /// A JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The report of `winre resize`.
#[derive(Serialize)]
struct ResizeReport {
    image: String,
    applied: bool,
    /// The layout case, as `winre plan` names it.
    case: String,
    /// What `winre plan` says about the image.
    plan: Plan,
    /// What is (or would be) carried out, in order: the plan's steps.
    actions: Vec<Step>,
    free_before_bytes: u64,
    free_after_bytes: Option<u64>,
    required_free_bytes: u64,
    apply: Option<ApplyReport>,
    seconds: f64,
    /// This process's /proc/self/io counters (Linux), for the benchmark.
    io: Option<ProcIo>,
}

#[derive(Serialize)]
struct ProcIo {
    /// Bytes this process caused to be written to storage.
    write_bytes: u64,
    /// Bytes passed to write calls.
    wchar: u64,
    /// Bytes the qemu-nbd that wrote the container caused to be written to storage (its
    /// /proc/PID/io write_bytes read just before it closed the image); null for raw images.
    qemu_nbd_write_bytes: Option<u64>,
}

fn proc_io() -> Option<ProcIo> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
    };
    Some(ProcIo {
        write_bytes: field("write_bytes:")?,
        wchar: field("wchar:")?,
        qemu_nbd_write_bytes: None,
    })
}

/// Progress bar for moves, and the crash-test hook: `WINRE_TEST_STOP_AFTER_WRITE=N` aborts the
/// process right after its N-th write (journal and image writes counted together). The hook is
/// only in debug/test builds and with the `crash-hook` feature, never in a plain release build.
struct CliObserver {
    writes: u64,
    stop_after: Option<u64>,
    bar: Progress,
}

/// The write after which the crash-test hook aborts, from `WINRE_TEST_STOP_AFTER_WRITE`.
#[cfg(any(debug_assertions, feature = "crash-hook"))]
fn crash_hook() -> Option<u64> {
    std::env::var("WINRE_TEST_STOP_AFTER_WRITE")
        .ok()
        .and_then(|v| v.parse().ok())
}

#[cfg(not(any(debug_assertions, feature = "crash-hook")))]
fn crash_hook() -> Option<u64> {
    None
}

impl Observer for CliObserver {
    fn wrote(&mut self, _journal: bool, _bytes: u64) {
        self.writes += 1;
        if self.stop_after == Some(self.writes) {
            std::process::abort();
        }
    }

    fn moving(&mut self, done: u64, total: u64) {
        self.bar.set(done, total);
    }
}

/// Maps a patch error to the exit code.
pub fn exit_for(e: &winre_patch::Error) -> Exit {
    match e {
        winre_patch::Error::Refused(_) | winre_patch::Error::Unsupported(_) => Exit::Refused,
        winre_patch::Error::Verify(_) => Exit::NotReadBack,
        _ => Exit::Unreadable,
    }
}

/// qemu's driver name for the container at `path` (the backing format of an overlay).
fn qemu_format_of(path: &Path) -> anyhow::Result<&'static str> {
    let reader = winre_readat::FileReader::open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(match container::detect(&reader)? {
        Format::Raw => "raw",
        Format::Vhd => "vpc",
        Format::Vhdx => "vhdx",
        Format::Vmdk => "vmdk",
        Format::Qcow2 => "qcow2",
        Format::Ewf => anyhow::bail!(
            "{}: qemu cannot back an overlay with an E01 image; export it to raw first (ewfexport -t disk -f raw)",
            path.display()
        ),
    })
}

/// The overlay `--overlay` created, removed again unless the resize began writing to it.
struct Overlay {
    path: PathBuf,
    keep: bool,
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Opens the guest disk for planning. With an image opened for writing through qemu-nbd (or a
/// block device), the bytes are read through that same route (what the journal will save is
/// what qemu serves); our own container reader then only supplies the format facts (sector
/// size). A backing file or parent is looked for next to the image under the name it records.
fn open_disk(path: &Path, image: Option<&ImageFile>) -> anyhow::Result<Disk> {
    if let Some(image) = image.filter(|i| i.kind() == ImageKind::Device) {
        // A block device's file length is 0: its bytes come from the open device.
        return Ok(Disk {
            reader: image.reader()?,
            info: ContainerInfo {
                format: Format::Raw,
                variant: "block device".into(),
                virtual_size: image.disk_len(),
                sector_size: 512,
                allocated_bytes: None,
                notes: Vec::new(),
                chain: Vec::new(),
            },
        });
    }
    // A chain (qcow2 backing file, VHD/VHDX parent) is followed under the reader's rules.
    let own = container::open(path, &OpenOptions::default());
    match image.filter(|i| i.kind().qemu_format().is_some()) {
        Some(image) => {
            let info = match own {
                Ok(disk) => disk.info,
                Err(_) => ContainerInfo {
                    format: container::detect(&winre_readat::FileReader::open(path)?)?,
                    variant: "read through qemu-nbd".into(),
                    virtual_size: image.disk_len(),
                    sector_size: 512,
                    allocated_bytes: None,
                    notes: Vec::new(),
                    chain: Vec::new(),
                },
            };
            Ok(Disk {
                reader: image.reader()?,
                info,
            })
        }
        None => Ok(own.with_context(|| format!("opening {}", path.display()))?),
    }
}

pub fn run(args: &ResizeArgs) -> anyhow::Result<Exit> {
    let started = Instant::now();
    // With --overlay (and --apply) everything below works on the new overlay.
    let mut overlay = None;
    let target = match &args.overlay {
        Some(file) if args.apply => {
            if file.exists() {
                eprintln!(
                    "winre: refused: the overlay {} already exists",
                    file.display()
                );
                return Ok(Exit::Refused);
            }
            let format = qemu_format_of(&args.image)?;
            let backing = std::fs::canonicalize(&args.image)
                .with_context(|| format!("resolving {}", args.image.display()))?;
            if let Err(e) = winre_patch::qemu::create_overlay(&backing, format, file) {
                eprintln!("winre: {e}");
                return Ok(exit_for(&e));
            }
            overlay = Some(Overlay {
                path: file.clone(),
                keep: false,
            });
            file.clone()
        }
        _ => args.image.clone(),
    };
    let journal_path = args
        .journal
        .clone()
        .unwrap_or_else(|| journal::default_path(&target));
    if journal_path.exists() {
        let j = journal::read(&journal_path)
            .with_context(|| format!("reading the existing journal {}", journal_path.display()))?;
        let why = match j.state {
            JournalState::Undone => None,
            JournalState::Complete => Some("this image was already resized with it; run `winre undo` first, or move the journal away to keep it"),
            JournalState::Saving | JournalState::Sealed => Some("a resize stopped half-way; run `winre undo` with it first"),
        };
        if let Some(why) = why {
            eprintln!(
                "winre: refused: journal {} exists: {why}",
                journal_path.display()
            );
            return Ok(Exit::Refused);
        }
        if args.apply {
            std::fs::remove_file(&journal_path).with_context(|| {
                format!("removing the undone journal {}", journal_path.display())
            })?;
        }
    }
    // Lock the image first, so nothing changes it between the plan and the writes.
    let image = if args.apply {
        match ImageFile::open(&target, args.device)
            .and_then(|i| journal::check_no_incomplete_journal(&i).map(|()| i))
        {
            Ok(i) => Some(i),
            Err(e) => {
                eprintln!("winre: {}: {e}", target.display());
                return Ok(exit_for(&e));
            }
        }
    } else {
        None
    };
    let options = ScanOptions {
        required_free_bytes: args.min_free,
        ..ScanOptions::default()
    };
    let label = target.display().to_string();
    let disk = open_disk(&target, image.as_ref())?;
    let core_plan = winre_core::plan::plan_disk(
        &label,
        disk.clone(),
        &PlanOptions {
            required_free_bytes: args.min_free,
            grow_image: args.grow_image,
        },
    )
    .with_context(|| format!("planning {label}"))?;
    let table = partition::read_table(&disk)
        .with_context(|| format!("reading the partition table of {label}"))?;
    let case = serde_json::to_value(core_plan.case)?
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Verdict::Manual { why, .. } = &core_plan.verdict {
        eprintln!("winre: refused: {label}: {why}");
        return Ok(Exit::Refused);
    }
    let actions = core_plan.steps.clone();
    let mut report = ResizeReport {
        image: label.clone(),
        applied: false,
        case,
        free_before_bytes: core_plan.free_before_bytes.unwrap_or(0),
        required_free_bytes: core_plan.required_free_bytes,
        free_after_bytes: None,
        plan: core_plan,
        actions,
        apply: None,
        seconds: 0.0,
        io: None,
    };
    let mut qemu_nbd_write_bytes = None;
    let code = if report.actions.is_empty() {
        Exit::Ok
    } else if let Some(mut image) = image {
        let prepared = match apply::prepare(&image, &table, &report.plan) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("winre: {}: {e}", target.display());
                return Ok(exit_for(&e));
            }
        };
        let bar = Progress::bytes("moving", 0);
        let mut observer = CliObserver {
            writes: 0,
            stop_after: crash_hook(),
            bar,
        };
        if let Some(o) = overlay.as_mut() {
            o.keep = true;
        }
        let applied = apply::apply(&mut image, prepared, &journal_path, &mut observer);
        observer.bar.finish();
        // Scanned again through the same route (for a raw image: read from the file anew).
        let after = applied.is_ok().then(|| {
            open_disk(&target, Some(&image))
                .and_then(|d| Ok(scan::scan_disk(&label, &d, &options)?))
                .with_context(|| format!("scanning {label} after the resize"))
        });
        qemu_nbd_write_bytes = image.guest().server_write_bytes();
        // For a container: qemu-nbd closes it and exits before the result is trusted.
        let closed = image.close();
        let applied = applied.and_then(|a| closed.map(|()| a));
        match applied {
            Ok(a) => {
                report.apply = Some(a);
                report.applied = true;
            }
            Err(e) => {
                eprintln!("winre: {}: {e}", target.display());
                let sealed =
                    journal::read(&journal_path).is_ok_and(|j| j.state != JournalState::Saving);
                if sealed {
                    eprintln!(
                        "winre: the image may be partly written; restore it with: winre undo {} --journal {}",
                        target.display(),
                        journal_path.display()
                    );
                    return Ok(Exit::NotReadBack);
                }
                return Ok(exit_for(&e));
            }
        }
        let after = after.context("no scan after the resize")??;
        report.free_after_bytes = after.recovery_space.as_ref().map(|s| s.free);
        Exit::Ok
    } else {
        Exit::Finding
    };
    report.seconds = started.elapsed().as_secs_f64();
    report.io = proc_io().map(|io| ProcIo {
        qemu_nbd_write_bytes,
        ..io
    });
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&crate::cli::json::stamped(&report))?
        );
    } else {
        print_text(&report);
    }
    Ok(code)
}

fn print_text(r: &ResizeReport) {
    let mib = |b: u64| b as f64 / 1048576.0;
    println!("{}", r.image);
    println!(
        "  WinRE volume (partition {}): {:.1} MiB free, {:.1} MiB required",
        r.plan.recovery_partition.unwrap_or(0),
        mib(r.free_before_bytes),
        mib(r.required_free_bytes)
    );
    if r.actions.is_empty() {
        println!("  nothing to do");
        return;
    }
    println!(
        "  case: {}; recovery grows by {:.0} MiB; OS shrinks by {:.0} MiB",
        r.case,
        mib(r.plan.grow_by_bytes),
        mib(r.plan.shrink_os_by_bytes)
    );
    match &r.apply {
        None => {
            println!("  would do (run again with --apply):");
            for a in &r.actions {
                println!("    {}", serde_json::to_string(a).unwrap_or_default());
            }
        }
        Some(a) => {
            for c in &a.changes {
                println!("  changed: {c}");
            }
            if let Some(free) = r.free_after_bytes {
                println!("  WinRE volume free now: {:.1} MiB", mib(free));
            }
            println!(
                "  wrote {} bytes to the image, journal {} ({} bytes); undo: winre undo {} --journal {}",
                a.image_bytes_written,
                a.journal.display(),
                a.journal_bytes,
                r.image,
                a.journal.display()
            );
        }
    }
}

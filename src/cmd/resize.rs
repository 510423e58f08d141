//! `winre resize IMAGE [--apply]`: make the WinRE volume hold the required free space, offline,
//! with an undo journal. Without `--apply` it prints what it would do.
//!
//! Exit codes: 0 done (or nothing needed), 1 a change is needed (dry run), 2 the image could not
//! be read, 3 refused (layout not handled offline, volume tail in use, image open elsewhere, a
//! half-done journal, a device without `--device`), 4 a write or its read-back failed (the
//! journal is sealed: run `winre undo`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use winre_core::plan::{Plan, PlanOptions, Verdict};
use winre_core::scan::{self, ScanOptions};
use winre_disk::container::{self, OpenOptions};
use winre_disk::partition;
use winre_patch::apply::Action;
use winre_patch::apply::{self, ApplyReport, Observer};
use winre_patch::image::ImageFile;
use winre_patch::journal::{self, JournalState};
use winre_patch::plan::{self, ResizeOptions};

use crate::cli::progress::Progress;
use crate::cli::size::parse_size;
use crate::cli::Exit;

/// Arguments of `winre resize`.
#[derive(Args)]
pub struct ResizeArgs {
    /// The disk image (raw or fixed VHD).
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
    /// May make a raw image file longer when the recovery partition is the last one.
    #[arg(long)]
    pub grow_image: bool,
    /// Allow writing a block device (unmounted, not in use).
    #[arg(long)]
    pub device: bool,
    /// A JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The report of `winre resize`.
#[derive(Serialize)]
struct ResizeReport {
    image: String,
    applied: bool,
    /// The layout case (as `winre plan` names it), or "grow_image".
    case: String,
    /// What `winre plan` says about the image.
    plan: Plan,
    /// What is (or would be) carried out, in order.
    actions: Vec<Action>,
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

pub fn run(args: &ResizeArgs) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let journal_path = args
        .journal
        .clone()
        .unwrap_or_else(|| journal::default_path(&args.image));
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
        match ImageFile::open(&args.image, args.device) {
            Ok(i) => Some(i),
            Err(e) => {
                eprintln!("winre: {e}");
                return Ok(exit_for(&e));
            }
        }
    } else {
        None
    };
    let options = ScanOptions {
        required_free_bytes: args.min_free,
        hash: false,
    };
    let core_plan = winre_core::plan::plan_path(
        &args.image,
        &PlanOptions {
            required_free_bytes: args.min_free,
        },
    )
    .with_context(|| format!("planning {}", args.image.display()))?;
    let disk = container::open(&args.image, &OpenOptions::default())?;
    let table = partition::read_table(&disk)?;
    let mut case = serde_json::to_value(core_plan.case)?
        .as_str()
        .unwrap_or_default()
        .to_string();
    let actions = match &core_plan.verdict {
        Verdict::Manual { why, .. } if args.grow_image => {
            // winre plan does not grow image files: our own planner's grow_image case.
            let before = scan::scan_path(&args.image, &options)
                .with_context(|| format!("scanning {}", args.image.display()))?;
            let resize_options = ResizeOptions {
                required_free_bytes: args.min_free,
                grow_image: true,
            };
            match plan::plan(&before, &table, disk.info.virtual_size, resize_options) {
                Ok(p) if p.case == "grow_image" => {
                    case = p.case;
                    p.actions
                }
                _ => {
                    eprintln!("winre: refused: {why}");
                    return Ok(Exit::Refused);
                }
            }
        }
        _ => match winre_patch::from_plan::actions(&core_plan) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("winre: {e}");
                return Ok(exit_for(&e));
            }
        },
    };
    let mut report = ResizeReport {
        image: args.image.display().to_string(),
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
    let code = if report.actions.is_empty() {
        Exit::Ok
    } else if let Some(mut image) = image {
        let prepared = match apply::prepare(&image, &table, &report.actions) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("winre: {e}");
                return Ok(exit_for(&e));
            }
        };
        let bar = Progress::bytes("moving", 0);
        let mut observer = CliObserver {
            writes: 0,
            stop_after: crash_hook(),
            bar,
        };
        let applied = apply::apply(&mut image, prepared, &journal_path, &mut observer);
        observer.bar.finish();
        drop(image);
        match applied {
            Ok(a) => {
                report.apply = Some(a);
                report.applied = true;
            }
            Err(e) => {
                eprintln!("winre: {e}");
                let sealed =
                    journal::read(&journal_path).is_ok_and(|j| j.state != JournalState::Saving);
                if sealed {
                    eprintln!(
                        "winre: the image may be partly written; restore it with: winre undo {} --journal {}",
                        args.image.display(),
                        journal_path.display()
                    );
                    return Ok(Exit::NotReadBack);
                }
                return Ok(exit_for(&e));
            }
        }
        let after = scan::scan_path(&args.image, &options)
            .with_context(|| format!("scanning {} after the resize", args.image.display()))?;
        report.free_after_bytes = after.recovery_space.as_ref().map(|s| s.free);
        Exit::Ok
    } else {
        Exit::Finding
    };
    report.seconds = started.elapsed().as_secs_f64();
    report.io = proc_io();
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

//! `winre wim extract`: files and directories of an image into a directory, safely.
//!
//! Every name is a single component created with `*at` calls relative to an already-open
//! directory, never a path string, and every directory is opened with `O_NOFOLLOW`: a symlink
//! found in DIR (or planted by anything else) cannot redirect a write, and extraction never
//! creates symlinks itself. Files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`; with
//! `--force` an existing non-directory is unlinked first and then created anew, so an existing
//! hard link or symlink is replaced, never written through.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::Context;
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use serde::Serialize;
use sha1::Digest;
use winre_readat::ReadAt;
use winre_wim::metadata::{Dentry, DentryId, Image, Stream, StreamKind};
use winre_wim::resource::Fault;
use winre_wim::{Sha1Digest, Wim};

use super::wim::{emit, open_image, open_wim, resolve_image};
use crate::cli::Exit;

/// The long help of `winre wim extract`.
pub const LONG_ABOUT: &str = "\
Extract files and directories (recursively) from an image into DIR (created if missing).
Each PATH lands in DIR under its own name; `/` extracts the whole image into DIR.

Safety: nothing is written outside DIR. Names that are empty, `.`, `..`, contain `/`, `\\` or
NUL, start with a drive letter (`C:`), are not valid UTF-16 or are longer than 255 bytes are
refused (with a warning; a refused directory is skipped with everything below it). Existing
files are not overwritten unless --force; a symlink in DIR is never followed.
Symlinks, junctions and other reparse points are not recreated (skipped with a warning; their
reparse data is shown by `wim ls --json` and readable by `wim cat`). Encrypted files are
skipped. Hard-linked files are written as separate copies. Named data streams are skipped with
a note, or with --streams written next to their file as `NAME:STREAM`.
Exit codes: 0 everything extracted, 1 extracted but something was refused or skipped, 2 error.";

/// Arguments of `winre wim extract`.
#[derive(clap::Args)]
pub struct ExtractArgs {
    /// The WIM file.
    pub file: PathBuf,
    /// Image number or name.
    pub image: String,
    /// Files or directories to extract; `\` or `/`, any case.
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// The directory to extract into.
    #[arg(short = 'o', long = "output")]
    pub dir: PathBuf,
    /// Replace existing files (never directories, never through a symlink).
    #[arg(long)]
    pub force: bool,
    /// Also write named data streams, as `NAME:STREAM` files beside their file.
    #[arg(long)]
    pub streams: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What an extraction did.
#[derive(Debug, Default, Serialize)]
pub struct ExtractReport {
    /// Image extracted from.
    pub image: u32,
    /// Directories created or reused.
    pub directories: u64,
    /// Files written (named stream files included).
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Entries not extracted, with the reason.
    pub skipped: Vec<Skipped>,
}

/// An entry not extracted.
#[derive(Debug, Serialize)]
pub struct Skipped {
    /// Its path in the image (with `:STREAM` for a named stream).
    pub path: String,
    /// Why.
    pub reason: String,
}

/// Why a name cannot be created as one component on Linux, or None when it can.
pub fn unsafe_name(d: &Dentry) -> Option<&'static str> {
    let Ok(name) = String::from_utf16(&d.record.name_utf16) else {
        return Some("its name is not valid UTF-16");
    };
    name_problem(&name)
}

/// [`unsafe_name`] for a name already decoded (stream names too).
pub fn name_problem(name: &str) -> Option<&'static str> {
    let bytes = name.as_bytes();
    if name.is_empty() || name == "." || name == ".." {
        Some("its name is empty, \".\" or \"..\"")
    } else if name.contains(['/', '\\', '\0']) {
        Some("its name contains '/', '\\' or NUL")
    } else if matches!(bytes, [letter, b':', ..] if letter.is_ascii_alphabetic()) {
        Some("its name starts with a drive letter")
    } else if bytes.len() > 255 {
        Some("its name is longer than 255 bytes")
    } else {
        None
    }
}

struct Extractor<'a, R> {
    wim: &'a Wim<R>,
    image: &'a Image,
    force: bool,
    streams: bool,
    report: ExtractReport,
}

/// Runs `winre wim extract`.
pub fn run(args: &ExtractArgs) -> anyhow::Result<Exit> {
    let wim = open_wim(&args.file)?;
    let index = resolve_image(&wim, Some(&args.image))?;
    let image = open_image(&wim, index, &args.file)?;
    let mut starts = Vec::new();
    for p in &args.paths {
        let d = image
            .lookup(p)
            .ok_or_else(|| anyhow::anyhow!("{p}: not found in image {index}"))?;
        starts.push(d.id);
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let root = open_dir(&args.dir)?;
    let mut ex = Extractor {
        wim: &wim,
        image: &image,
        force: args.force,
        streams: args.streams,
        report: ExtractReport {
            image: index,
            ..ExtractReport::default()
        },
    };
    let root = Rc::new(root);
    for id in starts {
        ex.extract(Rc::clone(&root), id)?;
    }
    let report = ex.report;
    if args.json {
        emit(&serde_json::to_string_pretty(&crate::cli::json::stamped(
            &report,
        ))?)?;
    } else {
        for s in &report.skipped {
            eprintln!("winre: skipped {}: {}", s.path, s.reason);
        }
        emit(&format!(
            "Extracted {} files ({} bytes) and {} directories to {}{}",
            report.files,
            report.bytes,
            report.directories,
            args.dir.display(),
            if report.skipped.is_empty() {
                String::new()
            } else {
                format!("; {} entries skipped", report.skipped.len())
            }
        ))?;
    }
    Ok(if report.skipped.is_empty() {
        Exit::Ok
    } else {
        Exit::Finding
    })
}

fn open_dir(dir: &Path) -> anyhow::Result<OwnedFd> {
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("cannot open {}", dir.display()))
}

impl<R: ReadAt> Extractor<'_, R> {
    fn skip(&mut self, path: String, reason: impl Into<String>) {
        self.report.skipped.push(Skipped {
            path,
            reason: reason.into(),
        });
    }

    /// Extracts `start` (or, for the root, its children) into `dir`. Depth-first with an
    /// explicit stack: a directory's descriptor stays open only while its children are pending.
    fn extract(&mut self, dir: Rc<OwnedFd>, start: DentryId) -> anyhow::Result<()> {
        let mut stack: Vec<(Rc<OwnedFd>, DentryId)> = Vec::new();
        let image = self.image;
        match image.dentry(start) {
            Some(d) if d.parent.is_none() => {
                self.report.directories = self.report.directories.saturating_add(1);
                stack.extend(d.children.iter().rev().map(|c| (Rc::clone(&dir), *c)));
            }
            Some(_) => stack.push((dir, start)),
            None => {}
        }
        while let Some((parent, id)) = stack.pop() {
            let Some(d) = image.dentry(id) else { continue };
            let path = image.path(id);
            if let Some(why) = unsafe_name(d) {
                self.skip(path, format!("refused: {why}"));
                continue;
            }
            if d.is_reparse_point() {
                self.skip(
                    path,
                    format!(
                        "a reparse point (tag {:#010x}) is not recreated",
                        d.record.reparse_tag.unwrap_or(0)
                    ),
                );
                continue;
            }
            if d.is_directory() {
                match self.make_dir(&parent, &d.name) {
                    Ok(fd) => {
                        self.report.directories = self.report.directories.saturating_add(1);
                        let fd = Rc::new(fd);
                        self.named_streams(&parent, d, &path);
                        stack.extend(d.children.iter().rev().map(|c| (Rc::clone(&fd), *c)));
                    }
                    Err(reason) => self.skip(path, reason),
                }
                continue;
            }
            let Some(data) = d.unnamed_stream() else {
                self.skip(path, "no data stream (an encrypted file) is not extracted");
                continue;
            };
            match self.write_file(&parent, &d.name, data, d) {
                Ok(()) => self.named_streams(&parent, d, &path),
                Err(reason) => self.skip(path, reason),
            }
        }
        Ok(())
    }

    /// Named data streams of `d` (whose own entry is in `parent`): written as `NAME:STREAM`
    /// beside it with --streams, else noted as skipped.
    fn named_streams(&mut self, parent: &OwnedFd, d: &Dentry, path: &str) {
        for s in d.streams().iter().filter(|s| s.kind == StreamKind::Data) {
            let Some(stream_name) = &s.name else { continue };
            let spath = format!("{path}:{stream_name}");
            if !self.streams {
                self.skip(spath, "named data stream not extracted (use --streams)");
                continue;
            }
            if let Some(why) = name_problem(stream_name) {
                self.skip(spath, format!("refused: stream {why}"));
                continue;
            }
            let file_name = format!("{}:{stream_name}", d.name);
            if let Some(why) = name_problem(&file_name) {
                self.skip(spath, format!("refused: {why}"));
                continue;
            }
            if let Err(reason) = self.write_file(parent, &file_name, s, d) {
                self.skip(spath, reason);
            }
        }
    }

    /// Creates (or reuses) directory `name` in `parent` and opens it without following a
    /// symlink. Err is the reason it was skipped.
    fn make_dir(&self, parent: &OwnedFd, name: &str) -> Result<OwnedFd, String> {
        match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(format!("cannot create the directory: {e}")),
        }
        rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::LOOP | Errno::NOTDIR => {
                "refused: the target exists and is not a directory (or is a symlink)".to_owned()
            }
            e => format!("cannot open the directory: {e}"),
        })
    }

    /// Writes `stream` of `d` as file `name` in `parent`, checking its SHA-1. Err (the inner
    /// one) is why it was skipped: nothing of a file whose data cannot be read, or does not
    /// match its hash, is left behind.
    fn write_file(
        &mut self,
        parent: &OwnedFd,
        name: &str,
        stream: &Stream,
        d: &Dentry,
    ) -> Result<(), String> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(0o644);
        let fd = match rustix::fs::openat(parent, name, flags, mode) {
            Ok(fd) => fd,
            Err(Errno::EXIST) if self.force => {
                let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW);
                if st.is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir()) {
                    return Err("refused: a directory of that name exists".into());
                }
                if let Err(e) = rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
                    return Err(format!("cannot replace the existing file: {e}"));
                }
                match rustix::fs::openat(parent, name, flags, mode) {
                    Ok(fd) => fd,
                    Err(e) => return Err(format!("cannot create the file: {e}")),
                }
            }
            Err(Errno::EXIST) => {
                return Err("exists; not overwritten (use --force)".into());
            }
            Err(e) => return Err(format!("cannot create the file: {e}")),
        };
        let mut file = File::from(fd);
        if !stream.hash.is_zero() {
            let Some(blob) = self.image.blob(&stream.hash) else {
                let _ = rustix::fs::unlinkat(parent, name, AtFlags::empty());
                return Err(format!("its blob {} is missing from the WIM", stream.hash));
            };
            let mut hasher = sha1::Sha1::new();
            let mut written = 0u64;
            let streamed = self.wim.stream_blob(blob, |piece| {
                hasher.update(piece);
                written = written.saturating_add(piece.len() as u64);
                file.write_all(piece)
                    .map_err(|e| Fault::Read(winre_wim::Error::Io(e)))
            });
            if let Err(fault) = streamed {
                // A damaged blob or a full disk: no partial file is left behind.
                drop(file);
                let _ = rustix::fs::unlinkat(parent, name, AtFlags::empty());
                return Err(format!("not written: {}", winre_wim::Error::from(fault)));
            }
            let actual = Sha1Digest(hasher.finalize().into());
            if actual != blob.sha1 {
                drop(file);
                let _ = rustix::fs::unlinkat(parent, name, AtFlags::empty());
                return Err(format!(
                    "its data has SHA-1 {actual}, not {} (damaged WIM); not written",
                    blob.sha1
                ));
            }
            self.report.bytes = self.report.bytes.saturating_add(written);
        }
        let _ = rustix::fs::futimens(
            file.as_fd(),
            &Timestamps {
                last_access: timespec(d.record.last_access_time),
                last_modification: timespec(d.record.last_write_time),
            },
        );
        self.report.files = self.report.files.saturating_add(1);
        Ok(())
    }
}

/// A FILETIME (100 ns since 1601) as a Unix timespec.
fn timespec(filetime: u64) -> Timespec {
    const EPOCH_DIFF_SECS: i64 = 11_644_473_600;
    let secs = i64::try_from(filetime / 10_000_000).unwrap_or(i64::MAX);
    Timespec {
        tv_sec: secs.saturating_sub(EPOCH_DIFF_SECS),
        tv_nsec: i64::try_from(filetime % 10_000_000)
            .unwrap_or(0)
            .saturating_mul(100),
    }
}

//! `winre wim ...`: standalone WIM files.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::cli::{exit, Exit};
use anyhow::Context;
use clap::Subcommand;
use sha1::Digest;
use winre_core::file_versions::{wim_file_versions, ComparedField, FileVersion};
use winre_readat::{FileReader, ReadAt};
use winre_wim::info::ImageInfo;
use winre_wim::metadata::{EntryInfo, FileKind};
use winre_wim::resource::Fault;
use winre_wim::{Image, Sha1Digest, Wim, WimInfo};

/// `winre wim` subcommands.
#[derive(Subcommand)]
pub enum WimCommand {
    /// Header fields, compression, integrity table and each image's XML fields and version.
    Info {
        /// The WIM file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List an image's files, one full path a line (as `wimlib-imagex dir` does).
    Ls {
        /// The WIM file.
        file: PathBuf,
        /// Image number or name (may be left out when the WIM has one image).
        image: Option<String>,
        /// Directory or file to list (with everything below it); `\` or `/`, any case.
        path: Option<String>,
        /// Attributes, size, link count, last write time and named streams too.
        #[arg(long, conflicts_with = "json")]
        long: bool,
        /// Print JSON (every field) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a file's data (or `PATH:STREAM`, a named data stream) to stdout.
    Cat {
        /// The WIM file.
        file: PathBuf,
        /// Image number or name.
        image: String,
        /// The file; `\` or `/`, any case.
        path: String,
    },
    /// Extract files and directories (recursively) into DIR, safely (see --help).
    #[command(long_about = super::wim_extract::LONG_ABOUT)]
    Extract(super::wim_extract::ExtractArgs),
}

pub fn run(command: &WimCommand) -> anyhow::Result<Exit> {
    match command {
        WimCommand::Info { file, json } => {
            let reader = FileReader::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let wim =
                Wim::open(reader).with_context(|| format!("cannot read {}", file.display()))?;
            let info = WimInfo::new(&wim);
            let report = InfoReport::new(&info, &wim);
            if *json {
                emit(&serde_json::to_string_pretty(&crate::cli::json::stamped(
                    &report,
                ))?)?;
            } else {
                let mut text = render_info(&info);
                render_file_versions(&mut text, &report);
                emit(&text)?;
            }
            Ok(Exit::Ok)
        }
        WimCommand::Ls {
            file,
            image,
            path,
            long,
            json,
        } => ls(file, image.as_deref(), path.as_deref(), *long, *json),
        WimCommand::Cat { file, image, path } => cat(file, image, path),
        WimCommand::Extract(args) => super::wim_extract::run(args),
    }
}

/// Opens a WIM file for the metadata commands.
pub(crate) fn open_wim(file: &Path) -> anyhow::Result<Wim<FileReader>> {
    let reader =
        FileReader::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    Wim::open(reader).with_context(|| format!("cannot read {}", file.display()))
}

/// The image an IMAGE argument names: a number, or a name from the XML; none is allowed when
/// the WIM has exactly one image.
pub(crate) fn resolve_image<R: ReadAt>(wim: &Wim<R>, image: Option<&str>) -> anyhow::Result<u32> {
    let count = wim.header().image_count;
    let Some(image) = image else {
        anyhow::ensure!(
            count == 1,
            "the WIM has {count} images: say which (a number or a name)"
        );
        return Ok(1);
    };
    if let Ok(n) = image.parse::<u32>() {
        anyhow::ensure!(
            (1..=count).contains(&n),
            "no image {n}: the WIM has {count} images"
        );
        return Ok(n);
    }
    wim.images()
        .iter()
        .find(|x| x.name.as_deref() == Some(image))
        .map(|x| x.index)
        .ok_or_else(|| anyhow::anyhow!("no image named \"{image}\""))
}

/// Reads image `index`, with the file named in messages.
pub(crate) fn open_image<R: ReadAt>(
    wim: &Wim<R>,
    index: u32,
    file: &Path,
) -> anyhow::Result<Image> {
    let image = Image::open(wim, index)
        .with_context(|| format!("cannot read image {index} of {}", file.display()))?;
    for w in &image.warnings {
        eprintln!("winre: warning: image {index}: {w}");
    }
    Ok(image)
}

/// `winre wim ls`. Exit codes: 0 listed, 2 unreadable WIM or metadata, or PATH not found.
fn ls(
    file: &Path,
    image: Option<&str>,
    path: Option<&str>,
    long: bool,
    json: bool,
) -> anyhow::Result<Exit> {
    let wim = open_wim(file)?;
    let index = resolve_image(&wim, image)?;
    let image = open_image(&wim, index, file)?;
    let start = image
        .lookup(path.unwrap_or("/"))
        .ok_or_else(|| anyhow::anyhow!("{}: not found in image {index}", path.unwrap_or("/")))?;
    let mut out = String::new();
    if json {
        let mut entries = Vec::new();
        image.walk(start.id, |d| entries.push(image.entry_info(d)));
        let listing = Listing {
            image: index,
            path: image.path(start.id),
            entries,
            warnings: image.warnings.clone(),
        };
        out = serde_json::to_string_pretty(&crate::cli::json::stamped(&listing))?;
    } else if long {
        image.walk(start.id, |d| render_long(&mut out, &image.entry_info(d)));
        out.pop();
    } else {
        // Paths are built once per directory, not once per file.
        let mut dir_paths: Vec<Option<String>> = vec![None; image.dentries().len()];
        image.walk(start.id, |d| {
            let path = match d.parent.and_then(|p| dir_paths.get(p).cloned().flatten()) {
                Some(parent) if parent == "/" => format!("/{}", d.name),
                Some(parent) => format!("{parent}/{}", d.name),
                None => image.path(d.id),
            };
            out.push_str(&path);
            out.push('\n');
            if !d.children.is_empty() {
                if let Some(slot) = dir_paths.get_mut(d.id) {
                    *slot = Some(path);
                }
            }
        });
        out.pop();
    }
    emit(&out)?;
    Ok(Exit::Ok)
}

/// The JSON document of `winre wim ls --json`.
#[derive(serde::Serialize)]
struct Listing {
    image: u32,
    path: String,
    entries: Vec<EntryInfo>,
    warnings: Vec<String>,
}

fn render_long(out: &mut String, e: &EntryInfo) {
    let kind = match e.kind {
        FileKind::Directory => "dir",
        FileKind::File => "file",
        FileKind::Symlink => "symlink",
        FileKind::Junction => "junction",
        FileKind::ReparsePoint => "reparse",
    };
    let _ = writeln!(
        out,
        "{:#010x} {kind:<8} {:>12} {:>2} {} {}{}",
        e.attributes,
        opt(&e.size_bytes),
        e.link_count,
        e.last_write_time.utc,
        e.path,
        e.reparse_tag
            .map(|t| format!("  [reparse tag {t:#010x}]"))
            .unwrap_or_default()
    );
    for s in e.streams.iter().filter(|s| s.name.is_some()) {
        let _ = writeln!(
            out,
            "{:>33} {:>12}    {}:{}",
            "stream",
            opt(&s.size_bytes),
            e.path,
            s.name.as_deref().unwrap_or_default()
        );
    }
}

/// `winre wim cat`: exit 0 when the whole stream was written and its SHA-1 matched, 2 otherwise
/// (unreadable WIM, not found, a directory, a damaged blob).
fn cat(file: &Path, image: &str, path: &str) -> anyhow::Result<Exit> {
    let wim = open_wim(file)?;
    let index = resolve_image(&wim, Some(image))?;
    let image = open_image(&wim, index, file)?;
    let (dentry, stream_name) = match image.lookup(path) {
        Some(d) => (d, None),
        None => {
            // PATH:STREAM, split at the first ':' of the last component.
            let cut = path.rfind(['/', '\\']).map_or(0, |i| i.saturating_add(1));
            let split = path
                .get(cut..)
                .and_then(|last| last.find(':'))
                .map(|i| i.saturating_add(cut));
            let found = split.and_then(|i| {
                let (file_part, stream) = (path.get(..i)?, path.get(i.saturating_add(1)..)?);
                Some((image.lookup(file_part)?, Some(stream)))
            });
            found.ok_or_else(|| anyhow::anyhow!("{path}: not found in image {index}"))?
        }
    };
    let stream = match stream_name {
        Some(name) => dentry.named_stream(name).ok_or_else(|| {
            anyhow::anyhow!("{}: no stream named \"{name}\"", image.path(dentry.id))
        })?,
        None => {
            anyhow::ensure!(
                !dentry.is_directory(),
                "{}: is a directory",
                image.path(dentry.id)
            );
            dentry.unnamed_stream().ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: has no data stream (a reparse point or encrypted file; see `wim ls --json`)",
                    image.path(dentry.id)
                )
            })?
        }
    };
    if stream.hash.is_zero() {
        return Ok(Exit::Ok);
    }
    let blob = image.blob(&stream.hash).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: its blob {} is missing from the blob table",
            path,
            stream.hash
        )
    })?;
    let mut stdout = std::io::stdout().lock();
    // Text may go to a terminal, binary (a NUL in the first piece, as less and git judge) not.
    let mut unchecked = std::io::IsTerminal::is_terminal(&stdout);
    let mut binary = false;
    let mut hasher = sha1::Sha1::new();
    let result = wim.stream_blob(blob, |piece| {
        if std::mem::take(&mut unchecked) && piece.contains(&0) {
            binary = true;
            return Err(Fault::Read(winre_wim::Error::Io(std::io::Error::other(
                "binary",
            ))));
        }
        hasher.update(piece);
        stdout
            .write_all(piece)
            .map_err(|e| Fault::Read(winre_wim::Error::Io(e)))
    });
    if binary {
        return Err(exit::usage(format!(
            "{path}: binary data; refusing to write it to a terminal (redirect stdout to a file)"
        )));
    }
    match result {
        Err(Fault::Read(winre_wim::Error::Io(e))) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(Exit::Ok)
        }
        other => other.map_err(winre_wim::Error::from)?,
    }
    stdout.flush()?;
    let actual = Sha1Digest(hasher.finalize().into());
    anyhow::ensure!(
        actual == blob.sha1,
        "{path}: data written, but its SHA-1 is {actual}, not {} (the WIM is damaged)",
        blob.sha1
    );
    Ok(Exit::Ok)
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn render_info(info: &WimInfo) -> String {
    let mut out = String::new();
    let h = &info.header;
    let _ = writeln!(out, "File size:        {} bytes", info.file_size_bytes);
    let _ = writeln!(out, "Version:          0x{:x}", h.version);
    let _ = writeln!(out, "GUID:             {}", h.guid);
    let _ = writeln!(
        out,
        "Flags:            0x{:x} ({})",
        h.flags,
        h.flag_names.join(", ")
    );
    let _ = writeln!(
        out,
        "Compression:      {}",
        serde_json::to_value(h.compression)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "Chunk size:       {} bytes", h.chunk_size_bytes);
    let _ = writeln!(out, "Part:             {}/{}", h.part_number, h.total_parts);
    let _ = writeln!(out, "Images:           {}", h.image_count);
    let _ = writeln!(out, "Boot index:       {}", h.boot_index);
    let _ = writeln!(
        out,
        "Integrity table:  {}",
        if info.has_integrity_table {
            "yes"
        } else {
            "no"
        }
    );
    let _ = writeln!(
        out,
        "Blobs:            {} ({} table entries)",
        info.blob_count, info.blob_table_entries
    );
    if info.has_solid_resources {
        let _ = writeln!(out, "Solid resources:  {}", info.solid_resource_count);
    }
    if info.header.pipable {
        let _ = writeln!(out, "Pipable:          yes (wimlib --pipable)");
    }
    for w in &info.warnings {
        let _ = writeln!(out, "Warning:          {w}");
    }
    for image in &info.images {
        render_image(&mut out, image);
    }
    out
}

fn render_image(out: &mut String, image: &ImageInfo) {
    let x = &image.xml;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Image {}{}",
        x.index,
        if image.bootable { " (bootable)" } else { "" }
    );
    let _ = writeln!(out, "  Name:           {}", opt(&x.name));
    let _ = writeln!(out, "  Description:    {}", opt(&x.description));
    if let Some(flags) = &x.flags {
        let _ = writeln!(out, "  Flags:          {flags}");
    }
    let _ = writeln!(out, "  Directories:    {}", opt(&x.dir_count));
    let _ = writeln!(out, "  Files:          {}", opt(&x.file_count));
    let _ = writeln!(out, "  Total bytes:    {}", opt(&x.total_bytes));
    let _ = writeln!(
        out,
        "  Created:        {}",
        x.creation_time.as_ref().map_or("-", |t| t.utc.as_str())
    );
    let _ = writeln!(
        out,
        "  Modified:       {}",
        x.last_modification_time
            .as_ref()
            .map_or("-", |t| t.utc.as_str())
    );
    if let Some(w) = &x.windows {
        let _ = writeln!(out, "  Architecture:   {} ({})", w.arch_name, opt(&w.arch));
        for (label, value) in [
            ("Product name", &w.product_name),
            ("Edition ID", &w.edition_id),
            ("Install type", &w.installation_type),
            ("Product type", &w.product_type),
        ] {
            if let Some(v) = value {
                let _ = writeln!(out, "  {:<15} {v}", format!("{label}:"));
            }
        }
        if !w.languages.is_empty() {
            let _ = writeln!(out, "  Languages:      {}", w.languages.join(" "));
        }
        if let Some(v) = &w.version {
            let _ = writeln!(out, "  SP level:       {}", opt(&v.splevel));
        }
    }
    let _ = writeln!(out, "  Version:        {}", opt(&x.version));
    if let Some(m) = &image.metadata {
        let _ = writeln!(
            out,
            "  Metadata:       {} bytes at offset {} (SHA-1 {})",
            m.reshdr.original_size, m.reshdr.offset, m.sha1
        );
    }
}

/// `wim info`'s JSON: the WIM's facts, then the version resources of image 1's version files.
#[derive(serde::Serialize)]
struct InfoReport<'a> {
    #[serde(flatten)]
    info: &'a WimInfo,
    /// `Windows\System32\winpeshl.exe` and winload, when image 1 has them.
    file_versions: Vec<FileVersion>,
    /// Why image 1's files could not be read, when they could not.
    file_versions_error: Option<String>,
}

impl<'a> InfoReport<'a> {
    fn new<R: ReadAt>(info: &'a WimInfo, wim: &Wim<R>) -> Self {
        let (file_versions, file_versions_error) = if wim.header().image_count == 0 {
            (Vec::new(), None)
        } else {
            match wim_file_versions(wim) {
                Ok(found) => (found, None),
                Err(e) => (Vec::new(), Some(e)),
            }
        };
        Self {
            info,
            file_versions,
            file_versions_error,
        }
    }
}

fn render_file_versions(out: &mut String, report: &InfoReport<'_>) {
    if report.file_versions.is_empty() && report.file_versions_error.is_none() {
        return;
    }
    let _ = writeln!(
        out,
        "File versions (image 1, as Microsoft's WinRE scripts read them):"
    );
    if let Some(e) = &report.file_versions_error {
        let _ = writeln!(out, "  cannot read: {e}");
    }
    let xml = report
        .info
        .images
        .first()
        .and_then(|i| i.xml.version)
        .map_or_else(|| "-".to_string(), |v| v.to_string());
    for f in &report.file_versions {
        let _ = write!(out, "  {}: ", f.path);
        if let Some(e) = &f.error {
            let _ = writeln!(out, "{e}");
            continue;
        }
        let _ = write!(
            out,
            "file {}, product {}",
            f.file_version.as_deref().unwrap_or("-"),
            f.product_version.as_deref().unwrap_or("-")
        );
        let judged = match f.compared {
            ComparedField::FileVersion => "file version",
            ComparedField::ProductVersion => "product version",
        };
        match f.agrees_with_xml {
            Some(true) => {
                let _ = writeln!(out, " ({judged} matches the XML's {xml})");
            }
            Some(false) => {
                let _ = writeln!(out, " (DIFFERS: {judged} is not the XML's {xml})");
            }
            None => {
                let _ = writeln!(out);
            }
        }
    }
}

/// Writes `text` and a newline to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

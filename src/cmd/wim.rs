//! `winre wim ...`: standalone WIM files.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use winre_readat::FileReader;
use winre_wim::info::ImageInfo;
use winre_wim::{Wim, WimInfo};

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
}

pub fn run(command: &WimCommand) -> anyhow::Result<ExitCode> {
    match command {
        WimCommand::Info { file, json } => {
            let reader = FileReader::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let wim =
                Wim::open(reader).with_context(|| format!("cannot read {}", file.display()))?;
            let info = WimInfo::new(&wim);
            if *json {
                emit(&serde_json::to_string_pretty(&info)?)?;
            } else {
                emit(&render_info(&info))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
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

/// Writes `text` and a newline to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

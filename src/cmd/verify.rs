//! `winre verify FILE`: integrity table and every blob's SHA-1.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::source::{self, RemoteArgs};
use super::wim::emit;
use crate::cli::size::parse_size;
use crate::cli::threads::ThreadsArg;
use crate::cli::{progress, Exit};
use anyhow::Context;
use winre_wim::metadata::StreamKind;
use winre_wim::verify::{verify, BlobProblem, Progress, VerifyOptions, VerifyReport};

/// Arguments of `winre verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The WIM file: a local path or a URL (https://..., s3://BUCKET/KEY, az://ACCOUNT/CONTAINER/BLOB).
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub threads: ThreadsArg,
    /// Bytes the decode buffers may hold at once (default 100MiB, which keeps peak RSS within
    /// 128 MiB). More lets two 64 MiB solid LZMS chunks decode at once, on two cores.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub buffer_memory: Option<u64>,
    /// For a URL: print the requests made and bytes fetched on stderr.
    #[arg(long)]
    pub stats: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Exit codes: 0 intact, 1 corruption found, 2 the file cannot be checked at all.
pub fn run(args: &VerifyArgs) -> anyhow::Result<Exit> {
    let shown = source::label(&args.file);
    let (reader, remote) = source::open_bytes(&args.file, &args.remote)?;
    // The resources are the work, but their number is not known before the WIM is open.
    let pool = args.threads.pool(usize::MAX)?;
    let bar = progress::Progress::bytes("verifying", 0);
    let on_progress = |p: Progress| bar.set(p.done_bytes, p.total_bytes);
    let report = pool
        .install(|| {
            let options = VerifyOptions {
                buffer_bytes: args.buffer_memory,
                ..Default::default()
            };
            verify(reader, options, &on_progress)
        })
        .with_context(|| format!("cannot verify {shown}"))?;
    bar.finish();
    if let (true, Some(remote)) = (args.stats, &remote) {
        let fetched = remote.stats();
        eprintln!(
            "{shown}: fetched {} bytes ({:.2} MiB) in {} requests",
            fetched.bytes_fetched,
            fetched.bytes_fetched as f64 / 1048576.0,
            fetched.requests
        );
    }
    if args.json {
        emit(&serde_json::to_string_pretty(&crate::cli::json::stamped(
            &report,
        ))?)?;
    } else {
        emit(&render_report(&report))?;
    }
    Ok(if report.intact {
        Exit::Ok
    } else {
        Exit::Finding
    })
}

fn render_report(r: &VerifyReport) -> String {
    let mut out = String::new();
    match &r.integrity {
        None => {
            let _ = writeln!(out, "Integrity table:  none");
        }
        Some(i) => {
            if let Some(e) = &i.table_error {
                let _ = writeln!(out, "Integrity table:  UNREADABLE: {e}");
            } else if i.failures.is_empty() {
                let _ = writeln!(
                    out,
                    "Integrity table:  OK ({} windows of {} bytes)",
                    i.chunk_count, i.chunk_size_bytes
                );
            } else {
                let _ = writeln!(
                    out,
                    "Integrity table:  {} of {} windows FAILED",
                    i.failures.len(),
                    i.chunk_count
                );
                for f in &i.failures {
                    let _ = writeln!(
                        out,
                        "  window {} (bytes {}..{}): {}",
                        f.chunk,
                        f.offset,
                        f.offset.saturating_add(f.len),
                        f.detail
                    );
                }
            }
        }
    }
    if let Some(e) = &r.structure_error {
        let _ = writeln!(out, "Structure:        UNREADABLE: {e}");
    }
    let _ = writeln!(
        out,
        "Blobs checked:    {} ({} bytes uncompressed)",
        r.blobs_checked, r.bytes_checked
    );
    for f in &r.failures {
        let what = match &f.problem {
            BlobProblem::HashMismatch { actual } => format!("SHA-1 mismatch (got {actual})"),
            BlobProblem::DecodeError {
                chunk,
                offset,
                detail,
            } => format!("decode error in chunk {chunk} at offset {offset}: {detail}"),
            BlobProblem::BadLayout { detail } => format!("bad layout: {detail}"),
            BlobProblem::ReadError { detail } => format!("read error: {detail}"),
        };
        let mut meta = f
            .metadata_of_image
            .map(|i| format!(" (metadata of image {i})"))
            .unwrap_or_default();
        if let Some(at) = f.offset_in_solid_resource {
            meta.push_str(&format!(
                " (in a solid resource, at byte {at} of its uncompressed data)"
            ));
        }
        let _ = writeln!(
            out,
            "FAILED blob {} at offset {}{meta}: {what}",
            f.sha1, f.offset
        );
        const SHOWN: usize = 20;
        for u in f.used_by.iter().take(SHOWN) {
            let stream = match (&u.stream, u.kind) {
                (Some(name), _) => format!(" (stream {name})"),
                (None, StreamKind::ReparsePoint) => " (reparse data)".to_owned(),
                (None, StreamKind::EncryptedRaw) => " (encrypted data)".to_owned(),
                (None, StreamKind::Data) => String::new(),
            };
            let _ = writeln!(out, "  used by image {}: {}{stream}", u.image, u.path);
        }
        if f.used_by.len() > SHOWN {
            let _ = writeln!(
                out,
                "  ... and {} more (see --json)",
                f.used_by.len().saturating_sub(SHOWN)
            );
        }
        if !f.integrity_chunks.is_empty() {
            let _ = writeln!(
                out,
                "  overlaps failed integrity windows {:?}",
                f.integrity_chunks
            );
        }
    }
    for e in &r.path_errors {
        let _ = writeln!(out, "Paths:            {e}");
    }
    let _ = writeln!(
        out,
        "Result:           {}",
        if r.intact { "intact" } else { "CORRUPT" }
    );
    out
}

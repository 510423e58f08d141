//! `winre report merge`: counts over many images, and one CSV row per image.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

use super::records::{version_key, Loaded, Row};
use crate::cli::size::human;

/// The merged counts (`winre report merge --json`).
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Input files read.
    pub files: usize,
    /// Scan records (scanned + errors).
    pub images: usize,
    pub scanned: usize,
    /// Error records (images that could not be read).
    pub errors: usize,
    /// Lines that were not scan records.
    pub malformed_lines: usize,
    /// Paths that occur in more than one record.
    pub duplicate_paths: usize,
    /// Scanned images by `winre.status`: enabled, disabled, not_found.
    pub status: BTreeMap<String, usize>,
    /// Scanned images by `winre.version` (null: no version known), oldest first.
    pub versions: Vec<VersionCount>,
    /// Per update (by KB, or title when it has none): images with it installed, not, unknown.
    pub updates: Vec<UpdateCount>,
    /// Scanned images by free space of the WinRE volume.
    pub space: SpaceCount,
    /// The most common `recovery_space.required_free`, for the summary's wording.
    pub required_free: Option<u64>,
    /// Every error record.
    pub failures: Vec<Failure>,
}

#[derive(Debug, Serialize)]
pub struct VersionCount {
    pub version: Option<String>,
    pub images: usize,
}

#[derive(Debug, Serialize)]
pub struct UpdateCount {
    pub kb: Option<String>,
    pub title: String,
    pub release_date: String,
    pub installed: usize,
    pub not_installed: usize,
    pub unknown: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct SpaceCount {
    /// `recovery_space.shortfall` is 0.
    pub enough: usize,
    /// `recovery_space.shortfall` is above 0.
    pub short: usize,
    /// `recovery_space` is null: no volume holds (or would hold) WinRE.
    pub no_volume: usize,
}

#[derive(Debug, Serialize)]
pub struct Failure {
    pub path: String,
    pub error: String,
}

/// Counts the loaded rows.
pub fn summarize(loaded: &Loaded) -> Summary {
    let rows = &loaded.rows;
    let mut status = BTreeMap::new();
    let mut versions: BTreeMap<Option<&str>, usize> = BTreeMap::new();
    let mut updates: BTreeMap<(String, String), UpdateCount> = BTreeMap::new();
    let mut space = SpaceCount::default();
    let mut required: BTreeMap<u64, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for row in rows {
        *seen.entry(row.path.as_str()).or_default() += 1;
        if let Some(error) = &row.error {
            failures.push(Failure {
                path: row.path.clone(),
                error: error.clone(),
            });
            continue;
        }
        if let Some(s) = &row.status {
            *status.entry(s.clone()).or_default() += 1;
        }
        *versions.entry(row.version.as_deref()).or_default() += 1;
        match row.space_verdict() {
            "enough" => space.enough += 1,
            "short" => space.short += 1,
            _ => space.no_volume += 1,
        }
        if let Some(s) = &row.space {
            *required.entry(s.required_free).or_default() += 1;
        }
        for u in &row.updates {
            let key = (u.release_date.clone(), Row::update_name(u).to_string());
            let count = updates.entry(key).or_insert_with(|| UpdateCount {
                kb: u.kb.clone(),
                title: u.title.clone(),
                release_date: u.release_date.clone(),
                installed: 0,
                not_installed: 0,
                unknown: 0,
            });
            match u.installed {
                Some(true) => count.installed += 1,
                Some(false) => count.not_installed += 1,
                None => count.unknown += 1,
            }
        }
    }
    let mut versions: Vec<VersionCount> = versions
        .into_iter()
        .map(|(v, images)| VersionCount {
            version: v.map(str::to_string),
            images,
        })
        .collect();
    // Known versions oldest first, then the images without one.
    versions.sort_by_key(|v| (v.version.is_none(), v.version.as_deref().map(version_key)));
    Summary {
        files: loaded.files,
        images: rows.len(),
        scanned: rows.len() - failures.len(),
        errors: failures.len(),
        malformed_lines: loaded.malformed.len(),
        duplicate_paths: seen.values().filter(|&&n| n > 1).count(),
        status,
        versions,
        updates: updates.into_values().collect(),
        space,
        required_free: required
            .into_iter()
            .max_by_key(|&(bytes, n)| (n, bytes))
            .map(|(bytes, _)| bytes),
        failures,
    }
}

/// The summary for people.
pub fn render_text(s: &Summary) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{} images in {} file(s): {} scanned, {} unreadable{}",
        s.images,
        s.files,
        s.scanned,
        s.errors,
        if s.malformed_lines > 0 {
            format!(", {} malformed line(s)", s.malformed_lines)
        } else {
            String::new()
        }
    );
    if s.duplicate_paths > 0 {
        let _ = writeln!(t, "{} path(s) occur more than once", s.duplicate_paths);
    }
    let count = |k: &str| s.status.get(k).copied().unwrap_or(0);
    let _ = writeln!(
        t,
        "WinRE status:  enabled {}, disabled {}, not found {}",
        count("enabled"),
        count("disabled"),
        count("not_found")
    );
    let _ = writeln!(t, "WinRE versions:");
    for v in &s.versions {
        let _ = writeln!(
            t,
            "  {:<20} {}",
            v.version.as_deref().unwrap_or("(none)"),
            v.images
        );
    }
    let needs = s
        .required_free
        .map(|b| format!(" (needs {})", human(b)))
        .unwrap_or_default();
    let _ = writeln!(
        t,
        "Free space{needs}:  enough {}, short {}, no WinRE volume {}",
        s.space.enough, s.space.short, s.space.no_volume
    );
    if !s.updates.is_empty() {
        let _ = writeln!(
            t,
            "Updates:             installed / not installed / unknown"
        );
        for u in &s.updates {
            let _ = writeln!(
                t,
                "  {:<34} {} / {} / {}",
                u.title, u.installed, u.not_installed, u.unknown
            );
        }
    }
    if !s.failures.is_empty() {
        let _ = writeln!(t, "Unreadable:");
        for f in &s.failures {
            let _ = writeln!(t, "  {}: {}", f.path.escape_debug(), f.error.escape_debug());
        }
    }
    t
}

/// The CSV columns, in order (a public contract: README, "winre report merge").
pub const CSV_COLUMNS: [&str; 24] = [
    "path",
    "error",
    "format",
    "disk_size",
    "scheme",
    "winre_status",
    "winre_version",
    "wim_xml_version",
    "registry_version",
    "found_by",
    "winre_partition",
    "wim_size",
    "wim_compression",
    "wim_data_runs",
    "recovery_partition",
    "recovery_free",
    "recovery_size",
    "required_free",
    "shortfall",
    "space_verdict",
    "kb_installed",
    "kb_not_installed",
    "problems",
    "bytes_read",
];

/// One CSV row per image (RFC 4180: CRLF line ends, fields quoted when they hold `,` `"` or a
/// line break). A text field that begins with `=`, `+`, `-`, `@`, tab or CR gets a leading `'`,
/// so that a spreadsheet shows a hostile path instead of running it as a formula.
pub fn write_csv(rows: &[Row], out: &mut dyn Write) -> io::Result<()> {
    write_record(out, CSV_COLUMNS.iter().map(|c| Field::Text(c.to_string())))?;
    for r in rows {
        let num = |n: Option<u64>| Field::Number(n.map(|n| n.to_string()).unwrap_or_default());
        let text = |s: Option<&str>| Field::Text(s.unwrap_or_default().to_string());
        let kbs = |want: bool| {
            let names: Vec<&str> = r
                .updates
                .iter()
                .filter(|u| u.installed == Some(want))
                .map(Row::update_name)
                .collect();
            Field::Text(names.join(";"))
        };
        let space = r.space.as_ref();
        write_record(
            out,
            [
                text(Some(&r.path)),
                text(r.error.as_deref()),
                text(r.format.as_deref()),
                num(r.disk_size),
                text(r.scheme.as_deref()),
                text(r.status.as_deref()),
                text(r.version.as_deref()),
                text(r.wim_xml_version.as_deref()),
                text(r.registry_version.as_deref()),
                text(r.found_by.as_deref()),
                num(r.winre_partition.map(u64::from)),
                num(r.wim_size),
                text(r.wim_compression.as_deref()),
                num(r.wim_data_runs),
                num(space.map(|s| u64::from(s.partition))),
                num(space.map(|s| s.free)),
                num(space.map(|s| s.size)),
                num(space.map(|s| s.required_free)),
                num(space.map(|s| s.shortfall)),
                text(Some(r.space_verdict())),
                kbs(true),
                kbs(false),
                Field::Text(r.problems.join(" | ")),
                num(r.bytes_read),
            ]
            .into_iter(),
        )?;
    }
    Ok(())
}

enum Field {
    Text(String),
    Number(String),
}

fn write_record(out: &mut dyn Write, fields: impl Iterator<Item = Field>) -> io::Result<()> {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        let value = match field {
            Field::Number(n) => n,
            Field::Text(t) if t.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{t}"),
            Field::Text(t) => t,
        };
        if value.contains([',', '"', '\n', '\r']) {
            write!(out, "\"{}\"", value.replace('"', "\"\""))?;
        } else {
            out.write_all(value.as_bytes())?;
        }
    }
    out.write_all(b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let rows = vec![Row {
            path: "=HYPERLINK(\"x\"),\nb".into(),
            error: Some("bad".into()),
            ..Row::default()
        }];
        let mut out = Vec::new();
        write_csv(&rows, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let second = text.split("\r\n").nth(1).unwrap();
        assert!(
            second.starts_with("\"'=HYPERLINK(\"\"x\"\"),\nb\",bad,"),
            "{second}"
        );
    }
}

//! Reading scan JSON Lines back: each line becomes a [`Row`], the flat view of one image that the
//! summary, the CSV and the HTML page share.
//!
//! Only the fields these reports use are read; other fields are ignored, so a newer winre's lines
//! still merge. A line that is not a scan record (not JSON, no `source.path`, neither `winre` nor
//! `error`) is counted as malformed and named on stderr by the caller, never guessed at.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

/// Longest JSON line accepted: a scan record is a few KiB; a bigger one is not ours.
const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;

/// One image, as the reports see it.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub path: String,
    /// The error record's message; `None` for a scanned image.
    pub error: Option<String>,
    pub format: Option<String>,
    pub disk_size: Option<u64>,
    pub scheme: Option<String>,
    /// enabled, disabled or not_found.
    pub status: Option<String>,
    pub version: Option<String>,
    pub wim_xml_version: Option<String>,
    pub registry_version: Option<String>,
    pub found_by: Option<String>,
    pub winre_partition: Option<u32>,
    pub wim_size: Option<u64>,
    pub wim_compression: Option<String>,
    pub wim_data_runs: Option<u64>,
    pub space: Option<Space>,
    pub updates: Vec<Update>,
    pub problems: Vec<String>,
    pub bytes_read: Option<u64>,
}

/// `recovery_space`.
#[derive(Debug, Clone, Deserialize)]
pub struct Space {
    pub partition: u32,
    pub size: u64,
    pub free: u64,
    pub required_free: u64,
    pub shortfall: u64,
}

/// One of `updates[]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    #[serde(default)]
    pub kb: Option<String>,
    pub title: String,
    #[serde(default)]
    pub release_date: String,
    #[serde(default)]
    pub installed: Option<bool>,
}

impl Row {
    /// enough, short, or none (no volume holds WinRE); empty for an error record.
    pub fn space_verdict(&self) -> &'static str {
        match (&self.error, &self.space) {
            (Some(_), _) => "",
            (None, None) => "none",
            (None, Some(s)) if s.shortfall == 0 => "enough",
            (None, Some(_)) => "short",
        }
    }

    /// An update's name as reports show it: its KB, else its title.
    pub fn update_name(update: &Update) -> &str {
        update.kb.as_deref().unwrap_or(&update.title)
    }
}

// The record as `winre scan --json` writes it (the subset read here).
#[derive(Deserialize)]
struct Record {
    source: Source,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    partition_table: Option<Table>,
    #[serde(default)]
    winre: Option<Winre>,
    #[serde(default)]
    recovery_space: Option<Space>,
    #[serde(default)]
    updates: Vec<Update>,
    #[serde(default)]
    problems: Vec<RecordProblem>,
    #[serde(default)]
    stats: Option<Stats>,
}

/// A problem as written by this winre (`{"code", "message"}`) or by one before problem codes
/// (a bare sentence): merging old and new runs keeps working.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RecordProblem {
    Coded { message: String },
    Text(String),
}

#[derive(Deserialize)]
struct Source {
    path: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    disk_size: Option<u64>,
}

#[derive(Deserialize)]
struct Table {
    scheme: String,
}

#[derive(Deserialize)]
struct Winre {
    status: String,
    #[serde(default)]
    partition: Option<u32>,
    #[serde(default)]
    found_by: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    version_sources: Option<VersionSources>,
    #[serde(default)]
    wim: Option<Wim>,
}

#[derive(Deserialize)]
struct VersionSources {
    #[serde(default)]
    wim_xml: Option<String>,
    #[serde(default)]
    registry: Option<String>,
}

#[derive(Deserialize)]
struct Wim {
    size: u64,
    compression: String,
    data_runs: u64,
}

#[derive(Deserialize)]
struct Stats {
    bytes_read: u64,
}

/// Parses one JSON line into a row, or says why it is not a scan record.
pub fn parse_line(line: &str) -> Result<Row, String> {
    let record: Record = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if record.error.is_none() && record.winre.is_none() {
        return Err("neither a `winre` object nor an `error`".into());
    }
    let winre = record.winre;
    let sources = winre.as_ref().and_then(|w| w.version_sources.as_ref());
    let wim = winre.as_ref().and_then(|w| w.wim.as_ref());
    Ok(Row {
        path: record.source.path,
        format: record.source.format,
        disk_size: record.source.disk_size,
        scheme: record.partition_table.map(|t| t.scheme),
        status: winre.as_ref().map(|w| w.status.clone()),
        version: winre.as_ref().and_then(|w| w.version.clone()),
        wim_xml_version: sources.and_then(|s| s.wim_xml.clone()),
        registry_version: sources.and_then(|s| s.registry.clone()),
        found_by: winre.as_ref().and_then(|w| w.found_by.clone()),
        winre_partition: winre.as_ref().and_then(|w| w.partition),
        wim_size: wim.map(|w| w.size),
        wim_compression: wim.map(|w| w.compression.clone()),
        wim_data_runs: wim.map(|w| w.data_runs),
        space: record.recovery_space,
        updates: record.updates,
        problems: record
            .problems
            .into_iter()
            .map(|p| match p {
                RecordProblem::Coded { message } | RecordProblem::Text(message) => message,
            })
            .collect(),
        bytes_read: record.stats.map(|s| s.bytes_read),
        error: record.error,
    })
}

/// Everything read from the input files.
#[derive(Debug, Default)]
pub struct Loaded {
    pub files: usize,
    pub rows: Vec<Row>,
    /// `FILE line N: why`, for each line that is not a scan record.
    pub malformed: Vec<String>,
    /// Files given up on after only bad lines, each with why.
    pub given_up: Vec<String>,
}

/// A file whose first this many lines are all not scan records is given up on.
const GIVE_UP_AFTER_BAD_LINES: usize = 5;

/// Reads JSON Lines files (`-` is stdin); blank lines are skipped.
pub fn load(paths: &[impl AsRef<Path>]) -> anyhow::Result<Loaded> {
    let mut loaded = Loaded::default();
    for path in paths {
        let path = path.as_ref();
        let name = path.display().to_string();
        if path == Path::new("-") {
            load_one(std::io::stdin().lock(), "stdin", &mut loaded)?;
        } else {
            let file = File::open(path).with_context(|| format!("opening {name}"))?;
            load_one(file, &name, &mut loaded)?;
        }
        loaded.files += 1;
    }
    Ok(loaded)
}

fn load_one(reader: impl Read, name: &str, loaded: &mut Loaded) -> anyhow::Result<()> {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    let (mut good, mut bad) = (0usize, 0usize);
    for number in 1u64.. {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {name}"))?;
        if read == 0 {
            break;
        }
        if line.len() as u64 > MAX_LINE_BYTES {
            anyhow::bail!("{name} line {number}: longer than {MAX_LINE_BYTES} bytes");
        }
        let text = match std::str::from_utf8(&line) {
            Ok(text) => text.trim(),
            Err(e) => {
                loaded.malformed.push(format!("{name} line {number}: {e}"));
                bad += 1;
                if good == 0 && bad >= GIVE_UP_AFTER_BAD_LINES {
                    loaded.given_up.push(format!(
                        "{name}: stopped after {bad} lines that are not text (is it the JSON Lines of `winre scan --json`?)"
                    ));
                    break;
                }
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        match parse_line(text) {
            Ok(row) => {
                loaded.rows.push(row);
                good += 1;
            }
            Err(why) => {
                loaded
                    .malformed
                    .push(format!("{name} line {number}: not a scan record: {why}"));
                bad += 1;
            }
        }
        // A file that starts with only bad lines is not JSON Lines from winre: stop reading it
        // rather than name each of its lines.
        if good == 0 && bad >= GIVE_UP_AFTER_BAD_LINES {
            loaded.given_up.push(format!(
                "{name}: stopped after {bad} lines that are not scan records (is it the JSON Lines of `winre scan --json`?)"
            ));
            break;
        }
    }
    Ok(())
}

/// Sorts version strings by their numeric parts (10.0.19041.10000 after 10.0.19041.9999).
pub fn version_key(version: &str) -> Vec<u64> {
    version
        .split('.')
        .map(|part| part.parse().unwrap_or(u64::MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_record_and_malformed_lines() {
        let row = parse_line(r#"{"source":{"path":"x"},"error":"boom"}"#).unwrap();
        assert_eq!(row.error.as_deref(), Some("boom"));
        assert_eq!(row.space_verdict(), "");
        assert!(parse_line(r#"{"source":{"path":"x"}}"#).is_err());
        assert!(parse_line(r#"{"error":"x"}"#).is_err());
        assert!(parse_line("[1,2]").is_err());
        assert!(parse_line(r#"{"source":{"path":"x"},"error":"b"#).is_err());
    }

    #[test]
    fn versions_sort_numerically() {
        let mut v = ["10.0.19041.9999", "10.0.19041.10000", "10.0.22621.1"];
        v.sort_by_key(|s| version_key(s));
        assert_eq!(v, ["10.0.19041.9999", "10.0.19041.10000", "10.0.22621.1"]);
    }
}

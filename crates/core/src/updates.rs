//! WinRE servicing updates, the minimum WinRE version each leaves behind, and which of them a
//! given WinRE version already has.
//!
//! The table is `data/winre-updates.csv`, embedded at build time and parsed once; a newer one can
//! be loaded at run time ([`use_table`]). A row's `confirmed` is true only when a Microsoft source
//! states its threshold; rows without a published threshold are still listed, with
//! `installed: null`, so reports never guess. Every row names its source and, where it has one,
//! the source's URL.

use std::sync::OnceLock;

use serde::Serialize;

use crate::version::WinreVersion;

/// Free space the WinRE update KBs require in the recovery partition: "This update requires
/// 250 MB of free space in the recovery partition" (Microsoft, KB5046398 and the Server 2022
/// Safe OS update page b127d1e8). Microsoft's own extend script (learn.microsoft.com,
/// add-update-to-winre#extend-the-windows-re-partition) uses the PowerShell literal `250MB`,
/// which is 262,144,000 bytes, and checks the WinRE volume's free space against it.
pub const REQUIRED_FREE_BYTES: u64 = 262_144_000;

const TABLE: &str = include_str!("../data/winre-updates.csv");

/// Largest update table read from a file (the embedded one is about 8 KiB).
pub const MAX_TABLE_BYTES: u64 = 1 << 20;

/// Which version a row's threshold is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdKind {
    /// The WinRE image version: the WIM XML's MAJOR.MINOR.BUILD.SPBUILD (what WinREAgent and
    /// the KB pages compare).
    WimVersion,
    /// The version resource of a file inside Winre.wim (the KB5034957 script compares
    /// `winload.efi`): winre compares winload's product version when it could read it.
    FileVersion,
}

impl ThresholdKind {
    /// The name in the table and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::WimVersion => "wim_version",
            Self::FileVersion => "file_version",
        }
    }
}

/// One row of the update table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateRow {
    /// The WinRE build the update applies to (19041 covers Windows 10 2004 to 22H2).
    pub family_build: u32,
    /// The KB number ("KB5034441"), or `None` for an update that has none (a cumulative update).
    pub kb: Option<String>,
    /// What the update is, as the table names it ("KB5034441 (CVE-2024-20666)").
    pub title: String,
    /// Release date as published (YYYY-MM-DD, or YYYY-MM when only the month is known).
    pub release_date: String,
    /// The WinRE version at or above which the update counts as installed, when published.
    pub min_version: Option<WinreVersion>,
    /// True when a Microsoft source states `min_version`.
    pub confirmed: bool,
    /// Which version `min_version` is compared with.
    pub threshold_kind: ThresholdKind,
    /// Where the row comes from, by name.
    pub source: String,
    /// The source's address, when it has a stable one.
    pub source_url: Option<String>,
}

/// Whether one update is present in a WinRE image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateStatus {
    /// The KB number ("KB5034441"), or `None` for an update that has none (a cumulative update).
    pub kb: Option<String>,
    /// What the update is ("KB5034441 (CVE-2024-20666)").
    pub title: String,
    /// Release date as published.
    pub release_date: String,
    /// The threshold version, when published.
    pub min_version: Option<WinreVersion>,
    /// `Some(version >= min_version)`, or `None` when no threshold is published.
    pub installed: Option<bool>,
    /// True when a Microsoft source states the threshold.
    pub confirmed: bool,
    /// Which version the threshold is compared with (`wim_version` or `file_version`).
    pub threshold_kind: ThresholdKind,
    /// Where the row comes from.
    pub source: String,
    /// The source's address, when known.
    pub source_url: Option<String>,
}

/// A parsed table with what identifies it in reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateTable {
    /// The rows, in file order.
    pub rows: Vec<UpdateRow>,
    /// Which table: its date, checksum and origin.
    pub id: TableId,
}

/// Which update table judged a report: printed by `--version` and named in every JSON record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableId {
    /// The `# table-date: YYYY-MM-DD` line of the table, when it has one.
    pub date: Option<String>,
    /// SHA-256 of the table file's bytes, lowercase hex.
    pub sha256: String,
    /// "embedded", or the path of the file loaded with `--updates` / `WINRE_UPDATES`.
    pub origin: String,
}

impl UpdateTable {
    /// Parses a whole table file (`origin` names it in [`TableId`]).
    pub fn parse(text: &str, origin: &str) -> Result<Self, String> {
        let date = text.lines().find_map(|l| {
            l.trim()
                .strip_prefix('#')?
                .trim()
                .strip_prefix("table-date:")
                .map(|d| d.trim().to_string())
        });
        Ok(Self {
            rows: parse_table(text)?,
            id: TableId {
                date,
                sha256: crate::scan::hex_digest(text.as_bytes()),
                origin: origin.to_string(),
            },
        })
    }
}

/// Parses the CSV table (lines starting with `#` and blank lines are skipped). Errors name the
/// line (counted from 1) and the field.
pub fn parse_table(text: &str) -> Result<Vec<UpdateRow>, String> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i.saturating_add(1);
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [family, kb, date, min, confirmed, kind, source, url] = fields.as_slice() else {
            return Err(format!(
                "line {n}: {} fields, expected 8 (family_build,kb,release_date,min_version,confirmed,threshold_kind,source,source_url)",
                fields.len()
            ));
        };
        let family_build = family
            .parse()
            .map_err(|_| format!("line {n}: family_build {family:?} is not a build number"))?;
        let min_version = if min.is_empty() {
            None
        } else {
            Some(
                min.parse::<WinreVersion>()
                    .map_err(|e| format!("line {n}: min_version: {e}"))?,
            )
        };
        if let Some(v) = min_version {
            if v.build != family_build {
                return Err(format!(
                    "line {n}: min_version {v} is not of build {family_build}"
                ));
            }
        }
        let confirmed = match *confirmed {
            "true" => true,
            "false" => false,
            other => {
                return Err(format!(
                    "line {n}: confirmed {other:?}, expected true or false"
                ))
            }
        };
        let threshold_kind = match *kind {
            "wim_version" => ThresholdKind::WimVersion,
            "file_version" => ThresholdKind::FileVersion,
            other => {
                return Err(format!(
                    "line {n}: threshold_kind {other:?}, expected wim_version or file_version"
                ))
            }
        };
        if kb.is_empty() || date.is_empty() || source.is_empty() {
            return Err(format!("line {n}: empty kb, release_date or source"));
        }
        if !url.is_empty() && !url.starts_with("https://") && !url.starts_with("http://") {
            return Err(format!(
                "line {n}: source_url {url:?} is not an http(s) address"
            ));
        }
        rows.push(UpdateRow {
            family_build,
            kb: kb_number(kb),
            title: kb.to_string(),
            release_date: date.to_string(),
            min_version,
            confirmed,
            threshold_kind,
            source: source.to_string(),
            source_url: (!url.is_empty()).then(|| url.to_string()),
        });
    }
    Ok(rows)
}

/// The first "KB" followed by digits in `text`, upper-cased: the machine-readable KB of a row.
/// A KB as the table writes it: "5034441", "kb5034441" and "KB5034441" are the same update.
pub fn normalize_kb(text: &str) -> String {
    let trimmed = text.trim();
    kb_number(trimmed)
        .or_else(|| kb_number(&format!("KB{trimmed}")))
        .unwrap_or_else(|| trimmed.to_ascii_uppercase())
}

pub fn kb_number(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .find_map(|word| {
            let digits = word.get(2..)?;
            let is_kb = word.get(..2)?.eq_ignore_ascii_case("KB")
                && !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit());
            is_kb.then(|| format!("KB{digits}"))
        })
}

static ACTIVE: OnceLock<UpdateTable> = OnceLock::new();

/// The embedded table (its rows are empty only if the embedded file fails to parse, which a
/// unit test rules out).
pub fn embedded_table() -> UpdateTable {
    UpdateTable::parse(TABLE, "embedded").unwrap_or_else(|_| UpdateTable {
        rows: Vec::new(),
        id: TableId {
            date: None,
            sha256: crate::scan::hex_digest(TABLE.as_bytes()),
            origin: "embedded".to_string(),
        },
    })
}

/// Makes `table` the one every later judgement uses (`--updates FILE`, `WINRE_UPDATES`).
/// Must come before the first use of the table: Err when one is already in use.
pub fn use_table(table: UpdateTable) -> Result<(), String> {
    ACTIVE
        .set(table)
        .map_err(|_| "the update table is already in use; load it before anything else".into())
}

/// Reads and validates a table file for [`use_table`].
pub fn load_table_file(path: &std::path::Path) -> Result<UpdateTable, String> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if meta.len() > MAX_TABLE_BYTES {
        return Err(format!(
            "{shown}: {} bytes, more than the {MAX_TABLE_BYTES} an update table may have",
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    UpdateTable::parse(&text, &shown).map_err(|e| format!("{shown}: {e}"))
}

/// The table in use: the one given to [`use_table`], else the embedded one.
pub fn active_table() -> &'static UpdateTable {
    ACTIVE.get_or_init(embedded_table)
}

/// The date and checksum of the table in use, for `--version` and JSON records.
pub fn table_id() -> &'static TableId {
    &active_table().id
}

/// The rows of the table in use.
pub fn known_updates() -> &'static [UpdateRow] {
    &active_table().rows
}

/// The WinRE build family of an OS or WinRE build: WinRE of Windows 10 2004..22H2 reports 19041,
/// of Windows 11 22H2/23H2 reports 22621, of 24H2/25H2 and Server 2025 reports 26100.
pub fn family_of(build: u32) -> u32 {
    match build {
        19041..=19045 => 19041,
        22621 | 22631 => 22621,
        26100 | 26200 => 26100,
        other => other,
    }
}

/// The known updates of `version`'s build family, oldest first, with whether each is installed.
pub fn updates_for(version: WinreVersion) -> Vec<UpdateStatus> {
    let family = family_of(version.build);
    known_updates()
        .iter()
        .filter(|row| row.family_build == family)
        .map(|row| UpdateStatus {
            kb: row.kb.clone(),
            title: row.title.clone(),
            release_date: row.release_date.clone(),
            min_version: row.min_version,
            installed: row.min_version.map(|min| version >= min),
            confirmed: row.confirmed,
            threshold_kind: row.threshold_kind,
            source: row.source.clone(),
            source_url: row.source_url.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    #[test]
    fn kb_number_finds_the_kb_and_nothing_else() {
        assert_eq!(
            kb_number("KB5034441 (CVE-2024-20666)").as_deref(),
            Some("KB5034441")
        );
        assert_eq!(
            kb_number("Safe OS DU KB5046916 (wrapper KB unconfirmed)").as_deref(),
            Some("KB5046916")
        );
        assert_eq!(kb_number("kb5057589").as_deref(), Some("KB5057589"));
        assert_eq!(
            kb_number("January 2024 cumulative update (no separate WinRE KB)"),
            None
        );
        assert_eq!(kb_number("KB"), None);
    }

    #[test]
    fn embedded_table_parses_and_matches_the_reference() {
        let rows = parse_table(TABLE).unwrap();
        assert_eq!(rows.len(), embedded_table().rows.len());
        assert!(rows.len() >= 44);
        assert_eq!(embedded_table().id.date.as_deref(), Some("2026-12-04"));
        assert_eq!(embedded_table().id.sha256.len(), 64);
        // Only Microsoft-stated rows are confirmed; every URL is a real address.
        assert!(rows
            .iter()
            .filter(|r| r.confirmed)
            .all(|r| r.source.contains("Microsoft")));
        assert!(rows
            .iter()
            .filter_map(|r| r.source_url.as_deref())
            .all(|u| u.starts_with("https://")));
        assert!(!TABLE.contains("/work/") && !TABLE.contains("reference/"));
        let kb = |name: &str| rows.iter().find(|r| r.kb.as_deref() == Some(name)).unwrap();
        assert_eq!(kb("KB5034957").threshold_kind, ThresholdKind::FileVersion);
        assert_eq!(
            kb("KB5046399").min_version.unwrap().to_string(),
            "10.0.20348.2751"
        );
        assert!(kb("KB5046399").confirmed);
        assert_eq!(
            kb("KB5077180").min_version.unwrap().to_string(),
            "10.0.26100.7817"
        );
        assert!(!kb("KB5077180").confirmed);
        assert_eq!(
            kb("KB5034441").min_version.unwrap().to_string(),
            "10.0.19041.3920"
        );
        assert!(kb("KB5034441").confirmed);
        assert_eq!(
            kb("KB5057589").min_version.unwrap().to_string(),
            "10.0.19041.5728"
        );
        assert!(!kb("KB5057589").confirmed, "primary source not retrieved");
        assert_eq!(kb("KB5057588").min_version, None);
        assert_eq!(
            kb("KB5070186").min_version.unwrap().to_string(),
            "10.0.26100.7149"
        );
    }

    #[test]
    fn refuses_malformed_rows() {
        let ok = "19041,KB1,2024,10.0.19041.1,true,wim_version,src,https://example.org/";
        assert_eq!(parse_table(ok).unwrap().len(), 1);
        for bad in [
            "19041,KB1,2024,10.0.19041.1,true,wim_version,src",
            "19041,KB1,2024,10.0.19041,true,wim_version,src,",
            "19041,KB1,2024,10.0.22000.1,true,wim_version,src,",
            "19041,KB1,2024,,maybe,wim_version,src,",
            "19041,KB1,2024,,true,xml,src,",
            "19041,KB1,2024,,true,wim_version,src,/work/shared/notes.md",
        ] {
            assert!(parse_table(bad).is_err(), "{bad}");
        }
        let err = parse_table(&format!(
            "# header\n{ok}\n\n19041,KB2,2024,,x,wim_version,s,\n"
        ))
        .unwrap_err();
        assert!(err.starts_with("line 4: confirmed"), "{err}");
        assert!(parse_table("# comment\n\n").unwrap().is_empty());
    }

    #[test]
    fn judges_installed_per_family() {
        let v: WinreVersion = "10.0.19041.5728".parse().unwrap();
        let status = updates_for(v);
        assert!(status
            .iter()
            .all(|s| s.min_version.is_none_or(|m| m.build == 19041)));
        let get = |name: &str| {
            status
                .iter()
                .find(|s| s.kb.as_deref() == Some(name))
                .unwrap()
        };
        assert_eq!(get("KB5034441").installed, Some(true));
        assert_eq!(get("KB5057589").installed, Some(true));
        assert_eq!(get("KB5087593").installed, None);
        let old = updates_for("10.0.19041.3919".parse().unwrap());
        assert_eq!(
            old.iter()
                .find(|s| s.kb.as_deref() == Some("KB5034441"))
                .unwrap()
                .installed,
            Some(false)
        );
        // Windows 11 23H2 OS builds (22631) share WinRE family 22621.
        assert_eq!(family_of(22631), 22621);
        assert!(!updates_for("10.0.22631.6197".parse().unwrap()).is_empty());
        assert!(updates_for("10.0.99999.1".parse().unwrap()).is_empty());
    }
}

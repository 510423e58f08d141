//! WinRE servicing updates, the minimum WinRE version each leaves behind, and which of them a
//! given WinRE version already has.
//!
//! The table is `data/winre-updates.csv`, embedded at build time and parsed once. A row's
//! `confirmed` is true only when a Microsoft source states its threshold; rows without a
//! published threshold are still listed, with `installed: null`, so reports never guess.

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
    /// Where the row comes from.
    pub source: String,
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
    /// Where the row comes from.
    pub source: String,
}

/// Parses the CSV table (lines starting with `#` and blank lines are skipped).
pub fn parse_table(text: &str) -> Result<Vec<UpdateRow>, String> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i.saturating_add(1);
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [family, kb, date, min, confirmed, source] = fields.as_slice() else {
            return Err(format!("line {n}: {} fields, expected 6", fields.len()));
        };
        let family_build = family
            .parse()
            .map_err(|_| format!("line {n}: family_build {family:?}"))?;
        let min_version = if min.is_empty() {
            None
        } else {
            Some(
                min.parse::<WinreVersion>()
                    .map_err(|e| format!("line {n}: {e}"))?,
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
        if kb.is_empty() || date.is_empty() || source.is_empty() {
            return Err(format!("line {n}: empty kb, release_date or source"));
        }
        rows.push(UpdateRow {
            family_build,
            kb: kb_number(kb),
            title: kb.to_string(),
            release_date: date.to_string(),
            min_version,
            confirmed,
            source: source.to_string(),
        });
    }
    Ok(rows)
}

/// The first "KB" followed by digits in `text`, upper-cased: the machine-readable KB of a row.
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

/// A KB as the user typed it (`KB5057589`, `kb5057589`, `5057589`) in the table's spelling.
pub fn normalize_kb(text: &str) -> String {
    let trimmed = text.trim();
    kb_number(trimmed)
        .or_else(|| kb_number(&format!("KB{trimmed}")))
        .unwrap_or_else(|| trimmed.to_ascii_uppercase())
}

/// The embedded table (empty only if the embedded file fails to parse, which a unit test rules out).
pub fn known_updates() -> &'static [UpdateRow] {
    static ROWS: OnceLock<Vec<UpdateRow>> = OnceLock::new();
    ROWS.get_or_init(|| parse_table(TABLE).unwrap_or_default())
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
            source: row.source.clone(),
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
        assert_eq!(rows.len(), known_updates().len());
        assert!(rows.len() >= 30);
        // Spot checks against winre-facts.md section 1.
        let kb = |name: &str| rows.iter().find(|r| r.kb.as_deref() == Some(name)).unwrap();
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
        assert!(parse_table("19041,KB1,2024,10.0.19041.1,true").is_err());
        assert!(parse_table("19041,KB1,2024,10.0.19041,true,src").is_err());
        assert!(parse_table("19041,KB1,2024,10.0.22000.1,true,src").is_err());
        assert!(parse_table("19041,KB1,2024,,maybe,src").is_err());
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

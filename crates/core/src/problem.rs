//! A finding in a report: a stable machine code beside the sentence for people.
//!
//! The codes are a public contract (README, "Problem codes"): pipelines match on `code`, never on
//! `message`, so a code is never renamed or reused; a new kind of finding gets a new code.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One finding: `{"code": "short_of_space", "message": "partition 4 has ..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// What kind of finding this is.
    pub code: ProblemCode,
    /// One human-readable sentence.
    pub message: String,
}

impl Problem {
    pub fn new(code: ProblemCode, message: impl Into<String>) -> Self {
        Problem {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Declares [`ProblemCode`] from one list: each variant with its JSON name, so the enum, its
/// serde names and [`ProblemCode::as_str`] cannot drift apart. Add new codes at the end.
macro_rules! problem_codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// The kinds of finding, written in JSON as their snake_case names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum ProblemCode {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)*
        }

        impl ProblemCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ProblemCode] = &[$(ProblemCode::$variant),*];

            /// The code as written in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ProblemCode::$variant => $name,)*
                }
            }
        }
    };
}

problem_codes! {
    /// A BitLocker volume winre cannot look inside.
    Bitlocker = "bitlocker",
    /// An NTFS volume (or a file on it) could not be read.
    VolumeUnreadable = "volume_unreadable",
    /// No NTFS volume with `\Windows\System32`.
    NoOsVolume = "no_os_volume",
    /// ReAgent.xml exists but could not be read or parsed.
    ReagentUnreadable = "reagent_unreadable",
    /// The OS volume has no ReAgent.xml.
    NoReagent = "no_reagent",
    /// The BCD store could not be read.
    BcdUnreadable = "bcd_unreadable",
    /// The SOFTWARE hive could not be read.
    SoftwareUnreadable = "software_unreadable",
    /// The registry's WinREVersion is not a version.
    RegistryVersionInvalid = "registry_version_invalid",
    /// Winre.wim was found but could not be read.
    WimUnreadable = "wim_unreadable",
    /// ReAgent.xml points at a partition offset where no partition starts.
    ReagentOffsetMismatch = "reagent_offset_mismatch",
    /// No Winre.wim anywhere.
    WinreNotFound = "winre_not_found",
    /// WinRE is disabled.
    WinreDisabled = "winre_disabled",
    /// Winre.wim is not where ReAgent.xml says.
    WinreElsewhere = "winre_elsewhere",
    /// ReAgent.xml and the BCD name different WinRE entries.
    BcdIdMismatch = "bcd_id_mismatch",
    /// The OS loader has no recoverysequence.
    NoRecoverySequence = "no_recovery_sequence",
    /// The WIM XML and the registry disagree on the WinRE version.
    VersionMismatch = "version_mismatch",
    /// Winre.wim is a sparse file.
    SparseWim = "sparse_wim",
    /// The recovery partition lies before the OS partition.
    RecoveryBeforeOs = "recovery_before_os",
    /// The WinRE volume has less free space than updates need.
    ShortOfSpace = "short_of_space",
    /// The free space of the WinRE volume could not be counted.
    FreeSpaceUnknown = "free_space_unknown",
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_is_code_and_message_and_as_str_matches_serde() {
        let p = Problem::new(ProblemCode::ShortOfSpace, "short");
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"code":"short_of_space","message":"short"}"#
        );
        let back: Problem = serde_json::from_str(r#"{"code":"no_reagent","message":"m"}"#).unwrap();
        assert_eq!(back.code, ProblemCode::NoReagent);
        for &code in ProblemCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert!(code
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }
}

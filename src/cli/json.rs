//! JSON documents on stdout: records stamped with the winre and schema versions, and the one
//! error document a `--json` command prints when it fails.

use std::io::Write;

use serde::Serialize;

use super::exit::Exit;

/// The version of the JSON records' layout (README, "JSON output"): raised when a field changes
/// meaning or goes away, not when one is added.
pub const SCHEMA_VERSION: u32 = 2;

/// This winre's version.
pub const WINRE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A record with `winre_version` and `schema_version` after its own fields.
#[derive(Serialize)]
pub struct Stamped<'a, T: Serialize> {
    #[serde(flatten)]
    pub record: &'a T,
    pub winre_version: &'static str,
    pub schema_version: u32,
}

/// Wraps `record` with the version stamps.
pub fn stamped<T: Serialize>(record: &T) -> Stamped<'_, T> {
    Stamped {
        record,
        winre_version: WINRE_VERSION,
        schema_version: SCHEMA_VERSION,
    }
}

/// The document a failed `--json` command prints:
/// `{"error": {"code": "usage", "message": "..."}, "winre_version": ..., "schema_version": ...}`.
pub fn error_document(exit: Exit, message: &str) -> serde_json::Value {
    serde_json::json!({
        "error": { "code": exit.name(), "message": message },
        "winre_version": WINRE_VERSION,
        "schema_version": SCHEMA_VERSION,
    })
}

/// Prints `value` as one line of JSON on stdout.
pub fn print_line<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_follow_the_record_and_errors_have_a_code() {
        #[derive(Serialize)]
        struct R {
            a: u32,
        }
        let line = serde_json::to_string(&stamped(&R { a: 1 })).unwrap();
        assert_eq!(
            line,
            format!(
                r#"{{"a":1,"winre_version":"{WINRE_VERSION}","schema_version":{SCHEMA_VERSION}}}"#
            )
        );
        let e = error_document(Exit::Usage, "bad");
        assert_eq!(e["error"]["code"], "usage");
        assert_eq!(e["error"]["message"], "bad");
        assert_eq!(e["schema_version"], SCHEMA_VERSION);
    }
}

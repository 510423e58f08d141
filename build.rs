//! Build facts for `winre --version`: the git commit, the build date and the KB table's date
//! and SHA-256. Outside a git checkout (a source tarball) the commit is "unknown"; the build
//! date follows SOURCE_DATE_EPOCH when set, for reproducible builds.

use std::process::Command;

const KB_TABLE: &str = "crates/core/data/winre-updates.csv";

fn main() {
    println!("cargo:rerun-if-changed={KB_TABLE}");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    for path in ["HEAD", "logs/HEAD"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rerun-if-env-changed=WINRE_GIT_COMMIT");
    // A build without .git (docker build, a tarball) may be told its commit.
    let commit = std::env::var("WINRE_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty() && c != "unknown")
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WINRE_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=WINRE_BUILD_DATE={}", build_date());

    let table = std::fs::read_to_string(KB_TABLE).unwrap_or_default();
    // The table's date: its newest release_date (third column).
    let date = table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(',').nth(2))
        .max()
        .unwrap_or("unknown")
        .to_string();
    println!("cargo:rustc-env=WINRE_KB_TABLE_DATE={date}");
    use sha2::Digest;
    let digest = sha2::Sha256::digest(table.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=WINRE_KB_TABLE_SHA256={hex}");
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// YYYY-MM-DD (UTC) of SOURCE_DATE_EPOCH, else of now.
fn build_date() -> String {
    let mut date = Command::new("date");
    date.args(["-u", "+%Y-%m-%d"]);
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        date.arg(format!("--date=@{epoch}"));
    }
    date.output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

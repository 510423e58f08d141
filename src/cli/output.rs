//! Output files: the one overwrite rule (an existing file is refused unless `--force`) and `-`
//! for stdout.

use std::fs::{File, OpenOptions};
use std::path::Path;

use super::exit::{Exit, Failure};

/// Whether `path` means stdout.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// The error for an output file that exists and may not be overwritten (exit 3, refused).
pub fn exists_error(path: &Path) -> anyhow::Error {
    Failure {
        exit: Exit::Refused,
        message: format!("{} exists; pass --force to overwrite it", path.display()),
    }
    .into()
}

/// Refuses `path` when it exists and `force` is not given: checked before any work is done.
pub fn check_new(path: &Path, force: bool) -> anyhow::Result<()> {
    if !force && !is_stdout(path) && path.symlink_metadata().is_ok() {
        return Err(exists_error(path));
    }
    Ok(())
}

/// Creates `path` for writing: a new file, or with `force` one that replaces what is there.
pub fn create(path: &Path, force: bool) -> anyhow::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            exists_error(path)
        } else {
            anyhow::Error::new(e).context(format!("creating {}", path.display()))
        }
    })
}

/// Writes `text` to stdout. A closed pipe (`winre scan ... | head`) comes back as the error
/// main ends quietly on, where `print!` would panic.
pub fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

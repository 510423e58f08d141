//! Differencing chains: from the name a child records for its parent (a qcow2 backing file, a
//! VHD / VHDX parent locator, a VMDK `parentFileNameHint`) to the parent file, opened read-only.
//!
//! qemu-img resolves a relative name against the folder of the image that records it. We do the
//! same, stricter, since the names come from untrusted images: only a plain file name (an
//! optional leading `./` or `.\` allowed) that is a regular file in that same folder, symlinks
//! included only when they stay in it. Absolute names and names reaching into other folders are
//! never followed; the user names such a parent explicitly (`OpenOptions::parents`, nearest
//! first), and every link is still checked by its format (size, VHDX DataWriteGuid, VHD unique
//! id). Loops and chains deeper than [`MAX_CHAIN_DEPTH`] are refused.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{open_in, raw, Disk, Format, OpenOptions};
use crate::{Error, Result};

/// Most images in one chain, the top included. qemu has no fixed limit; real chains (snapshot
/// trees of VMware, Hyper-V checkpoints, libvirt external snapshots) are a few levels deep.
pub const MAX_CHAIN_DEPTH: usize = 64;

/// One parent opened while following a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainLink {
    /// The parent's path, as opened.
    pub path: String,
    /// Its format.
    pub format: Format,
    /// The name the child records for it.
    pub recorded: String,
    /// True when the user named it (`--parent`); false when found from the recorded name.
    pub given: bool,
}

/// Where the image being opened sits in its chain.
#[derive(Debug, Clone, Default)]
pub(crate) struct Chain {
    /// The folder of the image being opened; `None` when it was opened from a byte source
    /// without a path (a URL, a buffer): its parents are then only the given ones.
    dir: Option<PathBuf>,
    /// Parents still to use, nearest first (what the user gave, minus those used above).
    given: Vec<PathBuf>,
    /// Canonical paths of the images opened so far, the top first.
    seen: Vec<PathBuf>,
}

impl Chain {
    /// The chain's top: the image at `path` (or a byte source, `None`).
    pub(crate) fn top(path: Option<&Path>, options: &OpenOptions) -> Self {
        Self {
            dir: path.map(folder_of),
            given: options.parents.clone(),
            seen: path
                .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()))
                .into_iter()
                .collect(),
        }
    }

    /// Opens the parent of the current image. `what` names the link ("qcow2 backing file"),
    /// `names` are the names the child records, best first; `as_raw` opens the parent as raw
    /// instead of by its magic (a qcow2 backing format "raw"). Returns the parent and the chain
    /// below the current image, the parent first.
    pub(crate) fn open_parent(
        &self,
        what: &str,
        names: &[String],
        as_raw: bool,
        options: &OpenOptions,
    ) -> Result<(Disk, Vec<ChainLink>)> {
        let recorded = names
            .first()
            .cloned()
            .unwrap_or_else(|| "(no parent name recorded)".into());
        if self.seen.len() >= MAX_CHAIN_DEPTH {
            return Err(Error::Unsupported(format!(
                "{what} {recorded:?}: the chain is deeper than {MAX_CHAIN_DEPTH} images"
            )));
        }
        let (path, given, rest) = match self.given.split_first() {
            Some((first, rest)) => (first.clone(), true, rest.to_vec()),
            None => (self.resolve(what, &recorded, names)?, false, Vec::new()),
        };
        let canonical = std::fs::canonicalize(&path).map_err(|e| {
            std::io::Error::new(e.kind(), format!("parent {}: {e}", path.display()))
        })?;
        if self.seen.contains(&canonical) {
            return Err(Error::corrupt(
                what,
                0,
                format!(
                    "the chain loops: {} (recorded as {recorded:?}) is already in it",
                    path.display()
                ),
            ));
        }
        let mut seen = self.seen.clone();
        seen.push(canonical);
        let below = Chain {
            dir: Some(folder_of(&path)),
            given: rest,
            seen,
        };
        let parent_options = OpenOptions {
            parents: Vec::new(),
            verify_container: options.verify_container,
        };
        let disk = if as_raw {
            raw::open(&path)?
        } else {
            open_in(&path, &parent_options, &below)?
        };
        let mut chain = vec![ChainLink {
            path: path.display().to_string(),
            format: disk.info.format,
            recorded,
            given,
        }];
        chain.extend(disk.info.chain.iter().cloned());
        Ok((disk, chain))
    }

    /// The file a recorded name leads to under the rules above, or why there is none.
    fn resolve(&self, what: &str, recorded: &str, names: &[String]) -> Result<PathBuf> {
        let needs = |reason: String| Error::NeedsParent {
            format: what.to_string(),
            parent: recorded.to_string(),
            reason,
        };
        let Some(dir) = &self.dir else {
            return Err(needs(
                "the image is not a local file, so no parent is looked for next to it".into(),
            ));
        };
        let mut reason = None;
        for name in names {
            match plain_name(name).and_then(|file| in_folder(dir, file)) {
                Ok(path) => return Ok(path),
                Err(why) => {
                    reason.get_or_insert(why);
                }
            }
        }
        Err(needs(reason.unwrap_or_else(|| {
            "the image records no parent name".into()
        })))
    }
}

/// The path of the nearest parent in `links` (as opened), for notes.
pub(crate) fn parent_path(links: &[ChainLink]) -> &str {
    links.first().map_or("", |link| link.path.as_str())
}

/// The folder a relative name in the image at `path` is resolved against.
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The file name a recorded parent name stands for, when it is a plain name in the child's
/// folder (`base.qcow2`, `./base.qcow2`, `.\base.vhdx`).
fn plain_name(name: &str) -> std::result::Result<&str, String> {
    let name = name.trim_end_matches('\0');
    let windows_drive = name.as_bytes().get(1) == Some(&b':');
    if name.starts_with('/') || name.starts_with('\\') || windows_drive {
        return Err(format!(
            "{name:?} is an absolute path, followed only when the parent is given explicitly"
        ));
    }
    let file = name
        .strip_prefix("./")
        .or_else(|| name.strip_prefix(".\\"))
        .unwrap_or(name);
    if file.is_empty() || file == "." || file == ".." || file.contains(['/', '\\']) {
        return Err(format!(
            "{name:?} is not a file in the image's folder (other folders are not followed)"
        ));
    }
    Ok(file)
}

/// `dir/file`, when it is a regular file that stays in `dir` (a symlink may only point within).
fn in_folder(dir: &Path, file: &str) -> std::result::Result<PathBuf, String> {
    let path = dir.join(file);
    let shown = path.display();
    let target = std::fs::canonicalize(&path).map_err(|e| format!("{shown}: {e}"))?;
    let folder = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if target.parent() != Some(folder.as_path()) {
        return Err(format!(
            "{shown} leads out of the image's folder (to {}), so it is not followed",
            target.display()
        ));
    }
    match std::fs::metadata(&target) {
        Ok(meta) if meta.is_file() => Ok(path),
        Ok(_) => Err(format!("{shown} is not a regular file")),
        Err(e) => Err(format!("{shown}: {e}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_only() {
        assert_eq!(plain_name("base.qcow2").unwrap(), "base.qcow2");
        assert_eq!(plain_name("./base.qcow2").unwrap(), "base.qcow2");
        assert_eq!(plain_name(".\\base.vhdx").unwrap(), "base.vhdx");
        for hostile in [
            "/etc/passwd",
            "\\\\server\\share\\x.vhd",
            "C:\\VMs\\base.vhdx",
            "../base.qcow2",
            "..\\base.vhd",
            "sub/base.qcow2",
            "..",
            "",
        ] {
            assert!(plain_name(hostile).is_err(), "{hostile:?} accepted");
        }
    }
}

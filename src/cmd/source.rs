//! Inputs: a local path, or a URL (`https://`, `http://`, `s3://`, `az://`) read in place with
//! range requests. The one place the CLI turns an input into a `Disk` or a byte source.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use winre_disk::container::{self, Disk, OpenOptions};
use winre_readat::{FileReader, ReadAt};
use winre_remote::{RemoteOptions, RemoteReader};

/// `--parent`: the parents of a differencing image, for every command that reads one.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ParentArgs {
    /// The parent of a differencing disk (qcow2 backing file, VHD / VHDX parent, VMDK parent),
    /// used instead of the one the image names; repeat it for the parent's parent, nearest
    /// first. Needed only where the recorded name is not followed: an absolute path, a file
    /// in another folder, a renamed file.
    #[arg(long = "parent", value_name = "IMAGE")]
    pub parents: Vec<PathBuf>,
}

impl ParentArgs {
    /// The container options these arguments ask for.
    pub fn options(&self) -> OpenOptions {
        OpenOptions {
            parents: self.parents.clone(),
            ..OpenOptions::default()
        }
    }
}

/// A container error with the hint the `--parent` flag gives (for the commands that have it).
pub fn with_parent_hint(error: winre_disk::Error) -> anyhow::Error {
    match error {
        e @ winre_disk::Error::NeedsParent { .. } => {
            anyhow::anyhow!("{e} (give the parent with --parent IMAGE, nearest first)")
        }
        e => anyhow::Error::new(e),
    }
}

/// Options for images given as URLs.
#[derive(clap::Args, Clone, Debug)]
pub struct RemoteArgs {
    /// For URLs: the most one read may take, retries included, in seconds.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// For s3:// URLs: an S3-compatible endpoint (MinIO, Ceph, moto), e.g. http://127.0.0.1:9000.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// For az:// URLs: the blob endpoint; for Azurite http://127.0.0.1:10000/devstoreaccount1.
    #[arg(long, value_name = "URL")]
    pub az_endpoint: Option<String>,
}

impl RemoteArgs {
    fn options(&self) -> RemoteOptions {
        RemoteOptions {
            timeout: self.timeout,
            s3_endpoint: self.s3_endpoint.clone(),
            azure_endpoint: self.az_endpoint.clone(),
            ..RemoteOptions::default()
        }
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(0.1..=86_400.0).contains(&seconds) {
        return Err("the timeout must be between 0.1 and 86400 seconds".into());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// True when `input` is a URL rather than a local path.
pub fn is_remote(input: &Path) -> bool {
    input.to_str().is_some_and(winre_remote::is_remote)
}

/// How `input` is shown in reports and messages: a path as given, a URL redacted.
pub fn label(input: &Path) -> String {
    match input.to_str() {
        Some(text) if winre_remote::is_remote(text) => winre_remote::redact_url(text),
        _ => input.display().to_string(),
    }
}

/// An opened input.
pub struct Opened {
    /// The guest disk.
    pub disk: Disk,
    /// How the input is shown.
    pub label: String,
    /// The remote reader, for its request counters; `None` for a local file.
    pub remote: Option<Arc<RemoteReader>>,
}

/// Opens a URL's object as a byte source.
pub fn open_remote(input: &Path, remote: &RemoteArgs) -> anyhow::Result<Arc<RemoteReader>> {
    let text = input.to_str().unwrap_or_default();
    Ok(Arc::new(RemoteReader::open(text, &remote.options())?))
}

/// A byte source, and its remote reader (for the counters) when it is a URL.
pub type OpenedBytes = (Arc<dyn ReadAt>, Option<Arc<RemoteReader>>);

/// Opens a local file or a URL as a byte source (a WIM for `verify`).
pub fn open_bytes(input: &Path, remote: &RemoteArgs) -> anyhow::Result<OpenedBytes> {
    if is_remote(input) {
        let reader = open_remote(input, remote)?;
        Ok((Arc::clone(&reader) as Arc<dyn ReadAt>, Some(reader)))
    } else {
        let file =
            FileReader::open(input).with_context(|| format!("cannot open {}", input.display()))?;
        Ok((Arc::new(file), None))
    }
}

/// Opens the disk image at `input`, a local path or a URL.
///
/// A local image's chain is followed (see `winre_disk::container::chain`). Over a URL, VMDK
/// and E01 are refused (their extents and segments are separate files, found by name next to
/// the first), and so is a differencing VHD / VHDX or a qcow2 with a backing file unless
/// `options.parents` names local parents.
pub fn open_disk(
    input: &Path,
    options: &OpenOptions,
    remote: &RemoteArgs,
) -> anyhow::Result<Opened> {
    let label = label(input);
    if !is_remote(input) {
        let disk = container::open(input, options)
            .map_err(|e| with_parent_hint(e).context(label.clone()))?;
        return Ok(Opened {
            disk,
            label,
            remote: None,
        });
    }
    let reader = open_remote(input, remote)?;
    let source = Arc::clone(&reader) as Arc<dyn ReadAt>;
    let disk = match container::open_reader(source, options) {
        Ok(disk) => disk,
        Err(winre_disk::Error::Unsupported(_))
            if matches!(
                container::detect(reader.as_ref()),
                Ok(container::Format::Vmdk | container::Format::Ewf)
            ) =>
        {
            anyhow::bail!(
                "{label}: VMDK and E01 images are read from local files only (they may span \
                 several files, found by name): unsupported over a URL; download it, or convert \
                 it to VHD / qcow2 / raw where it is stored"
            )
        }
        Err(winre_disk::Error::NeedsParent { format, parent, .. }) => anyhow::bail!(
            "{label}: {format} with parent {parent:?}: parents are not fetched over a URL; give \
             a local copy with --parent IMAGE, or scan a merged image"
        ),
        Err(e) => return Err(anyhow::Error::new(e).context(label)),
    };
    Ok(Opened {
        disk,
        label,
        remote: Some(reader),
    })
}

/// `--journal FILE` for reader commands: where to look for a `winre resize` journal.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct JournalArgs {
    /// A `winre resize` journal to report on (default: IMAGE.winre-journal, when it exists).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<std::path::PathBuf>,
}

/// What a `winre resize` journal next to a local `image` (or at `journal`) says, and what to
/// run; `None` when there is none. Every reader command shows it: the bytes read may be half
/// of a resize.
pub fn journal_notice(image: &Path, journal: Option<&Path>) -> Option<String> {
    use winre_patch::journal::{self, JournalState};
    if is_remote(image) {
        return None;
    }
    let path = journal.map_or_else(|| journal::default_path(image), Path::to_path_buf);
    if journal.is_none() && !path.is_file() {
        return None;
    }
    let shown = path.display();
    let undo = format!("`winre undo {}`", image.display());
    Some(match journal::read(&path) {
        Err(e) => format!("a winre journal {shown} is there but cannot be read ({e}); run {undo} to see what it holds"),
        Ok(j) => match j.state {
            JournalState::Saving => format!("an incomplete winre journal {shown} is there: a resize stopped while saving regions, before writing the image; run {undo} to confirm and clear it"),
            JournalState::Sealed => format!("an incomplete winre journal {shown} is there: a resize stopped half-way and the image may be partly written; run {undo} before trusting this image"),
            JournalState::Complete => format!("a complete winre journal {shown} is there: this image was resized by winre; {undo} puts the original bytes back"),
            JournalState::Undone => format!("a winre journal {shown} is there: its resize was undone, the image holds its original bytes (the journal can be removed)"),
        },
    })
}

/// Prints [`journal_notice`] on stderr, for commands whose output has no place for it.
pub fn warn_journal(image: &Path, journal: Option<&Path>) {
    if let Some(notice) = journal_notice(image, journal) {
        eprintln!("winre: note: {}: {notice}", image.display());
    }
}

//! `winre scan`: everything an admin or an examiner asks about WinRE in one disk image, read in
//! a few MiB: where it is, whether it is enabled, its version (WIM XML and the registry's claim),
//! the free space of its volume against what updates need, and the known updates it has.
//!
//! Findings that do not stop the scan (a BCD that cannot be read, a version mismatch, too little
//! free space) become `problems` in the report; only an image whose container or partition
//! table cannot be read is an error.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use winre_disk::container::{self, Disk, OpenOptions};
use winre_disk::partition::{Kind, Scheme};
use winre_disk::probe::Filesystem;
use winre_readat::{Counting, ReadAt};
use winre_wim::codec::Compression;

use crate::file_versions::{self, FileVersion};
use crate::filetype;
use crate::history;
use crate::locate::{self, DiskView, FoundBcd, FoundReagent, FoundWim};
use crate::ntfs::state::VolumeState;
use crate::problem::{push, Problem, ProblemCode};
use crate::report::{
    BcdSummary, PartitionSummary, ReadSummary, ReagentSummary, RecoverySpace, ScanReport,
    SourceInfo, TableSummary, VersionSources, WimSummary, WinreReport, WinreStatus,
};
use crate::updates::{self, REQUIRED_FREE_BYTES};
use crate::version::WinreVersion;
use crate::Result;

/// What to do beyond the default scan.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    /// Free bytes the WinRE volume needs (default 262,144,000).
    pub required_free_bytes: u64,
    /// Read the whole Winre.wim to give its SHA-256.
    pub hash: bool,
    /// Read the event logs, servicing state and PowerShell history, and judge each update.
    pub history: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            required_free_bytes: REQUIRED_FREE_BYTES,
            hash: false,
            history: false,
        }
    }
}

/// Opens the image at `path` (any container winre reads) and scans it.
pub fn scan_path(path: &Path, options: &ScanOptions) -> Result<ScanReport> {
    let disk = container::open(path, &OpenOptions::default())?;
    scan_disk(&path.display().to_string(), &disk, options)
}

/// Scans an opened disk; `label` is the path shown in the report.
pub fn scan_disk(label: &str, disk: &Disk, options: &ScanOptions) -> Result<ScanReport> {
    let counting = Arc::new(Counting::new(Arc::clone(&disk.reader)));
    let reader: Arc<dyn ReadAt> = counting.clone();
    let view = DiskView::open(Disk {
        reader,
        info: disk.info.clone(),
    })
    .map_err(|e| match sniff(disk.reader.as_ref()) {
        Some(name) => crate::Error::Unsupported(format!("not a disk image: the file is {name}")),
        None => e,
    })?;
    let mut report = inspect(label, &view, options)?;
    let stats = counting.stats();
    report.stats = ReadSummary {
        bytes_read: stats.bytes,
        read_calls: stats.calls,
        ..ReadSummary::default()
    };
    Ok(report)
}

/// Everything but the read counters.
fn inspect(label: &str, view: &DiskView, options: &ScanOptions) -> Result<ScanReport> {
    let mut problems: Vec<Problem> = Vec::new();
    image_findings(view, &mut problems);
    for part in &view.table.partitions {
        if part.filesystem == Filesystem::Bitlocker {
            problems.push(Problem::new(ProblemCode::Bitlocker, format!(
                "partition {} is BitLocker-encrypted: winre cannot look inside it (unlock it and scan a decrypted image)",
                part.number
            )));
        }
    }
    volume_states(view, &mut problems);
    let os_partitions = view.os_partitions(&mut problems);
    if os_partitions.is_empty() {
        problems.push(Problem::new(
            ProblemCode::NoOsVolume,
            r"no OS volume found (an NTFS partition with \Windows\System32)",
        ));
    }
    let reagent = view.reagent(&os_partitions).unwrap_or_else(|e| {
        problems.push(Problem::new(
            ProblemCode::ReagentUnreadable,
            format!("ReAgent.xml could not be read: {e}"),
        ));
        None
    });
    if reagent.is_none() && !os_partitions.is_empty() {
        problems.push(Problem::new(
            ProblemCode::NoReagent,
            format!("no ReAgent.xml ({}) on the OS volume", locate::REAGENT_PATH),
        ));
    }
    let bcd = view.bcd().unwrap_or_else(|e| {
        problems.push(Problem::new(
            ProblemCode::BcdUnreadable,
            format!("BCD store could not be read: {e}"),
        ));
        None
    });
    let software = view.software_versions(&os_partitions).unwrap_or_else(|e| {
        problems.push(Problem::new(
            ProblemCode::SoftwareUnreadable,
            format!("SOFTWARE hive could not be read: {e}"),
        ));
        None
    });
    if let Some(text) = software
        .as_ref()
        .and_then(|s| s.winre_version_unparsed.as_deref())
    {
        problems.push(Problem::new(
            ProblemCode::RegistryVersionInvalid,
            format!("registry WinREVersion {text:?} is not a version MAJOR.MINOR.BUILD.REVISION"),
        ));
    }
    let registry = software.as_ref().and_then(|s| s.winre_version);

    let found = view.locate(
        reagent.as_ref(),
        bcd.as_ref(),
        &os_partitions,
        &mut problems,
    );
    let (wim, wim_xml, files) = match &found {
        Some(f) => match read_wim(f, options.hash) {
            Ok((summary, version, files)) => (Some(summary), version, files),
            Err(e) => {
                problems.push(Problem::new(
                    ProblemCode::WimUnreadable,
                    format!(
                        "Winre.wim (partition {}, {}) could not be read: {e}",
                        f.partition, f.path
                    ),
                ));
                (None, None, Vec::new())
            }
        },
        None => (None, None, Vec::new()),
    };
    for file in &files {
        // A file whose version cannot be read says so in `files[].error`, not as a problem.
        match (&file.error, file.agrees_with_xml) {
            (None, Some(false)) => problems.push(Problem::new(
                ProblemCode::FileVersionMismatch,
                format!(
                    "version mismatch: {} inside Winre.wim is {}, the WIM XML says {}",
                    file.path,
                    match file.compared {
                        file_versions::ComparedField::FileVersion => file.file_version.as_deref(),
                        file_versions::ComparedField::ProductVersion =>
                            file.product_version.as_deref(),
                    }
                    .unwrap_or("?"),
                    wim_xml.map(|v| v.to_string()).unwrap_or_default()
                ),
            )),
            _ => {}
        }
    }

    let status = match (&found, reagent.as_ref().and_then(|r| r.config.enabled())) {
        (None, _) => WinreStatus::NotFound,
        (Some(_), Some(false)) => WinreStatus::Disabled,
        (Some(f), None) if f.found_by == locate::FoundBy::OsSystem32 => WinreStatus::Disabled,
        (Some(_), _) => WinreStatus::Enabled,
    };
    let version = wim_xml.or(registry);
    judge(
        &mut problems,
        status,
        &found,
        reagent.as_ref(),
        bcd.as_ref(),
        view,
        &os_partitions,
        wim_xml,
        registry,
    );

    let recovery_space = recovery_space(view, &found, status, options, &mut problems);
    let updates = version.map(updates::updates_for).unwrap_or_default();
    let history = options.history.then(|| {
        let winload_version = files
            .iter()
            .find(|f| f.path.contains("winload"))
            .and_then(|f| f.product_version.as_deref())
            .and_then(|v| v.parse().ok());
        history::read_history(
            view,
            &os_partitions,
            history::ImageFacts {
                wim_version: wim_xml,
                winload_version,
                space_shortfall: recovery_space.as_ref().map(|s| s.shortfall),
            },
        )
    });

    Ok(ScanReport {
        source: SourceInfo {
            path: label.to_string(),
            format: format_name(view.disk.info.format).to_string(),
            variant: view.disk.info.variant.clone(),
            disk_size: view.disk.info.virtual_size,
            // A raw image cannot say its sector size; the partition table reader found it.
            sector_size: match view.table.info.scheme {
                Scheme::None => view.disk.info.sector_size,
                _ => view.table.info.sector_size,
            },
            chain: view.disk.info.chain.clone(),
        },
        partition_table: TableSummary {
            scheme: scheme_name(view.table.info.scheme).to_string(),
            disk_guid: view
                .table
                .info
                .disk_guid
                .as_ref()
                .map(|g| g.to_string().to_ascii_lowercase()),
            disk_signature: view.table.info.disk_signature.map(|s| format!("0x{s:08x}")),
        },
        partitions: view
            .table
            .partitions
            .iter()
            .map(partition_summary)
            .collect(),
        os_partitions,
        winre: WinreReport {
            status,
            partition: found.as_ref().map(|f| f.partition),
            path: found.as_ref().map(|f| f.path.clone()),
            found_by: found.as_ref().map(|f| f.found_by.name().to_string()),
            version,
            version_sources: VersionSources {
                wim_xml,
                registry,
                files,
            },
            wim,
            reagent: reagent.as_ref().map(reagent_summary),
            bcd: bcd.as_ref().map(bcd_summary),
        },
        recovery_space,
        updates,
        update_table: updates::table_id().clone(),
        history,
        problems,
        stats: ReadSummary::default(),
    })
}

/// Findings about the image itself: a volume without a table, partitions past the end of a
/// truncated copy, a table with nothing readable in it, a file that is not a disk image.
fn image_findings(view: &DiskView, problems: &mut Vec<Problem>) {
    let disk_len = view.disk.reader.len();
    let table = &view.table;
    if view.is_bare_volume() {
        if let Some(p) = table.partitions.first() {
            push(
                problems,
                ProblemCode::BareVolume,
                format!(
                    "no partition table: the image is one {} volume ({} bytes), listed as partition 1",
                    p.filesystem.name(),
                    p.size_bytes
                ),
            );
        }
        return;
    }
    if table.info.scheme == Scheme::None {
        let mut sector = [0u8; 512];
        let blank = view.disk.reader.read_exact_at(0, &mut sector).is_ok()
            && sector.iter().all(|&b| b == 0);
        match sniff(view.disk.reader.as_ref()) {
            Some(name) => push(
                problems,
                ProblemCode::NotADiskImage,
                format!("not a disk image: the file is {name}"),
            ),
            None if blank => push(
                problems,
                ProblemCode::NoPartitionTable,
                "no partition table and no file system: the first sector is all zeros (a blank disk?)",
            ),
            None => push(
                problems,
                ProblemCode::NoPartitionTable,
                "no partition table and no file system boot sector at the start of the disk: not a disk image winre can read",
            ),
        }
        return;
    }
    for p in &table.partitions {
        let end = p.start_bytes.checked_add(p.size_bytes);
        if end.is_none_or(|end| end > disk_len) {
            push(
                problems,
                ProblemCode::PartitionPastEnd,
                format!(
                    "partition {} (bytes {}..{}) ends past the end of the image ({disk_len} bytes): the image is truncated or the table is wrong",
                    p.number,
                    p.start_bytes,
                    end.map_or_else(|| "overflow".to_string(), |e| e.to_string())
                ),
            );
        }
        // The past-the-end finding of the table reader is the one above.
        for problem in p.problems.iter().filter(|x| !x.contains("past the end")) {
            push(
                problems,
                ProblemCode::PartitionTable,
                format!("partition {}: {problem}", p.number),
            );
        }
    }
    let readable = table
        .partitions
        .iter()
        .any(|p| p.filesystem != Filesystem::Unknown);
    if !readable {
        push(
            problems,
            ProblemCode::NoFilesystem,
            format!(
                "the {} partition table lists {} partition(s), but none holds a file system winre can read",
                scheme_name(table.info.scheme).to_ascii_uppercase(),
                table.partitions.len()
            ),
        );
    }
}

/// What known non-disk file `reader` starts with, if any (a short file is sniffed as far as it
/// goes).
fn sniff(reader: &dyn ReadAt) -> Option<&'static str> {
    let mut head = [0u8; filetype::SNIFF_BYTES];
    let take = usize::try_from(reader.len().min(filetype::SNIFF_BYTES as u64)).unwrap_or(0);
    let head = head.get_mut(..take)?;
    reader.read_exact_at(0, head).ok()?;
    filetype::name_of(head)
}

/// Forensic notes on every NTFS volume left unclean: what winre reads may be older than what
/// Windows holds in memory or in its log.
fn volume_states(view: &DiskView, problems: &mut Vec<Problem>) {
    for part in &view.table.partitions {
        let Ok(Some(volume)) = view.ntfs(part.number) else {
            continue; // not NTFS, or unreadable: reported where it is read
        };
        let n = part.number;
        let state = match VolumeState::read(&volume) {
            Ok(state) => state,
            Err(e) => {
                push(
                    problems,
                    ProblemCode::VolumeUnreadable,
                    format!("partition {n}: the volume's state ($Volume, hiberfil.sys, $LogFile) could not be read: {e}"),
                );
                continue;
            }
        };
        if state.dirty {
            push(
                problems,
                ProblemCode::VolumeDirty,
                format!("partition {n}: the NTFS dirty flag is set ($Volume): the volume was not cleanly unmounted; files read may be older than what Windows last wrote"),
            );
        }
        if let Some(magic) = &state.hibernation {
            push(
                problems,
                ProblemCode::OsHibernated,
                format!("partition {n}: \\hiberfil.sys starts with {magic:?}: Windows is hibernated (or shut down with Fast Startup); what it holds in memory is not on this volume"),
            );
        }
        if let Some(why) = &state.logfile_unclean {
            push(
                problems,
                ProblemCode::LogfileUnclean,
                format!("partition {n}: {why}"),
            );
        }
    }
}

fn scheme_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Gpt => "gpt",
        Scheme::Mbr => "mbr",
        Scheme::None => "none",
    }
}

/// Reads Winre.wim's header and XML in place (and its SHA-256 when asked), and the version
/// resources of winpeshl.exe and winload.efi in image 1 (only image 1's metadata and those two
/// files are read).
fn read_wim(
    found: &FoundWim,
    hash: bool,
) -> Result<(WimSummary, Option<WinreVersion>, Vec<FileVersion>)> {
    let reader = found.file.data_reader()?;
    let wim = winre_wim::Wim::open(&reader)?;
    let info = winre_wim::WimInfo::new(&wim);
    let header = wim.header();
    let version = wim
        .images()
        .first()
        .and_then(|image| image.version)
        .map(|v| WinreVersion::new(v.major, v.minor, v.build, v.spbuild));
    let sha256 = if hash {
        Some(sha256_hex(&reader)?)
    } else {
        None
    };
    let summary = WimSummary {
        size: reader.len(),
        sha256,
        compression: compression_name(header.compression).to_string(),
        solid: info.has_solid_resources,
        chunk_size: header.chunk_size_bytes,
        images: header.image_count,
        integrity_table: header.integrity.is_some(),
        data_runs: found.file.data_runs().len(),
    };
    let files = match file_versions::wim_file_versions(&wim) {
        Ok(files) => files,
        Err(e) => vec![FileVersion {
            path: "image 1".to_string(),
            file_version: None,
            product_version: None,
            file_version_string: None,
            compared: file_versions::ComparedField::FileVersion,
            agrees_with_xml: None,
            error: Some(e),
        }],
    };
    Ok((summary, version, files))
}

/// SHA-256 of everything `reader` holds, read in 1 MiB pieces, as lowercase hex.
pub fn sha256_hex(reader: &dyn ReadAt) -> Result<String> {
    const PIECE: u64 = 1 << 20;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; PIECE as usize];
    let len = reader.len();
    let mut offset = 0u64;
    while offset < len {
        let take = PIECE.min(len.saturating_sub(offset));
        let piece = buf
            .get_mut(..usize::try_from(take).unwrap_or(0))
            .unwrap_or_default();
        reader.read_exact_at(offset, piece)?;
        hasher.update(&*piece);
        offset = offset.saturating_add(take);
    }
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn hex_digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Findings about where WinRE is and what says so.
#[allow(clippy::too_many_arguments)]
fn judge(
    problems: &mut Vec<Problem>,
    status: WinreStatus,
    found: &Option<FoundWim>,
    reagent: Option<&FoundReagent>,
    bcd: Option<&FoundBcd>,
    view: &DiskView,
    os_partitions: &[u32],
    wim_xml: Option<WinreVersion>,
    registry: Option<WinreVersion>,
) {
    match status {
        WinreStatus::NotFound => problems.push(Problem::new(ProblemCode::WinreNotFound, "no Winre.wim found: this system has no working recovery environment")),
        WinreStatus::Disabled => problems.push(Problem::new(ProblemCode::WinreDisabled,
            "WinRE is disabled (ReAgent.xml InstallState 0); updates that service WinRE will not be offered until `reagentc /enable`"
                .to_string(),
        )),
        WinreStatus::Enabled => {}
    }
    if let (Some(f), Some(r)) = (found, reagent) {
        if r.config.enabled() == Some(true) && f.found_by != locate::FoundBy::Reagent {
            problems.push(Problem::new(ProblemCode::WinreElsewhere, format!(
                "ReAgent.xml says WinRE is at {} (partition offset {}), but Winre.wim was found elsewhere ({} on partition {})",
                r.config.location_path.as_deref().unwrap_or(""),
                r.config.location_offset.unwrap_or(0),
                f.path,
                f.partition
            )));
        }
    }
    if let Some(b) = bcd {
        let loader = b
            .winre
            .winre_loader
            .as_ref()
            .map(|l| l.id.to_ascii_lowercase());
        let wanted = reagent
            .and_then(|r| r.config.bcd_id.clone())
            .map(|s| s.to_ascii_lowercase());
        if let (Some(wanted), Some(loader)) = (&wanted, &loader) {
            if wanted.trim_matches(['{', '}']) != loader.trim_matches(['{', '}'])
                && !is_zero_guid(wanted)
            {
                problems.push(Problem::new(ProblemCode::BcdIdMismatch, format!(
                    "ReAgent.xml names BCD entry {wanted}, but the OS loader's recoverysequence is {loader}"
                )));
            }
        }
        if status == WinreStatus::Enabled && b.winre.recovery_sequence.is_empty() {
            problems.push(Problem::new(ProblemCode::NoRecoverySequence, "the default OS loader in the BCD has no recoverysequence: WinRE will not start on boot failure"));
        }
    }
    match (wim_xml, registry) {
        (Some(w), Some(r)) if w != r => problems.push(Problem::new(
            ProblemCode::VersionMismatch,
            format!(
            "version mismatch: Winre.wim's XML says {w}, the registry's WinREVersion claims {r}"
        ),
        )),
        _ => {}
    }
    if let Some(f) = found {
        if f.file.attributes().sparse {
            problems.push(Problem::new(
                ProblemCode::SparseWim,
                format!("{} is a sparse file", f.path),
            ));
        }
        if let (Some(rec), Some(&os)) = (view.partition(f.partition), os_partitions.first()) {
            if rec.kind == Kind::Recovery {
                if let Some(os_part) = view.partition(os) {
                    if rec.start_bytes < os_part.start_bytes {
                        problems.push(Problem::new(ProblemCode::RecoveryBeforeOs, format!(
                            "the recovery partition ({}) lies before the OS partition ({}): Microsoft's resize procedure (KB5028997) needs it right after the OS partition",
                            rec.number, os
                        )));
                    }
                }
            }
        }
    }
}

fn is_zero_guid(text: &str) -> bool {
    text.chars().all(|c| matches!(c, '0' | '-' | '{' | '}'))
}

/// Free space of the volume that holds Winre.wim; for a disabled or missing WinRE, of the
/// recovery partition it would go back to, if there is one.
fn recovery_space(
    view: &DiskView,
    found: &Option<FoundWim>,
    status: WinreStatus,
    options: &ScanOptions,
    problems: &mut Vec<Problem>,
) -> Option<RecoverySpace> {
    let recovery_partition = view
        .table
        .partitions
        .iter()
        .find(|p| p.kind == Kind::Recovery && p.filesystem == Filesystem::Ntfs)
        .map(|p| p.number);
    let number = match (found, status) {
        (Some(f), WinreStatus::Enabled) => f.partition,
        (Some(f), _) => recovery_partition.unwrap_or(f.partition),
        (None, _) => recovery_partition?,
    };
    let free = view.ntfs(number).and_then(|v| match v {
        Some(volume) => volume.free_space().map(Some),
        None => Ok(None),
    });
    match free {
        Ok(Some(space)) => {
            let free = space.free_bytes();
            let shortfall = options.required_free_bytes.saturating_sub(free);
            if shortfall > 0 {
                problems.push(Problem::new(ProblemCode::ShortOfSpace, format!(
                    "partition {number} has {free} bytes free; WinRE updates need {} (short by {shortfall} bytes, {} MiB)",
                    options.required_free_bytes,
                    shortfall.div_ceil(1 << 20)
                )));
            }
            Some(RecoverySpace {
                partition: number,
                size: space.total_bytes(),
                free,
                cluster_size: space.cluster_size,
                required_free: options.required_free_bytes,
                shortfall,
            })
        }
        Ok(None) => None,
        Err(e) => {
            problems.push(Problem::new(
                ProblemCode::FreeSpaceUnknown,
                format!("free space of partition {number} could not be counted: {e}"),
            ));
            None
        }
    }
}

fn partition_summary(p: &winre_disk::partition::Partition) -> PartitionSummary {
    PartitionSummary {
        number: p.number,
        kind: kind_name(p.kind).to_string(),
        type_id: match (&p.type_guid, p.mbr_type) {
            (Some(g), _) => g.to_string().to_ascii_lowercase(),
            (None, Some(t)) => format!("0x{t:02x}"),
            (None, None) => String::new(),
        },
        start: p.start_bytes,
        size: p.size_bytes,
        attributes: p.attributes.map(|a| format!("0x{a:016x}")),
        name: p.name.clone().filter(|n| !n.is_empty()),
        filesystem: p.filesystem.name().to_string(),
    }
}

fn reagent_summary(r: &FoundReagent) -> ReagentSummary {
    ReagentSummary {
        install_state: r.config.install_state,
        location_path: r.config.location_path.clone(),
        location_offset: r.config.location_offset,
        bcd_id: r.config.bcd_id.clone(),
        found_at: format!("partition {}:{}", r.partition, r.path),
    }
}

fn bcd_summary(b: &FoundBcd) -> BcdSummary {
    BcdSummary {
        found_at: format!("partition {}:{}", b.partition, b.path),
        recovery_sequence: b.winre.recovery_sequence.clone(),
        ramdisk_path: locate::ramdisk(&b.winre).map(|(_, path)| path),
    }
}

pub(crate) fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Esp => "esp",
        Kind::Msr => "msr",
        Kind::BasicData => "basic_data",
        Kind::Recovery => "recovery",
        Kind::Ldm => "ldm",
        Kind::Extended => "extended",
        Kind::Other => "other",
    }
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Xpress => "xpress",
        Compression::Lzx => "lzx",
        Compression::Lzms => "lzms",
    }
}

fn format_name(f: container::Format) -> &'static str {
    match f {
        container::Format::Raw => "raw",
        container::Format::Vhd => "vhd",
        container::Format::Vhdx => "vhdx",
        container::Format::Vmdk => "vmdk",
        container::Format::Qcow2 => "qcow2",
        container::Format::Ewf => "ewf",
    }
}

/// A disk with its Winre.wim found, for `winre extract`.
#[derive(Debug)]
pub struct LocatedWinre {
    /// The disk and its volumes.
    pub view: DiskView,
    /// Winre.wim.
    pub wim: FoundWim,
    /// ReAgent.xml, when the OS volume has one.
    pub reagent: Option<FoundReagent>,
}

/// Opens the image at `path` and finds its Winre.wim as the scan does; [`crate::Error::NotFound`]
/// when there is none.
pub fn locate_path(path: &Path) -> Result<LocatedWinre> {
    let disk = container::open(path, &OpenOptions::default())?;
    locate_disk(&path.display().to_string(), disk)
}

/// [`locate_path`] for an opened disk; `label` names it in the error.
pub fn locate_disk(label: &str, disk: Disk) -> Result<LocatedWinre> {
    let view = DiskView::open(disk)?;
    let mut problems: Vec<Problem> = Vec::new();
    let os_partitions = view.os_partitions(&mut problems);
    let reagent = view.reagent(&os_partitions).ok().flatten();
    let bcd = view.bcd().ok().flatten();
    let wim = view
        .locate(
            reagent.as_ref(),
            bcd.as_ref(),
            &os_partitions,
            &mut problems,
        )
        .ok_or_else(|| {
            let mut message = format!("no Winre.wim in {label}");
            for p in &problems {
                message.push_str("; ");
                message.push_str(&p.message);
            }
            crate::Error::NotFound(message)
        })?;
    Ok(LocatedWinre { view, wim, reagent })
}

/// What `winre check` requires of an image.
#[derive(Debug, Clone, Default)]
pub struct Requirement {
    /// WinRE must be at least this version.
    pub min_version: Option<WinreVersion>,
    /// WinRE must have this update (its minimum version, for WinRE's build family).
    pub kb: Option<String>,
    /// The WinRE volume must have this many bytes free (`None`: do not check).
    pub min_free_bytes: Option<u64>,
    /// With `kb`: the update's verdict (the report's `history`) must be `installed`.
    pub require_installed: bool,
}

/// The reasons `report` fails `requirement`, one sentence each; empty when it passes.
pub fn check(report: &ScanReport, requirement: &Requirement) -> Vec<String> {
    let mut reasons: Vec<String> = report
        .problems
        .iter()
        .filter(|p| p.code.scan_exit_code().is_some())
        .map(|p| p.message.clone())
        .collect();
    match report.winre.status {
        WinreStatus::NotFound => reasons.push("no Winre.wim found".to_string()),
        WinreStatus::Disabled => reasons.push("WinRE is disabled".to_string()),
        WinreStatus::Enabled => {}
    }
    let version = report.winre.version;
    if let Some(min) = requirement.min_version {
        match version {
            Some(v) if v >= min => {}
            Some(v) => reasons.push(format!("WinRE version {v} is older than {min}")),
            None => reasons.push(format!("WinRE version unknown; {min} required")),
        }
    }
    if let Some(kb) = &requirement.kb {
        let wanted = updates::normalize_kb(kb);
        match report
            .updates
            .iter()
            .find(|u| u.kb.as_deref() == Some(&wanted))
        {
            Some(u) => match (u.installed, u.min_version) {
                (Some(true), _) => {}
                (Some(false), Some(min)) => reasons.push(format!(
                    "{wanted} is not installed: WinRE is {}, the update brings it to {min}",
                    version
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "of unknown version".to_string())
                )),
                _ => reasons.push(format!(
                    "{wanted}: its minimum WinRE version is not known, so it cannot be checked"
                )),
            },
            None => {
                let known = updates::known_updates()
                    .iter()
                    .find(|u| u.kb.as_deref() == Some(&wanted));
                match (known, version) {
                    (Some(row), Some(v)) => reasons.push(format!(
                        "{wanted} is for WinRE build family {}, this WinRE is build {}",
                        row.family_build, v.build
                    )),
                    (Some(_), None) => reasons.push(format!("{wanted}: WinRE version unknown")),
                    (None, _) => {
                        reasons.push(format!("{wanted} is not in winre's table of WinRE updates"))
                    }
                }
            }
        }
    }
    if let (Some(kb), true) = (&requirement.kb, requirement.require_installed) {
        let wanted = updates::kb_number(kb.trim())
            .or_else(|| updates::kb_number(&format!("KB{}", kb.trim())))
            .unwrap_or_default();
        let verdict = report
            .history
            .as_ref()
            .and_then(|h| h.verdicts.iter().find(|v| v.kb.as_deref() == Some(&wanted)));
        match verdict {
            Some(v) if v.verdict == history::verdict::Verdict::Installed => {}
            Some(v) => reasons.push(format!(
                "{wanted}: the verdict is {}, not installed ({})",
                v.verdict.name(),
                v.evidence.join("; ")
            )),
            None if report.history.is_none() => {
                reasons.push(format!("{wanted}: no history was read to judge it"))
            }
            None => {}
        }
    }
    if let Some(min_free) = requirement.min_free_bytes {
        match &report.recovery_space {
            Some(space) if space.free >= min_free => {}
            Some(space) => reasons.push(format!(
                "partition {} has {} bytes free, {min_free} required (short by {} bytes)",
                space.partition,
                space.free,
                min_free.saturating_sub(space.free)
            )),
            None => reasons.push("no WinRE volume to measure free space on".to_string()),
        }
    }
    reasons
}

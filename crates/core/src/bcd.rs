//! The BCD store (`EFI\Microsoft\Boot\BCD` on the ESP, `\Boot\BCD` on BIOS systems): from the
//! boot manager's default loader to its recoverysequence, the WinRE loader and its ramdisk.
//!
//! The store is a registry hive: `Objects\{GUID}\Description\Type` (REG_DWORD object type) and
//! `Objects\{GUID}\Elements\{element type, 8 hex digits}\Element`. Element types and their data
//! formats: Microsoft BCD WMI reference (BcdLibraryElementTypes, BcdBootMgrElementTypes,
//! BcdOSLoaderElementTypes, BcdDeviceObjectElementTypes, BcdElementType: bits 24..27 = format,
//! 1 device, 2 string, 3 object, 4 object list, 5 integer, 6 boolean). In the hive, strings and
//! objects are REG_SZ, object lists REG_MULTI_SZ, everything else REG_BINARY (booleans 1 byte,
//! integers 8 bytes) — as ReactOS boot/environ/lib/misc/bcd.c reads them.
//!
//! Device elements are binary and undocumented. Their layout here follows ReactOS
//! boot/environ/include/bl.h (BCD_DEVICE_OPTION = options GUID + BL_DEVICE_DESCRIPTOR {type,
//! flags, size, reserved, union}; device types 5 boot, 6 partition, 8 locate; local device type 3
//! ramdisk) and grub4dos/ntloader bcd.c (concrete offsets of a ramdisk/WIM device and of a
//! partition: partition id at +0x10, partition table type at +0x24 (0 GPT, 1 MBR), disk id at
//! +0x28, size 0x48). For MBR disks the partition id starts with the partition's byte offset
//! and the disk id with the disk signature: element offsets 0x20 and 0x38, as Bromium's uXen
//! disklib bcdedit example (ISC) reads them to find the boot volume.

use serde::Serialize;
use winre_hive::{Hive, HiveHealth, Key, ReadAt};

/// The Windows Boot Manager object, {bootmgr}.
pub const BOOTMGR_GUID: &str = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}";
/// BcdLibraryDevice_ApplicationDevice ("device").
pub const ELEM_APPLICATION_DEVICE: u32 = 0x1100_0001;
/// BcdLibraryString_ApplicationPath ("path").
pub const ELEM_APPLICATION_PATH: u32 = 0x1200_0002;
/// BcdLibraryString_Description ("description").
pub const ELEM_DESCRIPTION: u32 = 0x1200_0004;
/// BcdLibraryObjectList_RecoverySequence ("recoverysequence").
pub const ELEM_RECOVERY_SEQUENCE: u32 = 0x1400_0008;
/// BcdLibraryBoolean_AutoRecoveryEnabled ("recoveryenabled").
pub const ELEM_RECOVERY_ENABLED: u32 = 0x1600_0009;
/// BcdOSLoaderDevice_OSDevice ("osdevice").
pub const ELEM_OS_DEVICE: u32 = 0x2100_0001;
/// BcdBootMgrObject_DefaultObject ("default").
pub const ELEM_DEFAULT_OBJECT: u32 = 0x2300_0003;
/// BcdDeviceInteger_SdiDevice ("ramdisksdidevice"), in a device options object.
pub const ELEM_SDI_DEVICE: u32 = 0x3100_0003;
/// BcdDeviceString_SdiPath ("ramdisksdipath"), in a device options object.
pub const ELEM_SDI_PATH: u32 = 0x3200_0004;
/// Device descriptors nest (a ramdisk's file sits on a partition); real ones nest once.
const MAX_DEVICE_DEPTH: u32 = 4;
/// Largest device element read (real ones are well under 1 KiB).
const MAX_DEVICE_BYTES: usize = 64 << 10;

/// Why the BCD store could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BcdError {
    /// The hive itself is unreadable.
    #[error("BCD hive: {0}")]
    Hive(#[from] winre_hive::Error),
    /// The hive is readable but is not a BCD store.
    #[error("not a BCD store: {0}")]
    NotBcd(String),
}

/// A boot device, as a BCD device element describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BcdDevice {
    /// A partition on a GPT or MBR disk (`partition=`).
    Partition {
        /// "gpt", "mbr" or "raw".
        partition_style: String,
        /// GPT: the partition's unique GUID.
        partition_guid: Option<String>,
        /// GPT: the disk GUID.
        disk_guid: Option<String>,
        /// MBR: the partition's starting byte offset on the disk.
        partition_offset_bytes: Option<u64>,
        /// MBR: the disk signature.
        mbr_signature: Option<u32>,
    },
    /// The device the boot manager was loaded from (`boot`).
    Boot,
    /// A RAM disk loaded from an image file (`ramdisk=[parent]path,{options}`).
    Ramdisk {
        /// The image file, e.g. `\Recovery\WindowsRE\Winre.wim`.
        path: String,
        /// The device holding the image file.
        parent: Box<BcdDevice>,
    },
    /// A device type this reader does not decode.
    Other {
        /// The BL_DEVICE_DESCRIPTOR type number.
        device_type: u32,
        /// For block-I/O devices, the local device type.
        local_type: Option<u32>,
    },
}

/// A device element: its device and the options object it names (for a ramdisk, the object
/// holding the SDI file location).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BcdDeviceElement {
    /// The device options object's GUID, when not zero.
    pub options_id: Option<String>,
    /// The device.
    pub device: BcdDevice,
}

/// The WinRE loader object and where its image lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WinreLoader {
    /// The object's GUID (the recoverysequence entry; ReAgent.xml's WinreBCD id).
    pub id: String,
    /// `Description\Type` of the object (0x10200003 = Windows boot loader).
    pub object_type: Option<u32>,
    /// "description", normally "Windows Recovery Environment".
    pub description: Option<String>,
    /// "path", e.g. `\windows\system32\winload.efi`.
    pub path: Option<String>,
    /// The ramdisk image path from "device", e.g. `\Recovery\WindowsRE\Winre.wim`.
    pub ramdisk_path: Option<String>,
    /// "device", decoded.
    pub device: Option<BcdDeviceElement>,
    /// "osdevice", decoded.
    pub os_device: Option<BcdDeviceElement>,
    /// The device options object's "ramdisksdipath", e.g. `\Recovery\WindowsRE\boot.sdi`.
    pub ramdisk_sdi_path: Option<String>,
    /// The device options object's "ramdisksdidevice".
    pub ramdisk_sdi_device: Option<BcdDeviceElement>,
}

/// What the BCD store says about WinRE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BcdWinre {
    /// The boot manager's default loader object ("default").
    pub default_loader: Option<String>,
    /// The default loader's "description".
    pub default_loader_description: Option<String>,
    /// The default loader's "recoverysequence".
    pub recovery_sequence: Vec<String>,
    /// The default loader's "recoveryenabled".
    pub recovery_enabled: Option<bool>,
    /// The first recoverysequence object, decoded.
    pub winre_loader: Option<WinreLoader>,
    /// Whether the hive file is consistent (a dirty BCD may miss recent bcdedit changes).
    pub hive: HiveHealth,
    /// What is missing or odd, in words.
    pub notes: Vec<String>,
}

/// Reads the boot manager's default loader, its recovery sequence and the WinRE loader from an
/// open BCD hive. Missing pieces become `None` plus a note; an unreadable or non-BCD hive is an
/// error.
pub fn read_bcd_winre<R: ReadAt>(hive: &Hive<R>) -> Result<BcdWinre, BcdError> {
    let objects = hive
        .key("Objects")?
        .ok_or_else(|| BcdError::NotBcd("the hive has no Objects key".into()))?;
    let mut notes = Vec::new();
    let mut out = BcdWinre {
        default_loader: None,
        default_loader_description: None,
        recovery_sequence: Vec::new(),
        recovery_enabled: None,
        winre_loader: None,
        hive: hive.health(),
        notes: Vec::new(),
    };
    let Some(bootmgr) = objects.subkey(BOOTMGR_GUID)? else {
        notes.push(format!("no boot manager object {BOOTMGR_GUID}"));
        out.notes = notes;
        return Ok(out);
    };
    out.default_loader = element_string(&bootmgr, ELEM_DEFAULT_OBJECT)?;
    let Some(default_id) = out.default_loader.clone() else {
        notes.push("the boot manager has no default object (element 23000003)".into());
        out.notes = notes;
        return Ok(out);
    };
    let Some(loader) = objects.subkey(&default_id)? else {
        notes.push(format!(
            "the default object {default_id} is not in the store"
        ));
        out.notes = notes;
        return Ok(out);
    };
    out.default_loader_description = element_string(&loader, ELEM_DESCRIPTION)?;
    out.recovery_sequence = element_strings(&loader, ELEM_RECOVERY_SEQUENCE)?;
    out.recovery_enabled = element_bool(&loader, ELEM_RECOVERY_ENABLED)?;
    let Some(winre_id) = out.recovery_sequence.first().cloned() else {
        notes.push(format!(
            "the default loader {default_id} has no recoverysequence (element 14000008)"
        ));
        out.notes = notes;
        return Ok(out);
    };
    match objects.subkey(&winre_id)? {
        None => notes.push(format!(
            "the recoverysequence object {winre_id} is not in the store"
        )),
        Some(obj) => {
            out.winre_loader = Some(read_winre_loader(&objects, &obj, &winre_id, &mut notes)?)
        }
    }
    out.notes = notes;
    Ok(out)
}

/// Reads one loader object by GUID (for example ReAgent.xml's `WinreBCD id`), whether or not
/// the default loader's recoverysequence points at it. `Ok(None)` when the store has no such object.
pub fn read_loader_by_id<R: ReadAt>(
    hive: &Hive<R>,
    id: &str,
) -> Result<(Option<WinreLoader>, Vec<String>), BcdError> {
    let objects = hive
        .key("Objects")?
        .ok_or_else(|| BcdError::NotBcd("the hive has no Objects key".into()))?;
    let mut notes = Vec::new();
    let loader = match objects.subkey(id)? {
        Some(obj) => Some(read_winre_loader(&objects, &obj, id, &mut notes)?),
        None => None,
    };
    Ok((loader, notes))
}

fn read_winre_loader<R: ReadAt>(
    objects: &Key<'_, R>,
    obj: &Key<'_, R>,
    id: &str,
    notes: &mut Vec<String>,
) -> Result<WinreLoader, BcdError> {
    let object_type = match obj
        .path("Description")?
        .map(|d| d.value("Type"))
        .transpose()?
        .flatten()
    {
        Some(v) => v.as_u32().ok(),
        None => None,
    };
    let device = element_device(obj, ELEM_APPLICATION_DEVICE, notes)?;
    let os_device = element_device(obj, ELEM_OS_DEVICE, notes)?;
    let ramdisk_path = match device.as_ref().map(|d| &d.device) {
        Some(BcdDevice::Ramdisk { path, .. }) => Some(path.clone()),
        _ => {
            notes.push(format!("the WinRE loader {id} has no ramdisk device"));
            None
        }
    };
    let mut loader = WinreLoader {
        id: id.to_string(),
        object_type,
        description: element_string(obj, ELEM_DESCRIPTION)?,
        path: element_string(obj, ELEM_APPLICATION_PATH)?,
        ramdisk_path,
        device,
        os_device,
        ramdisk_sdi_path: None,
        ramdisk_sdi_device: None,
    };
    let options = loader.device.as_ref().and_then(|d| d.options_id.clone());
    if let Some(options_id) = options {
        match objects.subkey(&options_id)? {
            Some(opt) => {
                loader.ramdisk_sdi_path = element_string(&opt, ELEM_SDI_PATH)?;
                loader.ramdisk_sdi_device = element_device(&opt, ELEM_SDI_DEVICE, notes)?;
            }
            None => notes.push(format!(
                "the ramdisk options object {options_id} is not in the store"
            )),
        }
    }
    Ok(loader)
}

/// The `Element` value of element `id` of an object, if present.
fn element_value<'h, R: ReadAt>(
    obj: &Key<'h, R>,
    id: u32,
) -> Result<Option<winre_hive::Value<'h, R>>, BcdError> {
    let Some(elem) = obj.path(&format!("Elements\\{id:08x}"))? else {
        return Ok(None);
    };
    Ok(elem.value("Element")?)
}

fn element_string<R: ReadAt>(obj: &Key<'_, R>, id: u32) -> Result<Option<String>, BcdError> {
    Ok(element_value(obj, id)?.map(|v| v.as_string()).transpose()?)
}

fn element_strings<R: ReadAt>(obj: &Key<'_, R>, id: u32) -> Result<Vec<String>, BcdError> {
    Ok(element_value(obj, id)?
        .map(|v| v.as_multi_string())
        .transpose()?
        .unwrap_or_default())
}

fn element_bool<R: ReadAt>(obj: &Key<'_, R>, id: u32) -> Result<Option<bool>, BcdError> {
    let Some(v) = element_value(obj, id)? else {
        return Ok(None);
    };
    let data = v.data()?;
    Ok(data.first().map(|&b| b != 0))
}

fn element_device<R: ReadAt>(
    obj: &Key<'_, R>,
    id: u32,
    notes: &mut Vec<String>,
) -> Result<Option<BcdDeviceElement>, BcdError> {
    let Some(v) = element_value(obj, id)? else {
        return Ok(None);
    };
    let data = v.data()?;
    match parse_device_element(&data) {
        Ok(d) => Ok(Some(d)),
        Err(why) => {
            notes.push(format!("device element {id:08x} of {}: {why}", obj.name()));
            Ok(None)
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)?
        .try_into()
        .ok()
        .map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at.checked_add(8)?)?
        .try_into()
        .ok()
        .map(u64::from_le_bytes)
}

/// Formats a GUID stored in Windows' mixed-endian layout as `{xxxxxxxx-xxxx-...}`.
pub fn guid_string(b: &[u8]) -> Option<String> {
    let b: &[u8; 16] = b.get(..16)?.try_into().ok()?;
    let d1 = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let d2 = u16::from_le_bytes([b[4], b[5]]);
    let d3 = u16::from_le_bytes([b[6], b[7]]);
    Some(format!(
        "{{{d1:08x}-{d2:04x}-{d3:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}}}",
        b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    ))
}

fn nonzero_guid(b: &[u8]) -> Option<String> {
    let g = b.get(..16)?;
    if g.iter().all(|&x| x == 0) {
        None
    } else {
        guid_string(g)
    }
}

/// Decodes a device element's binary data (options GUID + device descriptor).
pub fn parse_device_element(data: &[u8]) -> Result<BcdDeviceElement, String> {
    if data.len() > MAX_DEVICE_BYTES {
        return Err(format!("{} bytes (cap {MAX_DEVICE_BYTES})", data.len()));
    }
    let options = data
        .get(..16)
        .ok_or_else(|| format!("{} bytes, shorter than the options GUID", data.len()))?;
    let descriptor = data.get(16..).unwrap_or(&[]);
    Ok(BcdDeviceElement {
        options_id: nonzero_guid(options),
        device: parse_descriptor(descriptor, 0)?,
    })
}

/// One BL_DEVICE_DESCRIPTOR: type, flags, size (including this 16-byte header), reserved, body.
/// Returns the device and the descriptor's size.
fn parse_descriptor(d: &[u8], depth: u32) -> Result<BcdDevice, String> {
    if depth > MAX_DEVICE_DEPTH {
        return Err(format!(
            "device descriptors nested deeper than {MAX_DEVICE_DEPTH}"
        ));
    }
    let device_type = u32_at(d, 0).ok_or("descriptor shorter than its header")?;
    let size = u32_at(d, 8).ok_or("descriptor shorter than its header")? as usize;
    if size < 16 || size > d.len() {
        return Err(format!("descriptor size {size} outside 16..={}", d.len()));
    }
    let body = d.get(16..size).unwrap_or(&[]);
    match device_type {
        5 => Ok(BcdDevice::Boot),
        6 => parse_partition(body),
        0 => {
            let local_type = u32_at(body, 0).ok_or("block-I/O device without a local type")?;
            if local_type != 3 {
                return Ok(BcdDevice::Other {
                    device_type,
                    local_type: Some(local_type),
                });
            }
            // Ramdisk: local type, image base (8), image size (8), image offset (4), then the file.
            let file = body.get(24..).ok_or("ramdisk descriptor too short")?;
            parse_file(file, depth)
        }
        other => Ok(BcdDevice::Other {
            device_type: other,
            local_type: None,
        }),
    }
}

/// The file a ramdisk is loaded from: version (1), length, type (5), the device holding the
/// file, then its UTF-16 path.
fn parse_file(f: &[u8], depth: u32) -> Result<BcdDevice, String> {
    let len = u32_at(f, 4).ok_or("ramdisk file descriptor too short")? as usize;
    let kind = u32_at(f, 8).ok_or("ramdisk file descriptor too short")?;
    if kind != 5 {
        return Err(format!(
            "ramdisk file descriptor of type {kind}, expected 5"
        ));
    }
    if len < 12 || len > f.len() {
        return Err(format!(
            "ramdisk file descriptor length {len} outside 12..={}",
            f.len()
        ));
    }
    let inner = f.get(12..len).unwrap_or(&[]);
    let parent = parse_descriptor(inner, depth.saturating_add(1))?;
    let inner_size = u32_at(inner, 8).unwrap_or(0) as usize;
    let path_bytes = inner.get(inner_size..).unwrap_or(&[]);
    let path = winre_hive::utf16_strings(path_bytes)
        .into_iter()
        .next()
        .unwrap_or_default();
    if path.is_empty() {
        return Err("ramdisk without an image path".into());
    }
    Ok(BcdDevice::Ramdisk {
        path,
        parent: Box::new(parent),
    })
}

/// A partition device body: partition id (16), disk device type (4), partition table type (4:
/// 0 GPT, 1 MBR, 2 raw), disk id (16).
fn parse_partition(body: &[u8]) -> Result<BcdDevice, String> {
    let style = u32_at(body, 20).ok_or("partition device too short")?;
    let part = body.get(..16).ok_or("partition device too short")?;
    let disk = body.get(24..40).ok_or("partition device too short")?;
    Ok(match style {
        0 => BcdDevice::Partition {
            partition_style: "gpt".into(),
            partition_guid: guid_string(part),
            disk_guid: guid_string(disk),
            partition_offset_bytes: None,
            mbr_signature: None,
        },
        1 => BcdDevice::Partition {
            partition_style: "mbr".into(),
            partition_guid: None,
            disk_guid: None,
            partition_offset_bytes: u64_at(part, 0),
            mbr_signature: u32_at(disk, 0),
        },
        2 => BcdDevice::Partition {
            partition_style: "raw".into(),
            partition_guid: None,
            disk_guid: None,
            partition_offset_bytes: None,
            mbr_signature: None,
        },
        other => {
            return Err(format!(
                "partition table type {other}, expected 0 (GPT), 1 (MBR) or 2 (raw)"
            ))
        }
    })
}

impl From<BcdError> for crate::Error {
    fn from(e: BcdError) -> Self {
        match e {
            BcdError::Hive(winre_hive::Error::Corrupt {
                what,
                offset,
                detail,
            }) => crate::Error::corrupt(format!("BCD hive {what}"), offset, detail),
            BcdError::Hive(winre_hive::Error::Unsupported(m)) => {
                crate::Error::Unsupported(format!("BCD hive: {m}"))
            }
            BcdError::Hive(winre_hive::Error::Io(e)) => crate::Error::Io(e),
            other => crate::Error::corrupt("BCD store", 0, other.to_string()),
        }
    }
}

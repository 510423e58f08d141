//! What a partition is for, from its GPT type GUID or MBR type byte.
//!
//! Sources: UEFI 2.10 section 5.3.3 (the EFI system partition GUID); Microsoft, "PARTITION_INFORMATION_GPT
//! structure" and "PARTITION_INFORMATION_MBR" (winioctl.h: PARTITION_BASIC_DATA_GUID,
//! PARTITION_MSFT_RESERVED_GUID, PARTITION_MSFT_RECOVERY_GUID, PARTITION_LDM_METADATA_GUID,
//! PARTITION_LDM_DATA_GUID, PARTITION_IFS 0x07, PARTITION_LDM 0x42, PARTITION_EXTENDED 0x05,
//! PARTITION_XINT13_EXTENDED 0x0F); 0x27 is the type Windows setup gives a recovery partition on MBR
//! disks; 0xEF is the EFI system partition on MBR; 0x85 is Linux's extended partition.

use serde::Serialize;

use super::gpt::Guid;

/// The role of a partition, as far as Windows recovery cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// EFI system partition (boot manager, BCD).
    Esp,
    /// Microsoft reserved partition (no file system).
    Msr,
    /// Windows basic data (the OS volume, data volumes).
    BasicData,
    /// Windows recovery partition (WinRE).
    Recovery,
    /// Logical Disk Manager (dynamic disk) metadata or data.
    Ldm,
    /// An MBR extended partition: a container for logical partitions.
    Extended,
    /// Anything else.
    Other,
}

/// GPT type GUIDs for the kinds.
pub const ESP_GUID: Guid = Guid::from_fields(
    0xc12a_7328,
    0xf81f,
    0x11d2,
    [0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b],
);
/// Microsoft reserved.
pub const MSR_GUID: Guid = Guid::from_fields(
    0xe3c9_e316,
    0x0b5c,
    0x4db8,
    [0x81, 0x7d, 0xf9, 0x2d, 0xf0, 0x02, 0x15, 0xae],
);
/// Basic data.
pub const BASIC_DATA_GUID: Guid = Guid::from_fields(
    0xebd0_a0a2,
    0xb9e5,
    0x4433,
    [0x87, 0xc0, 0x68, 0xb6, 0xb7, 0x26, 0x99, 0xc7],
);
/// Windows recovery environment.
pub const RECOVERY_GUID: Guid = Guid::from_fields(
    0xde94_bba4,
    0x06d1,
    0x4d40,
    [0xa1, 0x6a, 0xbf, 0xd5, 0x01, 0x79, 0xd6, 0xac],
);
/// LDM metadata.
pub const LDM_METADATA_GUID: Guid = Guid::from_fields(
    0x5808_c8aa,
    0x7e8f,
    0x42e0,
    [0x85, 0xd2, 0xe1, 0xe9, 0x04, 0x34, 0xcf, 0xb3],
);
/// LDM data.
pub const LDM_DATA_GUID: Guid = Guid::from_fields(
    0xaf9b_60a0,
    0x1431,
    0x4f62,
    [0xbc, 0x68, 0x33, 0x11, 0x71, 0x4a, 0x69, 0xad],
);

/// The kind of a GPT partition from its type GUID.
pub fn from_gpt_type(type_guid: &Guid) -> Kind {
    match *type_guid {
        ESP_GUID => Kind::Esp,
        MSR_GUID => Kind::Msr,
        BASIC_DATA_GUID => Kind::BasicData,
        RECOVERY_GUID => Kind::Recovery,
        LDM_METADATA_GUID | LDM_DATA_GUID => Kind::Ldm,
        _ => Kind::Other,
    }
}

/// MBR type bytes that mark an extended partition (a chain of EBRs).
pub fn is_mbr_extended(type_byte: u8) -> bool {
    matches!(type_byte, 0x05 | 0x0f | 0x85)
}

/// The kind of an MBR partition from its type byte.
pub fn from_mbr_type(type_byte: u8) -> Kind {
    match type_byte {
        0xef => Kind::Esp,
        0x07 => Kind::BasicData,
        0x27 => Kind::Recovery,
        0x42 => Kind::Ldm,
        t if is_mbr_extended(t) => Kind::Extended,
        _ => Kind::Other,
    }
}

/// Names of the GPT attribute bits that are set: the three UEFI bits (0..=2) and, for basic data
/// and recovery partitions, Microsoft's bits 60..=63.
pub fn gpt_attribute_names(attributes: u64, kind: Kind) -> Vec<&'static str> {
    let mut names = Vec::new();
    let generic = [
        (0, "platform_required"),
        (1, "no_block_io_protocol"),
        (2, "legacy_bios_bootable"),
    ];
    let microsoft = [
        (60, "read_only"),
        (61, "shadow_copy"),
        (62, "hidden"),
        (63, "no_drive_letter"),
    ];
    for (bit, name) in generic {
        if attributes & (1u64 << bit) != 0 {
            names.push(name);
        }
    }
    if matches!(kind, Kind::BasicData | Kind::Recovery) {
        for (bit, name) in microsoft {
            if attributes & (1u64 << bit) != 0 {
                names.push(name);
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_constants_print_as_their_spec_text() {
        assert_eq!(ESP_GUID.to_string(), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
        assert_eq!(MSR_GUID.to_string(), "e3c9e316-0b5c-4db8-817d-f92df00215ae");
        assert_eq!(
            BASIC_DATA_GUID.to_string(),
            "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"
        );
        assert_eq!(
            RECOVERY_GUID.to_string(),
            "de94bba4-06d1-4d40-a16a-bfd50179d6ac"
        );
        assert_eq!(
            LDM_METADATA_GUID.to_string(),
            "5808c8aa-7e8f-42e0-85d2-e1e90434cfb3"
        );
        assert_eq!(
            LDM_DATA_GUID.to_string(),
            "af9b60a0-1431-4f62-bc68-3311714a69ad"
        );
    }

    #[test]
    fn mbr_types() {
        assert_eq!(from_mbr_type(0x27), Kind::Recovery);
        assert_eq!(from_mbr_type(0x0f), Kind::Extended);
        assert_eq!(from_mbr_type(0x83), Kind::Other);
    }

    #[test]
    fn attribute_names() {
        assert_eq!(
            gpt_attribute_names(0x8000_0000_0000_0001, Kind::Recovery),
            ["platform_required", "no_drive_letter"]
        );
        assert_eq!(
            gpt_attribute_names(1 << 63, Kind::Other),
            Vec::<&str>::new()
        );
    }
}

//! The WIM's XML data: one `<IMAGE INDEX="n">` element per image with its name, counts, times
//! and, for Windows images, the version. Stored as UTF-16LE, normally with a byte order mark.
//!
// Sources: wimlib src/xml.c (`read_wim_xml_data`, `setup_images`, `xml_print_image_info`,
// `parse_number`, `xml_element_get_timestamp`).

use std::collections::HashSet;

use serde::Serialize;

use crate::version::WindowsVersion;
use crate::{Error, Result};

/// Largest XML data we read. Real WIMs hold a few KiB per image; this bounds the memory a
/// hostile header can make us take (the UTF-16 bytes, their UTF-8 copy and the node tree).
pub const MAX_XML_BYTES: u64 = 64 * 1024 * 1024;
/// Most XML nodes we parse (roxmltree's own guard against node floods).
const MAX_XML_NODES: u32 = 4_000_000;

/// A Windows FILETIME (100 ns units since 1601-01-01 UTC), with its UTC rendering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileTime {
    /// The raw value.
    pub filetime: u64,
    /// ISO 8601, seconds precision, e.g. "2026-11-21T22:57:23Z".
    pub utc: String,
}

impl FileTime {
    /// Wraps a raw FILETIME.
    pub fn new(filetime: u64) -> Self {
        Self {
            filetime,
            utc: filetime_to_iso8601(filetime),
        }
    }

    /// Seconds since the Unix epoch (negative before 1970), as wimlib converts it.
    pub fn unix_seconds(&self) -> i64 {
        // u64 / 10^7 < 2^41, and 11644473600 fits: no overflow.
        i64::try_from(self.filetime / 10_000_000)
            .unwrap_or(i64::MAX)
            .saturating_sub(11_644_473_600)
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`). Inputs here are bounded (|days| < 2^37), so i64 arithmetic cannot overflow.
#[allow(clippy::arithmetic_side_effects)]
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(0),
        u32::try_from(day).unwrap_or(0),
    )
}

fn filetime_to_iso8601(filetime: u64) -> String {
    let secs = FileTime {
        filetime,
        utc: String::new(),
    }
    .unix_seconds();
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The WINDOWS/VERSION element's numbers, each absent when missing or not a number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VersionXml {
    /// MAJOR.
    pub major: Option<u64>,
    /// MINOR.
    pub minor: Option<u64>,
    /// BUILD.
    pub build: Option<u64>,
    /// SPBUILD (the UBR).
    pub spbuild: Option<u64>,
    /// SPLEVEL.
    pub splevel: Option<u64>,
}

/// The WINDOWS element of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WindowsXml {
    /// ARCH: 0 x86, 5 ARM, 6 ia64, 9 x86_64, 12 ARM64.
    pub arch: Option<u64>,
    /// ARCH as wimlib names it ("x86_64", ..., "unknown").
    pub arch_name: &'static str,
    /// PRODUCTNAME.
    pub product_name: Option<String>,
    /// EDITIONID, e.g. "WindowsPE".
    pub edition_id: Option<String>,
    /// INSTALLATIONTYPE, e.g. "WindowsPE".
    pub installation_type: Option<String>,
    /// HAL.
    pub hal: Option<String>,
    /// PRODUCTTYPE, e.g. "WinNT".
    pub product_type: Option<String>,
    /// PRODUCTSUITE.
    pub product_suite: Option<String>,
    /// LANGUAGES/LANGUAGE, in order.
    pub languages: Vec<String>,
    /// LANGUAGES/DEFAULT.
    pub default_language: Option<String>,
    /// SYSTEMROOT.
    pub system_root: Option<String>,
    /// VERSION, when present.
    pub version: Option<VersionXml>,
}

/// One image's XML fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageXml {
    /// INDEX attribute, 1-based.
    pub index: u32,
    /// NAME.
    pub name: Option<String>,
    /// DESCRIPTION.
    pub description: Option<String>,
    /// DISPLAYNAME.
    pub display_name: Option<String>,
    /// DISPLAYDESCRIPTION.
    pub display_description: Option<String>,
    /// FLAGS, e.g. "9" or an edition name.
    pub flags: Option<String>,
    /// DIRCOUNT.
    pub dir_count: Option<u64>,
    /// FILECOUNT.
    pub file_count: Option<u64>,
    /// TOTALBYTES.
    pub total_bytes: Option<u64>,
    /// HARDLINKBYTES.
    pub hard_link_bytes: Option<u64>,
    /// CREATIONTIME.
    pub creation_time: Option<FileTime>,
    /// LASTMODIFICATIONTIME.
    pub last_modification_time: Option<FileTime>,
    /// WIMBOOT is set to a non-zero number.
    pub wimboot: bool,
    /// The WINDOWS element, when present.
    pub windows: Option<WindowsXml>,
    /// MAJOR.MINOR.BUILD.SPBUILD, when VERSION has MAJOR, MINOR and BUILD (SPBUILD missing
    /// reads as 0) and each fits in 32 bits.
    pub version: Option<WindowsVersion>,
}

/// The parsed XML data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WimXml {
    /// The root TOTALBYTES (what `wimlib-imagex info` prints as "Size").
    pub total_bytes: Option<u64>,
    /// Images, ordered by index (1, 2, ...).
    pub images: Vec<ImageXml>,
}

/// Decodes UTF-16LE bytes (with or without a byte order mark) into a string. `offset` is the
/// XML's position in the WIM, for messages.
pub fn decode_utf16le(bytes: &[u8], offset: u64) -> Result<String> {
    if !bytes.len().is_multiple_of(2) {
        return Err(Error::corrupt(
            "XML data",
            offset,
            format!("odd size {} for UTF-16LE text", bytes.len()),
        ));
    }
    let units = bytes.chunks_exact(2).map(|p| {
        u16::from_le_bytes([
            p.first().copied().unwrap_or(0),
            p.get(1).copied().unwrap_or(0),
        ])
    });
    let mut text = String::with_capacity(bytes.len() / 2);
    for (i, c) in char::decode_utf16(units).enumerate() {
        let c = c.map_err(|e| {
            let at = offset.saturating_add(u64::try_from(i).unwrap_or(u64::MAX).saturating_mul(2));
            Error::corrupt("XML data", at, format!("invalid UTF-16: {e}"))
        })?;
        text.push(c);
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    // Some writers end the text with a NUL.
    Ok(text.trim_end_matches('\0').to_owned())
}

/// Parses the XML data (UTF-16LE bytes as stored, at `offset` in the WIM). Refuses a root other
/// than `<WIM>`, an encrypted ESD (unsupported), and IMAGE elements whose INDEX attributes are
/// not exactly 1..=n, or whose count differs from the header's `image_count`.
pub fn parse(bytes: &[u8], offset: u64, image_count: u32) -> Result<WimXml> {
    let corrupt = |detail: String| Error::corrupt("XML data", offset, detail);
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_XML_BYTES {
        return Err(corrupt(format!(
            "{} bytes exceeds the limit of {MAX_XML_BYTES}",
            bytes.len()
        )));
    }
    let text = decode_utf16le(bytes, offset)?;
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_XML_NODES,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&text, options)
        .map_err(|e| corrupt(format!("not well-formed XML: {e}")))?;
    let root = doc.root_element();
    if !root.has_tag_name("WIM") {
        return Err(corrupt(format!(
            "root element is <{}>, expected <WIM>",
            root.tag_name().name()
        )));
    }
    if child(root, "ESD")
        .and_then(|esd| child(esd, "ENCRYPTED"))
        .is_some()
    {
        return Err(Error::Unsupported("encrypted ESD file".into()));
    }
    let mut images: Vec<(u32, roxmltree::Node)> = Vec::new();
    // Up to 65,535 images: a set keeps the duplicate check linear.
    let mut seen = HashSet::new();
    for node in root.children().filter(|n| n.has_tag_name("IMAGE")) {
        let index = node
            .attribute("INDEX")
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|&i| i >= 1 && i <= image_count)
            .ok_or_else(|| {
                corrupt(format!(
                    "IMAGE element with INDEX {:?}, expected 1..={image_count}",
                    node.attribute("INDEX").unwrap_or("(missing)")
                ))
            })?;
        if !seen.insert(index) {
            return Err(corrupt(format!("two IMAGE elements with INDEX {index}")));
        }
        images.push((index, node));
    }
    if u64::try_from(images.len()).unwrap_or(u64::MAX) != u64::from(image_count) {
        return Err(corrupt(format!(
            "{} IMAGE elements, but the header says {image_count} images",
            images.len()
        )));
    }
    images.sort_by_key(|(i, _)| *i);
    Ok(WimXml {
        total_bytes: number(child(root, "TOTALBYTES")),
        images: images
            .into_iter()
            .map(|(index, node)| image(index, node))
            .collect(),
    })
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|n| n.has_tag_name(name))
}

/// The element's text: its text children concatenated (wimlib reads the element's text nodes).
fn text(node: Option<roxmltree::Node>) -> Option<String> {
    let node = node?;
    let s: String = node
        .children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect();
    Some(s)
}

/// A decimal number, like wimlib's `parse_number(.., 10)`; None when absent or not a number.
fn number(node: Option<roxmltree::Node>) -> Option<u64> {
    let s = text(node)?;
    let s = s.trim();
    s.strip_prefix('+').unwrap_or(s).parse().ok()
}

/// A hexadecimal number with an optional 0x prefix.
fn hex_number(node: Option<roxmltree::Node>) -> Option<u64> {
    let s = text(node)?;
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(s, 16).ok()
}

/// HIGHPART and LOWPART hex numbers into a FILETIME.
fn timestamp(node: Option<roxmltree::Node>) -> Option<FileTime> {
    let node = node?;
    let high = hex_number(child(node, "HIGHPART")).unwrap_or(0);
    let low = hex_number(child(node, "LOWPART")).unwrap_or(0);
    Some(FileTime::new((high << 32) | (low & 0xFFFF_FFFF)))
}

/// wimlib's names for PROCESSOR_ARCHITECTURE values.
pub fn arch_name(arch: u64) -> &'static str {
    match arch {
        0 => "x86",
        1 => "MIPS",
        5 => "ARM",
        6 => "ia64",
        9 => "x86_64",
        12 => "ARM64",
        _ => "unknown",
    }
}

fn windows(node: roxmltree::Node) -> WindowsXml {
    let get = |name| text(child(node, name));
    let arch = number(child(node, "ARCH"));
    let langs = child(node, "LANGUAGES");
    WindowsXml {
        arch,
        arch_name: arch_name(arch.unwrap_or(0)),
        product_name: get("PRODUCTNAME"),
        edition_id: get("EDITIONID"),
        installation_type: get("INSTALLATIONTYPE"),
        hal: get("HAL"),
        product_type: get("PRODUCTTYPE"),
        product_suite: get("PRODUCTSUITE"),
        languages: langs
            .map(|l| {
                l.children()
                    .filter(|c| c.has_tag_name("LANGUAGE"))
                    .filter_map(|c| text(Some(c)))
                    .collect()
            })
            .unwrap_or_default(),
        default_language: langs.and_then(|l| text(child(l, "DEFAULT"))),
        system_root: get("SYSTEMROOT"),
        version: child(node, "VERSION").map(|v| VersionXml {
            major: number(child(v, "MAJOR")),
            minor: number(child(v, "MINOR")),
            build: number(child(v, "BUILD")),
            spbuild: number(child(v, "SPBUILD")),
            splevel: number(child(v, "SPLEVEL")),
        }),
    }
}

fn image(index: u32, node: roxmltree::Node) -> ImageXml {
    let windows = child(node, "WINDOWS").map(windows);
    let version = windows
        .as_ref()
        .and_then(|w| w.version.as_ref())
        .and_then(|v| {
            let part = |p: Option<u64>| p.and_then(|n| u32::try_from(n).ok());
            Some(WindowsVersion::new(
                part(v.major)?,
                part(v.minor)?,
                part(v.build)?,
                part(Some(v.spbuild.unwrap_or(0)))?,
            ))
        });
    ImageXml {
        index,
        name: text(child(node, "NAME")),
        description: text(child(node, "DESCRIPTION")),
        display_name: text(child(node, "DISPLAYNAME")),
        display_description: text(child(node, "DISPLAYDESCRIPTION")),
        flags: text(child(node, "FLAGS")),
        dir_count: number(child(node, "DIRCOUNT")),
        file_count: number(child(node, "FILECOUNT")),
        total_bytes: number(child(node, "TOTALBYTES")),
        hard_link_bytes: number(child(node, "HARDLINKBYTES")),
        creation_time: timestamp(child(node, "CREATIONTIME")),
        last_modification_time: timestamp(child(node, "LASTMODIFICATIONTIME")),
        wimboot: number(child(node, "WIMBOOT")).is_some_and(|n| n != 0),
        windows,
        version,
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]
mod tests {
    use super::*;

    fn utf16(s: &str) -> Vec<u8> {
        let mut v = vec![0xFF, 0xFE];
        v.extend(s.encode_utf16().flat_map(u16::to_le_bytes));
        v
    }

    #[test]
    fn reads_windows_fields_and_version() {
        let doc = "<WIM><TOTALBYTES>42</TOTALBYTES><IMAGE INDEX=\"1\"><NAME>Microsoft Windows Recovery Environment (x64)</NAME>\
            <CREATIONTIME><HIGHPART>0x01DD7A0B</HIGHPART><LOWPART>0xAB740508</LOWPART></CREATIONTIME>\
            <WINDOWS><ARCH>9</ARCH><EDITIONID>WindowsPE</EDITIONID><LANGUAGES><LANGUAGE>en-US</LANGUAGE><DEFAULT>en-US</DEFAULT></LANGUAGES>\
            <VERSION><MAJOR>10</MAJOR><MINOR>0</MINOR><BUILD>19041</BUILD><SPBUILD>5728</SPBUILD><SPLEVEL>0</SPLEVEL></VERSION></WINDOWS>\
            </IMAGE></WIM>";
        let xml = parse(&utf16(doc), 0, 1).unwrap();
        assert_eq!(xml.total_bytes, Some(42));
        let img = &xml.images[0];
        assert_eq!(img.version.unwrap().to_string(), "10.0.19041.5728");
        let w = img.windows.as_ref().unwrap();
        assert_eq!(
            (w.arch_name, w.edition_id.as_deref()),
            ("x86_64", Some("WindowsPE"))
        );
        assert_eq!(w.languages, ["en-US"]);
        // 0x01DD7A0BAB740508 is 2026-11-21 22:57:23 UTC (checked with `date -u -d @1795301843`).
        assert_eq!(
            img.creation_time.as_ref().unwrap().utc,
            "2026-11-21T22:57:23Z"
        );
    }

    #[test]
    fn refuses_bad_documents() {
        for (doc, count) in [
            ("<WIM><IMAGE INDEX=\"2\"/></WIM>", 1),
            ("<WIM><IMAGE INDEX=\"1\"/><IMAGE INDEX=\"1\"/></WIM>", 2),
            ("<WIM><IMAGE INDEX=\"1\"/></WIM>", 2),
            ("<WIM><IMAGE/></WIM>", 1),
            ("<NOTWIM/>", 0),
            ("<WIM>", 0),
            ("<!DOCTYPE WIM [<!ENTITY a \"aaaa\">]><WIM>&a;</WIM>", 0),
        ] {
            assert!(
                matches!(parse(&utf16(doc), 0, count), Err(Error::Corrupt { .. })),
                "{doc}"
            );
        }
        assert!(matches!(
            parse(&utf16("<WIM><ESD><ENCRYPTED/></ESD></WIM>"), 0, 0),
            Err(Error::Unsupported(_))
        ));
        assert!(parse(&[0x3C, 0x00, 0x57], 0, 0).is_err());
        assert!(parse(&[0x00, 0xD8, 0x41, 0x00], 0, 0).is_err());
    }

    #[test]
    fn most_images_a_header_allows() {
        // 65,535 images in reverse order come back sorted; one duplicate among them is refused.
        let count = u32::from(u16::MAX);
        let images: String = (1..=count)
            .rev()
            .map(|i| format!("<IMAGE INDEX=\"{i}\"/>"))
            .collect();
        let xml = parse(&utf16(&format!("<WIM>{images}</WIM>")), 0, count).unwrap();
        assert_eq!(xml.images.len(), 65_535);
        assert!(xml.images.iter().zip(1..).all(|(img, i)| img.index == i));
        let doc = format!("<WIM>{images}<IMAGE INDEX=\"7\"/></WIM>");
        let e = parse(&utf16(&doc), 0, count).unwrap_err();
        assert!(
            e.to_string().contains("two IMAGE elements with INDEX 7"),
            "{e}"
        );
    }
}

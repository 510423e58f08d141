//! ReAgent.xml: the WinRE configuration `reagentc` keeps in `%windir%\System32\Recovery\`
//! (a copy may sit next to Winre.wim in `\Recovery\WindowsRE\`).
//!
//! Microsoft does not document the schema; the meanings below come from Microsoft scripts and
//! community tools, as collected in winre-facts.md section 3: `InstallState state` 1 = enabled,
//! 0 = disabled; `WinreBCD id` = the WinRE loader object in the BCD (the OS loader's
//! recoverysequence); `WinreLocation` = folder, partition byte offset and (apparently) disk
//! identifiers of the WinRE image; `ImageLocation` = the staging location. Empty paths and the
//! all-zero GUID are reported as absent.

use serde::Serialize;

/// Largest ReAgent.xml read (real ones are about 2 KiB).
pub const MAX_REAGENT_BYTES: usize = 1 << 20;
const ZERO_GUID: &str = "{00000000-0000-0000-0000-000000000000}";

/// Why a ReAgent.xml could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReagentError {
    /// Not text in a known encoding, not XML, or not a `WindowsRE` document.
    #[error("ReAgent.xml is not valid: {0}")]
    Invalid(String),
    /// An attribute holds something other than what it should.
    #[error("ReAgent.xml <{element} {attribute}=\"{value}\">: {detail}")]
    BadAttribute {
        /// Element name.
        element: String,
        /// Attribute name.
        attribute: String,
        /// The value found (cut to 64 characters).
        value: String,
        /// What was expected.
        detail: String,
    },
}

/// The fields of ReAgent.xml that locate WinRE; `None` where the element or value is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReagentConfig {
    /// `<WindowsRE version>`: "2.0" on Windows 10/11, "1.0" on Windows 8.
    pub schema_version: Option<String>,
    /// `<InstallState state>`: 1 = WinRE enabled, 0 = disabled.
    pub install_state: Option<u32>,
    /// `<WinreBCD id>`: the WinRE loader's GUID in the BCD store.
    pub bcd_id: Option<String>,
    /// `<WinreLocation path>`, e.g. `\Recovery\WindowsRE`.
    pub location_path: Option<String>,
    /// `<WinreLocation id>`: a disk number, or an MBR disk signature (meaning unconfirmed).
    pub location_id: Option<u64>,
    /// `<WinreLocation offset>`: the WinRE partition's starting byte offset on its disk.
    pub location_offset: Option<u64>,
    /// `<WinreLocation guid>`: apparently the GPT disk GUID (meaning unconfirmed).
    pub location_guid: Option<String>,
    /// `<ImageLocation path>` (the staging location).
    pub image_location_path: Option<String>,
    /// `<ImageLocation id>`.
    pub image_location_id: Option<u64>,
    /// `<ImageLocation offset>`.
    pub image_location_offset: Option<u64>,
    /// `<ImageLocation guid>`.
    pub image_location_guid: Option<String>,
    /// `<OsBuildVersion path>` (a build string on Windows 8/8.1, usually empty later).
    pub os_build_version: Option<String>,
}

impl ReagentConfig {
    /// True when `InstallState` says WinRE is enabled.
    pub fn enabled(&self) -> Option<bool> {
        self.install_state.map(|s| s == 1)
    }
}

/// Decodes the file's bytes: UTF-8 with or without BOM, or UTF-16 (LE or BE) with BOM.
fn decode(bytes: &[u8]) -> Result<String, ReagentError> {
    let utf16 = |body: &[u8], le: bool| {
        let units: Vec<u16> = body
            .chunks_exact(2)
            .map(|c| {
                let pair = c.try_into().unwrap_or([0, 0]);
                if le {
                    u16::from_le_bytes(pair)
                } else {
                    u16::from_be_bytes(pair)
                }
            })
            .collect();
        String::from_utf16(&units).map_err(|_| ReagentError::Invalid("bad UTF-16 text".into()))
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8(rest.to_vec())
            .map_err(|e| ReagentError::Invalid(format!("bad UTF-8 text ({e})"))),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        _ => String::from_utf8(bytes.to_vec())
            .map_err(|e| ReagentError::Invalid(format!("bad UTF-8 text ({e})"))),
    }
}

/// Parses ReAgent.xml from its bytes. Refuses files over [`MAX_REAGENT_BYTES`], text that is not
/// XML, a root element other than `WindowsRE`, and numbers that are not numbers.
pub fn parse_reagent(bytes: &[u8]) -> Result<ReagentConfig, ReagentError> {
    if bytes.len() > MAX_REAGENT_BYTES {
        return Err(ReagentError::Invalid(format!(
            "{} bytes (cap {MAX_REAGENT_BYTES})",
            bytes.len()
        )));
    }
    let text = decode(bytes)?;
    let doc =
        roxmltree::Document::parse(&text).map_err(|e| ReagentError::Invalid(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "WindowsRE" {
        return Err(ReagentError::Invalid(format!(
            "root element is <{}>, expected <WindowsRE>",
            root.tag_name().name()
        )));
    }
    let attr = |element: &str, attribute: &str| -> Option<String> {
        root.children()
            .find(|n| n.is_element() && n.tag_name().name() == element)
            .and_then(|n| n.attribute(attribute))
            .map(str::to_string)
    };
    let text_attr =
        |element: &str, attribute: &str| attr(element, attribute).filter(|s| !s.is_empty());
    let guid_attr = |element: &str, attribute: &str| {
        text_attr(element, attribute).filter(|g| !g.eq_ignore_ascii_case(ZERO_GUID))
    };
    let number = |element: &str, attribute: &str| -> Result<Option<u64>, ReagentError> {
        match attr(element, attribute) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ReagentError::BadAttribute {
                    element: element.into(),
                    attribute: attribute.into(),
                    value: v.chars().take(64).collect(),
                    detail: "expected a non-negative decimal number".into(),
                }),
        }
    };
    let install_state = match number("InstallState", "state")? {
        None => None,
        Some(s) => Some(u32::try_from(s).map_err(|_| ReagentError::BadAttribute {
            element: "InstallState".into(),
            attribute: "state".into(),
            value: s.to_string(),
            detail: "out of range".into(),
        })?),
    };
    Ok(ReagentConfig {
        schema_version: root.attribute("version").map(str::to_string),
        install_state,
        bcd_id: guid_attr("WinreBCD", "id"),
        location_path: text_attr("WinreLocation", "path"),
        location_id: number("WinreLocation", "id")?,
        location_offset: number("WinreLocation", "offset")?,
        location_guid: guid_attr("WinreLocation", "guid"),
        image_location_path: text_attr("ImageLocation", "path"),
        image_location_id: number("ImageLocation", "id")?,
        image_location_offset: number("ImageLocation", "offset")?,
        image_location_guid: guid_attr("ImageLocation", "guid"),
        os_build_version: text_attr("OsBuildVersion", "path"),
    })
}

impl From<ReagentError> for crate::Error {
    fn from(e: ReagentError) -> Self {
        crate::Error::corrupt("ReAgent.xml", 0, e.to_string())
    }
}

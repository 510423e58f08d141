//! Rewriting `<WinreLocation offset="...">` in the OS volume's ReAgent.xml, in place: the file
//! keeps its length (a shorter number is followed by spaces between attributes, a longer one
//! takes spaces from between the tag's attributes), so only the bytes of its data runs change
//! and no NTFS metadata does. The result is parsed again and must give the new offset with every
//! other field unchanged.

use winre_core::ntfs::NtfsVolume;
use winre_core::reagent::{parse_reagent, MAX_REAGENT_BYTES};

use crate::bytes::{add, div, mul};
use crate::error::{Error, Result};
use crate::{ntfs, Write};

/// Where ReAgent.xml lives on the OS volume.
pub const REAGENT_PATH: &str = winre_core::locate::REAGENT_PATH;

/// The text encodings Windows writes ReAgent.xml in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Utf16Le,
}

/// The writes (volume-relative) that set the WinreLocation offset of the ReAgent.xml at `path`
/// on `volume` to `new_offset`, or None when the file is absent. Refuses a resident or sparse file
/// and a file whose attribute cannot be rewritten at the same length.
pub fn offset_writes(
    volume: &NtfsVolume,
    path: &str,
    new_offset: u64,
) -> Result<Option<(u64, Vec<Write>)>> {
    let Some(file) = volume.open_file(path)? else {
        return Ok(None);
    };
    let Some(bytes) = volume.read_small_file(path, MAX_REAGENT_BYTES as u64)? else {
        return Ok(None);
    };
    if file.valid_data_length() < file.size() {
        return Err(Error::Unsupported(format!(
            "{path} has a valid data length below its size"
        )));
    }
    let old = parse_reagent(&bytes).map_err(|e| Error::corrupt(path, 0, e.to_string()))?;
    let old_offset = old.location_offset;
    let new_bytes = rewrite(&bytes, new_offset)?;
    let mut check = parse_reagent(&new_bytes)
        .map_err(|e| Error::Verify(format!("rewritten ReAgent.xml does not parse: {e}")))?;
    if check.location_offset != Some(new_offset) {
        return Err(Error::Verify(
            "rewritten ReAgent.xml does not hold the new offset".into(),
        ));
    }
    check.location_offset = old.location_offset;
    if check != old {
        return Err(Error::Verify(
            "rewriting the offset changed other ReAgent.xml fields".into(),
        ));
    }
    if file.is_resident() {
        // The bytes live in the file's MFT record: rewrite the record, fixups and all.
        let mut record = ntfs::read_record_at(
            volume.partition().as_ref(),
            file.record_offset(),
            u64::from(volume.record_size()),
            file.record_number(),
        )?;
        let (at, len) = record.resident_value(ntfs::ATTR_DATA, "")?;
        if len != bytes.len()
            || record.bytes.get(at..at.saturating_add(len)) != Some(bytes.as_slice())
        {
            return Err(Error::corrupt(
                path,
                file.record_offset(),
                "resident value differs from the file as read",
            ));
        }
        record.patch(at, &new_bytes)?;
        let write = Write {
            offset: record.offset,
            bytes: record.encode()?,
        };
        return Ok(Some((old_offset.unwrap_or(0), vec![write])));
    }
    // Map the changed bytes through the data runs.
    let cs = u64::from(volume.cluster_size());
    let mut writes = Vec::new();
    let first = bytes.iter().zip(&new_bytes).position(|(a, b)| a != b);
    let last = bytes.iter().zip(&new_bytes).rposition(|(a, b)| a != b);
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(Some((old_offset.unwrap_or(0), writes)));
    };
    let mut pos = first as u64;
    let end = (last as u64).saturating_add(1);
    while pos < end {
        let vcn = div(pos, cs, "ReAgent.xml")?;
        let run = file
            .data_runs()
            .iter()
            .find(|r| vcn >= r.vcn && vcn < r.vcn.saturating_add(r.clusters))
            .ok_or_else(|| Error::corrupt(path, pos, "no data run covers this byte"))?;
        let lcn = run
            .lcn
            .ok_or_else(|| Error::Unsupported(format!("{path} is sparse")))?;
        let run_end = mul(run.vcn.saturating_add(run.clusters), cs, "ReAgent.xml")?;
        let piece_end = end.min(run_end);
        let in_run = pos.saturating_sub(mul(run.vcn, cs, "ReAgent.xml")?);
        writes.push(Write {
            offset: add(mul(lcn, cs, "ReAgent.xml")?, in_run, "ReAgent.xml")?,
            bytes: new_bytes
                .get(pos as usize..piece_end as usize)
                .unwrap_or_default()
                .to_vec(),
        });
        pos = piece_end;
    }
    Ok(Some((old_offset.unwrap_or(0), writes)))
}

/// The file's bytes with the WinreLocation offset set to `new_offset`, at the same length.
pub fn rewrite(bytes: &[u8], new_offset: u64) -> Result<Vec<u8>> {
    let (encoding, bom) = match bytes {
        [0xFF, 0xFE, ..] => (Encoding::Utf16Le, 2),
        [0xEF, 0xBB, 0xBF, ..] => (Encoding::Utf8, 3),
        [0xFE, 0xFF, ..] => return Err(Error::Unsupported("a UTF-16BE ReAgent.xml".into())),
        _ => (Encoding::Utf8, 0),
    };
    let body = bytes.get(bom..).unwrap_or_default();
    let mut units: Vec<u16> = match encoding {
        Encoding::Utf8 => body.iter().map(|&b| u16::from(b)).collect(),
        Encoding::Utf16Le => body
            .chunks_exact(2)
            .map(|c| {
                u16::from_le_bytes([
                    c.first().copied().unwrap_or(0),
                    c.get(1).copied().unwrap_or(0),
                ])
            })
            .collect(),
    };
    let find = |hay: &[u16], needle: &str, from: usize| -> Option<usize> {
        let n: Vec<u16> = needle.bytes().map(u16::from).collect();
        hay.get(from..)?
            .windows(n.len())
            .position(|w| w == n.as_slice())
            .map(|p| p.saturating_add(from))
    };
    let bad = |detail: &str| Error::Unsupported(format!("rewriting ReAgent.xml: {detail}"));
    let tag = find(&units, "<WinreLocation", 0).ok_or_else(|| bad("no <WinreLocation> element"))?;
    let tag_end = find(&units, ">", tag).ok_or_else(|| bad("<WinreLocation> is not closed"))?;
    let attr = find(&units, " offset=\"", tag)
        .filter(|&a| a < tag_end)
        .ok_or_else(|| bad("no offset attribute"))?;
    let value_start = attr.saturating_add(" offset=\"".len());
    let value_end = find(&units, "\"", value_start)
        .filter(|&e| e < tag_end)
        .ok_or_else(|| bad("offset is not closed"))?;
    let new_digits: Vec<u16> = new_offset.to_string().bytes().map(u16::from).collect();
    let old_len = value_end.saturating_sub(value_start);
    let mut tag_units: Vec<u16> = units.get(tag..tag_end).unwrap_or_default().to_vec();
    let (vs, ve) = (
        value_start.saturating_sub(tag),
        value_end.saturating_sub(tag),
    );
    tag_units.splice(vs..ve, new_digits.iter().copied());
    let new_len = new_digits.len();
    let space = u16::from(b' ');
    if new_len < old_len {
        // Pad after the closing quote: whitespace between attributes.
        let at = vs.saturating_add(new_len).saturating_add(1);
        for _ in new_len..old_len {
            tag_units.insert(at, space);
        }
    } else {
        // Take spaces from runs of two or more between attributes (outside quotes).
        let mut need = new_len.saturating_sub(old_len);
        while need > 0 {
            let mut in_quote = false;
            let mut victim = None;
            for (i, w) in tag_units.windows(2).enumerate() {
                if w.first() == Some(&u16::from(b'"')) {
                    in_quote = !in_quote;
                }
                if !in_quote && w == [space, space] {
                    victim = Some(i);
                    break;
                }
            }
            let Some(i) = victim else {
                return Err(bad(
                    "the new offset is longer and the tag has no spare spaces",
                ));
            };
            tag_units.remove(i);
            need = need.saturating_sub(1);
        }
    }
    units.splice(tag..tag_end, tag_units);
    let mut out = bytes.get(..bom).unwrap_or_default().to_vec();
    match encoding {
        Encoding::Utf8 => out.extend(units.iter().map(|&u| u as u8)),
        Encoding::Utf16Le => out.extend(units.iter().flat_map(|u| u.to_le_bytes())),
    }
    if out.len() != bytes.len() {
        return Err(bad("length changed"));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    const XML: &str = "\u{feff}<?xml version='1.0' encoding='utf-8'?>\r\n<WindowsRE version=\"2.0\">\r\n  <WinreLocation path=\"\\Recovery\\WindowsRE\" id=\"0\" offset=\"290455552\" guid=\"{1cb3eeb3-fd89-4fc4-a7d5-34f852f5aa52}\"/>\r\n  <InstallState state=\"1\"/>\r\n</WindowsRE>\r\n";

    #[test]
    fn same_shorter_and_longer_numbers_keep_the_length() {
        for new in [123456789u64, 1048576, 188570664960] {
            let out = rewrite(XML.as_bytes(), new);
            if new == 188570664960 {
                // No double spaces in that tag: refused rather than changing the length.
                assert!(out.is_err());
                continue;
            }
            let out = out.unwrap();
            assert_eq!(out.len(), XML.len());
            assert_eq!(parse_reagent(&out).unwrap().location_offset, Some(new));
        }
    }

    #[test]
    fn utf16_is_rewritten_in_utf16() {
        let mut bytes = vec![0xFF, 0xFE];
        for u in XML.trim_start_matches('\u{feff}').encode_utf16() {
            bytes.extend(u.to_le_bytes());
        }
        let out = rewrite(&bytes, 290455551).unwrap();
        assert_eq!(out.len(), bytes.len());
        assert_eq!(
            parse_reagent(&out).unwrap().location_offset,
            Some(290455551)
        );
    }
}

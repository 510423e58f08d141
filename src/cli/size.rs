//! Sizes on the command line (`--min-free 250MiB`) and in text output (`250.0 MiB`).

/// Below this a bare number (no unit) is refused as a likely slip: `250` is 250 bytes.
const BARE_NUMBER_MIN: u64 = 1 << 20;

/// A size: a number with B, KiB, MiB, GiB, TiB (K, M, G, T; powers of 1024) or KB, MB, GB, TB
/// (powers of 1000), or a bare number of bytes of at least 1 MiB. Case-insensitive; a space
/// before the unit is allowed. A bare number under 1 MiB is refused with a hint ("did you mean
/// 250MiB?"); write `250B` to mean bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 250MiB, 262144000, 1GiB)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" if number < BARE_NUMBER_MIN => {
            return Err(format!(
            "{number} is {number} bytes: did you mean {number}MiB? (write {number}B to mean bytes)"
        ))
        }
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "tib" | "t" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
            "unknown size unit {other:?} in {text:?} (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
        ))
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Bytes in the largest binary unit that keeps the number at least 1, one decimal (as sgdisk
/// prints them): `512 bytes`, `1 byte`, `250.0 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 if bytes == 1 => "1 byte".to_string(),
        0 => format!("{bytes} bytes"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

/// `count` and the noun, singular or plural: `1 image`, `3 images`.
pub fn plural(count: u64, singular: &str, plural: &str) -> String {
    if count == 1 {
        format!("1 {singular}")
    } else {
        format!("{count} {plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("250MiB"), Ok(262_144_000));
        assert_eq!(parse_size("262144000"), Ok(262_144_000));
        assert_eq!(parse_size("1GiB"), Ok(1_073_741_824));
        assert_eq!(parse_size("250 mib"), Ok(262_144_000));
        assert_eq!(parse_size("250MB"), Ok(250_000_000));
        assert_eq!(parse_size("250B"), Ok(250));
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("250XB").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn a_bare_number_under_1_mib_is_refused_with_a_hint() {
        let e = parse_size("250").unwrap_err();
        assert!(e.contains("did you mean 250MiB?"), "{e}");
        assert!(parse_size("1048575").is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(1), "1 byte");
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(262_144_000), "250.0 MiB");
        assert_eq!(plural(1, "image", "images"), "1 image");
        assert_eq!(plural(0, "image", "images"), "0 images");
    }
}

//! `winre report html`: one self-contained page (inline CSS, JS and SVG; no network, no fonts).
//!
//! Every string that comes from the JSON Lines (image paths, error messages, problems, versions)
//! is hostile input: it passes through [`escape`] and is only ever written as element text or a
//! double-quoted attribute value. The page's Content-Security-Policy forbids all loads and allows
//! only this file's own style and script, by hash, so even an escaping bug could not run script.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::records::{version_key, Row};
use super::summary::Summary;
use crate::cli::size::human;

const CSS: &str = include_str!("report.css");
const JS: &str = include_str!("report.js");

/// The bytes a WinRE update needs when no record says (Microsoft's "250 MB").
const DEFAULT_REQUIRED_FREE: u64 = 262_144_000;

/// Renders the page.
pub fn render(summary: &Summary, rows: &[Row]) -> String {
    let mut h = String::with_capacity(4096 + rows.len() * 600);
    let csp = format!(
        "default-src 'none'; style-src '{}'; script-src '{}'; img-src 'none'; form-action 'none'; base-uri 'none'",
        csp_hash(CSS),
        csp_hash(JS)
    );
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>WinRE fleet report: {} images</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        escape(&csp),
        summary.images
    );
    let _ = writeln!(
        h,
        "<h1>WinRE fleet report</h1>\n<p class=\"sub\">{} images from {} file(s), made by winre {}{}</p>",
        summary.images,
        summary.files,
        env!("CARGO_PKG_VERSION"),
        if summary.malformed_lines > 0 {
            format!("; {} malformed line(s) skipped", summary.malformed_lines)
        } else {
            String::new()
        }
    );
    tiles(&mut h, summary);
    h.push_str("<div class=\"charts\">\n");
    version_chart(&mut h, summary);
    space_chart(&mut h, summary, rows);
    h.push_str("</div>\n");
    updates_table(&mut h, summary);
    failures_table(&mut h, summary);
    images_table(&mut h, rows);
    let _ = write!(h, "<script>{JS}</script>\n</body>\n</html>\n");
    h
}

/// Escapes text for an HTML element or a double-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab and newline have no business in a page.
            c if c.is_control() && c != '\t' && c != '\n' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn csp_hash(text: &str) -> String {
    format!("sha256-{}", base64(&Sha256::digest(text.as_bytes())))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn tiles(h: &mut String, s: &Summary) {
    let status = |k: &str| s.status.get(k).copied().unwrap_or(0);
    let tile = |h: &mut String, class: &str, n: usize, label: &str| {
        let class = if n > 0 { class } else { "" };
        let _ = writeln!(
            h,
            "<div class=\"tile {class}\"><b>{n}</b><span>{label}</span></div>"
        );
    };
    h.push_str("<div class=\"tiles\">\n");
    tile(h, "", s.images, "images");
    tile(h, "good", status("enabled"), "WinRE enabled");
    tile(h, "", status("disabled"), "WinRE disabled");
    tile(h, "bad", status("not_found"), "WinRE not found");
    tile(h, "bad", s.space.short, "short of free space");
    tile(h, "bad", s.errors, "unreadable");
    h.push_str("</div>\n");
}

fn version_chart(h: &mut String, s: &Summary) {
    h.push_str("<div class=\"chart\"><h2>WinRE versions</h2>\n");
    if s.versions.is_empty() {
        h.push_str("<p class=\"none\">No image was scanned.</p></div>\n");
        return;
    }
    let bar_h = 22;
    let height = s.versions.len() * bar_h + 10;
    let max = s
        .versions
        .iter()
        .map(|v| v.images)
        .max()
        .unwrap_or(1)
        .max(1);
    let _ = writeln!(
        h,
        "<svg id=\"versions-chart\" viewBox=\"0 0 600 {height}\" role=\"img\" aria-label=\"images per WinRE version\">"
    );
    for (i, v) in s.versions.iter().enumerate() {
        let y = 5 + i * bar_h;
        let width = 360 * v.images / max;
        let label = escape(v.version.as_deref().unwrap_or("(none)"));
        let fill = if v.version.is_some() {
            "#2f5f98"
        } else {
            "#b7791f"
        };
        let _ = writeln!(
            h,
            "<g><title>{label}: {n} image(s)</title>\
             <text x=\"170\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\
             <rect x=\"180\" y=\"{y}\" width=\"{w}\" height=\"{bh}\" fill=\"{fill}\"/>\
             <text x=\"{tx}\" y=\"{ty}\">{n}</text></g>",
            n = v.images,
            ty = y + 15,
            w = width.max(1),
            bh = bar_h - 6,
            tx = 186 + width.max(1),
        );
    }
    h.push_str("</svg></div>\n");
}

/// A histogram of the WinRE volume's free space: bins of a tenth of the required free space up
/// to twice it, one bin for the rest, and a dashed line at the requirement.
fn space_chart(h: &mut String, s: &Summary, rows: &[Row]) {
    const BINS: usize = 20;
    let required = s.required_free.unwrap_or(DEFAULT_REQUIRED_FREE).max(10);
    let bin_bytes = required / 10;
    let mut counts = [0usize; BINS + 1];
    for row in rows.iter().filter(|r| r.error.is_none()) {
        if let Some(space) = &row.space {
            let bin = usize::try_from(space.free / bin_bytes)
                .unwrap_or(BINS)
                .min(BINS);
            if let Some(c) = counts.get_mut(bin) {
                *c += 1;
            }
        }
    }
    let _ = writeln!(
        h,
        "<div class=\"chart\"><h2>Free space of the WinRE volume (needs {})</h2>",
        escape(&human(required))
    );
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let (left, top, plot_h, bin_w) = (40, 34, 160, 25);
    let _ = writeln!(
        h,
        "<svg id=\"space-chart\" viewBox=\"0 0 600 244\" role=\"img\" aria-label=\"images by free space\">"
    );
    for (i, &n) in counts.iter().enumerate() {
        let bar = plot_h * n / max;
        let x = left + i * bin_w;
        let fill = if i < 10 { "#c4302b" } else { "#2a7d46" };
        let from = bin_bytes * i as u64;
        let range = if i == BINS {
            format!("{} or more", human(from))
        } else {
            format!("{} to {}", human(from), human(from + bin_bytes))
        };
        let _ = writeln!(
            h,
            "<g><title>{}: {n} image(s)</title><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{bar}\" fill=\"{fill}\"/>{label}</g>",
            escape(&range),
            y = top + plot_h - bar,
            w = bin_w - 3,
            label = if n > 0 {
                format!(
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{n}</text>",
                    x + bin_w / 2 - 1,
                    top + plot_h - bar - 3
                )
            } else {
                String::new()
            }
        );
    }
    let axis_y = top + plot_h;
    let line_x = left + 10 * bin_w - 1;
    let _ = writeln!(
        h,
        "<line x1=\"{left}\" y1=\"{axis_y}\" x2=\"{x2}\" y2=\"{axis_y}\" stroke=\"#5b6570\"/>\
         <line x1=\"{line_x}\" y1=\"{top_line}\" x2=\"{line_x}\" y2=\"{axis_y}\" stroke=\"#1b1f24\" stroke-dasharray=\"4 3\"/>\
         <text x=\"{line_tx}\" y=\"{label_y}\">needs {need}</text>",
        x2 = left + (BINS + 1) * bin_w,
        top_line = top - 30,
        line_tx = line_x + 4,
        label_y = top - 20,
        need = escape(&human(required)),
    );
    for (tick, label) in [
        (0, "0".to_string()),
        (10, human(required)),
        (20, human(required * 2)),
    ] {
        let _ = writeln!(
            h,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            left + tick * bin_w,
            axis_y + 16,
            escape(&label)
        );
    }
    let _ = writeln!(
        h,
        "<text x=\"{left}\" y=\"{}\">{} short, {} enough, {} without a WinRE volume</text></svg></div>",
        axis_y + 40,
        s.space.short,
        s.space.enough,
        s.space.no_volume
    );
}

fn updates_table(h: &mut String, s: &Summary) {
    if s.updates.is_empty() {
        return;
    }
    h.push_str(
        "<h2>Updates</h2>\n<table id=\"updates\"><thead><tr><th>update</th><th>released</th>\
         <th class=\"n\">installed</th><th class=\"n\">not installed</th><th class=\"n\">unknown</th></tr></thead><tbody>\n",
    );
    for u in &s.updates {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&u.title),
            escape(&u.release_date),
            u.installed,
            u.not_installed,
            u.unknown
        );
    }
    h.push_str("</tbody></table>\n");
}

fn failures_table(h: &mut String, s: &Summary) {
    let _ = writeln!(h, "<h2>Unreadable images ({})</h2>", s.failures.len());
    if s.failures.is_empty() {
        h.push_str("<p class=\"none\">None.</p>\n");
        return;
    }
    h.push_str(
        "<table id=\"failures\"><thead><tr><th>image</th><th>error</th></tr></thead><tbody>\n",
    );
    for f in &s.failures {
        let _ = writeln!(
            h,
            "<tr><td class=\"path\">{}</td><td>{}</td></tr>",
            escape(&f.path),
            escape(&f.error)
        );
    }
    h.push_str("</tbody></table>\n");
}

/// Columns of the images table: (key for `#sort=`, header, numeric).
const COLUMNS: [(&str, &str, bool); 12] = [
    ("path", "image", false),
    ("format", "format", false),
    ("disk_size", "disk size", true),
    ("status", "WinRE", false),
    ("version", "version", false),
    ("found_by", "found by", false),
    ("free", "free space", true),
    ("shortfall", "shortfall", true),
    ("space", "space", false),
    ("missing", "updates missing", true),
    ("problems", "problems", true),
    ("error", "error", false),
];

fn images_table(h: &mut String, rows: &[Row]) {
    let _ = writeln!(
        h,
        "<h2>Images ({})</h2>\n<table id=\"images\"><thead><tr>",
        rows.len()
    );
    for (key, label, numeric) in COLUMNS {
        let (class, kind) = if numeric {
            (" class=\"n\"", "num")
        } else {
            ("", "text")
        };
        let _ = write!(
            h,
            "<th{class} data-key=\"{key}\" data-type=\"{kind}\"><button type=\"button\">{label}</button></th>"
        );
    }
    h.push_str("</tr></thead><tbody>\n");
    for r in rows {
        let space = r.space.as_ref();
        let missing: Vec<String> = r
            .updates
            .iter()
            .filter(|u| u.installed == Some(false))
            .map(|u| escape(Row::update_name(u)))
            .collect();
        let bytes = |n: Option<u64>| match n {
            Some(n) => format!(
                "<td class=\"n\" data-v=\"{n}\" title=\"{n} bytes\">{}</td>",
                escape(&human(n))
            ),
            None => "<td class=\"n\" data-v=\"\"></td>".into(),
        };
        let text = |s: Option<&str>| format!("<td>{}</td>", escape(s.unwrap_or_default()));
        let status = r.status.as_deref().unwrap_or_default();
        let verdict = r.space_verdict();
        h.push_str("<tr>");
        let _ = write!(h, "<td class=\"path\">{}</td>", escape(&r.path));
        h.push_str(&text(r.format.as_deref()));
        h.push_str(&bytes(r.disk_size));
        let _ = write!(
            h,
            "<td class=\"s-{}\">{}</td>",
            escape(status),
            escape(&status.replace('_', " "))
        );
        match &r.version {
            // Zero-padded parts sort as text in numeric order.
            Some(v) => {
                let key: Vec<String> = version_key(v).iter().map(|p| format!("{p:020}")).collect();
                let _ = write!(h, "<td data-v=\"{}\">{}</td>", key.join("."), escape(v));
            }
            None => h.push_str("<td></td>"),
        }
        h.push_str(&text(r.found_by.as_deref()));
        h.push_str(&bytes(space.map(|s| s.free)));
        h.push_str(&bytes(space.map(|s| s.shortfall)));
        let _ = write!(h, "<td class=\"v-{verdict}\">{verdict}</td>");
        if r.error.is_some() {
            h.push_str("<td class=\"n\" data-v=\"\"></td><td class=\"n\" data-v=\"\"></td>");
        } else {
            let _ = write!(
                h,
                "<td class=\"n\" data-v=\"{}\">{}</td>",
                missing.len(),
                missing.join(",<br>")
            );
            let _ = write!(
                h,
                "<td class=\"n\" data-v=\"{}\" title=\"{}\">{}</td>",
                r.problems.len(),
                escape(&r.problems.join("\n")),
                r.problems.len()
            );
        }
        h.push_str(&text(r.error.as_deref()));
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>\u{0}"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;\u{FFFD}"
        );
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}

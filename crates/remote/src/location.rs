//! The URL forms winre reads, parsed once, and the redacted text shown for them.
//!
//! `https://host/path?query` and `http://...` are read with HTTP range requests (an Azure SAS URL
//! is one of these: its query string is the credential). `s3://bucket/key` and
//! `az://account/container/blob` name an object; their credentials come from the environment.

use url::Url;

use crate::Error;

/// Where a remote image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A plain HTTP(S) URL, query string (e.g. a SAS token) included.
    Http(Url),
    /// An S3 object.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Object key, without a leading `/`.
        key: String,
    },
    /// An Azure blob.
    Azure {
        /// Storage account name.
        account: String,
        /// Container name.
        container: String,
        /// Blob name, without a leading `/`.
        blob: String,
    },
}

/// True when `text` is a URL winre reads remotely rather than a local path.
pub fn is_remote(text: &str) -> bool {
    ["http://", "https://", "s3://", "az://"]
        .iter()
        .any(|scheme| starts_with_ignore_case(text, scheme))
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

impl Location {
    /// Parses one of the URL forms; anything else (or a form missing a part) is an error that
    /// shows the redacted URL.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |detail: &str| Error::BadUrl {
            url: redact_url(text),
            detail: detail.to_string(),
        };
        let url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        match url.scheme() {
            "http" | "https" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(bad("no host"));
                }
                Ok(Self::Http(url))
            }
            "s3" => {
                let bucket = url.host_str().unwrap_or_default().to_string();
                let key = decoded_path(&url).map_err(|d| bad(&d))?;
                if bucket.is_empty() || key.is_empty() {
                    return Err(bad("expected s3://BUCKET/KEY"));
                }
                Ok(Self::S3 { bucket, key })
            }
            "az" => {
                let account = url.host_str().unwrap_or_default().to_string();
                let path = decoded_path(&url).map_err(|d| bad(&d))?;
                let (container, blob) = path.split_once('/').unwrap_or((path.as_str(), ""));
                if account.is_empty() || container.is_empty() || blob.is_empty() {
                    return Err(bad("expected az://ACCOUNT/CONTAINER/BLOB"));
                }
                Ok(Self::Azure {
                    account,
                    container: container.to_string(),
                    blob: blob.to_string(),
                })
            }
            other => Err(bad(&format!(
                "unknown scheme {other:?} (use https://, http://, s3:// or az://)"
            ))),
        }
    }
}

/// The URL's path without its leading `/`, percent-decoded (object keys are plain text).
fn decoded_path(url: &Url) -> Result<String, String> {
    percent_decode(url.path().trim_start_matches('/'))
}

/// Percent-decodes `%XX` sequences; a malformed one is an error rather than a guess.
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i.saturating_add(1)..i.saturating_add(3))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape at byte {i} of the path"))?;
            out.push(hex);
            i = i.saturating_add(3);
        } else {
            out.push(b);
            i = i.saturating_add(1);
        }
    }
    String::from_utf8(out).map_err(|_| "the path is not UTF-8 once decoded".to_string())
}

/// The URL as winre shows it: user name, password and the whole query string (where SAS
/// tokens and presigned signatures live) replaced, so no credential reaches a report or a log.
/// Text that does not parse as a URL loses everything after the first `?` or `#`.
pub fn redact_url(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) => {
            let had_query = url.query().is_some();
            // Setting these cannot fail on the http(s) URLs that can carry them.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            let mut shown = url.to_string();
            if had_query {
                shown.push_str("?REDACTED");
            }
            shown
        }
        Err(_) => {
            let cut = text.find(['?', '#', '@']).unwrap_or(text.len());
            let mut shown = text.get(..cut).unwrap_or_default().to_string();
            if cut < text.len() {
                shown.push_str("?REDACTED");
            }
            shown
        }
    }
}

/// The secret parts of `text` (query string, each query value, password), for scrubbing
/// messages that quote them, longest first so a part inside another is not left behind.
pub(crate) fn secrets_of(text: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Ok(url) = Url::parse(text) {
        if let Some(query) = url.query() {
            secrets.push(query.to_string());
            for (_, value) in url.query_pairs() {
                secrets.push(value.into_owned());
            }
            // Values also appear still percent-encoded inside quoted URLs.
            for pair in query.split('&') {
                if let Some((_, raw)) = pair.split_once('=') {
                    secrets.push(raw.to_string());
                }
            }
        }
        if let Some(password) = url.password() {
            secrets.push(password.to_string());
        }
        if !url.username().is_empty() {
            secrets.push(url.username().to_string());
        }
    }
    // Short values ("r", "2024") are not secrets and would mangle every message.
    secrets.retain(|s| s.len() >= 6);
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            Location::parse("s3://bkt/dir/disk%20one.vhd").unwrap(),
            Location::S3 {
                bucket: "bkt".into(),
                key: "dir/disk one.vhd".into()
            }
        );
        assert_eq!(
            Location::parse("az://acct/vhds/os/disk.vhd").unwrap(),
            Location::Azure {
                account: "acct".into(),
                container: "vhds".into(),
                blob: "os/disk.vhd".into()
            }
        );
        assert!(matches!(
            Location::parse("https://a.blob.core.windows.net/c/d.vhd?sv=1&sig=abc").unwrap(),
            Location::Http(_)
        ));
        assert!(Location::parse("s3://bkt").is_err());
        assert!(Location::parse("az://acct/container").is_err());
        assert!(Location::parse("ftp://x/y").is_err());
        assert!(is_remote("HTTPS://x/y") && is_remote("s3://b/k") && !is_remote("/tmp/s3:"));
    }

    #[test]
    fn redaction_hides_query_and_userinfo() {
        let url =
            "https://user:hunter22@acct.blob.core.windows.net/c/d.vhd?sv=2022&sig=SECRETSIG%2Bx";
        let shown = redact_url(url);
        assert_eq!(shown, "https://acct.blob.core.windows.net/c/d.vhd?REDACTED");
        let secrets = secrets_of(url);
        assert!(secrets.iter().any(|s| s == "SECRETSIG%2Bx"));
        assert!(secrets.iter().any(|s| s == "SECRETSIG+x"));
        assert!(secrets.iter().any(|s| s == "hunter22"));
        assert_eq!(redact_url("not a url?sig=x"), "not a url?REDACTED");
    }
}

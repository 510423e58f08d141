//! Range requests with retries, a deadline and error messages that name the URL without its
//! secrets.
//!
//! Each read of the cache becomes one call here, run to completion on a small shared tokio
//! runtime (`block_on`), so the synchronous `ReadAt` callers never see async. A call is tried up
//! to [`ATTEMPTS`] times with exponential backoff when the failure may pass (a 5xx, 408, 429, a
//! timeout, a dropped or refused connection, a body cut short); a 401, 403, 404 or other 4xx,
//! and a server that ignores `Range`, fail at once. Nothing outlives the timeout: the whole
//! call, retries and backoff included, is cut off when it runs out.

use std::future::Future;
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use tokio::runtime::Runtime;

use crate::cache::{Counters, Fetch};
use crate::store::Target;

/// Tries per call: the first and three retries.
pub(crate) const ATTEMPTS: u32 = 4;
/// The first backoff; doubled after each failed try.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// One runtime for the process: two worker threads carry every image's requests, whatever the
/// number of scan threads blocking on them.
fn runtime() -> io::Result<&'static Runtime> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("winre-remote")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| io::Error::other(format!("cannot start the HTTP runtime: {e}")))
}

/// How a failed request is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// 404: the object is not there.
    NotFound,
    /// 401 or 403: the credentials are missing, wrong, or lack permission.
    Denied(u16),
    /// The server answered a range request with the whole object.
    RangeIgnored,
    /// Another 4xx: retrying will not help.
    Client(u16),
    /// Worth another try.
    Transient,
}

/// An HTTP status quoted in an error's text ("status code: 503 Service Unavailable").
fn quoted_status(text: &str) -> Option<u16> {
    let at = text.find("status code: ")?;
    let digits = text.get(at.saturating_add(13)..at.saturating_add(16))?;
    digits.parse().ok()
}

/// The error and its sources, joined: `object_store` keeps the status and cause in sources.
fn chain_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    let mut depth = 0u32;
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
        depth = depth.saturating_add(1);
        if depth > 16 {
            break;
        }
    }
    text
}

fn classify(error: &object_store::Error, text: &str) -> Failure {
    match error {
        object_store::Error::NotFound { .. } => Failure::NotFound,
        object_store::Error::PermissionDenied { .. } => Failure::Denied(403),
        object_store::Error::Unauthenticated { .. } => Failure::Denied(401),
        _ if text.contains("non-partial response")
            || text.contains("Range request not supported") =>
        {
            Failure::RangeIgnored
        }
        _ => match quoted_status(text) {
            Some(404) => Failure::NotFound,
            Some(s @ (401 | 403)) => Failure::Denied(s),
            Some(408 | 429) => Failure::Transient,
            Some(s) if (400..500).contains(&s) => Failure::Client(s),
            _ => Failure::Transient,
        },
    }
}

/// Range requests to one object.
pub(crate) struct ObjectFetch {
    target: Target,
    /// The URL as shown (redacted).
    shown: String,
    /// Texts to scrub from every message (SAS values, passwords).
    secrets: Vec<String>,
    timeout: Duration,
    counters: Counters,
}

impl ObjectFetch {
    pub(crate) fn new(
        target: Target,
        shown: String,
        secrets: Vec<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            target,
            shown,
            secrets,
            timeout,
            counters: Counters::default(),
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// Replaces every secret in `text`, so no message carries a credential.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            out = out.replace(secret.as_str(), "REDACTED");
        }
        out
    }

    /// The first request: bytes `0..first_bytes` (fewer if the object is shorter) and the
    /// object's size, from the answer's `Content-Range`. One request instead of a HEAD and a
    /// GET, and it works with URLs signed for GET only.
    pub(crate) fn open(&self, first_bytes: u64) -> io::Result<(u64, Vec<u8>)> {
        let what = format!("the first {first_bytes} bytes");
        self.run(&what, || async move {
            let options = GetOptions {
                range: Some(GetRange::Bounded(0..first_bytes)),
                ..GetOptions::default()
            };
            let result = self
                .target
                .store
                .get_opts(&self.target.path, options)
                .await?;
            let size = result.meta.size;
            let bytes = result.bytes().await?;
            Ok((size, bytes.to_vec()))
        })
        .map(|(size, bytes)| {
            self.counters.fetched(bytes.len() as u64);
            (size, bytes)
        })
    }

    /// Runs `request` with the retry policy and the deadline described in the module docs.
    fn run<T, F, Fut>(&self, what: &str, request: F) -> io::Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        let attempts = async {
            let mut backoff = FIRST_BACKOFF;
            let mut tries = 0u32;
            loop {
                tries = tries.saturating_add(1);
                self.counters.request();
                let error = match request().await {
                    Ok(value) => return Ok(value),
                    Err(e) => e,
                };
                let text = self.scrub(&chain_text(&error));
                let failure = classify(&error, &text);
                if failure != Failure::Transient || tries >= ATTEMPTS {
                    return Err(self.error(failure, what, tries, &text));
                }
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
        };
        let deadline = self.timeout;
        runtime()?.block_on(async {
            match tokio::time::timeout(deadline, attempts).await {
                Ok(result) => result,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{}: reading {what}: no complete answer within the {} s timeout (--timeout)",
                        self.shown,
                        deadline.as_secs_f64()
                    ),
                )),
            }
        })
    }

    fn error(&self, failure: Failure, what: &str, tries: u32, detail: &str) -> io::Error {
        let url = &self.shown;
        match failure {
            Failure::NotFound => io::Error::new(
                io::ErrorKind::NotFound,
                format!("{url}: not found (HTTP 404): no such object, or the URL is wrong"),
            ),
            Failure::Denied(status) => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{url}: access denied (HTTP {status}): check the credentials (AWS_* / AZURE_* \
                     environment variables, ~/.aws files) or the SAS token's permissions and expiry"
                ),
            ),
            Failure::RangeIgnored => io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "{url}: the server ignored the Range header (it answered 200 with the whole \
                     object): refused, winre does not download whole disks; use a server that \
                     supports HTTP range requests"
                ),
            ),
            Failure::Client(status) => io::Error::other(format!(
                "{url}: reading {what}: refused with HTTP {status}: {detail}"
            )),
            Failure::Transient => io::Error::other(format!(
                "{url}: reading {what}: failed after {tries} tries: {detail}"
            )),
        }
    }
}

impl Fetch for ObjectFetch {
    fn fetch(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let end = offset.saturating_add(len as u64);
        let what = format!("bytes {offset}..{end}");
        let bytes = self.run(&what, || async move {
            self.target
                .store
                .get_range(&self.target.path, offset..end)
                .await
        })?;
        self.counters.fetched(bytes.len() as u64);
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_read_from_messages() {
        assert_eq!(
            quoted_status("Server returned non-2xx status code: 503 Service Unavailable: "),
            Some(503)
        );
        assert_eq!(quoted_status("connection reset"), None);
    }
}

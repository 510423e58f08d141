//! Disk images where they live: HTTP(S) URLs (range requests; an Azure SAS URL is one),
//! `s3://bucket/key` and `az://account/container/blob`, read through the Apache Arrow
//! `object_store` crate and offered as a synchronous [`ReadAt`] like a local file.
//!
//! A scan reads a few MiB scattered over a disk of tens of GiB, so reads go through a block
//! cache ([`cache`]) that turns them into a few dozen range requests, never a download of the
//! whole object. Requests are retried when the failure may pass, never wait past the timeout,
//! and their errors name the URL with its query string and password replaced ([`redact_url`]).
//!
//! This crate owns the async stack (tokio, reqwest via `object_store`); the rest of winre only
//! sees `ReadAt`.

#![forbid(unsafe_code)]

pub mod cache;
mod error;
mod fetch;
mod location;
mod store;

use std::io;
use std::time::Duration;

use winre_readat::ReadAt;

pub use cache::{CacheConfig, CachedReader, Fetch, FetchStats};
pub use error::Error;
pub use location::{is_remote, redact_url, Location};

/// How to reach remote images.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// The most one read may take, retries included (also the per-request timeout).
    pub timeout: Duration,
    /// An S3-compatible endpoint (MinIO, Ceph, moto) instead of AWS: `http://127.0.0.1:9000`.
    pub s3_endpoint: Option<String>,
    /// An Azure blob endpoint instead of `https://ACCOUNT.blob.core.windows.net`; for Azurite
    /// give the account in the path: `http://127.0.0.1:10000/devstoreaccount1`.
    pub azure_endpoint: Option<String>,
    /// Block cache shape.
    pub cache: CacheConfig,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            s3_endpoint: None,
            azure_endpoint: None,
            cache: CacheConfig::default(),
        }
    }
}

/// A remote image as a [`ReadAt`], with its request counters.
pub struct RemoteReader {
    cached: CachedReader<fetch::ObjectFetch>,
}

impl std::fmt::Debug for RemoteReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteReader")
            .field("url", &self.url())
            .field("len", &self.cached.len())
            .finish_non_exhaustive()
    }
}

impl RemoteReader {
    /// Opens the image at `url` (one of the forms [`Location::parse`] takes) with one request,
    /// which learns the object's size and fetches its first block.
    ///
    /// Fails with a message naming the redacted URL when the URL is malformed, the client
    /// cannot be set up, or that first request fails (not found, access denied, a server that
    /// ignores `Range`, no answer within `options.timeout`).
    pub fn open(url: &str, options: &RemoteOptions) -> Result<Self, Error> {
        let location = Location::parse(url)?;
        let shown = redact_url(url);
        let secrets = location::secrets_of(url);
        let target = store::build(&location, options).map_err(|detail| {
            let mut detail = detail;
            for secret in &secrets {
                detail = detail.replace(secret.as_str(), "REDACTED");
            }
            Error::Setup {
                url: shown.clone(),
                detail,
            }
        })?;
        let fetch = fetch::ObjectFetch::new(target, shown, secrets, options.timeout);
        let (len, head) = fetch.open(options.cache.block_bytes.max(4096))?;
        if len == 0 {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: the object is empty", fetch.shown()),
            )));
        }
        let cached = CachedReader::new(fetch, len, options.cache);
        cached.seed(&head);
        Ok(Self { cached })
    }

    /// The URL as shown in reports and messages (query string and password redacted).
    pub fn url(&self) -> &str {
        self.cached.fetcher().shown()
    }

    /// Requests made and bytes fetched so far, the opening request included.
    pub fn stats(&self) -> FetchStats {
        self.cached.fetcher().counters().stats()
    }

    /// Replaces this image's secrets in `text` (for messages built outside this crate that may
    /// quote the URL).
    pub fn scrub(&self, text: &str) -> String {
        self.cached.fetcher().scrub(text)
    }
}

impl ReadAt for RemoteReader {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.cached.read_exact_at(offset, buf)
    }
    fn len(&self) -> u64 {
        self.cached.len()
    }
}

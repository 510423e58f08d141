//! Builds the `object_store` client for a [`Location`], with credentials from where each
//! provider's own tools look for them.
//!
//! - HTTP(S): none but what the URL carries (an Azure SAS or S3 presigned query string).
//! - S3: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` /
//!   `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` (all read by `object_store`), then the shared files
//!   `~/.aws/credentials` and `~/.aws/config` (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`,
//!   profile `AWS_PROFILE` or `default`), then the instance / container / web-identity
//!   credentials `object_store` finds by itself.
//! - Azure: the `AZURE_*` variables `object_store` reads (`AZURE_STORAGE_ACCOUNT_KEY`,
//!   `AZURE_STORAGE_SAS_KEY`, `AZURE_CLIENT_ID` / `AZURE_CLIENT_SECRET` / `AZURE_TENANT_ID`,
//!   workload and managed identity).

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::http::HttpBuilder;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

use crate::location::Location;
use crate::RemoteOptions;

/// A client and the object's path within it.
pub(crate) struct Target {
    pub store: Arc<dyn ObjectStore>,
    pub path: Path,
}

/// Sets up the client for `location`. Retries are winre's own (see [`crate::fetch`]), so the
/// client makes none; its per-request timeout is `options.timeout`.
pub(crate) fn build(location: &Location, options: &RemoteOptions) -> Result<Target, String> {
    let client = ClientOptions::new()
        .with_timeout(options.timeout)
        .with_connect_timeout(options.timeout.min(Duration::from_secs(10)))
        .with_allow_http(true);
    let retry = RetryConfig {
        max_retries: 0,
        retry_timeout: options.timeout,
        ..RetryConfig::default()
    };
    match location {
        Location::Http(url) => {
            // The whole URL is the store's base and the path is empty, so the query string
            // (a SAS token) stays on every request.
            let store = HttpBuilder::new()
                .with_url(url.as_str())
                .with_client_options(client)
                .with_retry(retry)
                .build()
                .map_err(|e| e.to_string())?;
            Ok(Target {
                store: Arc::new(store),
                path: Path::default(),
            })
        }
        Location::S3 { bucket, key } => {
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_client_options(client)
                .with_retry(retry);
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
                if let Some(creds) = aws_files::credentials() {
                    builder = builder
                        .with_access_key_id(creds.access_key_id)
                        .with_secret_access_key(creds.secret_access_key);
                    if let Some(token) = creds.session_token {
                        builder = builder.with_token(token);
                    }
                }
            }
            if std::env::var_os("AWS_REGION").is_none()
                && std::env::var_os("AWS_DEFAULT_REGION").is_none()
            {
                if let Some(region) = aws_files::region() {
                    builder = builder.with_region(region);
                }
            }
            if let Some(endpoint) = &options.s3_endpoint {
                builder = builder.with_endpoint(endpoint.as_str());
            }
            let store = builder.build().map_err(|e| e.to_string())?;
            Ok(Target {
                store: Arc::new(store),
                path: object_path(key)?,
            })
        }
        Location::Azure {
            account,
            container,
            blob,
        } => {
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_account(account)
                .with_container_name(container)
                .with_client_options(client)
                .with_retry(retry);
            if let Some(endpoint) = &options.azure_endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            let store = builder.build().map_err(|e| e.to_string())?;
            Ok(Target {
                store: Arc::new(store),
                path: object_path(blob)?,
            })
        }
    }
}

/// The key as an `object_store` path; keys it would change (empty parts, `.`, `..`) are
/// refused rather than silently read from another name.
fn object_path(key: &str) -> Result<Path, String> {
    let path = Path::parse(key).map_err(|e| e.to_string())?;
    if path.as_ref() != key {
        return Err(format!(
            "object key {key:?} is not a plain path (empty parts, '.' or '..'): not supported"
        ));
    }
    Ok(path)
}

/// The AWS CLI's shared files, read the way the CLI does for the simple cases.
mod aws_files {
    use std::path::PathBuf;

    pub(super) struct Credentials {
        pub access_key_id: String,
        pub secret_access_key: String,
        pub session_token: Option<String>,
    }

    fn profile() -> String {
        std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_string())
    }

    fn file(variable: &str, name: &str) -> Option<PathBuf> {
        if let Some(path) = std::env::var_os(variable) {
            return Some(PathBuf::from(path));
        }
        let home = std::env::var_os("HOME")?;
        Some(PathBuf::from(home).join(".aws").join(name))
    }

    /// `key = value` lines of section `[section]` of an INI file; a missing file is `None`.
    fn section(path: PathBuf, section: &str) -> Option<Vec<(String, String)>> {
        // These files are a few hundred bytes; refuse anything absurd rather than read it.
        let meta = std::fs::metadata(&path).ok()?;
        if meta.len() > 1 << 20 {
            return None;
        }
        let text = std::fs::read_to_string(path).ok()?;
        let mut inside = false;
        let mut pairs = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                inside = name.trim() == section;
            } else if inside {
                if let Some((k, v)) = line.split_once('=') {
                    pairs.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
        }
        Some(pairs)
    }

    fn value(pairs: &[(String, String)], key: &str) -> Option<String> {
        pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    pub(super) fn credentials() -> Option<Credentials> {
        let pairs = section(
            file("AWS_SHARED_CREDENTIALS_FILE", "credentials")?,
            &profile(),
        )?;
        Some(Credentials {
            access_key_id: value(&pairs, "aws_access_key_id")?,
            secret_access_key: value(&pairs, "aws_secret_access_key")?,
            session_token: value(&pairs, "aws_session_token"),
        })
    }

    pub(super) fn region() -> Option<String> {
        let name = profile();
        let header = if name == "default" {
            name
        } else {
            format!("profile {name}")
        };
        let pairs = section(file("AWS_CONFIG_FILE", "config")?, &header)?;
        value(&pairs, "region")
    }
}

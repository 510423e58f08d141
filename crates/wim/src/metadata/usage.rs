//! Which files use a blob: for a verify report that names what a damaged blob breaks.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use winre_readat::ReadAt;

use crate::digest::Sha1Digest;
use crate::metadata::dentry::StreamKind;
use crate::metadata::tree::Image;
use crate::wim::Wim;

/// One place a blob is used: a stream of a file of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamUse {
    /// The image (1-based).
    pub image: u32,
    /// The file's full path, `/`-separated.
    pub path: String,
    /// The named data stream, null for the file's unnamed data or reparse data.
    pub stream: Option<String>,
    /// `data`, `reparse_point` or `encrypted_raw`.
    pub kind: StreamKind,
}

/// Where each blob of `wanted` is used, in every image of `wim` (images in order, files in
/// `wimlib-imagex dir` order). Images whose metadata cannot be read are skipped; the second
/// value says why, one line each.
pub fn stream_uses<R: ReadAt>(
    wim: &Wim<R>,
    wanted: &HashSet<Sha1Digest>,
) -> (HashMap<Sha1Digest, Vec<StreamUse>>, Vec<String>) {
    let mut uses: HashMap<Sha1Digest, Vec<StreamUse>> = HashMap::new();
    let mut errors = Vec::new();
    if wanted.is_empty() {
        return (uses, errors);
    }
    for index in 1..=wim.header().image_count {
        let image = match Image::open(wim, index) {
            Ok(image) => image,
            Err(e) => {
                errors.push(format!("image {index}: files not mapped: {e}"));
                continue;
            }
        };
        image.walk(0, |d| {
            for s in d.streams().iter().filter(|s| wanted.contains(&s.hash)) {
                uses.entry(s.hash).or_default().push(StreamUse {
                    image: index,
                    path: image.path(d.id),
                    stream: s.name.clone(),
                    kind: s.kind,
                });
            }
        });
    }
    (uses, errors)
}

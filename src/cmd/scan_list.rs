//! `winre scan --from-list FILE [--shard K/N] [--jobs J] [-o OUT]`: many images, JSON Lines.
//!
//! The list holds one image a line (a path, or a URL where a remote source is supported); blank
//! lines and lines whose first non-blank character is `#` are skipped, and each line is trimmed.
//!
//! Sharding rule: item `i` (counting from 0 over the items left after skipping, in list order)
//! belongs to shard `i mod N`. It needs no coordination and no state: every machine that reads the
//! same list computes the same split, every item lands in exactly one shard, and shard sizes differ
//! by at most one. (A hash of the line would keep items in their shard when the list is edited, but
//! splits unevenly; a fleet run reads one fixed list, so the even split wins.)
//!
//! Output: one line per item of the shard, in list order, the same object `winre scan --json`
//! prints for that image (an `error` record for one that cannot be read). Workers run ahead of the
//! writer by at most [`REORDER_WINDOW_PER_JOB`] items per worker, so memory stays bounded on lists of any length.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use anyhow::{bail, Context};
use winre_core::scan::ScanOptions;

use super::scan::{outcome_json, scan_one, stats_line, Outcome};
use super::source::{ParentArgs, RemoteArgs};
use crate::cli::output;
use crate::cli::progress::Progress;
use crate::cli::threads::ThreadsArg;
use crate::cli::Exit;

/// How many finished lines may wait for a slower earlier one, per worker.
const REORDER_WINDOW_PER_JOB: usize = 64;

/// Longest list line accepted (a URL with a long SAS token fits many times over).
const MAX_LINE_BYTES: u64 = 64 * 1024;

/// Shard `index` of `count` (0 <= index < count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, from 0.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl Shard {
    /// Parses `K/N`: `0/4` .. `3/4`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || format!("{text:?} is not a shard K/N with 0 <= K < N (e.g. 0/4)");
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether the item at `item_index` belongs to this shard.
    pub fn contains(&self, item_index: usize) -> bool {
        item_index % self.count == self.index
    }
}

/// What `run` needs from the command line.
pub struct ListArgs<'a> {
    pub list: &'a Path,
    pub shard: Option<Shard>,
    pub threads: ThreadsArg,
    pub output: Option<&'a Path>,
    /// Overwrite `output` if it exists.
    pub force: bool,
    pub stats: bool,
    /// How to reach items that are URLs.
    pub remote: &'a RemoteArgs,
}

/// Reads the list's items: trimmed lines, without blank lines and `#` comments.
pub fn read_list(reader: impl Read, name: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut reader = BufReader::new(reader);
    let mut items = Vec::new();
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {name}"))?;
        if read == 0 {
            break;
        }
        if line.len() as u64 > MAX_LINE_BYTES {
            bail!("{name} line {number}: longer than {MAX_LINE_BYTES} bytes");
        }
        let item = line.trim_ascii();
        if item.is_empty() || item.starts_with(b"#") {
            continue;
        }
        items.push(path_from_bytes(item));
    }
    Ok(items)
}

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

/// Scans the shard's items and writes one JSON line per item, in list order. Exit 0 when every
/// image was read, 2 when any gave an error record.
pub fn run(args: &ListArgs, options: &ScanOptions) -> anyhow::Result<Exit> {
    let name = args.list.display().to_string();
    if let Some(path) = args.output {
        output::check_new(path, args.force)?;
    }
    let items = if args.list == Path::new("-") {
        read_list(io::stdin().lock(), "the list on stdin")?
    } else {
        let file = File::open(args.list).with_context(|| format!("opening the list {name}"))?;
        read_list(file, &name)?
    };
    let shard = args.shard.unwrap_or(Shard { index: 0, count: 1 });
    let mine: Vec<PathBuf> = items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| shard.contains(*i))
        .map(|(_, item)| item)
        .collect();
    let jobs = args.threads.count(mine.len());

    let bar = Progress::items("scanning", mine.len() as u64, "images");

    let errors = match args.output {
        None => {
            let stdout = io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            scan_ordered(
                &mine,
                jobs,
                (options, args.remote),
                args.stats,
                &bar,
                &mut out,
            )?
        }
        Some(path) => {
            let mut partial = path.as_os_str().to_owned();
            partial.push(".partial");
            let partial = PathBuf::from(partial);
            let file = File::create(&partial)
                .with_context(|| format!("creating {}", partial.display()))?;
            let mut out = BufWriter::new(file);
            let errors = scan_ordered(
                &mine,
                jobs,
                (options, args.remote),
                args.stats,
                &bar,
                &mut out,
            )?;
            let file = out
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(|| format!("writing {}", partial.display()))?;
            file.sync_all()
                .with_context(|| format!("syncing {}", partial.display()))?;
            std::fs::rename(&partial, path)
                .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))?;
            errors
        }
    };
    bar.finish();
    Ok(if errors > 0 {
        Exit::Unreadable
    } else {
        Exit::Ok
    })
}

/// Shared between the workers and the writer.
struct Queue {
    /// Next item a worker takes.
    next_take: usize,
    /// Next item the writer writes.
    next_write: usize,
    /// Finished lines waiting for an earlier one.
    done: BTreeMap<usize, Finished>,
    /// Set when the writer failed: workers stop taking items.
    stop: bool,
}

struct Finished {
    line: String,
    stats: Option<String>,
    failed: bool,
}

/// Scans `items` on `jobs` threads and writes their lines to `out` in item order; returns how
/// many were error records.
fn scan_ordered(
    items: &[PathBuf],
    jobs: usize,
    (options, remote): (&ScanOptions, &RemoteArgs),
    stats: bool,
    bar: &Progress,
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    let window = REORDER_WINDOW_PER_JOB.saturating_mul(jobs);
    let queue = Mutex::new(Queue {
        next_take: 0,
        next_write: 0,
        done: BTreeMap::new(),
        stop: false,
    });
    let changed = Condvar::new();
    let lock = || {
        queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    };

    std::thread::scope(|scope| {
        for _ in 0..jobs.min(items.len()) {
            scope.spawn(|| loop {
                let index = {
                    let mut q = lock();
                    while !q.stop && q.next_take >= q.next_write.saturating_add(window) {
                        q = changed.wait(q).unwrap_or_else(|p| p.into_inner());
                    }
                    if q.stop || q.next_take >= items.len() {
                        return;
                    }
                    q.next_take += 1;
                    q.next_take - 1
                };
                let Some(item) = items.get(index) else { return };
                // A panic in one image's scan (a bug) becomes that image's error record: the
                // writer waits for every index, so a lost one would hang the run.
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    scan_one(item, options, remote, &ParentArgs::default(), None)
                }))
                .unwrap_or_else(|_| {
                    Outcome::Failed(item.clone(), "internal error: the scan panicked".into())
                });
                let finished = finish(&outcome, stats);
                lock().done.insert(index, finished);
                changed.notify_all();
            });
        }

        // The writer: this thread, so a failed write stops everything and is reported.
        let mut errors = 0usize;
        let result = (|| -> anyhow::Result<()> {
            while lock().next_write < items.len() {
                let ready: Vec<Finished> = {
                    let mut q = lock();
                    while !q.done.contains_key(&q.next_write) {
                        q = changed.wait(q).unwrap_or_else(|p| p.into_inner());
                    }
                    let mut ready = Vec::new();
                    while let Some(f) = {
                        let next = q.next_write;
                        q.done.remove(&next)
                    } {
                        ready.push(f);
                        q.next_write += 1;
                    }
                    ready
                };
                changed.notify_all();
                for f in ready {
                    writeln!(out, "{}", f.line).context("writing the JSON Lines")?;
                    if let Some(s) = f.stats {
                        bar.suspend(|| eprintln!("{s}"));
                    }
                    if f.failed {
                        errors += 1;
                        bar.note(&format!("{errors} unreadable"));
                    }
                    bar.inc(1);
                }
                out.flush().context("writing the JSON Lines")?;
            }
            Ok(())
        })();
        if result.is_err() {
            lock().stop = true;
            changed.notify_all();
        }
        result.map(|()| errors)
    })
}

fn finish(outcome: &Outcome, stats: bool) -> Finished {
    let line = outcome_json(outcome).unwrap_or_else(|e| {
        // A report always serializes; if it ever did not, say so in the record, not by aborting.
        serde_json::json!({ "source": { "path": "" }, "error": format!("serializing the report: {e}") })
            .to_string()
    });
    match outcome {
        Outcome::Report(report, ms) => Finished {
            line,
            stats: stats.then(|| stats_line(report, *ms)),
            failed: false,
        },
        Outcome::Failed(..) => Finished {
            line,
            stats: None,
            failed: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_parse() {
        assert_eq!(Shard::parse("0/1"), Ok(Shard { index: 0, count: 1 }));
        assert_eq!(Shard::parse("3/4"), Ok(Shard { index: 3, count: 4 }));
        assert!(Shard::parse("4/4").is_err());
        assert!(Shard::parse("0/0").is_err());
        assert!(Shard::parse("1").is_err());
        assert!(Shard::parse("-1/4").is_err());
        assert!(Shard::parse("a/b").is_err());
    }

    #[test]
    fn list_skips_blanks_and_comments_and_trims() {
        let text = b"# fleet\n\n  a.img  \r\n#b.img\n\tc d.vhd\n   # indented comment\nlast";
        let items = read_list(&text[..], "test").unwrap();
        assert_eq!(
            items,
            [
                PathBuf::from("a.img"),
                PathBuf::from("c d.vhd"),
                PathBuf::from("last")
            ]
        );
    }

    #[test]
    fn list_refuses_a_huge_line() {
        let text = vec![b'a'; 70 * 1024];
        assert!(read_list(&text[..], "test").is_err());
    }
}

//! `-j/--threads N` (alias `--jobs`), the one way every command takes a worker count.

use anyhow::Context;
use clap::Args;

/// Most worker threads a command starts, whatever is asked.
const MAX_THREADS: usize = 1024;

/// The `-j/--threads` flag, flattened into a command's arguments.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct ThreadsArg {
    /// Worker threads (default: the number of cores; never more than there is work for).
    #[arg(short = 'j', long = "threads", visible_alias = "jobs", value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,
}

impl ThreadsArg {
    /// The threads to start for `work` independent items: as asked (else the number of cores),
    /// but no more than the items, and at least one.
    pub fn count(&self, work: usize) -> usize {
        let wanted = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        wanted.min(work).clamp(1, MAX_THREADS)
    }

    /// A thread pool of [`Self::count`] threads.
    pub fn pool(&self, work: usize) -> anyhow::Result<rayon::ThreadPool> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(self.count(work))
            .build()
            .context("cannot start the worker threads")
    }
}

fn parse_threads(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a thread count: give a whole number from 1 to {MAX_THREADS}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_at_the_work_and_validated() {
        let asked = ThreadsArg { threads: Some(100) };
        assert_eq!(asked.count(3), 3);
        assert_eq!(asked.count(0), 1);
        assert_eq!(asked.count(1000), 100);
        assert!(ThreadsArg::default().count(usize::MAX) >= 1);
        assert!(parse_threads("0").is_err());
        assert!(parse_threads("100000").is_err());
        assert!(parse_threads("many").is_err());
        assert_eq!(parse_threads("4"), Ok(4));
    }
}

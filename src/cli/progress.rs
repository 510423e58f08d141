//! The one progress style: label, bar, done/total, rate, ETA, on stderr, only on a terminal and
//! never with `--quiet`, `--no-progress` or `--json`.

use indicatif::{ProgressBar, ProgressStyle};

use super::ui;

/// A progress bar, or nothing when progress is off.
pub struct Progress {
    bar: ProgressBar,
    label: String,
}

impl Progress {
    /// Progress over `total` bytes (MiB done/total, MiB/s, ETA).
    pub fn bytes(label: &str, total: u64) -> Progress {
        Progress::styled(
            label,
            total,
            "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
    }

    /// Progress over `total` items named `unit` ("images").
    pub fn items(label: &str, total: u64, unit: &str) -> Progress {
        Progress::styled(
            label,
            total,
            &format!("{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}}"),
        )
    }

    fn styled(label: &str, total: u64, template: &str) -> Progress {
        if !ui::progress() {
            return Progress {
                bar: ProgressBar::hidden(),
                label: label.to_string(),
            };
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        Progress {
            bar,
            label: label.to_string(),
        }
    }

    /// Sets what is done of how much (the total can grow as work is found).
    pub fn set(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
    }

    /// Shows `note` after the label ("scanning (2 unreadable)").
    pub fn note(&self, note: &str) {
        self.bar.set_message(format!("{} ({note})", self.label));
    }

    /// Adds `n` to what is done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Runs `f` with the bar hidden, to print a line on stderr without tearing it.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

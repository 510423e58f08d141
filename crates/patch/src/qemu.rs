//! The `qemu-nbd` process that serves a container (qcow2, VHDX, VMDK, dynamic VHD) to our NBD
//! client, and the `qemu-img` queries made before it starts.
//!
//! qemu-nbd listens on a Unix socket in a private (0700) directory, with the format given
//! explicitly (never probed), `--cache=writethrough` (every write reaches the file before it is
//! acknowledged) and `--discard=unmap`. Without `--persistent` it exits when its one client
//! disconnects, so it ends with winre also when winre is killed (the kernel closes the socket);
//! it is also started under `setpriv --pdeathsig TERM` where setpriv exists, which covers the
//! moment between its start and our connection (on SIGTERM qemu-nbd closes the image cleanly).

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::nbd::NbdClient;

/// How long qemu-nbd may take to open the image and listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long qemu-nbd may take to close the image after the client left.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Finds `program` in `PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The error for a missing qemu tool, naming what needs it.
pub fn missing(program: &str, format: &str) -> Error {
    Error::Unsupported(format!(
        "writing a {format} image needs {program} (Debian/Ubuntu package qemu-utils, Fedora qemu-img), \
         which is not in PATH; install it, or convert the image to raw, resize the copy and convert back"
    ))
}

/// A running qemu-nbd serving one image on a private socket.
#[derive(Debug)]
pub struct QemuNbd {
    child: Option<Child>,
    dir: PathBuf,
}

impl QemuNbd {
    /// Starts qemu-nbd on `image` (canonical path) read-write as `format` (qemu's driver name)
    /// and connects to it.
    pub fn start(image: &Path, format: &str) -> Result<(Self, NbdClient)> {
        let qemu_nbd = find_program("qemu-nbd").ok_or_else(|| missing("qemu-nbd", format))?;
        let dir = private_dir()?;
        let socket = dir.join("nbd.sock");
        let mut args: Vec<OsString> = vec![
            format!("--format={format}").into(),
            "--cache=writethrough".into(),
            "--discard=unmap".into(),
            "--shared=1".into(),
        ];
        let mut socket_arg = OsString::from("--socket=");
        socket_arg.push(&socket);
        args.push(socket_arg);
        args.push(image.as_os_str().to_os_string());
        let mut command = match find_program("setpriv") {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.arg("--pdeathsig").arg("TERM").arg("--").arg(&qemu_nbd);
                c
            }
            None => Command::new(&qemu_nbd),
        };
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("starting {}: {e}", qemu_nbd.display()),
                )));
            }
        };
        let mut server = Self {
            child: Some(child),
            dir,
        };
        let started = Instant::now();
        loop {
            if let Some(why) = server.exited()? {
                return Err(Error::Refused(format!(
                    "qemu-nbd could not open {} as {format}: {why}",
                    image.display()
                )));
            }
            if socket.exists() {
                match NbdClient::connect(&socket) {
                    Ok(client) => return Ok((server, client)),
                    Err(e) if started.elapsed() > START_TIMEOUT => {
                        return Err(Error::Io(std::io::Error::new(
                            e.kind(),
                            format!("connecting to qemu-nbd on {}: {e}", socket.display()),
                        )))
                    }
                    Err(_) => {}
                }
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(Error::Refused(format!(
                    "qemu-nbd did not listen on {} within {} s",
                    socket.display(),
                    START_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The qemu-nbd process id (tests check it is gone after the run).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(stderr)` when qemu-nbd has exited.
    fn exited(&mut self) -> Result<Option<String>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(Some("not running".into()));
        };
        match child.try_wait()? {
            None => Ok(None),
            Some(status) => {
                let mut text = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut text);
                }
                self.child = None;
                Ok(Some(format!("{} ({status})", text.trim())))
            }
        }
    }

    /// Waits for qemu-nbd to exit after the client disconnected; kills it after a timeout.
    /// Returns an error when it exited unsuccessfully (it may not have closed the image cleanly).
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if started.elapsed() > STOP_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Io(std::io::Error::other(format!(
                    "qemu-nbd (pid {}) did not exit within {} s of the disconnect and was killed",
                    child.id(),
                    STOP_TIMEOUT.as_secs()
                ))));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut text = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        if !status.success() {
            return Err(Error::Io(std::io::Error::other(format!(
                "qemu-nbd exited with {status}: {}",
                text.trim()
            ))));
        }
        Ok(())
    }
}

impl Drop for QemuNbd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The client is gone or never connected: qemu-nbd may still be waiting for one.
            let started = Instant::now();
            while matches!(child.try_wait(), Ok(None)) && started.elapsed() < STOP_TIMEOUT {
                if started.elapsed() > Duration::from_secs(2) {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new directory only we can enter, for the socket.
fn private_dir() -> Result<PathBuf> {
    let base = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for attempt in 0u32..100 {
        let dir = base.join(format!(
            "winre-nbd-{}-{nanos:x}-{attempt}",
            std::process::id()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("creating a private directory in {}: {e}", base.display()),
                )))
            }
        }
    }
    Err(Error::Io(std::io::Error::other(format!(
        "could not create a private directory in {}",
        base.display()
    ))))
}

/// Guest byte ranges `(offset, len)` stored as compressed clusters in the top image itself
/// (not in a backing file), from `qemu-img map --output=json`.
pub fn compressed_extents(image: &Path, format: &str) -> Result<Vec<(u64, u64)>> {
    let qemu_img = find_program("qemu-img").ok_or_else(|| missing("qemu-img", format))?;
    let out = Command::new(&qemu_img)
        .arg("map")
        .arg("--output=json")
        .arg(format!("--format={format}"))
        .arg(image)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(Error::Refused(format!(
            "qemu-img map {} failed: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let map: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::corrupt(
            "qemu-img map output",
            e.column() as u64,
            format!("not the JSON qemu-img writes: {e}"),
        )
    })?;
    let field = |entry: &serde_json::Value, name: &str| entry.get(name).and_then(|v| v.as_u64());
    Ok(map
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e.get("compressed").and_then(|v| v.as_bool()) == Some(true))
                .filter(|e| field(e, "depth") == Some(0))
                .filter_map(|e| Some((field(e, "start")?, field(e, "length")?)))
                .collect()
        })
        .unwrap_or_default())
}

/// Runs `qemu-img create -f qcow2 -b BACKING -F FORMAT OVERLAY`: an overlay whose reads fall
/// through to `backing`, which qemu then opens read-only.
pub fn create_overlay(backing: &Path, backing_format: &str, overlay: &Path) -> Result<()> {
    let qemu_img = find_program("qemu-img").ok_or_else(|| missing("qemu-img", "qcow2 overlay"))?;
    let out = Command::new(&qemu_img)
        .arg("create")
        .arg("-q")
        .args(["-f", "qcow2", "-F", backing_format, "-b"])
        .arg(backing)
        .arg(overlay)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(Error::Refused(format!(
            "qemu-img create of the overlay {} on {} failed: {}",
            overlay.display(),
            backing.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

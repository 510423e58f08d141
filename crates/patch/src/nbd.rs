//! A small NBD client: the fixed newstyle handshake with `NBD_OPT_GO`, then simple-reply
//! `READ`, `WRITE`, `FLUSH` and `DISC` over a Unix socket. Enough to write a guest disk through
//! `qemu-nbd`, nothing more (no structured replies, no TLS, no block status).
//!
//! Source: the NBD protocol document (github.com/NetworkBlockDevice/nbd, doc/proto.md). Our own
//! code. The server is a qemu-nbd we started, but its replies are still checked: a wrong magic,
//! cookie or length is an error naming what was wrong, never a panic or an unbounded allocation.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// "NBDMAGIC", the first thing a server sends.
const NBD_MAGIC: u64 = 0x4e42_444d_4147_4943;
/// "IHAVEOPT": the newstyle handshake, and the prefix of every option the client sends.
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Magic of an option reply.
const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Magic of a transmission request.
const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Magic of a simple reply.
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

/// Handshake flag of the server: fixed newstyle.
const FLAG_FIXED_NEWSTYLE: u16 = 1;
/// Handshake flag: no 124 zero bytes after the export (only matters for NBD_OPT_EXPORT_NAME).
const FLAG_NO_ZEROES: u16 = 2;
/// `NBD_OPT_GO`.
const OPT_GO: u32 = 7;
/// `NBD_REP_ACK`.
const REP_ACK: u32 = 1;
/// `NBD_REP_INFO`.
const REP_INFO: u32 = 3;
/// Option replies with this bit set are errors.
const REP_FLAG_ERROR: u32 = 1 << 31;
/// `NBD_INFO_EXPORT`: size and transmission flags.
const INFO_EXPORT: u16 = 0;
/// Transmission flag: the export is read-only.
const TFLAG_READ_ONLY: u16 = 1 << 1;
/// Transmission flag: the server accepts `NBD_CMD_FLUSH`.
const TFLAG_SEND_FLUSH: u16 = 1 << 2;

const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;

/// Bytes per READ or WRITE request (qemu-nbd accepts up to 32 MiB).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Largest option reply payload we read (qemu's are tens of bytes).
const MAX_OPTION_REPLY: u32 = 64 * 1024;
/// How long one reply may take before the client gives up (never block forever).
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// A connected NBD client in the transmission phase.
#[derive(Debug)]
pub struct NbdClient {
    stream: UnixStream,
    size: u64,
    transmission_flags: u16,
    next_cookie: u64,
}

fn protocol(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("NBD: {}", what.into()))
}

fn read_u16(r: &mut impl Read) -> io::Result<u16> {
    let mut b = [0u8; 2];
    r.read_exact(&mut b)?;
    Ok(u16::from_be_bytes(b))
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

impl NbdClient {
    /// Connects to the server listening on `socket` and opens its default export ("").
    pub fn connect(socket: &Path) -> io::Result<Self> {
        let mut stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
        let magic = read_u64(&mut stream)?;
        let newstyle = read_u64(&mut stream)?;
        if magic != NBD_MAGIC || newstyle != IHAVEOPT {
            return Err(protocol(format!(
                "greeting {magic:#018x} {newstyle:#018x} is not a newstyle NBD server"
            )));
        }
        let flags = read_u16(&mut stream)?;
        if flags & FLAG_FIXED_NEWSTYLE == 0 {
            return Err(protocol("the server does not speak fixed newstyle"));
        }
        let client_flags = u32::from(FLAG_FIXED_NEWSTYLE | (flags & FLAG_NO_ZEROES));
        stream.write_all(&client_flags.to_be_bytes())?;

        // NBD_OPT_GO for the export "" asking for no particular information (the server always
        // sends NBD_INFO_EXPORT).
        let mut opt = Vec::with_capacity(22);
        opt.extend_from_slice(&IHAVEOPT.to_be_bytes());
        opt.extend_from_slice(&OPT_GO.to_be_bytes());
        opt.extend_from_slice(&6u32.to_be_bytes());
        opt.extend_from_slice(&0u32.to_be_bytes()); // export name length
        opt.extend_from_slice(&0u16.to_be_bytes()); // information requests
        stream.write_all(&opt)?;

        let mut export: Option<(u64, u16)> = None;
        loop {
            let magic = read_u64(&mut stream)?;
            if magic != OPTION_REPLY_MAGIC {
                return Err(protocol(format!("option reply magic {magic:#018x}")));
            }
            let option = read_u32(&mut stream)?;
            let kind = read_u32(&mut stream)?;
            let len = read_u32(&mut stream)?;
            if option != OPT_GO {
                return Err(protocol(format!(
                    "reply to option {option}, NBD_OPT_GO was sent"
                )));
            }
            if len > MAX_OPTION_REPLY {
                return Err(protocol(format!("option reply of {len} bytes")));
            }
            let mut data = vec![0u8; len as usize];
            stream.read_exact(&mut data)?;
            if kind & REP_FLAG_ERROR != 0 {
                return Err(protocol(format!(
                    "the server refused the export (error {:#x}: {})",
                    kind,
                    String::from_utf8_lossy(&data)
                )));
            }
            match kind {
                REP_ACK => break,
                REP_INFO => {
                    let mut r = data.as_slice();
                    if read_u16(&mut r)? == INFO_EXPORT {
                        let size = read_u64(&mut r)?;
                        let tflags = read_u16(&mut r)?;
                        export = Some((size, tflags));
                    }
                }
                _ => {} // Replies we did not ask for and may ignore.
            }
        }
        let Some((size, transmission_flags)) = export else {
            return Err(protocol("NBD_OPT_GO succeeded without NBD_INFO_EXPORT"));
        };
        if transmission_flags & TFLAG_READ_ONLY != 0 {
            return Err(protocol("the export is read-only"));
        }
        if transmission_flags & TFLAG_SEND_FLUSH == 0 {
            return Err(protocol(
                "the server does not accept flushes: writes could not be made durable",
            ));
        }
        Ok(Self {
            stream,
            size,
            transmission_flags,
            next_cookie: 1,
        })
    }

    /// The export's size in bytes (the guest disk).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The transmission flags the server sent.
    pub fn transmission_flags(&self) -> u16 {
        self.transmission_flags
    }

    fn request(&mut self, kind: u16, offset: u64, len: u32) -> io::Result<u64> {
        let cookie = self.next_cookie;
        self.next_cookie = self.next_cookie.wrapping_add(1);
        let mut req = [0u8; 28];
        let mut at = 0usize;
        for part in [
            &REQUEST_MAGIC.to_be_bytes()[..],
            &0u16.to_be_bytes()[..],
            &kind.to_be_bytes()[..],
            &cookie.to_be_bytes()[..],
            &offset.to_be_bytes()[..],
            &len.to_be_bytes()[..],
        ] {
            let end = at.saturating_add(part.len());
            if let Some(slot) = req.get_mut(at..end) {
                slot.copy_from_slice(part);
            }
            at = end;
        }
        self.stream.write_all(&req)?;
        Ok(cookie)
    }

    fn reply(&mut self, cookie: u64, what: &str, offset: u64) -> io::Result<()> {
        let magic = read_u32(&mut self.stream)?;
        if magic != SIMPLE_REPLY_MAGIC {
            return Err(protocol(format!(
                "reply magic {magic:#010x} to {what} at {offset}"
            )));
        }
        let error = read_u32(&mut self.stream)?;
        let got = read_u64(&mut self.stream)?;
        if got != cookie {
            return Err(protocol(format!(
                "reply for request {got} where {cookie} ({what} at {offset}) was expected"
            )));
        }
        if error != 0 {
            return Err(io::Error::other(format!(
                "NBD: {what} at guest offset {offset} failed with error {error} ({})",
                errno_name(error)
            )));
        }
        Ok(())
    }

    fn check(&self, offset: u64, len: usize) -> io::Result<()> {
        winre_readat::check_bounds(offset, len, self.size)
    }

    /// Reads `buf.len()` bytes at `offset`.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.check(offset, buf.len())?;
        let mut at = offset;
        for piece in buf.chunks_mut(MAX_REQUEST_BYTES) {
            let len = u32::try_from(piece.len()).map_err(|_| protocol("request too long"))?;
            let cookie = self.request(CMD_READ, at, len)?;
            self.reply(cookie, "read", at)?;
            self.stream.read_exact(piece)?;
            at = at.saturating_add(u64::from(len));
        }
        Ok(())
    }

    /// Writes `buf` at `offset`.
    pub fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.check(offset, buf.len())?;
        let mut at = offset;
        for piece in buf.chunks(MAX_REQUEST_BYTES) {
            let len = u32::try_from(piece.len()).map_err(|_| protocol("request too long"))?;
            let cookie = self.request(CMD_WRITE, at, len)?;
            self.stream.write_all(piece)?;
            self.reply(cookie, "write", at)?;
            at = at.saturating_add(u64::from(len));
        }
        Ok(())
    }

    /// Asks the server to make every completed write durable (qemu flushes the container file).
    pub fn flush(&mut self) -> io::Result<()> {
        let cookie = self.request(CMD_FLUSH, 0, 0)?;
        self.reply(cookie, "flush", 0)
    }

    /// Ends the session (`NBD_CMD_DISC`); the server then closes the connection.
    pub fn disconnect(&mut self) -> io::Result<()> {
        self.request(CMD_DISC, 0, 0)?;
        self.stream.shutdown(std::net::Shutdown::Both)
    }
}

/// The NBD error values (protocol document, "Error values").
fn errno_name(error: u32) -> &'static str {
    match error {
        1 => "EPERM",
        5 => "EIO",
        12 => "ENOMEM",
        22 => "EINVAL",
        28 => "ENOSPC",
        75 => "EOVERFLOW",
        95 => "ENOTSUP",
        108 => "ESHUTDOWN",
        _ => "unknown",
    }
}

//! Is a block device in use? A device that is mounted (`/proc/self/mountinfo`), that another
//! block device is built on (`/sys/dev/block/MAJ:MIN/holders`: LVM, dm-crypt, RAID), or one of
//! whose partitions is, is refused before it is opened. Opening it with `O_EXCL` (in
//! [`crate::image`]) then catches the rest: swap, and other exclusive openers.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `(major, minor)` of a `st_rdev`, as glibc's `gnu_dev_major` / `gnu_dev_minor` split it.
fn split_dev(rdev: u64) -> (u64, u64) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major, minor)
}

/// The sysfs directory of the device and of each of its partitions, with "MAJ:MIN".
fn device_and_partitions(major: u64, minor: u64) -> Vec<(String, PathBuf)> {
    let id = format!("{major}:{minor}");
    let dir = PathBuf::from(format!("/sys/dev/block/{id}"));
    let mut out = vec![(id, dir.clone())];
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let sub = entry.path();
            if sub.join("partition").is_file() {
                if let Ok(dev) = std::fs::read_to_string(sub.join("dev")) {
                    out.push((dev.trim().to_string(), sub));
                }
            }
        }
    }
    out
}

/// Refuses the block device `path` (with `st_rdev` `rdev`) when it or a partition of it is
/// mounted or held by another block device.
pub fn refuse_in_use(path: &Path, rdev: u64) -> Result<()> {
    let (major, minor) = split_dev(rdev);
    let devices = device_and_partitions(major, minor);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mountinfo.lines() {
        // "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw": field 3 is
        // the device, field 5 the mount point.
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(dev), Some(mount_point)) = (fields.get(2), fields.get(4)) else {
            continue;
        };
        if let Some((id, _)) = devices.iter().find(|(id, _)| id == dev) {
            return Err(Error::Refused(format!(
                "{} is mounted (device {id} on {mount_point}); unmount it first",
                path.display()
            )));
        }
    }
    for (id, dir) in &devices {
        let holders: Vec<String> = std::fs::read_dir(dir.join("holders"))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if !holders.is_empty() {
            return Err(Error::Refused(format!(
                "{} is in use: device {id} is held by {} (LVM, device-mapper or RAID); deactivate it first",
                path.display(),
                holders.join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_dev_numbers_like_glibc() {
        // makedev(8, 1) and makedev(259, 65537) as glibc builds them.
        assert_eq!(split_dev(0x801), (8, 1));
        assert_eq!(split_dev(0x1001_0301), (259, 65537));
    }
}

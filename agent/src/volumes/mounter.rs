//! The one side effect of volumes that needs privileges: tmpfs mounts.
//! [`NixMounter`] calls mount(2)/umount2(2) and reads
//! `/proc/self/mountinfo`; [`FakeMounter`] records calls for unit tests.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Mount operations of the volume applier.
pub trait Mounter: Send + Sync {
    /// Mounts a tmpfs on `target` (`size=` when given; mode 0777).
    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<u64>) -> io::Result<()>;
    /// Unmounts `target`.
    fn unmount(&self, target: &Path) -> io::Result<()>;
    /// Mount points at or below `dir`.
    fn mount_points_under(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
}

/// [`Mounter`] over the kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct NixMounter;

impl Mounter for NixMounter {
    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<u64>) -> io::Result<()> {
        use nix::mount::{mount, MsFlags};
        let mut options = String::from("mode=0777");
        if let Some(size) = size_bytes {
            options.push_str(&format!(",size={size}"));
        }
        mount(Some("tmpfs"), target, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(options.as_str()))
            .map_err(io::Error::from)
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        use nix::mount::{umount2, MntFlags};
        match umount2(target, MntFlags::empty()) {
            Ok(()) => Ok(()),
            // Still busy (a process holds it open): detach it now; the kernel
            // frees it when the last user goes.
            Err(nix::errno::Errno::EBUSY) => umount2(target, MntFlags::MNT_DETACH).map_err(io::Error::from),
            Err(e) => Err(io::Error::from(e)),
        }
    }

    fn mount_points_under(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")?;
        Ok(parse_mount_points(&text).into_iter().filter(|p| p.starts_with(dir)).collect())
    }
}

/// The mount points (5th field, octal escapes undone) of a mountinfo text.
pub fn parse_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo.lines().filter_map(|line| line.split(' ').nth(4)).map(|p| PathBuf::from(unescape(p))).collect()
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Recording [`Mounter`]: keeps its own mount table.
#[derive(Debug, Default)]
pub struct FakeMounter {
    /// Current mount points.
    pub mounted: Mutex<BTreeSet<PathBuf>>,
    /// Every call, in order: `tmpfs <path> <size>` or `umount <path>`.
    pub calls: Mutex<Vec<String>>,
}

impl FakeMounter {
    /// The calls so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Mounter for FakeMounter {
    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<u64>) -> io::Result<()> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(format!("tmpfs {} {size_bytes:?}", target.display()));
        }
        if let Ok(mut mounted) = self.mounted.lock() {
            mounted.insert(target.to_path_buf());
        }
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(format!("umount {}", target.display()));
        }
        let removed = self.mounted.lock().map(|mut m| m.remove(target)).unwrap_or(false);
        if removed {
            Ok(())
        } else {
            Err(io::Error::from(io::ErrorKind::InvalidInput))
        }
    }

    fn mount_points_under(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mounted = self.mounted.lock().map(|m| m.clone()).unwrap_or_default();
        Ok(mounted.into_iter().filter(|p| p.starts_with(dir)).collect())
    }
}

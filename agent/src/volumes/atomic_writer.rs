//! Writes a volume's file set so a reader never sees a half-applied update
//! (upstream's scheme):
//!
//! ```text
//! <dir>/..2026_12_02_13_20_13.123456789/   the payload, one dir per version
//! <dir>/..data -> ..2026_12_02_13_20_13.123456789
//! <dir>/<name> -> ..data/<name>            one link per top-level name
//! ```
//!
//! An update writes a new timestamped dir, points `..data_tmp` at it and
//! renames that over `..data` (rename is atomic), then adds links for new
//! names, removes links of names gone, and removes the old dir. An unchanged
//! payload touches nothing.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use super::payload::FileEntry;

/// The link every user-visible name goes through.
pub const DATA_LINK: &str = "..data";
const DATA_TMP_LINK: &str = "..data_tmp";

/// Makes `dir` hold exactly `files`; returns whether anything changed.
/// `stamp` names the new payload dir (`..<stamp>`), e.g. a UTC time.
pub fn write(dir: &Path, files: &[FileEntry], stamp: &str) -> io::Result<bool> {
    fs::create_dir_all(dir)?;
    let old = fs::read_link(dir.join(DATA_LINK)).ok();
    if let Some(old) = &old {
        if matches(&dir.join(old), files)? {
            ensure_links(dir, files)?;
            return Ok(false);
        }
    }
    let mut name = format!("..{stamp}");
    let mut n = 0u32;
    while dir.join(&name).exists() {
        n = n.saturating_add(1);
        name = format!("..{stamp}_{n}");
    }
    let payload = dir.join(&name);
    fs::create_dir(&payload)?;
    fs::set_permissions(&payload, fs::Permissions::from_mode(0o755))?;
    for f in files {
        let path = payload.join(&f.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, &f.data)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(f.mode))?;
    }
    let tmp = dir.join(DATA_TMP_LINK);
    let _ = fs::remove_file(&tmp);
    symlink(&name, &tmp)?;
    fs::rename(&tmp, dir.join(DATA_LINK))?;
    ensure_links(dir, files)?;
    let wanted = top_level(files);
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with("..") || wanted.contains(file_name.as_str()) {
            continue;
        }
        if entry.file_type()?.is_symlink() {
            fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = old {
        let old_name = old.to_string_lossy();
        if old_name.starts_with("..") && old_name != name {
            fs::remove_dir_all(dir.join(old))?;
        }
    }
    Ok(true)
}

fn top_level(files: &[FileEntry]) -> BTreeSet<&str> {
    files.iter().filter_map(|f| f.path.split('/').next()).collect()
}

/// Creates `<name> -> ..data/<name>` for every top-level name that lacks it.
fn ensure_links(dir: &Path, files: &[FileEntry]) -> io::Result<()> {
    for name in top_level(files) {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA_LINK).join(name), &link)?;
        }
    }
    Ok(())
}

/// Whether the payload dir holds exactly `files` (content and mode).
fn matches(payload: &Path, files: &[FileEntry]) -> io::Result<bool> {
    let mut on_disk = BTreeSet::new();
    collect_files(payload, payload, &mut on_disk)?;
    let wanted: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    if on_disk.iter().map(String::as_str).collect::<BTreeSet<_>>() != wanted {
        return Ok(false);
    }
    for f in files {
        let path = payload.join(&f.path);
        let mode = fs::metadata(&path)?.permissions().mode() & 0o7777;
        if mode != f.mode || fs::read(&path)? != f.data {
            return Ok(false);
        }
    }
    Ok(true)
}

fn collect_files(base: &Path, dir: &Path, out: &mut BTreeSet<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(base, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(base) {
            out.insert(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

//! State files that hold secrets (keys, kubeconfigs, the store): 0600 in
//! 0700 directories. Files are written to a temporary name and renamed, so a
//! reader never sees half a key.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Mode of a private file.
pub const FILE_MODE: u32 = 0o600;
/// Mode of a directory holding private files.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and missing parents) and makes `dir` itself 0700.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
}

/// Writes `contents` to `path` with mode 0600, its directory made 0700.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir)?;
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let staged = path.with_file_name(format!(".{name}.tmp"));
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(FILE_MODE).open(&staged)?;
    // An old staged file keeps its mode on open: set it again.
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&staged, path)
}

/// Makes an existing file (or one about to be created) 0600: creates it
/// empty if missing, so a program that opens it later (SQLite) keeps the mode.
pub fn ensure_private_file(path: &Path) -> std::io::Result<()> {
    let file = OpenOptions::new().write(true).create(true).truncate(false).mode(FILE_MODE).open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn private_files_are_0600_in_0700_directories() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("a/b/key.pem");
        write_private(&path, b"secret").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"secret");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&tmp.path().join("a/b")), 0o700);
        write_private(&path, b"again").expect("rewrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"again");
        let db = tmp.path().join("a/b/store.db");
        std::fs::write(&db, b"x").expect("plain write");
        std::fs::set_permissions(&db, Permissions::from_mode(0o644)).expect("chmod");
        ensure_private_file(&db).expect("ensure");
        assert_eq!((mode(&db), std::fs::read(&db).expect("read")), (0o600, b"x".to_vec()), "kept, made private");
    }
}

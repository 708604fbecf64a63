//! The images bosun ships: what goes into `pause` and `app`.

use std::path::{Path, PathBuf};

use crate::layer::{Entry, FileContents};
use crate::layout::{write_layout, ImageLayout, ImageSpec};
use crate::Result;

pub const PAUSE_REPOSITORY: &str = "bosun/pause";
pub const PAUSE_TAG: &str = "1.0";
pub const APP_REPOSITORY: &str = "bosun/app";
pub const APP_TAG: &str = "1.0";

/// busybox applets linked into the app image's `/bin`.
const APPLETS: &[&str] = &[
    "sh", "ash", "httpd", "nc", "sleep", "echo", "cat", "ls", "wget", "env", "hostname", "ps", "mkdir", "rm", "date",
    "true", "false", "id", "tail", "head", "kill", "grep", "sed", "printf", "test", "[", "touch", "uname", "yes", "dd",
    "seq", "wc", "ip", "ifconfig", "netstat", "nslookup", "top", "free", "df", "mount", "cp", "mv", "chmod",
];

/// Host files the images are made from.
#[derive(Debug, Clone)]
pub struct ImageSource {
    /// Our static `pause` binary (built from `images/pause` with `crt-static`).
    pub pause_binary: PathBuf,
    /// A static busybox (Debian's `busybox-static` installs `/bin/busybox`).
    pub busybox: PathBuf,
}

fn dir(path: &str) -> Entry {
    Entry::Dir { path: path.into(), mode: 0o755 }
}

/// The sandbox image: `/pause` and nothing else.
pub fn pause_image(pause_binary: &Path) -> ImageSpec {
    ImageSpec {
        repository: PAUSE_REPOSITORY.into(),
        tag: PAUSE_TAG.into(),
        entrypoint: vec!["/pause".into()],
        cmd: vec![],
        env: vec![],
        working_dir: None,
        stop_signal: None,
        entries: vec![Entry::File {
            path: "pause".into(),
            mode: 0o755,
            contents: FileContents::HostFile(pause_binary.to_path_buf()),
        }],
    }
}

/// The app image: busybox with a shell, httpd and friends, and a default page.
pub fn app_image(busybox: &Path) -> ImageSpec {
    let mut entries = vec![dir("bin"), dir("etc"), dir("proc"), dir("sys"), dir("dev"), dir("var"), dir("www")];
    entries.push(Entry::Dir { path: "tmp".into(), mode: 0o1777 });
    entries.push(Entry::File {
        path: "bin/busybox".into(),
        mode: 0o755,
        contents: FileContents::HostFile(busybox.to_path_buf()),
    });
    entries.extend(
        APPLETS.iter().map(|applet| Entry::Symlink { path: format!("bin/{applet}"), target: "busybox".into() }),
    );
    entries.push(Entry::File {
        path: "etc/passwd".into(),
        mode: 0o644,
        contents: FileContents::Bytes(
            b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n".to_vec(),
        ),
    });
    entries.push(Entry::File {
        path: "etc/group".into(),
        mode: 0o644,
        contents: FileContents::Bytes(b"root:x:0:\nnobody:x:65534:\n".to_vec()),
    });
    entries.push(Entry::File {
        path: "www/index.html".into(),
        mode: 0o644,
        contents: FileContents::Bytes(b"bosun app image\n".to_vec()),
    });
    ImageSpec {
        repository: APP_REPOSITORY.into(),
        tag: APP_TAG.into(),
        entrypoint: vec![],
        cmd: vec!["sh".into()],
        env: vec!["PATH=/bin".into()],
        working_dir: Some("/".into()),
        stop_signal: None,
        entries,
    }
}

/// Builds both images under `out` (`out/pause`, `out/app`).
pub fn build_all(out: &Path, source: &ImageSource) -> Result<Vec<ImageLayout>> {
    Ok(vec![
        write_layout(&out.join("pause"), &pause_image(&source.pause_binary))?,
        write_layout(&out.join("app"), &app_image(&source.busybox))?,
    ])
}

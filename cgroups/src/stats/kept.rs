//! [`StatsReader`]: reads the same cgroups again and again (one collection
//! every few seconds) at a fraction of the cost of opening every file each
//! time. Path lookups in cgroupfs (`open`, `statx`, `close`) were about
//! two thirds of a collection's CPU; here:
//!
//! - the files read every time stay open, and are read again with
//!   `pread(2)` at offset 0: cgroupfs regenerates a file's content whenever
//!   it is read from the start, so a kept descriptor always sees fresh
//!   numbers;
//! - limit files (`memory.max`, `pids.max`, ...) change only when written
//!   (a resize), so their text is kept and re-read every `refresh_every`
//!   reads of the cgroup, not held open;
//! - a file found absent (no PSI in the unified tree, a controller not
//!   enabled) is remembered as absent and looked for again only then too;
//! - at most `max_open` descriptors are kept (a budget under the process's
//!   file limit); beyond it files are opened per read, as [`super::read`] does.
//!
//! A cgroup not read between two [`StatsReader::sweep`]s is forgotten and
//! its files closed. A removed cgroup's kept file answers `ENODEV`, which
//! reads as "gone", like a missing file.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{gone, read_with, CgroupDirs, CgroupStats, Changes, Error, Fetch, Result};

/// Bytes asked for per `pread`. cgroupfs files are one record each, so a
/// read that returns less than this has reached the end (one call per file).
const CHUNK: usize = 8192;

/// A stats reader that keeps files open between reads (see the module doc).
#[derive(Debug)]
pub struct StatsReader {
    cgroups: HashMap<CgroupDirs, Kept>,
    max_open: usize,
    open: usize,
    refresh_every: u32,
    buf: Vec<u8>,
}

/// What is kept about one cgroup.
#[derive(Debug, Default)]
struct Kept {
    files: Vec<Slot>,
    /// Reads of this cgroup so far.
    reads: u32,
    /// Read since the last sweep.
    used: bool,
}

#[derive(Debug)]
struct Slot {
    name: &'static str,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Held open, read with `pread` from offset 0.
    Open(File),
    /// A rarely changing file's last text.
    Text(String),
    /// The file did not exist when last looked for.
    Absent,
    /// Over the descriptor budget: opened for each read.
    Unkept,
}

impl StatsReader {
    /// A reader keeping at most `max_open` files open, re-reading limits and
    /// looking for absent files every `refresh_every` reads of a cgroup.
    pub fn new(max_open: usize, refresh_every: u32) -> Self {
        Self { cgroups: HashMap::new(), max_open, open: 0, refresh_every: refresh_every.max(1), buf: Vec::new() }
    }

    /// Reads the stats of the cgroup at `dirs`.
    pub fn read(&mut self, dirs: &CgroupDirs) -> Result<CgroupStats> {
        if !self.cgroups.contains_key(dirs) {
            self.cgroups.insert(dirs.clone(), Kept::default());
        }
        let Self { cgroups, max_open, open, refresh_every, buf } = self;
        let Some(kept) = cgroups.get_mut(dirs) else { return read_with(&mut super::OneShot::default(), dirs) };
        let refresh = kept.reads % *refresh_every == 0;
        kept.reads = kept.reads.wrapping_add(1);
        kept.used = true;
        let mut view = View { kept, buf, open, max_open: *max_open, refresh };
        read_with(&mut view, dirs)
    }

    /// Forgets the cgroups not read since the last sweep, closing their files.
    pub fn sweep(&mut self) {
        let mut closed = 0;
        self.cgroups.retain(|_, kept| {
            let keep = std::mem::take(&mut kept.used);
            if !keep {
                closed += kept.files.iter().filter(|s| matches!(s.state, State::Open(_))).count();
            }
            keep
        });
        self.open = self.open.saturating_sub(closed);
    }

    /// Files held open now.
    pub fn open_files(&self) -> usize {
        self.open
    }

    /// Cgroups remembered now.
    pub fn cgroups(&self) -> usize {
        self.cgroups.len()
    }
}

/// One cgroup's kept files during one read.
struct View<'a> {
    kept: &'a mut Kept,
    buf: &'a mut Vec<u8>,
    open: &'a mut usize,
    max_open: usize,
    refresh: bool,
}

/// Reads `file` from offset 0 into `buf`.
fn read_from_start(file: &File, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    loop {
        let len = buf.len();
        buf.resize(len + CHUNK, 0);
        let offset = u64::try_from(len).unwrap_or(u64::MAX);
        let n = file.read_at(&mut buf[len..], offset);
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                buf.clear();
                return Err(e);
            }
        };
        buf.truncate(len + n);
        if n < CHUNK {
            return Ok(());
        }
    }
}

fn text<'b>(dir: &Path, name: &str, buf: &'b [u8]) -> Result<&'b str> {
    std::str::from_utf8(buf).map_err(|_| Error::Parse { path: dir.join(name), message: "not UTF-8 text".to_string() })
}

/// What a fetch does with a slot.
enum Step {
    /// Open the file and read it (first time, refresh, or over budget).
    Look,
    /// Known absent.
    Absent,
    /// Known text.
    Text,
    /// `pread` the kept descriptor.
    Pread,
}

impl Fetch for View<'_> {
    fn fetch(&mut self, dir: &Path, name: &'static str, changes: Changes) -> Result<Option<&str>> {
        let index = match self.kept.files.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.kept.files.push(Slot { name, state: State::Absent });
                return self.look(dir, name, changes, self.kept.files.len() - 1);
            }
        };
        let step = match &self.kept.files[index].state {
            State::Absent | State::Text(_) if self.refresh => Step::Look,
            State::Unkept => Step::Look,
            State::Absent => Step::Absent,
            State::Text(_) => Step::Text,
            State::Open(_) => Step::Pread,
        };
        match step {
            Step::Look => self.look(dir, name, changes, index),
            Step::Absent => Ok(None),
            Step::Text => match &self.kept.files[index].state {
                State::Text(t) => Ok(Some(t.as_str())),
                _ => Ok(None),
            },
            Step::Pread => {
                let State::Open(file) = &self.kept.files[index].state else { return Ok(None) };
                match read_from_start(file, self.buf) {
                    Ok(()) => text(dir, name, self.buf).map(Some),
                    Err(e) if gone(&e) => {
                        self.set(index, State::Absent);
                        Ok(None)
                    }
                    Err(source) => Err(Error::Read { path: dir.join(name), source }),
                }
            }
        }
    }
}

impl View<'_> {
    /// Opens `dir/name` and reads it, deciding how to keep it in slot `index`.
    fn look(&mut self, dir: &Path, name: &'static str, changes: Changes, index: usize) -> Result<Option<&str>> {
        let path = dir.join(name);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if gone(&e) => {
                self.set(index, State::Absent);
                return Ok(None);
            }
            Err(source) => return Err(Error::Read { path, source }),
        };
        match read_from_start(&file, self.buf) {
            Ok(()) => {}
            Err(e) if gone(&e) => {
                self.set(index, State::Absent);
                return Ok(None);
            }
            Err(source) => return Err(Error::Read { path, source }),
        }
        let state = match changes {
            Changes::Rarely => State::Text(text(dir, name, self.buf)?.to_string()),
            Changes::Always if *self.open < self.max_open => State::Open(file),
            Changes::Always => State::Unkept,
        };
        self.set(index, state);
        text(dir, name, self.buf).map(Some)
    }

    /// Puts `state` in slot `index`, keeping the open-file count.
    fn set(&mut self, index: usize, state: State) {
        let slot = &mut self.kept.files[index].state;
        if matches!(slot, State::Open(_)) {
            *self.open = self.open.saturating_sub(1);
        }
        if matches!(state, State::Open(_)) {
            *self.open += 1;
        }
        *slot = state;
    }
}

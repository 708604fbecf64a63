//! The process collector: `process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
//! `process_open_fds` and `process_threads`, as the upstream Go client
//! names them, read from `/proc/self` when scraped.
//!
//! procfs reads never wait on a disk, so they are done inline in the scrape.
//! Parsing is pure ([`parse_stat`]); a field that cannot be read is left out
//! of the scrape rather than reported as zero.

use std::path::{Path, PathBuf};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// `USER_HZ`: the unit of `utime` and `stime` in `/proc/<pid>/stat`, fixed
/// at 100 by the kernel's user-space ABI on every architecture Linux runs on.
const USER_HZ: f64 = 100.0;

/// Bytes per page for `rss` in `/proc/<pid>/stat` (4 KiB on x86_64 and the
/// usual aarch64 kernels; `VmRSS` of `status` would be exact but needs a
/// second read).
const PAGE_SIZE: u64 = 4096;

/// What `/proc/<pid>/stat` says about the process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: u64,
    /// Resident set, in bytes.
    pub resident_bytes: u64,
    /// Threads.
    pub threads: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    // rest starts at field 3 (state); field n is rest[n - 3].
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n.checked_sub(3)?).and_then(|f| f.parse::<u64>().ok());
    let ticks = field(14)?.saturating_add(field(15)?);
    Some(Stat {
        // u64 ticks to f64 loses nothing below 2^53 ticks (~2.8 million years).
        cpu_seconds: ticks as f64 / USER_HZ,
        threads: field(20)?,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)?.saturating_mul(PAGE_SIZE),
    })
}

/// Reads the process's series from a procfs directory (`/proc/self`).
#[derive(Debug)]
pub struct ProcessCollector {
    dir: PathBuf,
}

impl ProcessCollector {
    /// A collector of this process.
    pub fn new() -> Self {
        Self::of(Path::new("/proc/self"))
    }

    /// A collector of the process whose procfs directory is `dir`.
    pub fn of(dir: &Path) -> Self {
        Self { dir: dir.to_owned() }
    }

    /// Registers a collector of this process in `registry`.
    pub fn register(registry: &mut Registry) {
        registry.register_collector(Box::new(Self::new()));
    }

    fn open_fds(&self) -> Option<u64> {
        let entries = std::fs::read_dir(self.dir.join("fd")).ok()?;
        // The directory handle itself is one of the entries.
        Some(u64::try_from(entries.count()).unwrap_or(u64::MAX).saturating_sub(1))
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn bytes(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stat = std::fs::read_to_string(self.dir.join("stat")).ok().and_then(|text| parse_stat(&text));
        if let Some(stat) = stat {
            let cpu = ConstCounter::new(stat.cpu_seconds);
            let help = "Total user and system CPU time spent in seconds";
            cpu.encode(encoder.encode_descriptor("process_cpu_seconds", help, None, cpu.metric_type())?)?;
            let help = "Resident memory size in bytes";
            gauge(&mut encoder, "process_resident_memory_bytes", help, bytes(stat.resident_bytes))?;
            let help = "Virtual memory size in bytes";
            gauge(&mut encoder, "process_virtual_memory_bytes", help, bytes(stat.virtual_bytes))?;
            gauge(&mut encoder, "process_threads", "Number of OS threads", bytes(stat.threads))?;
        }
        if let Some(fds) = self.open_fds() {
            gauge(&mut encoder, "process_open_fds", "Number of open file descriptors", bytes(fds))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis, as the kernel writes it.
        let text = "4242 (bosun (a) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 7 0 \
                    123456 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse_stat(text).expect("parses");
        assert_eq!(
            stat,
            Stat { cpu_seconds: 3.0, threads: 7, virtual_bytes: 104_857_600, resident_bytes: 2560 * 4096 }
        );
    }

    #[test]
    fn truncated_stat_is_not_a_reading() {
        assert_eq!(parse_stat("4242 (bosun) S 1 2 3"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_shows_its_memory_cpu_and_fds() {
        let mut registry = Registry::default();
        ProcessCollector::register(&mut registry);
        let text = crate::render(&registry);
        for want in [
            "# TYPE process_cpu_seconds counter",
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
        ] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
        assert!(!text.contains("process_resident_memory_bytes 0\n"), "{text}");
    }
}

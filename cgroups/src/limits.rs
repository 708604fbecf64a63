//! The limits of one cgroup, in the kubelet's units, and the conversions
//! upstream uses: cpu shares from millicores (`milli * 1024 / 1000`, within
//! [`MIN_SHARES`, `MAX_SHARES`]), CFS quota from millicores for a period,
//! cgroup v2 `cpu.weight` from shares (`1 + (shares - 2) * 9999 / 262142`).
//! Every product saturates: the numbers come from users.

/// The kernel's smallest cpu shares value (also BestEffort's shares).
pub const MIN_SHARES: u64 = 2;
/// The kernel's largest cpu shares value.
pub const MAX_SHARES: u64 = 262_144;
/// The CFS period the kubelet uses (100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;
/// The kernel's smallest CFS quota (1 ms).
pub const MIN_QUOTA_US: i64 = 1_000;
/// The kernel's largest CFS quota (`max_cfs_runtime`, about 2^44 ns).
pub const MAX_QUOTA_US: i64 = (1 << 44) / 1_000;
/// The largest cgroup v2 cpu weight.
pub const MAX_WEIGHT: u64 = 10_000;

/// What to write to one cgroup; `None` leaves a value as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// cpu shares (v1 `cpu.shares`; v2 `cpu.weight` via [`shares_to_weight`]).
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per [`Limits::cpu_period_us`]; `-1` is unlimited.
    pub cpu_quota_us: Option<i64>,
    /// CFS period in microseconds.
    pub cpu_period_us: Option<u64>,
    /// Memory limit in bytes; `-1` is unlimited.
    pub memory_bytes: Option<i64>,
    /// Largest number of tasks; `-1` is unlimited.
    pub pids_max: Option<i64>,
}

/// cpu shares of a request in millicores, clamped to what the kernel accepts.
pub fn shares_from_millis(milli: i64) -> u64 {
    let shares = milli.max(0).saturating_mul(1024) / 1000;
    u64::try_from(shares).unwrap_or(MAX_SHARES).clamp(MIN_SHARES, MAX_SHARES)
}

/// CFS quota of a limit in millicores for `period_us`, clamped to what the kernel accepts.
pub fn quota_from_millis(milli: i64, period_us: u64) -> i64 {
    let period = i64::try_from(period_us).unwrap_or(i64::MAX);
    (milli.max(0).saturating_mul(period) / 1000).clamp(MIN_QUOTA_US, MAX_QUOTA_US)
}

/// The cgroup v2 `cpu.weight` of v1 `shares` (upstream's `CpuSharesToCpuWeight`).
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + (shares - MIN_SHARES) * (MAX_WEIGHT - 1) / (MAX_SHARES - MIN_SHARES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_millicores_as_upstream() {
        for (milli, shares, quota) in [
            (0, 2, 1_000),
            (1, 2, 1_000),
            (100, 102, 10_000),
            (250, 256, 25_000),
            (1000, 1024, 100_000),
            (2500, 2560, 250_000),
            (-5, 2, 1_000),
            (i64::MAX, MAX_SHARES, MAX_QUOTA_US),
        ] {
            assert_eq!(shares_from_millis(milli), shares, "shares of {milli}m");
            assert_eq!(quota_from_millis(milli, CPU_PERIOD_US), quota, "quota of {milli}m");
        }
    }

    #[test]
    fn converts_shares_to_weight_as_upstream() {
        for (shares, weight) in [(0, 1), (2, 1), (102, 4), (1024, 39), (MAX_SHARES, MAX_WEIGHT), (u64::MAX, MAX_WEIGHT)]
        {
            assert_eq!(shares_to_weight(shares), weight, "weight of {shares} shares");
        }
    }
}

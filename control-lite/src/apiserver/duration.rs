//! Upstream's `HumanDuration` (a leaf: Table cells and printer columns use it).

/// Upstream `HumanDuration` of the time between `since` and `now`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        let d = hours / 24;
        return if h == 0 { format!("{d}d") } else { format!("{d}d{h}h") };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let y = hours / 24 / 365;
        let d = (hours / 24) % 365;
        return if d == 0 { format!("{y}y") } else { format!("{y}y{d}d") };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_duration_matches_upstream() {
        let cases = [
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (192, "3m12s"),
            (300, "5m"),
            (3600, "60m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (2 * 86400, "2d"),
            (3 * 86400 + 7200, "3d2h"),
            (30 * 86400, "30d"),
            (800 * 86400, "2y70d"),
            (-5, "<invalid>"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }
}

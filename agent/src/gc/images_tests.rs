use super::*;

const SEC: i64 = 1_000_000_000;
const NOW: i64 = 10_000 * SEC;
const GIB: u64 = 1 << 30;

fn record(first_s: i64, used_s: i64, size: u64) -> ImageRecord {
    ImageRecord { first_detected: first_s * SEC, last_used: used_s * SEC, size, pinned: false }
}

fn records(entries: &[(&str, ImageRecord)]) -> ImageRecords {
    ImageRecords(entries.iter().map(|(id, r)| (id.to_string(), *r)).collect())
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn policy(high: u8, low: u8, min_age_s: u64) -> ImagePolicy {
    ImagePolicy { high_threshold_percent: high, low_threshold_percent: low, min_age: Duration::from_secs(min_age_s) }
}

/// 100 GiB disk with `used` GiB used.
fn disk(used: u64) -> FsStats {
    FsStats { capacity: 100 * GIB, available: (100 - used) * GIB }
}

#[test]
fn image_gc_frees_least_recently_used_images_down_to_the_low_threshold() {
    let all = records(&[
        ("old", record(100, 200, 3 * GIB)),
        ("older", record(100, 150, 3 * GIB)),
        ("never-used", record(50, 0, 3 * GIB)),
        ("recent", record(100, 9_000, 3 * GIB)),
    ]);
    struct Case {
        name: &'static str,
        used: u64,
        policy: ImagePolicy,
        in_use: &'static [&'static str],
        want_remove: &'static [&'static str],
        want_to_free: u64,
        short: bool,
    }
    let cases = [
        Case {
            name: "under the high threshold nothing happens",
            used: 84,
            policy: policy(85, 80, 0),
            in_use: &[],
            want_remove: &[],
            want_to_free: 0,
            short: false,
        },
        Case {
            name: "at the high threshold: free 5 GiB, oldest use first (never used counts as oldest)",
            used: 85,
            policy: policy(85, 80, 0),
            in_use: &[],
            want_remove: &["never-used", "older"],
            want_to_free: 5 * GIB,
            short: false,
        },
        Case {
            name: "images in use are skipped",
            used: 85,
            policy: policy(85, 80, 0),
            in_use: &["never-used"],
            want_remove: &["older", "old"],
            want_to_free: 5 * GIB,
            short: false,
        },
        Case {
            name: "young images stay (minimum age counts from first detection)",
            used: 90,
            policy: policy(85, 80, 9_905),
            in_use: &[],
            want_remove: &["never-used"],
            want_to_free: 10 * GIB,
            short: true,
        },
        Case {
            name: "thresholds forced low: everything unused goes and it still falls short",
            used: 40,
            policy: policy(1, 0, 0),
            in_use: &["recent"],
            want_remove: &["never-used", "older", "old"],
            want_to_free: 40 * GIB,
            short: true,
        },
        Case {
            name: "a high threshold of 100 turns image GC off",
            used: 99,
            policy: policy(100, 0, 0),
            in_use: &[],
            want_remove: &[],
            want_to_free: 0,
            short: false,
        },
    ];
    for case in cases {
        let plan = compute_image_gc(&all, &set(case.in_use), disk(case.used), case.policy, NOW).expect(case.name);
        assert_eq!(plan.remove, case.want_remove, "{}", case.name);
        assert_eq!(plan.bytes_to_free, case.want_to_free, "{}", case.name);
        assert_eq!(plan.falls_short(), case.short, "{}", case.name);
        assert_eq!(plan.usage_percent, case.used, "{}", case.name);
    }
}

#[test]
fn pinned_images_and_images_used_this_pass_are_never_removed() {
    let mut pause = record(0, 0, GIB);
    pause.pinned = true;
    let all = records(&[("pause", pause), ("just-used", record(0, 10_000, GIB)), ("idle", record(0, 1, GIB))]);
    let plan = compute_image_gc(&all, &set(&[]), disk(50), policy(1, 0, 0), NOW).unwrap();
    assert_eq!(plan.remove, ["idle"]);
}

#[test]
fn zero_capacity_is_invalid() {
    let fs = FsStats { capacity: 0, available: 0 };
    assert_eq!(
        compute_image_gc(&ImageRecords::default(), &set(&[]), fs, policy(85, 80, 0), NOW),
        Err(Error::InvalidCapacity)
    );
}

#[test]
fn available_above_capacity_is_clamped() {
    let fs = FsStats { capacity: 10, available: u64::MAX };
    let plan = compute_image_gc(&ImageRecords::default(), &set(&[]), fs, policy(0, 0, 0), NOW).unwrap();
    assert_eq!((plan.usage_percent, plan.bytes_to_free), (0, 0));
}

#[test]
fn detection_keeps_first_sight_and_stamps_use() {
    let image = |id: &str| RuntimeImage { id: id.into(), size: 7, ..Default::default() };
    let before = records(&[("a", record(5, 6, 1)), ("gone", record(1, 1, 1))]);
    let after = before.detect(&[image("a"), image("b")], &set(&["b"]), NOW);
    assert_eq!(
        after,
        records(&[
            ("a", ImageRecord { first_detected: 5 * SEC, last_used: 6 * SEC, size: 7, pinned: false }),
            ("b", ImageRecord { first_detected: NOW, last_used: NOW, size: 7, pinned: false }),
        ])
    );
}

#[test]
fn containers_name_images_by_id_tag_or_digest() {
    let images = [
        RuntimeImage { id: "sha256:1".into(), repo_tags: vec!["r/app:1.0".into()], ..Default::default() },
        RuntimeImage { id: "sha256:2".into(), repo_digests: vec!["r/x@sha256:d".into()], ..Default::default() },
        RuntimeImage { id: "sha256:3".into(), ..Default::default() },
        RuntimeImage { id: "sha256:4".into(), repo_tags: vec!["r/unused:1".into()], ..Default::default() },
    ];
    let used = images_in_use(&images, ["r/app:1.0", "r/x@sha256:d", "sha256:3", ""]);
    assert_eq!(used, set(&["sha256:1", "sha256:2", "sha256:3"]));
}

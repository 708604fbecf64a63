//! Which unused images to remove (pure), with upstream's policy: when the
//! image filesystem's usage reaches `high_threshold_percent`, free enough
//! to get down to `low_threshold_percent`, least recently used first
//! (ties: first detected first); never an image a container uses (in any
//! state), a pinned one or the sandbox image, nor one first seen less than
//! `min_age` ago (it may have just been pulled for a container about to be
//! created).
//!
//! The agent remembers when it first saw each image and when a container
//! last used it ([`ImageRecords::detect`]): the runtime records neither.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// An image in the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeImage {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub size: u64,
    /// The runtime pins it (CRI `pinned`), or it is the sandbox image.
    pub pinned: bool,
}

impl RuntimeImage {
    /// True if `reference` (an id, tag or digest reference) names this image.
    pub fn is_named(&self, reference: &str) -> bool {
        self.id == reference
            || self.repo_tags.iter().any(|t| t == reference)
            || self.repo_digests.iter().any(|d| d == reference)
    }
}

/// What the agent remembers of one image (times in ns since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRecord {
    pub first_detected: i64,
    pub last_used: i64,
    pub size: u64,
    pub pinned: bool,
}

/// Records of the images the runtime has, by image id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRecords(pub BTreeMap<String, ImageRecord>);

impl ImageRecords {
    /// The records after seeing `images` at `now`, `in_use` holding the ids
    /// of images containers use: new images are first detected now, used
    /// ones last used now; records of images gone from the runtime go.
    pub fn detect(&self, images: &[RuntimeImage], in_use: &BTreeSet<String>, now: i64) -> ImageRecords {
        let mut next = BTreeMap::new();
        for image in images {
            let old = self.0.get(&image.id);
            let first_detected = old.map_or(now, |r| r.first_detected);
            let last_used = if in_use.contains(&image.id) { now } else { old.map_or(0, |r| r.last_used) };
            next.insert(
                image.id.clone(),
                ImageRecord { first_detected, last_used, size: image.size, pinned: image.pinned },
            );
        }
        ImageRecords(next)
    }
}

/// The ids of `images` named by any of `references` (containers' image
/// references: ids, tags or digests).
pub fn images_in_use<'a>(images: &[RuntimeImage], references: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let references: BTreeSet<&str> = references.into_iter().filter(|r| !r.is_empty()).collect();
    images.iter().filter(|image| references.iter().any(|r| image.is_named(r))).map(|image| image.id.clone()).collect()
}

/// The image GC policy (upstream `ImageGCPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImagePolicy {
    /// Usage (percent of capacity) at which GC starts (`imageGCHighThresholdPercent`, 85; 100 turns image GC off).
    pub high_threshold_percent: u8,
    /// Usage GC frees down to (`imageGCLowThresholdPercent`, 80).
    pub low_threshold_percent: u8,
    /// Images first seen less than this ago stay (`imageMinimumGCAge`, 2 min).
    pub min_age: Duration,
}

impl Default for ImagePolicy {
    fn default() -> Self {
        Self { high_threshold_percent: 85, low_threshold_percent: 80, min_age: Duration::from_secs(120) }
    }
}

impl ImagePolicy {
    /// Upstream turns image GC off at a high threshold of 100.
    pub fn enabled(&self) -> bool {
        self.high_threshold_percent < 100
    }
}

/// Size and free space of the image filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    pub capacity: u64,
    pub available: u64,
}

/// What one image GC pass does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageGcPlan {
    /// Usage of the image filesystem, percent (upstream's rounding).
    pub usage_percent: u64,
    /// Bytes to free to reach the low threshold (0: under the high one).
    pub bytes_to_free: u64,
    /// Images to remove (ids), in order.
    pub remove: Vec<String>,
    /// Their total size.
    pub planned_bytes: u64,
}

impl ImageGcPlan {
    /// True when the removable images do not free enough (upstream's
    /// `FreeDiskSpaceFailed`).
    pub fn falls_short(&self) -> bool {
        self.planned_bytes < self.bytes_to_free
    }
}

/// Why image GC cannot decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Upstream's `InvalidDiskCapacity`: stats are not ready.
    #[error("invalid capacity 0 on image filesystem")]
    InvalidCapacity,
}

/// Decides one pass at `now` (ns since the epoch), from the records (which
/// [`ImageRecords::detect`] updated at `now` with `in_use`).
pub fn compute_image_gc(
    records: &ImageRecords,
    in_use: &BTreeSet<String>,
    fs: FsStats,
    policy: ImagePolicy,
    now: i64,
) -> Result<ImageGcPlan, Error> {
    if fs.capacity == 0 {
        return Err(Error::InvalidCapacity);
    }
    let available = fs.available.min(fs.capacity);
    let percent_free = u128::from(available) * 100 / u128::from(fs.capacity);
    let usage_percent = 100 - u64::try_from(percent_free).unwrap_or(100);
    if !policy.enabled() || usage_percent < u64::from(policy.high_threshold_percent) {
        return Ok(ImageGcPlan { usage_percent, ..Default::default() });
    }
    let low = u128::from(policy.low_threshold_percent.min(100));
    let target_used = u128::from(fs.capacity) * (100 - low) / 100;
    let bytes_to_free = u64::try_from(target_used.saturating_sub(u128::from(available))).unwrap_or(u64::MAX);
    let min_age = i64::try_from(policy.min_age.as_nanos()).unwrap_or(i64::MAX);
    let mut candidates: Vec<(&String, &ImageRecord)> = records
        .0
        .iter()
        .filter(|(id, r)| !in_use.contains(*id) && !r.pinned)
        .filter(|(_, r)| r.last_used < now && now.saturating_sub(r.first_detected) >= min_age)
        .collect();
    candidates.sort_by_key(|(id, r)| (r.last_used, r.first_detected, *id));
    let mut plan = ImageGcPlan { usage_percent, bytes_to_free, ..Default::default() };
    for (id, record) in candidates {
        if plan.planned_bytes >= bytes_to_free {
            break;
        }
        plan.remove.push(id.clone());
        plan.planned_bytes = plan.planned_bytes.saturating_add(record.size);
    }
    Ok(plan)
}

#[cfg(test)]
#[path = "images_tests.rs"]
mod tests;

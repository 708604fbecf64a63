//! `pod-template-hash`: a short, stable name suffix derived from a pod
//! template, as upstream's deployment controller computes it (FNV-1a 32 of
//! the template, rendered in the "safe encoding" alphabet).

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// Label (and RS name suffix) carrying the hash.
pub const LABEL: &str = "pod-template-hash";

/// Upstream `rand.SafeEncodeString` alphabet: no vowels, no confusable
/// characters, so hashes never spell words.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

fn fnv1a(hash: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(hash, |h, b| (h ^ u32::from(*b)).wrapping_mul(FNV_PRIME))
}

/// Hash of `template`'s canonical JSON (struct fields in declaration order,
/// maps sorted), salted with `collision_count` when set.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    // Serializing plain data structures to a Vec cannot fail; an empty
    // rendering would still give a stable (if shared) hash.
    let canonical = serde_json::to_vec(template).unwrap_or_default();
    let mut hash = fnv1a(FNV_OFFSET, &canonical);
    if let Some(count) = collision_count {
        hash = fnv1a(hash, count.to_string().as_bytes());
    }
    safe_encode(&hash.to_string())
}

/// Maps each byte onto the safe alphabet (upstream `SafeEncodeString`).
fn safe_encode(s: &str) -> String {
    s.bytes().map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str, labels: serde_json::Value) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "web", "image": image}]}
        }))
        .expect("template")
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0x811c_9dc5);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn safe_encoding_maps_digits_into_the_alphabet() {
        // '0' is byte 48; 48 % 27 = 21 -> '4'. '9' is 57; 57 % 27 = 3 -> 'f'.
        assert_eq!(safe_encode("09"), "4f");
    }

    #[test]
    fn hash_is_stable_and_sensitive_to_template_and_collisions() {
        let a = template("nginx:1", json!({"app": "web", "tier": "x"}));
        let same_different_order = template("nginx:1", json!({"tier": "x", "app": "web"}));
        let b = template("nginx:2", json!({"app": "web", "tier": "x"}));
        let hash = pod_template_hash(&a, None);
        assert_eq!(hash, pod_template_hash(&same_different_order, None));
        assert_ne!(hash, pod_template_hash(&b, None));
        assert_ne!(hash, pod_template_hash(&a, Some(1)));
        assert!(hash.bytes().all(|c| SAFE_ALPHABET.contains(&c)), "{hash}");
        assert!((1..=10).contains(&hash.len()), "{hash}");
    }
}

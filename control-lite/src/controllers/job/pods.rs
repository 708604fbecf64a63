//! What the Job controller reads from and writes into pods: the pods it
//! creates (Indexed ones carry their completion index as annotation, label,
//! `JOB_COMPLETION_INDEX` env var and hostname `<job>-<index>`), the index
//! of a pod, `status.completedIndexes` ("1,3-5") parsing and rendering, and
//! which pod failure policy rule a failed pod matches. Pure.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::{Job, PodFailurePolicy};
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::controllers::selector;

/// Annotation and label with an Indexed Job pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The env var an Indexed Job's containers see their index in.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// Longest hostname (a DNS label).
const MAX_HOSTNAME: usize = 63;

/// The pod a Job creates, with its completion index if Indexed.
pub fn pod_for(job: &Job, index: Option<i32>) -> Pod {
    let template = job.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    let generate_name = match index {
        Some(ix) => {
            labels.insert(COMPLETION_INDEX.into(), ix.to_string());
            annotations.insert(COMPLETION_INDEX.into(), ix.to_string());
            let hostname = format!("{name}-{ix}");
            if spec.hostname.is_none() && hostname.len() <= MAX_HOSTNAME {
                spec.hostname = Some(hostname);
            }
            let env = EnvVar { name: INDEX_ENV.into(), value: Some(ix.to_string()), value_from: None };
            let containers = spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten());
            for c in containers {
                let vars = c.env.get_or_insert_with(Vec::new);
                if !vars.iter().any(|v| v.name == INDEX_ENV) {
                    vars.push(env.clone());
                }
            }
            format!("{name}-{ix}-")
        }
        None => format!("{name}-"),
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: meta.finalizers,
            owner_references: Some(vec![selector::controller_ref(
                "batch/v1",
                "Job",
                &name,
                job.metadata.uid.as_deref().unwrap_or_default(),
            )]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// A pod's completion index, if it has a valid one below `completions`.
pub fn index_of(pod: &Pod, completions: i32) -> Option<i32> {
    let raw = pod.metadata.annotations.as_ref().and_then(|a| a.get(COMPLETION_INDEX))?;
    raw.parse::<i32>().ok().filter(|ix| (0..completions).contains(ix))
}

/// Parses `completedIndexes` ("1,3-5"), keeping indexes below `completions`;
/// the work is bounded by `completions` plus the text's length.
pub fn parse_indexes(text: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    // Well-formed ranges do not overlap, so together they span at most
    // `completions` indexes: more is malformed and ignored.
    let mut budget = i64::from(completions.max(0));
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (from, to) = part.split_once('-').unwrap_or((part, part));
        let (Ok(from), Ok(to)) = (from.parse::<i32>(), to.parse::<i32>()) else { continue };
        let to = to.min(completions.saturating_sub(1));
        if from < 0 || from > to {
            continue;
        }
        budget -= i64::from(to) - i64::from(from) + 1;
        if budget < 0 {
            break;
        }
        out.extend(from..=to);
    }
    out
}

/// Renders indexes as upstream does: ascending, runs as ranges ("0,2-4").
pub fn render_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == end.checked_add(1).as_ref() {
            end = iter.next().unwrap_or(end);
        }
        if end == start {
            parts.push(start.to_string());
        } else {
            parts.push(format!("{start}-{end}"));
        }
    }
    parts.join(",")
}

/// What a pod failure policy says about a failed pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Fail the whole Job (rule index for the message).
    FailJob(usize),
    /// Do not count the failure against `backoffLimit`.
    Ignore,
    /// Count it (a `Count` rule, `FailIndex` here, or no rule matched).
    Count,
}

/// The first rule of `policy` that matches the failed `pod`.
pub fn judge(policy: Option<&PodFailurePolicy>, pod: &Pod) -> Verdict {
    let Some(policy) = policy else { return Verdict::Count };
    let status = pod.status.as_ref();
    for (i, rule) in policy.rules.iter().enumerate() {
        let by_code = rule.on_exit_codes.as_ref().is_some_and(|req| {
            status
                .into_iter()
                .flat_map(|s| s.container_statuses.iter().flatten().chain(s.init_container_statuses.iter().flatten()))
                .filter(|c| req.container_name.as_ref().is_none_or(|n| *n == c.name))
                .filter_map(|c| c.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code))
                .filter(|code| *code != 0)
                .any(|code| match req.operator.as_str() {
                    "In" => req.values.contains(&code),
                    "NotIn" => !req.values.contains(&code),
                    _ => false,
                })
        });
        let by_condition = rule.on_pod_conditions.iter().flatten().any(|pattern| {
            status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == pattern.type_ && c.status == pattern.status)
        });
        if by_code || by_condition {
            return match rule.action.as_str() {
                "FailJob" => Verdict::FailJob(i),
                "Ignore" => Verdict::Ignore,
                _ => Verdict::Count,
            };
        }
    }
    Verdict::Count
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn completed_indexes_round_trip() {
        let cases = [("", ""), ("0", "0"), ("0,1", "0-1"), ("0,1,2,5", "0-2,5"), ("3-5,1", "1,3-5"), ("7-9", "7-8")];
        for (text, want) in cases {
            assert_eq!(render_indexes(&parse_indexes(text, 9)), want, "{text}");
        }
        assert!(parse_indexes("x,-3,5-2,99999999999", 10).is_empty());
        assert_eq!(parse_indexes("0-2147483647", 3).len(), 3);
        let overlapping = "0-99998,".repeat(1000);
        assert_eq!(parse_indexes(&overlapping, 100_000).len(), 99_999, "stops once the ranges overlap");
    }

    #[test]
    fn indexed_pods_carry_their_index() {
        let job: Job = serde_json::from_value(json!({"metadata": {"name": "idx", "namespace": "ns", "uid": "u"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "i", "env": [{"name": "A", "value": "1"}]}]}}}}))
        .expect("job");
        let pod = pod_for(&job, Some(2));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("idx-2-"));
        assert_eq!(index_of(&pod, 3), Some(2));
        assert_eq!(index_of(&pod, 2), None);
        let spec = pod.spec.expect("spec");
        assert_eq!(spec.hostname.as_deref(), Some("idx-2"));
        let env = spec.containers[0].env.clone().unwrap_or_default();
        assert_eq!(
            env.iter().map(|e| (e.name.as_str(), e.value.as_deref())).collect::<Vec<_>>(),
            vec![("A", Some("1")), (INDEX_ENV, Some("2"))]
        );
        assert_eq!(pod.metadata.owner_references.expect("owner")[0].kind, "Job");
        assert_eq!(pod_for(&job, None).metadata.generate_name.as_deref(), Some("idx-"));
    }

    #[test]
    fn failure_policy_rules_match_in_order() {
        let policy: PodFailurePolicy = serde_json::from_value(json!({"rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}},
        ]}))
        .expect("policy");
        let failed = |code: i32, conditions: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"status": {"phase": "Failed", "conditions": conditions,
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": code}}}]}}))
            .expect("pod")
        };
        assert_eq!(judge(Some(&policy), &failed(42, json!([]))), Verdict::FailJob(0));
        let disrupted = json!([{"type": "DisruptionTarget", "status": "True"}]);
        assert_eq!(judge(Some(&policy), &failed(1, disrupted)), Verdict::Ignore);
        assert_eq!(judge(Some(&policy), &failed(3, json!([]))), Verdict::Count);
        assert_eq!(judge(Some(&policy), &failed(1, json!([]))), Verdict::Count);
        assert_eq!(judge(None, &failed(42, json!([]))), Verdict::Count);
    }
}

//! Which discovery form a request's `Accept` header asks for, and whether
//! its `If-None-Match` names the current document (both pure).
//!
//! Media ranges are weighed by their quality (`q`, default 1); among equal
//! qualities the first listed wins. A range asks for aggregated discovery
//! when it is `application/json` with `g=apidiscovery.k8s.io`,
//! `as=APIGroupDiscoveryList` and a served `v`; plain `application/json`,
//! `application/*` and `*/*` ask for the legacy documents. Anything else
//! (protobuf, an unknown version) is skipped; when nothing acceptable is
//! left the legacy document is served, as before aggregated discovery.

/// The group of the aggregated discovery types.
pub const GROUP: &str = "apidiscovery.k8s.io";
/// The kind a client names in `as=`.
pub const LIST_KIND: &str = "APIGroupDiscoveryList";

/// Media ranges looked at, at most (a header is bounded by the HTTP layer;
/// this bounds the work on it).
const MAX_RANGES: usize = 32;

/// A served version of `apidiscovery.k8s.io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryVersion {
    /// `apidiscovery.k8s.io/v2` (GA since Kubernetes 1.30).
    V2,
    /// `apidiscovery.k8s.io/v2beta1` (what older clients ask for).
    V2Beta1,
}

impl DiscoveryVersion {
    /// The version segment, `v2` or `v2beta1`.
    pub fn as_str(self) -> &'static str {
        match self {
            DiscoveryVersion::V2 => "v2",
            DiscoveryVersion::V2Beta1 => "v2beta1",
        }
    }

    fn parse(s: &str) -> Option<DiscoveryVersion> {
        match s {
            "v2" => Some(DiscoveryVersion::V2),
            "v2beta1" => Some(DiscoveryVersion::V2Beta1),
            _ => None,
        }
    }

    /// The document's `apiVersion`.
    pub fn api_version(self) -> &'static str {
        match self {
            DiscoveryVersion::V2 => "apidiscovery.k8s.io/v2",
            DiscoveryVersion::V2Beta1 => "apidiscovery.k8s.io/v2beta1",
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            DiscoveryVersion::V2 => "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            DiscoveryVersion::V2Beta1 => "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
        }
    }
}

/// The discovery form to answer `/api` and `/apis` with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `APIVersions` / `APIGroupList`, as `application/json`.
    Legacy,
    /// `APIGroupDiscoveryList` of the given version.
    Aggregated(DiscoveryVersion),
}

/// Decides the form from the `Accept` header (absent: legacy).
pub fn negotiate(accept: Option<&str>) -> Form {
    let Some(accept) = accept else {
        return Form::Legacy;
    };
    let mut best: Option<(u16, Form)> = None;
    for range in accept.split(',').take(MAX_RANGES) {
        let Some((quality, form)) = weigh(range) else {
            continue;
        };
        // Strictly better only: the first of equal qualities wins.
        if quality > 0 && best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, form));
        }
    }
    best.map_or(Form::Legacy, |(_, form)| form)
}

/// One media range: its quality in thousandths and the form it asks for;
/// `None` if it asks for nothing served here or is malformed.
fn weigh(range: &str) -> Option<(u16, Form)> {
    let mut parts = range.split(';');
    let media = parts.next()?.trim().to_ascii_lowercase();
    let (mut quality, mut group, mut version, mut kind) = (1000, None, None, None);
    for param in parts {
        let (key, value) = param.split_once('=')?;
        let value = value.trim().trim_matches('"');
        match key.trim().to_ascii_lowercase().as_str() {
            "q" => quality = parse_quality(value)?,
            "g" => group = Some(value),
            "v" => version = Some(value),
            "as" => kind = Some(value),
            _ => {}
        }
    }
    let form = match (media.as_str(), group, kind) {
        ("application/json", Some(GROUP), Some(LIST_KIND)) => Form::Aggregated(DiscoveryVersion::parse(version?)?),
        ("application/json" | "application/*" | "*/*", None, None) => Form::Legacy,
        _ => return None,
    };
    Some((quality, form))
}

/// `q`: 0 to 1 with at most three decimals (RFC 9110), in thousandths.
fn parse_quality(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak tags compare by
/// their opaque part, as RFC 9110 asks for this header.
pub fn if_none_match(header: Option<&str>, etag: &str) -> bool {
    let Some(header) = header else {
        return false;
    };
    header.split(',').take(MAX_RANGES).map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    #[test]
    fn negotiates_by_quality_then_order() {
        use DiscoveryVersion::*;
        let cases: &[(Option<&str>, Form)] = &[
            (None, Form::Legacy),
            (Some(""), Form::Legacy),
            (Some("application/json"), Form::Legacy),
            (Some("*/*"), Form::Legacy),
            (Some(KUBECTL), Form::Aggregated(V2)),
            (
                Some("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"),
                Form::Aggregated(V2Beta1),
            ),
            // Quality outranks order.
            (
                Some("application/json;q=0.9,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"),
                Form::Aggregated(V2),
            ),
            (
                Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0.5,application/json"),
                Form::Legacy,
            ),
            (
                Some("application/json;as=APIGroupDiscoveryList;v=v2beta1;g=apidiscovery.k8s.io;q=0.8, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0.7"),
                Form::Aggregated(V2Beta1),
            ),
            // q=0 refuses; unknown versions, protobuf and malformed ranges are skipped.
            (Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0"), Form::Legacy),
            (Some("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList"), Form::Legacy),
            (
                Some("application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"),
                Form::Aggregated(V2Beta1),
            ),
            (Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=2"), Form::Legacy),
            (Some("application/json;g;v=v2,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"), Form::Aggregated(V2)),
            (Some("Application/JSON;G=apidiscovery.k8s.io;V=v2;AS=\"APIGroupDiscoveryList\""), Form::Aggregated(V2)),
            (Some("application/json;as=Table;v=v1;g=meta.k8s.io"), Form::Legacy),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(*accept), *want, "{accept:?}");
        }
    }

    #[test]
    fn quality_values_follow_the_rfc() {
        assert_eq!(parse_quality("1"), Some(1000));
        assert_eq!(parse_quality("1.000"), Some(1000));
        assert_eq!(parse_quality("0.5"), Some(500));
        assert_eq!(parse_quality("0.125"), Some(125));
        assert_eq!(parse_quality("0"), Some(0));
        for bad in ["1.5", "0.1234", "-0", "", "x", "0.a", "2"] {
            assert_eq!(parse_quality(bad), None, "{bad}");
        }
    }

    #[test]
    fn if_none_match_compares_tags() {
        assert!(if_none_match(Some("\"abc\""), "\"abc\""));
        assert!(if_none_match(Some("\"x\", W/\"abc\""), "\"abc\""));
        assert!(if_none_match(Some("*"), "\"abc\""));
        assert!(!if_none_match(Some("\"abd\""), "\"abc\""));
        assert!(!if_none_match(None, "\"abc\""));
    }
}

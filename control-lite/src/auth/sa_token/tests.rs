use super::key::SigningKey;
use super::*;

const NOW: i64 = 1_800_000_000;

fn sa() -> ObjectRef {
    ObjectRef { name: "default".into(), uid: "sa-uid".into() }
}

fn pod(sa: &str) -> PodInfo {
    PodInfo { name: "web".into(), uid: "pod-uid".into(), service_account: sa.into() }
}

fn bound(uid: &str) -> TokenSpec {
    TokenSpec {
        bound: Some(BoundRef { kind: "Pod".into(), name: "web".into(), uid: uid.into() }),
        ..TokenSpec::default()
    }
}

fn found(sa: Option<&str>, pod: Option<&str>) -> Lookup {
    Lookup { service_account_uid: sa.map(String::from), pod_uid: pod.map(String::from) }
}

#[test]
fn an_unbound_token_has_upstreams_claims_and_the_default_lifetime_and_audience() {
    let claims = plan_token("team", &sa(), &TokenSpec::default(), None, NOW, "j1".into()).expect("planned");
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.sub, "system:serviceaccount:team:default");
    assert_eq!(claims.aud, [DEFAULT_AUDIENCE]);
    assert_eq!((claims.iat, claims.nbf, claims.exp), (NOW, NOW, NOW + 3600));
    assert_eq!(claims.kubernetes.namespace, "team");
    assert_eq!(claims.kubernetes.serviceaccount, sa());
    assert_eq!(claims.kubernetes.pod, None);
}

#[test]
fn lifetimes_are_checked_below_and_cut_above() {
    let ask = |s| TokenSpec { expiration_seconds: Some(s), ..TokenSpec::default() };
    assert_eq!(plan_token("d", &sa(), &ask(599), None, NOW, String::new()), Err(Refusal::TooShort(599)));
    assert_eq!(plan_token("d", &sa(), &ask(-5), None, NOW, String::new()), Err(Refusal::TooShort(-5)));
    assert_eq!(plan_token("d", &sa(), &ask(600), None, NOW, String::new()).expect("min").exp, NOW + 600);
    assert_eq!(
        plan_token("d", &sa(), &ask(i64::MAX), None, NOW, String::new()).expect("cut").exp,
        NOW + MAX_EXPIRATION_SECONDS
    );
    let far = plan_token("d", &sa(), &ask(i64::MAX), None, i64::MAX - 10, String::new()).expect("saturates");
    assert_eq!(far.exp, i64::MAX);
}

#[test]
fn a_pod_bound_token_names_the_pod_and_checks_it() {
    let claims = plan_token("d", &sa(), &bound(""), Some(&pod("default")), NOW, String::new()).expect("bound");
    assert_eq!(claims.kubernetes.pod, Some(ObjectRef { name: "web".into(), uid: "pod-uid".into() }));
    assert!(plan_token("d", &sa(), &bound("pod-uid"), Some(&pod("default")), NOW, String::new()).is_ok());
    assert_eq!(
        plan_token("d", &sa(), &bound("old"), Some(&pod("default")), NOW, String::new()),
        Err(Refusal::PodUid { given: "old".into(), stored: "pod-uid".into() })
    );
    assert_eq!(plan_token("d", &sa(), &bound(""), None, NOW, String::new()), Err(Refusal::PodNotFound("web".into())));
    assert_eq!(
        plan_token("d", &sa(), &bound(""), Some(&pod("builder")), NOW, String::new()),
        Err(Refusal::OtherServiceAccount("default".into()))
    );
    let mut secret = bound("");
    secret.bound.as_mut().expect("bound").kind = "Secret".into();
    assert_eq!(
        plan_token("d", &sa(), &secret, Some(&pod("default")), NOW, String::new()),
        Err(Refusal::UnsupportedKind("Secret".into()))
    );
}

#[test]
fn a_valid_token_is_its_service_account_with_upstreams_groups() {
    let claims = plan_token("team", &sa(), &TokenSpec::default(), None, NOW, String::new()).expect("planned");
    let user = decide(&claims, NOW + 10, &[DEFAULT_AUDIENCE], &found(Some("sa-uid"), None)).expect("valid");
    assert_eq!(user.name, "system:serviceaccount:team:default");
    assert_eq!(user.uid, "sa-uid");
    assert_eq!(user.groups, ["system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"]);
}

#[test]
fn time_audience_issuer_and_objects_are_checked() {
    let claims = plan_token("d", &sa(), &bound(""), Some(&pod("default")), NOW, String::new()).expect("planned");
    let both = found(Some("sa-uid"), Some("pod-uid"));
    let aud = [DEFAULT_AUDIENCE];
    assert!(decide(&claims, NOW, &aud, &both).is_ok());
    assert!(decide(&claims, NOW + 3600 + LEEWAY_SECONDS - 1, &aud, &both).is_ok(), "within leeway");
    assert_eq!(decide(&claims, NOW + 3600 + LEEWAY_SECONDS, &aud, &both), Err(Invalid::Expired));
    assert_eq!(decide(&claims, NOW - LEEWAY_SECONDS - 1, &aud, &both), Err(Invalid::NotYetValid));
    assert_eq!(decide(&claims, NOW, &["vault"], &both), Err(Invalid::Audience));
    assert_eq!(
        decide(&claims, NOW, &aud, &found(None, Some("pod-uid"))),
        Err(Invalid::ServiceAccountGone("d/default".into()))
    );
    assert_eq!(
        decide(&claims, NOW, &aud, &found(Some("recreated"), Some("pod-uid"))),
        Err(Invalid::ServiceAccountGone("d/default".into()))
    );
    assert_eq!(decide(&claims, NOW, &aud, &found(Some("sa-uid"), None)), Err(Invalid::PodGone("d/web".into())));
    assert_eq!(
        decide(&claims, NOW, &aud, &found(Some("sa-uid"), Some("other"))),
        Err(Invalid::PodGone("d/web".into()))
    );
    let mut forged = claims.clone();
    forged.sub = "system:serviceaccount:kube-system:default".into();
    assert_eq!(decide(&forged, NOW, &aud, &both), Err(Invalid::Issuer));
    let mut foreign = claims;
    foreign.iss = "https://elsewhere".into();
    assert_eq!(decide(&foreign, NOW, &aud, &both), Err(Invalid::Issuer));
}

#[test]
fn the_key_signs_tokens_it_verifies_and_is_kept_across_restarts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = tmp.path().join("pki");
    let key = SigningKey::load_or_create(&pki).expect("created");
    let mode = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
    };
    assert_eq!((mode(&pki.join(key::KEY_FILE)), mode(&pki)), (0o600, 0o700));
    let claims = plan_token("d", &sa(), &TokenSpec::default(), None, NOW, "id".into()).expect("planned");
    let token = key.sign(&claims).expect("signed");
    assert!(looks_like_jwt(&token), "{token}");
    let again = SigningKey::load_or_create(&pki).expect("loaded");
    assert_eq!(again.verify(&token).expect("same key after a restart"), claims);
    let other = SigningKey::generate().expect("other key");
    assert!(other.verify(&token).is_err(), "another key's token");
    let mut tampered = token.clone();
    tampered.insert(token.find('.').expect("dot") + 2, 'x');
    assert!(key.verify(&tampered).is_err(), "tampered payload");
}

#[test]
fn only_jwt_shaped_tokens_are_verified() {
    for (token, want) in [
        ("a.b.c", true),
        ("abc", false),
        ("a.b", false),
        ("a..c", false),
        ("a.b.c.d", false),
        ("a b.c.d", false),
        ("a.b.", true),
    ] {
        assert_eq!(looks_like_jwt(token), want, "{token}");
    }
}

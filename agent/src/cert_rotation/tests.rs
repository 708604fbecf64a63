use super::*;

fn cert(cn: &str, not_before: i64, not_after: i64) -> ClientCert {
    ClientCert { common_name: cn.into(), serial: "01".into(), not_before, not_after }
}

#[test]
fn renews_the_nodes_own_certificate_when_due_and_waits_otherwise() {
    let own = cert("system:node:n1", 1000, 2000);
    // jitter 0: due at 70% = 1700.
    let cases: Vec<(&str, Option<ClientCert>, i64, Step)> = vec![
        ("long before: rechecked", Some(own.clone()), 1000, Step::Wait(RECHECK)),
        ("shortly before", Some(own.clone()), 1690, Step::Wait(Duration::from_secs(10))),
        ("due", Some(own.clone()), 1700, Step::Renew),
        ("overdue", Some(own.clone()), 1800, Step::Renew),
        ("expired", Some(own.clone()), 5000, Step::Renew),
    ];
    for (what, c, now, want) in cases {
        assert_eq!(next_step(c.as_ref(), "n1", now, 0), want, "{what}");
    }
    assert_eq!(next_step(Some(&own), "n1", 1850, 1000), Step::Wait(Duration::from_secs(50)), "jitter 1000: 90%");
    assert!(matches!(next_step(None, "n1", 0, 0), Step::Stop(_)), "a token kubeconfig");
    assert!(matches!(next_step(Some(&cert("bosun-admin", 0, 10)), "n1", 0, 0), Step::Stop(_)), "an admin");
    assert!(matches!(next_step(Some(&cert("system:node:n2", 0, 10)), "n1", 0, 0), Step::Stop(_)), "another node");
}

#[test]
fn retries_back_off_doubling_to_a_cap() {
    let secs: Vec<u64> = (1..=9).map(|n| retry_delay(n).as_secs()).collect();
    assert_eq!(secs, [2, 4, 8, 16, 32, 64, 128, 256, 300]);
    assert_eq!(retry_delay(0), FIRST_RETRY);
    assert_eq!(retry_delay(u32::MAX), MAX_RETRY);
}

#[test]
fn jitter_is_fixed_per_node_and_in_range() {
    assert_eq!(jitter_of("n1"), jitter_of("n1"));
    let all: Vec<u16> = (0..200).map(|i| jitter_of(&format!("node-{i}"))).collect();
    assert!(all.iter().all(|j| *j <= 1000));
    assert!(all.iter().collect::<std::collections::HashSet<_>>().len() > 100, "spread: {all:?}");
}

#[test]
fn reads_the_client_certificate_of_a_kubeconfig() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("kubeconfig");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "system:node:n1");
    params.not_before = rcgen::date_time_ymd(2030, 1, 1);
    params.not_after = rcgen::date_time_ymd(2030, 1, 2);
    let pem = params.self_signed(&key).expect("cert").pem();
    let cluster = tls_bootstrap::Cluster { server: "https://127.0.0.1:6443".into(), ca_pem: Vec::new() };
    tls_bootstrap::write_kubeconfig(&path, &cluster, "n1", pem.as_bytes(), key.serialize_pem().as_bytes())
        .expect("written");
    let text = std::fs::read_to_string(&path).expect("read");
    let got = client_cert(&path, &text).expect("parses").expect("a certificate");
    assert_eq!(got.common_name, "system:node:n1");
    assert_eq!(got.not_after - got.not_before, 24 * 3600);
    assert!(!got.serial.is_empty());

    let token = "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://x'}}]\n\
        users: [{name: u, user: {token: abc}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n\
        current-context: x\n";
    assert_eq!(client_cert(&path, token).expect("parses"), None, "a token has nothing to rotate");
    assert!(client_cert(&path, "users: [").is_err());
}

#[test]
fn renewals_due_again_at_once_are_paced_then_backed_off() {
    let start = std::time::Instant::now();
    let mut pacer = Pacer::default();
    assert_eq!(pacer.before_renewal(start), None, "nothing renewed yet");
    pacer.renewed(start);
    let soon = start + Duration::from_secs(5);
    assert_eq!(pacer.before_renewal(soon), Some(MIN_BETWEEN_RENEWALS - Duration::from_secs(5)));
    let later = start + MIN_BETWEEN_RENEWALS;
    assert_eq!(pacer.before_renewal(later), None, "the pause is over");
    pacer.renewed(later);
    // Due again at once, repeatedly: the waits grow with the backoff.
    let mut waits = Vec::new();
    let mut now = later;
    for _ in 0..12 {
        match pacer.before_renewal(now) {
            Some(wait) => {
                waits.push(wait);
                now += wait;
            }
            None => {
                pacer.renewed(now);
            }
        }
    }
    assert!(waits.windows(2).all(|w| w[1] >= w[0] || w[1] >= MIN_BETWEEN_RENEWALS), "{waits:?}");
    assert!(waits.iter().all(|w| *w >= Duration::from_secs(1)), "never a tight loop: {waits:?}");
    pacer.healthy();
    pacer.renewed(now);
    assert_eq!(pacer.before_renewal(now + MIN_BETWEEN_RENEWALS), None, "healthy again: no backoff");
}

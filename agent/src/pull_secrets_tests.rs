use super::*;
use k8s_openapi::ByteString;

fn secret(name: &str, kind: &str, key: &str, json: &str) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.type_ = Some(kind.into());
    s.data = Some([(key.to_string(), ByteString(json.as_bytes().to_vec()))].into());
    s
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn cred(server: &str, user: &str) -> Credential {
    Credential { server: server.into(), username: user.into(), password: "pw".into(), ..Default::default() }
}

#[test]
fn parses_dockerconfigjson_auth_and_plain_fields() {
    let json = format!(
        r#"{{"auths":{{"127.0.0.1:5001":{{"auth":"{}"}},"reg.example.com":{{"username":"u","password":"p","identitytoken":"t"}}}}}}"#,
        b64("alice:s3:cret")
    );
    let got = parse_secret(&secret("s", DOCKER_CONFIG_JSON, ".dockerconfigjson", &json)).unwrap();
    assert_eq!(
        got,
        vec![
            Credential {
                server: "127.0.0.1:5001".into(),
                username: "alice".into(),
                password: "s3:cret".into(),
                ..Default::default()
            },
            Credential {
                server: "reg.example.com".into(),
                username: "u".into(),
                password: "p".into(),
                identity_token: "t".into()
            },
        ]
    );
}

#[test]
fn parses_dockercfg_and_auth_wins_over_fields() {
    let json =
        format!(r#"{{"https://index.docker.io/v1/":{{"username":"x","password":"y","auth":"{}"}}}}"#, b64("bob:pw"));
    let got = parse_secret(&secret("s", DOCKER_CFG, ".dockercfg", &json)).unwrap();
    assert_eq!(got[0].username, "bob");
    assert_eq!(got[0].password, "pw");
}

#[test]
fn rejects_bad_secrets_with_a_reason() {
    let cases = [
        (secret("a", "Opaque", ".dockerconfigjson", "{}"), "type"),
        (secret("b", DOCKER_CONFIG_JSON, ".dockercfg", "{}"), "no key"),
        (secret("c", DOCKER_CONFIG_JSON, ".dockerconfigjson", "not json"), "secret \"c\""),
        (secret("d", DOCKER_CONFIG_JSON, ".dockerconfigjson", r#"{"auths":{"h":{"auth":"!!"}}}"#), "not base64"),
        (
            secret(
                "e",
                DOCKER_CONFIG_JSON,
                ".dockerconfigjson",
                &format!(r#"{{"auths":{{"h":{{"auth":"{}"}}}}}}"#, b64("nocolon")),
            ),
            "user:password",
        ),
    ];
    for (s, want) in cases {
        let err = parse_secret(&s).unwrap_err().to_string();
        assert!(err.contains(want), "{err:?} should contain {want:?}");
    }
}

#[test]
fn lookup_matches_host_port_and_path_as_the_keyring() {
    // (key, image, matches)
    let table = [
        ("127.0.0.1:5001", "127.0.0.1:5001/bosun/app:v1", true),
        ("127.0.0.1:5001", "127.0.0.1:5000/bosun/app:v1", false),
        ("127.0.0.1", "127.0.0.1:5001/bosun/app", false),
        ("http://127.0.0.1:5001/", "127.0.0.1:5001/bosun/app@sha256:abc", true),
        ("127.0.0.1:5001/bosun", "127.0.0.1:5001/bosun/app:v1", true),
        ("127.0.0.1:5001/other", "127.0.0.1:5001/bosun/app:v1", false),
        ("127.0.0.1:5001/bos", "127.0.0.1:5001/bosun/app:v1", false),
        ("*.example.com", "reg.example.com/app", true),
        ("*.example.com", "a.reg.example.com/app", false),
        ("reg.example.com", "REG.example.com/app", true),
        ("https://index.docker.io/v1/", "busybox:1.36", true),
        ("docker.io", "library/busybox", true),
        ("docker.io/library", "busybox", true),
        ("docker.io/someone", "busybox", false),
        ("quay.io", "busybox", false),
        ("localhost:5000", "localhost:5000/app", true),
    ];
    for (key, image, want) in table {
        let creds = [cred(key, "u")];
        assert_eq!(!lookup(&creds, image).is_empty(), want, "key {key:?} image {image:?}");
    }
}

#[test]
fn lookup_orders_most_specific_first_then_secret_order() {
    let creds = [cred("127.0.0.1:5001", "a"), cred("127.0.0.1:5001/bosun", "b"), cred("127.0.0.1:5001", "c")];
    let users: Vec<&str> = lookup(&creds, "127.0.0.1:5001/bosun/app").iter().map(|c| c.username.as_str()).collect();
    assert_eq!(users, ["b", "a", "c"]);
}

//! The key cache against a fake issuer: which JWKS entries are kept, how fetches are bounded, and
//! when the issuer is asked again.

use serde_json::json;

use super::*;
use crate::auth::DEFAULT_ALGORITHMS;
use crate::auth::testing::{FakeIssuer, TestKey, eventually, jwks};

fn config() -> JwksConfig {
    JwksConfig {
        min_refresh_interval: Duration::from_secs(30),
        max_age: Duration::from_secs(3600),
        fetch_timeout: Duration::from_secs(5),
        proxy: None,
    }
}

async fn serve(document: &Value) -> (FakeIssuer, Jwks) {
    serve_with(document, config()).await
}

async fn serve_with(document: &Value, config: JwksConfig) -> (FakeIssuer, Jwks) {
    let issuer = FakeIssuer::start().await;
    issuer.json("/jwks", document);
    let cache = Jwks::new(issuer.url("/jwks"), &DEFAULT_ALGORITHMS, config).unwrap();
    (issuer, cache)
}

fn with(mut jwk: Value, changes: Value) -> Value {
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            jwk.as_object_mut().unwrap().remove(name);
        } else {
            jwk[name] = value.clone();
        }
    }
    jwk
}

#[tokio::test]
async fn keeps_only_usable_signing_keys() {
    let rsa = TestKey::rsa().jwk("x");
    let document = jwks(&[
        with(rsa.clone(), json!({"kid": "kept"})),
        with(rsa.clone(), json!({"kid": "no-use", "use": null})),
        with(rsa.clone(), json!({"kid": "ops", "use": null, "key_ops": ["verify"]})),
        with(rsa.clone(), json!({"kid": "enc", "use": "enc"})),
        with(rsa.clone(), json!({"kid": "ops-encrypt", "use": null, "key_ops": ["encrypt"]})),
        with(rsa.clone(), json!({"kid": "oaep", "alg": "RSA-OAEP"})),
        with(rsa.clone(), json!({"kid": "wrong-type", "alg": "ES256"})),
        with(rsa.clone(), json!({"kid": "unknown-alg", "alg": "XX999"})),
        with(rsa.clone(), json!({"kid": "no-n", "n": null})),
        json!({"kid": "oct", "kty": "oct", "k": "c2VjcmV0", "alg": "HS256", "use": "sig"}),
        json!({"kid": "x448", "kty": "OKP", "crv": "X448", "x": "AAAA", "use": "sig"}),
        json!({"kid": "p521", "kty": "EC", "crv": "P-521", "x": "AAAA", "y": "AAAA", "use": "sig"}),
        json!({"kid": "strange", "kty": "QUANTUM"}),
        json!("not an object"),
        json!(42),
        TestKey::ec().jwk("ec"),
        TestKey::ed().jwk("ed"),
    ]);
    let (_issuer, cache) = serve(&document).await;
    for kid in ["kept", "no-use", "ops"] {
        assert!(cache.key_for(kid, Algorithm::RS256).await.is_ok(), "{kid}");
    }
    assert!(cache.key_for("ec", Algorithm::ES256).await.is_ok());
    assert!(cache.key_for("ed", Algorithm::EdDSA).await.is_ok());
    for kid in
        ["enc", "ops-encrypt", "oaep", "wrong-type", "unknown-alg", "no-n", "oct", "x448", "p521", "strange"]
    {
        for alg in [Algorithm::RS256, Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA] {
            assert!(matches!(cache.key_for(kid, alg).await, Err(Error::UnknownKey)), "{kid} {alg:?}");
        }
    }
    assert!(cache.keys_for(Algorithm::HS256).await.is_err(), "no symmetric key is ever taken");
}

#[tokio::test]
async fn infers_algorithms_from_the_key_type() {
    let rsa = with(TestKey::rsa().jwk("rsa"), json!({"alg": null}));
    let ec = with(TestKey::ec().jwk("ec"), json!({"alg": null}));
    let (_issuer, cache) = serve(&jwks(&[rsa, ec])).await;
    let key = cache.key_for("rsa", Algorithm::PS512).await.unwrap();
    assert_eq!(key.algorithms, AlgorithmFamily::Rsa.algorithms());
    assert_eq!(cache.key_for("ec", Algorithm::ES256).await.unwrap().algorithms, [Algorithm::ES256]);
    assert!(matches!(cache.key_for("ec", Algorithm::ES384).await, Err(Error::UnknownKey)));
}

#[tokio::test]
async fn drops_keys_of_algorithms_not_allowed() {
    let issuer = FakeIssuer::start().await;
    issuer.json("/jwks", &jwks(&[TestKey::rsa().jwk("rsa"), TestKey::ec().jwk("ec")]));
    let cache = Jwks::new(issuer.url("/jwks"), &[Algorithm::ES256], config()).unwrap();
    assert!(cache.key_for("ec", Algorithm::ES256).await.is_ok());
    assert!(matches!(cache.key_for("rsa", Algorithm::RS256).await, Err(Error::UnknownKey)));
}

#[tokio::test]
async fn keeps_keys_sharing_a_kid_apart_by_algorithm() {
    let document = jwks(&[TestKey::rsa().jwk("shared"), TestKey::ec().jwk("shared")]);
    let (_issuer, cache) = serve(&document).await;
    assert_eq!(cache.key_for("shared", Algorithm::RS256).await.unwrap().algorithms, [Algorithm::RS256]);
    assert_eq!(cache.key_for("shared", Algorithm::ES256).await.unwrap().algorithms, [Algorithm::ES256]);
    assert_eq!(cache.keys_for(Algorithm::ES256).await.unwrap().len(), 1);
}

#[tokio::test]
async fn refuses_unusable_documents_and_keeps_the_old_keys() {
    let config = JwksConfig { min_refresh_interval: Duration::ZERO, ..config() };
    let (issuer, cache) = serve_with(&jwks(&[TestKey::rsa().jwk("rsa")]), config).await;
    cache.refresh().await.unwrap();
    // Each body with the start of the error it causes.
    let cases = [
        (
            r#"{"keys": []}"#,
            "the document at http://127.0.0.1:PORT/jwks is unusable: it has no usable signing key",
        ),
        (r#"{"keys": {}}"#, "the document at http://127.0.0.1:PORT/jwks is unusable: it has no `keys` array"),
        (r#"{"other": 1}"#, "the document at http://127.0.0.1:PORT/jwks is unusable: it has no `keys` array"),
        ("[1, 2]", "the document at http://127.0.0.1:PORT/jwks is not a JSON object: not an object"),
        ("<html>", "the document at http://127.0.0.1:PORT/jwks is not a JSON object: expected value"),
    ];
    for (body, expected) in cases {
        issuer.respond("/jwks", 200, &[], body);
        let err = cache.refresh().await.unwrap_err().to_string();
        let expected = expected.replace("http://127.0.0.1:PORT", issuer.origin());
        assert!(err.starts_with(&expected), "{body}: {err}");
        assert!(cache.key_for("rsa", Algorithm::RS256).await.is_ok(), "the old keys stay after {body}");
    }
}

#[tokio::test]
async fn does_not_follow_redirects() {
    let (issuer, _) = serve(&jwks(&[TestKey::rsa().jwk("rsa")])).await;
    issuer.respond("/moved", 302, &[("location", "/jwks")], "");
    let cache = Jwks::new(issuer.url("/moved"), &DEFAULT_ALGORITHMS, config()).unwrap();
    let err = cache.refresh().await.unwrap_err();
    assert!(matches!(err, Error::Status { status: 302, .. }), "{err}");
    assert_eq!(issuer.hits("/jwks"), 0);
    assert!(matches!(cache.key_for("rsa", Algorithm::RS256).await, Err(Error::NoKeys)));
}

#[tokio::test]
async fn caps_the_document_size() {
    let mut keys = vec![TestKey::rsa().jwk("rsa")];
    keys.push(json!({"kid": "padding", "kty": "QUANTUM", "x": "a".repeat(MAX_DOCUMENT_BYTES as usize)}));
    let (_issuer, cache) = serve(&jwks(&keys)).await;
    let err = cache.refresh().await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: MAX_DOCUMENT_BYTES, .. }), "{err}");
}

#[tokio::test]
async fn gives_up_on_a_silent_issuer() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/jwks", listener.local_addr().unwrap())).unwrap();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            connections.push(connection);
        }
    });
    let config = JwksConfig { fetch_timeout: Duration::from_millis(200), ..config() };
    let cache = Jwks::new(url, &DEFAULT_ALGORITHMS, config).unwrap();
    let err = cache.refresh().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    held.abort();
}

#[tokio::test]
async fn reports_an_unreachable_issuer() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("http://{}/jwks", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    let cache = Jwks::new(url, &DEFAULT_ALGORITHMS, config()).unwrap();
    assert!(matches!(cache.key_for("rsa", Algorithm::RS256).await, Err(Error::NoKeys)));
    // The failed attempt counts: no second connection within the interval.
    assert!(matches!(cache.refresh().await, Ok(())));
}

#[tokio::test]
async fn refreshes_stale_keys_in_the_background() {
    let config =
        JwksConfig { min_refresh_interval: Duration::ZERO, max_age: Duration::from_millis(100), ..config() };
    let (issuer, cache) = serve_with(&jwks(&[TestKey::rsa().jwk("old")]), config).await;
    assert!(cache.key_for("old", Algorithm::RS256).await.is_ok());
    issuer.json("/jwks", &jwks(&[TestKey::rsa().jwk("new")]));
    tokio::time::sleep(Duration::from_millis(150)).await;

    // The stale key answers at once; the refresh happens behind it.
    assert!(cache.key_for("old", Algorithm::RS256).await.is_ok());
    eventually(|| issuer.hits("/jwks") == 2).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(cache.key_for("new", Algorithm::RS256).await.is_ok());
    // A key the issuer dropped is gone once the refresh succeeded.
    let before = issuer.hits("/jwks");
    assert!(matches!(cache.key_for("old", Algorithm::RS256).await, Err(Error::UnknownKey)));
    assert_eq!(issuer.hits("/jwks"), before + 1, "an unknown kid refreshes when the interval allows");
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let (issuer, cache) = serve(&jwks(&[TestKey::rsa().jwk("rsa")])).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..50 {
        let cache = cache.clone();
        tasks.spawn(async move {
            cache.key_for(if n % 2 == 0 { "rsa" } else { "missing" }, Algorithm::RS256).await
        });
    }
    let mut found = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(_) => found += 1,
            Err(err) => assert!(matches!(err, Error::UnknownKey), "{err}"),
        }
    }
    assert_eq!(found, 25);
    assert_eq!(issuer.hits("/jwks"), 1);
}

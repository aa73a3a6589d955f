//! The verifier against a fake issuer: valid tokens of every key type, then the bad-token matrix,
//! each refused with its own error; then the key cache as tokens see it (refresh rate limit,
//! issuer outage, rotation).

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::auth::testing::{FakeIssuer, RSA_A_PUBLIC_PEM, TestKey, encode_part, eventually, jwks, unix_now};

const AUDIENCE: &str = "https://mcp.example.com/mcp/pets";
const JWKS_PATH: &str = "/tenant/jwks";

struct Setup {
    issuer: FakeIssuer,
    verifier: Verifier,
}

impl Setup {
    /// The issuer's `iss`: a path, so that exact matching is tested with one.
    fn iss(&self) -> String {
        format!("{}/tenant", self.issuer.origin())
    }

    /// Valid claims for this issuer and `AUDIENCE`.
    fn claims(&self) -> Value {
        let now = unix_now();
        json!({
            "iss": self.iss(),
            "sub": "alice",
            "aud": AUDIENCE,
            "exp": now + 300,
            "iat": now,
            "scope": "pets:read pets:write",
            "client_id": "inspector",
        })
    }

    fn claims_with(&self, changes: Value) -> Value {
        let mut claims = self.claims();
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }

    async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        self.verifier.verify(token).await
    }

    fn jwks_hits(&self) -> usize {
        self.issuer.hits(JWKS_PATH)
    }
}

/// The JWKS the fake issuer serves: `rsa-1` (RS256 only), `rsa-any` (the same key, any RSA
/// algorithm), `ec-1` and `ed-1`.
fn issuer_keys() -> Vec<Value> {
    let mut rsa_any = TestKey::rsa().jwk("rsa-any");
    rsa_any.as_object_mut().unwrap().remove("alg");
    vec![TestKey::rsa().jwk("rsa-1"), rsa_any, TestKey::ec().jwk("ec-1"), TestKey::ed().jwk("ed-1")]
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

async fn setup_with(configure: impl FnOnce(&mut VerifierConfig)) -> Setup {
    let issuer = FakeIssuer::start().await;
    issuer.json(JWKS_PATH, &jwks(&issuer_keys()));
    let iss = IssuerConfig {
        issuer: format!("{}/tenant", issuer.origin()),
        jwks_uri: Some(issuer.url(JWKS_PATH)),
        shared_secret: None,
    };
    let mut config = VerifierConfig::new(vec![iss], vec![AUDIENCE.to_owned()]);
    configure(&mut config);
    let verifier = Verifier::new(&config).unwrap();
    Setup { issuer, verifier }
}

fn kid(kid: &str) -> Value {
    json!({ "typ": "at+jwt", "kid": kid })
}

#[track_caller]
fn assert_refused(result: Result<Claims, VerifyError>, expected: VerifyError) {
    match result {
        Ok(claims) => panic!("accepted, expected {expected:?}: {claims:?}"),
        Err(err) => assert_eq!(err, expected),
    }
}

// Valid tokens.

#[tokio::test]
async fn accepts_a_valid_token_and_reads_its_claims() {
    let s = setup().await;
    // The claims signed, not made again: `exp` comes from the clock, which may turn a second.
    let signed = s.claims();
    let token = TestKey::rsa().sign(kid("rsa-1"), &signed);
    let claims = s.verify(&token).await.unwrap();
    assert_eq!(claims.subject, "alice");
    assert_eq!(claims.issuer, s.iss());
    assert_eq!(claims.audience, [AUDIENCE]);
    assert_eq!(claims.scopes, BTreeSet::from(["pets:read".to_owned(), "pets:write".to_owned()]));
    assert_eq!(claims.client_id.as_deref(), Some("inspector"));
    let exp = signed["exp"].as_u64().unwrap();
    assert_eq!(claims.expires_at, UNIX_EPOCH + Duration::from_secs(exp));
    assert_eq!(claims.raw["sub"], "alice");
}

#[tokio::test]
async fn reads_scopes_from_scope_and_scp() {
    let s = setup().await;
    let cases = [
        (json!({"scope": "a  b", "scp": null}), vec!["a", "b"]),
        (json!({"scope": null, "scp": "c d"}), vec!["c", "d"]),
        (json!({"scope": null, "scp": ["e", "f"]}), vec!["e", "f"]),
        (json!({"scope": "a", "scp": ["b"]}), vec!["a", "b"]),
        (json!({"scope": null}), vec![]),
    ];
    for (changes, expected) in cases {
        let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(changes.clone()));
        let claims = s.verify(&token).await.unwrap();
        assert_eq!(claims.scopes.iter().collect::<Vec<_>>(), expected, "{changes}");
    }
    for (changes, claim) in
        [(json!({"scope": ["a"]}), "scope"), (json!({"scp": 7}), "scp"), (json!({"scp": ["a", 1]}), "scp")]
    {
        let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(changes));
        assert_refused(s.verify(&token).await, VerifyError::InvalidClaim(claim));
    }
}

#[tokio::test]
async fn takes_the_client_id_from_client_id_azp_or_appid() {
    let s = setup().await;
    for (changes, expected) in [
        (json!({"client_id": null, "azp": "from-azp"}), Some("from-azp")),
        (json!({"client_id": null, "appid": "from-appid"}), Some("from-appid")),
        (json!({"client_id": null}), None),
    ] {
        let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(changes));
        assert_eq!(s.verify(&token).await.unwrap().client_id.as_deref(), expected);
    }
}

#[tokio::test]
async fn verifies_every_key_type() {
    let s = setup().await;
    let cases = [
        (TestKey::rsa(), "rsa-1"),
        (TestKey::rsa().with_alg(Algorithm::RS512), "rsa-any"),
        (TestKey::rsa().with_alg(Algorithm::PS256), "rsa-any"),
        (TestKey::rsa().with_alg(Algorithm::PS384), "rsa-any"),
        (TestKey::ec(), "ec-1"),
        (TestKey::ed(), "ed-1"),
    ];
    for (key, id) in cases {
        let token = key.sign(kid(id), &s.claims());
        assert!(s.verify(&token).await.is_ok(), "{:?} with {id}", key.alg);
    }
    // The key `rsa-1` declares RS256, so it verifies nothing else.
    let token = TestKey::rsa().with_alg(Algorithm::PS256).sign(kid("rsa-1"), &s.claims());
    assert_refused(s.verify(&token).await, VerifyError::UnknownKey);
    assert_eq!(s.jwks_hits(), 1);
}

#[tokio::test]
async fn tries_each_key_of_the_type_when_the_token_has_no_kid() {
    let s = setup().await;
    for key in [TestKey::rsa(), TestKey::ec(), TestKey::ed()] {
        let token = key.sign(json!({}), &s.claims());
        assert!(s.verify(&token).await.is_ok(), "{:?}", key.alg);
    }
    let token = TestKey::foreign_rsa().sign(json!({}), &s.claims());
    assert_refused(s.verify(&token).await, VerifyError::BadSignature);
}

// Lifetime.

#[tokio::test]
async fn refuses_an_expired_token_beyond_the_clock_skew() {
    let s = setup().await;
    let now = unix_now();
    let expired = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(json!({"exp": now - 3600})));
    assert_refused(s.verify(&expired).await, VerifyError::Expired);
    let just_expired = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(json!({"exp": now - 120})));
    assert_refused(s.verify(&just_expired).await, VerifyError::Expired);
    let within_skew = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(json!({"exp": now - 30})));
    assert!(s.verify(&within_skew).await.is_ok());
    let fractional = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(json!({"exp": now as f64 + 60.5})));
    assert!(s.verify(&fractional).await.is_ok());
}

#[tokio::test]
async fn refuses_a_token_without_a_usable_exp() {
    let s = setup().await;
    let cases = [
        (json!({"exp": null}), VerifyError::MissingClaim("exp")),
        (json!({"exp": "tomorrow"}), VerifyError::InvalidClaim("exp")),
        (json!({"exp": true}), VerifyError::InvalidClaim("exp")),
    ];
    for (changes, expected) in cases {
        let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(changes));
        assert_refused(s.verify(&token).await, expected);
    }
    // Absurd values neither panic nor pass as something else.
    for exp in [json!(u64::MAX), json!(1e300), json!(i64::MIN)] {
        let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(json!({ "exp": exp })));
        let result = s.verify(&token).await;
        assert!(
            matches!(result, Ok(_) | Err(VerifyError::Expired | VerifyError::InvalidClaim("exp"))),
            "{exp}: {result:?}"
        );
    }
}

#[tokio::test]
async fn refuses_a_token_not_yet_valid() {
    let s = setup().await;
    let now = unix_now();
    let cases = [
        (json!({"nbf": now + 3600}), Err(VerifyError::NotYetValid)),
        (json!({"iat": now + 3600}), Err(VerifyError::NotYetValid)),
        (json!({"nbf": now + 30, "iat": now + 30}), Ok(())),
        (json!({"nbf": "soon"}), Err(VerifyError::InvalidClaim("nbf"))),
    ];
    for (changes, expected) in cases {
        let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(changes.clone()));
        assert_eq!(s.verify(&token).await.map(|_| ()), expected, "{changes}");
    }
}

#[tokio::test]
async fn applies_the_configured_clock_skew() {
    let s = setup_with(|config| config.clock_skew = Duration::ZERO).await;
    let now = unix_now();
    let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(json!({"exp": now - 30})));
    assert_refused(s.verify(&token).await, VerifyError::Expired);
    let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(json!({"nbf": now + 30})));
    assert_refused(s.verify(&token).await, VerifyError::NotYetValid);
}

// Issuer and audience.

#[tokio::test]
async fn refuses_another_issuer() {
    let s = setup().await;
    let iss = s.iss();
    for other in ["https://evil.example.com/tenant".to_owned(), format!("{iss}/"), iss.to_uppercase()] {
        let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(json!({ "iss": other })));
        assert_refused(s.verify(&token).await, VerifyError::UnknownIssuer);
    }
    let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(json!({"iss": null})));
    assert_refused(s.verify(&token).await, VerifyError::MissingClaim("iss"));
    let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(json!({ "iss": [iss] })));
    assert_refused(s.verify(&token).await, VerifyError::InvalidClaim("iss"));
    assert_eq!(s.jwks_hits(), 0, "no key is fetched for a token of an unknown issuer");
}

#[tokio::test]
async fn refuses_a_token_for_another_audience() {
    let s = setup().await;
    let cases = [
        (json!({"aud": "https://mcp.example.com/mcp/other"}), Err(VerifyError::WrongAudience)),
        (json!({"aud": "https://backend.example.com/api"}), Err(VerifyError::WrongAudience)),
        (json!({"aud": ["https://backend.example.com/api"]}), Err(VerifyError::WrongAudience)),
        (json!({"aud": []}), Err(VerifyError::WrongAudience)),
        (json!({"aud": format!("{AUDIENCE}/")}), Err(VerifyError::WrongAudience)),
        (json!({"aud": null}), Err(VerifyError::MissingClaim("aud"))),
        (json!({"aud": 42}), Err(VerifyError::InvalidClaim("aud"))),
        (json!({"aud": [AUDIENCE, 42]}), Err(VerifyError::InvalidClaim("aud"))),
        (json!({"aud": ["https://backend.example.com/api", AUDIENCE]}), Ok(())),
    ];
    for (changes, expected) in cases {
        let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(changes.clone()));
        assert_eq!(s.verify(&token).await.map(|_| ()), expected, "{changes}");
    }
}

#[tokio::test]
async fn accepts_any_configured_audience() {
    let entra_app = "3f2c9a1e-5b7d-4c8e-9f01-23456789abcd";
    let s = setup_with(|config| config.audiences.push(entra_app.to_owned())).await;
    let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(json!({ "aud": entra_app })));
    assert_eq!(s.verify(&token).await.unwrap().audience, [entra_app]);
}

#[tokio::test]
async fn with_audiences_shares_the_key_cache() {
    let s = setup().await;
    let other = s.verifier.with_audiences(&["https://mcp.example.com/mcp/other".to_owned()]).unwrap();
    let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims());
    assert!(s.verify(&token).await.is_ok());
    assert_refused(other.verify(&token).await, VerifyError::WrongAudience);
    assert_eq!(s.jwks_hits(), 1);
    assert!(s.verifier.with_audiences(&[]).is_err());
}

// Subject and type.

#[tokio::test]
async fn requires_a_subject() {
    let s = setup().await;
    let cases = [
        (json!({"sub": null}), VerifyError::MissingClaim("sub")),
        (json!({"sub": 42}), VerifyError::InvalidClaim("sub")),
        (json!({"sub": ""}), VerifyError::InvalidClaim("sub")),
    ];
    for (changes, expected) in cases {
        let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims_with(changes));
        assert_refused(s.verify(&token).await, expected);
    }
}

#[tokio::test]
async fn checks_the_type_when_one_is_required() {
    let s = setup_with(|config| config.required_type = Some("at+jwt".to_owned())).await;
    for typ in [json!("at+jwt"), json!("AT+JWT"), json!("application/at+jwt")] {
        let token = TestKey::rsa().sign(json!({"kid": "rsa-1", "typ": typ}), &s.claims());
        assert!(s.verify(&token).await.is_ok(), "{typ}");
    }
    let wrong = VerifyError::WrongType { expected: "at+jwt".to_owned() };
    for header in
        [json!({"kid": "rsa-1", "typ": "JWT"}), json!({"kid": "rsa-1"}), json!({"kid": "rsa-1", "typ": 1})]
    {
        let token = TestKey::rsa().sign(header, &s.claims());
        assert_refused(s.verify(&token).await, wrong.clone());
    }
    // Without the requirement, any type passes.
    let s = setup().await;
    let token = TestKey::rsa().sign(json!({"kid": "rsa-1", "typ": "JWT"}), &s.claims());
    assert!(s.verify(&token).await.is_ok());
}

// Signature and algorithm.

#[tokio::test]
async fn refuses_a_foreign_key_under_a_known_kid() {
    let s = setup().await;
    let token = TestKey::foreign_rsa().sign(kid("rsa-1"), &s.claims());
    assert_refused(s.verify(&token).await, VerifyError::BadSignature);
    // A valid token's signature grafted onto other claims.
    let genuine = TestKey::rsa().sign(kid("rsa-1"), &s.claims());
    let forged_claims = encode_part(&s.claims_with(json!({"sub": "admin"})));
    let parts: Vec<&str> = genuine.split('.').collect();
    let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
    assert_refused(s.verify(&forged).await, VerifyError::BadSignature);
}

#[tokio::test]
async fn refuses_unsigned_tokens() {
    let s = setup().await;
    for alg in ["none", "None", "NONE"] {
        let header = encode_part(&json!({"alg": alg, "typ": "JWT"}));
        let token = format!("{header}.{}.", encode_part(&s.claims()));
        assert_refused(s.verify(&token).await, VerifyError::Unsigned);
    }
    assert_eq!(s.jwks_hits(), 0);
}

#[tokio::test]
async fn refuses_algorithms_outside_the_allow_list() {
    let s = setup_with(|config| config.algorithms = vec![Algorithm::ES256]).await;
    let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims());
    assert_refused(s.verify(&token).await, VerifyError::AlgorithmNotAllowed(Algorithm::RS256));
    let header = encode_part(&json!({"alg": "ES512", "kid": "ec-1"}));
    let token = format!("{header}.{}.c2ln", encode_part(&s.claims()));
    assert_refused(s.verify(&token).await, VerifyError::UnsupportedAlgorithm);
    // The JWKS keys of other algorithms were not even kept.
    let token = TestKey::ec().sign(kid("ec-1"), &s.claims());
    assert!(s.verify(&token).await.is_ok());
}

#[tokio::test]
async fn refuses_hmac_signed_with_the_public_key() {
    // The classic confusion: HS256 "signed" with the RSA public key, which anyone can read.
    let s = setup().await;
    let public_key_forms = [
        RSA_A_PUBLIC_PEM.as_bytes().to_vec(),
        serde_json::to_vec(&TestKey::rsa().jwk("rsa-1")).unwrap(),
        TestKey::rsa().jwk("rsa-1")["n"].as_str().unwrap().as_bytes().to_vec(),
    ];
    for secret in &public_key_forms {
        let token = TestKey::hmac(secret).sign(kid("rsa-1"), &s.claims());
        assert_refused(s.verify(&token).await, VerifyError::AlgorithmNotAllowed(Algorithm::HS256));
    }

    // With HMAC allowed for a configured secret, the public key still signs nothing.
    let secret = b"a shared secret of at least thirty-two bytes";
    let s = setup_with(|config| {
        config.algorithms.push(Algorithm::HS256);
        config.issuers[0].shared_secret = Some(SharedSecret::new(secret.to_vec()));
    })
    .await;
    for public_key in &public_key_forms {
        let token = TestKey::hmac(public_key).sign(kid("rsa-1"), &s.claims());
        assert_refused(s.verify(&token).await, VerifyError::BadSignature);
    }
    let token = TestKey::hmac(secret).sign(json!({}), &s.claims());
    assert!(s.verify(&token).await.is_ok());
    // HS384 was not allowed, even with the right secret.
    let token = TestKey::hmac(secret).with_alg(Algorithm::HS384).sign(json!({}), &s.claims());
    assert_refused(s.verify(&token).await, VerifyError::AlgorithmNotAllowed(Algorithm::HS384));
    assert_eq!(s.jwks_hits(), 0, "HMAC tokens never consult the JWKS");
}

#[tokio::test]
async fn uses_a_shared_secret_only_for_its_own_issuer() {
    let secret = b"a shared secret of at least thirty-two bytes";
    let s = setup_with(|config| {
        config.algorithms.push(Algorithm::HS256);
        config.issuers.push(IssuerConfig {
            issuer: "https://dev-idp.example.com".to_owned(),
            jwks_uri: None,
            shared_secret: Some(SharedSecret::new(secret.to_vec())),
        });
    })
    .await;
    // The JWKS issuer has no secret.
    let token = TestKey::hmac(secret).sign(json!({}), &s.claims());
    assert_refused(s.verify(&token).await, VerifyError::AlgorithmNotAllowed(Algorithm::HS256));
    // The secret issuer has no JWKS.
    let dev = s.claims_with(json!({"iss": "https://dev-idp.example.com"}));
    assert!(s.verify(&TestKey::hmac(secret).sign(json!({}), &dev)).await.is_ok());
    let token = TestKey::rsa().sign(kid("rsa-1"), &dev);
    assert_refused(s.verify(&token).await, VerifyError::AlgorithmNotAllowed(Algorithm::RS256));
}

// Malformed tokens.

#[tokio::test]
async fn refuses_malformed_tokens() {
    let s = setup().await;
    let header = encode_part(&json!({"alg": "RS256", "kid": "rsa-1"}));
    let payload = encode_part(&s.claims());
    let valid = TestKey::rsa().sign(kid("rsa-1"), &s.claims());
    let signature = valid.rsplit('.').next().unwrap();
    let not_json = URL_SAFE_NO_PAD.encode("{not json");
    let array = encode_part(&json!(["alg", "RS256"]));
    let cases = [
        (String::new(), "a JWT has three dot-separated parts"),
        ("abc".to_owned(), "a JWT has three dot-separated parts"),
        (format!("{header}.{payload}"), "a JWT has three dot-separated parts"),
        (format!("{valid}.{signature}"), "a JWT has three dot-separated parts"),
        (format!("{header}.{payload}.{signature}.x.y"), "a JWT has three dot-separated parts"),
        (format!("!!!.{payload}.{signature}"), "the header is not a base64url JSON object"),
        (format!("{header}=.{payload}.{signature}"), "the header is not a base64url JSON object"),
        (format!("{not_json}.{payload}.{signature}"), "the header is not a base64url JSON object"),
        (format!("{array}.{payload}.{signature}"), "the header is not a base64url JSON object"),
        (format!("{header}.%%%.{signature}"), "the payload is not a base64url JSON object"),
        (format!("{header}.{not_json}.{signature}"), "the payload is not a base64url JSON object"),
        (format!("{header}.{array}.{signature}"), "the payload is not a base64url JSON object"),
        (format!("{header}.{payload}.+/+/"), "the signature is not base64url"),
        (format!("{}.{payload}.{signature}", encode_part(&json!({"kid": "rsa-1"}))), "the header has no alg"),
        (format!("{}.{payload}.{signature}", encode_part(&json!({"alg": 256}))), "alg is not a string"),
        ("a".repeat(MAX_TOKEN_BYTES + 1), "the token is too long"),
    ];
    for (token, reason) in cases {
        assert_refused(s.verify(&token).await, VerifyError::Malformed(reason));
    }
    let token = TestKey::rsa().sign(json!({"kid": 7}), &s.claims());
    assert_refused(s.verify(&token).await, VerifyError::Malformed("kid is not a string"));
    let token = TestKey::rsa().sign(json!({"kid": "rsa-1", "crit": ["b64"], "b64": false}), &s.claims());
    assert_refused(
        s.verify(&token).await,
        VerifyError::Malformed("critical header extensions are not supported"),
    );
    assert_eq!(s.jwks_hits(), 0);
}

// The key cache as tokens see it.

#[tokio::test]
async fn refreshes_once_for_an_unknown_kid_then_refuses() {
    let s = setup_with(|config| config.jwks.min_refresh_interval = Duration::from_millis(500)).await;
    assert!(s.verify(&TestKey::rsa().sign(kid("rsa-1"), &s.claims())).await.is_ok());
    assert_eq!(s.jwks_hits(), 1);
    tokio::time::sleep(Duration::from_millis(550)).await;

    let unknown = TestKey::rsa().sign(kid("rsa-unknown"), &s.claims());
    assert_refused(s.verify(&unknown).await, VerifyError::UnknownKey);
    assert_eq!(s.jwks_hits(), 2, "an unknown kid refreshes the keys once");
    assert_refused(s.verify(&unknown).await, VerifyError::UnknownKey);
    assert_eq!(s.jwks_hits(), 2, "and not again within the interval");
}

#[tokio::test]
async fn a_flood_of_random_kids_fetches_the_keys_once() {
    let s = setup().await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..100 {
        let verifier = s.verifier.clone();
        let token = TestKey::rsa().sign(kid(&format!("random-{n:x}-{}", n * 7919)), &s.claims());
        tasks.spawn(async move { verifier.verify(&token).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_refused(result.unwrap(), VerifyError::UnknownKey);
    }
    assert!(s.jwks_hits() <= 2, "{} JWKS fetches", s.jwks_hits());
    // A known key is still served from the cache.
    assert!(s.verify(&TestKey::rsa().sign(kid("rsa-1"), &s.claims())).await.is_ok());
    assert!(s.jwks_hits() <= 2, "{} JWKS fetches", s.jwks_hits());
}

#[tokio::test]
async fn serves_cached_keys_while_the_issuer_is_down() {
    let s = setup_with(|config| {
        config.jwks.min_refresh_interval = Duration::from_millis(50);
        config.jwks.max_age = Duration::from_millis(100);
    })
    .await;
    let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims());
    assert!(s.verify(&token).await.is_ok());
    s.issuer.respond(JWKS_PATH, 503, &[], "down for maintenance");
    tokio::time::sleep(Duration::from_millis(150)).await;

    // Stale keys start a background refresh, which fails, and keep serving.
    assert!(s.verify(&token).await.is_ok());
    eventually(|| s.jwks_hits() == 2).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(s.verify(&token).await.is_ok());
    // An unknown kid tries the issuer (rate-limited) and fails as unknown, not as unavailable.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let unknown = TestKey::rsa().sign(kid("rsa-unknown"), &s.claims());
    assert_refused(s.verify(&unknown).await, VerifyError::UnknownKey);
    assert!(s.verify(&token).await.is_ok());
}

#[tokio::test]
async fn reports_keys_unavailable_when_the_issuer_was_never_reached() {
    let s = setup().await;
    s.issuer.respond(JWKS_PATH, 500, &[], "");
    let token = TestKey::rsa().sign(kid("rsa-1"), &s.claims());
    assert_refused(s.verify(&token).await, VerifyError::KeysUnavailable);
    assert_refused(s.verify(&token).await, VerifyError::KeysUnavailable);
    assert_eq!(s.jwks_hits(), 1, "the failed fetch counts against the rate limit");
}

#[tokio::test]
async fn picks_up_a_rotated_key_after_the_rate_limit_window() {
    let s = setup_with(|config| config.jwks.min_refresh_interval = Duration::from_millis(500)).await;
    assert!(s.verify(&TestKey::rsa().sign(kid("rsa-1"), &s.claims())).await.is_ok());
    let mut keys = issuer_keys();
    keys.push(TestKey::foreign_rsa().jwk("rsa-2"));
    s.issuer.json(JWKS_PATH, &jwks(&keys));

    let rotated = TestKey::foreign_rsa().sign(kid("rsa-2"), &s.claims());
    assert_refused(s.verify(&rotated).await, VerifyError::UnknownKey);
    assert_eq!(s.jwks_hits(), 1, "within the window the issuer is not asked");
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert!(s.verify(&rotated).await.is_ok());
    assert_eq!(s.jwks_hits(), 2);
}

#[tokio::test]
async fn a_cancelled_request_does_not_cancel_the_refresh() {
    let s = setup_with(|config| config.jwks.min_refresh_interval = Duration::from_millis(100)).await;
    assert!(s.verify(&TestKey::rsa().sign(kid("rsa-1"), &s.claims())).await.is_ok());
    let mut keys = issuer_keys();
    keys.push(TestKey::foreign_rsa().jwk("rsa-2"));
    s.issuer.json(JWKS_PATH, &jwks(&keys));
    s.issuer.delay(Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(150)).await;

    // A client that gives up (a disconnect drops its request) while the refresh is in flight.
    let rotated = TestKey::foreign_rsa().sign(kid("rsa-2"), &s.claims());
    let gave_up = tokio::time::timeout(Duration::from_millis(20), s.verify(&rotated)).await;
    assert!(gave_up.is_err());
    tokio::time::sleep(Duration::from_millis(600)).await;
    s.issuer.delay(Duration::ZERO);
    assert!(s.verify(&rotated).await.is_ok());
    assert_eq!(s.jwks_hits(), 2);
}

#[tokio::test]
async fn each_issuer_has_its_own_keys() {
    let other = FakeIssuer::start().await;
    other.json("/jwks", &jwks(&[TestKey::foreign_rsa().jwk("other-1")]));
    let other_iss = format!("{}/other", other.origin());
    let s = setup_with(|config| {
        config.issuers.push(IssuerConfig {
            issuer: other_iss.clone(),
            jwks_uri: Some(other.url("/jwks")),
            shared_secret: None,
        });
    })
    .await;
    let claims = s.claims_with(json!({ "iss": other_iss }));
    assert!(s.verify(&TestKey::foreign_rsa().sign(kid("other-1"), &claims)).await.is_ok());
    // The first issuer's key does not vouch for the second issuer, nor the other way round.
    assert_refused(s.verify(&TestKey::rsa().sign(kid("rsa-1"), &claims)).await, VerifyError::UnknownKey);
    let token = TestKey::foreign_rsa().sign(kid("other-1"), &s.claims());
    assert_refused(s.verify(&token).await, VerifyError::UnknownKey);
}

// Configuration and errors.

#[test]
fn refuses_inconsistent_configuration() {
    let issuer = |name: &str, secret: bool| IssuerConfig {
        issuer: name.to_owned(),
        jwks_uri: Some(Url::parse("https://idp.example.com/jwks").unwrap()),
        shared_secret: secret.then(|| SharedSecret::new("s")),
    };
    let audiences = vec![AUDIENCE.to_owned()];
    let cases: Vec<(VerifierConfig, &str)> = vec![
        (VerifierConfig::new(vec![], audiences.clone()), "no issuer"),
        (VerifierConfig::new(vec![issuer("a", false)], vec![]), "no audience"),
        (
            VerifierConfig {
                algorithms: vec![],
                ..VerifierConfig::new(vec![issuer("a", false)], audiences.clone())
            },
            "no signing algorithm",
        ),
        (VerifierConfig::new(vec![issuer("a", false), issuer("a", false)], audiences.clone()), "twice"),
        (VerifierConfig::new(vec![issuer("a", true)], audiences.clone()), "no HMAC algorithm"),
        (
            VerifierConfig {
                algorithms: vec![Algorithm::HS256],
                ..VerifierConfig::new(vec![issuer("a", false)], audiences.clone())
            },
            "no issuer has a shared secret",
        ),
        (
            VerifierConfig::new(
                vec![IssuerConfig { issuer: "a".to_owned(), jwks_uri: None, shared_secret: None }],
                audiences.clone(),
            ),
            "neither",
        ),
    ];
    for (config, expected) in cases {
        match Verifier::new(&config) {
            Ok(_) => panic!("accepted, expected {expected}"),
            Err(err) => assert!(err.to_string().contains(expected), "{err}"),
        }
    }
}

#[test]
fn shared_secrets_stay_out_of_debug_output() {
    let config = IssuerConfig {
        issuer: "a".to_owned(),
        jwks_uri: None,
        shared_secret: Some(SharedSecret::new("hunter2")),
    };
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn error_descriptions_are_safe_to_send() {
    let errors = [
        VerifyError::Malformed("a JWT has three dot-separated parts"),
        VerifyError::Unsigned,
        VerifyError::UnsupportedAlgorithm,
        VerifyError::AlgorithmNotAllowed(Algorithm::HS256),
        VerifyError::WrongType { expected: "at+jwt".to_owned() },
        VerifyError::UnknownIssuer,
        VerifyError::UnknownKey,
        VerifyError::KeysUnavailable,
        VerifyError::BadSignature,
        VerifyError::Expired,
        VerifyError::NotYetValid,
        VerifyError::WrongAudience,
        VerifyError::MissingClaim("exp"),
        VerifyError::InvalidClaim("exp"),
    ];
    for err in errors {
        let description = err.to_string();
        // RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E.
        assert!(
            description.bytes().all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e)),
            "{description}"
        );
    }
    assert_eq!(
        VerifyError::AlgorithmNotAllowed(Algorithm::HS256).to_string(),
        "the signing algorithm HS256 is not accepted"
    );
}

//! Metadata locations (RFC 8414 path insertion, OpenID Connect) and the exact issuer match.

use serde_json::json;

use super::*;
use crate::auth::testing::FakeIssuer;

fn urls(issuer: &str) -> Vec<String> {
    metadata_urls(issuer).unwrap().iter().map(|it| it.to_string()).collect()
}

#[test]
fn inserts_the_well_known_segment_before_the_path() {
    let expected = [
        "https://h.example/.well-known/oauth-authorization-server/tenant/v2",
        "https://h.example/.well-known/openid-configuration/tenant/v2",
        "https://h.example/tenant/v2/.well-known/openid-configuration",
    ];
    assert_eq!(urls("https://h.example/tenant/v2"), expected);
    assert_eq!(urls("https://h.example/tenant/v2/"), expected);
    let root = [
        "https://h.example/.well-known/oauth-authorization-server",
        "https://h.example/.well-known/openid-configuration",
    ];
    assert_eq!(urls("https://h.example"), root);
    assert_eq!(urls("https://h.example/"), root);
    assert_eq!(
        urls("http://127.0.0.1:4000"),
        [
            "http://127.0.0.1:4000/.well-known/oauth-authorization-server",
            "http://127.0.0.1:4000/.well-known/openid-configuration",
        ]
    );
}

#[test]
fn refuses_issuers_that_are_not_plain_urls() {
    for issuer in
        ["not a url", "ftp://h.example/", "https://h.example/?tenant=1", "https://h.example/#x", "urn:x:y"]
    {
        assert!(matches!(metadata_urls(issuer), Err(Error::Config(_))), "{issuer}");
    }
}

fn metadata(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "scopes_supported": ["pets:read"],
        "code_challenge_methods_supported": ["S256"],
        "response_types_supported": ["code"],
    })
}

#[tokio::test]
async fn finds_rfc_8414_metadata_by_path_insertion() {
    let server = FakeIssuer::start().await;
    let issuer = format!("{}/tenant", server.origin());
    server.json("/.well-known/oauth-authorization-server/tenant", &metadata(&issuer));
    let found = discover(&issuer).await.unwrap();
    assert_eq!(found.issuer, issuer);
    assert_eq!(found.jwks_uri, Some(server.url("/tenant/jwks")));
    assert_eq!(found.authorization_endpoint, server.url("/tenant/authorize"));
    assert_eq!(found.token_endpoint, server.url("/tenant/token"));
    assert_eq!(found.introspection_endpoint, Some(server.url("/tenant/introspect")));
    assert_eq!(found.registration_endpoint, None);
    assert_eq!(found.scopes_supported, ["pets:read"]);
    assert_eq!(found.code_challenge_methods_supported, ["S256"]);
    assert_eq!(server.hits("/.well-known/openid-configuration/tenant"), 0);
}

#[tokio::test]
async fn falls_back_to_openid_connect_discovery() {
    let server = FakeIssuer::start().await;
    let issuer = format!("{}/tenant", server.origin());
    server.json("/tenant/.well-known/openid-configuration", &metadata(&issuer));
    assert_eq!(discover(&issuer).await.unwrap().issuer, issuer);
    for tried in [
        "/.well-known/oauth-authorization-server/tenant",
        "/.well-known/openid-configuration/tenant",
        "/tenant/.well-known/openid-configuration",
    ] {
        assert_eq!(server.hits(tried), 1, "{tried}");
    }

    let server = FakeIssuer::start().await;
    let issuer = format!("{}/tenant", server.origin());
    server.json("/.well-known/openid-configuration/tenant", &metadata(&issuer));
    assert_eq!(discover(&issuer).await.unwrap().issuer, issuer);
    assert_eq!(server.hits("/tenant/.well-known/openid-configuration"), 0);
}

#[tokio::test]
async fn discovers_an_issuer_without_a_path() {
    let server = FakeIssuer::start().await;
    let issuer = server.origin().to_owned();
    server.json("/.well-known/openid-configuration", &metadata(&issuer));
    assert_eq!(discover(&issuer).await.unwrap().issuer, issuer);
    // The same host with a trailing slash is another issuer (RFC 8414 §3.3).
    let err = discover(&format!("{issuer}/")).await.unwrap_err();
    assert!(matches!(err, Error::IssuerMismatch { .. }), "{err}");
}

#[tokio::test]
async fn refuses_metadata_naming_another_issuer() {
    let server = FakeIssuer::start().await;
    let issuer = format!("{}/tenant", server.origin());
    server
        .json("/.well-known/oauth-authorization-server/tenant", &metadata("https://evil.example.com/tenant"));
    server.json("/tenant/.well-known/openid-configuration", &metadata(&issuer));
    match discover(&issuer).await {
        Err(Error::IssuerMismatch { expected, found, .. }) => {
            assert_eq!(expected, issuer);
            assert_eq!(found, "https://evil.example.com/tenant");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.hits("/tenant/.well-known/openid-configuration"), 0, "a mismatch ends the search");

    server.json("/.well-known/oauth-authorization-server/tenant", &json!({"jwks_uri": "https://x/jwks"}));
    assert!(matches!(discover(&issuer).await, Err(Error::IssuerMismatch { found, .. }) if found.is_empty()));
}

#[tokio::test]
async fn reports_missing_or_incomplete_metadata() {
    let server = FakeIssuer::start().await;
    let issuer = format!("{}/tenant", server.origin());
    let err = discover(&issuer).await.unwrap_err();
    assert!(matches!(&err, Error::NoMetadata { tried } if tried.contains("openid-configuration")), "{err}");

    let mut incomplete = metadata(&issuer);
    incomplete.as_object_mut().unwrap().remove("token_endpoint");
    server.json("/.well-known/oauth-authorization-server/tenant", &incomplete);
    let err = discover(&issuer).await.unwrap_err();
    assert!(matches!(&err, Error::Invalid { reason, .. } if reason.contains("token_endpoint")), "{err}");
}

#[tokio::test]
async fn metadata_without_signing_keys_serves_an_oauth_client_but_no_verifier() {
    // RFC 8414 makes `jwks_uri` optional: a backend's own authorization server, which mcpgate
    // only asks for tokens, may leave it out.
    let server = FakeIssuer::start().await;
    let issuer = server.origin();
    let mut document = metadata(issuer);
    document.as_object_mut().unwrap().remove("jwks_uri");
    server.json("/.well-known/oauth-authorization-server", &document);
    let found = discover(issuer).await.unwrap();
    assert_eq!(found.token_endpoint, server.url("/token"));
    let err = found.signing_keys().unwrap_err().to_string();
    assert!(err.contains("jwks_uri"), "{err}");
}

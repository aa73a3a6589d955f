//! What the credential step adds to a tool call (`docs/benchmarks.md`): `Credentials::authorize`
//! for a token-exchange server, with the token cached (the steady state) and without (each call
//! a new subject, so each is an exchange with a loopback token endpoint answering at once).
//! Usage: `bench_credentials [CALLS]`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::routing::post;
use mcpgate::auth::{Caller, Claims};
use mcpgate::config::CredentialsConfig;
use mcpgate::credentials::Credentials;
use mcpgate::secrets::Secret;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls: usize = std::env::args().nth(1).and_then(|it| it.parse().ok()).unwrap_or(200_000);
    let token = r#"{"access_token":"backend-token","token_type":"Bearer","expires_in":3600}"#;
    let endpoint = axum::Router::new()
        .route("/token", post(move || async move { ([("content-type", "application/json")], token) }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, endpoint).await });

    let config: CredentialsConfig = toml::from_str(&format!(
        "mode = 'token_exchange'\nclient_id = 'mcpgate'\nclient_secret = 's'\n\
         token_endpoint = 'http://{address}/token'\naudience = 'https://api.example'"
    ))?;
    let credentials = Arc::new(Credentials::new("bench", &config)?);
    let caller = |subject: usize| Caller {
        claims: Arc::new(Claims {
            subject: format!("user-{subject}"),
            issuer: "https://idp.example".to_owned(),
            audience: vec!["http://127.0.0.1/mcp/bench".to_owned()],
            scopes: Default::default(),
            expires_at: SystemTime::now() + Duration::from_secs(3600),
            client_id: None,
            raw: Default::default(),
        }),
        token: Secret::new("caller-token"),
    };
    let scopes = vec!["pets:read".to_owned()];

    // Cached: one subject, after its first exchange; 64 tasks at once, as under load.
    let one = caller(0);
    credentials.for_call(Some(&one)).authorize(&scopes).await?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (credentials, caller, scopes) = (credentials.clone(), one.clone(), scopes.clone());
            tokio::spawn(async move {
                for _ in 0..calls / 64 {
                    credentials
                        .for_call(Some(&caller))
                        .authorize(&scopes)
                        .await
                        .map(|_| ())
                        .map_err(|it| it.to_string())?;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let cached = started.elapsed();
    println!(
        "cached: {calls} authorizations in {cached:?}: {:.0} ns each, {:.0}/s",
        cached.as_nanos() as f64 / calls as f64,
        calls as f64 / cached.as_secs_f64()
    );

    // Uncached: every call a new subject, so every call is a token request.
    let exchanges = 2_000.min(calls);
    let started = Instant::now();
    for subject in 1..=exchanges {
        credentials.for_call(Some(&caller(subject))).authorize(&scopes).await?;
    }
    let fresh = started.elapsed();
    println!(
        "exchanged: {exchanges} authorizations in {fresh:?}: {:.0} µs each",
        fresh.as_micros() as f64 / exchanges as f64
    );
    Ok(())
}

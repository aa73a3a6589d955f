//! The backend of the forwarding benchmark (`docs/bench/run.sh`): answers
//! `GET /api/v3/pet/{id}` with a fixed JSON pet after a fixed delay, like an API that does some
//! work. Usage: `bench_backend PORT DELAY_MS`.

use std::time::Duration;

use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|it| it.parse().ok()).unwrap_or(18092);
    let delay = Duration::from_millis(args.next().and_then(|it| it.parse().ok()).unwrap_or(5));
    let pet = r#"{"id":7,"name":"doggie","category":{"id":1,"name":"Dogs"},"photoUrls":["https://example.com/d.png"],"tags":[{"id":1,"name":"good"}],"status":"available"}"#;
    let app = axum::Router::new().route(
        "/api/v3/pet/{id}",
        get(move || async move {
            tokio::time::sleep(delay).await;
            ([("content-type", "application/json")], pet)
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await
}

//! Every request's way in: the `Host` check, then `/mcp/{slug}` straight to its hosted server,
//! anything else to the router. The MCP endpoint is the hot path: axum's routing (a route table,
//! path parameters, a middleware and three boxed futures per request) took a tenth of a tool
//! call's instructions for what one comparison of the path decides.
//!
//! Invariant: no route sees a request whose `Host` is not in `http.allowed_hosts`, whoever added
//! the route (admin, the development identity provider); only the health probes are exempt.

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header, uri::Authority};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower::ServiceExt;

use super::AcceptedHosts;
use crate::hosting::Hosting;

/// The whole application as one handler of requests.
#[derive(Clone)]
pub struct Entry {
    router: Router,
    hosting: Hosting,
    hosts: AcceptedHosts,
}

/// Where the hosted servers are.
const MCP_PREFIX: &str = "/mcp/";

impl Entry {
    pub(super) fn new(router: Router, hosting: Hosting, hosts: AcceptedHosts) -> Entry {
        Entry { router, hosting, hosts }
    }

    pub async fn handle(&self, request: Request) -> Response {
        if let Some(refused) = refuse_host(&self.hosts, &request) {
            return refused;
        }
        let Some(slug) = hosted_slug(request.uri().path()) else {
            return self.router.clone().oneshot(request).await.unwrap_or_else(|err| match err {});
        };
        let Some(hosted) = self.hosting.get(slug) else {
            return not_found();
        };
        // The one place a request takes its server's snapshot; every layer below reads this one.
        let snapshot = hosted.host.current();
        hosted.service.handle(snapshot, request).await
    }
}

/// The `{slug}` of `/mcp/{slug}`: one segment, nothing after it (`/mcp/{slug}/` and `/mcp` are
/// the router's, whose answer for unknown paths lists the servers).
fn hosted_slug(path: &str) -> Option<&str> {
    path.strip_prefix(MCP_PREFIX).filter(|slug| !slug.is_empty() && !slug.contains('/'))
}

pub(super) fn not_found() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(json!({"error": "no hosted server with this name"}))).into_response()
}

/// The answer to a request for a host mcpgate does not serve: a DNS-rebinding page names its own
/// host, and with it could read `/admin/api` in the browser of a signed-in administrator (or
/// anyone's, under `serve --dev`).
fn refuse_host(hosts: &AcceptedHosts, request: &Request) -> Option<Response> {
    // Health probes come by address (a Kubernetes probe names the pod's IP), and what they read
    // (up, and counts) is nothing a rebinding page could use.
    if matches!(request.uri().path(), "/healthz" | "/readyz") {
        return None;
    }
    // HTTP/2 names the host in the URI rather than in a `Host` header.
    let named = match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok(),
        None => request.uri().authority().map(Authority::as_str),
    };
    if named.is_some_and(|it| hosts.accept(it)) {
        return None;
    }
    tracing::warn!(
        host = ?named,
        path = request.uri().path(),
        "refused a request for a host not in http.allowed_hosts"
    );
    let error = "this host name is not served here (http.allowed_hosts)";
    Some((StatusCode::FORBIDDEN, axum::Json(json!({"error": error}))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_segment_after_the_prefix_names_a_hosted_server() {
        assert_eq!(hosted_slug("/mcp/petstore"), Some("petstore"));
        for path in ["/mcp", "/mcp/", "/mcp/petstore/", "/mcp/petstore/x", "/mcpx/petstore", "/admin/mcp/x"] {
            assert_eq!(hosted_slug(path), None, "{path}");
        }
    }
}

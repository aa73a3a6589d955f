//! `/connect/{slug}/…`: the pages where a user connects their account to a hosted server's
//! backend (credentials mode `authorization_code`), sees the connection and ends it.
//!
//! - `GET start?ticket=…`: the link a tool call handed out; a page saying which server and which
//!   MCP user the connection is for, with one button (a cross-site page cannot connect someone
//!   unawares, and the ticket never reaches the authorization server in a `Referer`);
//! - `POST start`: sets a cookie binding the flow to this browser and redirects to the
//!   authorization server, with PKCE;
//! - `GET callback`: the authorization server's redirect; refuses a `state` used already,
//!   expired, issued for another server or started in another browser; stores the tokens and
//!   says the connection is made, linking to the page below;
//! - `GET manage?ticket=…` and `POST revoke`: the user's connection and the button that ends it.
//!
//! Every page is small HTML, never cached, never framed, and holds no token.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::credentials::{PageError, Purpose};
use crate::hosting::Hosting;

const COOKIE: &str = "mcpgate_connect";

#[derive(Clone)]
struct Pages {
    hosting: Hosting,
    public_url: String,
}

pub fn router(hosting: Hosting) -> Router {
    let public_url = hosting.config().public_url().to_owned();
    Router::new()
        .route("/connect/{slug}/start", get(start_page).post(start))
        .route("/connect/{slug}/callback", get(callback))
        .route("/connect/{slug}/manage", get(manage))
        .route("/connect/{slug}/revoke", post(revoke))
        .with_state(Pages { hosting, public_url })
}

#[derive(Deserialize)]
struct Ticket {
    ticket: String,
}

#[derive(Deserialize)]
struct Callback {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

/// Binds `$snapshot` to the hosted server `$slug` as it is now and `$consent` to its users'
/// connections, or answers 404 when it has none.
macro_rules! consent_of {
    ($pages:expr, $slug:expr, $snapshot:ident, $consent:ident) => {
        let Some($snapshot) = $pages.hosting.get(&$slug).map(|it| it.host.current()) else {
            return no_server();
        };
        let Some($consent) = $snapshot.credentials.consent() else {
            return no_server();
        };
    };
}

fn no_server() -> Response {
    page(StatusCode::NOT_FOUND, "Not found", "<p>There is no server here whose accounts connect.</p>")
}

async fn start_page(
    State(pages): State<Pages>,
    Path(slug): Path<String>,
    Query(query): Query<Ticket>,
) -> Response {
    {
        consent_of!(pages, slug, snapshot, consent);
        let user = match consent.ticket_user(Purpose::Connect, &query.ticket) {
            Ok(user) => user,
            Err(err) => return refused(&err),
        };
        let body = format!(
            "<p>Connect your <strong>{title}</strong> account to mcpgate for the MCP user <strong>{subject}</strong> \
             (signed in at {issuer})?</p>\
             <p>You will be asked to sign in to {title} and approve access. Tools of this server will then call \
             {title} as you.</p>\
             <form method=\"post\" action=\"/connect/{slug}/start\">\
             <input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
             <button type=\"submit\">Connect</button></form>\
             <p>If you did not ask for this, close this page.</p>",
            title = escape(consent.title()),
            subject = escape(&user.subject),
            issuer = escape(&user.issuer),
            slug = escape(&slug),
            ticket = escape(&query.ticket),
        );
        page(StatusCode::OK, &format!("Connect {}", consent.title()), &body)
    }
}

/// The answer to a form posted from another origin (a page tricking the user into connecting or
/// revoking).
fn cross_origin() -> Response {
    page(StatusCode::FORBIDDEN, "Refused", "<p>This form may be sent only from mcpgate's own page.</p>")
}

async fn start(
    State(pages): State<Pages>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Ticket>,
) -> Response {
    if !same_origin(&pages, &headers) {
        return cross_origin();
    }
    {
        consent_of!(pages, slug, snapshot, consent);
        let begun = match consent.begin(&form.ticket).await {
            Ok(begun) => begun,
            Err(err) => return refused(&err),
        };
        let secure = if pages.public_url.starts_with("https://") { "; Secure" } else { "" };
        let cookie = format!(
            "{COOKIE}={}; Path=/connect/{slug}/; Max-Age=600; HttpOnly; SameSite=Lax{secure}",
            begun.cookie
        );
        let mut response = StatusCode::SEE_OTHER.into_response();
        let headers = response.headers_mut();
        if let (Ok(location), Ok(cookie)) =
            (HeaderValue::from_str(begun.redirect.as_str()), HeaderValue::from_str(&cookie))
        {
            headers.insert(header::LOCATION, location);
            headers.insert(header::SET_COOKIE, cookie);
        } else {
            return page(
                StatusCode::BAD_GATEWAY,
                "Cannot connect",
                "<p>The authorization server's address is unusable.</p>",
            );
        }
        protect(headers);
        response
    }
}

async fn callback(
    State(pages): State<Pages>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Query(query): Query<Callback>,
) -> Response {
    let cookie = cookie(&headers).map(str::to_owned);
    {
        consent_of!(pages, slug, snapshot, consent);
        let Some(state) = query.state.as_deref().filter(|it| it.len() <= 256) else {
            return refused(&PageError { status: 400, message: "The callback carries no state.".to_owned() });
        };
        let connected =
            consent.complete(state, query.code.as_deref(), query.error.as_deref(), cookie.as_deref()).await;
        let mut response = match connected {
            Ok(connected) => {
                let manage = connected.manage.map_or_else(String::new, |ticket| {
                    let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("ticket", &ticket).finish();
                    format!(
                        "<p><a href=\"/connect/{}/manage?{}\">See or end this connection</a> (this link works for 10 minutes).</p>",
                        escape(&slug),
                        escape(&query)
                    )
                });
                let body = format!(
                    "<p>Your {title} account is connected for <strong>{subject}</strong>.</p>\
                     <p>Return to your MCP client and call the tool again.</p>{manage}",
                    title = escape(consent.title()),
                    subject = escape(&connected.user.subject),
                );
                page(StatusCode::OK, "Connected", &body)
            }
            Err(err) => refused(&err),
        };
        // The cookie has done its work.
        let expired = format!("{COOKIE}=; Path=/connect/{slug}/; Max-Age=0; HttpOnly; SameSite=Lax");
        if let Ok(value) = HeaderValue::from_str(&expired) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        response
    }
}

async fn manage(
    State(pages): State<Pages>,
    Path(slug): Path<String>,
    Query(query): Query<Ticket>,
) -> Response {
    {
        consent_of!(pages, slug, snapshot, consent);
        let user = match consent.ticket_user(Purpose::Manage, &query.ticket) {
            Ok(user) => user,
            Err(err) => return refused(&err),
        };
        let status = match consent.status(&user).await {
            Ok(status) => status,
            Err(err) => return refused(&err),
        };
        let title = escape(consent.title());
        let body = match status {
            Some(info) if !info.needs_consent => format!(
                "<p>Your {title} account is connected for <strong>{subject}</strong> since {since} (Unix time), \
                 with the scopes <code>{scopes}</code>.</p>\
                 <form method=\"post\" action=\"/connect/{slug}/revoke\">\
                 <input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
                 <button type=\"submit\">Disconnect</button></form>",
                subject = escape(&user.subject),
                since = info.connected_at,
                scopes = escape(&info.scopes.join(" ")),
                slug = escape(&slug),
                ticket = escape(&query.ticket),
            ),
            _ => format!("<p>Your {title} account is not connected.</p>"),
        };
        page(StatusCode::OK, &format!("{} connection", consent.title()), &body)
    }
}

async fn revoke(
    State(pages): State<Pages>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Ticket>,
) -> Response {
    if !same_origin(&pages, &headers) {
        return cross_origin();
    }
    {
        consent_of!(pages, slug, snapshot, consent);
        let user = match consent.ticket_user(Purpose::Manage, &form.ticket) {
            Ok(user) => user,
            Err(err) => return refused(&err),
        };
        match consent.revoke(&user, "user").await {
            Ok(_) => page(
                StatusCode::OK,
                "Disconnected",
                &format!("<p>Your {} account is no longer connected.</p>", escape(consent.title())),
            ),
            Err(err) => {
                tracing::error!(server = %slug, %err, "a connection could not be ended");
                page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Not disconnected",
                    "<p>mcpgate cannot end the connection now. Try again later.</p>",
                )
            }
        }
    }
}

/// A form post from a page of mcpgate itself (or from no page: `Origin` absent).
fn same_origin(pages: &Pages, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let public = url::Url::parse(&pages.public_url).map(|it| it.origin().ascii_serialization());
    origin.to_str().ok().zip(public.ok()).is_some_and(|(origin, public)| origin == public)
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|it| it.to_str().ok())
        .flat_map(|it| it.split(';'))
        .filter_map(|it| it.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn refused(err: &PageError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
    page(status, "Not connected", &format!("<p>{}</p>", escape(&err.message)))
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · mcpgate</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><style>body{{font-family:system-ui,sans-serif;\
         max-width:36rem;margin:3rem auto;padding:0 1rem;line-height:1.5}}button{{font-size:1rem;padding:.4rem 1.2rem}}\
         </style></head><body><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    );
    let mut response = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    protect(response.headers_mut());
    response
}

/// Pages carry tickets: never cached, never framed, never named in a `Referer`.
fn protect(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for it in text.chars() {
        match it {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

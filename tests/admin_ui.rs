//! The admin web UI in a real browser: `tests/node/admin-browser.mjs` drives Debian's Chromium
//! with Playwright against `mcpgate serve --dev` while an MCP client session (the TypeScript SDK)
//! watches the curated server change.
//!
//! Needs Node and `tests/node` (as `tests/clients.rs`; `MCPGATE_REQUIRE_NODE` makes their absence
//! a failure) and Chromium (`/usr/bin/chromium`, or `MCPGATE_CHROMIUM`; `MCPGATE_REQUIRE_BROWSER`
//! makes its absence a failure). The screenshots go to a temporary folder, or to
//! `docs/screenshots/` with `MCPGATE_UPDATE_SCREENSHOTS=1`.

// Tests read their own switches from the environment, as `tests/corpus.rs` does.
#![allow(clippy::disallowed_methods)]

#[path = "support/harness.rs"]
mod harness;
// Only the authorization server is used here.
#[allow(dead_code)]
#[path = "support/parties.rs"]
mod parties;

use std::path::PathBuf;

use harness::{Gate, Node};
use serde_json::{Value, json};
use tempfile::TempDir;

const PETSTORE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi-samples/swagger-petstore-v3.yaml");
const SCREENSHOTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");

fn switch(name: &str) -> bool {
    std::env::var(name).is_ok_and(|it| !it.is_empty() && it != "0")
}

/// The Chromium binary, or `None` (after a notice) when it is missing and not required.
fn chromium() -> Option<PathBuf> {
    let bin = std::env::var_os("MCPGATE_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if bin.exists() {
        return Some(bin);
    }
    let help =
        format!("{} does not exist: `apt-get install chromium`, or set MCPGATE_CHROMIUM", bin.display());
    assert!(!switch("MCPGATE_REQUIRE_BROWSER"), "MCPGATE_REQUIRE_BROWSER is set but {help}");
    harness::skip(&help);
    None
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().into_iter().flatten().filter_map(|it| it.as_str().map(str::to_owned)).collect()
}

#[test]
fn an_administrator_imports_curates_and_publishes_in_the_browser() {
    let Some(node) = Node::find(&[
        "node_modules/playwright-core/package.json",
        "node_modules/@modelcontextprotocol/sdk/package.json",
    ]) else {
        return;
    };
    let Some(chromium) = chromium() else { return };
    let gate = Gate::start_dev();
    let shots = TempDir::new().unwrap();
    let shots_dir = if switch("MCPGATE_UPDATE_SCREENSHOTS") {
        PathBuf::from(SCREENSHOTS)
    } else {
        shots.path().to_owned()
    };
    std::fs::create_dir_all(&shots_dir).unwrap();
    let base = format!("http://{}", gate.addr);
    let run = node.run(&[
        "admin-browser.mjs",
        &base,
        PETSTORE,
        &shots_dir.display().to_string(),
        &chromium.display().to_string(),
    ]);
    assert_eq!(run.code, Some(0), "{run}\n{}", gate.log_text());
    let seen = run.stdout_json();
    let context = format!("{run}\n{}", gate.log_text());

    // No Content-Security-Policy violation nor script error on any page; the only refused
    // requests are the two the script makes on purpose.
    assert_eq!(seen["problems"], json!([]), "{context}");
    assert_eq!(
        seen["failedRequests"],
        json!([
            "PATCH /admin/api/servers/shop/operations 403",
            "PATCH /admin/api/servers/petstore/operations 403"
        ]),
        "{context}"
    );

    // Signing in, and the list.
    assert_eq!(seen["unsignedStatus"], 303, "{context}");
    assert_eq!(seen["unsignedLocation"], "/admin/login", "{context}");
    assert_eq!(seen["deepLinkLocation"], "/admin/login?next=%2Fadmin%2Fservers%2Fpetstore", "{context}");
    assert_eq!(seen["deepLinkLanded"], "/admin/servers/petstore", "{context}");
    assert!(seen["deepLinkHeading"].as_str().unwrap().starts_with("petstore"), "{context}");
    let home = format!("{base}/admin");
    assert_eq!(
        seen["foreignNextLanded"],
        json!({"//evil.example": home, "https://evil.example": home, "/\\evil.example": home}),
        "{context}"
    );
    assert_eq!(strings(&seen["listed"]), ["petstore", "train-travel"], "{context}");

    // The upload and its report.
    assert_eq!(seen["progress"], 100, "{context}");
    assert!(seen["createStatus"].as_str().unwrap().starts_with("Created shop."), "{context}");
    let report = seen["report"].as_str().unwrap();
    assert!(report.contains("19 operations, 19 tools, 0 skipped"), "{report}");

    // Search and filters work on the rendered rows.
    assert_eq!(seen["operations"], 19, "{context}");
    assert_eq!(strings(&seen["shownForSearch"]), ["findPetsByStatus", "findPetsByTags"], "{context}");
    assert_eq!(seen["shownForGetPet"], 4, "GET operations matching `pet`: {context}");
    assert_eq!(strings(&seen["shownExposed"]), ["findPetsByStatus", "getPetById"], "{context}");
    assert!(seen["exposedTokens"].as_u64().unwrap() > 0, "{context}");

    // The first publish shows at once: the badge, and the list gone back to.
    assert_eq!(seen["stateBeforePublish"], "draft", "{context}");
    assert_eq!(seen["stateAfterPublish"], "live", "{context}");
    assert_eq!(seen["stateClassAfterPublish"], "badge state-live", "{context}");
    assert_eq!(seen["listStateAfterPublish"], "live", "{context}");

    // The client sees what was published, and hears of the change.
    assert_eq!(seen["listChangedCapability"], true, "{context}");
    assert_eq!(strings(&seen["toolsBefore"]), ["findPetsByStatus", "getPetById"], "{context}");
    assert_eq!(seen["renamedShown"], "fetchPet", "{context}");
    assert_eq!(seen["heardListChanged"], true, "no notifications/tools/list_changed: {context}");
    assert_eq!(strings(&seen["toolsAfter"]), ["fetchPet", "findPetsByStatus"], "{context}");
    assert_eq!(seen["definitionShown"], "fetchPet", "{context}");

    // CSRF: the browser's own session is refused without the token.
    assert_eq!(seen["patchWithoutCsrf"], 403, "{context}");
    assert_eq!(seen["patchWithCsrf"], 204, "{context}");

    // Settings: secrets are write-only.
    assert_eq!(seen["secretPlaceholder"], "(set) — type to replace", "{context}");
    assert_eq!(seen["secretShown"], false, "the secret is on the page: {context}");
    assert_eq!(seen["timeoutShown"], "20", "{context}");
    // Rate limits are edited with the settings.
    assert_eq!(seen["rateLimitShown"], "10", "{context}");
    assert_eq!(seen["toolRateLimitsShown"], r#"{"getPetById":{"per_user":5}}"#, "{context}");
    // The client's call is on the server's page of recent calls, with who made it.
    let calls = strings(&seen["recentCalls"]);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].contains("findPetsByStatus") && calls[0].contains("allowed"), "{calls:?}");
    // Re-import shows the diff.
    assert_eq!(seen["reimportDiff"], "Changes: +0 −0 ~0", "{context}");

    // A server from the configuration file is read-only.
    assert_eq!(seen["readOnlyNotice"], true, "{context}");
    // The samples of `serve --dev` are not in a configuration file anyone could change.
    let notice = seen["readOnlyNoticeText"].as_str().unwrap_or_default();
    assert!(notice.contains("serve --dev") && !notice.contains("configuration file"), "{notice}");
    assert_eq!(seen["readOnlyPublishDisabled"], true, "{context}");
    assert_eq!(seen["readOnlyPatch"], 403, "{context}");
    assert_eq!(seen["readOnlyExportOrDelete"], 0, "no export or delete for it: {context}");

    let shop = seen["listedAfter"].as_array().unwrap().iter().find(|it| it["slug"] == "shop").cloned();
    let shop =
        shop.unwrap_or_else(|| panic!("shop is not listed: {context}"))["text"].as_str().unwrap().to_owned();
    assert!(shop.contains("live") && !shop.contains("unpublished"), "{shop}");
    assert!(shop.contains(&format!("{base}/mcp/shop")), "{shop}");

    // The audit log, newest first.
    let audit = strings(&seen["audit"]);
    // The samples' first generations were recorded at start-up (in either order, as they load
    // side by side), before anything else.
    let mut first = audit[audit.len().saturating_sub(2)..].to_vec();
    first.sort();
    assert_eq!(first, ["publish petstore", "publish train-travel"], "{audit:?}");
    let of_shop: Vec<&str> = audit.iter().map(String::as_str).filter(|it| it.ends_with(" shop")).collect();
    assert_eq!(of_shop.last().copied(), Some("create shop"), "{audit:?}");
    assert_eq!(audit.first().map(String::as_str), Some("publish shop"), "{audit:?}");
    assert_eq!(audit.iter().filter(|it| *it == "publish shop").count(), 2, "{audit:?}");
    for action in ["configure shop", "import shop", "curate shop"] {
        assert!(audit.iter().any(|it| it == action), "no {action} in {audit:?}");
    }
    // Each curation says what it changed, newest first.
    assert_eq!(
        strings(&seen["curateDetails"]),
        [
            "renamed getPetById to fetchPet; changed the description of getPetById",
            "no change",
            "exposed findPetsByStatus",
            "exposed getPetById",
        ],
        "{context}"
    );

    // Export: a JSON download whose secret is sealed.
    assert_eq!(seen["exportName"], "shop.mcpgate.json", "{context}");
    assert_eq!(seen["exportSlug"], "shop", "{context}");
    assert_eq!(seen["exportExpose"], json!(["findPetsByStatus", "getPetById"]), "{context}");
    assert_eq!(seen["exportHasDocument"], true, "{context}");
    assert_eq!(seen["exportShowsSecret"], false, "the export has the secret in clear: {context}");
    let credentials = &seen["exportCredentials"];
    assert_eq!((&credentials["mode"], &credentials["scheme"]), (&json!("static"), &json!("bearer")));
    let sealed = credentials["value"].as_str().unwrap_or_default();
    assert!(sealed.starts_with("mcpgate-sealed:"), "the secret leaves sealed: {credentials}");
    // Delete: confirmed, then the list without it.
    assert_eq!((&seen["deleteAsked"], &seen["deleteCancelled"]), (&json!(true), &json!(true)), "{context}");
    assert_eq!(seen["deletedStatus"], "Deleted shop: it is no longer served.", "{context}");
    assert_eq!(strings(&seen["listedAfterDelete"]), ["petstore", "train-travel"], "{context}");
    assert_eq!(seen["deletedPage"], 404, "{context}");
    // Restore: back from the export as a draft, curation and all.
    assert_eq!(
        seen["restoreStatus"], "Restored shop as a draft: check it, then publish to serve it.",
        "{context}"
    );
    let report = seen["restoreReport"].as_str().unwrap();
    assert!(report.contains("19 operations, 19 tools, 0 skipped"), "{report}");
    assert_eq!(seen["restoredState"], "draft", "{context}");
    assert_eq!(strings(&seen["restoredExposed"]), ["fetchPet", "findPetsByStatus"], "{context}");
    let restored = seen["restoredRow"].as_str().unwrap();
    assert!(restored.contains("draft") && restored.contains("unpublished"), "{restored}");
    assert_eq!(
        strings(&seen["auditAfterRestore"]),
        ["restore shop", "delete shop", "export shop"],
        "{context}"
    );

    // Signing out with the header's button ends the session for good.
    assert_eq!(seen["signedOutAt"], "/admin/logout", "{context}");
    assert_eq!(seen["cookieAfterSignOut"], false, "{context}");
    assert_eq!(seen["oldSessionStatus"], 401, "the signed-out session still works: {context}");

    for name in ["admin-servers.png", "admin-server.png", "admin-audit.png"] {
        let bytes = std::fs::read(shots_dir.join(name)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{name} is not a PNG");
    }
}

/// OpenID Connect sign-in against a real identity provider (`oidc-provider`, whose dev login form
/// takes any login): a user whose ID token lists the required role is signed in, with a session
/// cookie that scripts cannot read; anyone else is refused and gets no session.
#[test]
fn administrators_sign_in_with_the_identity_provider_and_need_the_role() {
    let Some(node) =
        Node::find(&["node_modules/playwright-core/package.json", "node_modules/oidc-provider/package.json"])
    else {
        return;
    };
    let Some(chromium) = chromium() else { return };
    let issuer = parties::AuthorizationServer::start(&node, None);
    let admin = format!(
        "mode = \"none\"\n[admin.oidc]\nissuer = \"{}\"\nclient_id = \"mcpgate-admin\"\nrole_claim = \"roles\"\n\
         required_role = \"mcpgate-admin\"",
        issuer.url
    );
    let gate = Gate::start_with_auth(&admin, "");
    let base = format!("http://{}", gate.addr);
    let sign_in_at = |login: &str, start: &str| {
        let run = node.run(&["admin-signin.mjs", &base, &chromium.display().to_string(), login, start]);
        assert_eq!(run.code, Some(0), "{run}\n{}", gate.log_text());
        run.stdout_json()
    };
    let sign_in = |login: &str| sign_in_at(login, "/admin/login");

    let ada = sign_in("ada-admin");
    assert_eq!(ada["url"], format!("{base}/admin"), "{ada}");
    assert_eq!(ada["status"], 200, "{ada}");
    assert!(ada["text"].as_str().unwrap().contains("ada-admin"), "the page names who is signed in: {ada}");
    let session = ada["cookies"].as_array().unwrap().iter().find(|it| it["name"] == "mcpgate_admin");
    let session = session.unwrap_or_else(|| panic!("no session cookie: {ada}"));
    assert_eq!((session["httpOnly"].as_bool(), session["sameSite"].as_str()), (Some(true), Some("Lax")));

    let bob = sign_in("bob");
    assert_eq!(bob["status"], 403, "{bob}");
    assert!(bob["text"].as_str().unwrap().contains("not an administrator"), "{bob}");
    assert!(!bob["cookies"].as_array().unwrap().iter().any(|it| it["name"] == "mcpgate_admin"), "{bob}");
    assert!(gate.log_text().contains("admin signed in"), "the sign-in is audited");

    // A deep link opened signed out leads through the identity provider back to its page; a
    // `next` elsewhere leads to /admin.
    let deep = sign_in_at("ada-admin", "/admin/audit");
    assert_eq!(
        (&deep["url"], &deep["status"]),
        (&json!(format!("{base}/admin/audit")), &json!(200)),
        "{deep}"
    );
    assert_eq!(deep["heading"], "Audit log", "{deep}");
    let foreign = sign_in_at("ada-admin", "/admin/login?next=%2F%2Fevil.example");
    assert_eq!(
        (&foreign["url"], &foreign["status"]),
        (&json!(format!("{base}/admin")), &json!(200)),
        "{foreign}"
    );
}

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde_json::json;

use super::*;
use crate::config::ServerSettings;

const DOCUMENT: &str = r#"
openapi: 3.0.3
info: {title: Shop, version: "1"}
servers: [{url: "https://api.example.com"}]
paths:
  /refunds:
    post:
      operationId: createRefund
      tags: [finance]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [amount]
              properties:
                amount: {type: integer}
                reason: {type: string}
      responses: {"200": {description: ok}}
  /tickets/{id}:
    get:
      operationId: getTicket
      tags: [support]
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
    delete:
      operationId: deleteTicket
      tags: [support]
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {"204": {description: gone}}
"#;

fn catalog() -> crate::catalog::Catalog {
    let settings: ServerSettings = toml::from_str("slug = 'shop'\nspec = 'shop.yaml'").unwrap();
    crate::catalog::Catalog::build(&settings, crate::openapi::ingest(DOCUMENT.as_bytes()).unwrap()).unwrap()
}

fn claims(raw: serde_json::Value) -> Arc<Claims> {
    let raw = raw.as_object().unwrap().clone();
    Arc::new(Claims {
        subject: raw.get("sub").and_then(Value::as_str).unwrap_or("alice").to_owned(),
        issuer: "https://idp.example".to_owned(),
        audience: vec!["mcp".to_owned()],
        scopes: BTreeSet::new(),
        expires_at: SystemTime::now(),
        client_id: None,
        raw,
    })
}

fn build(own: &str) -> Result<(crate::catalog::Catalog, Policies), String> {
    let catalog = catalog();
    let policies = Policies::build(&PolicyConfig::default(), Some(own), &catalog.tools)?;
    Ok((catalog, policies))
}

const FINANCE: &str = r#"
permit(principal, action, resource) when { resource.read_only };
@id("refunds-finance-only")
forbid(principal, action == Action::"call", resource == Tool::"createRefund")
unless { principal.groups.contains("finance") };
@id("refunds-below-500")
permit(principal, action == Action::"call", resource == Tool::"createRefund")
when { context.arguments has amount && context.arguments.amount < 500 };
"#;

#[test]
fn no_policy_allows_everything() {
    let catalog = catalog();
    let policies = Policies::build(&PolicyConfig::default(), None, &catalog.tools).unwrap();
    assert!(!policies.any());
    let tool = catalog.tool("createRefund").unwrap();
    assert_eq!(policies.check_call(None, tool, &Map::new()), Ok(Allowed { confirm: false }));
    assert!(policies.may_list(None, tool));
}

#[test]
fn calls_are_decided_on_claims_and_arguments() {
    let (catalog, policies) = build(FINANCE).unwrap();
    let refund = catalog.tool("createRefund").unwrap();
    let finance = claims(json!({"groups": ["finance"]}));
    let other = claims(json!({"groups": "support"}));
    let small = json!({"amount": 100}).as_object().unwrap().clone();
    let large = json!({"amount": 900}).as_object().unwrap().clone();
    assert_eq!(policies.check_call(Some(&finance), refund, &small), Ok(Allowed { confirm: false }));
    assert_eq!(policies.check_call(Some(&finance), refund, &large), Err(Refused::NotPermitted));
    assert_eq!(
        policies.check_call(Some(&other), refund, &small),
        Err(Refused::Policy("refunds-finance-only".to_owned()))
    );
    let ticket = catalog.tool("getTicket").unwrap();
    let id = json!({"id": "7"}).as_object().unwrap().clone();
    assert_eq!(policies.check_call(Some(&other), ticket, &id), Ok(Allowed { confirm: false }));
    assert_eq!(policies.check_call(None, ticket, &id), Ok(Allowed { confirm: false }));
    let explained = policies.explain(Some(&finance), refund, &small);
    assert!(explained.allowed);
    assert_eq!(explained.policies, ["refunds-below-500"]);
}

#[test]
fn tools_nobody_may_call_are_not_listed() {
    let (catalog, policies) = build(FINANCE).unwrap();
    let finance = claims(json!({"groups": ["finance"]}));
    let other = claims(json!({}));
    let refund = catalog.tool("createRefund").unwrap();
    // Some amounts are allowed: listed for finance.
    assert!(policies.may_list(Some(&finance), refund));
    assert!(!policies.may_list(Some(&other), refund));
    // No policy permits deleting tickets.
    assert!(!policies.may_list(Some(&finance), catalog.tool("deleteTicket").unwrap()));
    assert!(policies.may_list(Some(&other), catalog.tool("getTicket").unwrap()));
}

#[test]
fn a_forbid_on_list_hides_a_tool() {
    let text = r#"
permit(principal, action, resource);
forbid(principal, action == Action::"list", resource) when { resource.tags.contains("support") && !(principal has tenant) };
"#;
    let (catalog, policies) = build(text).unwrap();
    let ticket = catalog.tool("getTicket").unwrap();
    assert!(!policies.may_list(Some(&claims(json!({}))), ticket));
    assert!(policies.may_list(Some(&claims(json!({"tenant": "acme"}))), ticket));
    assert!(policies.may_list(Some(&claims(json!({}))), catalog.tool("createRefund").unwrap()));
}

#[test]
fn policies_that_do_not_fit_the_tools_are_refused() {
    let typo = "permit(principal, action, resource) when { principal.group.contains(\"x\") };";
    let err = build(typo).err().unwrap();
    assert!(err.contains("do not fit"), "{err}");
    let wrong_type = "permit(principal, action, resource) when { context.arguments has amount && context.arguments.amount == \"x\" };";
    assert!(build(wrong_type).is_err());
    let unknown_tool_attribute = "permit(principal, action, resource) when { resource.owner == \"x\" };";
    assert!(build(unknown_tool_attribute).is_err());
    assert!(check("permit(principal, action, resource").is_err());
    let twice =
        "@id(\"a\") permit(principal, action, resource);\n@id(\"a\") forbid(principal, action, resource);";
    assert!(check(twice).unwrap_err().contains("used twice"));
}

#[test]
fn an_argument_of_another_type_refuses_the_call() {
    let (catalog, policies) = build(FINANCE).unwrap();
    let finance = claims(json!({"groups": ["finance"]}));
    let refund = catalog.tool("createRefund").unwrap();
    let huge = json!({"amount": 1e30}).as_object().unwrap().clone();
    assert_eq!(
        policies.check_call(Some(&finance), refund, &huge),
        Err(Refused::Argument("amount".to_owned()))
    );
}

#[test]
fn global_policies_read_configured_claims() {
    let config: PolicyConfig = toml::from_str(
        "claims = { department = 'string' }\npolicies = '''\n@id(\"sales-only\")\npermit(principal, action, resource) \
         when { principal.claims has department && principal.claims.department == \"sales\" };\n'''",
    )
    .unwrap();
    let catalog = catalog();
    let policies = Policies::build(&config, None, &catalog.tools).unwrap();
    let ticket = catalog.tool("getTicket").unwrap();
    let id = json!({"id": "7"}).as_object().unwrap().clone();
    let sales = claims(json!({"department": "sales"}));
    assert_eq!(policies.check_call(Some(&sales), ticket, &id), Ok(Allowed { confirm: false }));
    let other = claims(json!({"department": ["sales"]}));
    assert_eq!(policies.check_call(Some(&other), ticket, &id), Err(Refused::NotPermitted));
    // Unconfigured claims are not in the schema.
    let unknown = "permit(principal, action, resource) when { principal.claims.team == \"a\" };";
    assert!(Policies::build(&config, Some(unknown), &catalog.tools).is_err());
}

#[test]
fn a_listing_reads_the_time_only_when_a_policy_does() {
    let reads_time = |own: &str| build(own).unwrap().1.compiled.unwrap().reads_time;
    assert!(!reads_time(FINANCE));
    let after = "permit(principal, action, resource);\n\
                 forbid(principal, action, resource == Tool::\"getTicket\") when { context.time > 0 };";
    assert!(reads_time(after));
    // An escaped name is still the attribute `time`.
    assert!(reads_time(&after.replace("context.time", "context[\"\\u{74}ime\"]")));

    // Decided with the time: once it has passed, the tool is hidden, on every page.
    let (catalog, policies) = build(after).unwrap();
    let alice = claims(json!({}));
    let ticket = catalog.tool("getTicket").unwrap();
    for _ in 0..2 {
        assert!(!policies.may_list(Some(&alice), ticket));
        assert!(policies.may_list(Some(&alice), catalog.tool("createRefund").unwrap()));
    }
    let (catalog, policies) = build(&after.replace("> 0", "< 0")).unwrap();
    assert!(policies.may_list(Some(&alice), catalog.tool("getTicket").unwrap()));
}

#[test]
fn each_caller_keeps_its_own_listing() {
    let (catalog, policies) = build(FINANCE).unwrap();
    let refund = catalog.tool("createRefund").unwrap();
    let finance = claims(json!({"groups": ["finance"]}));
    let other = claims(json!({}));
    for _ in 0..2 {
        assert!(policies.may_list(Some(&finance), refund));
        assert!(!policies.may_list(Some(&other), refund));
        assert!(!policies.may_list(None, refund));
    }
}

#[test]
fn a_policy_that_cannot_apply_to_a_tool_is_left_out_of_its_set() {
    let text = r#"
@id("support-staff")
permit(principal, action, resource) when { resource.tags.contains("support") && principal.groups.contains("staff") };
@id("no-deletes")
forbid(principal, action == Action::"call", resource) when { resource.destructive && !principal.groups.contains("admins") };
"#;
    let (catalog, policies) = build(text).unwrap();
    let compiled = policies.compiled.as_ref().unwrap();
    let ids = |tool: &str| -> BTreeSet<String> {
        compiled.tools[tool].set.policies().map(|it| it.id().to_string()).collect()
    };
    assert_eq!(ids("createRefund"), BTreeSet::new(), "neither a support tool nor destructive");
    assert_eq!(ids("getTicket"), BTreeSet::from(["support-staff".to_owned()]));
    assert_eq!(ids("deleteTicket"), BTreeSet::from(["support-staff".to_owned(), "no-deletes".to_owned()]));

    // The decisions, and the policies that make them, are what all the policies make.
    let staff = claims(json!({"groups": ["staff"]}));
    let admin = claims(json!({"groups": ["staff", "admins"]}));
    let id = json!({"id": "7"}).as_object().unwrap().clone();
    let delete = catalog.tool("deleteTicket").unwrap();
    assert_eq!(policies.check_call(Some(&staff), delete, &id), Err(Refused::Policy("no-deletes".to_owned())));
    assert_eq!(policies.explain(Some(&admin), delete, &id).policies, ["support-staff"]);
    assert!(policies.check_call(Some(&staff), catalog.tool("getTicket").unwrap(), &id).is_ok());
    let refund = catalog.tool("createRefund").unwrap();
    let amount = json!({"amount": 1}).as_object().unwrap().clone();
    assert_eq!(policies.check_call(Some(&admin), refund, &amount), Err(Refused::NotPermitted));
    assert!(!policies.may_list(Some(&admin), refund));
    assert!(!policies.may_list(Some(&staff), delete));
    assert!(policies.may_list(Some(&admin), delete));
}

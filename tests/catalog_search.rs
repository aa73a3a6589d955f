//! Catalog mode's search over real APIs: natural-language tasks over GitHub and Stripe, each
//! with the operation that does it, must find that operation among the first five results for
//! at least 90% of them. The figure is printed (`--nocapture`) and kept in `docs/benchmarks.md`.

// The corpus location is a test fixture path, not configuration.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;

#[path = "support/corpus.rs"]
mod corpus;

use corpus::corpus_dir;
use mcpgate::catalog::Catalog;
use mcpgate::config::ServerSettings;
use mcpgate::source::{self, Limits};
use mcpgate::tools::{self, Options};

/// (document, task, operationId of the operation that does it).
const TASKS: &[(&str, &str, &str)] = &[
    ("github", "list the open issues of a repository", "issues/list-for-repo"),
    ("github", "create an issue in a repository", "issues/create"),
    ("github", "add a comment to an issue", "issues/create-comment"),
    ("github", "close or edit an existing issue", "issues/update"),
    ("github", "add labels to an issue", "issues/add-labels"),
    ("github", "list pull requests of a repository", "pulls/list"),
    ("github", "open a pull request", "pulls/create"),
    ("github", "merge a pull request", "pulls/merge"),
    ("github", "request reviewers for a pull request", "pulls/request-reviewers"),
    ("github", "list the files changed in a pull request", "pulls/list-files"),
    ("github", "get a repository", "repos/get"),
    ("github", "create a repository for the authenticated user", "repos/create-for-authenticated-user"),
    ("github", "delete a repository", "repos/delete"),
    ("github", "list the branches of a repository", "repos/list-branches"),
    ("github", "get the contents of a file in a repository", "repos/get-content"),
    ("github", "create or update a file in a repository", "repos/create-or-update-file-contents"),
    ("github", "list commits of a repository", "repos/list-commits"),
    ("github", "create a release", "repos/create-release"),
    ("github", "get the latest release", "repos/get-latest-release"),
    ("github", "fork a repository", "repos/create-fork"),
    ("github", "star a repository for the authenticated user", "activity/star-repo-for-authenticated-user"),
    ("github", "list the workflow runs of a repository", "actions/list-workflow-runs-for-repo"),
    ("github", "trigger a workflow dispatch event", "actions/create-workflow-dispatch"),
    ("github", "create a gist", "gists/create"),
    ("github", "search code", "search/code"),
    ("github", "search issues and pull requests", "search/issues-and-pull-requests"),
    ("github", "get the authenticated user", "users/get-authenticated"),
    ("github", "list the members of an organization", "orgs/list-members"),
    ("github", "create a repository webhook", "repos/create-webhook"),
    ("github", "lock an issue", "issues/lock"),
    ("github", "list repositories of a user", "repos/list-for-user"),
    ("github", "add a collaborator to a repository", "repos/add-collaborator"),
    ("stripe", "create a customer", "PostCustomers"),
    ("stripe", "list customers", "GetCustomers"),
    ("stripe", "search customers by email", "GetCustomersSearch"),
    ("stripe", "delete a customer", "DeleteCustomersCustomer"),
    ("stripe", "create a payment intent", "PostPaymentIntents"),
    ("stripe", "confirm a payment intent", "PostPaymentIntentsIntentConfirm"),
    ("stripe", "capture a payment intent", "PostPaymentIntentsIntentCapture"),
    ("stripe", "cancel a payment intent", "PostPaymentIntentsIntentCancel"),
    ("stripe", "refund a charge", "PostRefunds"),
    ("stripe", "list all charges", "GetCharges"),
    ("stripe", "create a subscription", "PostSubscriptions"),
    ("stripe", "cancel a subscription", "DeleteSubscriptionsSubscriptionExposedId"),
    ("stripe", "create a product", "PostProducts"),
    ("stripe", "create a price for a product", "PostPrices"),
    ("stripe", "create an invoice", "PostInvoices"),
    ("stripe", "finalize a draft invoice", "PostInvoicesInvoiceFinalize"),
    ("stripe", "pay an invoice", "PostInvoicesInvoicePay"),
    ("stripe", "void an invoice", "PostInvoicesInvoiceVoid"),
    ("stripe", "create a checkout session", "PostCheckoutSessions"),
    ("stripe", "retrieve the account balance", "GetBalance"),
    ("stripe", "create a payout", "PostPayouts"),
    ("stripe", "attach a payment method to a customer", "PostPaymentMethodsPaymentMethodAttach"),
    ("stripe", "create a coupon", "PostCoupons"),
    ("stripe", "list events", "GetEvents"),
    ("stripe", "create a webhook endpoint", "PostWebhookEndpoints"),
    ("stripe", "upload a file", "PostFiles"),
];

/// The catalog of `file` in catalog mode, every operation exposed, and its tool names by
/// operationId.
fn catalog(file: &str) -> Option<(Catalog, HashMap<String, String>)> {
    let path = corpus_dir()?.join(file);
    let load = || source::load_file(&path, &Limits::default()).expect("the document loads").spec;
    let spec = load();
    let names = tools::generate(&spec, &Options::default())
        .tools
        .into_iter()
        .filter_map(|it| Some((spec.operations[it.operation].operation_id.clone()?, it.name)))
        .collect();
    let settings: ServerSettings =
        toml::from_str("slug = 'api'\nspec = 'api.json'\ncatalog_mode = true").expect("valid settings");
    Some((Catalog::build(&settings, load()).expect("the catalog builds"), names))
}

#[test]
fn tasks_find_their_operation_in_the_first_five() {
    let Some(github) = catalog("github-api.json") else { return };
    let Some(stripe) = catalog("stripe-spec3.yaml") else { return };
    assert!(TASKS.len() >= 50);
    let mut misses = Vec::new();
    let mut first = 0;
    for (api, task, expected) in TASKS {
        let (catalog, names) = if *api == "github" { &github } else { &stripe };
        let expected = names.get(*expected).unwrap_or_else(|| panic!("no operation {expected}"));
        let index = catalog.search.as_ref().expect("catalog mode indexes the tools");
        let found: Vec<&str> = index
            .search(task, 5, |_| true)
            .into_iter()
            .map(|idx| catalog.tools[idx].spec.name.as_str())
            .collect();
        match found.iter().position(|it| it == expected) {
            Some(0) => first += 1,
            Some(_) => {}
            None => misses.push(format!("{api}: \"{task}\" wants {expected}, found {found:?}")),
        }
    }
    let hits = TASKS.len() - misses.len();
    let share = hits as f64 / TASKS.len() as f64;
    eprintln!(
        "catalog search: {hits} of {} tasks ({:.1}%) find their operation in the first five, {first} first\n{}",
        TASKS.len(),
        share * 100.0,
        misses.join("\n")
    );
    assert!(
        share >= 0.9,
        "only {hits} of {} tasks found their operation:\n{}",
        TASKS.len(),
        misses.join("\n")
    );
}

//! Who may list and call which tool with which arguments, in Cedar.
//!
//! Policies come from the configuration file (`[policy]`, for every hosted server) and from each
//! server's settings (`policies`). When a server is published they are validated against a schema
//! generated from its tools (`schema.rs`): a policy naming an unknown attribute, or comparing an
//! argument with a value of another type, stops the publication. With no policy at all, nothing
//! changes: what the scopes allow is allowed. With policies, Cedar decides: a call is allowed
//! when some `permit` matches and no `forbid` does.
//!
//! A call is decided with its arguments, after they are validated and before the backend's
//! credentials are fetched. A tool is listed unless its call is denied whatever the arguments
//! (Cedar's partial evaluation, the arguments unknown) or a `forbid` on action `list` matches.
//!
//! A `permit` annotated `@confirm` asks for the user's confirmation of the calls it allows (see
//! `mcp::confirm`), as DELETE operations do by default.
//!
//! Invariant: a refusal names the one policy that refused (or says that none permits), never the
//! others.

mod principals;
mod request;
mod schema;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    ActionConstraint, Authorizer, Decision, Effect, Entities, Entity, EntityUid, PolicyId, PolicySet,
    Request, RequestBuilder, ResourceConstraint, Schema, ValidationMode, Validator,
};
use serde::Deserialize;
use serde_json::{Map, Value};

pub use schema::Kind;

use crate::auth::Claims;
use crate::catalog::Tool;
use principals::{Principal, Principals};

/// The longest policy text of one origin (the configuration file, or one server's settings).
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
/// How many validation errors a refused publication reports.
const MAX_REPORTED: usize = 10;

/// The configuration file's `[policy]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Cedar policies for every hosted server.
    #[serde(default)]
    pub policies: Option<String>,
    /// Token claims besides the standard ones, which policies read as `principal.claims.NAME`,
    /// with their type (`string`, `strings`, `long`, `longs`, `bool`).
    #[serde(default)]
    pub claims: BTreeMap<String, Kind>,
}

/// The policies of one publication of a server, ready to evaluate. Without any, every check
/// passes at the cost of one branch.
#[derive(Default)]
pub struct Policies {
    compiled: Option<Box<Compiled>>,
}

struct Compiled {
    authorizer: Authorizer,
    /// Each tool's place, resource entity, made once, and the policies that may apply to it:
    /// Cedar evaluates every policy of the set it is given, so a policy naming another tool is
    /// left out of this one's (the cost of a call grows with the policies of its tool, not of all).
    tools: HashMap<String, Guarded>,
    arguments: BTreeMap<String, Kind>,
    claims: BTreeMap<String, Kind>,
    call: EntityUid,
    list: EntityUid,
    /// Whether some policy may apply to action `list` (else listing asks one question, not two).
    lists: bool,
    /// Whether some policy may read the time, so that whether a tool is listed may change from
    /// one second to the next.
    reads_time: bool,
    /// The ids of the `permit`s annotated `@confirm`.
    confirming: HashSet<String>,
    schema: String,
    /// Each recent caller's principal, made once per token's claims.
    principals: Principals,
    /// The principal of a caller without claims (auth mode `none`).
    anonymous: Option<Arc<Principal>>,
}

/// A tool as its policies see it.
struct Guarded {
    /// Its place among the publication's tools.
    place: usize,
    resource: Entity,
    set: PolicySet,
}

/// Why a call was refused; the text the caller reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("Refused by policy `{0}`.")]
    Policy(String),
    #[error("Refused: no policy permits this call.")]
    NotPermitted,
    #[error("Refused: the argument `{0}` does not have the type this server's policies read it as.")]
    Argument(String),
}

/// The decision on one request, with the policies that made it, for the admin console.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Explanation {
    pub allowed: bool,
    /// The policies that decided: the matching `forbid`s of a denial, the matching `permit`s of
    /// an allowance (none for a denial no policy permits).
    pub policies: Vec<String>,
    /// Policies whose evaluation failed (they were skipped, as Cedar does).
    pub errors: Vec<String>,
    /// What the caller is told, for a denial.
    pub message: Option<String>,
    /// Whether an allowing policy asks for the user's confirmation (`@confirm`).
    pub confirm: bool,
}

/// A call the policies allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    /// Whether the user must confirm it first (a `permit` annotated `@confirm` allowed it).
    pub confirm: bool,
}

/// Checks the syntax of `text` and the uniqueness of its policy ids: what settings can be checked
/// for without the tools.
pub fn check(text: &str) -> Result<(), String> {
    parse(text, "policy").map(|_| ())
}

impl Policies {
    /// The policies of `config` and `own` (a server's), validated against the schema of `tools`.
    /// Nothing to evaluate when both are empty.
    pub fn build(config: &PolicyConfig, own: Option<&str>, tools: &[Tool]) -> Result<Policies, String> {
        let global = config.policies.as_deref().filter(|it| !it.trim().is_empty());
        let own = own.filter(|it| !it.trim().is_empty());
        if global.is_none() && own.is_none() {
            return Ok(Policies::default());
        }
        let mut set = PolicySet::new();
        for (origin, text) in [("global", global), ("server", own)] {
            let Some(text) = text else { continue };
            for policy in parse(text, origin)?.policies() {
                set.add(policy.clone())
                    .map_err(|_| format!("policies: the id `{}` is used twice", policy.id()))?;
            }
        }
        let arguments = schema::argument_kinds(tools);
        let schema_json = schema::generate(&arguments, &config.claims);
        let schema = Schema::from_json_value(schema_json.clone())
            .map_err(|err| format!("policies: the generated schema is invalid: {err}"))?;
        let validation = Validator::new(schema).validate(&set, ValidationMode::Strict);
        if !validation.validation_passed() {
            let errors: Vec<String> =
                validation.validation_errors().take(MAX_REPORTED).map(|it| format!("- {it}")).collect();
            return Err(format!("policies do not fit this server's tools:\n{}", errors.join("\n")));
        }
        let action = |name| request::uid("Action", name).ok_or("policies: bad action name".to_owned());
        let (call, list) = (action("call")?, action("list")?);
        let tools = tools
            .iter()
            .enumerate()
            .map(|(place, tool)| {
                let entity = request::resource(tool).ok_or_else(|| {
                    format!("policies: tool `{}` cannot be described to Cedar", tool.spec.name)
                })?;
                let uid = entity.uid();
                // Tools have no parents: `resource in X` holds only for X itself.
                let applies = |policy: &&cedar_policy::Policy| match policy.resource_constraint() {
                    ResourceConstraint::Eq(it)
                    | ResourceConstraint::In(it)
                    | ResourceConstraint::IsIn(_, it) => it == uid,
                    ResourceConstraint::Any | ResourceConstraint::Is(_) => true,
                };
                let own = PolicySet::from_policies(set.policies().filter(applies).cloned())
                    .map_err(|err| format!("policies: {err}"))?;
                let own = may_decide(&own, &entity, [&call, &list])?;
                Ok((tool.spec.name.clone(), Guarded { place, resource: entity, set: own }))
            })
            .collect::<Result<_, String>>()?;
        let lists = set.policies().any(|it| match it.action_constraint() {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(action) => action == list,
            ActionConstraint::In(actions) => actions.contains(&list),
        });
        // Reading `context.time` names the attribute `time` in the policy's JSON form, whatever
        // escapes its text used: a conservative test (a string "time" anywhere counts too).
        let reads_time =
            set.policies().any(|it| it.to_json().map_or(true, |json| json.to_string().contains("\"time\"")));
        let confirming = set
            .policies()
            .filter(|it| it.effect() == Effect::Permit && it.annotation("confirm").is_some())
            .map(|it| it.id().to_string())
            .collect();
        let schema = serde_json::to_string_pretty(&schema_json).unwrap_or_default();
        let compiled = Compiled {
            authorizer: Authorizer::new(),
            tools,
            arguments,
            claims: config.claims.clone(),
            call,
            list,
            lists,
            reads_time,
            confirming,
            schema,
            principals: Principals::new(),
            anonymous: request::principal(None, &config.claims)
                .map(|entity| Arc::new(Principal::new(entity))),
        };
        Ok(Policies { compiled: Some(Box::new(compiled)) })
    }

    /// Whether this publication has policies.
    pub fn any(&self) -> bool {
        self.compiled.is_some()
    }

    /// The generated Cedar schema (JSON), when there are policies.
    pub fn schema(&self) -> Option<&str> {
        self.compiled.as_ref().map(|it| it.schema.as_str())
    }

    /// Whether the caller with `claims` may call `tool` with `arguments` (already valid for its
    /// input schema). A refusal is counted in the tool's metrics.
    pub fn check_call(
        &self,
        claims: Option<&Arc<Claims>>,
        tool: &Tool,
        arguments: &Map<String, Value>,
    ) -> Result<Allowed, Refused> {
        let Some(compiled) = &self.compiled else { return Ok(Allowed { confirm: false }) };
        let result = compiled.decide_call(claims, tool, arguments).and_then(|it| match it.message {
            None => Ok(Allowed { confirm: it.confirm }),
            Some(_) => Err(it.refused()),
        });
        if result.is_err() {
            tool.metrics.policy_denied();
        }
        result
    }

    /// Whether some call may need the user's confirmation because a policy says so.
    pub fn may_confirm(&self) -> bool {
        self.compiled.as_ref().is_some_and(|it| !it.confirming.is_empty())
    }

    /// Whether `tools/list` shows `tool` to the caller with `claims`.
    pub fn may_list(&self, claims: Option<&Arc<Claims>>, tool: &Tool) -> bool {
        let Some(compiled) = &self.compiled else { return true };
        compiled.may_list(claims, tool)
    }

    /// The decision on a call and the policies that made it (the admin console's "try it").
    pub fn explain(
        &self,
        claims: Option<&Arc<Claims>>,
        tool: &Tool,
        arguments: &Map<String, Value>,
    ) -> Explanation {
        match &self.compiled {
            None => Explanation {
                allowed: true,
                policies: Vec::new(),
                errors: Vec::new(),
                message: None,
                confirm: false,
            },
            Some(compiled) => match compiled.decide_call(claims, tool, arguments) {
                Ok(it) => it,
                Err(refused) => Explanation {
                    allowed: false,
                    policies: Vec::new(),
                    errors: Vec::new(),
                    message: Some(refused.to_string()),
                    confirm: false,
                },
            },
        }
    }
}

impl Explanation {
    fn refused(&self) -> Refused {
        match self.policies.first() {
            Some(id) => Refused::Policy(id.clone()),
            None => Refused::NotPermitted,
        }
    }
}

impl Compiled {
    /// The principal of `claims`, made once per token's claims (`None`: an anonymous caller).
    fn principal(&self, claims: Option<&Arc<Claims>>) -> Option<Arc<Principal>> {
        match claims {
            None => self.anonymous.clone(),
            Some(claims) => {
                self.principals.get(claims, |claims| request::principal(Some(claims), &self.claims))
            }
        }
    }

    fn decide_call(
        &self,
        claims: Option<&Arc<Claims>>,
        tool: &Tool,
        arguments: &Map<String, Value>,
    ) -> Result<Explanation, Refused> {
        let context = request::call_context(arguments, &self.arguments).map_err(Refused::Argument)?;
        let (Some(principal), Some(Guarded { resource, set, .. })) =
            (self.principal(claims), self.tools.get(&tool.spec.name))
        else {
            return Err(Refused::NotPermitted);
        };
        let request = Request::new(principal.uid.clone(), self.call.clone(), resource.uid(), context, None)
            .map_err(|_| Refused::NotPermitted)?;
        let entities = Entities::from_entities([principal.entity.clone(), resource.clone()], None)
            .map_err(|_| Refused::NotPermitted)?;
        let response = self.authorizer.is_authorized(&request, set, &entities);
        let mut policies: Vec<String> = response.diagnostics().reason().map(ToString::to_string).collect();
        policies.sort();
        let errors = response.diagnostics().errors().map(ToString::to_string).collect();
        let allowed = response.decision() == Decision::Allow;
        let confirm = allowed && policies.iter().any(|it| self.confirming.contains(it));
        let mut explanation = Explanation { allowed, policies, errors, message: None, confirm };
        if !allowed {
            // The caller hears of one refusing policy, not of the others.
            explanation.policies.truncate(1);
            explanation.message = Some(explanation.refused().to_string());
        }
        Ok(explanation)
    }

    /// Whether `tool` is listed for the caller with `claims`, decided once per caller and tool
    /// (and second, when a policy reads the time).
    fn may_list(&self, claims: Option<&Arc<Claims>>, tool: &Tool) -> bool {
        let (Some(principal), Some(guarded)) = (self.principal(claims), self.tools.get(&tool.spec.name))
        else {
            return false;
        };
        let second = if self.reads_time { request::now() } else { 0 };
        principal.may_list(guarded.place, self.tools.len(), second, || {
            self.decide_list(&principal, guarded, second)
        })
    }

    fn decide_list(
        &self,
        principal: &Principal,
        Guarded { resource, set, .. }: &Guarded,
        second: u64,
    ) -> bool {
        let Some(context) = request::list_context(second) else { return false };
        let Ok(entities) = Entities::from_entities([principal.entity.clone(), resource.clone()], None) else {
            return false;
        };
        let ask = |action: &EntityUid| {
            let request =
                Request::new(principal.uid.clone(), action.clone(), resource.uid(), context.clone(), None)
                    .ok()?;
            Some(self.authorizer.is_authorized_partial(&request, set, &entities))
        };
        let Some(call) = ask(&self.call) else { return false };
        if call.decision() == Some(Decision::Deny) {
            return false;
        }
        if !self.lists {
            return true;
        }
        // Action `list` can only hide: a matching `forbid` does, the lack of a `permit` does not.
        let Some(list) = ask(&self.list) else { return false };
        !(list.decision() == Some(Decision::Deny)
            && list.must_be_determining().any(|it| it.effect() == Effect::Forbid))
    }
}

/// The policies of `set` that may decide a request on `resource`: all but those false whatever the
/// caller, the action and the context (Cedar's partial evaluation with only the tool known). A
/// policy `when { resource.tags.contains("billing") && … }` cannot apply to a tool without that
/// tag, and leaving it out of the tool's set spares its evaluation at every call and listing;
/// the decisions, and the policies that make them, are the same.
fn may_decide(set: &PolicySet, resource: &Entity, actions: [&EntityUid; 2]) -> Result<PolicySet, String> {
    let entities =
        Entities::from_entities([resource.clone()], None).map_err(|err| format!("policies: {err}"))?;
    let mut kept = HashSet::new();
    // One action at a time: with the action unknown, Cedar keeps `action == … && false` whole.
    for action in actions {
        let request = RequestBuilder::default().action(action.clone()).resource(resource.uid()).build();
        let response = Authorizer::new().is_authorized_partial(&request, set, &entities);
        kept.extend(response.may_be_determining().map(|it| it.id().clone()));
        kept.extend(response.definitely_errored().cloned());
    }
    PolicySet::from_policies(set.policies().filter(|it| kept.contains(it.id())).cloned())
        .map_err(|err| format!("policies: {err}"))
}

/// The policies of `text`, each named by its `@id("…")` annotation, else `{origin}#{n}` (its
/// place in the text, from 1).
fn parse(text: &str, origin: &str) -> Result<PolicySet, String> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(format!("{origin} policies: longer than {MAX_POLICY_BYTES} bytes"));
    }
    let parsed = PolicySet::from_str(text).map_err(|err| format!("{origin} policies: {err}"))?;
    if parsed.templates().next().is_some() {
        return Err(format!("{origin} policies: templates are not supported"));
    }
    let mut set = PolicySet::new();
    // `from_str` numbers policies in the order of the text (`policy0`, `policy1`, …).
    let mut ordered: Vec<_> = parsed.policies().collect();
    ordered.sort_by_key(|it| it.id().to_string().trim_start_matches("policy").parse::<usize>().unwrap_or(0));
    for (idx, policy) in ordered.into_iter().enumerate() {
        let id = match policy.annotation("id") {
            Some(id) if !id.trim().is_empty() => id.trim().to_owned(),
            _ => format!("{origin}#{}", idx + 1),
        };
        set.add(policy.new_id(PolicyId::new(&id)))
            .map_err(|_| format!("{origin} policies: the id `{id}` is used twice"))?;
    }
    Ok(set)
}

#[cfg(test)]
mod tests;

//! The policy console: how the published policies of a server decide a call, given the claims
//! of a token (written by the administrator, not verified), a tool and its arguments.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::workspace::{Error, Workspace};
use crate::auth::Claims;

/// A question to the console.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trial {
    /// A token's claims, as an issuer would write them (`sub`, `iss`, `scope`, `groups`, …).
    #[serde(default)]
    pub claims: Map<String, Value>,
    pub tool: String,
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

impl Workspace {
    /// The decision of `slug`'s published policies on `trial`, with the policies that made it,
    /// and whether the tool would be listed to that caller.
    pub fn try_policies(&self, slug: &str, trial: Trial) -> Result<Value, Error> {
        let hosted = self.hosting().get(slug).ok_or_else(|| Error::NotFound(slug.to_owned()))?;
        let snapshot = hosted.host.current();
        let tool = snapshot
            .catalog
            .tool(&trial.tool)
            .ok_or_else(|| Error::Invalid(format!("no tool `{}` is published", trial.tool)))?;
        let instance = Value::Object(trial.arguments);
        if let Some(err) = tool.validator.iter_errors(&instance).next() {
            return Err(Error::Invalid(format!("invalid arguments: {}", err.masked())));
        }
        let Value::Object(arguments) = instance else {
            return Err(Error::Invalid("the arguments must be an object".to_owned()));
        };
        let claims = std::sync::Arc::new(claims(trial.claims));
        let explanation = snapshot.policies.explain(Some(&claims), tool, &arguments);
        Ok(json!({
            "policies_configured": snapshot.policies.any(),
            "allowed": explanation.allowed,
            "decided_by": explanation.policies,
            "errors": explanation.errors,
            "message": explanation.message,
            "listed": snapshot.policies.may_list(Some(&claims), tool),
        }))
    }
}

/// Claims as the token verifier would read them, without the checks a real token passes.
fn claims(raw: Map<String, Value>) -> Claims {
    let text = |name: &str| raw.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut scopes = BTreeSet::new();
    for name in ["scope", "scp"] {
        match raw.get(name) {
            Some(Value::String(it)) => scopes.extend(it.split_ascii_whitespace().map(str::to_owned)),
            Some(Value::Array(items)) => {
                scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_owned))
            }
            _ => {}
        }
    }
    let client_id = ["client_id", "azp", "appid"]
        .iter()
        .find_map(|name| raw.get(*name).and_then(Value::as_str))
        .map(str::to_owned);
    Claims {
        subject: text("sub"),
        issuer: text("iss"),
        audience: Vec::new(),
        scopes,
        expires_at: SystemTime::now() + Duration::from_secs(60),
        client_id,
        raw,
    }
}

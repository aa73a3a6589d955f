//! The parts of a Cedar request: the caller's claims as the principal, a tool as the resource,
//! the time and the arguments as the context. Values follow the types of `schema.rs`; a value
//! that does not fit its type is left out (a claim) or refuses the call (an argument), so that a
//! `forbid` reading it cannot be passed by sending what it cannot read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use cedar_policy::{Context, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};
use serde_json::{Map, Value};

use super::schema::Kind;
use crate::auth::Claims;
use crate::catalog::Tool;

pub(super) fn uid(kind: &str, id: &str) -> Option<EntityUid> {
    Some(EntityUid::from_type_name_and_id(EntityTypeName::from_str(kind).ok()?, EntityId::new(id)))
}

/// The principal for `claims` (`None`: auth mode `none`, an anonymous caller with no claim).
pub(super) fn principal(claims: Option<&Claims>, extras: &BTreeMap<String, Kind>) -> Option<Entity> {
    let strings = |items: &mut dyn Iterator<Item = &str>| {
        RestrictedExpression::new_set(items.map(|it| RestrictedExpression::new_string(it.to_owned())))
    };
    let text = |it: &str| RestrictedExpression::new_string(it.to_owned());
    let mut attributes = HashMap::new();
    let subject = claims.map_or("", |it| it.subject.as_str());
    attributes.insert("subject".to_owned(), text(subject));
    attributes.insert("issuer".to_owned(), text(claims.map_or("", |it| it.issuer.as_str())));
    let empty: [&str; 0] = [];
    match claims {
        Some(claims) => {
            if let Some(client_id) = &claims.client_id {
                attributes.insert("client_id".to_owned(), text(client_id));
            }
            attributes.insert("scopes".to_owned(), strings(&mut claims.scopes.iter().map(String::as_str)));
            attributes.insert("groups".to_owned(), strings(&mut claims.groups()));
            attributes.insert("roles".to_owned(), strings(&mut claims.roles()));
            if let Some(tenant) = claims.tenant() {
                attributes.insert("tenant".to_owned(), text(tenant));
            }
            let configured = extras
                .iter()
                .filter_map(|(name, kind)| Some((name.clone(), value(claims.raw.get(name)?, *kind)?)));
            attributes.insert("claims".to_owned(), RestrictedExpression::new_record(configured).ok()?);
        }
        None => {
            for name in ["scopes", "groups", "roles"] {
                attributes.insert(name.to_owned(), strings(&mut empty.into_iter()));
            }
            attributes.insert("claims".to_owned(), RestrictedExpression::new_record([]).ok()?);
        }
    }
    Entity::new(uid("Caller", subject)?, attributes, HashSet::new()).ok()
}

/// The resource for `tool`, made once per publication.
pub(super) fn resource(tool: &Tool) -> Option<Entity> {
    let spec = &tool.spec;
    let text = |it: &str| RestrictedExpression::new_string(it.to_owned());
    let flag = RestrictedExpression::new_bool;
    let tags = RestrictedExpression::new_set(tool.tags.iter().map(|it| text(it)));
    let attributes = HashMap::from([
        ("name".to_owned(), text(&spec.name)),
        ("method".to_owned(), text(spec.plan.method.as_str())),
        ("path".to_owned(), text(&spec.plan.path)),
        ("tags".to_owned(), tags),
        ("read_only".to_owned(), flag(spec.annotations.read_only)),
        ("destructive".to_owned(), flag(spec.annotations.destructive)),
        ("idempotent".to_owned(), flag(spec.annotations.idempotent)),
        ("open_world".to_owned(), flag(spec.annotations.open_world)),
    ]);
    Entity::new(uid("Tool", &spec.name)?, attributes, HashSet::new()).ok()
}

/// The context of a call with `arguments`, or the name of an argument that does not fit the type
/// policies read it as.
pub(super) fn call_context(
    arguments: &Map<String, Value>,
    kinds: &BTreeMap<String, Kind>,
) -> Result<Context, String> {
    let mut fields = Vec::new();
    for (name, it) in arguments {
        let Some(kind) = kinds.get(name) else { continue };
        if it.is_null() {
            continue;
        }
        let converted = value(it, *kind).ok_or_else(|| name.clone())?;
        fields.push((name.clone(), converted));
    }
    let record = RestrictedExpression::new_record(fields).map_err(|_| "arguments".to_owned())?;
    Context::from_pairs([("time".to_owned(), seconds(now())), ("arguments".to_owned(), record)])
        .map_err(|_| "arguments".to_owned())
}

/// The context of a listing at `second`: the time, and arguments not known yet.
pub(super) fn list_context(second: u64) -> Option<Context> {
    Context::from_pairs([
        ("time".to_owned(), seconds(second)),
        ("arguments".to_owned(), RestrictedExpression::new_unknown("arguments")),
    ])
    .ok()
}

/// The time policies read: seconds since the Unix epoch.
pub(super) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |it| it.as_secs())
}

fn seconds(it: u64) -> RestrictedExpression {
    RestrictedExpression::new_long(i64::try_from(it).unwrap_or(i64::MAX))
}

/// `it` as a Cedar value of `kind`, if it is one.
fn value(it: &Value, kind: Kind) -> Option<RestrictedExpression> {
    let string = |it: &Value| it.as_str().map(|it| RestrictedExpression::new_string(it.to_owned()));
    let long = |it: &Value| it.as_i64().map(RestrictedExpression::new_long);
    match kind {
        Kind::String => string(it),
        Kind::Long => long(it),
        Kind::Bool => it.as_bool().map(RestrictedExpression::new_bool),
        Kind::Strings => match it {
            Value::Array(items) => {
                items.iter().map(string).collect::<Option<Vec<_>>>().map(RestrictedExpression::new_set)
            }
            Value::String(_) => Some(RestrictedExpression::new_set(string(it))),
            _ => None,
        },
        Kind::Longs => match it {
            Value::Array(items) => {
                items.iter().map(long).collect::<Option<Vec<_>>>().map(RestrictedExpression::new_set)
            }
            _ => None,
        },
    }
}

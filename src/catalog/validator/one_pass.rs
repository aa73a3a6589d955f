//! Checks JSON text against a schema while it is parsed, building no value. A backend's answer
//! parsed into a `serde_json::Value` for `jsonschema` cost an allocation per string and a hash per
//! key: for a 2 KB GitHub answer, a fifth of the whole call.
//!
//! The walk reads the keywords that shape a document (`type`, `properties`, `required`,
//! `additionalProperties`, `items`, `prefixItems`, counts, `enum` and lengths of strings, `allOf`,
//! `anyOf`, `oneOf`, `$ref` to `#/$defs/...`). A subschema with any other assertion (`pattern`,
//! `minimum`, `not`, ...) is checked by `jsonschema` on a value built for that part alone.
//! Keywords that change how references resolve (`$id`, `$dynamicRef`, `unevaluated*`, ...), and
//! references other than a definition's plain name, make the whole schema fall back to
//! `jsonschema`. Unknown keywords are annotations, as in 2020-12. The converter's output schemas
//! are almost all walked whole (`tests/output_check.rs` counts them and compares every verdict).
//!
//! One difference from a parsed value: a key that appears twice must match both times, where a
//! parsed value keeps the last. Such an answer is refused, never wrongly accepted.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A schema ready for [`Schema::check`].
pub struct Schema {
    root: Check,
    defs: Vec<Check>,
}

/// What [`Schema::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Matches,
    Strays,
    /// The text is not JSON.
    NotJson,
    /// References nest deeper than the walk follows: ask `jsonschema`.
    Undecided,
}

enum Check {
    Any,
    Never,
    Ref(usize),
    Rules(Box<Rules>),
    /// Keywords the walk does not read: the part is built as a value for `jsonschema`.
    Value(Box<jsonschema::Validator>),
    AllOf(Vec<Check>),
    AnyOf(Vec<Check>),
    OneOf(Vec<Check>),
}

struct Rules {
    types: Kinds,
    /// Sorted by name, for a binary search per key.
    fields: Vec<Field>,
    /// One bit per required field.
    required: Bits,
    additional: Check,
    prefix_items: Vec<Check>,
    items: Check,
    n_items: Bounds,
    n_properties: Bounds,
    n_chars: Bounds,
    /// `enum` when all its members are strings, booleans or null.
    one_of_literals: Option<Vec<Literal>>,
}

/// A name that `properties` or `required` mentions.
struct Field {
    name: Box<str>,
    /// `None`: required but not in `properties`, so `additionalProperties` applies.
    check: Option<Check>,
    required_bit: Option<u8>,
}

#[derive(Default, Clone, Copy)]
struct Bounds {
    min: usize,
    max: Option<usize>,
}

impl Bounds {
    fn admit(self, n: usize) -> bool {
        n >= self.min && self.max.is_none_or(|max| n <= max)
    }

    /// Whether the count of `count` is admitted, counted only when it matters.
    fn admit_count(self, count: impl FnOnce() -> usize) -> bool {
        (self.min == 0 && self.max.is_none()) || self.admit(count())
    }
}

#[derive(PartialEq)]
enum Literal {
    Null,
    Bool(bool),
    Str(Box<str>),
}

/// A set of JSON types, as `type` names them.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Kinds(u8);

impl Kinds {
    const NULL: Kinds = Kinds(1);
    const BOOLEAN: Kinds = Kinds(2);
    const INTEGER: Kinds = Kinds(4);
    const NUMBER: Kinds = Kinds(8);
    const STRING: Kinds = Kinds(16);
    const ARRAY: Kinds = Kinds(32);
    const OBJECT: Kinds = Kinds(64);
    const ALL: Kinds = Kinds(127);

    fn named(name: &str) -> Option<Kinds> {
        Some(match name {
            "null" => Kinds::NULL,
            "boolean" => Kinds::BOOLEAN,
            "integer" => Kinds::INTEGER,
            "number" => Kinds::NUMBER,
            "string" => Kinds::STRING,
            "array" => Kinds::ARRAY,
            "object" => Kinds::OBJECT,
            _ => return None,
        })
    }

    fn has(self, kind: Kinds) -> bool {
        self.0 & kind.0 != 0
    }

    /// Whether a number is of these types: an integer is a number, and so is a float without a
    /// fraction, as `jsonschema` counts it.
    fn has_number(self, is_integer: bool) -> bool {
        self.has(Kinds::NUMBER) || (is_integer && self.has(Kinds::INTEGER))
    }
}

/// The keywords of [`Rules`]. The walk also reads `allOf`, `anyOf`, `oneOf` and `$ref`.
const RULED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "enum",
];

/// Assertions left to `jsonschema`, on a value built for the part that has them.
const DELEGATED: &[&str] = &[
    "const",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "pattern",
    "uniqueItems",
    "contains",
    "maxContains",
    "minContains",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "not",
    "if",
    "then",
    "else",
    "patternProperties",
    "propertyNames",
];

/// Keywords that change what a reference or an applicator means beyond its own part.
const WHOLE: &[&str] = &[
    "$id",
    "$schema",
    "$anchor",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "$recursiveAnchor",
    "$vocabulary",
    "unevaluatedProperties",
    "unevaluatedItems",
];

/// Nesting plus reference hops the walk follows before it leaves the answer to `jsonschema`.
const MAX_STEPS: u32 = 256;

/// How many required fields a part may have and still be walked (GitHub's repository has 74).
const MAX_REQUIRED: usize = 256;

/// The required fields an object has, one bit each.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
struct Bits([u64; MAX_REQUIRED / 64]);

impl Bits {
    fn set(&mut self, bit: u8) {
        self.0[usize::from(bit / 64)] |= 1 << (bit % 64);
    }
}

/// The check of values the schema says nothing about: read in full all the same, so that what
/// the parser refuses in them (a lone surrogate, a number past `f64`, nesting past its limit)
/// makes the text not JSON, as it does for a parsed value.
static ANY: Check = Check::Any;

impl Schema {
    /// The schema, or `None` when it has keywords that need `jsonschema` as a whole, is malformed,
    /// or has a part that `jsonschema` does not compile.
    pub fn compile(schema: &Map<String, Value>) -> Option<Schema> {
        let no_defs = Map::new();
        let defs = match schema.get("$defs") {
            Some(Value::Object(defs)) => defs,
            Some(_) => return None,
            None => &no_defs,
        };
        let compiler = Compiler {
            defs,
            by_name: defs.keys().enumerate().map(|(idx, name)| (name.as_str(), idx)).collect(),
        };
        if !refs_named(schema, &compiler.by_name) {
            return None;
        }
        let compiled_defs = defs.values().map(|it| compiler.check(it)).collect::<Option<Vec<_>>>()?;
        Some(Schema { root: compiler.object(schema)?, defs: compiled_defs })
    }

    pub fn check(&self, json: &str) -> Verdict {
        let walker = Walker { schema: self, gave_up: Cell::new(false) };
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let matches = Walk { walker: &walker, check: &self.root, steps: 0 }.deserialize(&mut deserializer);
        if walker.gave_up.get() {
            return Verdict::Undecided;
        }
        match matches.and_then(|it| deserializer.end().map(|()| it)) {
            Ok(true) => Verdict::Matches,
            Ok(false) => Verdict::Strays,
            Err(_) => Verdict::NotJson,
        }
    }
}

struct Compiler<'s> {
    defs: &'s Map<String, Value>,
    by_name: HashMap<&'s str, usize>,
}

impl Compiler<'_> {
    fn check(&self, schema: &Value) -> Option<Check> {
        match schema {
            Value::Bool(true) => Some(Check::Any),
            Value::Bool(false) => Some(Check::Never),
            Value::Object(schema) => self.object(schema),
            _ => None,
        }
    }

    fn checks(&self, schemas: &Value) -> Option<Vec<Check>> {
        match schemas {
            Value::Array(schemas) if !schemas.is_empty() => schemas.iter().map(|it| self.check(it)).collect(),
            _ => None,
        }
    }

    fn object(&self, schema: &Map<String, Value>) -> Option<Check> {
        if schema.keys().any(|it| WHOLE.contains(&it.as_str())) {
            return None;
        }
        let n_required = schema.get("required").and_then(Value::as_array).map_or(0, Vec::len);
        if schema.keys().any(|it| DELEGATED.contains(&it.as_str()))
            || !self.literals_walkable(schema)
            || n_required > MAX_REQUIRED
        {
            return self.delegated(schema);
        }
        let mut parts = Vec::new();
        if let Some(rules) = self.rules(schema)? {
            parts.push(Check::Rules(Box::new(rules)));
        }
        if let Some(reference) = schema.get("$ref") {
            let name = reference.as_str()?.strip_prefix("#/$defs/")?;
            parts.push(Check::Ref(*self.by_name.get(name)?));
        }
        if let Some(all) = schema.get("allOf") {
            parts.extend(self.checks(all)?);
        }
        if let Some(any) = schema.get("anyOf") {
            parts.push(Check::AnyOf(self.checks(any)?));
        }
        if let Some(one) = schema.get("oneOf") {
            parts.push(Check::OneOf(self.checks(one)?));
        }
        Some(match parts.len() {
            0 => Check::Any,
            1 => parts.pop()?,
            _ => Check::AllOf(parts),
        })
    }

    /// Whether `enum` has only members the walk compares itself.
    fn literals_walkable(&self, schema: &Map<String, Value>) -> bool {
        match schema.get("enum") {
            Some(Value::Array(members)) => {
                members.iter().all(|it| matches!(it, Value::Null | Value::Bool(_) | Value::String(_)))
            }
            Some(_) => false,
            None => true,
        }
    }

    /// The part for `jsonschema`, with the definitions it refers to.
    fn delegated(&self, schema: &Map<String, Value>) -> Option<Check> {
        let mut part = schema.clone();
        if refers(&part) && !self.defs.is_empty() {
            part.insert("$defs".to_owned(), Value::Object(self.defs.clone()));
        }
        let validator = jsonschema::draft202012::new(&Value::Object(part)).ok()?;
        Some(Check::Value(Box::new(validator)))
    }

    /// The rules of `schema`'s walked keywords, `None` inside when it has none, `None` outside
    /// when one is malformed.
    fn rules(&self, schema: &Map<String, Value>) -> Option<Option<Rules>> {
        if !RULED.iter().any(|it| schema.contains_key(*it)) {
            return Some(None);
        }
        let types = match schema.get("type") {
            None => Kinds::ALL,
            Some(Value::String(name)) => Kinds::named(name)?,
            Some(Value::Array(names)) => names
                .iter()
                .try_fold(Kinds(0), |all, it| Some(Kinds(all.0 | Kinds::named(it.as_str()?)?.0)))?,
            Some(_) => return None,
        };
        let mut fields: Vec<Field> = match schema.get("properties") {
            None => Vec::new(),
            Some(Value::Object(properties)) => properties
                .iter()
                .map(|(name, it)| {
                    Some(Field {
                        name: name.as_str().into(),
                        check: Some(self.check(it)?),
                        required_bit: None,
                    })
                })
                .collect::<Option<_>>()?,
            Some(_) => return None,
        };
        fields.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let mut required = Bits::default();
        let mut n_required = 0;
        if let Some(names) = schema.get("required") {
            let Value::Array(names) = names else { return None };
            for name in names {
                let name = name.as_str()?;
                let at = match fields.binary_search_by(|it| (*it.name).cmp(name)) {
                    Ok(at) => at,
                    Err(at) => {
                        fields.insert(at, Field { name: name.into(), check: None, required_bit: None });
                        at
                    }
                };
                if fields[at].required_bit.is_none() {
                    // Parts with more are left to `jsonschema` (`Compiler::object`).
                    let bit = u8::try_from(n_required).ok()?;
                    fields[at].required_bit = Some(bit);
                    required.set(bit);
                    n_required += 1;
                }
            }
        }
        let optional = |keyword: &str| match schema.get(keyword) {
            None => Some(Check::Any),
            Some(it) => self.check(it),
        };
        let prefix_items = match schema.get("prefixItems") {
            None => Vec::new(),
            Some(it) => self.checks(it)?,
        };
        let literals = match schema.get("enum") {
            Some(Value::Array(members)) => Some(
                members
                    .iter()
                    .map(|it| match it {
                        Value::Null => Some(Literal::Null),
                        Value::Bool(it) => Some(Literal::Bool(*it)),
                        Value::String(it) => Some(Literal::Str(it.as_str().into())),
                        _ => None,
                    })
                    .collect::<Option<_>>()?,
            ),
            Some(_) => return None,
            None => None,
        };
        Some(Some(Rules {
            types,
            fields,
            required,
            additional: optional("additionalProperties")?,
            prefix_items,
            items: optional("items")?,
            n_items: bounds(schema, "minItems", "maxItems")?,
            n_properties: bounds(schema, "minProperties", "maxProperties")?,
            n_chars: bounds(schema, "minLength", "maxLength")?,
            one_of_literals: literals,
        }))
    }
}

fn bounds(schema: &Map<String, Value>, min: &str, max: &str) -> Option<Bounds> {
    let count = |keyword: &str| match schema.get(keyword) {
        None => Some(None),
        Some(it) => usize::try_from(it.as_u64()?).ok().map(Some),
    };
    Some(Bounds { min: count(min)?.unwrap_or(0), max: count(max)? })
}

/// Whether every `$ref` in `schema`, parts left to `jsonschema` included, names one of the
/// definitions as it is written: not `#` (the whole, which a part checked alone would take for
/// itself), nor a name with escapes, which `jsonschema` decodes.
fn refs_named(schema: &Map<String, Value>, names: &HashMap<&str, usize>) -> bool {
    fn within(value: &Value, names: &HashMap<&str, usize>) -> bool {
        match value {
            Value::Object(map) => refs_named(map, names),
            Value::Array(items) => items.iter().all(|it| within(it, names)),
            _ => true,
        }
    }
    schema.iter().all(|(key, it)| {
        let named = || {
            let name = it.as_str().and_then(|it| it.strip_prefix("#/$defs/"));
            name.is_some_and(|it| !it.contains(['%', '~', '/']) && names.contains_key(it))
        };
        (key != "$ref" || named()) && within(it, names)
    })
}

/// Whether a `$ref` appears anywhere in `schema`.
fn refers(schema: &Map<String, Value>) -> bool {
    fn within(value: &Value) -> bool {
        match value {
            Value::Object(map) => refers(map),
            Value::Array(items) => items.iter().any(within),
            _ => false,
        }
    }
    schema.iter().any(|(key, it)| key == "$ref" || within(it))
}

/// One check of one text.
struct Walker<'s> {
    schema: &'s Schema,
    /// Set when the walk stopped at [`MAX_STEPS`]: its error is not the text's.
    gave_up: Cell<bool>,
}

/// A JSON value, other than an array or an object, as the parser hands it over.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(&'a str),
}

impl Scalar<'_> {
    fn kind(self) -> Kinds {
        match self {
            Scalar::Null => Kinds::NULL,
            Scalar::Bool(_) => Kinds::BOOLEAN,
            Scalar::U64(_) | Scalar::I64(_) | Scalar::F64(_) => Kinds::NUMBER,
            Scalar::Str(_) => Kinds::STRING,
        }
    }

    fn to_value(self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(it) => Value::Bool(it),
            Scalar::U64(it) => Value::from(it),
            Scalar::I64(it) => Value::from(it),
            Scalar::F64(it) => Value::from(it),
            Scalar::Str(it) => Value::String(it.to_owned()),
        }
    }
}

/// The check of one value: a seed for the parser, and the visitor of what it finds.
#[derive(Clone, Copy)]
struct Walk<'w, 's> {
    walker: &'w Walker<'s>,
    check: &'s Check,
    steps: u32,
}

impl<'w, 's> Walk<'w, 's> {
    fn to(self, check: &'s Check) -> Result<Walk<'w, 's>, GaveUp> {
        if self.steps >= MAX_STEPS {
            self.walker.gave_up.set(true);
            return Err(GaveUp);
        }
        Ok(Walk { check, steps: self.steps + 1, ..self })
    }

    /// The check itself, references followed.
    fn resolved(mut self) -> Result<Walk<'w, 's>, GaveUp> {
        while let Check::Ref(idx) = self.check {
            // Indices come from the definitions' own names: always there.
            let Some(check) = self.walker.schema.defs.get(*idx) else {
                self.walker.gave_up.set(true);
                return Err(GaveUp);
            };
            self = self.to(check)?;
        }
        Ok(self)
    }

    /// Whether the check may accept an array or an object, as `kind` says (`false` only when it
    /// surely cannot; a walk that gives up is undecided whatever it found).
    fn admits(self, kind: Kinds) -> bool {
        let Ok(walk) = self.resolved() else { return true };
        match walk.check {
            Check::Any | Check::Value(_) | Check::Ref(_) => true,
            Check::Never => false,
            Check::Rules(rules) => rules.types.has(kind) && rules.admits_composites(),
            Check::AllOf(parts) => parts.iter().all(|it| walk.to(it).map_or(true, |it| it.admits(kind))),
            Check::AnyOf(parts) | Check::OneOf(parts) => {
                parts.iter().any(|it| walk.to(it).map_or(true, |it| it.admits(kind)))
            }
        }
    }

    fn scalar(self, value: Scalar<'_>) -> Result<bool, GaveUp> {
        let walk = self.resolved()?;
        Ok(match walk.check {
            Check::Any => true,
            Check::Never | Check::Ref(_) => false,
            Check::Rules(rules) => rules.admit(value),
            Check::Value(validator) => validator.is_valid(&value.to_value()),
            Check::AllOf(parts) | Check::AnyOf(parts) | Check::OneOf(parts) => {
                return combine(walk.check, parts.iter().map(|it| walk.to(it)?.scalar(value)));
            }
        })
    }

    /// An array or an object, read through `access` by `walk_rules` when the check has rules for
    /// it. Alternatives of which only one admits the kind are walked the same way (a nullable
    /// object is `anyOf` the object and `null`); when several do, or for `allOf`, the part is
    /// built as a value once and each walks that.
    fn composite<E: de::Error, A>(
        self,
        kind: Kinds,
        access: A,
        walk_rules: impl FnOnce(Walk<'w, 's>, &'s Rules, A) -> Result<bool, E>,
        into_value: impl FnOnce(A) -> Result<Value, E>,
        drain: impl FnOnce(A) -> Result<(), E>,
    ) -> Result<bool, E> {
        let walk = self.resolved().map_err(GaveUp::into_error)?;
        let alternatives = match walk.check {
            Check::Any => return drain(access).map(|()| true),
            Check::Never | Check::Ref(_) => return drain(access).map(|()| false),
            Check::Rules(rules) => return walk_rules(walk, rules, access),
            Check::Value(validator) => return into_value(access).map(|it| validator.is_valid(&it)),
            Check::AllOf(_) => &[][..],
            Check::AnyOf(parts) | Check::OneOf(parts) => parts,
        };
        let mut admitting = alternatives.iter().filter(|it| walk.to(it).map_or(true, |it| it.admits(kind)));
        match (walk.check, admitting.next(), admitting.next()) {
            (Check::AllOf(_), ..) | (_, Some(_), Some(_)) => {
                let value = into_value(access)?;
                walk.value(&value).map_err(GaveUp::into_error)
            }
            (_, Some(only), None) => walk
                .to(only)
                .map_err(GaveUp::into_error)?
                .composite(kind, access, walk_rules, into_value, drain),
            (_, None, _) => drain(access).map(|()| false),
        }
    }

    /// The check of a value built already, walked as the text would be.
    fn value(self, value: &Value) -> Result<bool, GaveUp> {
        let (Check::AllOf(parts) | Check::AnyOf(parts) | Check::OneOf(parts)) = self.check else {
            return self.deserialize(value).map_err(|_| GaveUp);
        };
        combine(self.check, parts.iter().map(|it| self.to(it)?.deserialize(value).map_err(|_| GaveUp)))
    }
}

/// The verdict of `allOf`, `anyOf` or `oneOf` from its parts' verdicts, read no further than
/// they decide it.
fn combine(check: &Check, verdicts: impl Iterator<Item = Result<bool, GaveUp>>) -> Result<bool, GaveUp> {
    match check {
        Check::AllOf(_) => {
            for verdict in verdicts {
                if !verdict? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Check::AnyOf(_) => {
            for verdict in verdicts {
                if verdict? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        _ => {
            let mut matched = 0;
            for verdict in verdicts {
                matched += usize::from(verdict?);
                if matched > 1 {
                    return Ok(false);
                }
            }
            Ok(matched == 1)
        }
    }
}

impl Rules {
    fn admit(&self, value: Scalar<'_>) -> bool {
        let typed = match value {
            Scalar::U64(_) | Scalar::I64(_) => self.types.has_number(true),
            Scalar::F64(it) => self.types.has_number(it.fract() == 0.0),
            _ => self.types.has(value.kind()),
        };
        let listed = self.one_of_literals.as_ref().is_none_or(|literals| {
            let literal = match value {
                Scalar::Null => Literal::Null,
                Scalar::Bool(it) => Literal::Bool(it),
                Scalar::Str(it) => {
                    return literals.iter().any(|l| matches!(l, Literal::Str(s) if **s == *it));
                }
                _ => return false,
            };
            literals.contains(&literal)
        });
        let sized = match value {
            Scalar::Str(it) => self.n_chars.admit_count(|| it.chars().count()),
            _ => true,
        };
        typed && listed && sized
    }

    /// `enum` without arrays and objects refuses them.
    fn admits_composites(&self) -> bool {
        self.one_of_literals.is_none()
    }
}

/// The walk went deeper than [`MAX_STEPS`].
struct GaveUp;

impl GaveUp {
    fn into_error<E: de::Error>(self) -> E {
        E::custom("the schema's references nest too deep to follow")
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = bool;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.scalar(Scalar::Null).map_err(GaveUp::into_error)
    }

    fn visit_bool<E: de::Error>(self, it: bool) -> Result<bool, E> {
        self.scalar(Scalar::Bool(it)).map_err(GaveUp::into_error)
    }

    fn visit_u64<E: de::Error>(self, it: u64) -> Result<bool, E> {
        self.scalar(Scalar::U64(it)).map_err(GaveUp::into_error)
    }

    fn visit_i64<E: de::Error>(self, it: i64) -> Result<bool, E> {
        self.scalar(Scalar::I64(it)).map_err(GaveUp::into_error)
    }

    fn visit_f64<E: de::Error>(self, it: f64) -> Result<bool, E> {
        self.scalar(Scalar::F64(it)).map_err(GaveUp::into_error)
    }

    fn visit_str<E: de::Error>(self, it: &str) -> Result<bool, E> {
        self.scalar(Scalar::Str(it)).map_err(GaveUp::into_error)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        self.composite(
            Kinds::ARRAY,
            seq,
            walk_array,
            |seq| Value::deserialize(SeqAccessDeserializer::new(seq)),
            |seq| drain_array(self, seq),
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        self.composite(
            Kinds::OBJECT,
            map,
            walk_object,
            |map| Value::deserialize(MapAccessDeserializer::new(map)),
            |map| drain_object(self, map),
        )
    }
}

fn walk_array<'de, 's, A: SeqAccess<'de>>(
    walk: Walk<'_, 's>,
    rules: &'s Rules,
    mut seq: A,
) -> Result<bool, A::Error> {
    let mut matches = rules.types.has(Kinds::ARRAY) && rules.admits_composites();
    let mut n_items = 0;
    loop {
        if !matches {
            drain_array(walk, seq)?;
            return Ok(false);
        }
        let check = rules.prefix_items.get(n_items).unwrap_or(&rules.items);
        match seq.next_element_seed(walk.to(check).map_err(GaveUp::into_error)?)? {
            None => break,
            Some(item) => matches = item,
        }
        n_items += 1;
    }
    Ok(rules.n_items.admit(n_items))
}

fn walk_object<'de, 's, A: MapAccess<'de>>(
    walk: Walk<'_, 's>,
    rules: &'s Rules,
    mut map: A,
) -> Result<bool, A::Error> {
    let mut matches = rules.types.has(Kinds::OBJECT) && rules.admits_composites();
    let (mut present, mut n_properties) = (Bits::default(), 0);
    while matches {
        let Some(field) = map.next_key_seed(FieldName(&rules.fields))? else {
            return Ok(present == rules.required && rules.n_properties.admit(n_properties));
        };
        n_properties += 1;
        let check = match field {
            Some(field) => {
                if let Some(bit) = field.required_bit {
                    present.set(bit);
                }
                field.check.as_ref().unwrap_or(&rules.additional)
            }
            None => &rules.additional,
        };
        matches = map.next_value_seed(walk.to(check).map_err(GaveUp::into_error)?)?;
    }
    drain_object(walk, map)?;
    Ok(false)
}

/// Reads the rest of an array whose verdict is known.
fn drain_array<'de, A: SeqAccess<'de>>(walk: Walk<'_, '_>, mut seq: A) -> Result<(), A::Error> {
    let any = Walk { check: &ANY, ..walk };
    while seq.next_element_seed(any)?.is_some() {}
    Ok(())
}

/// Reads the rest of an object whose verdict is known.
fn drain_object<'de, A: MapAccess<'de>>(walk: Walk<'_, '_>, mut map: A) -> Result<(), A::Error> {
    let any = Walk { check: &ANY, ..walk };
    while map.next_key_seed(FieldName(&[]))?.is_some() {
        map.next_value_seed(any)?;
    }
    Ok(())
}

/// A key, looked up among the fields without copying it.
struct FieldName<'s>(&'s [Field]);

impl<'de, 's> DeserializeSeed<'de> for FieldName<'s> {
    type Value = Option<&'s Field>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<&'s Field>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 's> Visitor<'de> for FieldName<'s> {
    type Value = Option<&'s Field>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<&'s Field>, E> {
        Ok(self.0.binary_search_by(|it| (*it.name).cmp(key)).ok().map(|at| &self.0[at]))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn compiled(schema: Value) -> Schema {
        let Value::Object(schema) = schema else { panic!("a schema is an object") };
        Schema::compile(&schema).expect("the schema is walked")
    }

    /// The verdict of `jsonschema` on the same text.
    fn reference(schema: &Value, json: &str) -> Verdict {
        let Ok(value) = serde_json::from_str::<Value>(json) else { return Verdict::NotJson };
        match jsonschema::draft202012::new(schema).unwrap().is_valid(&value) {
            true => Verdict::Matches,
            false => Verdict::Strays,
        }
    }

    fn assert_as_jsonschema(schema: Value, texts: &[&str]) {
        let walked = compiled(schema.clone());
        for text in texts {
            assert_eq!(walked.check(text), reference(&schema, text), "{schema} on {text}");
        }
    }

    #[test]
    fn objects_arrays_and_scalars_are_judged_as_jsonschema_judges_them() {
        let pet = json!({
            "type": "object",
            "required": ["id", "tags"],
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": ["string", "null"], "maxLength": 3, "description": "a name"},
                "status": {"enum": ["sold", "held", null]},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                "pair": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "boolean"}],
                         "items": false},
                "é\"": {"type": "boolean"}
            },
            "additionalProperties": {"type": "number"}
        });
        assert_as_jsonschema(
            pet,
            &[
                r#"{"id": 1, "tags": []}"#,
                r#"{"id": 1.0, "tags": []}"#,
                r#"{"id": 1.5, "tags": []}"#,
                r#"{"id": -3, "tags": [], "extra": 2e3}"#,
                r#"{"id": 1, "tags": [], "extra": "two"}"#,
                r#"{"id": 1}"#,
                r#"{"tags": []}"#,
                r#"{"id": 1, "tags": ["a", "b", "c"]}"#,
                r#"{"id": 1, "tags": [1]}"#,
                r#"{"id": 1, "tags": [], "name": "ééé"}"#,
                r#"{"id": 1, "tags": [], "name": "éééé"}"#,
                r#"{"id": 1, "tags": [], "name": null, "status": null}"#,
                r#"{"id": 1, "tags": [], "status": "lost"}"#,
                r#"{"id": 1, "tags": [], "status": 1}"#,
                r#"{"id": 1, "tags": [], "pair": [1.5, true]}"#,
                r#"{"id": 1, "tags": [], "pair": [1.5, true, 3]}"#,
                r#"{"id": 1, "tags": [], "pair": [true]}"#,
                r#"{"id": 1, "tags": [], "\u00e9\"": true}"#,
                r#"{"id": 1, "tags": [], "\u00e9\"": 1}"#,
                r#"[]"#,
                r#"null"#,
                r#"{"id": 1, "tags": [],"#,
                r#"{"id": 1, "tags": []} x"#,
                "",
            ],
        );
    }

    #[test]
    fn alternatives_and_references_are_judged_as_jsonschema_judges_them() {
        let tree = json!({
            "$defs": {
                "node": {
                    "type": "object",
                    "required": ["value"],
                    "properties": {
                        "value": {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 0}]},
                        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}
                    }
                },
                "leaf": {"type": "object", "properties": {"value": {"type": "string"}}}
            },
            "type": "object",
            "properties": {
                "root": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]},
                "either": {"anyOf": [{"$ref": "#/$defs/node"}, {"$ref": "#/$defs/leaf"}]},
                "both": {"allOf": [{"$ref": "#/$defs/node"}, {"required": ["children"]}]},
                "one": {"oneOf": [{"$ref": "#/$defs/node"}, {"$ref": "#/$defs/leaf"}]}
            }
        });
        assert_as_jsonschema(
            tree,
            &[
                r#"{"root": null}"#,
                r#"{"root": {"value": 1, "children": [{"value": 2.5}, {"value": 3, "children": []}]}}"#,
                r#"{"root": {"value": 1, "children": [{"value": -2.5}]}}"#,
                r#"{"root": {"value": 1, "children": [{"children": []}]}}"#,
                r#"{"root": 7}"#,
                r#"{"either": {"value": "a"}}"#,
                r#"{"either": {"value": 1}}"#,
                r#"{"either": {"value": true}}"#,
                r#"{"both": {"value": 1}}"#,
                r#"{"both": {"value": 1, "children": []}}"#,
                r#"{"one": {"value": 1}}"#,
                r#"{"one": {"value": "a"}}"#,
                r#"{"one": {}}"#,
            ],
        );
    }

    #[test]
    fn keywords_the_walk_does_not_read_are_left_to_jsonschema_for_their_part() {
        assert_as_jsonschema(
            json!({"type": "object", "properties": {
                "code": {"type": "string", "pattern": "^[a-z]+$"},
                "count": {"type": "integer", "minimum": 1, "multipleOf": 2},
                "set": {"type": "array", "uniqueItems": true},
                "mode": {"enum": [1, "one"]},
                "fixed": {"const": {"a": 1}}
            }}),
            &[
                r#"{"code": "abc", "count": 2, "set": [1, 2], "mode": 1, "fixed": {"a": 1}}"#,
                r#"{"code": "ABC"}"#,
                r#"{"count": 3}"#,
                r#"{"count": 0}"#,
                r#"{"set": [1, 1]}"#,
                r#"{"mode": "two"}"#,
                r#"{"mode": 1.0}"#,
                r#"{"fixed": {"a": 2}}"#,
            ],
        );
    }

    #[test]
    fn keywords_that_change_references_leave_the_whole_schema_to_jsonschema() {
        for keyword in ["$id", "$dynamicRef", "unevaluatedProperties"] {
            let schema = json!({"type": "object", "properties": {"a": {keyword: "x"}}});
            assert!(Schema::compile(schema.as_object().unwrap()).is_none(), "{keyword}");
        }
        let elsewhere = json!({"$ref": "#/definitions/a", "definitions": {"a": {}}});
        assert!(Schema::compile(elsewhere.as_object().unwrap()).is_none());
    }

    #[test]
    fn a_key_given_twice_must_match_both_times() {
        let schema = compiled(json!({"type": "object", "properties": {"id": {"type": "integer"}}}));
        assert_eq!(schema.check(r#"{"id": 1, "id": 2}"#), Verdict::Matches);
        assert_eq!(schema.check(r#"{"id": "one", "id": 2}"#), Verdict::Strays);
    }

    #[test]
    fn references_that_loop_without_reading_are_left_undecided() {
        let schema = compiled(json!({
            "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}},
            "$ref": "#/$defs/a"
        }));
        assert_eq!(schema.check("{}"), Verdict::Undecided);
        assert_eq!(schema.check("1"), Verdict::Undecided);
    }
}

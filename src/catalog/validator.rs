//! A tool's JSON Schema validator, compiled when a call first needs it rather than when the
//! catalog is built. A compiled validator takes several times its schema's size, and most tools
//! of a big API are never called by a given deployment: compiling them all made up a third of the
//! memory of Microsoft Graph's 11,422 tools, and most of its start-up.
//!
//! Invariant: a value is only ever checked against its tool's own schema (shared with the
//! definition, never copied while unused). A schema that does not compile (the converter never
//! emits one; the corpus test holds it) refuses every call's arguments, and checks no backend
//! response.
//!
//! A backend's answer is checked as its text is parsed ([`one_pass`]) where the schema allows.

mod one_pass;

use std::sync::{Arc, OnceLock};

use jsonschema::ValidationError;
use serde_json::{Map, Value};

pub struct Validator {
    schema: Arc<Map<String, Value>>,
    /// Boxed: a tool never called holds a pointer's width, not a whole validator.
    compiled: OnceLock<Option<Box<jsonschema::Validator>>>,
    /// The check of answers' text, for output schemas; `None` inside when the schema needs
    /// `jsonschema` as a whole.
    one_pass: OnceLock<Option<Box<one_pass::Schema>>>,
    uncompilable: Uncompilable,
}

/// What a schema that does not compile lets through.
#[derive(Clone, Copy)]
enum Uncompilable {
    /// Nothing: arguments are never sent unchecked.
    Refuse,
    /// Everything: a backend response is only checked to tell the model what it got.
    Accept,
}

impl Validator {
    /// The validator of a tool's arguments.
    pub fn arguments(schema: Arc<Map<String, Value>>) -> Validator {
        Validator {
            schema,
            compiled: OnceLock::new(),
            one_pass: OnceLock::new(),
            uncompilable: Uncompilable::Refuse,
        }
    }

    /// The validator of a tool's structured output (backend responses).
    pub fn output(schema: Arc<Map<String, Value>>) -> Validator {
        Validator {
            schema,
            compiled: OnceLock::new(),
            one_pass: OnceLock::new(),
            uncompilable: Uncompilable::Accept,
        }
    }

    /// The reasons `instance` does not match the schema, compiling it on first use.
    pub fn iter_errors<'i>(&'i self, instance: &'i Value) -> Errors<'i> {
        match self.compiled() {
            Some(validator) => Errors::Found(validator.iter_errors(instance)),
            None => Errors::Uncompilable(match self.uncompilable {
                Uncompilable::Refuse => {
                    Some(ValidationError::custom("the tool's input schema does not compile"))
                }
                Uncompilable::Accept => None,
            }),
        }
    }

    pub fn is_valid(&self, instance: &Value) -> bool {
        match self.compiled() {
            Some(validator) => validator.is_valid(instance),
            None => matches!(self.uncompilable, Uncompilable::Accept),
        }
    }

    /// Whether the JSON text `json` matches, `None` when it is not JSON. Checked as it is parsed
    /// where the schema allows, else parsed into a value for `jsonschema`.
    pub fn check_text(&self, json: &str) -> Option<bool> {
        if let Some(schema) = self.one_pass() {
            match schema.check(json) {
                one_pass::Verdict::Matches => return Some(true),
                one_pass::Verdict::Strays => return Some(false),
                one_pass::Verdict::NotJson => return None,
                one_pass::Verdict::Undecided => {}
            }
        }
        let value: Value = serde_json::from_str(json).ok()?;
        Some(self.is_valid(&value))
    }

    /// Whether [`Validator::check_text`] checks text as it is parsed, for this schema.
    pub fn is_streamed(&self) -> bool {
        self.one_pass().is_some()
    }

    fn one_pass(&self) -> Option<&one_pass::Schema> {
        // Only for a schema `jsonschema` compiles: one it refuses checks no answer.
        let compile = || self.compiled().and_then(|_| one_pass::Schema::compile(&self.schema)).map(Box::new);
        self.one_pass.get_or_init(compile).as_deref()
    }

    /// Whether a value was checked already (and the schema compiled).
    pub fn is_compiled(&self) -> bool {
        self.compiled.get().is_some()
    }

    fn compiled(&self) -> Option<&jsonschema::Validator> {
        // After the first call, one atomic load: no lock, no allocation.
        self.compiled.get_or_init(|| compile(&self.schema)).as_deref()
    }
}

fn compile(schema: &Map<String, Value>) -> Option<Box<jsonschema::Validator>> {
    match jsonschema::draft202012::new(&Value::Object(schema.clone())) {
        Ok(validator) => Some(Box::new(validator)),
        Err(err) => {
            tracing::warn!(%err, "a tool's schema does not compile");
            None
        }
    }
}

/// The errors of [`Validator::iter_errors`].
pub enum Errors<'i> {
    Found(jsonschema::ErrorIterator<'i>),
    Uncompilable(Option<ValidationError<'static>>),
}

impl<'i> Iterator for Errors<'i> {
    type Item = ValidationError<'i>;

    fn next(&mut self) -> Option<ValidationError<'i>> {
        match self {
            Errors::Found(errors) => errors.next(),
            Errors::Uncompilable(error) => error.take(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema(value: Value) -> Arc<Map<String, Value>> {
        match value {
            Value::Object(map) => Arc::new(map),
            _ => Arc::default(),
        }
    }

    #[test]
    fn compiled_on_first_use_only() {
        let validator = Validator::arguments(schema(
            json!({"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}),
        ));
        assert!(!validator.is_compiled());
        assert!(validator.is_valid(&json!({"id": 7})));
        assert!(validator.is_compiled());
        let errors: Vec<String> =
            validator.iter_errors(&json!({"id": "seven"})).map(|it| it.to_string()).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn a_schema_that_does_not_compile_refuses_arguments_and_accepts_output() {
        let broken = schema(json!({"type": "object", "properties": {"id": {"type": 12}}}));
        let arguments = Validator::arguments(broken.clone());
        assert!(!arguments.is_valid(&json!({})));
        let errors: Vec<String> = arguments.iter_errors(&json!({})).map(|it| it.to_string()).collect();
        assert_eq!(errors, ["the tool's input schema does not compile"]);
        let output = Validator::output(broken);
        assert!(output.is_valid(&json!({})));
        assert_eq!(output.iter_errors(&json!({})).count(), 0);
    }
}

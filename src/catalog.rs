//! The tool set of one hosted server: the tools it exposes, each with its argument validator
//! (compiled on first use) and the scopes it needs. Built from a document and the server's
//! settings; the OpenAPI model is not kept once the tools are made.

pub mod search;
pub mod validator;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use url::Url;

use crate::config::{BackendUrl, Budget, ServerSettings};
use crate::metrics;
use crate::openapi::{ParamLocation, SecurityKind, Spec};
use crate::ratelimit::{self, Rate};
use crate::tools::{self, Report, ToolSpec};

pub struct Catalog {
    pub title: String,
    pub tools: Vec<Tool>,
    /// foldhash, seeded at random: every call looks its tool up here, and SipHash cost more.
    by_name: foldhash::HashMap<String, usize>,
    pub report: Report,
    /// The server's metrics that no tool names (a call naming an unknown tool, refusals).
    pub metrics: Arc<metrics::ServerSeries>,
    /// In catalog mode, the index the search meta-tool ranks `tools` with; `None` otherwise.
    pub search: Option<search::Index>,
}

pub struct Tool {
    pub spec: ToolSpec,
    /// Checks arguments against the input schema; compiled on the first call.
    pub validator: validator::Validator,
    /// Checks backend responses against the output schema, to log backends that stray.
    pub output_validator: Option<validator::Validator>,
    /// Set at the first backend answer that strays from the output schema: a backend that strays
    /// does so at every call (Microsoft Graph leaves out the `@odata.type` its document requires),
    /// and the warning is logged once per tool and publication rather than at each call.
    pub output_strayed: AtomicBool,
    /// Scopes a caller needs for this tool, besides the server's own.
    pub scopes: Vec<String>,
    /// How often it may be called, per user and in all.
    pub limits: ratelimit::Limits,
    /// Made on the first call, then recorded into with no lookup.
    pub metrics: metrics::ToolMetrics,
    /// The operation's tags in the document, which policies read.
    pub tags: Vec<String>,
    /// Whether a call waits for the user's confirmation before it reaches the backend.
    pub confirm: bool,
}

impl Tool {
    /// Whether a backend's answer, the JSON text `json`, fits the output schema (any JSON does
    /// when the tool has none); `None` when it is not JSON. The first that strays is logged.
    pub fn output_check(&self, json: &str) -> Option<bool> {
        let Some(validator) = &self.output_validator else {
            return serde_json::from_str::<serde::de::IgnoredAny>(json).ok().map(|_| true);
        };
        let matches = validator.check_text(json)?;
        if !matches && !self.output_strayed.swap(true, Ordering::Relaxed) {
            // Masked: the reason names the schema's rule and where, never the backend's data.
            // Parsed again for it, once per tool and publication.
            let value: Value = serde_json::from_str(json).unwrap_or_default();
            let reason = validator
                .iter_errors(&value)
                .next()
                .map(|it| format!("at `{}`: {}", it.instance_path(), it.masked()))
                .unwrap_or_default();
            tracing::warn!(
                tool = %self.spec.name,
                "backend response does not match the tool's output schema ({reason}); clients get its \
                 data as text only. Not logged again for this tool until the next publication"
            );
        }
        Some(matches)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("server `{slug}` has no backend URL: set `backend_url` (the document names no absolute server)")]
    NoBackend { slug: String },
    #[error("server `{slug}`: the backend URL `{url}` is invalid: {reason}")]
    BadBackend { slug: String, url: String, reason: String },
    #[error("server `{slug}` exposes `{name}`, which is neither an operation nor a tool of its document")]
    UnknownExposed { slug: String, name: String },
}

impl Catalog {
    /// Generates the tools of `spec` and keeps those `settings` expose.
    pub fn build(settings: &ServerSettings, mut spec: Spec) -> Result<Catalog, Error> {
        shape(settings, &mut spec);
        let generated = tools::generate(&spec, &options(settings));
        // Sets, so that publishing stays linear in the number of tools: a tool is exposed when
        // its name, its operation's key or its label is listed.
        let wanted: Option<HashSet<&str>> =
            settings.expose.as_ref().map(|list| list.iter().map(String::as_str).collect());
        let mut matched: HashSet<String> = HashSet::new();
        let mut limited: HashSet<String> = HashSet::new();
        let mut tools = Vec::with_capacity(generated.tools.len());
        let server: Arc<str> = settings.slug.as_str().into();
        for tool in generated.tools {
            let operation = &spec.operations[tool.operation];
            let (key, label) = (operation.key(), operation.label());
            let names = [tool.name.as_str(), key.as_str(), label.as_str()];
            if let Some(wanted) = &wanted {
                let listed: Vec<&str> = names.iter().copied().filter(|it| wanted.contains(it)).collect();
                if listed.is_empty() {
                    continue;
                }
                matched.extend(listed.into_iter().map(str::to_owned));
            }
            limited.extend(
                names
                    .iter()
                    .filter(|it| settings.rate_limits.tools.contains_key(**it))
                    .map(|it| (*it).to_owned()),
            );
            let scopes = tool_scopes(settings, &spec, &tool);
            let (per_user, per_tool) = settings.rate_limits.for_tool(&names, tool.annotations.read_only);
            let limits = ratelimit::Limits {
                per_user: Rate::per_minute(per_user),
                per_tool: Rate::per_minute(per_tool),
            };
            // Unless configured, DELETE operations are confirmed: they destroy.
            let confirm = names
                .iter()
                .find_map(|it| settings.confirm.get(*it).copied())
                .unwrap_or(tool.plan.method == http::Method::DELETE);
            tools.push(Tool {
                validator: validator::Validator::arguments(tool.input_schema.clone()),
                output_validator: tool.output_schema.clone().map(validator::Validator::output),
                output_strayed: AtomicBool::new(false),
                scopes,
                limits,
                metrics: metrics::ToolMetrics::new(&server, &tool.name),
                tags: operation.tags.clone(),
                confirm,
                spec: tool,
            });
        }
        if let Some(name) = settings.expose.iter().flatten().find(|it| !matched.contains(it.as_str())) {
            return Err(Error::UnknownExposed { slug: settings.slug.to_string(), name: name.clone() });
        }
        // Rates named for no exposed tool apply to nothing: say so rather than stay silent.
        for name in settings.rate_limits.tools.keys().filter(|it| !limited.contains(it.as_str())) {
            tracing::warn!(server = %settings.slug, tool = %name, "rate_limits.tools names no exposed tool");
        }
        let by_name = tools.iter().enumerate().map(|(idx, it)| (it.spec.name.clone(), idx)).collect();
        let metrics = metrics::server(settings.slug.as_str());
        let search = settings.catalog_mode.then(|| {
            search::Index::build(tools.iter().map(|it| (&it.spec, &spec.operations[it.spec.operation])))
        });
        Ok(Catalog { title: spec.info.title, tools, by_name, report: generated.report, metrics, search })
    }

    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.by_name.get(name).map(|&idx| &self.tools[idx])
    }
}

/// The converter's options under the server's context budget, and each tool's over it (unset
/// values take the lean defaults).
pub fn options(settings: &ServerSettings) -> tools::Options {
    let of = |budget: &Budget| {
        let it = budget.resolved();
        let size = |value: u32| usize::try_from(value).unwrap_or(usize::MAX);
        tools::Options {
            max_description_len: size(it.max_description_chars),
            max_schema_tokens: size(it.max_schema_tokens),
            max_output_schema_tokens: size(it.max_output_schema_tokens),
            optional_depth: Some(size(it.optional_depth)),
            ..tools::Options::default()
        }
    };
    let mut options = of(&settings.budget);
    options.per_operation = settings
        .tools
        .iter()
        .filter(|(_, it)| !it.budget.is_empty())
        .map(|(key, it)| (key.clone(), of(&it.budget.over(&settings.budget))))
        .collect();
    options
}

/// The scopes a tool needs: configured ones, else those of the operation's OAuth `security`
/// requirements. Requirements are alternatives; when one needs no scope, the tool needs none,
/// else the first one's scopes are asked for.
/// What the settings change in the document before tools are made from it: the curation
/// overrides, and no argument for a header or query parameter that mcpgate itself sets (the
/// backend credential, the operator's headers), which would be ignored.
pub fn shape(settings: &ServerSettings, spec: &mut Spec) {
    let mut set_by_mcpgate: Vec<(ParamLocation, &str)> =
        settings.headers.keys().map(|name| (ParamLocation::Header, name.as_str())).collect();
    set_by_mcpgate.extend(settings.credentials.parameter());
    for operation in &mut spec.operations {
        if let Some(curated) = settings.tools.get(&operation.key()) {
            curated.apply(operation);
        }
        operation.parameters.retain(|parameter| {
            !set_by_mcpgate.iter().any(|(location, name)| {
                *location == parameter.location
                    && match location {
                        // Header names are case-insensitive; query names are not.
                        ParamLocation::Header => parameter.name.eq_ignore_ascii_case(name),
                        _ => parameter.name == *name,
                    }
            })
        });
    }
}

fn tool_scopes(settings: &ServerSettings, spec: &Spec, tool: &ToolSpec) -> Vec<String> {
    let operation = &spec.operations[tool.operation];
    let configured =
        settings.tool_scopes.get(&tool.name).or_else(|| settings.tool_scopes.get(&operation.key()));
    if let Some(scopes) = configured {
        return scopes.clone();
    }
    let scoped = |name: &str| {
        spec.security_schemes.iter().any(|it| {
            it.name == name && matches!(it.kind, SecurityKind::OAuth2 { .. } | SecurityKind::OpenIdConnect)
        })
    };
    let alternatives: Vec<Vec<String>> = operation
        .security
        .iter()
        .map(|requirement| {
            let mut scopes: Vec<String> = Vec::new();
            for (name, listed) in &requirement.schemes {
                if scoped(name) {
                    scopes
                        .extend(listed.iter().filter(|it| !scopes.contains(it)).cloned().collect::<Vec<_>>());
                }
            }
            scopes
        })
        .collect();
    if alternatives.iter().any(Vec::is_empty) {
        return Vec::new();
    }
    alternatives.into_iter().next().unwrap_or_default()
}

/// The configured backend URL, else the document's first server with its variables filled in.
/// `document_url` resolves relative server URLs when the document came from one.
pub fn backend_url(
    settings: &ServerSettings,
    spec: &Spec,
    document_url: Option<&Url>,
) -> Result<BackendUrl, Error> {
    let slug = settings.slug.to_string();
    if let Some(url) = &settings.backend_url {
        return Ok(url.clone());
    }
    let server = spec.servers.first().ok_or(Error::NoBackend { slug: slug.clone() })?;
    let mut text = server.url.clone();
    for variable in &server.variables {
        let value = settings.server_variables.get(&variable.name).unwrap_or(&variable.default);
        text = text.replace(&format!("{{{}}}", variable.name), value);
    }
    let url = match (Url::parse(&text), document_url) {
        (Ok(url), _) => url,
        (Err(url::ParseError::RelativeUrlWithoutBase), Some(base)) => base.join(&text).map_err(|err| {
            Error::BadBackend { slug: slug.clone(), url: text.clone(), reason: err.to_string() }
        })?,
        (Err(url::ParseError::RelativeUrlWithoutBase), None) => return Err(Error::NoBackend { slug }),
        (Err(err), _) => return Err(Error::BadBackend { slug, url: text, reason: err.to_string() }),
    };
    BackendUrl::parse(url.clone()).map_err(|_| Error::BadBackend {
        slug,
        url: url.to_string(),
        reason: "it must be an absolute http(s) URL".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str = r#"
openapi: 3.0.3
info: {title: Keys, version: "1"}
servers: [{url: "https://api.example.com"}]
paths:
  /things:
    get:
      operationId: listThings
      parameters:
        - {name: X-Api-Key, in: header, required: true, schema: {type: string}}
        - {name: X-Trace, in: header, schema: {type: string}}
        - {name: api_key, in: query, schema: {type: string}}
        - {name: limit, in: query, schema: {type: integer}}
      responses: {"200": {description: ok}}
"#;

    fn arguments(settings: &str) -> Vec<String> {
        let text = format!("slug = 'keys'\nspec = 'keys.yaml'\n{settings}");
        let settings: ServerSettings = toml::from_str(&text).unwrap();
        let spec = crate::openapi::ingest(DOCUMENT.as_bytes()).unwrap();
        let catalog = Catalog::build(&settings, spec).unwrap();
        let schema = &catalog.tools[0].spec.input_schema;
        let mut names: Vec<String> = schema["properties"].as_object().unwrap().keys().cloned().collect();
        names.sort();
        names
    }

    #[test]
    fn parameters_mcpgate_sets_are_not_arguments() {
        assert_eq!(arguments(""), ["X-Api-Key", "X-Trace", "api_key", "limit"]);
        let header = "headers = { x-trace = 'on' }\n[credentials]\nmode = 'static'\nscheme = 'header'\n\
                      name = 'x-api-key'\nvalue = 'k'";
        assert_eq!(arguments(header), ["api_key", "limit"]);
        let query = "[credentials]\nmode = 'static'\nscheme = 'query'\nname = 'api_key'\nvalue = 'k'";
        assert_eq!(arguments(query), ["X-Api-Key", "X-Trace", "limit"]);
        // Query names are case-sensitive.
        let other = "[credentials]\nmode = 'static'\nscheme = 'query'\nname = 'API_KEY'\nvalue = 'k'";
        assert_eq!(arguments(other), ["X-Api-Key", "X-Trace", "api_key", "limit"]);
    }

    #[test]
    fn a_backend_straying_from_the_output_schema_is_logged_once_without_its_data() {
        let document = r#"{"openapi": "3.1.0", "info": {"title": "t", "version": "1"},
            "servers": [{"url": "https://api.example.com"}], "paths": {"/pet": {"get": {
            "operationId": "getPet", "responses": {"200": {"description": "ok", "content": {
            "application/json": {"schema": {"type": "object", "properties": {"id": {"type": "integer"}},
            "required": ["id"]}}}}}}}}}"#;
        let settings: ServerSettings = toml::from_str("slug = 'pets'\nspec = 'pets.json'").unwrap();
        let catalog =
            Catalog::build(&settings, crate::openapi::ingest(document.as_bytes()).unwrap()).unwrap();
        let tool = &catalog.tools[0];
        let stray = r#"{"id": "secret-value"}"#;
        let (matches, logged) = logged(|| {
            let first = tool.output_check(r#"{"id": 7}"#);
            (first, tool.output_check(stray), tool.output_check(stray), tool.output_check("{\"id\""))
        });
        assert_eq!(matches, (Some(true), Some(false), Some(false), None));
        assert_eq!(logged.matches("does not match the tool's output schema").count(), 1, "{logged}");
        assert!(logged.contains("getPet") && logged.contains("at `/id`"), "{logged}");
        assert!(!logged.contains("secret-value"), "{logged}");
    }

    /// `f`'s result and what it logged.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        #[derive(Clone, Default)]
        struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().write(bytes)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber =
            tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        let result = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8_lossy(&lines.0.lock().unwrap()).into_owned();
        (result, text)
    }
}

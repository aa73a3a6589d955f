//! What administrators do to hosted servers, whichever way they come (web UI or JSON API):
//! import a document, curate its operations, set the backend and its credentials, publish,
//! export and restore. Changes go to a draft in the store; publishing makes the draft the served
//! copy and swaps the live tool set at once. Every change is written to the audit log.
//!
//! Servers declared in the configuration file are shown but not changed here: the file would
//! undo the change at the next start.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::curation::{self, Filter, View, Views};
use crate::calls;
use crate::config::{
    self, BackendUrl, CredentialsConfig, MaxConcurrency, RateLimits, ServerSettings, Slug, TimeoutSecs,
    ToolOverride,
};
use crate::hosting::Hosting;
use crate::mcp::{ToolVersion, tool_definition};
use crate::openapi::Spec;
use crate::source::{self, Limits, Source};
use crate::store::{AuditEntry, Generation, Publication, Stage, Store};
use crate::tools::{self, Report};

use super::changes;

/// How many changes a curation's audit entry names; it counts the rest.
const AUDIT_CHANGES: usize = 20;
/// The longest operation key or tool name an audit entry quotes whole.
const AUDIT_NAME_CHARS: usize = 80;

#[derive(Clone)]
pub struct Workspace {
    hosting: Hosting,
    store: Store,
    /// The version of the server a change was made on (`If-Match`, a form's hidden field): a
    /// change to a server changed since is refused.
    expected: Option<u64>,
    /// The curation page's views of the servers curated last.
    views: Views,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no server `{0}`")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("server `{0}` exists already")]
    Exists(String),
    #[error("server `{0}` is declared in the configuration file; change it there")]
    Provisioned(String),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("mcpgate is stopping: not published")]
    Stopping,
    #[error("server `{slug}` has no generation {number} (the newest {kept} are kept)", kept = crate::store::GENERATIONS_KEPT)]
    NoGeneration { slug: String, number: u64 },
}

impl From<config::Error> for Error {
    fn from(err: config::Error) -> Error {
        Error::Invalid(err.to_string())
    }
}

/// A server as the list shows it.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub slug: String,
    pub title: String,
    pub mcp_url: String,
    /// `live`, `draft` (never published) or `failed`.
    pub state: &'static str,
    pub provisioned: bool,
    /// Whether a draft differs from what is served.
    pub unpublished: bool,
    pub tools: usize,
    pub failure: Option<String>,
    /// The newest generation's number: the publication the store serves (none before the first).
    pub generation: Option<u64>,
}

/// What a publication did.
#[derive(Debug, Serialize)]
pub struct Published {
    pub tools: usize,
    /// The new generation's number (none when there was no draft to publish).
    pub generation: Option<u64>,
}

/// One side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Generation(u64),
    /// The newest generation (what is served).
    Published,
    /// The draft as it would be published (what is served when there is no draft).
    Draft,
}

impl Side {
    /// `draft`, `published` or a generation's number.
    pub fn parse(text: &str) -> Result<Side, Error> {
        match text {
            "draft" => Ok(Side::Draft),
            "published" => Ok(Side::Published),
            number => number.parse().map(Side::Generation).map_err(|_| {
                Error::Invalid(format!(
                    "`{}` is neither `draft`, `published` nor a generation's number",
                    clip(number)
                ))
            }),
        }
    }
}

/// A generation with the tools it served.
#[derive(Debug, Serialize)]
pub struct GenerationView {
    #[serde(flatten)]
    pub generation: Generation,
    pub tools: Vec<ToolVersion>,
}

/// What changed between two sides.
#[derive(Debug, Serialize)]
pub struct Changes {
    /// The generations compared (none: the draft, or what is served when no generation is kept).
    pub from: Option<u64>,
    pub to: Option<u64>,
    /// The newest generation.
    pub published: Option<u64>,
    /// Whether the server has a draft (without one, the draft is what is served).
    pub draft: bool,
    #[serde(flatten)]
    pub diff: changes::Diff,
}

/// Where a document comes from.
pub enum Document {
    Bytes { name: String, bytes: Vec<u8> },
    Url(Url),
}

/// What an import did.
#[derive(Debug, Serialize)]
pub struct Imported {
    pub slug: String,
    pub report: Report,
    pub diff: Diff,
}

/// Operations by key, compared with the previous document.
#[derive(Debug, Default, Serialize)]
pub struct Diff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

/// A server's draft with every operation, as the curation page shows it.
#[derive(Debug, Serialize)]
pub struct Draft {
    pub summary: Summary,
    /// The server's version: a change made on it names it (`If-Match`), and is refused once
    /// another has been made.
    pub version: u64,
    pub settings: Settings,
    pub operations: Vec<OperationView>,
    /// Estimated tokens of the exposed tools' definitions together.
    pub exposed_tokens: usize,
    pub report: ReportOf,
}

/// The report of a view, serialized as the report.
#[derive(Debug)]
pub struct ReportOf(std::sync::Arc<curation::Generated>);

impl Serialize for ReportOf {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.report.serialize(serializer)
    }
}

/// A server's draft as the curation page's shell shows it: the settings and the view whose rows
/// the page asks for a page at a time.
pub struct Curation {
    pub summary: Summary,
    pub version: u64,
    pub settings: Settings,
    pub view: View,
}

/// What a curation changed, for the page to show without reloading the draft: the changed rows
/// (all of them, or only how many for a bulk change) and the new totals.
pub struct Curated {
    /// The server's new version.
    pub version: u64,
    /// Its view, when the change could make it from the one kept (a change of exposure only);
    /// otherwise it is built when asked for.
    pub view: Option<View>,
    /// The operations changed, by key.
    pub changed: Vec<String>,
}

impl Curated {
    /// The changed rows as `view` shows them, when there are at most `rows` of them, and the
    /// totals.
    pub fn answer(&self, view: &View, rows: usize) -> Value {
        let mut answer = view.totals();
        answer["n_changed"] = serde_json::json!(self.changed.len());
        if self.changed.len() <= rows {
            let changed: Vec<Value> =
                self.changed.iter().filter_map(|key| view.index(key)).map(|idx| view.row(idx)).collect();
            answer["changed"] = Value::Array(changed);
        }
        answer
    }
}

/// A bulk change of exposure: to the rows `keys` names, else to those `filter` lets through.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bulk {
    #[serde(default)]
    pub filter: Filter,
    pub keys: Option<Vec<String>>,
    pub exposed: bool,
    /// Only say what the change would touch.
    #[serde(default)]
    pub preview: bool,
}

/// What a context budget would make of a server's exposed tools, and of one tool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetTrial {
    #[serde(default)]
    pub budget: crate::config::Budget,
    /// One operation, and its own budget over the server's.
    pub key: Option<String>,
    #[serde(default)]
    pub tool_budget: crate::config::Budget,
}

#[derive(Debug, Serialize)]
pub struct OperationView {
    pub key: String,
    pub method: &'static str,
    pub path: String,
    pub tag: String,
    pub summary: String,
    pub exposed: bool,
    pub tool_name: Option<String>,
    /// The MCP `Tool` object clients would see.
    pub definition: Option<Value>,
    pub tokens: usize,
    pub scopes: Vec<String>,
    pub curated: ToolOverride,
    /// Readiness warnings: missing description, very large schema, shortened name.
    pub warnings: Vec<String>,
}

/// The settings an administrator may change; secrets are never part of it (only whether one
/// is set).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub backend_url: Option<BackendUrl>,
    #[serde(default)]
    pub timeout_secs: Option<TimeoutSecs>,
    #[serde(default)]
    pub max_concurrency: Option<MaxConcurrency>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// Write: replaces the rate limits whole (keys left out get their defaults).
    #[serde(default)]
    pub rate_limits: Option<RateLimits>,
    /// Write: the new credentials (secrets left out keep their current value). Read: the
    /// credentials with every secret replaced by `"(set)"`.
    #[serde(default)]
    pub credentials: Option<Value>,
    /// Serve the server as search, describe and call meta-tools.
    #[serde(default)]
    pub catalog_mode: Option<bool>,
    /// The server's context budget (each tool's is in its curation).
    #[serde(default)]
    pub budget: Option<crate::config::Budget>,
    /// The server's Cedar policies; write an empty text to remove them.
    #[serde(default)]
    pub policies: Option<String>,
    /// Write: replaces whole which tools wait for the user's confirmation (by tool name,
    /// operationId or `METHOD /path`; the others: DELETE operations do).
    #[serde(default)]
    pub confirm: Option<BTreeMap<String, bool>>,
}

/// A change to one operation's curation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Curate {
    pub key: String,
    pub exposed: Option<bool>,
    /// Replaces the operation's name, description and annotation overrides.
    pub curated: Option<ToolOverride>,
    /// Replaces the tool's scopes; an empty list goes back to the document's.
    pub scopes: Option<Vec<String>>,
}

/// A server's whole configuration and document, for backup and restore. Secrets stay sealed.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    pub settings: ServerSettings,
    /// The OpenAPI document, as text.
    pub document: String,
}

impl Workspace {
    pub fn new(hosting: Hosting, store: Store) -> Workspace {
        Workspace { hosting, store, expected: None, views: Views::default() }
    }

    /// This workspace for a change made on `version` of the server (when the client says).
    pub fn expecting(&self, version: Option<u64>) -> Workspace {
        Workspace { expected: version, ..self.clone() }
    }

    pub fn hosting(&self) -> &Hosting {
        &self.hosting
    }

    pub async fn list(&self) -> Result<Vec<Summary>, Error> {
        let mut slugs: BTreeSet<String> = self.hosting.slugs().into_iter().collect();
        slugs.extend(self.store.list(Stage::Draft).await?);
        slugs.extend(self.hosting.failed().into_iter().map(|(slug, _)| slug));
        let mut summaries = Vec::with_capacity(slugs.len());
        for slug in &slugs {
            summaries.push(self.summary(slug).await?);
        }
        Ok(summaries)
    }

    async fn summary(&self, slug: &str) -> Result<Summary, Error> {
        let hosted = self.hosting.get(slug);
        let draft = self.load(Stage::Draft, slug).await?.map(|(settings, document, _)| (settings, document));
        let failure = self.hosting.failed().into_iter().find(|(it, _)| it == slug).map(|(_, reason)| reason);
        let title = match (&hosted, &draft) {
            (Some(hosted), _) => hosted.host.current().catalog.title.clone(),
            // Reading a large document takes seconds: a kept view knows its title.
            (None, Some((settings, document))) => self.views.title(slug).unwrap_or_else(|| {
                source::ingest(&settings.spec, document).map(|spec| spec.info.title).unwrap_or_default()
            }),
            _ => String::new(),
        };
        let state = match (&hosted, &failure) {
            (Some(_), _) => "live",
            (None, Some(_)) => "failed",
            (None, None) => "draft",
        };
        Ok(Summary {
            slug: slug.to_owned(),
            title,
            mcp_url: format!("{}/mcp/{slug}", self.hosting.config().public_url()),
            state,
            provisioned: hosted.as_ref().is_some_and(|it| it.provisioned)
                || self.hosting.config().servers.iter().any(|it| it.slug == slug),
            unpublished: draft.is_some(),
            tools: hosted.map_or(0, |it| it.host.current().catalog.tools.len()),
            failure,
            generation: self.store.history(slug).await?.first().map(|it| it.number),
        })
    }

    /// Creates a server from a document; nothing is exposed until chosen.
    pub async fn create(&self, actor: &str, slug: &str, document: Document) -> Result<Imported, Error> {
        let slug = Slug::parse(slug)?;
        if self.hosting.get(slug.as_str()).is_some()
            || self.store.get(Stage::Draft, slug.as_str()).await?.is_some()
        {
            return Err(Error::Exists(slug.to_string()));
        }
        let version = self.store.edition(slug.as_str()).await?;
        let (name, bytes, spec) = read(document, false).await?;
        let settings = ServerSettings::new(slug, name);
        let imported = self.save_import(actor, "create", settings, &bytes, &spec, None, version).await?;
        Ok(imported)
    }

    /// Replaces the document of a server, keeping its curation (keyed by operation).
    pub async fn import(&self, actor: &str, slug: &str, document: Document) -> Result<Imported, Error> {
        let (settings, previous, version) = self.editable(slug).await?;
        let (name, bytes, spec) = read(document, settings.allow_private_spec_url).await?;
        let mut settings = settings;
        settings.spec = name;
        let previous = source::ingest(&settings.spec, &previous).ok();
        self.save_import(actor, "import", settings, &bytes, &spec, previous.as_ref(), version).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn save_import(
        &self,
        actor: &str,
        action: &str,
        mut settings: ServerSettings,
        bytes: &[u8],
        spec: &Spec,
        previous: Option<&Spec>,
        version: u64,
    ) -> Result<Imported, Error> {
        let generated = tools::generate(spec, &tools::Options::default());
        let diff = previous.map(|old| diff(old, spec)).unwrap_or_default();
        // Exposure names operations that may be gone now.
        let keys: BTreeSet<String> = spec.operations.iter().map(|it| it.key()).collect();
        if let Some(expose) = &mut settings.expose {
            expose.retain(|it| keys.contains(it));
        }
        let settings = settings.validated(self.hosting.config().auth.mode)?;
        self.save(&settings, bytes.to_vec(), version).await?;
        let detail = format!(
            "{}, {}; +{} -{} ~{}",
            count(generated.report.operations, "operation"),
            count(generated.report.tools, "tool"),
            diff.added.len(),
            diff.removed.len(),
            diff.changed.len()
        );
        self.audit(actor, action, Some(settings.slug.as_str()), &detail).await;
        Ok(Imported { slug: settings.slug.to_string(), report: generated.report, diff })
    }

    /// The server's draft (or its served copy when it has none), with every operation.
    pub async fn draft(&self, slug: &str) -> Result<Draft, Error> {
        let curation = self.curation(slug).await?;
        let view = &curation.view;
        let mut operations: Vec<(usize, OperationView)> = view
            .generated
            .rows
            .iter()
            .zip(view.exposed.iter())
            .map(|(row, exposed)| {
                let view = OperationView {
                    key: row.key.clone(),
                    method: row.method,
                    path: row.path.clone(),
                    tag: row.tag.clone(),
                    summary: row.summary.clone(),
                    exposed: *exposed,
                    tool_name: row.tool_name.clone(),
                    definition: row.definition.as_deref().and_then(|it| serde_json::from_str(it).ok()),
                    tokens: row.tokens,
                    scopes: row.scopes.clone(),
                    curated: row.curated.clone(),
                    warnings: row.warnings.clone(),
                };
                (row.position, view)
            })
            .collect();
        // The document's order, as before the page grouped rows by tag.
        operations.sort_by_key(|(position, _)| *position);
        Ok(Draft {
            summary: curation.summary,
            version: curation.version,
            settings: curation.settings,
            operations: operations.into_iter().map(|(_, it)| it).collect(),
            exposed_tokens: view.exposed_tokens,
            report: ReportOf(view.generated.clone()),
        })
    }

    /// The server's draft (or its served copy) for the curation page: its settings and view.
    pub async fn curation(&self, slug: &str) -> Result<Curation, Error> {
        let (settings, document, version) = self.current(slug).await?;
        let view = self.view_of(slug, &settings, document, version).await?;
        Ok(Curation { summary: self.summary(slug).await?, version, settings: settings_view(&settings), view })
    }

    /// The view of `version` of a server: kept, or built off the async workers (a large
    /// document takes seconds) and kept.
    async fn view_of(
        &self,
        slug: &str,
        settings: &ServerSettings,
        document: Vec<u8>,
        version: u64,
    ) -> Result<View, Error> {
        if let Some(view) = self.views.get(slug, version) {
            return Ok(view);
        }
        let building = self.views.building(slug);
        let _building = building.lock().await;
        // Built meanwhile by the request this one waited for.
        if let Some(view) = self.views.get(slug, version) {
            return Ok(view);
        }
        let (slug_owned, settings) = (slug.to_owned(), settings.clone());
        let view = tokio::task::spawn_blocking(move || {
            let spec = parse(&settings, &document)?;
            Ok::<_, Error>(curation::build(&slug_owned, version, &settings, spec))
        })
        .await
        .map_err(|_| Error::Invalid("the document could not be read".to_owned()))??;
        self.views.put(view.clone());
        Ok(view)
    }

    /// The view of the server as it is now (the draft, else the served copy).
    pub async fn view(&self, slug: &str) -> Result<View, Error> {
        // A view kept for the current edition needs no document, which is megabytes for a big API.
        if let Some(view) = self.views.get(slug, self.store.edition(slug).await?) {
            return Ok(view);
        }
        let (settings, document, version) = self.current(slug).await?;
        self.view_of(slug, &settings, document, version).await
    }

    /// Builds the server's view in the background, for a page about to be opened (after an
    /// import in the browser): the page then waits for this build rather than starting one.
    pub fn warm(&self, slug: &str) {
        let (workspace, slug) = (self.clone(), slug.to_owned());
        tokio::spawn(async move {
            if let Err(err) = workspace.view(&slug).await {
                tracing::debug!(%err, slug, "admin: the curation view was not built");
            }
        });
    }

    /// Exposes or hides at once the operations a bulk change names or its filter lets through
    /// (those that are tools); with `preview`, only says how many operations and tokens it
    /// would touch.
    pub async fn bulk(&self, actor: &str, slug: &str, bulk: &Bulk) -> Result<Value, Error> {
        // Refused as any change would be, even when it would touch nothing.
        if !bulk.preview && self.hosting.config().servers.iter().any(|it| it.slug == slug) {
            return Err(Error::Provisioned(slug.to_owned()));
        }
        let view = self.view(slug).await?;
        let mut chosen: Vec<usize> = match &bulk.keys {
            Some(keys) => keys
                .iter()
                .map(|key| view.index(key).ok_or_else(|| Error::Invalid(format!("no operation `{key}`"))))
                .collect::<Result<_, _>>()?,
            None => view.matching(&bulk.filter),
        };
        // A key named twice is one operation, counted once.
        chosen.sort_unstable();
        chosen.dedup();
        let touched: Vec<usize> = chosen
            .into_iter()
            .filter(|idx| view.is_tool(*idx) && view.exposed.get(*idx).copied() != Some(bulk.exposed))
            .collect();
        let tokens: usize = touched.iter().map(|idx| view.generated.rows[*idx].tokens).sum();
        let mut answer = serde_json::json!({"operations": touched.len(), "tokens": tokens});
        if bulk.preview || touched.is_empty() {
            answer["totals"] = view.totals();
            return Ok(answer);
        }
        let changes: Vec<Curate> = touched
            .iter()
            .map(|idx| Curate {
                key: view.generated.rows[*idx].key.clone(),
                exposed: Some(bulk.exposed),
                curated: None,
                scopes: None,
            })
            .collect();
        let curated = self.curate(actor, slug, &changes).await?;
        let view = match curated.view {
            Some(view) => view,
            None => self.view(slug).await?,
        };
        answer["totals"] = view.totals();
        Ok(answer)
    }

    /// The estimated tokens of the exposed tools, and of one tool, under a trial budget, beside
    /// those under the current one. Only the operations concerned are converted.
    pub async fn preview_budget(&self, slug: &str, trial: BudgetTrial) -> Result<Value, Error> {
        for budget in [&trial.budget, &trial.tool_budget] {
            if let Some(problem) = budget.problem() {
                return Err(Error::Invalid(problem));
            }
        }
        let (mut settings, document, version) = self.current(slug).await?;
        let view = self.view_of(slug, &settings, document.clone(), version).await?;
        let tool = match &trial.key {
            Some(key) => {
                Some(view.index(key).ok_or_else(|| Error::Invalid(format!("no operation `{key}`")))?)
            }
            None => None,
        };
        let wanted: HashSet<String> = view
            .generated
            .rows
            .iter()
            .enumerate()
            .filter(|(idx, _)| view.exposed.get(*idx).copied() == Some(true) || Some(*idx) == tool)
            .map(|(_, row)| row.key.clone())
            .collect();
        settings.budget = trial.budget;
        if let Some(key) = &trial.key {
            let entry = settings.tools.entry(key.clone()).or_default();
            entry.budget = trial.tool_budget;
        }
        let estimate = tokio::task::spawn_blocking(move || {
            let mut spec = parse(&settings, &document)?;
            spec.operations.retain(|it| wanted.contains(&it.key()));
            crate::catalog::shape(&settings, &mut spec);
            let generated = tools::generate(&spec, &crate::catalog::options(&settings));
            Ok::<_, Error>(
                generated
                    .tools
                    .iter()
                    .map(|it| (spec.operations[it.operation].key(), it.tokens))
                    .collect::<Vec<_>>(),
            )
        })
        .await
        .map_err(|_| Error::Invalid("the document could not be read".to_owned()))??;
        let exposed_tokens: usize = estimate
            .iter()
            .filter(|(key, _)| {
                view.index(key).is_some_and(|idx| view.exposed.get(idx).copied() == Some(true))
            })
            .map(|(_, tokens)| tokens)
            .sum();
        let mut answer = serde_json::json!({
            "exposed_tokens": exposed_tokens,
            "current_exposed_tokens": view.exposed_tokens,
            "n_exposed": view.n_exposed(),
        });
        if let (Some(key), Some(idx)) = (&trial.key, tool) {
            let tokens = estimate.iter().find(|(it, _)| it == key).map(|(_, tokens)| *tokens);
            answer["tool"] = serde_json::json!({
                "key": key,
                "tokens": tokens,
                "current_tokens": view.generated.rows[idx].tokens,
            });
        }
        Ok(answer)
    }

    /// Applies curation changes to the draft; the server's new view, and which rows changed.
    /// A change of exposure only, on a version whose view is kept, neither reads the document
    /// nor makes tools: names and definitions do not depend on what is exposed.
    pub async fn curate(&self, actor: &str, slug: &str, changes: &[Curate]) -> Result<Curated, Error> {
        let (mut settings, document, version) = self.editable(slug).await?;
        if changes.is_empty() {
            return Err(Error::Invalid("no changes given".to_owned()));
        }
        let exposure_only = changes.iter().all(|it| it.curated.is_none() && it.scopes.is_none());
        let kept = self.views.get(slug, version).filter(|_| exposure_only);
        let (spec, keys) = match &kept {
            Some(view) => {
                let mut rows: Vec<&curation::Row> = view.generated.rows.iter().collect();
                rows.sort_by_key(|it| it.position);
                (None, rows.into_iter().map(|it| it.key.clone()).collect::<Vec<String>>())
            }
            None => {
                let spec = parse(&settings, &document)?;
                let keys = spec.operations.iter().map(|it| it.key()).collect();
                (Some(spec), keys)
            }
        };
        // A set: one request may change every operation of a large document.
        let known: HashSet<&str> = keys.iter().map(String::as_str).collect();
        let before = settings.clone();
        let mut exposed: BTreeSet<String> = settings
            .expose
            .clone()
            .map_or_else(|| keys.iter().cloned().collect(), |it| it.into_iter().collect());
        let exposed_before = exposed.clone();
        for change in changes {
            if !known.contains(change.key.as_str()) {
                return Err(Error::Invalid(format!("no operation `{}` in the document", change.key)));
            }
            match change.exposed {
                Some(true) => {
                    exposed.insert(change.key.clone());
                }
                Some(false) => {
                    exposed.remove(&change.key);
                }
                None => {}
            }
            if let Some(curated) = &change.curated {
                if let Some(problem) = curated.problem() {
                    return Err(Error::Invalid(format!("{}: {problem}", change.key)));
                }
                if curated.is_empty() {
                    settings.tools.remove(&change.key);
                } else {
                    settings.tools.insert(change.key.clone(), curated.clone());
                }
            }
            if let Some(scopes) = &change.scopes {
                if scopes.is_empty() {
                    settings.tool_scopes.remove(&change.key);
                } else {
                    settings.tool_scopes.insert(change.key.clone(), scopes.clone());
                }
            }
        }
        settings.expose = Some(keys.iter().filter(|it| exposed.contains(*it)).cloned().collect());
        // Making every tool twice takes seconds for the largest documents: off the async workers.
        if let Some(mut parsed) = spec {
            let checked = settings.clone();
            tokio::task::spawn_blocking(move || names_stay_unique(&checked, &mut parsed))
                .await
                .map_err(|_| Error::Invalid("the document could not be read".to_owned()))??;
        }
        let version = self.save(&settings, document, version).await?;
        let mut seen = BTreeSet::new();
        let changed: Vec<&str> =
            changes.iter().map(|it| it.key.as_str()).filter(|it| seen.insert(*it)).collect();
        let detail = curation_detail(&changed, (&before, &exposed_before), (&settings, &exposed));
        self.audit(actor, "curate", Some(slug), &detail).await;
        // Other curations change the tools: their view is built when it is asked for, so that
        // a client that does not look (automation) does not pay for it.
        let view = kept.map(|view| {
            let exposure: Vec<(usize, bool)> =
                changed.iter().filter_map(|key| Some((view.index(key)?, exposed.contains(*key)))).collect();
            let view = view.with_exposure(version, &exposure);
            self.views.put(view.clone());
            view
        });
        let changed = changed.into_iter().map(str::to_owned).collect();
        Ok(Curated { version, view, changed })
    }

    /// Changes the backend settings of the draft; the server's new version.
    pub async fn configure(&self, actor: &str, slug: &str, change: Settings) -> Result<u64, Error> {
        let (mut settings, document, version) = self.editable(slug).await?;
        if let Some(url) = change.backend_url {
            settings.backend_url = Some(url);
        }
        if let Some(timeout) = change.timeout_secs {
            settings.timeout_secs = timeout;
        }
        if let Some(limit) = change.max_concurrency {
            settings.max_concurrency = limit;
        }
        if let Some(scopes) = change.scopes {
            settings.scopes = scopes;
        }
        if let Some(headers) = change.headers {
            settings.headers = headers;
        }
        if let Some(rate_limits) = change.rate_limits {
            settings.rate_limits = rate_limits;
        }
        if let Some(catalog_mode) = change.catalog_mode {
            settings.catalog_mode = catalog_mode;
        }
        if let Some(budget) = change.budget {
            settings.budget = budget;
        }
        if let Some(confirm) = change.confirm {
            settings.confirm = confirm;
        }
        if let Some(text) = change.policies {
            settings.policies = Some(text).filter(|it| !it.trim().is_empty());
        }
        let changed_credentials = change.credentials.is_some();
        if let Some(value) = change.credentials {
            settings.credentials = merge_credentials(&settings.credentials, value)?;
        }
        let settings = settings.validated(self.hosting.config().auth.mode)?;
        let version = self.save(&settings, document, version).await?;
        let detail = if changed_credentials { "settings and credentials" } else { "settings" };
        self.audit(actor, "configure", Some(slug), detail).await;
        Ok(version)
    }

    /// Serves the draft: its tools replace the old at once, and connected sessions are told.
    /// The store makes the draft the served copy first: other replicas serve what it serves.
    /// The tools are built off the async workers (a large document takes seconds), and the
    /// publication is given up when the process stops meanwhile.
    pub async fn publish(&self, actor: &str, slug: &str) -> Result<Published, Error> {
        let (settings, document, version) = self.editable(slug).await?;
        let hosting = self.hosting.clone();
        let built = tokio::task::spawn_blocking(move || {
            let spec = parse(&settings, &document)?;
            let prepared = hosting.prepare(settings, spec).map_err(Error::Invalid)?;
            let tools: Vec<ToolVersion> =
                prepared.tools().iter().map(|it| ToolVersion::of(&it.spec)).collect();
            Ok::<_, Error>((prepared, ToolVersion::encode(&tools)))
        });
        let (prepared, tools) = tokio::select! {
            built = built => built.map_err(|err| Error::Invalid(format!("publishing failed: {err}")))??,
            () = self.hosting.stopped() => return Err(Error::Stopping),
        };
        let publication = Publication { published_at: now(), published_by: actor, tools: &tools };
        let published = self.store.publish(slug, version, &publication).await?;
        self.hosting.install(prepared, published.map(|it| it.edition));
        let tools = self.hosting.get(slug).map_or(0, |it| it.host.current().catalog.tools.len());
        let generation = published.map(|it| it.generation);
        let detail = match generation {
            Some(generation) => format!("generation {generation}, {}", count(tools, "tool")),
            None => count(tools, "tool"),
        };
        self.audit(actor, "publish", Some(slug), &detail).await;
        Ok(Published { tools, generation })
    }

    /// The kept publications of `slug`, newest first.
    pub async fn history(&self, slug: &str) -> Result<Vec<Generation>, Error> {
        self.known(slug).await?;
        Ok(self.store.history(slug).await?)
    }

    /// Generation `number` of `slug` with its tools.
    pub async fn generation(&self, slug: &str, number: u64) -> Result<GenerationView, Error> {
        let history = self.history(slug).await?;
        let not_kept = || Error::NoGeneration { slug: slug.to_owned(), number };
        let generation = history.into_iter().find(|it| it.number == number).ok_or_else(not_kept)?;
        let bytes = self.store.generation_tools(slug, number).await?.ok_or_else(not_kept)?;
        let tools = ToolVersion::decode(&bytes).map_err(Error::Invalid)?;
        Ok(GenerationView { generation, tools })
    }

    /// What changed from `from` to `to`.
    pub async fn changes(&self, slug: &str, from: Side, to: Side) -> Result<Changes, Error> {
        let history = self.history(slug).await?;
        let published = history.first().map(|it| it.number);
        let (from_number, old) = self.side(slug, from, published).await?;
        let (to_number, new) = self.side(slug, to, published).await?;
        Ok(Changes {
            from: from_number,
            to: to_number,
            published,
            draft: self.store.get(Stage::Draft, slug).await?.is_some(),
            diff: changes::diff(&old, &new),
        })
    }

    /// The tools of one side of a comparison, and its generation's number (none for the draft).
    async fn side(
        &self,
        slug: &str,
        side: Side,
        published: Option<u64>,
    ) -> Result<(Option<u64>, Vec<ToolVersion>), Error> {
        match (side, published) {
            (Side::Generation(number), _) | (Side::Published, Some(number)) => {
                Ok((Some(number), self.generation(slug, number).await?.tools))
            }
            // Published before generations were kept, or from the configuration file: what is
            // served is the published side.
            (Side::Published, None) => {
                let served = self.hosting.get(slug).map(|it| it.host.current());
                let tools = served
                    .map(|it| it.catalog.tools.iter().map(|tool| ToolVersion::of(&tool.spec)).collect())
                    .unwrap_or_default();
                Ok((None, tools))
            }
            (Side::Draft, _) => {
                let (settings, document, _) = self.current(slug).await?;
                let tools = tokio::task::spawn_blocking(move || draft_tools(&settings, &document))
                    .await
                    .map_err(|err| Error::Invalid(format!("the draft could not be read: {err}")))??;
                Ok((None, tools))
            }
        }
    }

    /// Fails with [`Error::NotFound`] unless `slug` is a server, served or draft.
    async fn known(&self, slug: &str) -> Result<(), Error> {
        if self.hosting.get(slug).is_some() || self.hosting.failed().iter().any(|(it, _)| it == slug) {
            return Ok(());
        }
        self.current(slug).await.map(|_| ())
    }

    /// Stops serving the server and forgets it.
    pub async fn delete(&self, actor: &str, slug: &str) -> Result<(), Error> {
        self.editable(slug).await?;
        self.store.delete_server(slug).await?;
        self.hosting.remove(slug);
        self.views.forget(slug);
        self.audit(actor, "delete", Some(slug), "").await;
        Ok(())
    }

    pub async fn export(&self, actor: &str, slug: &str) -> Result<Export, Error> {
        let (settings, document, _) = self.current(slug).await?;
        let document = String::from_utf8(document)
            .map_err(|_| Error::Invalid("the document is not UTF-8 text".to_owned()))?;
        let mut settings = settings;
        // Exported secrets stay sealed: useless without this instance's keys.
        settings
            .credentials
            .seal(self.hosting.keyring(), slug)
            .map_err(|err| Error::Invalid(err.to_string()))?;
        self.audit(actor, "export", Some(slug), "").await;
        Ok(Export { settings, document })
    }

    /// Restores an export as the server's draft (publish to serve it).
    pub async fn restore(&self, actor: &str, export: Export) -> Result<Imported, Error> {
        let mut settings = export.settings;
        let slug = settings.slug.to_string();
        if self.hosting.config().servers.iter().any(|it| it.slug == slug.as_str()) {
            return Err(Error::Provisioned(slug));
        }
        // Fetching from private addresses is the operator's decision, not an administrator's:
        // through the API it would make mcpgate a port scanner of its own network.
        if settings.allow_private_spec_url {
            return Err(Error::Invalid(
                "allow_private_spec_url can be set in the configuration file only".to_owned(),
            ));
        }
        settings
            .credentials
            .open(self.hosting.keyring(), &slug)
            .map_err(|err| Error::Invalid(format!("credentials: {err}")))?;
        let bytes = export.document.into_bytes();
        let spec = parse(&settings, &bytes)?;
        let version = match self.expected {
            Some(version) => version,
            None => self.store.edition(&slug).await?,
        };
        self.save_import(actor, "restore", settings, &bytes, &spec, None, version).await
    }

    pub async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, Error> {
        Ok(self.store.audit_log(limit).await?)
    }

    /// The recent tool calls of a served server that `query` asks for, newest first (this
    /// process's only: each replica keeps its own).
    pub fn calls(&self, slug: &str, query: &calls::Query) -> Result<calls::Page, Error> {
        let hosted = self.hosting.get(slug).ok_or_else(|| Error::NotFound(slug.to_owned()))?;
        Ok(hosted.service.calls().query(query))
    }

    /// The users connected to the backend of `slug` (credentials mode `authorization_code`),
    /// without any token.
    pub async fn connections(&self, slug: &str) -> Result<Vec<serde_json::Value>, Error> {
        let snapshot = self.hosting.get(slug).ok_or_else(|| Error::NotFound(slug.to_owned()))?.host.current();
        let Some(consent) = snapshot.credentials.consent() else {
            return Err(Error::Invalid(format!(
                "server `{slug}` does not use credentials mode `authorization_code`"
            )));
        };
        let connections = consent.connections().await.map_err(Error::Invalid)?;
        Ok(connections
            .into_iter()
            .map(|it| {
                serde_json::json!({
                    "issuer": it.issuer,
                    "subject": it.subject,
                    "connected_at": it.connected_at,
                    "scopes": it.scopes,
                    "expires_at": it.expires_at,
                    "needs_consent": it.needs_consent,
                })
            })
            .collect())
    }

    /// Ends the connection of the user `issuer`/`subject` to the backend of `slug`, and revokes
    /// its tokens at the backend's authorization server when it can; whether there was one.
    pub async fn revoke_connection(
        &self,
        actor: &str,
        slug: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<bool, Error> {
        let snapshot = self.hosting.get(slug).ok_or_else(|| Error::NotFound(slug.to_owned()))?.host.current();
        let Some(consent) = snapshot.credentials.consent() else {
            return Err(Error::Invalid(format!(
                "server `{slug}` does not use credentials mode `authorization_code`"
            )));
        };
        let user = crate::credentials::User { issuer: issuer.to_owned(), subject: subject.to_owned() };
        let existed = consent.revoke(&user, actor).await.map_err(Error::Invalid)?;
        self.audit(actor, "revoke_connection", Some(slug), &format!("{subject} ({issuer})")).await;
        Ok(existed)
    }

    /// The draft, else the served copy, with the server's version.
    async fn current(&self, slug: &str) -> Result<(ServerSettings, Vec<u8>, u64), Error> {
        if let Some(draft) = self.load(Stage::Draft, slug).await? {
            return Ok(draft);
        }
        self.load(Stage::Live, slug).await?.ok_or_else(|| Error::NotFound(slug.to_owned()))
    }

    async fn load(&self, stage: Stage, slug: &str) -> Result<Option<(ServerSettings, Vec<u8>, u64)>, Error> {
        let Some(record) = self.store.get(stage, slug).await? else { return Ok(None) };
        let version = record.version;
        let (settings, document) = config::from_record(slug, record, self.hosting.keyring())?;
        Ok(Some((settings, document, version)))
    }

    /// Writes the draft, unless the server has changed since `version`; the new version.
    async fn save(&self, settings: &ServerSettings, document: Vec<u8>, version: u64) -> Result<u64, Error> {
        let record = config::to_record(settings, document, self.hosting.keyring())?;
        Ok(self.store.put_draft(settings.slug.as_str(), &record, version).await?)
    }

    /// Like [`Workspace::current`], for a server this workspace may change, and refused at once
    /// when the change was made on an older version.
    async fn editable(&self, slug: &str) -> Result<(ServerSettings, Vec<u8>, u64), Error> {
        if self.hosting.config().servers.iter().any(|it| it.slug == slug) {
            return Err(Error::Provisioned(slug.to_owned()));
        }
        let current = self.current(slug).await?;
        if self.expected.is_some_and(|it| it != current.2) {
            return Err(Error::Store(crate::store::Error::Conflict { current: current.2 }));
        }
        Ok(current)
    }

    async fn audit(&self, actor: &str, action: &str, server: Option<&str>, detail: &str) {
        let at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |it| it.as_secs());
        tracing::info!(target: "mcpgate::audit", actor, action, server, detail, "admin change");
        let entry = AuditEntry {
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            server: server.map(str::to_owned),
            detail: detail.to_owned(),
        };
        if let Err(err) = self.store.record(&entry).await {
            tracing::error!(%err, "audit entry not stored");
        }
    }
}

/// Names must stay unique once overrides apply. The namer gives a name an earlier tool took a
/// suffix rather than failing, so each tool's wanted name (curated, else the one it has without
/// curation) must be unique, and a curated name must come out as given.
fn names_stay_unique(settings: &ServerSettings, spec: &mut Spec) -> Result<(), Error> {
    let mut uncurated: BTreeMap<usize, String> = tools::generate(spec, &tools::Options::default())
        .tools
        .into_iter()
        .map(|it| (it.operation, it.name))
        .collect();
    crate::catalog::shape(settings, spec);
    let draft = tools::generate(spec, &tools::Options::default());
    let mut wanted_names = BTreeSet::new();
    for tool in &draft.tools {
        let key = spec.operations[tool.operation].key();
        let curated = settings.tools.get(&key).and_then(|it| it.name.clone());
        let wanted = curated.clone().or_else(|| uncurated.remove(&tool.operation)).unwrap_or_default();
        if !wanted_names.insert(wanted.clone()) {
            return Err(Error::Invalid(format!("two tools would be called `{wanted}`")));
        }
        if curated.is_some_and(|it| it != tool.name) {
            return Err(Error::Invalid(format!(
                "{key}: the tool would be called `{}`, not `{wanted}`",
                tool.name
            )));
        }
    }
    Ok(())
}

/// What a curation changed, for the audit log: `exposed getPet, listPets; renamed getPet to
/// fetch_pet; hid deletePet`, in the order of the changed operations `keys`, each side given as
/// its settings and exposed operations. Names the first [`AUDIT_CHANGES`] changes and counts the
/// rest, so that one request changing every operation of a large document stays one short line.
fn curation_detail(
    keys: &[&str],
    before: (&ServerSettings, &BTreeSet<String>),
    after: (&ServerSettings, &BTreeSet<String>),
) -> String {
    let none = ToolOverride::default();
    let (mut exposed, mut renamed, mut described, mut hinted, mut scoped, mut hidden) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for key in keys {
        let shown = clip(key);
        let (was, is) = (before.1.contains(*key), after.1.contains(*key));
        let old = before.0.tools.get(*key).unwrap_or(&none);
        let new = after.0.tools.get(*key).unwrap_or(&none);
        if !was && is {
            exposed.push(shown.clone());
        }
        if old.name != new.name {
            renamed.push(match &new.name {
                Some(name) => format!("{shown} to {}", clip(name)),
                None => format!("{shown} back to its generated name"),
            });
        }
        if old.description != new.description {
            described.push(shown.clone());
        }
        if old.annotations != new.annotations {
            hinted.push(shown.clone());
        }
        if before.0.tool_scopes.get(*key) != after.0.tool_scopes.get(*key) {
            scoped.push(shown.clone());
        }
        if was && !is {
            hidden.push(shown);
        }
    }
    // In this order: what is added, what is changed, what is hidden.
    let kinds = [
        ("exposed", exposed),
        ("renamed", renamed),
        ("changed the description of", described),
        ("changed the hints of", hinted),
        ("changed the scopes of", scoped),
        ("hid", hidden),
    ];
    let total: usize = kinds.iter().map(|(_, items)| items.len()).sum();
    if total == 0 {
        return "no change".to_owned();
    }
    let mut room = AUDIT_CHANGES;
    let mut parts = Vec::new();
    for (verb, items) in &kinds {
        let named: Vec<&str> = items.iter().take(room).map(String::as_str).collect();
        if !named.is_empty() {
            parts.push(format!("{verb} {}", named.join(", ")));
            room -= named.len();
        }
    }
    let rest = total - (AUDIT_CHANGES - room);
    if rest > 0 {
        let noun = if rest == 1 { "change" } else { "changes" };
        parts.push(format!("and {rest} more {noun}"));
    }
    parts.join("; ")
}

/// An operation key or tool name as the audit log quotes it: its first [`AUDIT_NAME_CHARS`]
/// characters, and `…` when it has more.
fn clip(name: &str) -> String {
    match name.char_indices().nth(AUDIT_NAME_CHARS) {
        Some((end, _)) => format!("{}…", &name[..end]),
        None => name.to_owned(),
    }
}

/// The tools the draft `settings` and `document` would serve, as [`crate::catalog::Catalog::build`]
/// makes them (shaped, under the server's budget, the exposed ones), without compiling their
/// validators or making their metrics.
fn draft_tools(settings: &ServerSettings, document: &[u8]) -> Result<Vec<ToolVersion>, Error> {
    let mut spec = parse(settings, document)?;
    crate::catalog::shape(settings, &mut spec);
    let generated = tools::generate(&spec, &crate::catalog::options(settings));
    let wanted: Option<HashSet<&str>> =
        settings.expose.as_ref().map(|it| it.iter().map(String::as_str).collect());
    Ok(generated
        .tools
        .iter()
        .filter(|tool| {
            let operation = &spec.operations[tool.operation];
            wanted.as_ref().is_none_or(|wanted| {
                [tool.name.clone(), operation.key(), operation.label()]
                    .iter()
                    .any(|it| wanted.contains(it.as_str()))
            })
        })
        .map(ToolVersion::of)
        .collect())
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |it| it.as_secs())
}

/// `1 tool`, `2 tools`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// The stored document of a server as a model.
fn parse(settings: &ServerSettings, document: &[u8]) -> Result<Spec, Error> {
    source::ingest(&settings.spec, document).map_err(|err| Error::Invalid(err.to_string()))
}

/// Reads and ingests a document (on a blocking thread: big documents take a while).
async fn read(document: Document, allow_private_url: bool) -> Result<(String, Vec<u8>, Spec), Error> {
    let invalid = |err: source::Error| Error::Invalid(err.to_string());
    match document {
        Document::Url(url) => {
            let limits = Limits { allow_private_url, ..Limits::default() };
            let name = url.to_string();
            let loaded = source::load(&Source::Url(url), &limits).await.map_err(invalid)?;
            Ok((name, loaded.document, loaded.spec))
        }
        Document::Bytes { name, bytes } => {
            let (bytes, spec) = tokio::task::spawn_blocking(move || {
                let spec = source::ingest(&name, &bytes);
                (bytes, spec.map(|spec| (name, spec)))
            })
            .await
            .map_err(|_| Error::Invalid("the document could not be read".to_owned()))?;
            let (name, spec) = spec.map_err(invalid)?;
            Ok((name, bytes, spec))
        }
    }
}

/// Added, removed and changed operations (by key; changed: a different tool definition).
fn diff(old: &Spec, new: &Spec) -> Diff {
    let definitions = |spec: &Spec| -> BTreeMap<String, String> {
        let generated = tools::generate(spec, &tools::Options::default());
        let mut map: BTreeMap<String, String> =
            spec.operations.iter().map(|it| (it.key(), String::new())).collect();
        for tool in &generated.tools {
            let definition = serde_json::to_string(&tool_definition(tool)).unwrap_or_default();
            map.insert(spec.operations[tool.operation].key(), definition);
        }
        map
    };
    let (old, new) = (definitions(old), definitions(new));
    let mut diff = Diff::default();
    for (key, definition) in &new {
        match old.get(key) {
            None => diff.added.push(key.clone()),
            Some(previous) if previous != definition => diff.changed.push(key.clone()),
            Some(_) => {}
        }
    }
    diff.removed = old.keys().filter(|it| !new.contains_key(*it)).cloned().collect();
    diff
}

/// The settings as shown: no secret, only whether it is set.
fn settings_view(settings: &ServerSettings) -> Settings {
    Settings {
        backend_url: settings.backend_url.clone(),
        timeout_secs: Some(settings.timeout_secs),
        max_concurrency: Some(settings.max_concurrency),
        scopes: Some(settings.scopes.clone()),
        headers: Some(settings.headers.clone()),
        rate_limits: Some(settings.rate_limits.clone()),
        credentials: Some(redacted(&settings.credentials)),
        catalog_mode: Some(settings.catalog_mode),
        budget: Some(settings.budget),
        policies: settings.policies.clone(),
        confirm: Some(settings.confirm.clone()),
    }
}

/// Secret fields of the credentials settings.
const SECRET_FIELDS: [&str; 4] = ["value", "password", "client_secret", "private_key"];

fn redacted(credentials: &CredentialsConfig) -> Value {
    let mut shown = credentials.clone();
    let placeholder = crate::secrets::Secret::new("mcpgate-sealed:redacted");
    shown.replace_secrets(&placeholder);
    let mut value = serde_json::to_value(&shown).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        for field in SECRET_FIELDS {
            if let Some(it) = map.get_mut(field)
                && !it.is_null()
            {
                *it = Value::String("(set)".to_owned());
            }
        }
    }
    value
}

/// The new credentials, with the current secrets kept where the change leaves them out (secrets
/// are write-only, so a form cannot send them back).
fn merge_credentials(current: &CredentialsConfig, change: Value) -> Result<CredentialsConfig, Error> {
    let Value::Object(mut change) = change else {
        return Err(Error::Invalid("credentials must be an object".to_owned()));
    };
    for field in SECRET_FIELDS {
        if change.get(field).is_some_and(|it| it.is_null() || it == "" || it == "(set)") {
            change.remove(field);
        }
    }
    let mut merged: CredentialsConfig = serde_json::from_value(Value::Object(change.clone()))
        .map_err(|err| Error::Invalid(format!("credentials: {err}")))?;
    merged.keep_secrets_from(current, |field| !change.contains_key(field));
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ServerSettings {
        ServerSettings::new(Slug::parse("pets").unwrap(), "pets.yaml".to_owned())
    }

    fn set(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|it| (*it).to_owned()).collect()
    }

    #[test]
    fn the_curation_entry_says_what_changed() {
        let before = settings();
        let mut after = settings();
        after.tools.insert(
            "getPet".to_owned(),
            ToolOverride { name: Some("fetch_pet".to_owned()), ..ToolOverride::default() },
        );
        after.tools.insert(
            "listPets".to_owned(),
            ToolOverride { description: Some("All.".to_owned()), ..ToolOverride::default() },
        );
        after.tool_scopes.insert("listPets".to_owned(), vec!["pets:read".to_owned()]);
        let keys = ["getPet", "listPets", "deletePet", "createPet"];
        let detail = curation_detail(
            &keys,
            (&before, &set(&["deletePet", "createPet"])),
            (&after, &set(&["getPet", "listPets", "createPet"])),
        );
        assert_eq!(
            detail,
            "exposed getPet, listPets; renamed getPet to fetch_pet; changed the description of listPets; \
             changed the scopes of listPets; hid deletePet"
        );
        // Back again: the name is the generated one, the rest as it was.
        let detail = curation_detail(
            &keys,
            (&after, &set(&["getPet", "listPets", "createPet"])),
            (&before, &set(&["deletePet", "createPet"])),
        );
        assert_eq!(
            detail,
            "exposed deletePet; renamed getPet back to its generated name; changed the description of \
             listPets; changed the scopes of listPets; hid getPet, listPets"
        );
        let same =
            curation_detail(&["createPet"], (&before, &set(&["createPet"])), (&before, &set(&["createPet"])));
        assert_eq!(same, "no change");
    }

    #[test]
    fn the_curation_entry_stays_short() {
        let keys: Vec<String> = (0..25).map(|it| format!("op{it:02}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (none, all) = (set(&[]), set(&keys));
        let detail = curation_detail(&keys, (&settings(), &none), (&settings(), &all));
        let named: Vec<&str> = keys[..20].to_vec();
        assert_eq!(detail, format!("exposed {}; and 5 more changes", named.join(", ")));
        let detail = curation_detail(&keys[..21], (&settings(), &none), (&settings(), &all));
        assert!(detail.ends_with("op19; and 1 more change"), "{detail}");
        let long = "GET /".to_owned() + &"a".repeat(500);
        let detail = curation_detail(&[&long], (&settings(), &none), (&settings(), &set(&[&long])));
        assert_eq!(detail.chars().count(), "exposed ".len() + AUDIT_NAME_CHARS + 1, "{detail}");
        assert!(detail.ends_with("a…"), "{detail}");
    }

    #[test]
    fn counts_are_singular_or_plural() {
        assert_eq!(
            (count(0, "tool"), count(1, "tool"), count(2, "tool")),
            ("0 tools".to_owned(), "1 tool".to_owned(), "2 tools".to_owned())
        );
    }
}

//! Reads the JSON tree of a document set into the normalized model. Shared by all versions;
//! what only Swagger 2.0 has lives in `swagger2`.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::node::{Node, Object};

use super::documents::{DocId, Documents, escape_token};
use super::model::*;
use super::swagger2;

pub(super) fn read(documents: Documents, version: Version, version_text: String) -> Spec {
    let mut reader = Reader { docs: &documents, version, skipped: Vec::new(), warnings: Vec::new() };
    let root = &documents.entry().root;
    let info = reader.info(root);
    let servers = match version {
        Version::Swagger2 => swagger2::servers(root),
        _ => reader.servers(DocId::ENTRY, root.get("servers"), "/servers"),
    };
    let security_schemes = reader.security_schemes(root);
    let security = reader.security(root.get("security"), &loc(DocId::ENTRY, "/security".into()));
    let operations = reader.paths(root, &servers, &security);
    let (skipped, warnings) = (reader.skipped, reader.warnings);
    Spec {
        version,
        version_text,
        format: documents.entry().format,
        info,
        servers,
        security_schemes,
        operations,
        skipped,
        warnings,
        documents,
    }
}

fn loc(doc: DocId, pointer: String) -> Location {
    Location { doc, pointer }
}

pub(super) struct Reader<'a> {
    pub(super) docs: &'a Documents,
    pub(super) version: Version,
    pub(super) skipped: Vec<Skipped>,
    pub(super) warnings: Vec<Issue>,
}

/// An operation object being read, with where its parts resolve.
pub(super) struct OperationSource<'a> {
    pub(super) doc: DocId,
    pub(super) value: &'a Object,
    pub(super) location: Location,
}

impl<'a> Reader<'a> {
    pub(super) fn warn(&mut self, location: &Location, message: impl Into<String>) {
        self.warnings.push(Issue { location: location.clone(), message: message.into() });
    }

    fn info(&mut self, root: &Node) -> Info {
        let info = root.get("info");
        let field = |key: &str| info.and_then(|it| it.get(key)).and_then(Node::as_str);
        Info {
            title: field("title").unwrap_or("Untitled API").to_owned(),
            version: field("version").unwrap_or_default().to_owned(),
            description: field("description").map(str::to_owned),
        }
    }

    fn servers(&mut self, doc: DocId, value: Option<&Node>, pointer: &str) -> Vec<Server> {
        let Some(Node::Array(items)) = value else {
            return Vec::new();
        };
        let mut servers = Vec::new();
        for (idx, item) in items.iter().enumerate() {
            let Some(url) = item.get("url").and_then(Node::as_str) else {
                self.warn(&loc(doc, format!("{pointer}/{idx}")), "server has no `url`; ignored");
                continue;
            };
            let variables = item
                .get("variables")
                .and_then(Node::as_object)
                .into_iter()
                .flatten()
                .map(|(name, var)| ServerVariable {
                    name: name.to_owned(),
                    default: var.get("default").map(scalar_text).unwrap_or_default(),
                    allowed: var
                        .get("enum")
                        .and_then(Node::as_array)
                        .into_iter()
                        .flatten()
                        .map(scalar_text)
                        .collect(),
                })
                .collect();
            servers.push(Server {
                url: url.to_owned(),
                description: item.get("description").and_then(Node::as_str).map(str::to_owned),
                variables,
            });
        }
        servers
    }

    fn security_schemes(&mut self, root: &Node) -> Vec<SecurityScheme> {
        let (schemes, pointer) = match self.version {
            Version::Swagger2 => (root.get("securityDefinitions"), "/securityDefinitions".to_owned()),
            _ => (
                root.get("components").and_then(|it| it.get("securitySchemes")),
                "/components/securitySchemes".to_owned(),
            ),
        };
        let Some(Node::Object(schemes)) = schemes else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, value) in schemes.iter() {
            let location = loc(DocId::ENTRY, format!("{pointer}/{}", escape_token(name)));
            let value = match self.docs.deref(DocId::ENTRY, value) {
                Ok((_, value, _)) => value,
                Err(err) => {
                    self.warn(&location, format!("security scheme ignored: {err}"));
                    continue;
                }
            };
            let text = |key: &str| value.get(key).and_then(Node::as_str).unwrap_or_default();
            let kind = match text("type") {
                "apiKey" => match ParamLocation::parse(text("in")) {
                    Some(location) if !text("name").is_empty() => {
                        SecurityKind::ApiKey { name: text("name").to_owned(), location }
                    }
                    _ => {
                        self.warn(&location, "apiKey scheme without a valid `name` and `in`");
                        continue;
                    }
                },
                "http" => SecurityKind::Http { scheme: text("scheme").to_ascii_lowercase() },
                "basic" => SecurityKind::Http { scheme: "basic".to_owned() },
                "oauth2" => {
                    // Where users approve: OpenAPI 3's `flows.authorizationCode`, Swagger 2.0's
                    // `accessCode` flow.
                    let flow = value
                        .get("flows")
                        .and_then(|it| it.get("authorizationCode"))
                        .or_else(|| (text("flow") == "accessCode").then_some(value));
                    let url =
                        |key: &str| flow.and_then(|it| it.get(key)).and_then(Node::as_str).map(str::to_owned);
                    SecurityKind::OAuth2 {
                        authorization_url: url("authorizationUrl"),
                        token_url: url("tokenUrl"),
                    }
                }
                "openIdConnect" => SecurityKind::OpenIdConnect,
                "mutualTLS" => SecurityKind::MutualTls,
                other => SecurityKind::Other(other.to_owned()),
            };
            out.push(SecurityScheme { name: name.to_owned(), kind });
        }
        out
    }

    fn security(&mut self, value: Option<&Node>, location: &Location) -> Vec<SecurityRequirement> {
        let Some(value) = value else {
            return Vec::new();
        };
        let Node::Array(items) = value else {
            self.warn(location, "`security` is not a list; ignored");
            return Vec::new();
        };
        items
            .iter()
            .filter_map(Node::as_object)
            .map(|alternative| SecurityRequirement {
                schemes: alternative
                    .iter()
                    .map(|(name, scopes)| {
                        let scopes = scopes.as_array().into_iter().flatten();
                        (name.to_owned(), scopes.filter_map(Node::as_str).map(str::to_owned).collect())
                    })
                    .collect(),
            })
            .collect()
    }

    /// Webhooks are requests the API sends, not operations a tool could call: said, so that an
    /// administrator does not look for them among the tools.
    fn webhooks(&mut self, root: &Node) {
        for field in ["webhooks", "x-webhooks"] {
            let Some(Node::Object(webhooks)) = root.get(field) else { continue };
            if webhooks.is_empty() {
                continue;
            }
            let names: Vec<&str> = webhooks.keys().take(5).collect();
            let more = webhooks.len() - names.len();
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            self.warn(
                &loc(DocId::ENTRY, format!("/{field}")),
                format!(
                    "webhooks are requests the API sends, not operations: no tool for {}{more}",
                    names.join(", ")
                ),
            );
        }
    }

    fn paths(&mut self, root: &Node, servers: &[Server], security: &[SecurityRequirement]) -> Vec<Operation> {
        self.webhooks(root);
        let mut operations = Vec::new();
        let paths = match root.get("paths") {
            None => return operations,
            Some(Node::Object(paths)) => paths,
            Some(_) => {
                self.warn(&loc(DocId::ENTRY, "/paths".into()), "`paths` is not an object");
                return operations;
            }
        };
        for (path, item) in paths.iter() {
            if path.starts_with("x-") {
                continue;
            }
            let item_location = loc(DocId::ENTRY, format!("/paths/{}", escape_token(path)));
            let (item_doc, item, item_target) = match self.docs.deref(DocId::ENTRY, item) {
                Ok((doc, Node::Object(item), target)) => (doc, item, target),
                Ok(_) => {
                    self.warn(&item_location, "path item is not an object; its operations are unknown");
                    continue;
                }
                Err(err) => {
                    let message = format!("path item unreadable, its operations are unknown: {err}");
                    self.warn(&item_location, message);
                    continue;
                }
            };
            let item_servers = match item.get("servers") {
                Some(value) => {
                    let pointer = format!("{}/servers", item_location.pointer);
                    self.servers(item_doc, Some(value), &pointer)
                }
                None => servers.to_vec(),
            };
            for method in Method::ALL {
                let Some(value) = item.get(method.key()) else {
                    continue;
                };
                let location = loc(DocId::ENTRY, format!("{}/{}", item_location.pointer, method.key()));
                let label = format!("{} {path}", method.as_str());
                let (doc, value) = match self.docs.deref(item_doc, value) {
                    Ok((doc, Node::Object(value), _)) => (doc, value),
                    Ok(_) => {
                        self.skip(label, location, "the operation is not an object".to_owned());
                        continue;
                    }
                    Err(err) => {
                        self.skip(label, location, format!("the operation is unreadable: {err}"));
                        continue;
                    }
                };
                let source = OperationSource { doc, value, location };
                // Where the path item's own parts are written: the `$ref` target, if it was one.
                let item_at = item_target.clone().map_or(item_location.clone(), |it| loc(it.doc, it.pointer));
                let context =
                    PathContext { path, item_doc, item, item_at: &item_at, servers: &item_servers, security };
                if let Some(operation) = self.operation(method, &source, &context) {
                    operations.push(operation);
                }
            }
        }
        operations
    }

    fn skip(&mut self, operation: String, location: Location, reason: String) {
        self.skipped.push(Skipped { operation, location, reason });
    }

    fn operation(
        &mut self,
        method: Method,
        source: &OperationSource<'_>,
        context: &PathContext<'_>,
    ) -> Option<Operation> {
        let value = source.value;
        let label = format!("{} {}", method.as_str(), context.path);
        let text = |key: &str| value.get(key).and_then(Node::as_str).map(str::to_owned);
        let template = match path_template(context.path) {
            Ok(names) => names,
            Err(reason) => {
                self.skip(label, source.location.clone(), reason);
                return None;
            }
        };
        if value.get("x-mcp-hidden").and_then(Node::as_bool) == Some(true) {
            self.skip(label, source.location.clone(), "hidden by `x-mcp-hidden`".to_owned());
            return None;
        }
        let mut parameters = Vec::new();
        let mut form_fields = Vec::new();
        let mut body_param = None;
        let lists = [
            (context.item_doc, context.item.get("parameters"), context.item_at, "path item"),
            (source.doc, value.get("parameters"), &source.location, "operation"),
        ];
        for (doc, list, owner_at, owner) in lists {
            let Some(list) = list else { continue };
            let Node::Array(list) = list else {
                self.warn(&source.location, format!("{owner} `parameters` is not a list; ignored"));
                continue;
            };
            for (idx, raw) in list.iter().enumerate() {
                let at = loc(owner_at.doc, format!("{}/parameters/{idx}", owner_at.pointer));
                let (param_doc, param, target) = match self.docs.deref(doc, raw) {
                    Ok(it) => it,
                    Err(err) => {
                        self.warn(&at, format!("parameter ignored: {err}"));
                        continue;
                    }
                };
                let at = target.map_or(at, |it| loc(it.doc, it.pointer));
                let read = match self.version {
                    Version::Swagger2 => swagger2::parameter(self, param_doc, param, &at),
                    _ => self.parameter(param_doc, param, &at).map(ParamRead::Plain),
                };
                match read {
                    Some(ParamRead::Plain(param)) => {
                        parameters.retain(|it: &Parameter| {
                            (it.location, &it.name) != (param.location, &param.name)
                        });
                        parameters.push(param);
                    }
                    Some(ParamRead::Body(body)) => body_param = Some(body),
                    Some(ParamRead::FormField(field)) => {
                        form_fields.retain(|it: &swagger2::FormField| it.name != field.name);
                        form_fields.push(field);
                    }
                    None => {}
                }
            }
        }
        self.reconcile_path_parameters(&mut parameters, &template, &source.location);
        let request_body = match self.version {
            Version::Swagger2 => swagger2::request_body(self, source, body_param, form_fields),
            _ => self.request_body(source),
        };
        let responses = match self.version {
            Version::Swagger2 => swagger2::responses(self, source),
            _ => self.responses(source),
        };
        let security = match value.get("security") {
            Some(own) => {
                let at = loc(source.location.doc, format!("{}/security", source.location.pointer));
                self.security(Some(own), &at)
            }
            None => context.security.to_vec(),
        };
        let servers = match (self.version, value.get("servers")) {
            (Version::Swagger2, _) | (_, None) => context.servers.to_vec(),
            (_, Some(own)) => {
                let pointer = format!("{}/servers", source.location.pointer);
                self.servers(source.doc, Some(own), &pointer)
            }
        };
        Some(Operation {
            method,
            path: context.path.to_owned(),
            location: source.location.clone(),
            operation_id: text("operationId").filter(|it| !it.trim().is_empty()),
            summary: text("summary"),
            description: text("description"),
            tags: value
                .get("tags")
                .and_then(Node::as_array)
                .into_iter()
                .flatten()
                .filter_map(Node::as_str)
                .map(str::to_owned)
                .collect(),
            deprecated: value.get("deprecated").and_then(Node::as_bool).unwrap_or(false),
            parameters,
            request_body,
            responses,
            security,
            servers,
            mcp: McpExtensions {
                name: text("x-mcp-name"),
                description: text("x-mcp-description"),
                annotations: match value.get("x-mcp-annotations").map(Node::to_value) {
                    Some(Value::Object(map)) => map,
                    _ => serde_json::Map::new(),
                },
            },
        })
    }

    /// Every `{name}` in the path gets a path parameter (synthesized as a string when the
    /// document forgot it); path parameters the template does not use are dropped.
    fn reconcile_path_parameters(
        &mut self,
        parameters: &mut Vec<Parameter>,
        template: &[String],
        location: &Location,
    ) {
        let mut unused = Vec::new();
        parameters.retain(|it| {
            let used = it.location != ParamLocation::Path || template.contains(&it.name);
            if !used {
                unused.push(it.name.clone());
            }
            used
        });
        for name in unused {
            self.warn(location, format!("path parameter `{name}` is not in the path; ignored"));
        }
        for name in template {
            let declared = parameters.iter().any(|it| it.location == ParamLocation::Path && &it.name == name);
            if declared {
                if let Some(it) = parameters.iter_mut().find(|it| &it.name == name) {
                    it.required = true;
                }
                continue;
            }
            self.warn(location, format!("path parameter `{name}` is not declared; read as a string"));
            parameters.push(Parameter {
                name: name.clone(),
                location: ParamLocation::Path,
                required: true,
                description: None,
                deprecated: false,
                schema: Schema {
                    doc: location.doc,
                    pointer: location.pointer.clone(),
                    value: Node::from(json!({"type": "string"})),
                },
                style: Style::Simple,
                explode: false,
                allow_reserved: false,
                media_type: None,
            });
        }
    }

    fn parameter(&mut self, doc: DocId, param: &Node, at: &Location) -> Option<Parameter> {
        let (name, location) = self.name_and_location(param, at)?;
        let (schema, media_type) = if let Some(schema) = param.get("schema") {
            (Schema { doc, pointer: format!("{}/schema", at.pointer), value: schema.clone() }, None)
        } else if let Some((media_type, content)) =
            param.get("content").and_then(Node::as_object).and_then(|it| it.iter().next())
        {
            let pointer = format!("{}/content/{}/schema", at.pointer, escape_token(media_type));
            let value = content.get("schema").cloned().unwrap_or_else(|| Node::from(json!({})));
            (Schema { doc, pointer, value }, Some(media_type.to_owned()))
        } else {
            self.warn(
                at,
                format!("parameter `{name}` has neither `schema` nor `content`; any value accepted"),
            );
            (Schema { doc, pointer: at.pointer.clone(), value: Node::from(json!({})) }, None)
        };
        let style = match param.get("style").and_then(Node::as_str) {
            None => Style::default_for(location),
            Some(text) => Style::parse(text).unwrap_or_else(|| {
                self.warn(at, format!("unknown style `{text}`; the default is used"));
                Style::default_for(location)
            }),
        };
        let explode = param.get("explode").and_then(Node::as_bool).unwrap_or(style == Style::Form);
        Some(Parameter {
            required: location == ParamLocation::Path
                || param.get("required").and_then(Node::as_bool).unwrap_or(false),
            description: param.get("description").and_then(Node::as_str).map(str::to_owned),
            deprecated: param.get("deprecated").and_then(Node::as_bool).unwrap_or(false),
            schema,
            style,
            explode,
            allow_reserved: param.get("allowReserved").and_then(Node::as_bool).unwrap_or(false),
            media_type,
            name,
            location,
        })
    }

    pub(super) fn name_and_location(
        &mut self,
        param: &Node,
        at: &Location,
    ) -> Option<(String, ParamLocation)> {
        let name = param.get("name").and_then(Node::as_str).filter(|it| !it.is_empty());
        let place = param.get("in").and_then(Node::as_str);
        match (name, place.and_then(ParamLocation::parse)) {
            (Some(name), Some(location)) => Some((name.to_owned(), location)),
            (None, _) => {
                self.warn(at, "parameter without a `name`; ignored");
                None
            }
            (Some(name), None) => {
                let place = place.unwrap_or("nothing");
                self.warn(at, format!("parameter `{name}` is in `{place}`; ignored"));
                None
            }
        }
    }

    fn request_body(&mut self, source: &OperationSource<'_>) -> Option<RequestBody> {
        let raw = source.value.get("requestBody")?;
        let at = loc(source.location.doc, format!("{}/requestBody", source.location.pointer));
        let (doc, body, target) = match self.docs.deref(source.doc, raw) {
            Ok(it) => it,
            Err(err) => {
                self.warn(&at, format!("request body unreadable; any JSON body accepted: {err}"));
                let schema = Schema { doc: source.doc, pointer: at.pointer, value: Node::from(json!({})) };
                let content = vec![MediaType {
                    name: "application/json".into(),
                    schema: Some(schema),
                    encoding: Vec::new(),
                }];
                return Some(RequestBody { description: None, required: false, content });
            }
        };
        let at = target.map_or(at, |it| loc(it.doc, it.pointer));
        Some(RequestBody {
            description: body.get("description").and_then(Node::as_str).map(str::to_owned),
            required: body.get("required").and_then(Node::as_bool).unwrap_or(false),
            content: self.content(doc, body.get("content"), &at),
        })
    }

    fn responses(&mut self, source: &OperationSource<'_>) -> Vec<Response> {
        let Some(Node::Object(responses)) = source.value.get("responses") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (status, raw) in responses.iter() {
            if status.starts_with("x-") {
                continue;
            }
            let at = loc(
                source.location.doc,
                format!("{}/responses/{}", source.location.pointer, escape_token(status)),
            );
            let (doc, response, target) = match self.docs.deref(source.doc, raw) {
                Ok(it) => it,
                Err(err) => {
                    self.warn(&at, format!("response ignored: {err}"));
                    continue;
                }
            };
            let at = target.map_or(at, |it| loc(it.doc, it.pointer));
            out.push(Response {
                status: status.to_owned(),
                description: response.get("description").and_then(Node::as_str).map(str::to_owned),
                content: self.content(doc, response.get("content"), &at),
            });
        }
        out
    }

    fn content(&mut self, doc: DocId, content: Option<&Node>, at: &Location) -> Vec<MediaType> {
        let Some(Node::Object(content)) = content else {
            return Vec::new();
        };
        content
            .iter()
            .map(|(name, media)| {
                let pointer = format!("{}/content/{}", at.pointer, escape_token(name));
                let schema = media.get("schema").map(|value| Schema {
                    doc,
                    pointer: format!("{pointer}/schema"),
                    value: value.clone(),
                });
                MediaType { name: name.to_owned(), schema, encoding: encoding(media.get("encoding")) }
            })
            .collect()
    }
}

pub(super) enum ParamRead {
    Plain(Parameter),
    /// Swagger 2.0 `in: body`.
    Body(swagger2::BodyParam),
    /// Swagger 2.0 `in: formData`.
    FormField(swagger2::FormField),
}

pub(super) struct PathContext<'a> {
    path: &'a str,
    item_doc: DocId,
    item: &'a Object,
    item_at: &'a Location,
    servers: &'a [Server],
    security: &'a [SecurityRequirement],
}

fn encoding(value: Option<&Node>) -> Vec<(String, Encoding)> {
    let Some(Node::Object(map)) = value else {
        return Vec::new();
    };
    map.iter()
        .map(|(name, it)| {
            let encoding = Encoding {
                content_type: it.get("contentType").and_then(Node::as_str).map(str::to_owned),
                style: it.get("style").and_then(Node::as_str).and_then(Style::parse),
                explode: it.get("explode").and_then(Node::as_bool),
                allow_reserved: it.get("allowReserved").and_then(Node::as_bool).unwrap_or(false),
            };
            (name.to_owned(), encoding)
        })
        .collect()
}

/// The variable names of a path template, in order; an error for unbalanced braces.
fn path_template(path: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut seen = BTreeSet::new();
    let mut rest = path;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err("the path template has an unmatched `}`".to_owned());
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("the path template has an unclosed `{`")?;
        let name = &after[..close];
        if name.is_empty() || name.contains('{') {
            return Err("the path template has an empty or nested `{}`".to_owned());
        }
        if seen.insert(name.to_owned()) {
            names.push(name.to_owned());
        }
        rest = &after[close + 1..];
    }
    Ok(names)
}

/// A scalar as text (server variable defaults may be written as numbers).
pub(super) fn scalar_text(value: &Node) -> String {
    match value {
        Node::String(it) => it.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::path_template;

    #[test]
    fn path_templates() {
        assert_eq!(path_template("/a/{id}/b/{x}.json").unwrap(), ["id", "x"]);
        assert_eq!(path_template("/a").unwrap(), Vec::<String>::new());
        assert!(path_template("/a/{id").is_err());
        assert!(path_template("/a/id}").is_err());
        assert!(path_template("/a/{}").is_err());
    }
}

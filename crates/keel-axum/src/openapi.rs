//! The OpenAPI 3.1 document of a set of resources, made from what the derive
//! knows of each field ([`keel::FieldSchema`]), and the routes that serve it.

use axum::Router;
use axum::http::header;
use bytes::Bytes;
use keel::{FieldSchema, PageConfig, QueryLimits, Resource, SchemaType, View};
use serde_json::{Map, Value, json};
use utoipa::openapi::OpenApi;

use crate::Operation;

/// Builds the OpenAPI 3.1 document of an API: each resource's routes (as
/// [`resource`](crate::resource) serves them), its schemas (the row, the
/// create input, the patch, a list page), the error envelope, and the health
/// and metrics routes.
///
/// ```
/// # mod product {
/// #     use sea_orm::entity::prelude::*;
/// #     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize, keel::Service)]
/// #     #[sea_orm(table_name = "products")]
/// #     pub struct Model { #[sea_orm(primary_key)] pub id: i64, pub sku: String }
/// #     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
/// #     pub enum Relation {}
/// #     impl ActiveModelBehavior for ActiveModel {}
/// # }
/// let doc = keel_axum::ApiDoc::new("shop", "1.0.0")
///     .resource::<product::Entity>()
///     .ops()
///     .build();
/// assert!(doc.paths.paths.contains_key("/products/{id}"));
/// ```
#[derive(Clone, Debug)]
pub struct ApiDoc {
    title: String,
    version: String,
    description: Option<String>,
    paths: Map<String, Value>,
    schemas: Map<String, Value>,
    bearer: bool,
    rate_limited: bool,
    page: PageConfig,
    limits: QueryLimits,
    view: View,
}

impl ApiDoc {
    /// An empty document with the API's title and version.
    pub fn new(title: impl Into<String>, version: impl Into<String>) -> Self {
        let mut schemas = Map::new();
        schemas.insert("Error".into(), error_schema());
        schemas.insert("Count".into(), count_schema());
        ApiDoc {
            title: title.into(),
            version: version.into(),
            description: None,
            paths: Map::new(),
            schemas,
            bearer: false,
            rate_limited: false,
            page: PageConfig::default(),
            limits: QueryLimits::default(),
            view: View::All,
        }
    }

    /// Documents the resources added after it as callers with `view` see
    /// them: in [`View::Public`] their private fields
    /// (`#[service(private)]`) are absent from the row schemas, from the
    /// create and patch inputs (such a caller may not write them either:
    /// the routes refuse them as unknown fields) and from the fields
    /// `filter` and `order_by` take; a resource whose create needs a
    /// private field has no `POST` there (the route answers 403). In the
    /// default, [`View::All`], a private field is documented as optional in
    /// rows, saying who sees it, and in inputs, saying who may send it.
    /// [`docs_routes_by_view`] serves one document per view.
    #[must_use]
    pub fn view(mut self, view: View) -> Self {
        self.view = view;
        self
    }

    /// A description of the API (Markdown).
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Declares bearer-token authentication (`Authorization: Bearer ...`),
    /// required on the write operations.
    #[must_use]
    pub fn bearer_auth(mut self) -> Self {
        self.bearer = true;
        self
    }

    /// States the page sizes and filter limits of this configuration
    /// (`keel.config()`) instead of the defaults (page size 1-100, filters
    /// of 2048 characters).
    #[must_use]
    pub fn config(mut self, config: &keel::KeelConfig) -> Self {
        self.page = config.page;
        self.limits = config.limits;
        self
    }

    /// Declares a per-caller rate limit ([`RateLimit`](crate::RateLimit)):
    /// every operation may answer `429 RATE_LIMITED`.
    #[must_use]
    pub fn rate_limited(mut self) -> Self {
        self.rate_limited = true;
        self
    }

    /// An error response of the document: `description`, and the error
    /// envelope as its body (for routes of the application's own).
    pub fn error_response(description: &str) -> Value {
        json!({"description": description, "content": {"application/json": {"schema": reference("Error")}}})
    }

    /// The `id` path parameter of resource `E`: its key's type and bounds
    /// (for routes of the application's own).
    pub fn id_parameter<E: Resource>() -> Value {
        json!({"name": "id", "in": "path", "required": true, "schema": ResourceDoc::<E>::new().key_schema()})
    }

    /// The `If-Match` header parameter, with the grammar [`if_match`](crate::if_match) accepts.
    pub fn if_match_parameter() -> Value {
        json!({"name": "If-Match", "in": "header", "required": false,
            "schema": {"type": "string", "pattern": ETAG_PATTERN},
            "description": "Apply only if the row is at this version: its ETag (`\"3\"`, also `W/\"3\"` or `3`), or `*` for any version. Else 412 PRECONDITION_FAILED; 400 INVALID_ARGUMENT on a resource without a version."})
    }

    /// Adds the routes and schemas of resource `E`.
    #[must_use]
    pub fn resource<E: Resource>(self) -> Self {
        self.resource_only::<E>(&Operation::ALL)
    }

    /// Adds the routes of resource `E` that serve these operations (as
    /// [`Routes::only`](crate::Routes::only)), and its schemas.
    #[must_use]
    pub fn resource_only<E: Resource>(mut self, operations: &[Operation]) -> Self {
        let doc = ResourceDoc::<E>::in_view(self.view);
        for (name, schema) in doc.schemas() {
            self.schemas.insert(name, schema);
        }
        let many = E::PLURAL;
        let place = |op: Operation| match op {
            Operation::List => (format!("/{many}"), "get"),
            Operation::Create => (format!("/{many}"), "post"),
            Operation::Count => (format!("/{many}/count"), "get"),
            Operation::Get => (format!("/{many}/{{id}}"), "get"),
            Operation::Update => (format!("/{many}/{{id}}"), "patch"),
            Operation::Delete => (format!("/{many}/{{id}}"), "delete"),
            Operation::History => (format!("/{many}/{{id}}/history"), "get"),
            Operation::Restore => (format!("/{many}/{{id}}/restore"), "post"),
        };
        let served: Vec<(String, &str)> = operations
            .iter()
            .filter(|op| **op != Operation::Create || doc.can_create())
            .map(|op| place(*op))
            .collect();
        for (path, mut item) in doc.paths(self.bearer, &self.page, &self.limits) {
            if let Value::Object(methods) = &mut item {
                methods.retain(|method, _| served.iter().any(|(p, m)| *p == path && m == method));
                if methods.is_empty() {
                    continue;
                }
            }
            self = self.path(path, item);
        }
        self
    }

    /// Adds the routes of [`ops_routes`](crate::ops_routes): `/health`,
    /// `/health/started`, `/health/live`, `/health/ready`, `/metrics`; with
    /// [`bearer_auth`](Self::bearer_auth) (call it first), `/health` and
    /// `/metrics` need the token.
    #[must_use]
    pub fn ops(mut self) -> Self {
        let probe = |summary: &str, id: &str| {
            json!({"get": {
                "tags": ["operations"],
                "summary": summary,
                "operationId": id,
                "responses": {
                    "200": {"description": "yes", "content": {"application/json": {"schema": {"type": "object"}}}},
                    "503": {"description": "no", "content": {"application/json": {"schema": {"type": "object"}}}},
                },
            }})
        };
        let mut report = probe(
            "The health report: status, every check's state, latency and last error",
            "health",
        );
        if self.bearer {
            // What operators read: behind the token, unlike the probes.
            report["get"]["security"] = json!([{"bearer": []}]);
        }
        self.paths.insert("/health".into(), report);
        self.paths.insert(
            "/health/started".into(),
            probe(
                "Startup: whether the service has finished starting (liveness is asked only after)",
                "started",
            ),
        );
        self.paths.insert(
            "/health/live".into(),
            probe("Liveness: whether the process should be restarted", "live"),
        );
        self.paths.insert(
            "/health/ready".into(),
            probe("Readiness: whether the instance takes traffic", "ready"),
        );
        let mut metrics = json!({"get": {
            "tags": ["operations"],
            "summary": "Prometheus metrics (text exposition format)",
            "operationId": "metrics",
            "responses": {"200": {"description": "the metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }});
        if self.bearer {
            metrics["get"]["security"] = json!([{"bearer": []}]);
        }
        self.paths.insert("/metrics".into(), metrics);
        self
    }

    /// Adds the route of [`info_routes`](crate::info_routes), `/info`; with
    /// [`bearer_auth`](Self::bearer_auth) (call it first), it needs the token.
    #[must_use]
    pub fn info(mut self) -> Self {
        let mut info = json!({"get": {
            "tags": ["operations"],
            "summary": "The service's name, version, source revision, and the Keel it runs on",
            "operationId": "info",
            "responses": {"200": {"description": "the build", "content": {"application/json": {"schema": {
                "type": "object",
                "required": ["name", "version", "keel_version", "keel_features"],
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                    "revision": {"type": ["string", "null"], "description": "The source revision (a git commit), null when unknown."},
                    "keel_version": {"type": "string"},
                    "keel_features": {"type": "array", "items": {"type": "string"}},
                },
            }}}}},
        }});
        if self.bearer {
            info["get"]["security"] = json!([{"bearer": []}]);
        }
        self.paths.insert("/info".into(), info);
        self
    }

    /// Adds one path item of the application's own (an OpenAPI Path Item
    /// object as JSON), such as a route that is not a resource's.
    #[must_use]
    pub fn path(mut self, path: impl Into<String>, item: Value) -> Self {
        let path = path.into();
        match (self.paths.get_mut(&path), item) {
            (Some(Value::Object(existing)), Value::Object(more)) => existing.extend(more),
            (_, item) => {
                self.paths.insert(path, item);
            }
        }
        self
    }

    /// Adds one schema of the application's own under `#/components/schemas/{name}`.
    #[must_use]
    pub fn schema(mut self, name: impl Into<String>, schema: Value) -> Self {
        self.schemas.insert(name.into(), schema);
        self
    }

    /// Every operation lists the statuses any of them can answer: 400 when
    /// it takes a parameter or a body, 401 when it needs a bearer token,
    /// 429 under a rate limit, 500 and 503 always.
    fn common_responses(&self, paths: &mut Map<String, Value>) {
        for item in paths.values_mut() {
            let Value::Object(methods) = item else {
                continue;
            };
            for operation in methods.values_mut() {
                let takes_input = operation
                    .get("parameters")
                    .and_then(Value::as_array)
                    .is_some_and(|p| !p.is_empty())
                    || operation.get("requestBody").is_some();
                let secured = self.bearer
                    && operation
                        .get("security")
                        .and_then(Value::as_array)
                        .is_some_and(|s| !s.is_empty());
                let Some(Value::Object(responses)) = operation.get_mut("responses") else {
                    continue;
                };
                let mut add = |status: &str, description: &str| {
                    if !responses.contains_key(status) {
                        responses.insert(status.into(), Self::error_response(description));
                    }
                };
                if takes_input {
                    add(
                        "400",
                        "INVALID_ARGUMENT: a malformed parameter, header or body",
                    );
                }
                if secured {
                    add("401", "UNAUTHENTICATED: no valid bearer token");
                }
                if self.rate_limited {
                    add("429", "RATE_LIMITED: too many requests; see Retry-After");
                }
                add(
                    "500",
                    "INTERNAL: the body carries only the request id; the log has the cause",
                );
                add("503", "UNAVAILABLE: the database cannot be reached");
            }
        }
    }

    /// The document as JSON.
    pub fn to_json(&self) -> Value {
        let mut components = json!({ "schemas": self.schemas });
        if self.bearer {
            components["securitySchemes"] = json!({
                "bearer": {"type": "http", "scheme": "bearer"}
            });
        }
        let mut info = json!({ "title": self.title, "version": self.version });
        if let Some(d) = &self.description {
            info["description"] = json!(d);
        }
        let mut paths = self.paths.clone();
        self.common_responses(&mut paths);
        json!({
            "openapi": "3.1.0",
            "info": info,
            "paths": paths,
            "components": components,
        })
    }

    /// The document as utoipa's [`OpenApi`], to merge with documents of the
    /// application's own.
    ///
    /// # Panics
    ///
    /// Never for a document made by this builder from resources and
    /// [`ops`](Self::ops) (a test builds one with every field type the
    /// derive accepts); a path or schema of the application's own that is
    /// not a valid OpenAPI object makes it panic.
    pub fn build(&self) -> OpenApi {
        let mut json = self.to_json();
        typeless_for_utoipa(&mut json, false);
        serde_json::from_value(json)
            .expect("the document built from the resources is a valid OpenAPI object")
    }
}

/// The document as JSON, as [`to_json`](ApiDoc::to_json) writes it.
impl serde::Serialize for ApiDoc {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

/// utoipa's schema objects need a `type`; the "any value" schema `{}` is
/// its typeless `AnyValue`, read from `"type": null` and written back as
/// `{}`. Marks every schema object without a type, a reference or a
/// composition that way.
fn typeless_for_utoipa(value: &mut Value, is_schema: bool) {
    let Value::Object(map) = value else {
        if let Value::Array(items) = value {
            for item in items {
                typeless_for_utoipa(item, false);
            }
        }
        return;
    };
    if is_schema
        && !["type", "$ref", "oneOf", "anyOf", "allOf"]
            .iter()
            .any(|k| map.contains_key(*k))
    {
        map.insert("type".into(), Value::Null);
    }
    for (key, child) in map.iter_mut() {
        match key.as_str() {
            "schema" | "items" | "not" | "additionalProperties" => {
                typeless_for_utoipa(child, child.is_object());
            }
            "properties" | "schemas" => {
                if let Value::Object(schemas) = child {
                    for schema in schemas.values_mut() {
                        typeless_for_utoipa(schema, true);
                    }
                }
            }
            "oneOf" | "anyOf" | "allOf" => {
                if let Value::Array(schemas) = child {
                    for schema in schemas {
                        typeless_for_utoipa(schema, true);
                    }
                }
            }
            _ => typeless_for_utoipa(child, false),
        }
    }
}

/// `GET /openapi.json` and `/docs` as [`docs_routes`] serves them, with
/// one document per [`View`]: `full` (made with the default
/// [`ApiDoc::view`]) to callers `reveal` says see private fields, `public`
/// (made with `.view(View::Public)`) to the others. `reveal` is given the
/// request's [`Identity`](crate::Identity), if authentication set one; the
/// answer says `Vary: Authorization`.
///
/// ```no_run
/// # fn demo(full: keel_axum::ApiDoc, public: keel_axum::ApiDoc) {
/// let docs = keel_axum::docs_routes_by_view(&full, &public, |who| who.is_some());
/// # }
/// ```
pub fn docs_routes_by_view(
    full: impl serde::Serialize,
    public: impl serde::Serialize,
    reveal: impl Fn(Option<&crate::Identity>) -> bool + Clone + Send + Sync + 'static,
) -> Router {
    let full = Bytes::from(serde_json::to_vec(&full).unwrap_or_else(|_| b"null".to_vec()));
    let public = Bytes::from(serde_json::to_vec(&public).unwrap_or_else(|_| b"null".to_vec()));
    let document = move |identity: Option<axum::Extension<crate::Identity>>| {
        let json = if reveal(identity.as_ref().map(|axum::Extension(who)| who)) {
            full.clone()
        } else {
            public.clone()
        };
        async move {
            (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::VARY, "Authorization"),
                ],
                json,
            )
        }
    };
    Router::from(
        utoipa_swagger_ui::SwaggerUi::new("/docs")
            .config(utoipa_swagger_ui::Config::from("/openapi.json")),
    )
    .route("/openapi.json", axum::routing::get(document))
}

/// `GET /openapi.json` (the document, exactly as given) and `/docs` (an
/// interactive page, from assets built into the binary: no network at build
/// or run time). Takes an [`ApiDoc`] (`&doc`), utoipa's [`OpenApi`], or any
/// document as JSON.
pub fn docs_routes(openapi: impl serde::Serialize) -> Router {
    let json = serde_json::to_value(openapi).unwrap_or(Value::Null);
    utoipa_swagger_ui::SwaggerUi::new("/docs")
        .external_url_unchecked("/openapi.json", json)
        .into()
}

/// The grammar of the ETags `If-Match` and `If-None-Match` take (see
/// [`if_match`](crate::if_match)).
const ETAG_PATTERN: &str = r#"^(\*|(W/)?"[0-9]{1,18}"|[0-9]{1,18})$"#;

/// A pattern every valid `order_by` of these fields matches.
fn order_by_pattern(sortable: &[&str]) -> String {
    let names = sortable
        .iter()
        .map(|n| regex_escape(n))
        .collect::<Vec<_>>()
        .join("|");
    let key = format!(r"\s*({names})(\s+([aA][sS][cC]|[dD][eE][sS][cC]))?\s*");
    format!(r"^(\s*|{key}(,{key})*)$")
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

/// `order_line` → `OrderLine`.
fn type_name(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_uppercase().chain(chars).collect::<String>()
            })
        })
        .collect()
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "Every error: a stable `code` (such as `NOT_FOUND`, `VALIDATION_FAILED`, `INSUFFICIENT_STOCK`), a message safe to show, and details (the request id; for validation, one entry per field with a JSON pointer).",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["type", "code", "message", "details"],
            "properties": {
                "type": {"type": "string", "examples": ["validation"]},
                "code": {"type": "string", "examples": ["VALIDATION_FAILED"]},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }},
    })
}

fn count_schema() -> Value {
    json!({
        "type": "object",
        "required": ["count"],
        "properties": {"count": {"type": "integer", "format": "int64", "minimum": 0}},
    })
}

fn field_type(field: &FieldSchema) -> Value {
    let mut schema = match field.ty {
        SchemaType::Int32 => json!({"type": "integer", "format": "int32"}),
        SchemaType::Int64 => json!({"type": "integer", "format": "int64"}),
        SchemaType::Number => json!({"type": "number", "format": "double"}),
        SchemaType::Decimal => json!({"type": "string", "format": "decimal"}),
        SchemaType::String => json!({"type": "string"}),
        SchemaType::Boolean => json!({"type": "boolean"}),
        SchemaType::Uuid => json!({"type": "string", "format": "uuid"}),
        SchemaType::DateTime => json!({"type": "string", "format": "date-time"}),
        SchemaType::Date => json!({"type": "string", "format": "date"}),
        SchemaType::Time => json!({"type": "string", "format": "time"}),
        SchemaType::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        // Any JSON value; an enum's values below.
        _ => json!({}),
    };
    let choices = field.choice_list();
    if !choices.is_empty() {
        let values: Vec<Value> = choices.iter().map(|c| c.json.clone()).collect();
        let kinds: Vec<&str> = values.iter().map(json_type).collect();
        if kinds.iter().all(|k| *k == kinds[0]) {
            schema["type"] = json!(kinds[0]);
        }
        schema["enum"] = Value::Array(values);
    }
    let object = schema.as_object_mut().expect("a schema is an object");
    // What the type itself allows, unless a rule narrows it.
    let (low, high) = match field.ty {
        SchemaType::Int32 => (json!(i32::MIN), json!(i32::MAX)),
        SchemaType::Int64 => (json!(i64::MIN), json!(i64::MAX)),
        _ => (Value::Null, Value::Null),
    };
    if !low.is_null() {
        object.insert("minimum".into(), low);
        object.insert("maximum".into(), high);
    }
    if let Some(n) = field.min_length {
        object.insert("minLength".into(), json!(n));
    }
    if let Some(n) = field.max_length {
        object.insert("maxLength".into(), json!(n));
    }
    if let Some(n) = field.minimum {
        object.insert("minimum".into(), number(n));
    }
    if let Some(n) = field.maximum {
        object.insert("maximum".into(), number(n));
    }
    if let Some(p) = field.pattern {
        object.insert("pattern".into(), json!(p));
    }
    if let Some(f) = field.format {
        object.insert("format".into(), json!(f));
    }
    if field.nullable {
        if let Some(ty) = object.get("type").cloned() {
            object.insert("type".into(), json!([ty, "null"]));
        }
        if let Some(Value::Array(values)) = object.get_mut("enum") {
            values.push(Value::Null);
        }
    }
    schema
}

/// The JSON Schema type of a value.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whole numbers as integers (`0`, not `0.0`).
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        #[allow(clippy::cast_possible_truncation)]
        let whole = n as i64;
        json!(whole)
    } else {
        json!(n)
    }
}

/// The document parts of one resource.
struct ResourceDoc<E> {
    name: String,
    view: View,
    _entity: std::marker::PhantomData<E>,
}

impl<E: Resource> ResourceDoc<E> {
    fn new() -> Self {
        Self::in_view(View::All)
    }

    fn in_view(view: View) -> Self {
        ResourceDoc {
            name: type_name(E::NAME),
            view,
            _entity: std::marker::PhantomData,
        }
    }

    fn private(name: &str) -> bool {
        E::PRIVATE_FIELDS.contains(&name)
    }

    /// How a field is named in the query parameters' descriptions.
    fn query_name(name: &str) -> String {
        if Self::private(name) {
            format!("`{name}` (private)")
        } else {
            format!("`{name}`")
        }
    }

    fn soft_delete(&self) -> bool {
        E::COLUMNS.deleted_at.is_some()
    }

    /// Whether callers of this view can create one: not in the public view
    /// when the create input needs a private field (the route answers 403).
    fn can_create(&self) -> bool {
        !E::SCHEMA
            .iter()
            .any(|f| f.in_create && !f.nullable && !self.view.shows::<E>(f.name))
    }

    fn schemas(&self) -> Vec<(String, Value)> {
        let name = &self.name;
        let object = |fields: &mut dyn Iterator<Item = &FieldSchema>,
                      required: &dyn Fn(&FieldSchema) -> bool,
                      read_only: bool,
                      description: String| {
            let mut properties = Map::new();
            let mut req = Vec::new();
            for f in fields {
                let mut schema = field_type(f);
                if read_only && !f.in_create && !f.in_patch {
                    schema["readOnly"] = json!(true);
                }
                let private = Self::private(f.name);
                if private && read_only {
                    schema["description"] = json!(
                        "Private: present only for callers the application reveals private fields to."
                    );
                } else if private {
                    schema["description"] = json!(
                        "Private: only callers the application reveals private fields to may send it; for others it does not exist (422 UNKNOWN_FIELD)."
                    );
                }
                properties.insert(f.name.into(), schema);
                if required(f) && !(private && read_only) {
                    req.push(f.name);
                }
            }
            let mut schema = json!({
                "type": "object",
                "description": description,
                "properties": properties,
                "additionalProperties": read_only,
            });
            if !req.is_empty() {
                schema["required"] = json!(req);
            }
            schema
        };
        let row = object(
            &mut E::SCHEMA.iter().filter(|f| self.view.shows::<E>(f.name)),
            &|_| true,
            true,
            format!("A {}.", E::NAME),
        );
        // A caller who may not read a private field may not write it: the
        // public view's inputs leave it out as its rows do.
        let create = object(
            &mut E::SCHEMA
                .iter()
                .filter(|f| f.in_create && self.view.shows::<E>(f.name)),
            &|f| !f.nullable,
            false,
            format!(
                "The input that creates a {}: server-owned fields are not part of it; unknown fields are refused.",
                E::NAME
            ),
        );
        let patch = object(
            &mut E::SCHEMA
                .iter()
                .filter(|f| f.in_patch && self.view.shows::<E>(f.name)),
            &|_| false,
            false,
            format!(
                "A partial update of a {}: absent fields keep their value, `null` clears a nullable one.",
                E::NAME
            ),
        );
        let page = json!({
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": {"type": "array", "items": reference(name)},
                "next_page_token": {"type": "string", "description": "Pass as `page_token` for the next page; absent on the last page."},
                "total_size": {"type": "integer", "format": "int64", "description": "The number of matching rows, with `count=true`."},
            },
        });
        vec![
            (name.clone(), row),
            (format!("New{name}"), create),
            (format!("{name}Patch"), patch),
            (format!("{name}Page"), page),
            ("AuditPage".into(), audit_page()),
        ]
    }

    fn key_schema(&self) -> Value {
        E::SCHEMA
            .iter()
            .find(|f| f.key)
            .map_or_else(|| json!({"type": "string"}), field_type)
    }

    fn paths(&self, bearer: bool, page: &PageConfig, limits: &QueryLimits) -> Vec<(String, Value)> {
        let (name, one, many) = (&self.name, E::NAME, E::PLURAL);
        let tag = json!([many]);
        let security = if bearer {
            json!([{"bearer": []}])
        } else {
            json!([])
        };
        // Reads work without a token unless the application's policy says
        // otherwise (`{}`: no token needed), so they may answer 401 too.
        let read_security = if bearer {
            json!([{}, {"bearer": []}])
        } else {
            json!([])
        };
        let error = |description: &str| json!({"description": description, "content": {"application/json": {"schema": reference("Error")}}});
        let row = |description: &str| {
            json!({
                "description": description,
                "headers": {"ETag": {"description": "The version, such as \"3\"", "schema": {"type": "string"}}},
                "content": {"application/json": {"schema": reference(name)}},
            })
        };
        let id = json!({"name": "id", "in": "path", "required": true, "schema": self.key_schema()});
        let query = |param: &str, schema: Value, description: String| json!({"name": param, "in": "query", "required": false, "schema": schema, "description": description});
        let sortable: Vec<&str> = E::FIELDS
            .iter()
            .filter(|f| f.sortable && self.view.shows::<E>(f.name))
            .map(|f| f.name)
            .collect();
        let filterable: Vec<String> = E::FIELDS
            .iter()
            .filter(|f| !f.ops.is_empty() && self.view.shows::<E>(f.name))
            .map(|f| format!("{} ({})", Self::query_name(f.name), f.ops))
            .collect();
        let filter = query(
            "filter",
            json!({"type": "string", "maxLength": limits.max_filter_length}),
            format!(
                "A filter (AIP-160): comparisons `field op value` joined by `AND`, `OR`, `NOT` (or `-`) and parentheses; `op` is one of `= != < <= > >= : IN`, `:` a case-insensitive substring match on text, `IN (a, b)` a list; values are numbers, `true`, `false`, `null`, or strings in double or single quotes (timestamps in RFC 3339, dates `YYYY-MM-DD`, UUIDs, enum values as strings). Fields and their operators: {}. At most {} comparisons and {} levels of nesting; an invalid filter is 400 INVALID_ARGUMENT with the position of the error.",
                filterable.join(", "),
                limits.max_clauses,
                limits.max_depth
            ),
        );
        let mut list_params = vec![
            filter.clone(),
            query(
                "order_by",
                json!({"type": "string", "pattern": order_by_pattern(&sortable)}),
                format!(
                    "Sort keys, comma-separated, each a field and optionally `asc` or `desc` (AIP-132), such as `{} desc`; fields: {}. A field appears once. Default: the key, which also ends every order.",
                    sortable.first().copied().unwrap_or("id"),
                    sortable
                        .iter()
                        .map(|n| Self::query_name(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            query(
                "page_size",
                json!({"type": "integer", "minimum": 1, "maximum": page.max_size}),
                format!("Rows per page (default {}).", page.default_size),
            ),
            query(
                "page_token",
                json!({"type": "string"}),
                "The `next_page_token` of the previous page.".into(),
            ),
            query(
                "skip",
                json!({"type": "integer", "minimum": 0, "maximum": i64::MAX}),
                "Rows to skip before the page (an offset; prefer page tokens).".into(),
            ),
            query(
                "count",
                json!({"type": "boolean"}),
                "Also answer `total_size`.".into(),
            ),
        ];
        let mut count_params = vec![filter];
        if self.soft_delete() {
            let show = query(
                "show_deleted",
                json!({"type": "boolean"}),
                "Include soft-deleted rows.".into(),
            );
            list_params.push(show.clone());
            count_params.push(show);
        }
        let if_match = ApiDoc::if_match_parameter();
        let body = |schema: String| json!({"required": true, "content": {"application/json": {"schema": reference(&schema)}}});
        let write_errors = |extra: &[(&str, &str)]| {
            let mut responses = Map::new();
            responses.insert(
                "400".into(),
                error("INVALID_ARGUMENT: a malformed id, JSON body or header"),
            );
            if bearer {
                responses.insert(
                    "401".into(),
                    error("UNAUTHENTICATED: no valid bearer token"),
                );
            }
            responses.insert("403".into(), error("PERMISSION_DENIED"));
            for (status, text) in extra {
                responses.insert((*status).into(), error(text));
            }
            responses
        };

        let mut create_responses = write_errors(&[
            ("409", "ALREADY_EXISTS: a unique field collides"),
            ("413", "PAYLOAD_TOO_LARGE"),
            (
                "415",
                "UNSUPPORTED_MEDIA_TYPE: the body is not sent as JSON",
            ),
            (
                "422",
                "VALIDATION_FAILED: one entry per field, with a JSON pointer",
            ),
        ]);
        let mut created = row(&format!("The new {one}"));
        created["headers"]["Location"] =
            json!({"description": "The new row's URL", "schema": {"type": "string"}});
        create_responses.insert("201".into(), created);

        let mut patch_responses = write_errors(&[
            ("404", "NOT_FOUND"),
            ("409", "ALREADY_EXISTS or VERSION_CONFLICT"),
            ("412", "PRECONDITION_FAILED: If-Match names another version"),
            ("413", "PAYLOAD_TOO_LARGE"),
            ("415", "UNSUPPORTED_MEDIA_TYPE"),
            ("422", "VALIDATION_FAILED"),
        ]);
        patch_responses.insert("200".into(), row(&format!("The updated {one}")));
        let mut delete_responses = write_errors(&[
            ("404", "NOT_FOUND"),
            ("409", "FOREIGN_KEY: still referenced"),
            ("412", "PRECONDITION_FAILED"),
        ]);
        delete_responses.insert("204".into(), json!({"description": "Deleted"}));

        let list_ok = json!({"description": format!("A page of {many}"), "content": {"application/json": {"schema": reference(&format!("{name}Page"))}}});
        let mut out = vec![
            (
                format!("/{many}"),
                json!({
                    "get": {"tags": tag, "operationId": format!("list_{many}"), "security": read_security, "summary": format!("List {many}"),
                        "parameters": list_params,
                        "responses": {"200": list_ok, "400": error("INVALID_ARGUMENT: a bad filter, order, page size or token, or an unknown parameter")}},
                    "post": {"tags": tag, "operationId": format!("create_{one}"), "summary": format!("Create a {one}"),
                        "security": security, "requestBody": body(format!("New{name}")), "responses": create_responses},
                }),
            ),
            (
                format!("/{many}/count"),
                json!({"get": {"tags": tag, "operationId": format!("count_{many}"), "security": read_security, "summary": format!("Count {many}"),
                    "parameters": count_params,
                    "responses": {"200": {"description": "The count", "content": {"application/json": {"schema": reference("Count")}}},
                        "400": error("INVALID_ARGUMENT")}}}),
            ),
            (
                format!("/{many}/{{id}}"),
                json!({
                    "get": {"tags": tag, "operationId": format!("get_{one}"), "security": read_security, "summary": format!("Get a {one}"),
                        "parameters": [id, {"name": "If-None-Match", "in": "header", "required": false, "schema": {"type": "string", "pattern": ETAG_PATTERN},
                            "description": "Answer 304 if the row is still at this version: its ETag (`\"3\"`, also `W/\"3\"` or `3`), or `*` for any version."}],
                        "responses": {"200": row(&format!("The {one}")), "304": {"description": "Not modified"},
                            "400": error("INVALID_ARGUMENT: a malformed id"), "404": error("NOT_FOUND")}},
                    "patch": {"tags": tag, "operationId": format!("update_{one}"), "summary": format!("Update a {one}"),
                        "security": security, "parameters": [id, if_match], "requestBody": body(format!("{name}Patch")),
                        "responses": patch_responses},
                    "delete": {"tags": tag, "operationId": format!("delete_{one}"), "summary": format!("Delete a {one}"),
                        "security": security, "parameters": [id, if_match], "responses": delete_responses},
                }),
            ),
            (
                format!("/{many}/{{id}}/history"),
                json!({"get": {"tags": tag, "operationId": format!("{one}_history"), "security": read_security, "summary": format!("The audit history of a {one}, newest first"),
                    "parameters": [id,
                        query("page_size", json!({"type": "integer", "minimum": 1, "maximum": page.max_size}), "Entries per page.".into()),
                        query("page_token", json!({"type": "string"}), "The `next_page_token` of the previous page.".into())],
                    "responses": {"200": {"description": "A page of audit entries", "content": {"application/json": {"schema": reference("AuditPage")}}},
                        "400": error("INVALID_ARGUMENT")}}}),
            ),
        ];
        if self.soft_delete() {
            let mut responses = write_errors(&[("404", "NOT_FOUND: no deleted row with this id")]);
            responses.insert("200".into(), row(&format!("The restored {one}")));
            out.push((
                format!("/{many}/{{id}}/restore"),
                json!({"post": {"tags": tag, "operationId": format!("restore_{one}"), "summary": format!("Restore a deleted {one}"),
                    "security": security, "parameters": [id], "responses": responses}}),
            ));
        }
        out
    }
}

fn audit_page() -> Value {
    json!({
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": {
                "type": "object",
                "required": ["id", "entity", "entity_id", "action", "actor", "request_id", "at", "changes"],
                "properties": {
                    "id": {"type": "integer", "format": "int64"},
                    "entity": {"type": "string"},
                    "entity_id": {"type": "string"},
                    "action": {"type": "string", "enum": ["created", "updated", "deleted", "restored"]},
                    "actor": {"type": "string"},
                    "tenant": {"type": ["string", "null"]},
                    "request_id": {"type": "string"},
                    "at": {"type": "string", "format": "date-time"},
                    "changes": {"type": "array", "items": {"type": "object", "properties": {
                        "field": {"type": "string"}, "old": {}, "new": {}}}},
                },
            }},
            "next_page_token": {"type": "string"},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(type_name("product"), "Product");
        assert_eq!(type_name("order_line"), "OrderLine");
        assert_eq!(number(0.0), json!(0));
        assert_eq!(number(1.5), json!(1.5));
    }

    #[test]
    fn an_empty_document_is_valid() {
        let doc = ApiDoc::new("t", "1").ops().bearer_auth().build();
        assert!(doc.paths.paths.contains_key("/health"));
        let text = doc.to_json().unwrap();
        assert!(text.contains("\"openapi\":\"3.1.0\""), "{text}");
    }
}

//! Every semantic check, and the resolved plan the expansion works from.
//!
//! A check that fails records a spanned error and leaves the offending part
//! out of the plan, so the expansion still produces a coherent impl and the
//! user sees only the real errors.

use heck::ToUpperCamelCase;
use proc_macro2::Span;
use syn::Ident;

use crate::ast::{EntityModel, FieldModel, TypeKind};
use crate::attr::{CacheAttrs, Op, Role, Rule, Spanned};
use crate::errors::{Errors, suggest};

/// A column as the expansion sees it.
pub(crate) struct Column<'a> {
    pub(crate) field: &'a FieldModel<'a>,
    /// Allowed filter operators (empty: not filterable).
    pub(crate) ops: Vec<Op>,
    pub(crate) sortable: bool,
    pub(crate) in_create: bool,
    pub(crate) in_patch: bool,
    pub(crate) rules: Vec<&'a Spanned<Rule>>,
}

/// The resolved description of the resource.
pub(crate) struct Plan<'a> {
    pub(crate) model: &'a EntityModel<'a>,
    pub(crate) name: String,
    pub(crate) plural: String,
    /// `Product` for `product`: prefix of `NewProduct`, `ProductPatch`, `ProductService`.
    pub(crate) type_name: Ident,
    pub(crate) pk: Option<&'a FieldModel<'a>>,
    /// Whether the key's type is one Keel supports (else the expansion uses a stand-in).
    pub(crate) key_ok: bool,
    pub(crate) roles: Vec<(Role, &'a FieldModel<'a>)>,
    pub(crate) soft_delete: Option<&'a FieldModel<'a>>,
    pub(crate) columns: Vec<Column<'a>>,
    pub(crate) cache: Option<&'a CacheAttrs>,
    pub(crate) events: String,
}

impl Plan<'_> {
    pub(crate) fn role(&self, role: Role) -> Option<&FieldModel<'_>> {
        self.roles.iter().find(|(r, _)| *r == role).map(|(_, f)| *f)
    }
}

const KEY_TYPES: &[&str] = &["i32", "i64", "Uuid", "String"];

/// Checks the model; returns the plan (always) and records errors.
pub(crate) fn check<'a>(model: &'a EntityModel<'a>, errors: &mut Errors) -> Plan<'a> {
    if model.ident != "Model" {
        errors.at(
            model.ident,
            "#[derive(Service)] goes on the sea-orm `Model` struct (the one with #[derive(DeriveEntityModel)]); rename this struct `Model`",
        );
    }
    let table = match &model.sea.table_name {
        Some(t) => t.value.clone(),
        None => {
            errors.at(
                model.ident,
                "missing #[sea_orm(table_name = \"...\")]: #[derive(Service)] works on a sea-orm entity; add #[derive(DeriveEntityModel)] and #[sea_orm(table_name = \"...\")] to this struct",
            );
            String::new()
        }
    };

    let name = match &model.service.name {
        Some(n) => {
            if !is_snake(&n.value) {
                errors.at_span(
                    n.span,
                    format!("name must be lowercase snake_case such as `product` or `order_line`, not {:?}", n.value),
                );
            }
            n.value.clone()
        }
        None => singular(&table),
    };
    let plural = model
        .service
        .plural
        .as_ref()
        .map_or_else(|| plural_of(&name, &table), |p| p.value.clone());
    let type_name = Ident::new(
        &if name.is_empty() {
            "Resource".to_owned()
        } else {
            name.to_upper_camel_case()
        },
        Span::call_site(),
    );

    let pk = if model.sea.table_name.is_some() {
        primary_key(model, errors)
    } else {
        None
    };
    let key_ok = pk.is_some_and(|k| !k.optional && KEY_TYPES.contains(&last_ident(k.ty).as_str()));
    let roles = roles(model, pk, errors);
    let soft_delete = soft_delete(model, errors);

    let server_owned = |f: &FieldModel<'_>| {
        roles.iter().any(|(_, r)| std::ptr::eq(*r, f))
            || soft_delete.is_some_and(|s| std::ptr::eq(s, f))
    };
    let mut columns = Vec::new();
    for field in model.columns() {
        let is_pk = pk.is_some_and(|p| std::ptr::eq(p, field));
        let owned = server_owned(field);
        let attrs = &field.service;
        if let (Some(ro), Some(_)) = (attrs.read_only, attrs.create_only) {
            errors.at_span(ro, "a field cannot be both `read_only` and `create_only`");
        }
        if owned {
            for span in [attrs.read_only, attrs.create_only].into_iter().flatten() {
                errors.at_span(
                    span,
                    format!(
                        "`{}` is server-owned: it is never input, so this has no effect",
                        field.name()
                    ),
                );
            }
        }
        if let Some(span) = attrs.private {
            if is_pk {
                errors.at_span(
                    span,
                    "the primary key is in every URL and `Location` header, so it cannot be `private`",
                );
            } else if roles
                .iter()
                .any(|(role, f)| *role == Role::Version && std::ptr::eq(*f, field))
            {
                errors.at_span(
                    span,
                    "the version is every response's `ETag`, so it cannot be `private`",
                );
            }
        }
        let generated_key = is_pk
            && (field.sea.auto_increment != Some(false) && field.kind == TypeKind::Int
                || field.kind == TypeKind::Uuid);
        let in_create = !owned && attrs.read_only.is_none() && !generated_key;
        let in_patch = in_create && !is_pk && attrs.create_only.is_none();
        let rules = rules(field, in_create, errors);
        let ops = ops(field, errors);
        let sortable = attrs.sort.is_some() && {
            let ok = !matches!(field.kind, TypeKind::Json | TypeKind::Bytes);
            if !ok {
                errors.at_span(
                    attrs.sort.unwrap_or_else(Span::call_site),
                    format!(
                        "`{}` is {} and cannot be sorted",
                        field.name(),
                        field.kind.describe()
                    ),
                );
            }
            ok
        };
        columns.push(Column {
            field,
            ops,
            sortable,
            in_create,
            in_patch,
            rules,
        });
    }
    for field in model.fields.iter().filter(|f| f.sea.ignore) {
        let a = &field.service;
        if a.filter.is_some() || a.sort.is_some() || !a.roles.is_empty() || !a.rules.is_empty() {
            errors.at(field.ident, format!("`{}` is #[sea_orm(ignore)]: it is not a column, so #[service(...)] cannot apply", field.name()));
        }
    }

    Plan {
        model,
        events: model
            .service
            .events
            .as_ref()
            .map_or_else(|| name.clone(), |e| e.value.clone()),
        name,
        plural,
        type_name,
        pk,
        key_ok,
        roles,
        soft_delete,
        columns,
        cache: model.service.cache.as_ref(),
    }
}

impl Errors {
    pub(crate) fn at_span(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message.to_string()));
    }
}

/// The checks of `#[derive(Audit)]`: a field is recorded, masked, or left
/// out, never both of the last two.
pub(crate) fn audit(model: &EntityModel<'_>, errors: &mut Errors) {
    for field in &model.fields {
        if let (Some(_), Some(redact)) = (field.audit.skip, field.audit.redact) {
            errors.at_span(
                redact,
                format!(
                    "`{}` is both skipped and redacted; a skipped field is never recorded, so choose one",
                    field.name()
                ),
            );
        }
    }
}

fn primary_key<'a>(model: &'a EntityModel<'a>, errors: &mut Errors) -> Option<&'a FieldModel<'a>> {
    let keys: Vec<&FieldModel<'_>> = model
        .columns()
        .filter(|f| f.sea.primary_key.is_some())
        .collect();
    match keys.as_slice() {
        [] => {
            errors.at(
                model.ident,
                "no primary key: mark one field #[sea_orm(primary_key)]",
            );
            None
        }
        [key] => {
            let type_name = last_ident(key.ty);
            if key.optional {
                errors.at(
                    key.ty,
                    format!(
                        "the primary key `{}` is `{}`; a key is never absent, so it must be one of {}, not an Option",
                        key.name(),
                        type_text(key.ty),
                        KEY_TYPES.join(", ")
                    ),
                );
            } else if !KEY_TYPES.contains(&type_name.as_str()) {
                errors.at(
                    key.ty,
                    format!(
                        "the primary key `{}` is `{}`; it must be one of {}",
                        key.name(),
                        type_text(key.ty),
                        KEY_TYPES.join(", ")
                    ),
                );
            }
            Some(key)
        }
        [first, rest @ ..] => {
            for extra in rest {
                errors.at_span(
                    extra.sea.primary_key.unwrap_or_else(Span::call_site),
                    format!(
                        "composite primary keys are not supported (`{}` and `{}`); give the table a single-column key and a unique index over these columns",
                        first.name(),
                        extra.name()
                    ),
                );
            }
            Some(first)
        }
    }
}

/// A type as the user wrote it, for messages: `Option<i32>`, `f64`.
fn type_text(ty: &syn::Type) -> String {
    let text = quote::ToTokens::to_token_stream(ty).to_string();
    let mut out = String::with_capacity(text.len());
    for part in text.split(' ') {
        let glue = |c: char| matches!(c, '<' | '>' | ':' | ',' | '&' | '(' | ')' | '[' | ']');
        let joins = out.ends_with(glue) && !out.ends_with(',') || part.starts_with(glue);
        if !out.is_empty() && !joins {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

fn last_ident(ty: &syn::Type) -> String {
    match crate::ast::ungroup(ty) {
        syn::Type::Path(p) => p
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn roles<'a>(
    model: &'a EntityModel<'a>,
    pk: Option<&'a FieldModel<'a>>,
    errors: &mut Errors,
) -> Vec<(Role, &'a FieldModel<'a>)> {
    let mut out: Vec<(Role, &FieldModel<'_>)> = Vec::new();
    for field in model.columns() {
        for role in &field.service.roles {
            let r = role.value;
            if let Some((_, first)) = out.iter().find(|(x, _)| *x == r) {
                errors.at_span(
                    role.span,
                    format!(
                        "two `{}` fields: `{}` and `{}`; keep one",
                        r.name(),
                        first.name(),
                        field.name()
                    ),
                );
                continue;
            }
            if pk.is_some_and(|p| std::ptr::eq(p, field)) {
                errors.at_span(
                    role.span,
                    format!("the primary key cannot also be the `{}` column", r.name()),
                );
                continue;
            }
            let (kind, wanted) = match r {
                Role::Version => (TypeKind::Int, "an integer (i32 or i64)"),
                Role::CreatedAt | Role::UpdatedAt => {
                    (TypeKind::Timestamp, "a timestamp (DateTimeUtc)")
                }
                Role::CreatedBy | Role::UpdatedBy | Role::Tenant => (TypeKind::Text, "a String"),
            };
            let found = type_text(field.ty);
            let problem = if field.kind != kind {
                Some(format!("it must be {wanted}"))
            } else if field.optional {
                Some(format!(
                    "the service always fills it, so it must be {wanted}, not an Option"
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                errors.at(
                    field.ty,
                    format!(
                        "the `{}` column `{}` is `{found}`; {problem}",
                        r.name(),
                        field.name()
                    ),
                );
                continue;
            }
            out.push((r, field));
        }
    }
    out
}

fn soft_delete<'a>(model: &'a EntityModel<'a>, errors: &mut Errors) -> Option<&'a FieldModel<'a>> {
    let attr = model.service.soft_delete.as_ref()?;
    let Some(field) = model.field(&attr.value) else {
        let names: Vec<String> = model.columns().map(FieldModel::name).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        errors.at_span(
            attr.span,
            format!(
                "soft_delete names `{}`, which is not a field{}",
                attr.value,
                suggest(&attr.value, &names)
            ),
        );
        return None;
    };
    if !field.optional || field.kind != TypeKind::Timestamp {
        errors.at_span(
            attr.span,
            format!(
                "soft_delete field `{}` must be an optional timestamp such as Option<DateTimeUtc>",
                attr.value
            ),
        );
        return None;
    }
    Some(field)
}

fn ops(field: &FieldModel<'_>, errors: &mut Errors) -> Vec<Op> {
    let Some(filter) = &field.service.filter else {
        return Vec::new();
    };
    if matches!(
        field.kind,
        TypeKind::Json | TypeKind::Bytes | TypeKind::Time
    ) {
        errors.at_span(
            filter.span,
            format!(
                "`{}` is {} and cannot be filtered on",
                field.name(),
                field.kind.describe()
            ),
        );
        return Vec::new();
    }
    if filter.value.is_empty() {
        return match field.kind {
            TypeKind::Int
            | TypeKind::Float
            | TypeKind::Decimal
            | TypeKind::Timestamp
            | TypeKind::Date => {
                vec![Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::In]
            }
            TypeKind::Text => vec![Op::Eq, Op::Ne, Op::Has, Op::In],
            _ => vec![Op::Eq, Op::Ne, Op::In],
        };
    }
    let mut out = Vec::new();
    for op in &filter.value {
        let ok = match op.value {
            Op::Has => field.kind == TypeKind::Text,
            o if o.is_ordering() => !matches!(
                field.kind,
                TypeKind::Bool | TypeKind::Uuid | TypeKind::Other
            ),
            _ => true,
        };
        if !ok {
            let what = if op.value == Op::Has {
                "`like`/`has` (contains) applies only to string fields".to_owned()
            } else {
                "ordering operators need an ordered type".to_owned()
            };
            errors.at_span(
                op.span,
                format!("{what}; `{}` is {}", field.name(), field.kind.describe()),
            );
        } else if !out.contains(&op.value) {
            out.push(op.value);
        }
    }
    out
}

fn rules<'a>(
    field: &'a FieldModel<'a>,
    input: bool,
    errors: &mut Errors,
) -> Vec<&'a Spanned<Rule>> {
    let mut out = Vec::new();
    for rule in &field.service.rules {
        let text = field.kind == TypeKind::Text;
        let problem = match &rule.value {
            Rule::Length { min, max } => {
                if !text && field.kind != TypeKind::Bytes {
                    Some(format!(
                        "`length` applies to strings; `{}` is {}",
                        field.name(),
                        field.kind.describe()
                    ))
                } else if let (Some(a), Some(b)) = (min, max)
                    && a > b
                {
                    Some(format!("length min ({a}) is greater than max ({b})"))
                } else if min.is_none() && max.is_none() {
                    Some("length needs `min`, `max` or both".to_owned())
                } else {
                    None
                }
            }
            Rule::Range { min, max } => {
                if !matches!(field.kind, TypeKind::Int | TypeKind::Float) {
                    Some(format!(
                        "`range` applies to integers and floats; `{}` is {}",
                        field.name(),
                        field.kind.describe()
                    ))
                } else if min.is_none() && max.is_none() {
                    Some("range needs `min`, `max` or both".to_owned())
                } else if field.kind == TypeKind::Int
                    && [min, max]
                        .into_iter()
                        .flatten()
                        .any(|l| matches!(l, syn::Lit::Float(_)))
                {
                    Some(format!(
                        "`{}` is an integer; use integer bounds",
                        field.name()
                    ))
                } else {
                    None
                }
            }
            Rule::Email | Rule::Url => (!text).then(|| {
                format!(
                    "`email` and `url` apply to strings; `{}` is {}",
                    field.name(),
                    field.kind.describe()
                )
            }),
            Rule::Regex(pattern) => {
                if !text {
                    Some(format!(
                        "`regex` applies to strings; `{}` is {}",
                        field.name(),
                        field.kind.describe()
                    ))
                } else if let Err(e) = regex_syntax::Parser::new().parse(&pattern.value()) {
                    errors.at(
                        pattern,
                        format!(
                            "invalid regex: {}",
                            e.to_string()
                                .lines()
                                .last()
                                .unwrap_or("syntax error")
                                .trim_start_matches("error: ")
                        ),
                    );
                    continue;
                } else {
                    None
                }
            }
            Rule::Custom(_) => None,
        };
        match problem {
            Some(message) => errors.at_span(rule.span, message),
            None if input => out.push(rule),
            None => errors.at_span(
                rule.span,
                format!("`{}` is never input (server-owned, read_only or a generated key), so it cannot be validated", field.name()),
            ),
        }
    }
    out
}

fn is_snake(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `products` -> `product`, `categories` -> `category`, `order_lines` -> `order_line`.
fn singular(table: &str) -> String {
    if let Some(stem) = table.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = table.strip_suffix("sses") {
        format!("{stem}ss")
    } else if let Some(stem) = table.strip_suffix('s').filter(|s| !s.ends_with('s')) {
        stem.to_owned()
    } else {
        table.to_owned()
    }
}

fn plural_of(name: &str, table: &str) -> String {
    if singular(table) == name && !table.is_empty() {
        return table.to_owned();
    }
    if let Some(stem) = name.strip_suffix('y') {
        format!("{stem}ies")
    } else if name.ends_with('s') {
        format!("{name}es")
    } else {
        format!("{name}s")
    }
}

//! Parses `#[service(...)]`, `#[audit(...)]` and the `#[sea_orm(...)]`
//! attributes the derives read, keeping the span of every value.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Expr, Lit, LitStr, Path};

use crate::errors::{Errors, suggest};

/// A value and where it was written.
#[derive(Clone)]
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

impl<T> Spanned<T> {
    fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

const STRUCT_KEYS: &[&str] = &["name", "plural", "soft_delete", "cache", "events", "crate"];
const FIELD_KEYS: &[&str] = &[
    "filter",
    "sort",
    "version",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "tenant",
    "read_only",
    "create_only",
    "private",
    "validate",
];
const OPS: &[&str] = &["eq", "ne", "lt", "le", "gt", "ge", "has", "like", "in"];
const RULES: &[&str] = &["length", "range", "email", "url", "regex", "custom"];
const CACHE_KEYS: &[&str] = &["ttl", "jitter", "l1", "l1_ttl", "negative"];

/// `#[service(...)]` on the struct.
#[derive(Default)]
pub(crate) struct StructAttrs {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) plural: Option<Spanned<String>>,
    pub(crate) soft_delete: Option<Spanned<String>>,
    pub(crate) events: Option<Spanned<String>>,
    pub(crate) cache: Option<CacheAttrs>,
    /// `crate = "path"`: where generated code finds keel.
    pub(crate) krate: Option<Path>,
}

/// `cache` or `cache(ttl = "5m", jitter = 10, l1 = false, l1_ttl = "2s", negative = true)`.
pub(crate) struct CacheAttrs {
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) jitter_percent: Option<u64>,
    pub(crate) l1: Option<bool>,
    pub(crate) l1_ttl_ms: Option<u64>,
    pub(crate) negative: Option<bool>,
}

/// A server-owned role a field can have.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Version,
    CreatedAt,
    UpdatedAt,
    CreatedBy,
    UpdatedBy,
    Tenant,
}

impl Role {
    pub(crate) const ALL: [Role; 6] = [
        Role::Version,
        Role::CreatedAt,
        Role::UpdatedAt,
        Role::CreatedBy,
        Role::UpdatedBy,
        Role::Tenant,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Version => "version",
            Role::CreatedAt => "created_at",
            Role::UpdatedAt => "updated_at",
            Role::CreatedBy => "created_by",
            Role::UpdatedBy => "updated_by",
            Role::Tenant => "tenant",
        }
    }

    fn from_key(key: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == key)
    }
}

/// A filter operator.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Has,
    In,
}

impl Op {
    fn from_key(key: &str) -> Option<Op> {
        Some(match key {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "lt" => Op::Lt,
            "le" => Op::Le,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "has" | "like" => Op::Has,
            "in" => Op::In,
            _ => return None,
        })
    }

    pub(crate) fn is_ordering(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

/// A `validate(...)` rule.
pub(crate) enum Rule {
    Length { min: Option<u64>, max: Option<u64> },
    Range { min: Option<Lit>, max: Option<Lit> },
    Email,
    Url,
    Regex(LitStr),
    Custom(Path),
}

/// `#[service(...)]` on a field.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    /// `filter` (ops empty: the type's defaults) or `filter(eq, lt, ...)`.
    pub(crate) filter: Option<Spanned<Vec<Spanned<Op>>>>,
    pub(crate) sort: Option<Span>,
    pub(crate) roles: Vec<Spanned<Role>>,
    pub(crate) read_only: Option<Span>,
    pub(crate) create_only: Option<Span>,
    /// `private`: only callers the application reveals private fields to see it.
    pub(crate) private: Option<Span>,
    pub(crate) rules: Vec<Spanned<Rule>>,
}

/// The `#[sea_orm(...)]` keys the derives read; every other key is left to sea-orm.
#[derive(Default)]
pub(crate) struct SeaAttrs {
    pub(crate) table_name: Option<Spanned<String>>,
    pub(crate) primary_key: Option<Span>,
    pub(crate) auto_increment: Option<bool>,
    pub(crate) unique: bool,
    pub(crate) ignore: bool,
}

/// `#[audit(skip)]` / `#[audit(redact)]`.
#[derive(Default)]
pub(crate) struct AuditAttrs {
    pub(crate) skip: Option<Span>,
    pub(crate) redact: Option<Span>,
}

/// The key of a nested meta item (`filter` in `filter(eq)`), or "" for a path.
fn key_of(meta: &ParseNestedMeta<'_>) -> String {
    meta.path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// Where the key of a nested meta item is written.
fn span_of(meta: &ParseNestedMeta<'_>) -> Span {
    meta.path
        .get_ident()
        .map_or_else(Span::call_site, syn::Ident::span)
}

fn unknown(errors: &mut Errors, meta: &ParseNestedMeta<'_>, what: &str, known: &[&str]) {
    let key = key_of(meta);
    errors.at(
        &meta.path,
        format!("unknown {what} `{key}`{}", suggest(&key, known)),
    );
    skip_value(meta);
}

/// Consumes `= value` or `(...)` after a key we do not read.
fn skip_value(meta: &ParseNestedMeta<'_>) {
    if meta.input.peek(syn::Token![=]) {
        let _ = meta.value().and_then(|v| v.parse::<Expr>());
    } else if meta.input.peek(syn::token::Paren) {
        let _ = meta.parse_nested_meta(|inner| {
            skip_value(&inner);
            Ok(())
        });
    }
}

fn lit_str(meta: &ParseNestedMeta<'_>) -> syn::Result<Spanned<String>> {
    let s: LitStr = meta.value()?.parse()?;
    Ok(Spanned::new(s.value(), s.span()))
}

fn lit_int(meta: &ParseNestedMeta<'_>) -> syn::Result<u64> {
    let lit: syn::LitInt = meta.value()?.parse()?;
    lit.base10_parse()
}

fn lit_bool(meta: &ParseNestedMeta<'_>) -> syn::Result<bool> {
    let lit: syn::LitBool = meta.value()?.parse()?;
    Ok(lit.value)
}

fn attrs<'a>(attrs: &'a [Attribute], name: &'a str) -> impl Iterator<Item = &'a Attribute> {
    attrs.iter().filter(move |a| a.path().is_ident(name))
}

/// Runs `f` on each item of every `#[name(...)]` attribute, reporting parse errors.
fn each(
    errors: &mut Errors,
    list: &[Attribute],
    name: &str,
    mut f: impl FnMut(&mut Errors, &ParseNestedMeta<'_>) -> syn::Result<()>,
) {
    for attr in attrs(list, name) {
        if let Err(e) = attr.parse_nested_meta(|meta| f(errors, &meta)) {
            errors.push(e);
        }
    }
}

impl StructAttrs {
    pub(crate) fn parse(errors: &mut Errors, list: &[Attribute]) -> StructAttrs {
        let mut out = StructAttrs::default();
        each(errors, list, "service", |errors, meta| {
            let key = key_of(meta);
            match key.as_str() {
                "name" => out.name = Some(lit_str(meta)?),
                "plural" => out.plural = Some(lit_str(meta)?),
                "soft_delete" => out.soft_delete = Some(lit_str(meta)?),
                "events" => out.events = Some(lit_str(meta)?),
                "cache" => out.cache = Some(CacheAttrs::parse(errors, meta)?),
                "crate" => out.krate = Some(meta.value()?.parse::<LitStr>()?.parse::<Path>()?),
                _ => unknown(errors, meta, "service attribute", STRUCT_KEYS),
            }
            Ok(())
        });
        out
    }
}

impl CacheAttrs {
    fn parse(errors: &mut Errors, meta: &ParseNestedMeta<'_>) -> syn::Result<CacheAttrs> {
        let mut out = CacheAttrs {
            ttl_ms: None,
            jitter_percent: None,
            l1: None,
            l1_ttl_ms: None,
            negative: None,
        };
        if !meta.input.peek(syn::token::Paren) {
            return Ok(out);
        }
        meta.parse_nested_meta(|inner| {
            let key = key_of(&inner);
            match key.as_str() {
                "ttl" | "l1_ttl" => {
                    let s: LitStr = inner.value()?.parse()?;
                    match parse_duration_ms(&s.value()) {
                        Some(ms) if key == "ttl" => out.ttl_ms = Some(ms),
                        Some(ms) => out.l1_ttl_ms = Some(ms),
                        None => errors.at(
                            &s,
                            format!("invalid duration {:?}; write a number and a unit: \"500ms\", \"30s\", \"5m\", \"1h\"", s.value()),
                        ),
                    }
                }
                "jitter" => {
                    let percent = lit_int(&inner)?;
                    if percent > 100 {
                        errors.at(&inner.path, "jitter is a percentage of the ttl: 0 to 100");
                    }
                    out.jitter_percent = Some(percent);
                }
                "l1" => out.l1 = Some(lit_bool(&inner)?),
                "negative" => out.negative = Some(lit_bool(&inner)?),
                _ => unknown(errors, &inner, "cache setting", CACHE_KEYS),
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// `"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"1d"` in milliseconds.
pub(crate) fn parse_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

impl FieldAttrs {
    pub(crate) fn parse(errors: &mut Errors, list: &[Attribute]) -> FieldAttrs {
        let mut out = FieldAttrs::default();
        each(errors, list, "service", |errors, meta| {
            let key = key_of(meta);
            let span = span_of(meta);
            if let Some(role) = Role::from_key(&key) {
                out.roles.push(Spanned::new(role, span));
                return Ok(());
            }
            match key.as_str() {
                "filter" => {
                    let mut ops = Vec::new();
                    if meta.input.peek(syn::token::Paren) {
                        meta.parse_nested_meta(|op| {
                            let name = key_of(&op);
                            match Op::from_key(&name) {
                                Some(o) => ops.push(Spanned::new(
                                    o,
                                    op.path.get_ident().map_or(span, syn::Ident::span),
                                )),
                                None => unknown(errors, &op, "filter operator", OPS),
                            }
                            Ok(())
                        })?;
                    }
                    out.filter = Some(Spanned::new(ops, span));
                }
                "sort" => out.sort = Some(span),
                "read_only" => out.read_only = Some(span),
                "create_only" => out.create_only = Some(span),
                "private" => out.private = Some(span),
                "validate" => meta.parse_nested_meta(|rule| {
                    if let Some(r) = Rule::parse(errors, &rule)? {
                        out.rules.push(r);
                    }
                    Ok(())
                })?,
                _ => unknown(errors, meta, "service attribute", FIELD_KEYS),
            }
            Ok(())
        });
        out
    }
}

impl Rule {
    fn parse(
        errors: &mut Errors,
        meta: &ParseNestedMeta<'_>,
    ) -> syn::Result<Option<Spanned<Rule>>> {
        let key = key_of(meta);
        let span = span_of(meta);
        let rule = match key.as_str() {
            "length" => {
                let (mut min, mut max) = (None, None);
                meta.parse_nested_meta(|b| {
                    if b.path.is_ident("min") {
                        min = Some(lit_int(&b)?);
                    } else if b.path.is_ident("max") {
                        max = Some(lit_int(&b)?);
                    } else {
                        unknown(errors, &b, "length bound", &["min", "max"]);
                    }
                    Ok(())
                })?;
                Rule::Length { min, max }
            }
            "range" => {
                let (mut min, mut max) = (None, None);
                meta.parse_nested_meta(|b| {
                    let value = number_lit(&b)?;
                    if b.path.is_ident("min") {
                        min = Some(value);
                    } else if b.path.is_ident("max") {
                        max = Some(value);
                    } else {
                        unknown(errors, &b, "range bound", &["min", "max"]);
                    }
                    Ok(())
                })?;
                Rule::Range { min, max }
            }
            "email" => Rule::Email,
            "url" => Rule::Url,
            "regex" => Rule::Regex(meta.value()?.parse()?),
            "custom" => Rule::Custom(meta.value()?.parse()?),
            _ => {
                unknown(errors, meta, "validation rule", RULES);
                return Ok(None);
            }
        };
        Ok(Some(Spanned::new(rule, span)))
    }
}

/// A numeric literal, possibly negative.
fn number_lit(meta: &ParseNestedMeta<'_>) -> syn::Result<Lit> {
    let expr: Expr = meta.value()?.parse()?;
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: lit @ (Lit::Int(_) | Lit::Float(_)),
            ..
        }) => Ok(lit),
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) => match *expr {
            Expr::Lit(syn::ExprLit {
                lit: Lit::Int(i), ..
            }) => Ok(Lit::Int(syn::LitInt::new(
                &format!("-{}", i.base10_digits()),
                i.span(),
            ))),
            Expr::Lit(syn::ExprLit {
                lit: Lit::Float(f), ..
            }) => Ok(Lit::Float(syn::LitFloat::new(
                &format!("-{}", f.base10_digits()),
                f.span(),
            ))),
            other => Err(syn::Error::new_spanned(other, "expected a number")),
        },
        other => Err(syn::Error::new_spanned(other, "expected a number")),
    }
}

impl SeaAttrs {
    pub(crate) fn parse(errors: &mut Errors, list: &[Attribute]) -> SeaAttrs {
        let mut out = SeaAttrs::default();
        each(errors, list, "sea_orm", |_, meta| {
            let span = span_of(meta);
            if meta.path.is_ident("table_name") {
                out.table_name = Some(lit_str(meta)?);
            } else if meta.path.is_ident("primary_key") {
                out.primary_key = Some(span);
            } else if meta.path.is_ident("auto_increment") {
                out.auto_increment = Some(lit_bool(meta)?);
            } else if meta.path.is_ident("unique") {
                out.unique = true;
            } else if meta.path.is_ident("ignore") {
                out.ignore = true;
            } else {
                skip_value(meta);
            }
            Ok(())
        });
        out
    }
}

impl AuditAttrs {
    pub(crate) fn parse(errors: &mut Errors, list: &[Attribute]) -> AuditAttrs {
        let mut out = AuditAttrs::default();
        each(errors, list, "audit", |errors, meta| {
            let span = span_of(meta);
            if meta.path.is_ident("skip") {
                out.skip = Some(span);
            } else if meta.path.is_ident("redact") {
                out.redact = Some(span);
            } else {
                unknown(errors, meta, "audit attribute", &["skip", "redact"]);
            }
            Ok(())
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("30s"), Some(30_000));
        assert_eq!(parse_duration_ms("5m"), Some(300_000));
        assert_eq!(parse_duration_ms("1h"), Some(3_600_000));
        assert_eq!(parse_duration_ms("2d"), Some(172_800_000));
        for bad in ["", "5", "m", "5 parsecs", "-1s", "1.5s"] {
            assert_eq!(parse_duration_ms(bad), None, "{bad}");
        }
    }
}

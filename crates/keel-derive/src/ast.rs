//! A borrowed model of the entity struct: its fields, their types and attributes.

use syn::{Data, DeriveInput, Fields, GenericArgument, Ident, PathArguments, Type, Visibility};

use crate::attr::{AuditAttrs, FieldAttrs, SeaAttrs, StructAttrs};
use crate::errors::Errors;

/// What the query language and validation can do with a field, read from its type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum TypeKind {
    Int,
    Float,
    Decimal,
    Text,
    Bool,
    Uuid,
    Timestamp,
    Date,
    Time,
    Json,
    Bytes,
    /// Anything else: enums, custom types.
    Other,
}

impl TypeKind {
    fn of(ty: &Type) -> TypeKind {
        let Type::Path(path) = ungroup(ty) else {
            return TypeKind::Other;
        };
        let Some(last) = path.path.segments.last() else {
            return TypeKind::Other;
        };
        match last.ident.to_string().as_str() {
            "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64"
            | "u128" | "usize" => TypeKind::Int,
            "f32" | "f64" => TypeKind::Float,
            "Decimal" => TypeKind::Decimal,
            "String" => TypeKind::Text,
            "bool" => TypeKind::Bool,
            "Uuid" => TypeKind::Uuid,
            "DateTimeUtc"
            | "DateTimeWithTimeZone"
            | "DateTimeLocal"
            | "DateTime"
            | "NaiveDateTime"
            | "TimeDateTime"
            | "TimeDateTimeWithTimeZone"
            | "OffsetDateTime"
            | "PrimitiveDateTime" => TypeKind::Timestamp,
            "Date" | "NaiveDate" | "TimeDate" => TypeKind::Date,
            "Time" | "NaiveTime" | "TimeTime" => TypeKind::Time,
            "Json" | "Value" => TypeKind::Json,
            "Vec" => TypeKind::Bytes,
            _ => TypeKind::Other,
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            TypeKind::Int => "an integer",
            TypeKind::Float => "a float",
            TypeKind::Decimal => "a decimal",
            TypeKind::Text => "a string",
            TypeKind::Bool => "a bool",
            TypeKind::Uuid => "a UUID",
            TypeKind::Timestamp => "a timestamp",
            TypeKind::Date => "a date",
            TypeKind::Time => "a time of day",
            TypeKind::Json => "JSON",
            TypeKind::Bytes => "bytes",
            TypeKind::Other => "a custom type",
        }
    }
}

/// One field of the model.
pub(crate) struct FieldModel<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    /// `T` for `Option<T>`, else the type itself.
    pub(crate) inner: &'a Type,
    pub(crate) optional: bool,
    /// `T` for `inner` = `Redacted<T>`, else `inner`: the type the value
    /// has, which its rules, kind and enum values come from.
    pub(crate) value: &'a Type,
    /// Whether `inner` is `Redacted<T>` (implies `#[audit(redact)]`).
    pub(crate) redacted_type: bool,
    pub(crate) kind: TypeKind,
    pub(crate) service: FieldAttrs,
    pub(crate) sea: SeaAttrs,
    pub(crate) audit: AuditAttrs,
}

impl FieldModel<'_> {
    /// Whether audit rows, events and `Debug` show the field as `[redacted]`:
    /// `#[audit(redact)]`, or a `Redacted<T>` type.
    pub(crate) fn is_redacted(&self) -> bool {
        self.audit.redact.is_some() || self.redacted_type
    }

    /// The field's API name.
    pub(crate) fn name(&self) -> String {
        self.ident.to_string().trim_start_matches("r#").to_owned()
    }
}

/// The model struct.
pub(crate) struct EntityModel<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) service: StructAttrs,
    pub(crate) sea: SeaAttrs,
    pub(crate) fields: Vec<FieldModel<'a>>,
    /// The path generated code reaches keel by (see [`crate::krate`]).
    pub(crate) krate: proc_macro2::TokenStream,
}

impl<'a> EntityModel<'a> {
    /// Reads the struct; `None` (with an error) when it is not a struct with named fields.
    pub(crate) fn from_syn(
        input: &'a DeriveInput,
        errors: &mut Errors,
        derive: &str,
    ) -> Option<Self> {
        let Data::Struct(data) = &input.data else {
            errors.at(&input.ident, format!("#[derive({derive})] applies to the sea-orm `Model` struct, not to an enum or union"));
            return None;
        };
        let Fields::Named(named) = &data.fields else {
            errors.at(
                &input.ident,
                format!(
                    "#[derive({derive})] needs a struct with named fields (the sea-orm `Model`)"
                ),
            );
            return None;
        };
        if !input.generics.params.is_empty() {
            errors.at(
                &input.generics,
                format!("#[derive({derive})] does not support generic models"),
            );
        }
        let fields = named
            .named
            .iter()
            .map(|f| {
                let (inner, optional) = generic_inner(&f.ty, "Option");
                let (value, redacted_type) = generic_inner(inner, "Redacted");
                FieldModel {
                    ident: f.ident.as_ref().expect("named fields have names"),
                    ty: &f.ty,
                    inner,
                    optional,
                    value,
                    redacted_type,
                    kind: TypeKind::of(value),
                    service: FieldAttrs::parse(errors, &f.attrs),
                    sea: SeaAttrs::parse(errors, &f.attrs),
                    audit: AuditAttrs::parse(errors, &f.attrs),
                }
            })
            .collect();
        let service = StructAttrs::parse(errors, &input.attrs);
        let krate = crate::krate::path(service.krate.as_ref());
        Some(EntityModel {
            ident: &input.ident,
            vis: &input.vis,
            service,
            sea: SeaAttrs::parse(errors, &input.attrs),
            fields,
            krate,
        })
    }

    /// The fields that are columns (not `#[sea_orm(ignore)]`).
    pub(crate) fn columns(&self) -> impl Iterator<Item = &FieldModel<'a>> {
        self.fields.iter().filter(|f| !f.sea.ignore)
    }

    pub(crate) fn field(&self, name: &str) -> Option<&FieldModel<'a>> {
        self.columns().find(|f| f.name() == name)
    }
}

/// The type inside invisible groups (a `$t:ty` of `macro_rules!`) and parentheses.
pub(crate) fn ungroup(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Group(g) => ty = &g.elem,
            Type::Paren(p) => ty = &p.elem,
            _ => return ty,
        }
    }
}

/// `(T, true)` for `Wrapper<T>` (`Option<T>`, `Redacted<T>`), else `(ty, false)`.
fn generic_inner<'t>(ty: &'t Type, wrapper: &str) -> (&'t Type, bool) {
    if let Type::Path(path) = ungroup(ty)
        && path.qself.is_none()
        && let Some(last) = path.path.segments.last()
        && last.ident == wrapper
        && let PathArguments::AngleBracketed(args) = &last.arguments
        && args.args.len() == 1
        && let Some(GenericArgument::Type(inner)) = args.args.first()
    {
        return (inner, true);
    }
    (ty, false)
}

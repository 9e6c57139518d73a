//! The generated code: `quote!` only, from a checked [`Plan`].

use heck::ToUpperCamelCase;
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::Ident;

use crate::ast::{EntityModel, FieldModel, TypeKind};
use crate::attr::{Op, Role, Rule};
use crate::valid::{Column, Plan};

fn column_variant(field: &FieldModel<'_>) -> Ident {
    Ident::new(&field.name().to_upper_camel_case(), field.ident.span())
}

fn some_column(field: Option<&FieldModel<'_>>) -> TokenStream {
    match field {
        Some(f) => {
            let v = column_variant(f);
            quote!(::core::option::Option::Some(Column::#v))
        }
        None => quote!(::core::option::Option::None),
    }
}

/// `#[derive(Service)]`.
pub(crate) fn service(plan: &Plan<'_>) -> TokenStream {
    let k = &plan.model.krate;
    let vis = plan.model.vis;
    let name = &plan.name;
    let plural = &plan.plural;
    let new_ty = format_ident!("New{}", plan.type_name);
    let patch_ty = format_ident!("{}Patch", plan.type_name);
    let service_ty = format_ident!("{}Service", plan.type_name);
    // An unsupported key was reported; a stand-in keeps follow-on errors away.
    let key_ty = match plan.pk {
        Some(pk) if plan.key_ok => {
            let ty = pk.ty;
            quote!(#ty)
        }
        _ => quote!(::std::string::String),
    };

    let role = |r: Role| some_column(plan.role(r));
    let (version, created_at, updated_at) = (
        role(Role::Version),
        role(Role::CreatedAt),
        role(Role::UpdatedAt),
    );
    let (created_by, updated_by, tenant) = (
        role(Role::CreatedBy),
        role(Role::UpdatedBy),
        role(Role::Tenant),
    );
    let deleted_at = some_column(plan.soft_delete);

    let fields = plan.columns.iter().map(|c| field_entry(k, c));
    let choice_fns = plan
        .columns
        .iter()
        .filter(|c| c.field.kind == TypeKind::Other)
        .map(|c| {
            let f = choices_fn(c.field);
            let inner = c.field.value;
            quote! {
                fn #f() -> &'static [#k::__private::Choice] {
                    static CHOICES: ::std::sync::OnceLock<::std::vec::Vec<#k::__private::Choice>> =
                        ::std::sync::OnceLock::new();
                    CHOICES.get_or_init(|| {
                        #[allow(unused_imports)]
                        use #k::__private::{EnumChoices as _, NoChoices as _};
                        (&&#k::__private::Probe::<#inner>::new()).choices()
                    })
                }
            }
        });
    let pk_name = plan.pk.map(FieldModel::name);
    let schema = plan
        .columns
        .iter()
        .map(|c| schema_entry(c, pk_name.as_deref() == Some(c.field.name().as_str())));
    let names = |pick: fn(&FieldModel<'_>) -> bool| -> Vec<String> {
        plan.model
            .columns()
            .filter(|f| pick(f))
            .map(FieldModel::name)
            .collect()
    };
    let redacted = names(|f| f.is_redacted());
    let skipped = names(|f| f.audit.skip.is_some());
    let audit_consts = (!redacted.is_empty() || !skipped.is_empty()).then(|| {
        quote! {
            const REDACTED_FIELDS: &'static [&'static str] = &[#(#redacted),*];
            const AUDIT_SKIPPED: &'static [&'static str] = &[#(#skipped),*];
        }
    });
    let private = names(|f| f.service.private.is_some());
    let private_const = (!private.is_empty()).then(|| {
        quote! {
            const PRIVATE_FIELDS: &'static [&'static str] = &[#(#private),*];
        }
    });
    let cache = plan.cache.map(|c| {
        let ttl = c.ttl_ms.unwrap_or(60_000);
        let l1_ttl = c.l1_ttl_ms.unwrap_or(5_000);
        #[allow(clippy::cast_precision_loss)]
        let jitter = c.jitter_percent.unwrap_or(10) as f64 / 100.0;
        let l1 = c.l1.unwrap_or(true);
        let negative = c.negative.unwrap_or(false);
        quote! {
            const CACHE: #k::__private::CachePolicy = #k::__private::CachePolicy {
                enabled: true,
                ttl: ::core::time::Duration::from_millis(#ttl),
                jitter: #jitter,
                l1: #l1,
                l1_ttl: ::core::time::Duration::from_millis(#l1_ttl),
                negative: #negative,
            };
        }
    });
    let events =
        ["created", "updated", "deleted", "restored"].map(|a| format!("{}.{a}", plan.events));
    let [created_event, updated_event, deleted_event, restored_event] = &events;

    let create: Vec<&Column<'_>> = plan.columns.iter().filter(|c| c.in_create).collect();
    let patch: Vec<&Column<'_>> = plan.columns.iter().filter(|c| c.in_patch).collect();
    let create_idents: Vec<&Ident> = create.iter().map(|c| c.field.ident).collect();
    let patch_idents: Vec<&Ident> = patch.iter().map(|c| c.field.ident).collect();
    let has_version = plan.role(Role::Version).is_some();
    // Every column set from the input: no `..Default::default()` (clippy's needless_update).
    let rest =
        (create.len() < plan.columns.len()).then(|| quote!(..::core::default::Default::default()));

    let patch_version = has_version.then(|| {
        quote! {
            fn patch_version(patch: &#patch_ty) -> ::core::option::Option<i64> {
                patch.expected_version
            }
            fn set_patch_version(patch: &mut #patch_ty, version: i64) {
                patch.expected_version = ::core::option::Option::Some(version);
            }
        }
    });
    let validate_create = validation(k, &create, false).map(|body| {
        quote! {
            fn validate_create(input: &#new_ty) -> ::core::result::Result<(), #k::__private::ValidationErrors> {
                let mut errors = #k::__private::ValidationErrors::new();
                #body
                errors.into_result()
            }
        }
    });
    let validate_patch = validation(k, &patch, true).map(|body| {
        quote! {
            fn validate_patch(patch: &#patch_ty) -> ::core::result::Result<(), #k::__private::ValidationErrors> {
                let mut errors = #k::__private::ValidationErrors::new();
                let input = patch;
                #body
                errors.into_result()
            }
        }
    });

    let new_struct = input_struct(plan, &new_ty, &create, false);
    let patch_struct = input_struct(plan, &patch_ty, &patch, has_version);
    let builders = patch.iter().map(|c| {
        let ident = c.field.ident;
        let inner = c.field.inner;
        // Both forms take the value's own type: a `Redacted<T>` field
        // takes the `T` (wrapped here), as its rules and filters see it.
        let value = c.field.value;
        if c.field.optional {
            let doc = format!("Sets `{}`; `None` clears it.", c.field.name());
            quote! {
                #[doc = #doc]
                #[must_use]
                pub fn #ident(mut self, value: ::core::option::Option<#value>) -> Self {
                    self.#ident = ::core::option::Option::Some(value.map(::core::convert::Into::<#inner>::into));
                    self
                }
            }
        } else {
            let doc = format!("Sets `{}`.", c.field.name());
            quote! {
                #[doc = #doc]
                #[must_use]
                pub fn #ident(mut self, value: impl ::core::convert::Into<#value>) -> Self {
                    let value: #value = value.into();
                    self.#ident = ::core::option::Option::Some(::core::convert::Into::<#inner>::into(value));
                    self
                }
            }
        }
    });
    let if_version = has_version.then(|| {
        quote! {
            /// Applies the patch only if the row is still at this version; else `VERSION_CONFLICT`.
            #[must_use]
            pub fn if_version(mut self, version: impl ::core::convert::Into<i64>) -> Self {
                self.expected_version = ::core::option::Option::Some(version.into());
                self
            }
        }
    });
    let service_doc = format!("The service of {plural}: `keel::BaseService` over this entity.");

    quote! {
        #new_struct
        #patch_struct

        #[automatically_derived]
        impl #patch_ty {
            #(#builders)*
            #if_version
        }

        #[doc = #service_doc]
        #vis type #service_ty = #k::__private::BaseService<Entity>;

        const _: () = {
            #(#choice_fns)*

            #[automatically_derived]
            impl #k::__private::Resource for Entity {
                type Key = #key_ty;
                type Create = #new_ty;
                type Patch = #patch_ty;

                const NAME: &'static str = #name;
                const PLURAL: &'static str = #plural;
                const COLUMNS: #k::__private::Columns<Self> = #k::__private::Columns {
                    version: #version,
                    created_at: #created_at,
                    updated_at: #updated_at,
                    created_by: #created_by,
                    updated_by: #updated_by,
                    deleted_at: #deleted_at,
                    tenant: #tenant,
                };
                const FIELDS: &'static [#k::__private::Field<Self>] = &[#(#fields),*];
                const SCHEMA: &'static [#k::__private::FieldSchema] = {
                    use ::core::option::Option::{None, Some};
                    use #k::__private::{FieldSchema, SchemaType};
                    &[#(#schema),*]
                };
                #audit_consts
                #private_const
                #cache

                fn event_type(action: #k::__private::WriteAction) -> ::std::borrow::Cow<'static, str> {
                    ::std::borrow::Cow::Borrowed(match action {
                        #k::__private::WriteAction::Created => #created_event,
                        #k::__private::WriteAction::Updated => #updated_event,
                        #k::__private::WriteAction::Deleted => #deleted_event,
                        #k::__private::WriteAction::Restored => #restored_event,
                    })
                }

                #[allow(unused_variables)]
                fn create_model(input: #new_ty) -> ActiveModel {
                    ActiveModel {
                        #(#create_idents: #k::__private::Set(input.#create_idents),)*
                        #rest
                    }
                }

                fn row_of(model: ActiveModel) -> ::core::option::Option<Model> {
                    #k::__private::TryIntoModel::try_into_model(model).ok()
                }

                #[allow(unused_variables)]
                fn apply_patch(patch: #patch_ty, model: &mut ActiveModel) {
                    #(
                        if let ::core::option::Option::Some(value) = patch.#patch_idents {
                            model.#patch_idents = #k::__private::Set(value);
                        }
                    )*
                }

                #patch_version
                #validate_create
                #validate_patch
            }
        };
    }
}

fn field_entry(k: &TokenStream, column: &Column<'_>) -> TokenStream {
    let name = column.field.name();
    let variant = column_variant(column.field);
    let mut entry = quote!(#k::__private::Field::new(#name, Column::#variant));
    if !column.ops.is_empty() {
        let ops = column.ops.iter().map(|op| {
            let c = Ident::new(
                match op {
                    Op::Eq => "EQ",
                    Op::Ne => "NE",
                    Op::Lt => "LT",
                    Op::Le => "LE",
                    Op::Gt => "GT",
                    Op::Ge => "GE",
                    Op::Has => "HAS",
                    Op::In => "IN",
                },
                Span::call_site(),
            );
            quote!(.with(#k::__private::Ops::#c))
        });
        entry = quote!(#entry.filter(#k::__private::Ops::NONE #(#ops)*));
    }
    if column.sortable {
        entry = quote!(#entry.sortable());
    }
    if column.field.sea.unique {
        entry = quote!(#entry.unique());
    }
    if column.field.kind == TypeKind::Other {
        let f = choices_fn(column.field);
        entry = quote!(#entry.choices(#f));
    }
    entry
}

/// The function that lists the values of a field of a type Keel does not
/// know (an enum, or a type of the application's own).
fn choices_fn(field: &FieldModel<'_>) -> Ident {
    format_ident!("__keel_choices_{}", field.name())
}

/// The `FieldSchema` of a column: its JSON type, whether it is input, its rules.
fn schema_entry(column: &Column<'_>, key: bool) -> TokenStream {
    let name = column.field.name();
    let ty = match column.field.kind {
        TypeKind::Int => {
            let wide = matches!(
                last_segment(column.field.value).as_deref(),
                Some("i64" | "u64" | "i128" | "u128" | "isize" | "usize" | "u32")
            );
            if wide { "Int64" } else { "Int32" }
        }
        TypeKind::Float => "Number",
        TypeKind::Decimal => "Decimal",
        TypeKind::Text => "String",
        TypeKind::Bool => "Boolean",
        TypeKind::Uuid => "Uuid",
        TypeKind::Timestamp => "DateTime",
        TypeKind::Date => "Date",
        TypeKind::Time => "Time",
        TypeKind::Json => "Json",
        TypeKind::Bytes => "Bytes",
        TypeKind::Other => "Any",
    };
    let ty = Ident::new(ty, Span::call_site());
    let (nullable, in_create, in_patch) =
        (column.field.optional, column.in_create, column.in_patch);
    let mut entry =
        quote!(FieldSchema::new(#name, SchemaType::#ty).io(#nullable, #in_create, #in_patch, #key));
    // The bounds of the integer type (i32 and i64 get theirs from the
    // document's format), narrowed by a range rule.
    #[allow(clippy::cast_precision_loss)]
    let (mut low, mut high) = match last_segment(column.field.value).as_deref() {
        Some("i8") => (Some(f64::from(i8::MIN)), Some(f64::from(i8::MAX))),
        Some("i16") => (Some(f64::from(i16::MIN)), Some(f64::from(i16::MAX))),
        Some("u8") => (Some(0.0), Some(f64::from(u8::MAX))),
        Some("u16") => (Some(0.0), Some(f64::from(u16::MAX))),
        Some("u32") => (Some(0.0), Some(f64::from(u32::MAX))),
        Some("u64") => (Some(0.0), Some(u64::MAX as f64)),
        _ => (None, None),
    };
    if column.field.kind != TypeKind::Int {
        (low, high) = (None, None);
    }
    for rule in &column.rules {
        if let Rule::Range { min, max } = &rule.value {
            low = min.as_ref().and_then(lit_f64).or(low);
            high = max.as_ref().and_then(lit_f64).or(high);
        }
    }
    if low.is_some() || high.is_some() {
        let bound = |b: Option<f64>| match b {
            Some(v) => {
                let abs = proc_macro2::Literal::f64_suffixed(v.abs());
                let sign = (v < 0.0).then(|| quote!(-));
                quote!(Some(#sign #abs))
            }
            None => quote!(None),
        };
        let (min, max) = (bound(low), bound(high));
        entry = quote!(#entry.range(#min, #max));
    }
    for rule in &column.rules {
        let set = match &rule.value {
            Rule::Length { min, max } => {
                let short = |v: Option<u64>| match v {
                    Some(n) => quote!(Some(#n)),
                    None => quote!(None),
                };
                let (min, max) = (short(*min), short(*max));
                quote!(.length(#min, #max))
            }
            Rule::Range { .. } | Rule::Custom(_) => continue,
            Rule::Email => quote!(.format("email")),
            Rule::Url => quote!(.format("uri")),
            Rule::Regex(pattern) => quote!(.pattern(#pattern)),
        };
        entry = quote!(#entry #set);
    }
    if column.field.kind == TypeKind::Other {
        let f = choices_fn(column.field);
        entry = quote!(#entry.choices(#f));
    }
    entry
}

fn lit_f64(lit: &syn::Lit) -> Option<f64> {
    match lit {
        syn::Lit::Int(i) => i.base10_parse::<f64>().ok(),
        syn::Lit::Float(f) => f.base10_parse::<f64>().ok(),
        _ => None,
    }
}

fn last_segment(ty: &syn::Type) -> Option<String> {
    match crate::ast::ungroup(ty) {
        syn::Type::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

/// `NewX` or `XPatch`.
fn input_struct(
    plan: &Plan<'_>,
    ty: &Ident,
    columns: &[&Column<'_>],
    expected_version: bool,
) -> TokenStream {
    let k = &plan.model.krate;
    let vis = plan.model.vis;
    let patch = ty.to_string().ends_with("Patch");
    let doc = if patch {
        format!(
            "A partial update of a {}: absent fields keep their value; for nullable fields `null` clears it. Unknown fields and server-owned fields are rejected.",
            plan.name
        )
    } else {
        format!(
            "The input that creates a {}. Server-owned fields (key, version, timestamps, actor, tenant) are not part of it; unknown fields are rejected.",
            plan.name
        )
    };
    let fields = columns.iter().map(|c| {
        let ident = c.field.ident;
        let ty = c.field.ty;
        let inner = c.field.inner;
        let doc = format!("`{}`", c.field.name());
        // Integers take integral numbers written as floats (`1177.0`); a
        // patch of a column that cannot be NULL refuses `null`.
        let int = c.field.kind == TypeKind::Int;
        let with = |helper: &str| format!("{k}::__private::input::{helper}");
        match (patch, c.field.optional) {
            (false, false) if int => {
                let with = with("integer");
                quote!(#[doc = #doc] #[serde(deserialize_with = #with)] pub #ident: #ty)
            }
            (false, false) => quote!(#[doc = #doc] pub #ident: #ty),
            (false, true) if int => {
                let with = with("optional_integer");
                quote!(#[doc = #doc] #[serde(default, deserialize_with = #with)] pub #ident: #ty)
            }
            (false, true) => quote!(#[doc = #doc] #[serde(default)] pub #ident: #ty),
            (true, false) => {
                let with = with(if int { "present_integer" } else { "present" });
                quote! {
                    #[doc = #doc]
                    #[serde(default, skip_serializing_if = "::core::option::Option::is_none", deserialize_with = #with)]
                    pub #ident: ::core::option::Option<#inner>
                }
            }
            (true, true) => {
                let with = with(if int { "double_option_integer" } else { "double_option" });
                quote! {
                    #[doc = #doc]
                    #[serde(default, skip_serializing_if = "::core::option::Option::is_none", deserialize_with = #with)]
                    pub #ident: ::core::option::Option<::core::option::Option<#inner>>
                }
            }
        }
    });
    let version_field = expected_version.then(|| {
        quote! {
            /// The version the row must have for the patch to apply (see `if_version`); never read from the body.
            #[serde(skip)]
            pub expected_version: ::core::option::Option<i64>,
        }
    });
    let default = patch.then(|| quote!(::core::default::Default,));
    let debug = debug_impl(k, ty, columns, expected_version);
    let serde_path = format!("{k}::__private::serde");
    // serde's derive, as inherent functions (`remote = "Self"`), behind
    // trait impls that take only an object: the derive alone also reads a
    // struct from an array of its fields in order (`[]` an empty patch).
    quote! {
        #[doc = #doc]
        #[derive(::core::clone::Clone, #default #k::__private::serde::Deserialize, #k::__private::serde::Serialize)]
        #[serde(crate = #serde_path, deny_unknown_fields, remote = "Self")]
        #vis struct #ty {
            #(#fields,)*
            #version_field
        }
        #debug
        const _: () = {
            #[automatically_derived]
            impl<'de> #k::__private::input::Fields<'de> for #ty {
                fn from_fields<D: #k::__private::serde::Deserializer<'de>>(deserializer: D) -> ::core::result::Result<Self, D::Error> {
                    #ty::deserialize(deserializer)
                }
            }
            #[automatically_derived]
            impl<'de> #k::__private::serde::Deserialize<'de> for #ty {
                fn deserialize<D: #k::__private::serde::Deserializer<'de>>(deserializer: D) -> ::core::result::Result<Self, D::Error> {
                    #k::__private::input::object(deserializer)
                }
            }
            #[automatically_derived]
            impl #k::__private::serde::Serialize for #ty {
                fn serialize<S: #k::__private::serde::Serializer>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error> {
                    #ty::serialize(self, serializer)
                }
            }
        };
    }
}

/// `Debug` that prints `[redacted]` for `#[audit(redact)]` fields.
fn debug_impl(
    k: &TokenStream,
    ty: &Ident,
    columns: &[&Column<'_>],
    expected_version: bool,
) -> TokenStream {
    let name = ty.to_string();
    let entries = columns.iter().map(|c| {
        let ident = c.field.ident;
        let label = c.field.name();
        if c.field.is_redacted() {
            quote!(.field(#label, &#k::__private::audit::REDACTED))
        } else {
            quote!(.field(#label, &self.#ident))
        }
    });
    let version =
        expected_version.then(|| quote!(.field("expected_version", &self.expected_version)));
    quote! {
        #[automatically_derived]
        impl ::core::fmt::Debug for #ty {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#name) #(#entries)* #version .finish()
            }
        }
    }
}

/// The body of `validate_create` / `validate_patch`, or `None` when no field has a rule.
fn validation(k: &TokenStream, columns: &[&Column<'_>], patch: bool) -> Option<TokenStream> {
    let checks: Vec<TokenStream> = columns
        .iter()
        .filter(|c| !c.rules.is_empty() || c.field.kind == TypeKind::Text)
        .map(|c| {
            let ident = c.field.ident;
            let pointer = format!("/{}", c.field.name());
            let inner = c.field.value;
            // Every text field: no control characters (no attribute needed).
            let text = (c.field.kind == TypeKind::Text)
                .then(|| quote!(#k::__private::validate::text(&mut errors, #pointer, value);));
            let rules = c.rules.iter().map(|rule| match &rule.value {
                Rule::Length { min, max } => {
                    let (min, max) = (opt_u64(*min), opt_u64(*max));
                    quote!(#k::__private::validate::length(&mut errors, #pointer, value, #min, #max);)
                }
                Rule::Range { min, max } => {
                    let bound = |b: &Option<syn::Lit>| match b {
                        Some(lit) => quote!(::core::option::Option::Some((#lit) as #inner)),
                        None => quote!(::core::option::Option::None),
                    };
                    let (min, max) = (bound(min), bound(max));
                    quote!(#k::__private::validate::range(&mut errors, #pointer, *value, #min, #max);)
                }
                Rule::Email => quote!(#k::__private::validate::email(&mut errors, #pointer, value);),
                Rule::Url => quote!(#k::__private::validate::url(&mut errors, #pointer, value);),
                Rule::Regex(pattern) => quote! {{
                    static PATTERN: ::std::sync::LazyLock<#k::__private::regex::Regex> =
                        ::std::sync::LazyLock::new(|| {
                            #k::__private::regex::Regex::new(#pattern)
                                .expect("the pattern was checked when the derive expanded")
                        });
                    #k::__private::validate::pattern(&mut errors, #pointer, value, &PATTERN);
                }},
                Rule::Custom(path) => quote!(#k::__private::validate::custom(&mut errors, #pointer, #path(value));),
            });
            let binding = match (patch, c.field.optional) {
                (false, false) => quote!(let ::core::option::Option::Some(value) = ::core::option::Option::Some(&input.#ident)),
                (false, true) | (true, false) => quote!(let ::core::option::Option::Some(value) = &input.#ident),
                (true, true) => quote!(let ::core::option::Option::Some(::core::option::Option::Some(value)) = &input.#ident),
            };
            // A `Redacted<T>` field's rules check the `T` inside.
            let unwrap = c.field.redacted_type.then(|| quote!(let value = #k::__private::Redacted::get(value);));
            quote! {
                if #binding {
                    #unwrap
                    #text
                    #(#rules)*
                }
            }
        })
        .collect();
    (!checks.is_empty()).then(|| quote!(#(#checks)*))
}

fn opt_u64(v: Option<u64>) -> TokenStream {
    match v {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    }
}

/// `#[derive(Audit)]`.
pub(crate) fn audit(model: &EntityModel<'_>) -> TokenStream {
    let k = &model.krate;
    let ident = model.ident;
    let recorded: Vec<&FieldModel<'_>> = model
        .fields
        .iter()
        .filter(|f| f.audit.skip.is_none())
        .collect();
    let redacted: Vec<String> = recorded
        .iter()
        .filter(|f| f.is_redacted())
        .map(|f| f.name())
        .collect();
    let diffs = recorded.iter().map(|f| {
        let field = f.ident;
        let name = f.name();
        if f.is_redacted() {
            quote!(#k::__private::audit::redacted(&mut changes, #name, &old.#field, &new.#field);)
        } else {
            quote!(#k::__private::audit::field(&mut changes, #name, &old.#field, &new.#field);)
        }
    });
    let puts = recorded.iter().map(|f| {
        let field = f.ident;
        let name = f.name();
        if f.is_redacted() {
            quote!(#k::__private::audit::put_redacted(&mut map, #name);)
        } else {
            quote!(#k::__private::audit::put(&mut map, #name, &self.#field);)
        }
    });
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #k::__private::Audit for #ident {
                const REDACTED_FIELDS: &'static [&'static str] = &[#(#redacted),*];

                fn diff(old: &Self, new: &Self) -> ::std::vec::Vec<#k::__private::Change> {
                    let mut changes = ::std::vec::Vec::new();
                    #(#diffs)*
                    changes
                }

                fn snapshot(&self) -> #k::__private::serde_json::Value {
                    let mut map = #k::__private::serde_json::Map::new();
                    #(#puts)*
                    #k::__private::serde_json::Value::Object(map)
                }
            }
        };
    }
}

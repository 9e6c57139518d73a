//! Derive macros of [Keel](https://docs.rs/keel). Use them through the
//! `keel` crate (`#[derive(keel::Service, keel::Audit)]`), which re-exports
//! them; the generated code names only `::keel::...` paths.
//!
//! Each derive runs the same pipeline: `attr` parses the attributes into
//! typed values that keep their spans, `ast` builds a borrowed model of the
//! struct, `valid` does every semantic check (collecting all errors, each
//! pointing at the offending tokens), and `expand` writes the code.

mod ast;
mod attr;
mod errors;
mod expand;
mod valid;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

use crate::errors::Errors;

#[doc = include_str!("../docs/service.md")]
#[proc_macro_derive(Service, attributes(service, audit))]
pub fn derive_service(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let mut errors = Errors::default();
    let Some(model) = ast::EntityModel::from_syn(&input, &mut errors, "Service") else {
        return errors.to_compile_errors().into();
    };
    let plan = valid::check(&model, &mut errors);
    let mut out = errors.to_compile_errors();
    // Without a table name there is no sea-orm `Entity` to implement for.
    if model.sea.table_name.is_some() {
        out.extend(expand::service(&plan));
    }
    out.into()
}

#[doc = include_str!("../docs/audit.md")]
#[proc_macro_derive(Audit, attributes(audit, service))]
pub fn derive_audit(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let mut errors = Errors::default();
    let Some(model) = ast::EntityModel::from_syn(&input, &mut errors, "Audit") else {
        return errors.to_compile_errors().into();
    };
    for field in &model.fields {
        if let (Some(_), Some(redact)) = (field.audit.skip, field.audit.redact) {
            errors.at_span(redact, format!("`{}` is both skipped and redacted; a skipped field is never recorded, so choose one", field.name()));
        }
    }
    let mut out = errors.to_compile_errors();
    out.extend(expand::audit(&model));
    out.into()
}

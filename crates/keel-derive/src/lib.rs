//! Derive macros of [Keel](https://docs.rs/keel-rs). Use them through the
//! `keel` library (package `keel-rs`: `#[derive(keel::Service, keel::Audit)]`),
//! which re-exports them. The generated code names only paths under keel's
//! hidden `__private` module, reached as the crate being compiled knows
//! keel: `#[service(crate = "...")]`, else the name its `Cargo.toml` gives
//! the `keel-rs` dependency, else `::keel` (see `krate`).
//!
//! Each derive runs the same pipeline: `attr` parses the attributes into
//! typed values that keep their spans, `ast` builds a borrowed model of the
//! struct, `valid` does every semantic check (collecting all errors, each
//! pointing at the offending tokens), and `expand` writes the code.

mod ast;
mod attr;
mod errors;
mod expand;
mod krate;
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
    valid::audit(&model, &mut errors);
    let mut out = errors.to_compile_errors();
    out.extend(expand::audit(&model));
    out.into()
}

#[cfg(test)]
mod size {
    //! How much code the derives write for a typical entity (the one of
    //! `bench/derive-build`), formatted by rustfmt. A guard against the
    //! generated code growing: shared logic belongs in the core.

    use std::io::Write;
    use std::process::{Command, Stdio};

    use super::{ast, errors::Errors, expand, valid};

    const ENTITY: &str = r#"
        #[sea_orm(table_name = "items")]
        #[service(name = "item", soft_delete = "deleted_at")]
        pub struct Model {
            #[sea_orm(primary_key)] #[service(filter, sort)] pub id: i64,
            #[sea_orm(unique)] #[service(filter(eq, has), sort, validate(length(min = 1, max = 64)))] pub sku: String,
            #[service(filter, sort, validate(length(min = 1, max = 200)))] pub name: String,
            #[service(filter(eq, has))] pub description: Option<String>,
            #[service(filter, sort, validate(range(min = 0)))] pub price_cents: i64,
            #[service(filter, sort)] pub stock: i32,
            #[service(filter)] pub active: bool,
            #[audit(redact)] pub supplier_token: Option<String>,
            #[service(version)] pub version: i32,
            #[service(created_at, filter, sort)] pub created_at: DateTimeUtc,
            #[service(updated_at)] pub updated_at: DateTimeUtc,
            #[service(created_by)] pub created_by: String,
            #[service(updated_by)] pub updated_by: String,
            pub deleted_at: Option<DateTimeUtc>,
        }
    "#;

    fn formatted_lines(code: &str) -> usize {
        let mut rustfmt = Command::new("rustfmt")
            .args(["--edition", "2024", "--emit", "stdout"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("rustfmt runs");
        rustfmt
            .stdin
            .take()
            .expect("stdin")
            .write_all(code.as_bytes())
            .expect("write");
        let out = rustfmt.wait_with_output().expect("rustfmt output");
        assert!(out.status.success(), "rustfmt failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    }

    #[test]
    fn generated_lines_per_entity() {
        let input: syn::DeriveInput = syn::parse_str(ENTITY).expect("entity parses");
        let mut errors = Errors::default();
        let model = ast::EntityModel::from_syn(&input, &mut errors, "Service").expect("a struct");
        let plan = valid::check(&model, &mut errors);
        assert!(
            errors.to_compile_errors().is_empty(),
            "the bench entity is valid"
        );
        let service = formatted_lines(&expand::service(&plan).to_string());
        let audit = formatted_lines(&expand::audit(&model).to_string());
        println!("generated lines for one 14-field entity: Service {service}, Audit {audit}");
        // 492 lines in November 2026, after inputs became object-only (three
        // one-line trait impls per input) and enum fields got their value lists.
        assert!(service < 520, "Service generates {service} lines");
        assert!(audit < 120, "Audit generates {audit} lines");
    }
}

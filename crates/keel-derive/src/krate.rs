//! Where generated code finds keel: `#[service(crate = "...")]` when the
//! struct says, else the name the crate being compiled gives the `keel-rs`
//! package in its `Cargo.toml` (renamed or not), else `::keel`.

use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Ident, Path};

/// The package generated code depends on.
const PACKAGE: &str = "keel-rs";

/// The path of the keel crate for generated code.
pub(crate) fn path(explicit: Option<&Path>) -> TokenStream {
    if let Some(path) = explicit {
        return quote!(#path);
    }
    // Not found (a crate that reaches keel through another crate of its
    // own, which should then say `crate = "..."`) or keel's own examples
    // and doc tests (`Itself`): both know keel as `keel`.
    let name = match crate_name(PACKAGE) {
        Ok(FoundCrate::Name(name)) => extern_name(&name),
        Ok(FoundCrate::Itself) | Err(_) => "keel".to_owned(),
    };
    let ident = Ident::new(&name, Span::call_site());
    quote!(::#ident)
}

/// The extern name of a dependency whose key in `Cargo.toml` sanitises to
/// `key`: a dependency written under the package's own name
/// (`keel-rs = "0.1"`, as `cargo add keel-rs` writes it) is known by its
/// library's name, `keel`; a renamed one (`engine = { package = "keel-rs" }`)
/// by its key.
fn extern_name(key: &str) -> String {
    if key == PACKAGE.replace('-', "_") {
        "keel".to_owned()
    } else {
        key.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dependency_under_the_package_name_is_known_by_the_library_name() {
        assert_eq!(extern_name("keel_rs"), "keel");
        assert_eq!(extern_name("keel"), "keel");
        assert_eq!(extern_name("engine"), "engine");
    }

    #[test]
    fn an_explicit_path_wins() {
        let given: Path = syn::parse_str("crate::facade::keel").unwrap();
        assert_eq!(
            path(Some(&given)).to_string(),
            quote!(crate::facade::keel).to_string()
        );
    }
}

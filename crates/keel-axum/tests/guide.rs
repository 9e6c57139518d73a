//! docs/guide.md and `examples/guide.rs` never drift apart: every Rust
//! snippet of the guide is a marked region of the example (which CI
//! compiles), every region is in the guide, and the guide's `Cargo.toml`
//! names the versions the workspace builds with.

use std::collections::BTreeMap;

const GUIDE: &str = include_str!("../../../docs/guide.md");
const EXAMPLE: &str = include_str!("../examples/guide.rs");
const WORKSPACE: &str = include_str!("../../../Cargo.toml");

/// The fenced blocks of `language`.
fn blocks(markdown: &str, language: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_end() == format!("```{language}") => current = Some(Vec::new()),
            Some(lines) if line.trim_end() == "```" => {
                out.push(lines.join("\n"));
                current = None;
            }
            Some(lines) => lines.push(line),
            None => {}
        }
    }
    out
}

/// `// guide:NAME` ... `// guide:end` regions, dedented.
fn regions(source: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in source.lines() {
        let marker = line.trim().strip_prefix("// guide:");
        match (&mut current, marker) {
            (None, Some(name)) if name != "end" => current = Some((name.to_owned(), Vec::new())),
            (Some(_), Some("end")) => {
                let (name, lines) = current.take().expect("in a region");
                let indent = lines
                    .iter()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.len() - l.trim_start().len())
                    .min()
                    .unwrap_or(0);
                let text: Vec<&str> = lines
                    .iter()
                    .map(|l| {
                        if l.len() >= indent {
                            &l[indent..]
                        } else {
                            l.trim_start()
                        }
                    })
                    .collect();
                out.insert(name, text.join("\n"));
            }
            (Some((_, lines)), _) => lines.push(line),
            _ => {}
        }
    }
    assert!(current.is_none(), "a region is not closed");
    out
}

#[test]
fn every_snippet_is_a_part_of_the_compiled_example() {
    let snippets = blocks(GUIDE, "rust");
    let regions = regions(EXAMPLE);
    assert!(regions.len() >= 5, "{:?}", regions.keys());
    for snippet in &snippets {
        assert!(
            regions.values().any(|r| r == snippet),
            "this snippet of docs/guide.md is not a region of examples/guide.rs:\n{snippet}"
        );
    }
    for (name, region) in &regions {
        assert!(
            snippets.contains(region),
            "region {name} of examples/guide.rs is not in docs/guide.md"
        );
    }
}

#[test]
fn the_cargo_toml_of_the_guide_names_the_workspace_versions() {
    let toml = blocks(GUIDE, "toml");
    assert_eq!(toml.len(), 1);
    let version_of = |line: &str| -> Option<String> {
        let start = line
            .find("version = \"")
            .map(|i| i + 11)
            .or_else(|| line.split_once("= \"").map(|(head, _)| head.len() + 3))?;
        Some(line[start..].split('"').next()?.to_owned())
    };
    let workspace: BTreeMap<&str, &str> = WORKSPACE
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(k, v)| (k.trim(), v)))
        .collect();
    let mut checked = 0;
    for line in toml[0].lines().skip(1) {
        let (name, _) = line.split_once(" = ").expect("name = ...");
        let wanted = version_of(line).expect("a version");
        let ours = match name {
            "keel-rs" | "keel-axum" => "0.1".to_owned(),
            other => version_of(
                workspace
                    .get(other)
                    .unwrap_or_else(|| panic!("{other} is not a workspace dependency")),
            )
            .expect("a workspace version"),
        };
        assert_eq!(wanted, ours, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 7);
}

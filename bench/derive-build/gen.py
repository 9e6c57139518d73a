#!/usr/bin/env python3
"""Writes two crates with N product-like entities each: `plain` (sea-orm
only) and `derived` (the same structs plus #[derive(Service, Audit)] and
their attributes). Usage: gen.py OUT_DIR KEEL_PATH [N]"""
import pathlib
import sys

out = pathlib.Path(sys.argv[1])
keel = pathlib.Path(sys.argv[2]).resolve()
n = int(sys.argv[3]) if len(sys.argv) > 3 else 30

FIELDS = [
    # (name, type, sea_orm attr, service attr, audit attr)
    ("id", "i64", "#[sea_orm(primary_key)]", "#[service(filter, sort)]", ""),
    ("sku", "String", "#[sea_orm(unique)]", "#[service(filter(eq, has), sort, validate(length(min = 1, max = 64)))]", ""),
    ("name", "String", "", "#[service(filter, sort, validate(length(min = 1, max = 200)))]", ""),
    ("description", "Option<String>", "", "#[service(filter(eq, has))]", ""),
    ("price_cents", "i64", "", "#[service(filter, sort, validate(range(min = 0)))]", ""),
    ("stock", "i32", "", "#[service(filter, sort)]", ""),
    ("active", "bool", "", "#[service(filter)]", ""),
    ("supplier_token", "Option<String>", "", "", "#[audit(redact)]"),
    ("version", "i32", "", "#[service(version)]", ""),
    ("created_at", "DateTimeUtc", "", "#[service(created_at, filter, sort)]", ""),
    ("updated_at", "DateTimeUtc", "", "#[service(updated_at)]", ""),
    ("created_by", "String", "", "#[service(created_by)]", ""),
    ("updated_by", "String", "", "#[service(updated_by)]", ""),
    ("deleted_at", "Option<DateTimeUtc>", "", "", ""),
]


def entity(i: int, derived: bool) -> str:
    derives = "Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize"
    lines = ["use sea_orm::entity::prelude::*;", "use serde::{Deserialize, Serialize};", ""]
    if derived:
        derives += ", keel::Service, keel::Audit"
    lines.append(f"#[derive({derives})]")
    lines.append(f'#[sea_orm(table_name = "items{i}")]')
    if derived:
        lines.append(f'#[service(name = "item{i}", soft_delete = "deleted_at")]')
    lines.append("pub struct Model {")
    for name, ty, sea, service, audit in FIELDS:
        for attr in (sea, service if derived else "", audit if derived else ""):
            if attr:
                lines.append(f"    {attr}")
        lines.append(f"    pub {name}: {ty},")
    lines.append("}")
    lines.append("")
    lines.append("#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]")
    lines.append("pub enum Relation {}")
    lines.append("")
    lines.append("impl ActiveModelBehavior for ActiveModel {}")
    return "\n".join(lines) + "\n"


for kind in ("plain", "derived"):
    root = out / kind
    (root / "src").mkdir(parents=True, exist_ok=True)
    deps = [
        'sea-orm = { version = "2.0.4", default-features = false, features = ["macros", "with-chrono", "with-json", "with-uuid", "with-time"] }',
        'serde = { version = "1", features = ["derive"] }',
    ]
    if kind == "derived":
        deps.append(f'keel-rs = {{ path = "{keel}" }}')
    (root / "Cargo.toml").write_text(
        f'[package]\nname = "build-{kind}"\nversion = "0.0.0"\nedition = "2024"\npublish = false\n\n'
        "[workspace]\n\n[dependencies]\n" + "\n".join(deps) + "\n"
    )
    mods = "\n".join(f"pub mod item{i};" for i in range(n))
    (root / "src" / "lib.rs").write_text("#![allow(missing_docs)]\n" + mods + "\n")
    for i in range(n):
        (root / "src" / f"item{i}.rs").write_text(entity(i, kind == "derived"))

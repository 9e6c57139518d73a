#!/usr/bin/env python3
"""Lists the public API of a crate from its rustdoc JSON: one line per item
reachable from the crate root (modules, re-exports followed), with its kind
and path; the public fields, variants and methods of each type; the
provided and required items of each trait. `#[doc(hidden)]` items (the
`__private` module generated code uses) are left out.

    surface.py target/doc/keel.json > api/keel.txt
"""
import json
import sys


def main(path):
    doc = json.load(open(path))
    index = doc["index"]
    root = doc["root"]
    crate = index[str(root)]["name"]
    lines = set()
    seen = set()

    def hidden(item):
        attrs = item.get("attrs") or []
        text = json.dumps(attrs)
        return "doc(hidden)" in text.replace(" ", "") or '"hidden"' in text

    def public(item):
        return item.get("visibility") == "public"

    def kind_of(item):
        return next(iter(item["inner"])) if isinstance(item.get("inner"), dict) else "?"

    def members(item, prefix):
        inner = item["inner"]
        kind = kind_of(item)
        body = inner[kind]
        if kind == "struct":
            fields = body.get("kind", {})
            if isinstance(fields, dict) and "plain" in fields:
                for fid in fields["plain"].get("fields", []):
                    f = index.get(str(fid))
                    if f and public(f) and not hidden(f):
                        lines.add(f"field {prefix}::{f['name']}")
        if kind == "enum":
            for vid in body.get("variants", []):
                v = index.get(str(vid))
                if v and not hidden(v):
                    lines.add(f"variant {prefix}::{v['name']}")
        if kind == "trait":
            for iid in body.get("items", []):
                m = index.get(str(iid))
                if m and not hidden(m):
                    lines.add(f"{kind_of(m)} {prefix}::{m['name']}")
        for impl_id in body.get("impls", []) if isinstance(body, dict) else []:
            imp = index.get(str(impl_id))
            if not imp or hidden(imp):
                continue
            ib = imp["inner"]["impl"]
            if ib.get("is_synthetic") or ib.get("blanket_impl") is not None:
                continue
            trait = ib.get("trait")
            if trait is not None:
                name = trait.get("path") or trait.get("name")
                lines.add(f"impl {name} for {prefix}")
                continue
            for mid in ib.get("items", []):
                m = index.get(str(mid))
                if m and public(m) and not hidden(m):
                    lines.add(f"{kind_of(m)} {prefix}::{m['name']}")

    def walk(item_id, prefix):
        item = index.get(str(item_id))
        if item is None or hidden(item):
            return
        kind = kind_of(item)
        if kind == "use":
            use = item["inner"]["use"]
            target = use.get("id")
            if target is None:
                return
            if use.get("is_glob"):
                t = index.get(str(target))
                if t and kind_of(t) == "module":
                    for child in t["inner"]["module"]["items"]:
                        walk(child, prefix)
                return
            t = index.get(str(target))
            if t is None:
                # An item of another crate, re-exported.
                lines.add(f"reexport {prefix}::{use['name']} = {use['source']}")
                return
            visit(t, f"{prefix}::{use['name']}")
            return
        if not public(item):
            return
        visit(item, f"{prefix}::{item['name']}" if item.get("name") else prefix)

    paths = {}

    def visit(item, path):
        if hidden(item):
            return
        key = (item["id"], path)
        if key in seen:
            return
        seen.add(key)
        paths.setdefault(item["id"], []).append(path)
        if kind_of(item) == "module":
            for child in item["inner"]["module"]["items"]:
                walk(child, path)

    for child in index[str(root)]["inner"]["module"]["items"]:
        walk(child, crate)
    # Each item is described once, at its shortest path; its other paths
    # (the prelude, re-exports) are listed as aliases of that one.
    for item_id, found in paths.items():
        item = index[str(item_id)]
        found = sorted(set(found), key=lambda p: (p.count("::"), p))
        canonical = found[0]
        lines.add(f"{kind_of(item)} {canonical}")
        if kind_of(item) != "module":
            members(item, canonical)
        for other in found[1:]:
            lines.add(f"alias {other} = {canonical}")
    print("\n".join(sorted(lines)))


if __name__ == "__main__":
    main(sys.argv[1])

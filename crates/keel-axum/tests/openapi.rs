//! The OpenAPI document for every field type the derive accepts.

use keel_axum::ApiDoc;
use keel_tests::entities::{invoice, label, memo, product, project, ticket};
use serde_json::{Value, json};

/// The paths where `a` and `b` differ.
fn diff(at: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => diff(&format!("{at}/{k}"), v, w, out),
                    None => out.push(format!("{at}/{k}: dropped")),
                }
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                out.push(format!("{at}/{k}: added {}", y[k]));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                diff(&format!("{at}/{i}"), v, w, out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{at}: {a} became {b}")),
    }
}

fn doc() -> ApiDoc {
    ApiDoc::new("shapes", "1.0.0")
        .resource::<invoice::Entity>()
        .resource::<label::Entity>()
        .resource::<memo::Entity>()
        .resource::<project::Entity>()
        .resource::<ticket::Entity>()
        .resource::<product::Entity>()
        .ops()
        .bearer_auth()
}

#[test]
fn every_field_type_builds_and_utoipa_keeps_all_of_it() {
    let doc = doc();
    let written = doc.to_json();
    let built = serde_json::to_value(doc.build()).unwrap();
    let mut differences = Vec::new();
    diff("", &written, &built, &mut differences);
    assert!(
        differences.is_empty(),
        "utoipa's form differs: {differences:#?}"
    );

    let invoice = &written["components"]["schemas"]["Invoice"]["properties"];
    assert_eq!(
        invoice["state"],
        json!({"type": "string", "enum": ["draft", "sent", "paid", "written_off"]}),
        "{invoice:#}"
    );
    assert_eq!(invoice["lines"], json!({}), "any JSON value: {invoice:#}");
    assert_eq!(invoice["amount"]["type"], "number");
    assert_eq!(invoice["due_on"]["type"], json!(["string", "null"]));
    assert_eq!(invoice["by_post"]["type"], "boolean");
    assert_eq!(invoice["id"]["format"], "uuid");
    let new_invoice = &written["components"]["schemas"]["NewInvoice"]["properties"];
    assert_eq!(new_invoice["state"]["enum"][3], "written_off");
    let ticket = &written["components"]["schemas"]["Ticket"]["properties"];
    assert_eq!(ticket["status"]["enum"], json!(["open", "closed"]));
}

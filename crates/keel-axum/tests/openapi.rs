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

/// A row with every field type the derive accepts.
#[allow(unreachable_pub)]
mod every {
    use keel::Redacted;
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(
        Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
    )]
    #[sea_orm(rs_type = "i32", db_type = "Integer")]
    pub enum Level {
        #[sea_orm(num_value = 1)]
        Low,
        #[sea_orm(num_value = 2)]
        High,
    }

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, keel::Service)]
    #[sea_orm(table_name = "everything")]
    pub struct Model {
        #[sea_orm(primary_key)]
        #[service(filter, sort)]
        pub id: i64,
        #[service(filter, sort)]
        pub tiny: i8,
        pub small: i16,
        pub int: i32,
        pub byte: u8,
        pub word: u16,
        #[service(validate(range(max = 1000)))]
        pub unsigned: u32,
        pub big_unsigned: u64,
        pub single: f32,
        pub double: Option<f64>,
        pub flag: bool,
        pub text: String,
        pub secret: Redacted<String>,
        pub uuid: Uuid,
        pub date: Date,
        pub time: Time,
        pub naive: DateTime,
        pub utc: DateTimeUtc,
        pub offset: DateTimeWithTimeZone,
        pub time_date: TimeDate,
        pub time_time: TimeTime,
        pub time_at: TimeDateTime,
        pub time_offset: TimeDateTimeWithTimeZone,
        pub json: Json,
        pub maybe_json: Option<Json>,
        pub bytes: Vec<u8>,
        #[service(filter)]
        pub level: Level,
        pub maybe_level: Option<Level>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[test]
fn the_document_states_each_type_exactly() {
    let doc = ApiDoc::new("every", "1").resource::<every::Entity>();
    let written = doc.to_json();
    let built = serde_json::to_value(doc.build()).unwrap();
    let mut differences = Vec::new();
    diff("", &written, &built, &mut differences);
    assert!(differences.is_empty(), "{differences:#?}");
    let row = &written["components"]["schemas"]["Everything"]["properties"];
    let expect = |field: &str, schema: Value| assert_eq!(row[field], schema, "{field}: {row:#}");
    expect(
        "tiny",
        json!({"type": "integer", "format": "int32", "minimum": -128, "maximum": 127}),
    );
    expect(
        "byte",
        json!({"type": "integer", "format": "int32", "minimum": 0, "maximum": 255}),
    );
    expect(
        "unsigned",
        json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": 1000}),
    );
    expect(
        "int",
        json!({"type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX}),
    );
    expect("single", json!({"type": "number", "format": "double"}));
    expect(
        "double",
        json!({"type": ["number", "null"], "format": "double"}),
    );
    expect("secret", json!({"type": "string"}));
    expect("time", json!({"type": "string", "format": "time"}));
    expect(
        "time_offset",
        json!({"type": "string", "format": "date-time"}),
    );
    expect("json", json!({}));
    expect("maybe_json", json!({}));
    expect(
        "bytes",
        json!({"type": "string", "contentEncoding": "base64"}),
    );
    expect("level", json!({"type": "string", "enum": ["Low", "High"]}));
    expect(
        "maybe_level",
        json!({"type": ["string", "null"], "enum": ["Low", "High", null]}),
    );
    assert_eq!(row["id"]["readOnly"], true);
    let id = &written["paths"]["/everything/{id}"]["get"]["parameters"][0]["schema"];
    assert_eq!(id["minimum"], i64::MIN);
    assert_eq!(id["maximum"], i64::MAX);
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

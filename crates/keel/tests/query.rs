//! The filter and order parsers, without a database: parse trees, the SQL
//! they become, and properties over arbitrary input.

use keel::query::{Filter, OrderBy, QueryLimits};
use keel::{Field, Ops, Resource};
use proptest::prelude::*;
use sea_orm::{DbBackend, EntityTrait, QueryFilter, QueryTrait, Value};

mod item {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
    #[sea_orm(table_name = "items")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub name: String,
        pub note: Option<String>,
        pub price: i32,
        pub weight: f64,
        pub active: bool,
        pub seen_at: DateTimeUtc,
        pub owner: Uuid,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use item::{Column, Entity as Item};

impl Resource for Item {
    type Key = i64;
    type Create = ();
    type Patch = ();
    const NAME: &'static str = "item";
    const PLURAL: &'static str = "items";
    const FIELDS: &'static [Field<Self>] = &[
        Field::new("id", Column::Id).filter(Ops::ORDERED).sortable(),
        Field::new("name", Column::Name).filter(Ops::ALL).sortable(),
        Field::new("note", Column::Note).filter(Ops::EQUALITY.with(Ops::HAS)),
        Field::new("price", Column::Price)
            .filter(Ops::ORDERED.with(Ops::IN))
            .sortable(),
        Field::new("weight", Column::Weight).filter(Ops::ORDERED),
        Field::new("active", Column::Active).filter(Ops::EQUALITY),
        Field::new("seen_at", Column::SeenAt)
            .filter(Ops::ORDERED)
            .sortable(),
        Field::new("owner", Column::Owner).filter(Ops::EQUALITY),
    ];
    fn create_model(_: ()) -> item::ActiveModel {
        item::ActiveModel::default()
    }
    fn apply_patch(_: (), _: &mut item::ActiveModel) {}
}

fn parse(text: &str) -> Filter<Item> {
    Filter::<Item>::parse(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .expect("non-empty")
}

fn sql(filter: &Filter<Item>, backend: DbBackend) -> (String, Vec<Value>) {
    let statement = Item::find()
        .filter(filter.condition(backend))
        .build(backend);
    let values = statement.values.map(|v| v.0).unwrap_or_default();
    (statement.sql, values)
}

#[test]
fn or_binds_tighter_than_and() {
    assert_eq!(
        parse("price > 1 AND name = \"a\" OR name = \"b\"").to_string(),
        r#"(price > 1 AND (name = "a" OR name = "b"))"#
    );
    assert_eq!(
        parse("(price > 1 AND name = 'a') OR active = true").to_string(),
        r#"((price > 1 AND name = "a") OR active = true)"#
    );
    assert_eq!(
        parse("NOT price > 1 AND -active = false").to_string(),
        "(NOT price > 1 AND NOT active = false)"
    );
    assert_eq!(parse("  price>=1  ").to_string(), "price >= 1");
}

#[test]
fn empty_filter_is_none() {
    assert!(Filter::<Item>::parse("").unwrap().is_none());
    assert!(Filter::<Item>::parse("   \t").unwrap().is_none());
}

#[test]
fn literals_are_typed_by_their_field() {
    let (_, values) = sql(&parse("price = 3"), DbBackend::Postgres);
    assert_eq!(values, vec![Value::Int(Some(3))]);
    let (_, values) = sql(&parse("weight > 3"), DbBackend::Postgres);
    assert_eq!(values, vec![Value::Double(Some(3.0))]);
    let (_, values) = sql(&parse("weight > -2.5e1"), DbBackend::Postgres);
    assert_eq!(values, vec![Value::Double(Some(-25.0))]);
    let (_, values) = sql(
        &parse("seen_at >= \"2026-01-02T03:04:05+02:00\""),
        DbBackend::Postgres,
    );
    let at = chrono::DateTime::parse_from_rfc3339("2026-01-02T01:04:05Z")
        .unwrap()
        .to_utc();
    assert_eq!(values, vec![Value::ChronoDateTimeUtc(Some(at))]);
    let owner = uuid::Uuid::now_v7();
    let (_, values) = sql(&parse(&format!("owner = '{owner}'")), DbBackend::Postgres);
    assert_eq!(values, vec![Value::Uuid(Some(owner))]);
    let (sql_text, values) = sql(&parse("note = null"), DbBackend::Postgres);
    assert!(
        sql_text.ends_with(r#"WHERE "items"."note" IS NULL"#),
        "{sql_text}"
    );
    assert!(values.is_empty());
    let (sql_text, _) = sql(&parse("note != null"), DbBackend::Postgres);
    assert!(
        sql_text.ends_with(r#"WHERE "items"."note" IS NOT NULL"#),
        "{sql_text}"
    );
}

#[test]
fn has_is_a_case_insensitive_escaped_like() {
    let (sql_text, values) = sql(&parse(r#"name : "50%_Off!""#), DbBackend::Postgres);
    assert!(
        sql_text.ends_with(r#"WHERE LOWER("items"."name") LIKE LOWER($1) ESCAPE '!'"#),
        "{sql_text}"
    );
    // The database folds both sides alike (SQLite's LOWER() only ASCII).
    assert_eq!(values, vec![Value::String(Some("%50!%!_Off!!%".into()))]);
}

#[test]
fn errors_name_the_problem_and_its_position() {
    let cases = [
        ("nme = \"x\"", 1, "unknown field `nme`"),
        ("price = \"x\"", 9, "takes an integer"),
        ("price = 3000000000", 9, "out of range"),
        ("note < \"x\"", 6, "operator `<` is not allowed"),
        ("name : 3", 8, "`:` takes a quoted string"),
        ("price > 1 AND", 14, "unexpected end of filter"),
        ("(price > 1", 11, "unexpected end of filter"),
        ("price > 1 name = 'x'", 11, "expected AND, OR"),
        ("seen_at > \"2026-13-01\"", 11, "RFC 3339"),
        ("owner = \"not-a-uuid\"", 9, "UUID"),
        ("price = 1 AND AND price = 2", 15, "expected a comparison"),
        ("price = 'a", 9, "unterminated string"),
        ("name = \"a\\q\"", 10, "unknown escape"),
    ];
    for (text, position, needle) in cases {
        let err = Filter::<Item>::parse(text).unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT", "{text}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("position {position}:")),
            "{text}: {message}"
        );
        assert!(message.contains(needle), "{text}: {message}");
    }
}

#[test]
fn limits_are_enforced() {
    let limits = QueryLimits {
        max_filter_length: 30,
        max_clauses: 2,
        max_depth: 2,
        max_contains: 1,
    };
    assert!(Filter::<Item>::parse_with("price > 1 AND price < 9", &limits).is_ok());
    assert!(Filter::<Item>::parse_with(r#"name : "a""#, &limits).is_ok());
    let e = Filter::<Item>::parse_with(r#"name : "a" OR name : "b""#, &limits).unwrap_err();
    assert!(e.to_string().contains("more than 1 `:`"), "{e}");
    let e = Filter::<Item>::parse_with("price > 1 AND price < 9 AND id = 1", &limits).unwrap_err();
    assert!(e.to_string().contains("characters long"), "{e}");
    let e = Filter::<Item>::parse_with("id=1 AND id=2 AND id=3", &limits).unwrap_err();
    assert!(e.to_string().contains("more than 2 comparisons"), "{e}");
    let e = Filter::<Item>::parse_with("((( id = 1 )))", &limits).unwrap_err();
    assert!(e.to_string().contains("nests deeper than 2"), "{e}");
    let e = Filter::<Item>::parse_with("NOT NOT NOT id = 1", &limits).unwrap_err();
    assert!(e.to_string().contains("nests deeper than 2"), "{e}");
}

#[test]
fn order_by_appends_the_primary_key_and_checks_fields() {
    assert_eq!(
        OrderBy::<Item>::parse("price desc, name")
            .unwrap()
            .to_string(),
        "price desc, name, id"
    );
    assert_eq!(OrderBy::<Item>::parse("").unwrap().to_string(), "id");
    assert_eq!(
        OrderBy::<Item>::parse("id desc").unwrap().to_string(),
        "id desc"
    );
    assert_eq!(
        OrderBy::<Item>::parse(" price   DESC ")
            .unwrap()
            .to_string(),
        "price desc, id"
    );
    for (bad, needle) in [
        ("weight", "cannot sort by `weight`"),
        ("price up", "asc` or `desc"),
        ("price, price", "twice"),
        (",", "is empty"),
    ] {
        let e = OrderBy::<Item>::parse(bad).unwrap_err();
        assert_eq!(e.code(), "INVALID_ARGUMENT");
        assert!(e.to_string().contains(needle), "{bad}: {e}");
    }
}

/// Filter-like text: fragments of the grammar glued together at random.
fn filterish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("price".to_owned()),
        Just("name".to_owned()),
        Just("note".to_owned()),
        Just("seen_at".to_owned()),
        Just("owner".to_owned()),
        Just("AND".to_owned()),
        Just("OR".to_owned()),
        Just("NOT".to_owned()),
        Just("-".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("=".to_owned()),
        Just("!=".to_owned()),
        Just("<=".to_owned()),
        Just(">".to_owned()),
        Just(":".to_owned()),
        Just("IN".to_owned()),
        Just(",".to_owned()),
        Just("null".to_owned()),
        Just("true".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| x.to_string()),
        ".{0,12}".prop_map(|s| format!("{s:?}")),
        "[ -~]{0,6}",
    ];
    prop::collection::vec(piece, 0..16).prop_map(|parts| parts.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// No input makes the parser panic, and whatever parses builds SQL on every backend.
    #[test]
    fn arbitrary_input_never_panics(text in prop_oneof![".{0,200}", filterish()]) {
        if let Ok(Some(filter)) = Filter::<Item>::parse(&text) {
            for backend in [DbBackend::Postgres, DbBackend::MySql, DbBackend::Sqlite] {
                let _ = sql(&filter, backend);
            }
        }
    }

    /// A string literal only ever reaches the database as a bound value: the
    /// SQL text is the same whatever the string holds.
    #[test]
    fn string_literals_are_always_bound(s in "[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\n]{0,40}") {
        // (Control characters are refused: the suite's `shapes::a_nul_in_a_filter_string_is_refused`.)
        let quoted = serde_json::to_string(&s).unwrap();
        for (op, template) in [("=", "\"x\""), (":", "\"x\""), ("!=", "'x'")] {
            let filter = parse(&format!("name {op} {quoted}"));
            let reference = parse(&format!("name {op} {template}"));
            for backend in [DbBackend::Postgres, DbBackend::MySql, DbBackend::Sqlite] {
                let (text, values) = sql(&filter, backend);
                let (expected_text, _) = sql(&reference, backend);
                prop_assert_eq!(&text, &expected_text);
                // MySQL compares `=` by collation and as bytes: the value twice.
                let binds = if backend == DbBackend::MySql && op == "=" { 2 } else { 1 };
                prop_assert_eq!(values.len(), binds);
                prop_assert!(values.iter().all(|v| v == &values[0]));
                let Value::String(Some(bound)) = &values[0] else { panic!("{values:?}") };
                if op == ":" {
                    prop_assert!(bound.starts_with('%') && bound.ends_with('%'));
                } else {
                    prop_assert_eq!(bound, &s);
                }
            }
        }
    }

    /// Integers are bound with the column's type, or rejected when they do not fit.
    #[test]
    fn integers_bind_or_are_rejected(n in any::<i64>()) {
        match Filter::<Item>::parse(&format!("price <= {n}")) {
            Ok(Some(filter)) => {
                let (_, values) = sql(&filter, DbBackend::Postgres);
                prop_assert_eq!(values, vec![Value::Int(Some(i32::try_from(n).unwrap()))]);
            }
            Ok(None) => prop_assert!(false, "not empty"),
            Err(e) => {
                prop_assert!(i32::try_from(n).is_err());
                prop_assert!(e.to_string().contains("out of range"));
            }
        }
    }
}

#[test]
fn in_lists() {
    let filter = parse("price IN (1, 2,3) AND name IN ('a')");
    assert_eq!(
        filter.to_string(),
        r#"(price IN (1, 2, 3) AND name IN ("a"))"#
    );
    let (sql_text, values) = sql(&filter, DbBackend::Postgres);
    assert!(
        sql_text.contains(r#""items"."price" IN ($1, $2, $3)"#),
        "{sql_text}"
    );
    assert_eq!(
        values[..3],
        [
            Value::Int(Some(1)),
            Value::Int(Some(2)),
            Value::Int(Some(3))
        ]
    );
    for (text, needle) in [
        ("price IN 1", "parenthesised list"),
        ("price IN ()", "expected a value, found `)`"),
        ("price IN (1 2)", "expected `,` or `)`"),
        ("price IN (null)", "cannot hold null"),
        ("price IN (\"x\")", "takes an integer"),
        ("note IN (\"x\")", "operator `IN` is not allowed"),
        ("price IN (1,", "unexpected end of filter"),
    ] {
        let e = Filter::<Item>::parse(text).unwrap_err();
        assert!(e.to_string().contains(needle), "{text}: {e}");
    }
    let long = format!("price IN ({})", vec!["1"; 101].join(", "));
    let e = Filter::<Item>::parse_with(
        &long,
        &QueryLimits {
            max_filter_length: 10_000,
            ..QueryLimits::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("at most 100 values"), "{e}");
}

#[test]
fn unquoted_timestamps_get_a_hint() {
    let err = Filter::<Item>::parse("seen_at > 2026-01-02T03:04:05Z").unwrap_err();
    let message = err.to_string();
    assert!(message.contains("position 11"), "{message}");
    assert!(message.contains("quote"), "{message}");
}

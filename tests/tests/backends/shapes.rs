//! Entity shapes off the beaten path, on databases created with the server's
//! defaults (MariaDB: `utf8mb4_general_ci`): a client-chosen string key with
//! a second unique field, a UUID key with an enum, JSON, a nullable date, a
//! bool and an f64, a plain table, a tenant-scoped resource whose tenants
//! differ only by case or a trailing space.

use std::time::Duration;

use keel::event::{DomainEvent, Subscription};
use keel::tx::TxOptions;
use keel::{Context, HistoryQuery, ListQuery};
use keel_tests::entities::invoice::{self, InvoicePatch, NewInvoice, State};
use keel_tests::entities::label::{self, LabelPatch, NewLabel};
use keel_tests::entities::memo::{self, NewMemo};
use keel_tests::entities::project::{self, NewProject, ProjectPatch};
use keel_tests::{Backend, Env, all_pages, keel_with_redis, redis_available, redis_url};
use sea_orm::{ConnectionTrait, EntityTrait};
use serde::{Deserialize, Serialize};

keel_tests::cases![
    f64_values_are_exact_in_pages_tokens_cache_and_audit,
    string_keys_and_unique_fields_compare_exactly,
    the_cache_is_keyed_by_the_exact_key,
    tenants_that_differ_by_case_or_a_space_are_apart,
    tenants_are_apart_in_a_table_the_user_created,
    timestamps_keep_microseconds,
    audit_diffs_of_timestamps_are_exact_at_every_precision,
    the_declared_queries_have_their_indexes,
    contains_folds_case_beyond_ascii_where_the_database_can,
    a_nul_in_a_filter_string_is_refused,
    enum_filters_take_the_json_form_and_refuse_unknown_values,
    entity_subscriptions_get_write_events_only,
    an_expected_version_on_an_unversioned_resource_is_refused,
    a_plain_table_serves_every_operation,
    redacted_values_stay_out_of_debug_audit_and_events,
    without_the_in_process_tier_no_instance_reads_an_old_version,
    migrate_brings_an_older_audit_table_up_to_date,
    check_schema_names_what_a_users_table_cannot_give_and_how_to_fix_it,
    control_characters_are_refused_in_text_and_a_nul_in_json_is_never_a_500,
    a_unique_collision_names_a_field_from_the_tenants_own_rows_only,
];

fn alice() -> Context {
    Context::actor("alice")
}

/// 250 amounts, a quarter of which a float parser that is not exact reads
/// back one step off (`1000.3666666666667` -> `1000.3666666666668`).
fn amounts() -> Vec<f64> {
    (0..250u32)
        .map(|i| 1000.0 + f64::from(i) * 1.1 / 3.0)
        .collect()
}

async fn f64_values_are_exact_in_pages_tokens_cache_and_audit(env: Env) {
    let shared = prefix();
    let keel = if redis_available() {
        keel_with_redis(&env, &redis_url(), &shared).await
    } else {
        env.keel.clone()
    };
    let invoices = keel.service::<invoice::Entity>();
    let mut created = Vec::new();
    for amount in amounts() {
        let row = invoices
            .create(&alice(), NewInvoice::new("Ada", amount))
            .await
            .unwrap();
        assert_eq!(row.amount.to_bits(), amount.to_bits(), "create returns it");
        created.push(row);
    }

    // Keyset paging by the f64: every row once, in order (the page token
    // carries the last amount).
    for order in ["amount", "amount desc"] {
        let rows = all_pages(
            &invoices,
            &alice(),
            ListQuery::new().order_by(order).page_size(7),
        )
        .await;
        assert_eq!(rows.len(), created.len(), "{order}: every row exactly once");
        let mut seen: Vec<f64> = rows.iter().map(|r| r.amount).collect();
        let mut want = amounts();
        if order.ends_with("desc") {
            want.reverse();
        }
        assert_eq!(
            seen.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "{order}"
        );
        seen.dedup();
        assert_eq!(seen.len(), created.len());
    }
    // A filter on the exact value finds exactly its row.
    let one = &created[1];
    let page = invoices
        .list(
            &alice(),
            &ListQuery::new().filter(format!("amount = {:?}", one.amount)),
        )
        .await
        .unwrap();
    assert_eq!(page.items, vec![one.clone()]);

    // The audit history records the values written.
    let updated = invoices
        .update(
            &alice(),
            one.id,
            InvoicePatch::default().amount(created[4].amount),
        )
        .await
        .unwrap();
    let history = keel
        .audit_log()
        .history::<invoice::Entity>(&alice(), one.id, &HistoryQuery::default())
        .await
        .unwrap();
    let change = history.items[0]
        .changes
        .iter()
        .find(|c| c.field == "amount")
        .unwrap();
    assert_eq!(
        change.old.as_f64().map(f64::to_bits),
        Some(one.amount.to_bits())
    );
    assert_eq!(
        change.new.as_f64().map(f64::to_bits),
        Some(updated.amount.to_bits())
    );
    let creation = &history.items[1].changes;
    let amount = creation.iter().find(|c| c.field == "amount").unwrap();
    assert_eq!(
        amount.new.as_f64().map(f64::to_bits),
        Some(one.amount.to_bits())
    );

    // Through the shared cache tier: a second instance (nothing in its
    // process yet) reads every row from Redis exactly as stored.
    if redis_available() {
        let other = keel_with_redis(&env, &redis_url(), &shared).await;
        let on_other = other.service::<invoice::Entity>();
        for row in created.iter().skip(2).take(40) {
            let first = invoices.get(&alice(), row.id).await.unwrap();
            assert_eq!(first.amount.to_bits(), row.amount.to_bits());
            let from_redis = on_other.get(&alice(), row.id).await.unwrap();
            assert_eq!(from_redis.amount.to_bits(), row.amount.to_bits());
            assert_eq!(&from_redis, row);
        }
        assert!(
            other.cache().stats().l2_hits > 0,
            "the second instance read Redis"
        );
    }
}

fn prefix() -> String {
    format!("kt{}", uuid::Uuid::new_v4().simple())
}

async fn string_keys_and_unique_fields_compare_exactly(env: Env) {
    let labels = env.keel.service::<label::Entity>();
    let rust = labels
        .create(&alice(), NewLabel::new("rust", "Rust"))
        .await
        .unwrap();
    for other in ["RUST", "rust ", "Rust", "rüst"] {
        assert_eq!(
            labels.find(&alice(), other.to_owned()).await.unwrap(),
            None,
            "{other:?} is another key"
        );
    }
    // Keys and unique fields that differ only by case, accent or a trailing
    // space are different values.
    let upper = labels
        .create(&alice(), NewLabel::new("RUST", "RUST"))
        .await
        .unwrap();
    let spaced = labels
        .create(&alice(), NewLabel::new("rust ", "Rust "))
        .await
        .unwrap();
    let accented = labels
        .create(&alice(), NewLabel::new("rüst", "Rüst"))
        .await
        .unwrap();
    assert_eq!(labels.get(&alice(), "rust".to_owned()).await.unwrap(), rust);
    assert_eq!(
        labels.get(&alice(), "RUST".to_owned()).await.unwrap(),
        upper
    );
    assert_eq!(
        labels.get(&alice(), "rust ".to_owned()).await.unwrap(),
        spaced
    );
    assert_eq!(
        labels.get(&alice(), "rüst".to_owned()).await.unwrap(),
        accented
    );
    // The same unique value twice is still refused.
    let err = labels
        .create(&alice(), NewLabel::new("other", "Rust"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ALREADY_EXISTS", "{err:?}");

    // `=` and `IN` are exact too.
    for (filter, want) in [
        (r#"slug = "rust""#, vec!["rust"]),
        (r#"slug = "RUST""#, vec!["RUST"]),
        (r#"slug = "rust ""#, vec!["rust "]),
        (r#"title = "rust""#, vec![]),
        (r#"title IN ("Rust", "Rüst")"#, vec!["rust", "rüst"]),
        (
            r#"slug != "rust" AND slug != "RUST""#,
            vec!["rust ", "rüst"],
        ),
    ] {
        let rows = all_pages(
            &labels,
            &alice(),
            ListQuery::new().filter(filter).order_by("slug"),
        )
        .await;
        let mut slugs: Vec<&str> = rows.iter().map(|r| r.slug.as_str()).collect();
        slugs.sort_unstable();
        let mut want = want;
        want.sort_unstable();
        assert_eq!(slugs, want, "{filter}");
    }
    // Deleting one of them deletes that one only.
    labels.delete(&alice(), "RUST".to_owned()).await.unwrap();
    assert_eq!(labels.get(&alice(), "rust".to_owned()).await.unwrap(), rust);
    let count = labels.count(&alice(), &ListQuery::new()).await.unwrap();
    assert_eq!(count, 3);
}

async fn the_cache_is_keyed_by_the_exact_key(env: Env) {
    let keel = if redis_available() {
        keel_with_redis(&env, &redis_url(), &prefix()).await
    } else {
        env.keel.clone()
    };
    let labels = keel.service::<label::Entity>();
    labels
        .create(&alice(), NewLabel::new("rust", "Rust"))
        .await
        .unwrap();
    // A miss on another spelling caches nothing that a write of `rust`
    // would leave behind.
    for _ in 0..2 {
        assert_eq!(
            labels.find(&alice(), "RUST".to_owned()).await.unwrap(),
            None
        );
        assert_eq!(
            labels
                .get(&alice(), "rust".to_owned())
                .await
                .unwrap()
                .colour,
            None
        );
    }
    let updated = labels
        .update(
            &alice(),
            "rust".to_owned(),
            LabelPatch::default().colour(Some("orange".to_owned())),
        )
        .await
        .unwrap();
    assert_eq!(
        labels.get(&alice(), "rust".to_owned()).await.unwrap(),
        updated
    );
    assert_eq!(
        labels.find(&alice(), "RUST".to_owned()).await.unwrap(),
        None
    );
}

fn tenant(name: &str) -> Context {
    Context::actor("alice").with_tenant(name)
}

/// Tenants `acme`, `ACME` and `acme ` each see their own project only.
async fn tenants_are_apart(keel: &keel::Keel) {
    let projects = keel.service::<project::Entity>();
    let names = ["acme", "ACME", "acme ", "ácme"];
    let mut ids = Vec::new();
    for name in names {
        let p = projects
            .create(&tenant(name), NewProject::named(format!("plan of {name}")))
            .await
            .unwrap();
        assert_eq!(p.tenant, name);
        ids.push(p.id);
    }
    for (i, name) in names.iter().enumerate() {
        let ctx = tenant(name);
        let rows = all_pages(&projects, &ctx, ListQuery::new()).await;
        assert_eq!(
            rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![ids[i]],
            "{name:?} lists its own project only"
        );
        assert_eq!(projects.count(&ctx, &ListQuery::new()).await.unwrap(), 1);
        for (j, id) in ids.iter().enumerate() {
            let found = projects.find(&ctx, *id).await.unwrap();
            assert_eq!(found.is_some(), i == j, "{name:?} reading project {j}");
            if i != j {
                let err = projects
                    .update(&ctx, *id, ProjectPatch::default().name("taken"))
                    .await
                    .unwrap_err();
                assert_eq!(err.code(), "NOT_FOUND", "{name:?} writing project {j}");
                let err = projects.delete(&ctx, *id).await.unwrap_err();
                assert_eq!(err.code(), "NOT_FOUND", "{name:?} deleting project {j}");
                let history = keel
                    .audit_log()
                    .history::<project::Entity>(&ctx, *id, &HistoryQuery::default())
                    .await
                    .unwrap();
                assert!(history.items.is_empty(), "{name:?} reading {j}'s history");
            }
        }
    }
    for (i, name) in names.iter().enumerate() {
        let p = projects.get(&tenant(name), ids[i]).await.unwrap();
        assert_eq!(p.name, format!("plan of {name}"), "nothing was overwritten");
    }
}

async fn tenants_that_differ_by_case_or_a_space_are_apart(env: Env) {
    let keel = if redis_available() {
        keel_with_redis(&env, &redis_url(), &prefix()).await
    } else {
        env.keel.clone()
    };
    tenants_are_apart(&keel).await;
}

/// The user's own migration made the table, with the database's default
/// collation: the tenant column still compares exactly.
async fn tenants_are_apart_in_a_table_the_user_created(env: Env) {
    let db = env.keel.db();
    db.execute_unprepared("DROP TABLE projects").await.unwrap();
    let ddl = match env.backend() {
        Backend::MySql => {
            "CREATE TABLE projects (id BIGINT AUTO_INCREMENT PRIMARY KEY, tenant VARCHAR(64) NOT NULL, \
             name VARCHAR(200) NOT NULL, code VARCHAR(20) NULL UNIQUE, handle VARCHAR(20) NULL UNIQUE, version INT NOT NULL)"
        }
        Backend::Postgres => {
            "CREATE TABLE projects (id BIGSERIAL PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, code TEXT NULL UNIQUE, handle TEXT NULL UNIQUE, version INT NOT NULL)"
        }
        Backend::Sqlite => {
            "CREATE TABLE projects (id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, name TEXT NOT NULL, code TEXT NULL UNIQUE, handle TEXT NULL UNIQUE, version INT NOT NULL)"
        }
    };
    db.execute_unprepared(ddl).await.unwrap();
    tenants_are_apart(&env.keel).await;
    if env.backend() == Backend::MySql {
        // Keel says what it cannot make exact in such a table.
        let report = env.keel.check_schema::<project::Entity>().await.unwrap();
        let text = report.to_string();
        assert!(
            report.problems().iter().any(|p| p.column == "name"),
            "{text}"
        );
        assert!(text.contains("utf8mb4_nopad_bin"), "{text}");
        // ... and nothing in a table it created.
        let report = env.keel.check_schema::<label::Entity>().await.unwrap();
        assert!(report.problems().is_empty(), "{report}");
    }
}

async fn timestamps_keep_microseconds(env: Env) {
    let invoices = env.keel.service::<invoice::Entity>();
    let mut rows = Vec::new();
    for i in 0..5 {
        rows.push(
            invoices
                .create(&alice(), NewInvoice::new("Ada", f64::from(i)))
                .await
                .unwrap(),
        );
    }
    // Read back from the database itself (no cache), as written.
    for row in &rows {
        let stored = invoice::Entity::find_by_id(row.id)
            .one(env.keel.db())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.created_at, row.created_at);
        assert_eq!(stored.updated_at, row.updated_at);
    }
    assert!(
        rows.iter()
            .any(|r| r.created_at.timestamp_subsec_micros() % 1000 != 0),
        "microseconds are kept"
    );
    // Two writes in the same second are ordered by their timestamps, and so
    // are their audit entries.
    let first = &rows[0];
    let updated = invoices
        .update(&alice(), first.id, InvoicePatch::default().by_post(true))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    let again = invoices
        .update(&alice(), first.id, InvoicePatch::default().by_post(false))
        .await
        .unwrap();
    assert!(again.updated_at > updated.updated_at);
    assert!(updated.updated_at > first.created_at);
    let history = env
        .keel
        .audit_log()
        .history::<invoice::Entity>(&alice(), first.id, &HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(history.items.len(), 3);
    assert!(
        history.items[0].at > history.items[1].at,
        "audit times do not tie: {:?}",
        history.items.iter().map(|e| e.at).collect::<Vec<_>>()
    );
    assert!(history.items[1].at > history.items[2].at);
}

/// An update's audit entry records a timestamp's old value exactly as the
/// model serialises it, whatever its precision (0, 3 or 6 fractional
/// digits): on PostgreSQL the one-statement update writes that JSON itself.
async fn audit_diffs_of_timestamps_are_exact_at_every_precision(env: Env) {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, QueryFilter};
    let invoices = env.keel.service::<invoice::Entity>();
    let row = invoices
        .create(&alice(), NewInvoice::new("Ada", 1.0))
        .await
        .unwrap();
    let stamps = [
        "2026-03-04T05:06:07Z",
        "2026-03-04T05:06:07.120Z",
        "2026-03-04T05:06:07.000450Z",
        "1999-12-31T23:59:59.999999Z",
    ];
    for (i, stamp) in stamps.into_iter().enumerate() {
        let at: chrono::DateTime<chrono::Utc> = stamp.parse().unwrap();
        invoice::Entity::update_many()
            .col_expr(invoice::Column::UpdatedAt, Expr::value(at))
            .filter(invoice::Column::Id.eq(row.id))
            .exec(env.keel.db())
            .await
            .unwrap();
        let updated = invoices
            .update(
                &alice(),
                row.id,
                InvoicePatch::default().by_post(i % 2 == 0),
            )
            .await
            .unwrap();
        let history = env
            .keel
            .audit_log()
            .history::<invoice::Entity>(&alice(), row.id, &HistoryQuery::default())
            .await
            .unwrap();
        let change = history.items[0]
            .changes
            .iter()
            .find(|c| c.field == "updated_at")
            .expect("updated_at changed");
        assert_eq!(change.old, serde_json::json!(stamp), "old value of {stamp}");
        assert_eq!(
            change.new,
            serde_json::to_value(updated.updated_at).unwrap()
        );
    }
}

/// `create_indexes` makes, once, an index for the key of a soft-deleted
/// resource and for each sortable field; on PostgreSQL a count and a list
/// in a declared order can read them instead of the table.
async fn the_declared_queries_have_their_indexes(env: Env) {
    use keel_tests::entities::product;
    use sea_orm::TransactionTrait;
    let made = env.keel.create_indexes::<product::Entity>().await.unwrap();
    for name in [
        "products_keel_id",
        "products_keel_price_cents",
        "products_keel_sku",
    ] {
        assert!(
            made.iter().any(|m| m == name),
            "{name} missing from {made:?}"
        );
    }
    assert!(
        !made.iter().any(|m| m == "products_keel_description"),
        "only sortable fields: {made:?}"
    );
    let again = env.keel.create_indexes::<product::Entity>().await.unwrap();
    assert!(again.is_empty(), "made twice: {again:?}");
    if env.backend() == Backend::MySql {
        // No partial indexes: `deleted_at` before the field, the tenant first.
        use keel_tests::entities::project;
        env.keel.create_indexes::<project::Entity>().await.unwrap();
        let columns = |index: &'static str| {
            let db = env.keel.db().clone();
            async move {
                db.query_all_raw(sea_orm::Statement::from_sql_and_values(
                    sea_orm::DbBackend::MySql,
                    "SELECT COLUMN_NAME AS c FROM information_schema.STATISTICS \
                     WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME = ? ORDER BY SEQ_IN_INDEX",
                    [index.into()],
                ))
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<String>("", "c").unwrap())
                .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            columns("products_keel_price_cents").await,
            ["deleted_at", "price_cents", "id"]
        );
        assert_eq!(
            columns("projects_keel_name").await,
            ["tenant", "name", "id"]
        );
    }
    if env.backend() != Backend::Postgres {
        return;
    }
    let plan = |sql: &'static str| {
        let db = env.keel.db().clone();
        async move {
            let tx = db.begin().await.unwrap();
            tx.execute_unprepared("SET LOCAL enable_seqscan = off")
                .await
                .unwrap();
            let rows = tx
                .query_all_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    format!("EXPLAIN {sql}"),
                ))
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            rows.iter()
                .map(|r| r.try_get_by_index::<String>(0).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let count = plan("SELECT count(*) FROM products WHERE deleted_at IS NULL").await;
    assert!(count.contains("products_keel_"), "{count}");
    let list = plan(
        "SELECT * FROM products WHERE deleted_at IS NULL ORDER BY price_cents DESC, id DESC LIMIT 20",
    )
    .await;
    assert!(list.contains("products_keel_price_cents"), "{list}");
}

async fn contains_folds_case_beyond_ascii_where_the_database_can(env: Env) {
    let memos = env.keel.service::<memo::Entity>();
    for body in ["ÄPFEL GmbH", "äpfel gmbh", "Apfel", "100% sure", "a_b"] {
        memos
            .create(
                &alice(),
                NewMemo {
                    body: body.into(),
                    recipient: None,
                },
            )
            .await
            .unwrap();
    }
    let find = |filter: &'static str| {
        let memos = memos.clone();
        async move {
            let mut bodies: Vec<String> =
                all_pages(&memos, &alice(), ListQuery::new().filter(filter))
                    .await
                    .into_iter()
                    .map(|m| m.body)
                    .collect();
            bodies.sort();
            bodies
        }
    };
    // ASCII letters fold everywhere.
    assert_eq!(find(r#"body : "APFEL""#).await, vec!["Apfel"]);
    assert_eq!(find(r#"body : "GMBH""#).await.len(), 2);
    // The needle as written always finds itself.
    assert!(
        find(r#"body : "ÄPFEL""#)
            .await
            .contains(&"ÄPFEL GmbH".to_owned())
    );
    assert!(
        find(r#"body : "äpfel""#)
            .await
            .contains(&"äpfel gmbh".to_owned())
    );
    // Beyond ASCII: PostgreSQL (a UTF-8 locale) and MariaDB fold; SQLite's
    // LOWER() does not.
    let both = vec!["ÄPFEL GmbH".to_owned(), "äpfel gmbh".to_owned()];
    if env.backend() == Backend::Sqlite {
        assert_eq!(find(r#"body : "ÄPFEL""#).await, vec!["ÄPFEL GmbH"]);
        assert_eq!(find(r#"body : "äpfel""#).await, vec!["äpfel gmbh"]);
    } else {
        assert_eq!(find(r#"body : "ÄPFEL""#).await, both);
        assert_eq!(find(r#"body : "äpfel""#).await, both);
    }
    // Wildcards are literals.
    assert_eq!(find(r#"body : "%""#).await, vec!["100% sure"]);
    assert_eq!(find(r#"body : "_""#).await, vec!["a_b"]);
}

async fn a_nul_in_a_filter_string_is_refused(env: Env) {
    let memos = env.keel.service::<memo::Entity>();
    memos
        .create(
            &alice(),
            NewMemo {
                body: "hello".into(),
                recipient: None,
            },
        )
        .await
        .unwrap();
    for filter in [
        "body : \"a\u{0}b\"",
        "body = \"\u{0}\"",
        "body IN (\"x\", \"\u{0}\")",
    ] {
        let err = memos
            .list(&alice(), &ListQuery::new().filter(filter))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT", "{filter:?}: {err:?}");
        let err = memos
            .count(&alice(), &ListQuery::new().filter(filter))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT", "{filter:?}: {err:?}");
    }
}

async fn enum_filters_take_the_json_form_and_refuse_unknown_values(env: Env) {
    let invoices = env.keel.service::<invoice::Entity>();
    let mut by_state = Vec::new();
    for (i, state) in [State::Draft, State::Sent, State::Paid, State::WrittenOff]
        .into_iter()
        .enumerate()
    {
        let mut input = NewInvoice::new("Ada", f64::from(u32::try_from(i).unwrap()));
        input.state = state;
        by_state.push(invoices.create(&alice(), input).await.unwrap());
    }
    let ids = |filter: &'static str| {
        let invoices = invoices.clone();
        async move {
            invoices
                .list(
                    &alice(),
                    &ListQuery::new().filter(filter).order_by("amount"),
                )
                .await
                .map(|page| page.items.into_iter().map(|r| r.state).collect::<Vec<_>>())
        }
    };
    assert_eq!(ids(r#"state = "paid""#).await.unwrap(), vec![State::Paid]);
    // The JSON form, stored as "void".
    assert_eq!(
        ids(r#"state = "written_off""#).await.unwrap(),
        vec![State::WrittenOff]
    );
    assert_eq!(
        ids(r#"state IN ("draft", "written_off")"#).await.unwrap(),
        vec![State::Draft, State::WrittenOff]
    );
    assert_eq!(
        ids(r#"state != "draft""#).await.unwrap(),
        vec![State::Sent, State::Paid, State::WrittenOff]
    );
    for bad in [
        r#"state = "bogus""#,
        r#"state = "void""#,
        r#"state = "PAID""#,
        r#"state IN ("paid", "bogus")"#,
        "state = 3",
    ] {
        let err = ids(bad).await.unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT", "{bad}: {err:?}");
        let text = err.to_string();
        assert!(text.contains("draft, sent, paid, written_off"), "{text}");
    }
    // Sorting by the enum follows the stored values; paging through it
    // finds every row once.
    let rows = all_pages(
        &invoices,
        &alice(),
        ListQuery::new().order_by("state desc").page_size(1),
    )
    .await;
    assert_eq!(rows.len(), 4);
    let sorted = invoices
        .list(&alice(), &ListQuery::new().order_by("state desc"))
        .await
        .unwrap();
    assert_eq!(
        sorted.items.iter().map(|r| r.state).collect::<Vec<_>>(),
        vec![State::WrittenOff, State::Sent, State::Paid, State::Draft]
    );
}

#[derive(Serialize, Deserialize)]
struct Reminder {
    invoice: String,
}

impl DomainEvent for Reminder {
    const TYPE: &'static str = "invoice.reminder";
}

async fn entity_subscriptions_get_write_events_only(env: Env) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = seen.clone();
    env.keel
        .events()
        .subscribe(Subscription::entity::<invoice::Entity, _, _>(
            "invoice-writes",
            move |event| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(event.event_type);
                    Ok(())
                }
            },
        ))
        .unwrap();
    let reminders = keel_tests::collect_events(&env.keel, "reminders", "*.invoice.reminder");
    let invoices = env.keel.service::<invoice::Entity>();
    let created = invoices
        .create(&alice(), NewInvoice::new("Ada", 1.0))
        .await
        .unwrap();
    env.keel
        .transaction(&alice(), TxOptions::new(), |tx| {
            let id = created.id.to_string();
            async move {
                tx.emit_domain(&Reminder { invoice: id })?;
                Ok(())
            }
        })
        .await
        .unwrap();
    invoices
        .update(&alice(), created.id, InvoicePatch::default().by_post(true))
        .await
        .unwrap();
    invoices.delete(&alice(), created.id).await.unwrap();
    invoices.restore(&alice(), created.id).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while (seen.lock().unwrap().len() < 4 || reminders.lock().unwrap().is_empty())
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let service = &env.keel.config().service_name;
    assert_eq!(
        *seen.lock().unwrap(),
        ["created", "updated", "deleted", "restored"]
            .map(|a| format!("{service}.invoice.{a}"))
            .to_vec()
    );
    assert_eq!(
        reminders.lock().unwrap().len(),
        1,
        "the domain event went out"
    );
}

async fn an_expected_version_on_an_unversioned_resource_is_refused(env: Env) {
    let memos = env.keel.service::<memo::Entity>();
    let m = memos
        .create(
            &alice(),
            NewMemo {
                body: "keep".into(),
                recipient: None,
            },
        )
        .await
        .unwrap();
    let err = memos
        .update_if_version(
            &alice(),
            m.id,
            memo::MemoPatch::default().body("changed"),
            1,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT", "{err:?}");
    let err = memos
        .delete_if_version(&alice(), m.id, 1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT", "{err:?}");
    assert_eq!(
        memos.get(&alice(), m.id).await.unwrap(),
        m,
        "nothing written"
    );

    // On a versioned resource, update_if_version checks it.
    let labels = env.keel.service::<invoice::Entity>();
    let inv = labels
        .create(&alice(), NewInvoice::new("Ada", 2.0))
        .await
        .unwrap();
    let err = labels
        .update_if_version(&alice(), inv.id, InvoicePatch::default().by_post(true), 7)
        .await
        .unwrap_err();
    keel_tests::assert_version_conflict(&err, 7, 1);
    let ok = labels
        .update_if_version(&alice(), inv.id, InvoicePatch::default().by_post(true), 1)
        .await
        .unwrap();
    assert_eq!(ok.version, 2);
}

async fn a_plain_table_serves_every_operation(env: Env) {
    let memos = env.keel.service::<memo::Entity>();
    let m = memos
        .create(
            &alice(),
            NewMemo {
                body: "one".into(),
                recipient: Some("bob".into()),
            },
        )
        .await
        .unwrap();
    let m2 = memos
        .update(&alice(), m.id, memo::MemoPatch::default().recipient(None))
        .await
        .unwrap();
    assert_eq!(m2.recipient, None);
    // `!=` leaves out NULLs, as documented; `= null` finds them.
    let ne = memos
        .count(&alice(), &ListQuery::new().filter(r#"recipient != "bob""#))
        .await
        .unwrap();
    assert_eq!(ne, 0);
    let null = memos
        .count(&alice(), &ListQuery::new().filter("recipient = null"))
        .await
        .unwrap();
    assert_eq!(null, 1);
    memos.delete(&alice(), m.id).await.unwrap();
    assert_eq!(memos.find(&alice(), m.id).await.unwrap(), None);
    let history = env
        .keel
        .audit_log()
        .history::<memo::Entity>(&alice(), m.id, &HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(
        history
            .items
            .iter()
            .map(|e| e.action.as_str())
            .collect::<Vec<_>>(),
        ["deleted", "updated", "created"]
    );
}

const IBAN: &str = "DE89370400440532013000";

async fn redacted_values_stay_out_of_debug_audit_and_events(env: Env) {
    let events = keel_tests::collect_events(&env.keel, "all", "*");
    let invoices = env.keel.service::<invoice::Entity>();
    let input = NewInvoice::new("Ada", 3.0);
    assert!(!format!("{input:?}").contains(IBAN), "{input:?}");
    let row = invoices.create(&alice(), input).await.unwrap();
    assert_eq!(row.iban.as_str(), IBAN, "stored and read back as is");
    assert_eq!(
        serde_json::to_value(&row).unwrap()["iban"],
        IBAN,
        "served as is"
    );
    let patch = InvoicePatch::default().iban("FR7630006000011234567890189");
    assert!(!format!("{patch:?}").contains("FR76"), "{patch:?}");
    let updated = invoices.update(&alice(), row.id, patch).await.unwrap();
    let active = sea_orm::IntoActiveModel::into_active_model(updated.clone());
    for debug in [
        format!("{row:?}"),
        format!("{updated:?}"),
        format!("{row:#?}"),
        format!("{active:?}"),
    ] {
        assert!(!debug.contains(IBAN) && !debug.contains("FR76"), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");
    }
    let history = env
        .keel
        .audit_log()
        .history::<invoice::Entity>(&alice(), row.id, &HistoryQuery::default())
        .await
        .unwrap();
    let text = serde_json::to_string(&history.items).unwrap();
    assert!(!text.contains(IBAN) && !text.contains("FR76"), "{text}");
    let change = history.items[0]
        .changes
        .iter()
        .find(|c| c.field == "iban")
        .unwrap();
    assert_eq!(change.new, "[redacted]");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while events.lock().unwrap().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = events.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for event in seen {
        let wire = event.to_cloudevent().to_string();
        assert!(!wire.contains(IBAN) && !wire.contains("FR76"), "{wire}");
        assert_eq!(event.data["row"]["iban"], "[redacted]");
    }
}

/// `cache(l1 = false)`: after instance A's write returns, instance B reads
/// the new version at once, every time.
async fn without_the_in_process_tier_no_instance_reads_an_old_version(env: Env) {
    if !redis_available() {
        return;
    }
    let shared = prefix();
    let a = keel_with_redis(&env, &redis_url(), &shared).await;
    let b = keel_with_redis(&env, &redis_url(), &shared).await;
    let ctx = tenant("acme");
    let (on_a, on_b) = (
        a.service::<project::Entity>(),
        b.service::<project::Entity>(),
    );
    let p = on_a.create(&ctx, NewProject::named("v1")).await.unwrap();
    for i in 2..=30 {
        // B has the current version cached (in Redis).
        assert_eq!(on_b.get(&ctx, p.id).await.unwrap().version, i - 1);
        let written = on_a
            .update(&ctx, p.id, ProjectPatch::default().name(format!("v{i}")))
            .await
            .unwrap();
        assert_eq!(on_b.get(&ctx, p.id).await.unwrap(), written, "write {i}");
        let listed = on_b.list(&ctx, &ListQuery::new()).await.unwrap();
        assert_eq!(listed.items, vec![written]);
    }
    assert!(b.cache().stats().l2_hits > 0, "B read through Redis");
    assert_eq!(b.cache().stats().l1_hits, 0, "B has no in-process tier");
}

/// A `keel_audit` made by an older Keel on MySQL (the database's collation,
/// whole seconds) is brought up to date by `migrate`; elsewhere `migrate`
/// leaves the table alone.
async fn migrate_brings_an_older_audit_table_up_to_date(env: Env) {
    let db = env.keel.db();
    if env.backend() == Backend::MySql {
        db.execute_unprepared("DROP TABLE keel_audit")
            .await
            .unwrap();
        db.execute_unprepared(keel_tests::OLDER_MYSQL_AUDIT_TABLE)
            .await
            .unwrap();
    }
    env.keel.migrate().await.unwrap();
    env.keel.migrate().await.unwrap();
    if env.backend() == Backend::MySql {
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::MySql,
                "SELECT COLUMN_NAME AS name, COLLATION_NAME AS collation, DATETIME_PRECISION AS `precision` \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'keel_audit'",
            ))
            .await
            .unwrap();
        for row in rows {
            let name: String = row.try_get("", "name").unwrap();
            let collation: Option<String> = row.try_get("", "collation").unwrap();
            let precision: Option<u64> = row.try_get("", "precision").unwrap();
            if matches!(name.as_str(), "entity_id" | "tenant" | "actor") {
                assert_eq!(collation.as_deref(), Some("utf8mb4_nopad_bin"), "{name}");
            }
            if name == "at" {
                assert_eq!(precision, Some(6));
            }
        }
    }
    // The upgraded log serves history exactly, to the microsecond.
    let projects = env.keel.service::<project::Entity>();
    let ctx = tenant("acme");
    let p = projects.create(&ctx, NewProject::named("a")).await.unwrap();
    projects
        .update(&ctx, p.id, ProjectPatch::default().name("b"))
        .await
        .unwrap();
    let history = env
        .keel
        .audit_log()
        .history::<project::Entity>(&ctx, p.id, &HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(history.items.len(), 2);
    assert!(history.items[0].at > history.items[1].at);
    let other = env
        .keel
        .audit_log()
        .history::<project::Entity>(&tenant("ACME"), p.id, &HistoryQuery::default())
        .await
        .unwrap();
    assert!(other.items.is_empty(), "another tenant's history");
}

/// A table made by the user's own migration with the database's defaults:
/// on MySQL, `check_schema` names each column whose uniqueness, order or
/// precision is not exact, and its fixes, run, leave nothing to report.
async fn check_schema_names_what_a_users_table_cannot_give_and_how_to_fix_it(env: Env) {
    let db = env.keel.db();
    db.execute_unprepared("DROP TABLE labels").await.unwrap();
    db.execute_unprepared("DROP TABLE invoices").await.unwrap();
    let (labels, invoices) = match env.backend() {
        Backend::MySql => (
            "CREATE TABLE labels (slug VARCHAR(40) PRIMARY KEY, title VARCHAR(100) NOT NULL UNIQUE, colour VARCHAR(20) NULL)",
            "CREATE TABLE invoices (id CHAR(36) PRIMARY KEY, customer VARCHAR(100) NOT NULL, state VARCHAR(12) NOT NULL, \
             amount DOUBLE NOT NULL, by_post BOOL NOT NULL, due_on DATE NULL, `lines` JSON NOT NULL, iban VARCHAR(40) NOT NULL, \
             version INT NOT NULL, created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_at DATETIME NOT NULL, deleted_at DATETIME NULL)",
        ),
        _ => (
            "CREATE TABLE labels (slug VARCHAR(40) PRIMARY KEY, title VARCHAR(100) NOT NULL UNIQUE, colour VARCHAR(20) NULL)",
            "CREATE TABLE invoices (id UUID PRIMARY KEY)",
        ),
    };
    db.execute_unprepared(labels).await.unwrap();
    db.execute_unprepared(invoices).await.unwrap();
    let label_report = env.keel.check_schema::<label::Entity>().await.unwrap();
    let invoice_report = env.keel.check_schema::<invoice::Entity>().await.unwrap();
    if env.backend() != Backend::MySql {
        assert!(label_report.is_ok() && invoice_report.is_ok());
        return;
    }
    let columns = |report: &keel::SchemaReport| {
        let mut names: Vec<String> = report.problems().iter().map(|p| p.column.clone()).collect();
        names.sort();
        names
    };
    // The key and the unique title; the colour is neither unique nor sorted.
    assert_eq!(columns(&label_report), ["slug", "title"], "{label_report}");
    // The key as text, sorted text, and second-precision timestamps the
    // service owns.
    assert_eq!(
        columns(&invoice_report),
        [
            "created_at",
            "customer",
            "deleted_at",
            "id",
            "state",
            "updated_at"
        ],
        "{invoice_report}"
    );
    let created_at = invoice_report
        .problems()
        .iter()
        .find(|p| p.column == "created_at")
        .unwrap();
    assert!(
        created_at.fix.contains("add back its DEFAULT"),
        "{created_at}"
    );
    for problem in label_report
        .problems()
        .iter()
        .chain(invoice_report.problems())
    {
        db.execute_unprepared(&problem.fix)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", problem.fix));
    }
    assert!(
        env.keel
            .check_schema::<label::Entity>()
            .await
            .unwrap()
            .is_ok()
    );
    assert!(
        env.keel
            .check_schema::<invoice::Entity>()
            .await
            .unwrap()
            .is_ok()
    );
    // And the fixed table serves keys that differ by case alone.
    let labels = env.keel.service::<label::Entity>();
    labels
        .create(&alice(), NewLabel::new("rust", "Rust"))
        .await
        .unwrap();
    labels
        .create(&alice(), NewLabel::new("RUST", "RUST"))
        .await
        .unwrap();
    assert_eq!(labels.count(&alice(), &ListQuery::new()).await.unwrap(), 2);
}

/// Text fields refuse C0 control characters (tab, line feed and carriage
/// return aside) on every database, before any statement; a NUL PostgreSQL
/// cannot store elsewhere (inside JSON) is a 4xx too.
async fn control_characters_are_refused_in_text_and_a_nul_in_json_is_never_a_500(env: Env) {
    let memos = env.keel.service::<memo::Entity>();
    for body in ["a\u{0}b", "\u{7}", "esc \u{1b}[0m", "\u{1f}"] {
        let err = memos
            .create(
                &alice(),
                NewMemo {
                    body: body.into(),
                    recipient: None,
                },
            )
            .await
            .unwrap_err();
        match &err {
            keel::Error::Validation(errors) => {
                assert_eq!(errors.errors()[0].pointer, "/body");
                assert_eq!(errors.errors()[0].code, "CONTROL_CHARACTER");
            }
            other => panic!("{body:?}: {other:?}"),
        }
    }
    let ok = memos
        .create(
            &alice(),
            NewMemo {
                body: "tab\tline\nreturn\r".into(),
                recipient: Some("x".into()),
            },
        )
        .await
        .unwrap();
    let err = memos
        .update(
            &alice(),
            ok.id,
            memo::MemoPatch::default().recipient(Some("a\u{0}".into())),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "VALIDATION_FAILED", "{err:?}");
    // A Redacted<String> is text too.
    let invoices = env.keel.service::<invoice::Entity>();
    let mut input = NewInvoice::new("Ada", 1.0);
    input.iban = keel::Redacted::new("DE\u{0}".into());
    let err = invoices.create(&alice(), input).await.unwrap_err();
    assert_eq!(err.code(), "VALIDATION_FAILED", "{err:?}");
    // NUL inside a JSON value: PostgreSQL cannot store it (22P05); the
    // others store it. Never a 500.
    let mut input = NewInvoice::new("Ada", 2.0);
    input.lines = serde_json::json!([{"item": "a\u{0}b"}]);
    match invoices.create(&alice(), input).await {
        Ok(row) => {
            assert_ne!(env.backend(), Backend::Postgres);
            assert_eq!(row.lines[0]["item"], "a\u{0}b");
        }
        Err(err) => {
            assert_eq!(env.backend(), Backend::Postgres, "{err:?}");
            assert_eq!(err.code(), "VALIDATION_FAILED", "{err:?}");
        }
    }
    assert_eq!(
        memos.count(&alice(), &ListQuery::new()).await.unwrap(),
        1,
        "nothing else written"
    );
}

/// After a unique violation the service finds which field collided by
/// looking for the value, among the caller's tenant's rows only: another
/// tenant's row is never named.
async fn a_unique_collision_names_a_field_from_the_tenants_own_rows_only(env: Env) {
    let projects = env.keel.service::<project::Entity>();
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let mut input = NewProject::named("a");
    input.code = Some("C-1".into());
    input.handle = Some("h-1".into());
    projects.create(&globex, input).await.unwrap();
    let mut input = NewProject::named("b");
    input.code = Some("C-2".into());
    input.handle = Some("h-2".into());
    projects.create(&acme, input).await.unwrap();

    // acme collides with its own row: the field is named.
    let mut input = NewProject::named("c");
    input.code = Some("C-3".into());
    input.handle = Some("h-2".into());
    match projects.create(&acme, input).await.unwrap_err() {
        keel::Error::AlreadyExists { field, .. } => assert_eq!(field.as_deref(), Some("handle")),
        other => panic!("{other:?}"),
    }
    // acme collides with globex's row: refused, and no field named.
    let mut input = NewProject::named("d");
    input.code = Some("C-4".into());
    input.handle = Some("h-1".into());
    match projects.create(&acme, input).await.unwrap_err() {
        keel::Error::AlreadyExists { field, .. } => assert_eq!(field, None),
        other => panic!("{other:?}"),
    }
    assert_eq!(projects.count(&acme, &ListQuery::new()).await.unwrap(), 1);
}

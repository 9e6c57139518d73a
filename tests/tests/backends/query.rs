//! Filters, ordering and pagination against real databases.

use std::collections::HashSet;

use chrono::Utc;
use keel::{Context, ListQuery};
use keel_tests::entities::article;
use keel_tests::entities::product::{self, NewProduct, ProductPatch};
use keel_tests::entities::tag;
use keel_tests::{Backend, Env};

keel_tests::cases![
    filters_select_the_right_rows,
    filter_literals_are_data_not_sql,
    invalid_queries_are_invalid_argument,
    keyset_pages_return_every_row_once_while_rows_are_inserted,
    nulls_sort_last_ascending_and_first_descending,
    skip_offsets_and_total_size,
    count_filters,
    long_text_pages_serve_every_row_once_in_order,
];

fn ctx() -> Context {
    Context::actor("alice")
}

/// `(sku, price, stock, rating, description)`
type Row<'a> = (&'a str, i64, i32, Option<f64>, Option<&'a str>);

/// Creates products from rows.
async fn seed(env: &Env, rows: &[Row<'_>]) -> Vec<product::Model> {
    let products = env.keel.service::<product::Entity>();
    let mut out = Vec::new();
    for (sku, price, stock, rating, description) in rows {
        let mut input = NewProduct::new(*sku, *price);
        input.stock = *stock;
        input.rating = *rating;
        input.description = description.map(str::to_owned);
        out.push(products.create(&ctx(), input).await.unwrap());
    }
    out
}

async fn skus(env: &Env, filter: &str) -> Vec<String> {
    let products = env.keel.service::<product::Entity>();
    let page = products
        .list(
            &ctx(),
            &ListQuery::new()
                .filter(filter)
                .order_by("sku")
                .page_size(100),
        )
        .await
        .unwrap_or_else(|e| panic!("{filter}: {e}"));
    page.items.into_iter().map(|p| p.sku).collect()
}

async fn filters_select_the_right_rows(env: Env) {
    let rows = seed(
        &env,
        &[
            ("a-lamp", 100, 1, Some(4.5), Some("A Desk LAMP")),
            ("b-mug", 900, 0, None, None),
            ("c-pen", 150, 3, Some(2.0), Some("blue ink, 50% off")),
            ("d-desk", 19900, 0, Some(1.0), Some("oak")),
        ],
    )
    .await;
    let products = env.keel.service::<product::Entity>();
    products
        .update(&ctx(), rows[3].id, ProductPatch::default().active(false))
        .await
        .unwrap();

    let cases: &[(&str, &[&str])] = &[
        ("price_cents > 150", &["b-mug", "d-desk"]),
        (
            "price_cents >= 150 AND price_cents < 1000",
            &["b-mug", "c-pen"],
        ),
        (
            "price_cents <= 100 OR price_cents = 900",
            &["a-lamp", "b-mug"],
        ),
        ("price_cents != 100", &["b-mug", "c-pen", "d-desk"]),
        // AIP-160: OR binds tighter than AND.
        (
            "stock = 0 AND sku = \"b-mug\" OR sku = \"d-desk\"",
            &["b-mug", "d-desk"],
        ),
        (
            "stock = 0 AND (sku = \"b-mug\" OR sku = \"a-lamp\")",
            &["b-mug"],
        ),
        ("NOT stock = 0", &["a-lamp", "c-pen"]),
        ("-stock = 0", &["a-lamp", "c-pen"]),
        ("NOT (stock = 0 OR price_cents < 120)", &["c-pen"]),
        ("active = false", &["d-desk"]),
        ("active = true AND stock > 0", &["a-lamp", "c-pen"]),
        ("description = null", &["b-mug"]),
        ("description != null", &["a-lamp", "c-pen", "d-desk"]),
        ("rating = null", &["b-mug"]),
        ("rating < 2.5", &["c-pen", "d-desk"]),
        ("rating >= 2", &["a-lamp", "c-pen"]),
        ("rating > 1", &["a-lamp", "c-pen"]),
        ("name : \"LaMp\"", &["a-lamp"]),
        ("description : \"desk\"", &["a-lamp"]),
        ("description : \"50%\"", &["c-pen"]),
        ("description : \"%\"", &["c-pen"]),
        ("description : \"_\"", &[]),
        ("sku : \"-\"", &["a-lamp", "b-mug", "c-pen", "d-desk"]),
        ("sku = 'c-pen'", &["c-pen"]),
        ("price_cents IN (100, 900)", &["a-lamp", "b-mug"]),
        ("NOT price_cents IN (100, 900, 150)", &["d-desk"]),
        ("stock IN (0) AND name : \"desk\"", &["d-desk"]),
        ("id = 0", &[]),
    ];
    for (filter, expected) in cases {
        assert_eq!(skus(&env, filter).await, *expected, "filter {filter}");
    }

    // Timestamps as RFC 3339 strings.
    let cutoff = Utc::now() + chrono::Duration::hours(1);
    let filter = format!("created_at < \"{}\"", cutoff.to_rfc3339());
    assert_eq!(skus(&env, &filter).await.len(), 4);
    let filter = format!("created_at > \"{}\"", cutoff.to_rfc3339());
    assert!(skus(&env, &filter).await.is_empty());
    let id_filter = format!("id = {}", rows[1].id);
    assert_eq!(skus(&env, &id_filter).await, ["b-mug"]);
}

async fn filter_literals_are_data_not_sql(env: Env) {
    let nasty = [
        "x' OR '1'='1",
        "\"; DROP TABLE products; --",
        "back\\slash",
        "percent % and under_score",
        "quote ' and \" both",
        "emoji 🦀 and é",
    ];
    let products = env.keel.service::<product::Entity>();
    for (i, text) in nasty.iter().enumerate() {
        let mut input = NewProduct::new(format!("n-{i}"), 1);
        input.name = (*text).to_owned();
        products.create(&ctx(), input).await.unwrap();
    }
    for (i, text) in nasty.iter().enumerate() {
        let quoted = serde_json::to_string(text).unwrap();
        let exact = skus(&env, &format!("name = {quoted}")).await;
        assert_eq!(exact, [format!("n-{i}")], "name = {quoted}");
        let contains = skus(&env, &format!("name : {quoted}")).await;
        assert_eq!(contains, [format!("n-{i}")], "name : {quoted}");
    }
    assert_eq!(
        products.count(&ctx(), &ListQuery::new()).await.unwrap(),
        nasty.len() as u64
    );
}

async fn invalid_queries_are_invalid_argument(env: Env) {
    seed(
        &env,
        &[
            ("a", 1, 1, None, None),
            ("b", 2, 1, None, None),
            ("c", 3, 1, None, None),
        ],
    )
    .await;
    let products = env.keel.service::<product::Entity>();
    let bad_filters: &[(&str, &str)] = &[
        ("colour = \"red\"", "unknown field `colour`"),
        ("created_by = \"alice\"", "cannot be filtered"),
        (
            "description < \"m\"",
            "operator `<` is not allowed on field `description`",
        ),
        (
            "price_cents = \"cheap\"",
            "field `price_cents` takes an integer",
        ),
        ("price_cents = 1.5", "takes an integer"),
        ("price_cents = 99999999999999999999", "out of range"),
        ("active = 1", "takes a boolean"),
        ("name = lamp", "strings must be quoted"),
        (
            "price_cents : 5",
            "operator `:` is not allowed on field `price_cents`; allowed: = != < <= > >=",
        ),
        ("price_cents > null", "null can only be compared"),
        ("created_at > \"yesterday\"", "RFC 3339"),
        ("price_cents > 1 and stock = 1", "uppercase"),
        ("(price_cents > 1", "expected `)`"),
        ("price_cents > 1)", "unexpected `)`"),
        ("price_cents >", "unexpected end of filter"),
        ("AND price_cents > 1", "expected a comparison"),
        ("name = \"unterminated", "unterminated string"),
        ("price_cents # 1", "unexpected character"),
        ("price_cents > 1 stock = 1", "expected AND, OR"),
    ];
    for (filter, needle) in bad_filters {
        let err = products
            .list(&ctx(), &ListQuery::new().filter(*filter))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT", "{filter}");
        let message = err.to_string();
        assert!(message.contains(needle), "{filter}: {message}");
        assert!(message.contains("position"), "{filter}: {message}");
        let err = products
            .count(&ctx(), &ListQuery::new().filter(*filter))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT", "count {filter}");
    }
    // Limits.
    let long = format!("name = \"{}\"", "x".repeat(3000));
    let deep = format!("{}price_cents > 1{}", "(".repeat(20), ")".repeat(20));
    let wide = vec!["price_cents > 1"; 40].join(" AND ");
    for (filter, needle) in [
        (long.as_str(), "characters long"),
        (deep.as_str(), "nests deeper"),
        (wide.as_str(), "more than 32"),
    ] {
        let err = products
            .list(&ctx(), &ListQuery::new().filter(filter))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
    // Ordering.
    for (order, needle) in [
        ("colour", "cannot sort by `colour`"),
        ("description", "cannot sort by `description`"),
        (
            "price_cents sideways",
            "optionally followed by `asc` or `desc`",
        ),
        ("price_cents, price_cents desc", "appears twice"),
        ("price_cents,", "is empty"),
    ] {
        let err = products
            .list(&ctx(), &ListQuery::new().order_by(order))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
        assert!(err.to_string().contains(needle), "{order}: {err}");
    }
    // Page sizes.
    for size in [0, 101] {
        let err = products
            .list(&ctx(), &ListQuery::new().page_size(size))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("page_size must be between 1 and 100"),
            "{err}"
        );
    }
    assert_eq!(
        products
            .list(&ctx(), &ListQuery::new().page_size(100))
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    // Tokens: tampered, for another query, for another resource.
    let query = ListQuery::new().order_by("price_cents").page_size(1);
    let token = products
        .list(&ctx(), &query)
        .await
        .unwrap()
        .next_page_token
        .unwrap();
    let mut tampered = token.clone();
    tampered.insert(3, 'A');
    for (q, needle) in [
        (
            query.clone().page_token(tampered),
            "invalid or was tampered",
        ),
        (
            query.clone().page_token("not-a-token"),
            "invalid or was tampered",
        ),
        (
            ListQuery::new()
                .order_by("price_cents desc")
                .page_size(1)
                .page_token(token.clone()),
            "different filter",
        ),
        (
            query.clone().filter("stock = 1").page_token(token.clone()),
            "different filter",
        ),
        (
            query.clone().show_deleted(true).page_token(token.clone()),
            "different filter",
        ),
    ] {
        let err = products.list(&ctx(), &q).await.unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
        assert!(err.to_string().contains(needle), "{err}");
    }
    let tags = env.keel.service::<tag::Entity>();
    let err = tags
        .list(&ctx(), &ListQuery::new().page_token(token))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("issued for `product`"), "{err}");
}

async fn keyset_pages_return_every_row_once_while_rows_are_inserted(env: Env) {
    let products = env.keel.service::<product::Entity>();
    let mut originals = HashSet::new();
    for i in 0..60 {
        let mut input = NewProduct::new(format!("k-{i:03}"), 100);
        input.stock = i % 3; // three values: many duplicates of the sort key
        originals.insert(products.create(&ctx(), input).await.unwrap().id);
    }
    for order in [
        "stock desc",
        "stock",
        "stock desc, price_cents",
        "price_cents desc",
    ] {
        let mut seen = Vec::new();
        let mut query = ListQuery::new().order_by(order).page_size(7);
        let mut inserted = 0;
        let mut last_stock: Option<i32> = None;
        loop {
            let page = products.list(&ctx(), &query).await.unwrap();
            for row in &page.items {
                if order.starts_with("stock") {
                    if let Some(prev) = last_stock {
                        let ordered = if order.starts_with("stock desc") {
                            row.stock <= prev
                        } else {
                            row.stock >= prev
                        };
                        assert!(ordered, "{order}: {} after {prev}", row.stock);
                    }
                    last_stock = Some(row.stock);
                }
                seen.push(row.id);
            }
            // Rows inserted between pages, on both sides of the cursor.
            for s in 0..3 {
                let mut input = NewProduct::new(format!("ins-{order}-{inserted}"), 100);
                input.stock = s;
                products.create(&ctx(), input).await.unwrap();
                inserted += 1;
            }
            match page.next_page_token {
                Some(token) => query = query.page_token(token),
                None => break,
            }
        }
        let unique: HashSet<i64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "{order}: a row was served twice");
        assert!(
            originals.is_subset(&unique),
            "{order}: {} original rows missing",
            originals.difference(&unique).count()
        );
    }
}

async fn nulls_sort_last_ascending_and_first_descending(env: Env) {
    let rows = seed(
        &env,
        &[
            ("n1", 1, 0, Some(3.0), None),
            ("n2", 1, 0, None, None),
            ("n3", 1, 0, Some(1.0), None),
            ("n4", 1, 0, None, None),
            ("n5", 1, 0, Some(3.0), None),
            ("n6", 1, 0, Some(2.0), None),
            ("n7", 1, 0, None, None),
        ],
    )
    .await;
    let products = env.keel.service::<product::Entity>();
    let id = |sku: &str| rows.iter().find(|r| r.sku == sku).unwrap().id;
    let expected_asc: Vec<i64> = ["n3", "n6", "n1", "n5", "n2", "n4", "n7"]
        .iter()
        .map(|s| id(s))
        .collect();
    let expected_desc: Vec<i64> = ["n2", "n4", "n7", "n1", "n5", "n6", "n3"]
        .iter()
        .map(|s| id(s))
        .collect();
    for (order, expected) in [("rating", expected_asc), ("rating desc", expected_desc)] {
        for size in [1, 2, 3, 100] {
            let seen: Vec<i64> = keel_tests::all_pages(
                &products,
                &ctx(),
                ListQuery::new().order_by(order).page_size(size),
            )
            .await
            .iter()
            .map(|p| p.id)
            .collect();
            assert_eq!(seen, expected, "order_by {order}, page_size {size}");
        }
    }
}

async fn skip_offsets_and_total_size(env: Env) {
    let rows = seed(
        &env,
        &[
            ("s1", 1, 0, None, None),
            ("s2", 2, 0, None, None),
            ("s3", 3, 0, None, None),
            ("s4", 4, 0, None, None),
            ("s5", 5, 0, None, None),
        ],
    )
    .await;
    let products = env.keel.service::<product::Entity>();
    let page = products
        .list(
            &ctx(),
            &ListQuery::new()
                .order_by("price_cents")
                .skip(1)
                .page_size(2)
                .total_size(true),
        )
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![rows[1].id, rows[2].id]
    );
    assert_eq!(page.total_size, Some(5));
    let rest = products
        .list(
            &ctx(),
            &ListQuery::new()
                .order_by("price_cents")
                .skip(1)
                .page_size(2)
                .page_token(page.next_page_token.unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![rows[4].id],
        "skip applies after the token too"
    );
    let plain = products.list(&ctx(), &ListQuery::new()).await.unwrap();
    assert_eq!(plain.total_size, None, "counting is opt-in");
    assert_eq!(plain.items.len(), 5);
    assert!(plain.next_page_token.is_none());
    let beyond = products
        .list(&ctx(), &ListQuery::new().skip(50))
        .await
        .unwrap();
    assert!(beyond.items.is_empty());
}

async fn count_filters(env: Env) {
    seed(
        &env,
        &[
            ("c1", 10, 0, None, None),
            ("c2", 20, 0, None, None),
            ("c3", 30, 0, None, None),
        ],
    )
    .await;
    let products = env.keel.service::<product::Entity>();
    assert_eq!(products.count(&ctx(), &ListQuery::new()).await.unwrap(), 3);
    assert_eq!(
        products
            .count(&ctx(), &ListQuery::new().filter("price_cents >= 20"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        products
            .count(&ctx(), &ListQuery::new().filter("price_cents > 100"))
            .await
            .unwrap(),
        0
    );
}

/// Twelve values of 300 `x` and one distinct letter, inserted out of order:
/// MariaDB sorts text by its first `max_sort_length` bytes of weights
/// (1024 by default: 256 characters), so these tie there, while a page's
/// condition compares whole values. Every page, ascending or descending,
/// must serve each row once and in order; a column the server cannot sort
/// exactly (`TEXT` on MySQL / MariaDB) is refused instead.
async fn long_text_pages_serve_every_row_once_in_order(env: Env) {
    /// The last letter of each title served, page after page.
    async fn pages(env: &Env, order: &str) -> Result<String, keel::Error> {
        let articles = env.keel.service::<article::Entity>();
        let mut query = ListQuery::new().order_by(order).page_size(5);
        let mut seen = String::new();
        loop {
            let page = articles.list(&ctx(), &query).await?;
            assert!(
                page.items
                    .iter()
                    .all(|a| a.title.len() == 301 && a.title == a.body)
            );
            seen.extend(page.items.iter().filter_map(|a| a.title.chars().last()));
            match page.next_page_token {
                Some(token) => query = query.page_token(token),
                None => return Ok(seen),
            }
        }
    }
    async fn seed(env: &Env) {
        let articles = env.keel.service::<article::Entity>();
        for i in 0..12u8 {
            // 7 is coprime with 12: every letter once, out of order.
            let letter = char::from(b'a' + (i * 7) % 12);
            let value = format!("{}{letter}", "x".repeat(300));
            let input = article::NewArticle {
                title: value.clone(),
                body: value,
            };
            articles.create(&ctx(), input).await.unwrap();
        }
    }
    seed(&env).await;
    let (sorted, reversed) = ("abcdefghijkl", "lkjihgfedcba");
    assert_eq!(pages(&env, "title").await.unwrap(), sorted, "title");
    assert_eq!(
        pages(&env, "title desc").await.unwrap(),
        reversed,
        "title desc"
    );
    if env.backend() != Backend::MySql {
        assert_eq!(pages(&env, "body").await.unwrap(), sorted, "body");
        assert_eq!(pages(&env, "body desc").await.unwrap(), reversed);
        return;
    }
    // A TEXT column holds up to 65,535 characters; MariaDB sorts by 16,383.
    let err = pages(&env, "body desc").await.unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT", "{err}");
    assert!(
        err.to_string()
            .contains("cannot sort by `body` on this database"),
        "{err}"
    );
    let report = env.keel.check_schema::<article::Entity>().await.unwrap();
    let columns: Vec<&str> = report
        .problems()
        .iter()
        .map(|p| p.column.as_str())
        .collect();
    assert_eq!(columns, ["body"], "{report}");
    assert!(
        report
            .to_string()
            .contains("sorts text by its first 16383 characters"),
        "{report}"
    );

    // The same in a table of the application's own, with the database's
    // default collation.
    use sea_orm::ConnectionTrait;
    let db = env.keel.db();
    db.execute_unprepared("DROP TABLE articles").await.unwrap();
    db.execute_unprepared(
        "CREATE TABLE articles (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         title VARCHAR(1000) NOT NULL, body TEXT NOT NULL)",
    )
    .await
    .unwrap();
    seed(&env).await;
    assert_eq!(
        pages(&env, "title").await.unwrap(),
        sorted,
        "own table: title"
    );
    assert_eq!(pages(&env, "title desc").await.unwrap(), reversed);
    assert_eq!(
        pages(&env, "body").await.unwrap_err().code(),
        "INVALID_ARGUMENT"
    );
}

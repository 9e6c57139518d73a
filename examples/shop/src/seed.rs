//! `shop seed --products N`: a bulk load of N products, with a progress bar.
//!
//! Rows go in with multi-row `INSERT`s of [`BATCH`] rows, each batch in its
//! own transaction. A bulk load is not a stream of user writes: it writes no
//! audit rows and emits no events; it does invalidate the cached lists and
//! counts of products (of every instance) when it is done. It ends with
//! `ANALYZE products` (PostgreSQL, SQLite): after a bulk load the planner's
//! statistics describe the table as it was, and with them PostgreSQL would
//! count 100,000 fresh rows through a bitmap scan of a partial index it
//! believes nearly empty (59 ms against 22 ms for the scan it picks once
//! the statistics are fresh).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use keel::{Error, Keel};
use sea_orm::{ActiveValue::Set, EntityTrait, TransactionTrait};

use crate::entities::product;

/// Rows per `INSERT`.
pub const BATCH: usize = 1_000;

/// What a seed did.
#[derive(Clone, Copy, Debug)]
pub struct Seeded {
    /// Rows written.
    pub rows: usize,
    /// How long it took.
    pub elapsed: Duration,
}

/// Inserts `n` products named `Product {i}` with SKUs `{prefix}-{i}` (the
/// prefix is the start time, so seeding twice does not collide).
pub async fn products(keel: &Keel, n: usize, progress: bool) -> keel::Result<Seeded> {
    let started = Instant::now();
    let bar = if progress {
        let bar = ProgressBar::new(n as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} seeding products [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let prefix = format!(
        "S{}",
        chrono::Utc::now()
            .timestamp_millis()
            .rem_euclid(1_000_000_000_000)
    );
    let now = chrono::Utc::now();
    let mut done = 0;
    while done < n {
        let size = BATCH.min(n - done);
        let rows = (done..done + size).map(|i| product::ActiveModel {
            sku: Set(format!("{prefix}-{i}")),
            name: Set(format!("Product {i}")),
            description: Set((i % 3 == 0).then(|| format!("Seeded product number {i}"))),
            price_cents: Set(i64::try_from(100 + (i * 37) % 99_900).unwrap_or(100)),
            stock: Set(i32::try_from(i % 500).unwrap_or(0)),
            cost_cents: Set(None),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
            ..Default::default()
        });
        let tx = keel.db().begin().await.map_err(Error::from)?;
        product::Entity::insert_many(rows)
            .exec_without_returning(&tx)
            .await
            .map_err(Error::from)?;
        tx.commit().await.map_err(Error::from)?;
        done += size;
        bar.set_position(done as u64);
    }
    bar.finish();
    if keel.backend() != sea_orm::DbBackend::MySql {
        use sea_orm::ConnectionTrait;
        keel.db()
            .execute_unprepared("ANALYZE products")
            .await
            .map_err(Error::from)?;
    }
    let cache = keel.cache();
    cache
        .invalidate(
            &cache.scope(<product::Entity as keel::Resource>::NAME, None),
            &[],
        )
        .await;
    Ok(Seeded {
        rows: n,
        elapsed: started.elapsed(),
    })
}

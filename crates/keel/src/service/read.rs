//! The read side: find, get, list, count.

use std::any::TypeId;

use sea_orm::sea_query::Condition;
use sea_orm::{
    DbBackend, FromQueryResult, ModelTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Select, Statement, Value,
};

use super::BaseService;
use super::texts::{Texts, backend_tag};
use crate::query::{Filter, ListQuery, OrderBy, Page, exact};
use crate::resource::value;
use crate::{Context, Error, Resource, Result, View};

/// Lists that skip more rows than this are read from the database every
/// time: a deep offset page is rarely read twice, and would only crowd the
/// cache.
const DEEPEST_CACHED_SKIP: u64 = 1_000;

impl<E: Resource> BaseService<E> {
    /// The row with key `id`, or `None` (also when soft-deleted or another tenant's).
    pub async fn find(&self, ctx: &Context, id: impl Into<E::Key>) -> Result<Option<E::Model>> {
        let id = id.into();
        self.observe(ctx, "find", async {
            crate::trace::record_key(&id);
            self.find_row(ctx, &id).await
        })
        .await
    }

    async fn find_row(&self, ctx: &Context, id: &E::Key) -> Result<Option<E::Model>> {
        self.find_row_json(ctx, id, None).await.map(|(row, _)| row)
    }

    /// The row, and its JSON in `json`'s view if it asks for one and a
    /// cache hit had it.
    async fn find_row_json(
        &self,
        ctx: &Context,
        id: &E::Key,
        json: Option<View>,
    ) -> Result<(Option<E::Model>, Option<bytes::Bytes>)> {
        let from_db = || {
            ctx.within_deadline(async {
                E::Model::find_by_statement(self.by_key_statement(ctx, id)?)
                    .one(&self.conn())
                    .await
                    .map_err(|e| self.db_error(e))
            })
        };
        match (self.cache_scope(ctx)?, json) {
            (Some(scope), Some(view)) => {
                self.keel
                    .cache()
                    .get_with_json(
                        &E::CACHE,
                        &scope,
                        &id.to_string(),
                        view.hidden::<E>(),
                        from_db,
                    )
                    .await
            }
            (Some(scope), None) => self
                .keel
                .cache()
                .get(&E::CACHE, &scope, &id.to_string(), from_db)
                .await
                .map(|row| (row, None)),
            (None, _) => Box::pin(from_db()).await.map(|row| (row, None)),
        }
    }

    /// The statement that reads the row with key `id` in `ctx`'s scope. Its
    /// text is sea-query's, built once per resource and database; the key
    /// and the tenant are bound per call. (MySQL compares text keys and
    /// tenants twice, once as bytes; those statements are built per call.)
    fn by_key_statement(&self, ctx: &Context, id: &E::Key) -> Result<Statement> {
        static TEXTS: Texts<(TypeId, u8)> = Texts::new();
        let backend = self.keel.backend();
        let build = || -> Result<Statement> {
            Ok(E::find()
                .filter(self.by_key(id))
                .filter(self.scope(ctx, false)?)
                .build(backend))
        };
        let mut values: Vec<Value> = vec![id.clone().into()];
        if E::COLUMNS.tenant.is_some() {
            values.push(self.tenant_of(ctx)?.into());
        }
        if backend == DbBackend::MySql && values.iter().any(exact::is_text) {
            return build();
        }
        let key = (TypeId::of::<E>(), backend_tag(backend));
        let Some(sql) = TEXTS.get_or_build(key, || build().ok().map(|s| s.sql)) else {
            return build();
        };
        let statement = Statement::from_sql_and_values(backend, sql.as_ref(), values);
        #[cfg(debug_assertions)]
        {
            let built = build()?;
            debug_assert_eq!(statement.sql, built.sql);
            debug_assert_eq!(statement.values, built.values);
        }
        Ok(statement)
    }

    /// The row with key `id`, locked until the bound transaction ends
    /// (`SELECT ... FOR UPDATE` on PostgreSQL and MySQL; SQLite transactions
    /// that may write hold the database's write lock from their start), or
    /// `NOT_FOUND`. Only on a service bound to a transaction
    /// ([`Tx::service`](crate::tx::Tx::service)); elsewhere the lock would end
    /// with the call, and the error is `INVALID_ARGUMENT`.
    pub async fn get_for_update(&self, ctx: &Context, id: impl Into<E::Key>) -> Result<E::Model> {
        self.observe(ctx, "get_for_update", async {
            let id = id.into();
            crate::trace::record_key(&id);
            let Some(tx) = &self.tx else {
                return Err(Error::invalid_argument(
                    "transaction",
                    "get_for_update locks a row until its transaction ends, so it needs a service \
                     bound to a transaction (tx.service::<E>() or service.with(&tx))",
                ));
            };
            ctx.within_deadline(self.lock_row(tx, ctx, &id, false))
                .await
        })
        .await
    }

    /// The row with key `id`, or `NOT_FOUND`.
    pub async fn get(&self, ctx: &Context, id: impl Into<E::Key>) -> Result<E::Model> {
        let id = id.into();
        self.observe(ctx, "get", async {
            crate::trace::record_key(&id);
            self.find_row(ctx, &id)
                .await?
                .ok_or_else(|| Self::not_found(&id))
        })
        .await
    }

    /// Like [`get`](Self::get), with the row's JSON (`serde_json::to_vec` of
    /// it). A hit in the in-process cache tier hands out the JSON encoded by
    /// the first such hit, so serving a cached row encodes nothing; otherwise
    /// the row is encoded here. Counted as a `get` in the metrics.
    pub async fn get_json(
        &self,
        ctx: &Context,
        id: impl Into<E::Key>,
    ) -> Result<crate::RowJson<E::Model>> {
        self.get_json_in(ctx, id, View::All).await
    }

    /// Like [`get_json`](Self::get_json), with the JSON in `view`: in
    /// [`View::Public`] without the resource's private fields (the row
    /// itself stays whole). A cached row keeps its JSON in both views.
    pub async fn get_json_in(
        &self,
        ctx: &Context,
        id: impl Into<E::Key>,
        view: View,
    ) -> Result<crate::RowJson<E::Model>> {
        let id = id.into();
        self.observe(ctx, "get", async {
            crate::trace::record_key(&id);
            let (row, json) = self.find_row_json(ctx, &id, Some(view)).await?;
            let row = row.ok_or_else(|| Self::not_found(&id))?;
            let json = match json {
                Some(json) => json,
                None => view.to_json::<E>(&row)?,
            };
            Ok(crate::RowJson { row, json })
        })
        .await
    }

    /// One page of the rows matching `query`.
    ///
    /// Errors with `INVALID_ARGUMENT` for a filter or order that names an
    /// unknown field or a disallowed operator, a literal of the wrong type, a
    /// page size out of range, or a page token that is forged or was issued
    /// for another query.
    pub async fn list(&self, ctx: &Context, query: &ListQuery) -> Result<Page<E::Model>> {
        self.observe(ctx, "list", async {
            let config = self.keel.config();
            let view = query.get_view();
            let filter =
                Filter::<E>::parse_in(query.get_filter().unwrap_or(""), &config.limits, view)?;
            let order = OrderBy::<E>::parse_in(query.get_order_by().unwrap_or(""), view)?;
            crate::schema::check_sortable(&self.keel, &order).await?;
            let page_size = config.page.size(query.get_page_size())?;
            let scope = self.scope(ctx, query.get_show_deleted())?;
            let shape = format!(
                "{}|{}|{}|{}",
                filter.as_ref().map(ToString::to_string).unwrap_or_default(),
                order,
                query.get_show_deleted(),
                ctx.tenant().unwrap_or("")
            );
            let filtered = || {
                let mut select = E::find().filter(scope.clone());
                if let Some(f) = &filter {
                    select = select.filter(f.condition(self.keel.backend()));
                }
                select
            };

            let mut select: Select<E> = filtered();
            if let Some(token) = query.get_page_token() {
                let last = self.keel.signer().open(token, E::NAME, &shape)?;
                select = select.filter(after_condition(&order, &last)?);
            }
            for key in order.keys() {
                let (dir, nulls) = key.order();
                select = match nulls {
                    Some(nulls) => select.order_by_with_nulls(key.column, dir, nulls),
                    None => select.order_by(key.column, dir),
                };
            }
            if let Some(skip) = query.get_skip() {
                // Databases take a signed 64-bit offset.
                if i64::try_from(skip).is_err() {
                    return Err(Error::invalid_argument(
                        "skip",
                        format!("skip is at most {}", i64::MAX),
                    ));
                }
                select = select.offset(skip);
            }
            select = select.limit(u64::from(page_size) + 1);

            let from_db = || {
                ctx.within_deadline(async {
                    let _permit = self.query_permit().await?;
                    let mut items = select
                        .all(&self.conn())
                        .await
                        .map_err(|e| self.db_error(e))?;
                    let more = items.len() > page_size as usize;
                    items.truncate(page_size as usize);
                    let next_page_token = match (more, items.last()) {
                        (true, Some(last)) => {
                            let keys = order
                                .keys()
                                .iter()
                                .map(|k| value::to_json(&last.get(k.column)))
                                .collect::<Option<Vec<_>>>()
                                .ok_or_else(|| {
                                    Error::internal(format!(
                                        "{}: a sort key has a type tokens cannot carry",
                                        E::NAME
                                    ))
                                })?;
                            Some(self.keel.signer().issue(E::NAME, &shape, keys))
                        }
                        _ => None,
                    };
                    let total_size = if query.get_total_size() {
                        Some(
                            filtered()
                                .count(&self.conn())
                                .await
                                .map_err(|e| self.db_error(e))?,
                        )
                    } else {
                        None
                    };
                    Ok(Page {
                        items,
                        next_page_token,
                        total_size,
                    })
                })
            };
            // A page far down an offset is rarely read twice: not cached.
            let deep = query.get_skip().unwrap_or(0) > DEEPEST_CACHED_SKIP;
            match self.cache_scope(ctx)?.filter(|_| !deep) {
                Some(cache_scope) => {
                    let normalised = format!(
                        "list|{shape}|{page_size}|{}|{}|{}",
                        query.get_page_token().unwrap_or(""),
                        query.get_skip().unwrap_or(0),
                        query.get_total_size()
                    );
                    self.keel
                        .cache()
                        .query(&E::CACHE, &cache_scope, &normalised, from_db)
                        .await
                }
                None => from_db().await,
            }
        })
        .await
    }

    /// The number of rows matching the query's filter (its page settings are ignored).
    pub async fn count(&self, ctx: &Context, query: &ListQuery) -> Result<u64> {
        self.observe(ctx, "count", async {
            let filter = Filter::<E>::parse_in(
                query.get_filter().unwrap_or(""),
                &self.keel.config().limits,
                query.get_view(),
            )?;
            let mut select = E::find().filter(self.scope(ctx, query.get_show_deleted())?);
            if let Some(f) = &filter {
                select = select.filter(f.condition(self.keel.backend()));
            }
            let from_db = || {
                ctx.within_deadline(async {
                    let _permit = self.query_permit().await?;
                    select
                        .clone()
                        .count(&self.conn())
                        .await
                        .map_err(|e| self.db_error(e))
                })
            };
            match self.cache_scope(ctx)? {
                Some(cache_scope) => {
                    let normalised = format!(
                        "count|{}|{}",
                        filter.as_ref().map(ToString::to_string).unwrap_or_default(),
                        query.get_show_deleted()
                    );
                    self.keel
                        .cache()
                        .query(&E::CACHE, &cache_scope, &normalised, from_db)
                        .await
                }
                None => from_db().await,
            }
        })
        .await
    }
}

/// Decodes the sort keys a token carries, typed by their columns.
fn after_condition<E: Resource>(
    order: &OrderBy<E>,
    last: &[serde_json::Value],
) -> Result<Condition> {
    let invalid =
        || Error::invalid_argument("page_token", "page_token is invalid or was tampered with");
    if last.len() != order.keys().len() {
        return Err(invalid());
    }
    let values = order
        .keys()
        .iter()
        .zip(last)
        .map(|(key, json)| value::from_json(&value::column_type::<E>(key.column), json))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(invalid)?;
    Ok(order.after(&values))
}

//! The arguments and result of `list`.

use serde::{Deserialize, Serialize};

use crate::View;

/// What to list: filter, order, page. Transport-neutral text, checked against
/// the resource when the query runs.
///
/// ```
/// use keel::ListQuery;
/// let q = ListQuery::new().filter("price_cents > 100").order_by("price_cents desc").page_size(20);
/// assert_eq!(q.get_filter(), Some("price_cents > 100"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    filter: Option<String>,
    order_by: Option<String>,
    page_size: Option<u32>,
    page_token: Option<String>,
    skip: Option<u64>,
    show_deleted: bool,
    with_total_size: bool,
    #[serde(default)]
    view: View,
}

impl ListQuery {
    /// Every row, first page, default size, by primary key.
    pub fn new() -> Self {
        Self::default()
    }

    /// An AIP-160 filter such as `price_cents > 100 AND sku : "a"`.
    #[must_use]
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// An AIP-132 order such as `price_cents desc, id`. The primary key is
    /// always appended as a tie-breaker.
    #[must_use]
    pub fn order_by(mut self, order_by: impl Into<String>) -> Self {
        self.order_by = Some(order_by.into());
        self
    }

    /// Rows per page: 1 to the configured maximum (default 20, at most 100).
    #[must_use]
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size = Some(page_size);
        self
    }

    /// Continues after the page that returned this token.
    #[must_use]
    pub fn page_token(mut self, token: impl Into<String>) -> Self {
        self.page_token = Some(token.into());
        self
    }

    /// Skips this many rows first (an offset; prefer page tokens on large tables).
    #[must_use]
    pub fn skip(mut self, skip: u64) -> Self {
        self.skip = Some(skip);
        self
    }

    /// Includes soft-deleted rows.
    #[must_use]
    pub fn show_deleted(mut self, show: bool) -> Self {
        self.show_deleted = show;
        self
    }

    /// Also counts every matching row (one more query).
    #[must_use]
    pub fn total_size(mut self, count: bool) -> Self {
        self.with_total_size = count;
        self
    }

    /// Parses the filter and the order for a caller with this view: in
    /// [`View::Public`] the resource's private fields are unknown to both
    /// (default [`View::All`]).
    #[must_use]
    pub fn view(mut self, view: View) -> Self {
        self.view = view;
        self
    }

    // Each setter has a getter of the same name with `get_` in front, as
    // `std::process::Command` has.

    /// The view the filter and the order are parsed in.
    pub fn get_view(&self) -> View {
        self.view
    }

    /// The filter, if any.
    pub fn get_filter(&self) -> Option<&str> {
        self.filter.as_deref()
    }

    /// The order, if any.
    pub fn get_order_by(&self) -> Option<&str> {
        self.order_by.as_deref()
    }

    /// The requested page size, if any.
    pub fn get_page_size(&self) -> Option<u32> {
        self.page_size
    }

    /// The page token, if any.
    pub fn get_page_token(&self) -> Option<&str> {
        self.page_token.as_deref()
    }

    /// The offset, if any.
    pub fn get_skip(&self) -> Option<u64> {
        self.skip
    }

    /// Whether soft-deleted rows are included.
    pub fn get_show_deleted(&self) -> bool {
        self.show_deleted
    }

    /// Whether a total count is asked for.
    pub fn get_total_size(&self) -> bool {
        self.with_total_size
    }
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Pass to [`ListQuery::page_token`] for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    /// The number of matching rows, when asked for with [`ListQuery::total_size`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_size: Option<u64>,
}

/// Page-size bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageConfig {
    /// Size when the query names none (default 20).
    pub default_size: u32,
    /// Largest size a query may ask for (default 100).
    pub max_size: u32,
}

impl PageConfig {
    /// The page size to use for a request: the default when none is asked
    /// for, `INVALID_ARGUMENT` outside 1..=`max_size` (never silently clamped).
    pub fn size(&self, requested: Option<u32>) -> crate::Result<u32> {
        match requested {
            None => Ok(self.default_size),
            Some(n) if (1..=self.max_size).contains(&n) => Ok(n),
            Some(n) => Err(crate::Error::invalid_argument(
                "page_size",
                format!("page_size must be between 1 and {}, got {n}", self.max_size),
            )),
        }
    }
}

impl Default for PageConfig {
    fn default() -> Self {
        PageConfig {
            default_size: 20,
            max_size: 100,
        }
    }
}

//! `trace_id` and `span_id` on each log line written inside a traced span.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// An event formatter that writes what `inner` writes, with the ids of the
/// trace the event belongs to: as two more members of the JSON object, or
/// as `trace_id=… span_id=…` at the end of a text line. Without a trace
/// (or without the `otel` feature) the line is `inner`'s, unchanged.
pub(crate) struct WithTraceIds<F> {
    inner: F,
    json: bool,
}

impl<F> WithTraceIds<F> {
    pub(crate) fn new(inner: F, json: bool) -> Self {
        WithTraceIds { inner, json }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    F: FormatEvent<S, N>,
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some((trace_id, span_id)) = trace_ids(event) else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let body = line.trim_end_matches('\n');
        let ending = &line[body.len()..];
        if self.json && body.ends_with('}') {
            let open = &body[..body.len() - 1];
            let comma = if open.trim_end().ends_with('{') {
                ""
            } else {
                ","
            };
            write!(
                writer,
                "{open}{comma}\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}{ending}"
            )
        } else {
            write!(
                writer,
                "{body} trace_id={trace_id} span_id={span_id}{ending}"
            )
        }
    }
}

#[cfg(not(feature = "otel"))]
fn trace_ids(_event: &Event<'_>) -> Option<(String, String)> {
    None
}

#[cfg(feature = "otel")]
static DISPATCH: std::sync::OnceLock<tracing::dispatcher::WeakDispatch> =
    std::sync::OnceLock::new();

/// The subscriber whose spans hold the trace contexts (formatting runs
/// inside it, where `tracing`'s own current dispatcher is not reachable).
#[cfg(feature = "otel")]
pub(crate) fn remember(dispatch: &tracing::Dispatch) {
    let _ = DISPATCH.set(dispatch.downgrade());
}

/// The ids of the innermost traced span around `event`, walking out from
/// its parent: Keel's spans are `TRACE` and not the log layer's, so the
/// registry is asked, not the formatter's filtered view.
#[cfg(feature = "otel")]
fn trace_ids(event: &Event<'_>) -> Option<(String, String)> {
    use opentelemetry::trace::TraceContextExt;

    let dispatch = DISPATCH.get()?.upgrade()?;
    let id = match event.parent() {
        Some(id) => id.clone(),
        None if event.is_contextual() => dispatch.current_span().id()?.clone(),
        None => return None,
    };
    let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
    let span = registry.span(&id)?;
    span.scope().find_map(|s| {
        let cx = tracing_opentelemetry::get_otel_context(&s.id(), &dispatch)?;
        let context = cx.span().span_context().clone();
        context.is_valid().then(|| {
            (
                context.trace_id().to_string(),
                context.span_id().to_string(),
            )
        })
    })
}

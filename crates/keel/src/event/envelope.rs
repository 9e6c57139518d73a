//! The event envelope and its wire forms.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::audit::{Change, REDACTED};
use crate::trace::TraceContext;
use crate::{Context, Resource, WriteAction};

/// One event: what happened, to what, when, by whom.
///
/// ```
/// use keel::{Context, event::Event};
/// use serde_json::json;
///
/// let ctx = Context::actor("alice").with_tenant("acme");
/// let event = Event::custom(&ctx, "shop", "shop.order.placed", json!({"order": 7, "total_cents": 4200}))
///     .with_subject("7");
/// let wire = event.to_cloudevent();
/// assert_eq!(wire["specversion"], "1.0");
/// assert_eq!(wire["type"], "shop.order.placed");
/// assert_eq!(wire["keelactor"], "alice");
/// let seed = event.to_seed();
/// assert_eq!(seed["event_type"], "shop.order.placed");
/// assert_eq!(seed["payload"]["total_cents"], 4200);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id, a UUID v7 (time-ordered); consumers deduplicate on it.
    pub id: Uuid,
    /// The event type, such as `shop.product.updated`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Where it happened: `/{service}` or `/{service}/{plural}`.
    pub source: String,
    /// What it is about: the row's key, for entity events.
    pub subject: Option<String>,
    /// When.
    pub time: DateTime<Utc>,
    /// The service that emitted it.
    pub service: String,
    /// Who caused it.
    pub actor: String,
    /// For which tenant.
    pub tenant: Option<String>,
    /// The request it belongs to.
    pub request_id: String,
    /// The payload.
    pub data: Value,
    /// The trace it belongs to (W3C `traceparent` / `tracestate`), when the
    /// write that emitted it was traced: a consumer continues that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
}

impl Event {
    /// A custom domain event of `event_type` emitted by `service`.
    pub fn custom(
        ctx: &Context,
        service: &str,
        event_type: impl Into<String>,
        data: Value,
    ) -> Self {
        Event {
            id: Uuid::now_v7(),
            event_type: event_type.into(),
            source: format!("/{service}"),
            subject: None,
            time: Utc::now(),
            service: service.to_owned(),
            actor: ctx.actor_name().to_owned(),
            tenant: ctx.tenant().map(str::to_owned),
            request_id: ctx.request_id().to_owned(),
            data,
            trace: TraceContext::current(),
        }
    }

    /// The event of a typed [`DomainEvent`](super::DomainEvent): type `{service}.{D::TYPE}`.
    pub fn domain<D: super::DomainEvent>(
        ctx: &Context,
        service: &str,
        event: &D,
    ) -> crate::Result<Self> {
        let data = serde_json::to_value(event).map_err(crate::Error::internal)?;
        let mut out = Event::custom(ctx, service, format!("{service}.{}", D::TYPE), data);
        out.subject = event.subject();
        Ok(out)
    }

    /// Sets the subject.
    #[must_use]
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The event of a write of resource `E`: type `{service}.{resource event type}`,
    /// data `{"row": ..., "changes": [...]}` with the resource's redacted
    /// fields masked in both (`changes` only for updates).
    pub fn for_write<E: Resource>(
        ctx: &Context,
        service: &str,
        action: WriteAction,
        key: impl Into<String>,
        row: &E::Model,
        changes: Option<&[Change]>,
    ) -> Self {
        let mut data = Map::new();
        data.insert("row".into(), redacted_row::<E>(row));
        if let Some(changes) = changes {
            data.insert(
                "changes".into(),
                serde_json::to_value(changes).unwrap_or(Value::Null),
            );
        }
        Event::write_shell::<E>(ctx, service, action, key.into(), Value::Object(data))
    }

    /// The event of a write of `E` with `data` as given: the envelope a
    /// statement that works out the row itself fills in.
    pub(crate) fn write_shell<E: Resource>(
        ctx: &Context,
        service: &str,
        action: WriteAction,
        key: String,
        data: Value,
    ) -> Self {
        let mut event = Event::custom(
            ctx,
            service,
            format!("{service}.{}", E::event_type(action)),
            data,
        );
        event.source = format!("/{service}/{}", E::PLURAL);
        event.with_subject(key)
    }

    /// The CloudEvents 1.0 JSON form (structured mode). Keel's own attributes
    /// are extensions: `keelactor`, `keeltenant`, `keelrequestid`, `keelservice`;
    /// a traced event has the distributed-tracing extension's `traceparent`
    /// (and `tracestate`).
    pub fn to_cloudevent(&self) -> Value {
        let mut out = json!({
            "specversion": "1.0",
            "id": self.id.to_string(),
            "type": self.event_type,
            "source": self.source,
            "time": self.time.to_rfc3339_opts(SecondsFormat::Micros, true),
            "datacontenttype": "application/json",
            "data": self.data,
            "keelactor": self.actor,
            "keelrequestid": self.request_id,
            "keelservice": self.service,
        });
        if let Some(subject) = &self.subject {
            out["subject"] = json!(subject);
        }
        if let Some(tenant) = &self.tenant {
            out["keeltenant"] = json!(tenant);
        }
        if let Some(trace) = &self.trace {
            out["traceparent"] = json!(trace.traceparent);
            if let Some(state) = &trace.tracestate {
                out["tracestate"] = json!(state);
            }
        }
        out
    }

    /// The seed wire format: `{event_type, payload, timestamp, service}`.
    pub fn to_seed(&self) -> Value {
        json!({
            "event_type": self.event_type,
            "payload": self.data,
            "timestamp": self.time.to_rfc3339_opts(SecondsFormat::Micros, true),
            "service": self.service,
        })
    }
}

impl Event {
    /// The event a CloudEvents 1.0 JSON document ([`to_cloudevent`](Self::to_cloudevent))
    /// describes, or `None` when it lacks `id`, `type` or `time`.
    pub fn from_cloudevent(value: &Value) -> Option<Event> {
        let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        Some(Event {
            id: Uuid::parse_str(value.get("id")?.as_str()?).ok()?,
            event_type: text("type")?,
            source: text("source").unwrap_or_default(),
            subject: text("subject"),
            time: DateTime::parse_from_rfc3339(value.get("time")?.as_str()?)
                .ok()?
                .with_timezone(&Utc),
            service: text("keelservice").unwrap_or_default(),
            actor: text("keelactor").unwrap_or_default(),
            tenant: text("keeltenant"),
            request_id: text("keelrequestid").unwrap_or_default(),
            data: value.get("data").cloned().unwrap_or(Value::Null),
            trace: TraceContext::from_headers(
                text("traceparent").as_deref(),
                text("tracestate").as_deref(),
            ),
        })
    }

    /// The event a seed-form document ([`to_seed`](Self::to_seed))
    /// describes. The seed form carries no id, actor or subject: the id is
    /// a new one (a consumer takes the transport's message id instead), the
    /// others are empty.
    pub fn from_seed(value: &Value) -> Option<Event> {
        let service = value.get("service")?.as_str()?.to_owned();
        Some(Event {
            id: Uuid::now_v7(),
            event_type: value.get("event_type")?.as_str()?.to_owned(),
            source: format!("/{service}"),
            subject: None,
            time: DateTime::parse_from_rfc3339(value.get("timestamp")?.as_str()?)
                .ok()?
                .with_timezone(&Utc),
            service,
            actor: String::new(),
            tenant: None,
            request_id: String::new(),
            data: value.get("payload").cloned().unwrap_or(Value::Null),
            trace: None,
        })
    }
}

/// The row as JSON with the resource's redacted fields masked.
fn redacted_row<E: Resource>(row: &E::Model) -> Value {
    let mut value = serde_json::to_value(row).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        for field in E::REDACTED_FIELDS {
            if let Some(v) = map.get_mut(*field) {
                *v = Value::String(REDACTED.to_owned());
            }
        }
    }
    value
}

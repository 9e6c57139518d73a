//! Domain events: the envelope every write (and user code) emits.
//!
//! The envelope follows [CloudEvents 1.0](https://cloudevents.io): `id` (a
//! UUID v7), `type` (`{service}.{resource}.{created|updated|deleted|restored}`
//! or a custom domain type), `source`, `subject` (the row's key), `time`,
//! plus Keel's `actor`, `tenant` and `request_id`, and `data`: the row after
//! the write (redacted fields masked) and, for updates, the redacted diff.
//! [`Event::to_cloudevent`] and [`Event::to_seed`] give its two wire forms.
//!
//! Delivery (the in-process bus, the outbox) comes with the transactions work.

mod envelope;

pub use envelope::Event;

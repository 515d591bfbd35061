//! Webhooks: chosen deviation events POSTed as signed JSON to other systems, through the
//! same outbox machinery as e-mail.
//!
//! Which deliveries are owed is a fold of the log (`outbox`): every record of a type a
//! configured webhook subscribes to calls for one delivery to it, whose id is a UUIDv5 of
//! the record's id and the webhook's name. What happened to each is written back as events
//! (`events`) in the delivery's own stream; a delivery that no `WebhookDelivered` or
//! `WebhookAbandoned` settled is pending, so a crash loses none: after a restart the fold
//! finds it again and it is sent again, with the same `X-Avvik-Delivery` id for the
//! receiver to deduplicate. The body holds only clear fields (`payload`), never what
//! `privacy::seal` seals. `worker` sends, retries with back-off and records.

pub mod events;
pub mod outbox;
pub mod payload;
mod worker;

pub use outbox::{WebhookHealth, WebhookOutbox, WebhookOutboxProjection};
pub use worker::{Webhook, WebhookReport, Webhooks};

//! E-mail notices: the outbox projection, the notification rules, the delivery worker,
//! reminders and the signed acknowledgement links.
//!
//! Reactions are projections too: which e-mails are due is a fold of the log
//! (`outbox`), computed by pure rules (`rules`); what happened to each e-mail is written
//! back as events (`events`) in the notice's own stream. A notice's id is a UUIDv5 of its
//! trigger, rule and recipient, and its Message-ID derives from that id, so a crash between
//! the SMTP server's acceptance and the `NotificationSent` event gives at most a duplicate
//! with the same Message-ID, never a lost escalation.
//!
//! For the staff deviation page, `Notify::notices_for`, `acknowledgements_for` and
//! `timeline_for` give what to show.

pub mod content;
pub mod events;
pub mod links;
pub mod outbox;
pub mod recipients;
pub mod rules;
mod worker;

pub use outbox::{Acknowledgement, DeliveryState, EscalationNotice, NoticeStatus};
pub use rules::{Group, Rule};
pub(crate) use worker::run_bounded;
pub use worker::{mailer_settings, send_test_email, AckOutcome, DeliveryReport, Notify};

#[cfg(test)]
mod tests;

//! avvik-notifiers: turns a notice into a Swedish e-mail (askama templates, plain text and
//! HTML) and delivers it with lettre, over one pooled SMTP transport or into .eml files.
//!
//! This crate knows nothing of the event log or the domain: the service decides *which*
//! notices are due (`src/notify/` in the `avvik` package) and hands over the facts, already
//! in words people read; this crate decides how an e-mail looks and how it is sent.

pub mod content;
pub mod mailer;
pub mod retry;
mod smtp_pool;
pub mod time;

pub use content::{
    one_line, render, size_sv, AspectLine, DeviationFacts, InlineImage, NoticeContent, RenderError,
    Rendered,
};
pub use mailer::{
    message_id_for, Mailer, MailerError, MailerSettings, OutgoingEmail, SendError, SmtpSettings,
    SmtpTls, TransportSettings,
};
pub use retry::RetryPolicy;

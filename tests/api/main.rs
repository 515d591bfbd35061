//! Integration tests: the real application on port 0 and the real binary as a child.

mod admin_ui;
mod annual;
mod archive;
mod audit;
mod audit_tamper;
mod audit_ui;
mod authz;
mod browser;
mod cli;
mod crash;
mod crash_loop;
mod faults;
mod fuzz_corpus;
mod helpers;
mod intake;
mod intake_corpus;
mod intake_crash;
mod intake_dovecot;
mod notify;
mod notify_more;
mod openapi;
mod overload;
mod public;
mod report;
mod reports_http;
mod staff_ui;

//! Integration tests: the real application on port 0 and the real binary as a child.

mod admin_ui;
mod annual;
mod audit;
mod audit_tamper;
mod audit_ui;
mod authz;
mod browser;
mod cli;
mod crash;
mod helpers;
mod notify;
mod openapi;
mod public;
mod report;
mod staff_ui;

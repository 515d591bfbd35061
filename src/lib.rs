//! avvik: information-security deviations (avvikelser) as an event-sourced service.

pub mod access_log;
#[cfg(test)]
mod architecture_tests;
pub mod archive;
pub mod audit;
pub mod auth;
pub mod calendar;
pub mod cli;
pub mod cli_accounts;
pub mod cli_keys;
pub mod clock;
pub mod command;
pub mod config;
pub mod doctor;
pub mod domain;
pub mod duty;
pub mod export;
pub mod filing;
pub mod intake;
pub mod net;
pub mod notify;
pub mod privacy;
pub mod projection;
pub mod register;
pub mod report;
pub mod scheduler;
pub mod secret;
pub mod service;
pub mod startup;
pub mod state;
pub mod store;
pub mod web;
pub mod webhooks;

//! avvik: information-security deviations (avvikelser) as an event-sourced service.

pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod projection;
pub mod register;
pub mod secret;
pub mod service;
pub mod startup;
pub mod web;

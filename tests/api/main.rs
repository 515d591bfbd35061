//! Integration tests: the real application on port 0 and the real binary as a child.

mod annual;
mod audit;
mod authz;
mod browser;
mod cli;
mod crash;
mod helpers;
mod openapi;
mod public;
mod report;
mod staff_ui;

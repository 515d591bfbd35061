//! Integration tests: the real application on port 0 and the real binary as a child.

mod authz;
mod cli;
mod crash;
mod helpers;
mod openapi;
mod report;

//! Staff identity: accounts and roles (events), passwords, sessions and API tokens, and
//! the single authorization function.

pub mod accounts;
pub mod password;
pub mod policy;
pub mod service;
pub mod session;
pub mod setup;

pub use accounts::{Account, Accounts, Role, RoleGrant};
pub use policy::{authorize, Action, Principal};
pub use session::Staff;

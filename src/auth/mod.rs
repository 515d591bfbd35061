//! Staff identity: accounts and roles (events), passwords, sessions and API tokens, and
//! the single authorization function.

/// The account aggregate lives in the domain; this path is kept for its users.
pub use crate::domain::account as accounts;
pub mod guard;
pub mod password;
pub mod policy;
pub mod service;
pub mod session;

pub use accounts::{Account, Accounts, Role, RoleGrant};
pub use guard::LoginGuard;
pub use policy::{authorize, Action, Principal};
pub use session::Staff;

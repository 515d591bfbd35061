//! Staff identity: accounts and roles (events), passwords, sessions and API tokens, and
//! the single authorization function.

/// The account aggregate lives in the domain; this path is kept for its users.
pub use crate::domain::account as accounts;
pub mod duties;
pub mod oidc;
pub mod passkey;
pub mod password;
pub mod policy;
pub mod second_factor;
pub mod service;
pub mod session;
pub mod setup;
pub mod throttle;

pub use accounts::{Account, Accounts, Role, RoleGrant};
pub use policy::{authorize, marks_awareness, Action, Principal};
pub use session::Staff;
/// Failed logins per account and source address, with exponential back-off.
pub use throttle::LoginThrottle as LoginGuard;

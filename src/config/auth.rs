//! `[auth]`: how staff sign in — which roles must give a second factor after the
//! password. (A submodule of `config`, which sits in the domain layer: `auth` above it
//! reads it, not the other way round.)

use serde::{Deserialize, Serialize};

use crate::domain::account::{Role, RoleGrant};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Accounts holding any of these roles must sign in with a second factor (an
    /// authenticator app or a passkey); until they have one they reach only the page where
    /// they add it. Others may add one and are then asked for it too.
    #[serde(default = "default_second_factor_roles")]
    pub second_factor_roles: Vec<Role>,
}

fn default_second_factor_roles() -> Vec<Role> {
    vec![Role::Ciso, Role::Admin, Role::Auditor]
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            second_factor_roles: default_second_factor_roles(),
        }
    }
}

impl AuthConfig {
    /// Must an account with these roles give a second factor?
    pub fn requires_second_factor(&self, roles: &[RoleGrant]) -> bool {
        roles
            .iter()
            .any(|g| self.second_factor_roles.contains(&g.role))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_privileged_roles_need_a_second_factor_by_default() {
        let c = AuthConfig::default();
        let grant = |role| RoleGrant {
            role,
            sectors: Vec::new(),
        };
        assert!(c.requires_second_factor(&[grant(Role::Ledning), grant(Role::Auditor)]));
        assert!(!c.requires_second_factor(&[grant(Role::Ledning)]));
        assert!(!c.requires_second_factor(&[]));
    }
}

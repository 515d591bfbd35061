//! `[auth]`: how staff sign in — which roles must give a second factor after the
//! password, and the identity providers (OpenID Connect) staff may sign in with instead.
//! (A submodule of `config`, which sits in the domain layer: `auth` above it reads it, not
//! the other way round.)

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::domain::account::{check_grant, Role, RoleGrant};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Accounts holding any of these roles must sign in with a second factor (an
    /// authenticator app or a passkey); until they have one they reach only the page where
    /// they add it. Others may add one and are then asked for it too.
    #[serde(default = "default_second_factor_roles")]
    pub second_factor_roles: Vec<Role>,
    /// Staff sign in only through an identity provider (`[[auth.oidc]]`): the password
    /// form is gone and password sessions end. API tokens keep working.
    #[serde(default)]
    pub sso_only: bool,
    /// Identity providers (OpenID Connect) staff may sign in with; none by default.
    #[serde(default)]
    pub oidc: Vec<OidcProviderConfig>,
}

/// One `[[auth.oidc]]` entry: an OpenID Connect provider (Entra ID, Keycloak, ADFS …).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// Names the provider in URLs, events and logs: a-z, 0-9, - and _.
    pub id: String,
    /// The sign-in button's text.
    #[serde(default = "default_label")]
    pub label: String,
    /// The issuer URL; discovery reads `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// The client secret itself; or
    #[serde(default)]
    pub client_secret: String,
    /// a file holding it (a trailing newline is dropped); or
    #[serde(default)]
    pub client_secret_file: PathBuf,
    /// the name of an environment variable holding it.
    #[serde(default)]
    pub client_secret_env: String,
    /// Scopes asked for besides `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The id_token claim holding the user's groups or roles (a string or a list of
    /// strings); a dotted path reaches into objects (`realm_access.roles`).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Which claim values give which avvik role. An account signed in through the
    /// provider holds exactly the roles its claim gives at each sign-in.
    #[serde(default)]
    pub roles: Vec<OidcRoleMapping>,
    /// Link a local account with the same e-mail address to the provider's user at their
    /// first sign-in (else that sign-in is refused). Only for a provider whose e-mail
    /// claim the municipality controls.
    #[serde(default)]
    pub link_existing_accounts: bool,
    /// Signing out of avvik signs out at the provider too, where it offers that
    /// (RP-initiated logout).
    #[serde(default = "default_true")]
    pub logout_at_provider: bool,
}

/// A claim value and the role it gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcRoleMapping {
    /// The group (or role) as the claim names it.
    pub value: String,
    pub role: Role,
    /// For `kontakt`: the sectors.
    #[serde(default)]
    pub sectors: Vec<String>,
}

fn default_label() -> String {
    "Logga in med kommunens konto".into()
}

fn default_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

fn default_roles_claim() -> String {
    "groups".into()
}

fn default_true() -> bool {
    true
}

impl std::fmt::Debug for OidcProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProviderConfig")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("client_secret_file", &self.client_secret_file)
            .field("client_secret_env", &self.client_secret_env)
            .field("scopes", &self.scopes)
            .field("roles_claim", &self.roles_claim)
            .field("roles", &self.roles)
            .field("link_existing_accounts", &self.link_existing_accounts)
            .field("logout_at_provider", &self.logout_at_provider)
            .finish()
    }
}

impl OidcProviderConfig {
    /// The client secret, from wherever the configuration says it is (read at start-up).
    pub fn resolve_secret(&self, index: usize) -> Result<String, ConfigError> {
        let key = |k: &str| format!("auth.oidc[{index}].client_{k} (provider \"{}\")", self.id);
        let (secret, which) = super::read_secret(
            &self.client_secret,
            &self.client_secret_file,
            &self.client_secret_env,
            &key,
        )?;
        if secret.is_empty() {
            return Err(ConfigError(format!(
                "key `{}`: expected the client secret, got an empty value",
                key(which)
            )));
        }
        Ok(secret)
    }

    /// The roles (with sectors) these claim values give.
    pub fn roles_for(&self, values: &[String]) -> Vec<RoleGrant> {
        let mut out: Vec<RoleGrant> = Vec::new();
        for m in self.roles.iter().filter(|m| values.contains(&m.value)) {
            match out.iter_mut().find(|g| g.role == m.role) {
                Some(g) => {
                    for s in &m.sectors {
                        if !g.sectors.contains(s) {
                            g.sectors.push(s.clone());
                        }
                    }
                }
                None => out.push(RoleGrant {
                    role: m.role,
                    sectors: m.sectors.clone(),
                }),
            }
        }
        for g in &mut out {
            g.sectors.sort();
        }
        out.sort_by_key(|g| g.role);
        out
    }
}

fn default_second_factor_roles() -> Vec<Role> {
    vec![Role::Ciso, Role::Admin, Role::Auditor]
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            second_factor_roles: default_second_factor_roles(),
            sso_only: false,
            oidc: Vec::new(),
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

    /// The provider with this id.
    pub fn provider(&self, id: &str) -> Option<&OidcProviderConfig> {
        self.oidc.iter().find(|p| p.id == id)
    }

    /// Checks that serde's types cannot express (the secrets are read at start-up).
    pub fn validate(&self, base_url: &str) -> Result<(), ConfigError> {
        if self.sso_only && self.oidc.is_empty() {
            return Err(ConfigError(
                "key `auth.sso_only`: expected at least one [[auth.oidc]] provider to sign in with, got none"
                    .into(),
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for (i, p) in self.oidc.iter().enumerate() {
            let bad = |key: &str, expected: &str, got: &dyn std::fmt::Display| {
                Err(ConfigError(format!(
                    "key `auth.oidc[{i}].{key}`: expected {expected}, got `{got}`"
                )))
            };
            let id_ok = !p.id.is_empty()
                && p.id.len() <= 64
                && p.id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !id_ok || p.id == "callback" {
                return bad(
                    "id",
                    "a name of 1 to 64 characters a-z, 0-9, - and _ (not \"callback\")",
                    &p.id,
                );
            }
            if !ids.insert(p.id.as_str()) {
                return bad("id", "an id no other provider has", &p.id);
            }
            if p.label.trim().is_empty() || p.label.chars().count() > 100 {
                return bad("label", "a button text of 1 to 100 characters", &p.label);
            }
            let url = reqwest::Url::parse(&p.issuer).ok();
            let host = url.as_ref().and_then(|u| u.host_str()).unwrap_or("");
            let ok = match url.as_ref().map(|u| u.scheme()) {
                Some("https") => !host.is_empty(),
                Some("http") => super::is_loopback_host(host),
                _ => false,
            };
            if !ok
                || url
                    .as_ref()
                    .is_some_and(|u| u.query().is_some() || u.fragment().is_some())
            {
                return bad(
                    "issuer",
                    "an https:// URL without query or fragment (http:// only for a loopback host)",
                    &p.issuer,
                );
            }
            if p.client_id.trim().is_empty() {
                return bad("client_id", "the client id registered at the provider", &"");
            }
            let sources = [
                !p.client_secret.is_empty(),
                !p.client_secret_file.as_os_str().is_empty(),
                !p.client_secret_env.is_empty(),
            ];
            match sources.iter().filter(|s| **s).count() {
                1 => {}
                0 => return bad(
                    "client_secret",
                    "the client secret (client_secret, client_secret_file or client_secret_env)",
                    &"",
                ),
                _ => {
                    return bad(
                        "client_secret",
                        "only one of client_secret, client_secret_file and client_secret_env",
                        &"<redacted>",
                    )
                }
            }
            if let Some(s) = p.scopes.iter().find(|s| s.is_empty() || s.contains(' ')) {
                return bad("scopes", "scope names without spaces", s);
            }
            if p.roles_claim.trim().is_empty() {
                return bad("roles_claim", "the name of a claim (e.g. \"groups\")", &"");
            }
            for (j, m) in p.roles.iter().enumerate() {
                if m.value.is_empty() {
                    return bad(&format!("roles[{j}].value"), "a group or role name", &"");
                }
                if check_grant(m.role, &m.sectors).is_err() {
                    return bad(
                        &format!("roles[{j}].sectors"),
                        "at least one sector for role kontakt, none for other roles",
                        &format!("{:?}", m.sectors),
                    );
                }
            }
        }
        if !self.oidc.is_empty() && !base_url.starts_with("https://") {
            let host = reqwest::Url::parse(base_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default();
            if !super::is_loopback_host(&host) {
                return Err(ConfigError(format!(
                    "key `http.base_url`: expected an https:// URL when [[auth.oidc]] providers are set (the provider sends the browser back to it), got `{base_url}`"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Format;

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

    fn with_provider(extra: &str) -> Result<AuthConfig, String> {
        let toml = format!(
            "[[oidc]]\nid = \"kommunen\"\nissuer = \"https://login.kommunen.se\"\nclient_id = \"avvik\"\n{extra}"
        );
        let c: AuthConfig = figment::Figment::from(figment::providers::Toml::string(&toml))
            .extract()
            .map_err(|e| e.to_string())?;
        c.validate("https://avvik.kommunen.se")
            .map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn a_provider_is_checked_naming_the_key() {
        assert!(with_provider("client_secret = \"s\"").is_ok());
        let e = with_provider("").unwrap_err();
        assert!(e.contains("auth.oidc[0].client_secret"), "{e}");
        let e = with_provider("client_secret = \"s\"\nclient_secret_env = \"X\"").unwrap_err();
        assert!(e.contains("only one of"), "{e}");
        assert!(!e.contains("\"s\""), "{e}");
        let e =
            with_provider("client_secret = \"s\"\nroles = [{ value = \"g\", role = \"kontakt\" }]")
                .unwrap_err();
        assert!(e.contains("auth.oidc[0].roles[0].sectors"), "{e}");
        let c = AuthConfig {
            sso_only: true,
            ..AuthConfig::default()
        };
        assert!(c
            .validate("https://a.se")
            .unwrap_err()
            .to_string()
            .contains("auth.sso_only"));
        let c = with_provider("client_secret = \"s\"").unwrap();
        let e = c
            .validate("http://avvik.kommunen.se")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.base_url"), "{e}");
        let e = with_provider("client_secret = \"s\"\nissuer = \"http://login.kommunen.se\"");
        assert!(e.is_err());
    }

    #[test]
    fn claim_values_give_roles_with_their_sectors_merged() {
        let c = with_provider(
            "client_secret = \"s\"\nroles = [{ value = \"a\", role = \"kontakt\", sectors = [\"vard\"] }, { value = \"b\", role = \"kontakt\", sectors = [\"skola\"] }, { value = \"c\", role = \"ciso\" }]",
        )
        .unwrap();
        let p = &c.oidc[0];
        let roles = p.roles_for(&["b".into(), "a".into(), "x".into()]);
        assert_eq!(roles.len(), 1);
        assert_eq!(roles[0].role, Role::Kontakt);
        assert_eq!(roles[0].sectors, vec!["skola", "vard"]);
        assert!(p.roles_for(&[]).is_empty());
        // The secret never shows in Debug.
        assert!(!format!("{p:?}").contains("\"s\""));
    }
}

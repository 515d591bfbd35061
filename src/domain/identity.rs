//! Signing in through an identity provider, as account events: the account made at the
//! user's first sign-in, its link to the provider's user (issuer + `sub`), and its roles
//! set to what the provider's claim gives at every sign-in — each grant and revoke an
//! event, so "who could do what, when" stays true. Pure, like the account decider.

use uuid::Uuid;

use super::account::{
    check_grant, Account, AccountCreated, AccountEvent, AccountRefusal, IdentityLinked, RoleGrant,
    RoleGranted, RoleRevoked,
};
use super::EmailAddress;

/// A user the provider vouched for (a verified id_token).
#[derive(Debug, Clone)]
pub struct ProviderUser {
    /// `[[auth.oidc]]` id.
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub email: EmailAddress,
    pub name: String,
    /// What the provider's claim gives, through the configured mapping.
    pub roles: Vec<RoleGrant>,
    /// May a local account with the same e-mail address be linked?
    pub link_existing: bool,
}

fn refuse<T>(msg: &str) -> Result<T, AccountRefusal> {
    Err(AccountRefusal::Invalid(msg.into()))
}

/// The events of a sign-in of `user` on account `id` (`state`: that account, `None` when
/// there is none yet). The caller picks `id`: the account linked to the user, else the
/// account of their e-mail address.
pub fn decide_provider_sign_in(
    state: Option<&Account>,
    id: Uuid,
    user: &ProviderUser,
) -> Result<Vec<AccountEvent>, AccountRefusal> {
    for g in &user.roles {
        check_grant(g.role, &g.sectors)?;
    }
    let link = AccountEvent::IdentityLinked(IdentityLinked {
        account_id: id,
        provider: user.provider.clone(),
        issuer: user.issuer.clone(),
        subject: user.subject.clone(),
    });
    let Some(a) = state else {
        let name: String = match user.name.trim() {
            "" => user.email.as_str().to_string(),
            n => n.chars().take(200).collect(),
        };
        let mut events = vec![
            AccountEvent::Created(AccountCreated {
                account_id: id,
                email: user.email.clone(),
                name,
            }),
            link,
        ];
        events.extend(user.roles.iter().map(|g| grant(id, g)));
        return Ok(events);
    };
    if a.disabled {
        return refuse("Ditt konto i avvik är avstängt. Kontakta administratören.");
    }
    let linked = a
        .identities
        .iter()
        .any(|l| l.issuer == user.issuer && l.subject == user.subject);
    let mut events = Vec::new();
    if !linked {
        if a.identities.iter().any(|l| l.issuer == user.issuer) {
            return refuse(
                "Det finns redan ett konto i avvik med din e-postadress, kopplat till en annan användare hos identitetsleverantören. Kontakta administratören.",
            );
        }
        if !user.link_existing {
            return refuse(
                "Det finns redan ett lokalt konto i avvik med din e-postadress. Administratören behöver tillåta att det kopplas till kommunens inloggning (link_existing_accounts).",
            );
        }
        events.push(link);
    }
    for g in &user.roles {
        if !a.roles.contains(g) {
            events.push(grant(id, g));
        }
    }
    for held in &a.roles {
        if !user.roles.iter().any(|g| g.role == held.role) {
            events.push(AccountEvent::RoleRevoked(RoleRevoked {
                account_id: id,
                role: held.role,
            }));
        }
    }
    Ok(events)
}

fn grant(id: Uuid, g: &RoleGrant) -> AccountEvent {
    AccountEvent::RoleGranted(RoleGranted {
        account_id: id,
        role: g.role,
        sectors: g.sectors.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::account::{Accounts, Role};
    use avvik_events::RecordedEvent;
    use chrono::Utc;

    fn user(roles: Vec<RoleGrant>) -> ProviderUser {
        ProviderUser {
            provider: "kommunen".into(),
            issuer: "https://idp.example".into(),
            subject: "u-1".into(),
            email: EmailAddress::parse("anna@kommunen.se").unwrap(),
            name: "Anna".into(),
            roles,
            link_existing: false,
        }
    }

    fn role(role: Role) -> RoleGrant {
        RoleGrant {
            role,
            sectors: Vec::new(),
        }
    }

    /// Folds `events` into `accounts` as stream `id`'s next versions.
    fn fold(accounts: &mut Accounts, id: Uuid, events: Vec<AccountEvent>) {
        for ev in events {
            let version = accounts.get(id).map_or(1, |a| a.version + 1);
            assert!(accounts.apply(&RecordedEvent {
                seq: u64::from(version),
                id: Uuid::now_v7(),
                stream: id,
                version,
                at: Utc::now(),
                actor: "oidc:kommunen".into(),
                event_type: ev.type_name().into(),
                schema: 1,
                data: ev.to_data(),
                prev: String::new(),
            }));
        }
    }

    #[test]
    fn the_first_sign_in_makes_a_linked_account_and_later_ones_follow_the_claim() {
        let id = Uuid::from_u128(7);
        let mut accounts = Accounts::default();
        let first = decide_provider_sign_in(None, id, &user(vec![role(Role::Ciso)])).unwrap();
        fold(&mut accounts, id, first);
        let a = accounts.get(id).unwrap();
        assert_eq!(a.roles, vec![role(Role::Ciso)]);
        assert_eq!(
            accounts
                .by_identity("https://idp.example", "u-1")
                .map(|a| a.id),
            Some(id)
        );
        // Same groups: nothing to record.
        let again = decide_provider_sign_in(accounts.get(id), id, &user(vec![role(Role::Ciso)]));
        assert_eq!(again.unwrap(), Vec::new());
        // Out of the CISO group, into the auditors: one revoke, one grant.
        let moved = decide_provider_sign_in(accounts.get(id), id, &user(vec![role(Role::Auditor)]))
            .unwrap();
        assert!(
            matches!(moved[..], [AccountEvent::RoleGranted(ref g), AccountEvent::RoleRevoked(ref r)]
            if g.role == Role::Auditor && r.role == Role::Ciso)
        );
    }

    #[test]
    fn a_local_account_of_the_same_address_is_linked_only_when_allowed() {
        let id = Uuid::from_u128(8);
        let mut accounts = Accounts::default();
        fold(
            &mut accounts,
            id,
            vec![AccountEvent::Created(AccountCreated {
                account_id: id,
                email: EmailAddress::parse("anna@kommunen.se").unwrap(),
                name: "Anna".into(),
            })],
        );
        let refused = decide_provider_sign_in(accounts.get(id), id, &user(Vec::new()));
        assert!(matches!(refused, Err(AccountRefusal::Invalid(_))));
        let mut allowed = user(vec![role(Role::Ledning)]);
        allowed.link_existing = true;
        let events = decide_provider_sign_in(accounts.get(id), id, &allowed).unwrap();
        assert!(matches!(events[0], AccountEvent::IdentityLinked(_)));
        assert_eq!(events.len(), 2);
    }
}

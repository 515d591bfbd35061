//! Separation of duties for account changes made in the running service: nobody grants
//! roles to themselves, API tokens are created only by their owner, and the roles that
//! open everything (ciso, admin, auditor) are granted only when a second admin approves
//! (four eyes). Pure: `decide` gets the account as it is and who asks, and returns the
//! events; the caller appends them. (The CLI bootstrap with the server stopped grants
//! directly: it is how the first accounts come to exist.)

use uuid::Uuid;

use super::accounts::{
    Account, AccountEvent, ApiTokenRevoked, CalendarFeedRevoked, Role, RoleGrantApproved,
    RoleGrantRejected, RoleGrantRequested, RoleGranted,
};
use super::service::AccountError;

/// Roles that are granted only with a second admin's approval.
pub const FOUR_EYES_ROLES: [Role; 3] = [Role::Ciso, Role::Admin, Role::Auditor];

pub fn needs_second_admin(role: Role) -> bool {
    FOUR_EYES_ROLES.contains(&role)
}

/// An account change asked for in the admin UI.
#[derive(Debug, Clone, PartialEq)]
pub enum DutyCommand {
    /// Grant a role: at once, or (for `FOUR_EYES_ROLES`) as a pending request.
    Grant { role: Role, sectors: Vec<String> },
    /// A second admin approves a pending request: the grant happens.
    Approve { request_id: Uuid },
    /// Any admin (the requester too) turns a pending request down.
    Reject { request_id: Uuid },
    /// Revoke every active API token and the calendar link of the account (after a
    /// password reset).
    RevokeAllTokens,
}

/// Who asks, and the ids the decision may use.
#[derive(Debug, Clone, Copy)]
pub struct DutyContext {
    /// The account of the admin asking.
    pub by: Uuid,
    /// The id a new request gets.
    pub new_request_id: Uuid,
}

fn refuse(msg: &str) -> AccountError {
    AccountError::Invalid(msg.into())
}

pub fn decide(
    account: &Account,
    cmd: DutyCommand,
    ctx: DutyContext,
) -> Result<Vec<AccountEvent>, AccountError> {
    match cmd {
        DutyCommand::Grant { role, sectors } => {
            if ctx.by == account.id {
                return Err(refuse(
                    "Du kan inte ge dig själv roller. Be en annan administratör.",
                ));
            }
            if !needs_second_admin(role) {
                return Ok(vec![AccountEvent::RoleGranted(RoleGranted {
                    account_id: account.id,
                    role,
                    sectors,
                })]);
            }
            if account.has(role) {
                return Err(refuse("Kontot har redan den rollen."));
            }
            if account.pending_grants.iter().any(|p| p.role == role) {
                return Err(refuse(
                    "Rollen väntar redan på godkännande av en annan administratör.",
                ));
            }
            Ok(vec![AccountEvent::RoleGrantRequested(RoleGrantRequested {
                account_id: account.id,
                request_id: ctx.new_request_id,
                role,
                sectors,
                requested_by: ctx.by,
            })])
        }
        DutyCommand::Approve { request_id } => {
            let Some(p) = account
                .pending_grants
                .iter()
                .find(|p| p.request_id == request_id)
            else {
                return Err(refuse("Begäran finns inte eller är redan avgjord."));
            };
            if ctx.by == account.id {
                return Err(refuse("Du kan inte godkänna roller till dig själv."));
            }
            if ctx.by == p.requested_by {
                return Err(refuse(
                    "En annan administratör än den som begärde rollen måste godkänna den.",
                ));
            }
            Ok(vec![
                AccountEvent::RoleGrantApproved(RoleGrantApproved {
                    account_id: account.id,
                    request_id,
                }),
                AccountEvent::RoleGranted(RoleGranted {
                    account_id: account.id,
                    role: p.role,
                    sectors: p.sectors.clone(),
                }),
            ])
        }
        DutyCommand::Reject { request_id } => {
            if !account
                .pending_grants
                .iter()
                .any(|p| p.request_id == request_id)
            {
                return Err(refuse("Begäran finns inte eller är redan avgjord."));
            }
            Ok(vec![AccountEvent::RoleGrantRejected(RoleGrantRejected {
                account_id: account.id,
                request_id,
            })])
        }
        DutyCommand::RevokeAllTokens => Ok(account
            .tokens
            .iter()
            .filter(|t| t.revoked_at.is_none())
            .map(|t| {
                AccountEvent::ApiTokenRevoked(ApiTokenRevoked {
                    account_id: account.id,
                    token_id: t.id,
                })
            })
            // The calendar link is a secret of the same kind.
            .chain(account.active_calendar_feed().map(|f| {
                AccountEvent::CalendarFeedRevoked(CalendarFeedRevoked {
                    account_id: account.id,
                    feed_id: f.id,
                })
            }))
            .collect()),
    }
}

/// API tokens act as their owner, so only the owner creates them (an admin who could
/// create a token for someone else could act as them).
pub fn may_create_token(by: Uuid, account: Uuid) -> Result<(), AccountError> {
    if by == account {
        Ok(())
    } else {
        Err(refuse(
            "API-nycklar skapas bara av kontots ägare, på den egna kontosidan.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::accounts::PendingGrant;
    use chrono::Utc;
    use std::collections::HashMap;

    fn account(id: u128) -> Account {
        Account {
            id: Uuid::from_u128(id),
            email: crate::domain::EmailAddress::parse("a@kommunen.example").unwrap(),
            name: "A".into(),
            roles: Vec::new(),
            disabled: false,
            created_at: Utc::now(),
            password_changed_at: None,
            tokens: Vec::new(),
            pending_grants: Vec::new(),
            version: 1,
            password_hash: None,
            password_pepper: None,
            ended_sessions: HashMap::new(),
            calendar_feeds: Vec::new(),
            totp: None,
            passkeys: Vec::new(),
            recovery_codes: None,
            identities: Vec::new(),
        }
    }

    fn ctx(by: u128) -> DutyContext {
        DutyContext {
            by: Uuid::from_u128(by),
            new_request_id: Uuid::from_u128(99),
        }
    }

    #[test]
    fn revoking_all_tokens_revokes_the_calendar_link_too() {
        let mut a = account(1);
        a.tokens.push(crate::auth::accounts::ApiToken {
            id: Uuid::from_u128(5),
            label: String::new(),
            created_at: Utc::now(),
            revoked_at: None,
            hash: "h".into(),
        });
        a.calendar_feeds.push(crate::auth::accounts::CalendarFeed {
            id: Uuid::from_u128(6),
            created_at: Utc::now(),
            revoked_at: None,
            hash: "c".into(),
        });
        let ev = decide(&a, DutyCommand::RevokeAllTokens, ctx(2)).unwrap();
        assert!(matches!(
            &ev[..],
            [AccountEvent::ApiTokenRevoked(t), AccountEvent::CalendarFeedRevoked(f)]
                if t.token_id == Uuid::from_u128(5) && f.feed_id == Uuid::from_u128(6)
        ));
    }

    #[test]
    fn nobody_grants_themselves_a_role() {
        let a = account(1);
        let cmd = DutyCommand::Grant {
            role: Role::Ledning,
            sectors: vec![],
        };
        assert!(decide(&a, cmd.clone(), ctx(1)).is_err());
        assert!(matches!(
            decide(&a, cmd, ctx(2)).unwrap()[..],
            [AccountEvent::RoleGranted(_)]
        ));
    }

    #[test]
    fn privileged_roles_need_a_second_admin() {
        let mut a = account(1);
        let ev = decide(
            &a,
            DutyCommand::Grant {
                role: Role::Ciso,
                sectors: vec![],
            },
            ctx(2),
        )
        .unwrap();
        assert!(matches!(ev[..], [AccountEvent::RoleGrantRequested(_)]));
        a.pending_grants.push(PendingGrant {
            request_id: Uuid::from_u128(99),
            role: Role::Ciso,
            sectors: vec![],
            requested_by: Uuid::from_u128(2),
            requested_at: Utc::now(),
        });
        let approve = DutyCommand::Approve {
            request_id: Uuid::from_u128(99),
        };
        assert!(
            decide(&a, approve.clone(), ctx(2)).is_err(),
            "the requester"
        );
        assert!(decide(&a, approve.clone(), ctx(1)).is_err(), "the grantee");
        let ev = decide(&a, approve, ctx(3)).unwrap();
        assert!(matches!(
            ev[..],
            [
                AccountEvent::RoleGrantApproved(_),
                AccountEvent::RoleGranted(_)
            ]
        ));
    }

    #[test]
    fn tokens_only_by_their_owner() {
        assert!(may_create_token(Uuid::from_u128(1), Uuid::from_u128(1)).is_ok());
        assert!(may_create_token(Uuid::from_u128(2), Uuid::from_u128(1)).is_err());
    }
}

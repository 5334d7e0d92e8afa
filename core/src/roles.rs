//! Workspace users' roles, as the API scopes each one holds: a signed-in person is checked exactly
//! like an API token, so the UI can never do more than the API would let that role do.
//!
//! The split follows the duties marketers separate: authors write (contacts, templates, segments,
//! campaigns and chains as drafts, test letters), approvers approve, schedule and activate what
//! authors wrote, analysts read numbers, admins run the workspace.

use crate::auth::Scope;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Author,
    Approver,
    Analyst,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Author, Role::Approver, Role::Analyst];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Author => "author",
            Role::Approver => "approver",
            Role::Analyst => "analyst",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The scopes the role holds.
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            Role::Admin => &Scope::ALL,
            Role::Author => &[
                Scope::StatsRead,
                Scope::ContactsRead,
                Scope::ContactsWrite,
                Scope::CampaignsWrite,
                Scope::EventsWrite,
            ],
            // Reads what it approves (the letter, the audience); writes nothing.
            Role::Approver => &[
                Scope::StatsRead,
                Scope::ContactsRead,
                Scope::CampaignsApprove,
            ],
            Role::Analyst => &[Scope::StatsRead],
        }
    }

    /// The scopes as the space-separated list API tokens store.
    pub fn scope_list(self) -> String {
        let names: Vec<&str> = self.scopes().iter().map(|s| s.as_str()).collect();
        names.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::has_scope;

    #[test]
    fn each_role_holds_exactly_its_duties() {
        use Scope::*;
        // (role, scope, held)
        let table = [
            (Role::Admin, WebhooksWrite, true),
            (Role::Admin, SitesWrite, true),
            (Role::Admin, CampaignsApprove, true),
            (Role::Author, CampaignsWrite, true),
            (Role::Author, ContactsWrite, true),
            (Role::Author, CampaignsApprove, false),
            (Role::Author, SitesWrite, false),
            (Role::Author, WebhooksWrite, false),
            (Role::Approver, CampaignsApprove, true),
            (Role::Approver, ContactsRead, true),
            (Role::Approver, CampaignsWrite, false),
            (Role::Approver, ContactsWrite, false),
            (Role::Analyst, StatsRead, true),
            (Role::Analyst, ContactsRead, false),
            (Role::Analyst, CampaignsWrite, false),
            (Role::Analyst, EventsWrite, false),
        ];
        for (role, scope, held) in table {
            assert_eq!(
                has_scope(&role.scope_list(), scope),
                held,
                "{role:?} {scope:?}"
            );
        }
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert!(
                has_scope(&role.scope_list(), StatsRead),
                "every role reads the numbers"
            );
        }
        assert_eq!(Role::parse("Admin"), None);
        assert_eq!(Role::parse("owner"), None);
    }
}

//! Who may do what (§29): admin keys have a role, optionally a set of
//! products and an expiry. The API and the console both ask
//! [`Principal::may`] through their extractors, from one table of routes
//! ([`action_of`]), so no handler can forget the check; a route missing
//! from the table needs the `admin` role.

use std::fmt;
use std::str::FromStr;

use tessera_protocol::Timestamp;

use crate::error::{Error, Result};

/// A key's role; each includes what the one before it may do, except that
/// `support` and `issuer` are siblings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// List, show, fleet, events, usage.
    Read,
    /// Read, extend, suspend and reinstate.
    Support,
    /// Read, issue and extend.
    Issuer,
    /// Everything: keys, webhooks, policies, products, revoke, import.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 4] = [Role::Read, Role::Support, Role::Issuer, Role::Admin];

    /// Its name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Support => "support",
            Role::Issuer => "issuer",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do `action`.
    #[must_use]
    pub fn allows(self, action: Action) -> bool {
        match self {
            Role::Admin => true,
            Role::Read => action == Action::Read,
            Role::Support => matches!(
                action,
                Action::Read | Action::Extend | Action::Suspend | Action::Reinstate
            ),
            Role::Issuer => matches!(action, Action::Read | Action::Issue | Action::Extend),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Error::unprocessable(
                    "invalid_role",
                    format!("unknown role {s:?}: one of read, support, issuer, admin"),
                )
            })
    }
}

/// What a request does, as far as roles are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read anything but secrets' settings (keys, webhooks).
    Read,
    /// Issue a license (or an offline document for one).
    Issue,
    /// Extend a license.
    Extend,
    /// Suspend one.
    Suspend,
    /// Reinstate one.
    Reinstate,
    /// Everything else: revoke, policies, products, keys, webhooks,
    /// sites, machines, imports.
    Manage,
}

impl Action {
    /// For messages: "suspend licenses".
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Issue => "issue licenses",
            Action::Extend => "extend licenses",
            Action::Suspend => "suspend licenses",
            Action::Reinstate => "reinstate licenses",
            Action::Manage => "do this (it needs the admin role)",
        }
    }
}

/// The action of an admin API request, by method and route pattern (as
/// axum matched it, `{id}` and all) — or of a console form, whose routes
/// use the same verbs (`/licenses/{id}/suspend`).
#[must_use]
pub fn action_of(method: &str, route: &str) -> Action {
    let route = route.strip_prefix("/v1/admin").unwrap_or(route);
    // Routes that do one thing whatever the method: the console's
    // confirmation pages (GET) count as the action they confirm.
    match route {
        "/licenses/new" | "/licenses/{id}/export" | "/offline-activations" | "/offline" => {
            return Action::Issue;
        }
        "/licenses/{id}/extend" => return Action::Extend,
        "/licenses/{id}/suspend" => return Action::Suspend,
        "/licenses/{id}/reinstate" => return Action::Reinstate,
        "/licenses/{id}/revoke" => return Action::Manage,
        // Signing out is everyone's.
        "/logout" => return Action::Read,
        _ => {}
    }
    // Keys' hashes (export), webhook secrets' settings, keys.
    let secret_settings = ["/webhooks", "/keys", "/imports", "/licenses/export"]
        .iter()
        .any(|p| route.starts_with(p));
    match method {
        "GET" | "HEAD" if !secret_settings => Action::Read,
        "POST" if route == "/licenses" => Action::Issue,
        _ => Action::Manage,
    }
}

/// An authenticated admin key: the actor of what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's name; the actor in audit events.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The products it is limited to; `None`: all.
    pub products: Option<Vec<String>>,
    /// When it stops working.
    pub expires_at: Option<Timestamp>,
}

impl Principal {
    /// Whether the key may do `action` (its role; product limits are
    /// checked where the product is known).
    ///
    /// # Errors
    /// [`Error::Forbidden`] (`forbidden`) naming the role and the action.
    pub fn may(&self, action: Action) -> Result<()> {
        if self.role.allows(action) {
            Ok(())
        } else {
            Err(forbidden(format!(
                "admin key {:?} has the {} role, which may not {}",
                self.name,
                self.role,
                action.describe()
            )))
        }
    }

    /// Whether the key may touch licenses of `product`.
    ///
    /// # Errors
    /// [`Error::Forbidden`] (`forbidden`).
    pub fn may_use_product(&self, product: &str) -> Result<()> {
        match &self.products {
            Some(list) if !list.iter().any(|p| p == product) => Err(forbidden(format!(
                "admin key {:?} is limited to product(s) {}, not {product:?}",
                self.name,
                list.join(", ")
            ))),
            _ => Ok(()),
        }
    }

    /// A key limited to products may only use the routes whose objects
    /// belong to a product (licenses, events, policies, products); for the
    /// others this refuses.
    ///
    /// # Errors
    /// [`Error::Forbidden`] (`forbidden`).
    pub fn must_be_unlimited(&self) -> Result<()> {
        if self.products.is_some() {
            Err(forbidden(format!(
                "admin key {:?} is limited to products; this route spans all of them",
                self.name
            )))
        } else {
            Ok(())
        }
    }

    /// The products as a filter for listings: `None` = all, else a comma
    /// separated list (names have no commas).
    #[must_use]
    pub fn product_filter(&self, asked: Option<&str>) -> Option<String> {
        match (&self.products, asked) {
            (None, asked) => asked.map(str::to_owned),
            (Some(list), Some(asked)) if list.iter().any(|p| p == asked) => Some(asked.to_owned()),
            // Asked for a product outside the key's: nothing matches.
            (Some(_), Some(_)) => Some(String::new()),
            (Some(list), None) => Some(list.join(",")),
        }
    }

    /// The key made at first start (and any key of a test harness): all
    /// roles and products.
    #[must_use]
    pub fn admin(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            role: Role::Admin,
            products: None,
            expires_at: None,
        }
    }
}

fn forbidden(message: String) -> Error {
    Error::Forbidden {
        code: "forbidden",
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_what_the_issue_lists() {
        use Action::*;
        let table = [
            (Role::Read, vec![Read]),
            (Role::Support, vec![Read, Extend, Suspend, Reinstate]),
            (Role::Issuer, vec![Read, Issue, Extend]),
            (
                Role::Admin,
                vec![Read, Issue, Extend, Suspend, Reinstate, Manage],
            ),
        ];
        for (role, allowed) in table {
            for action in [Read, Issue, Extend, Suspend, Reinstate, Manage] {
                assert_eq!(
                    role.allows(action),
                    allowed.contains(&action),
                    "{role} {action:?}"
                );
            }
        }
    }

    #[test]
    fn routes_map_to_actions() {
        assert_eq!(action_of("GET", "/v1/admin/licenses/{id}"), Action::Read);
        assert_eq!(action_of("GET", "/v1/admin/webhooks"), Action::Manage);
        assert_eq!(action_of("GET", "/v1/admin/keys"), Action::Manage);
        assert_eq!(action_of("POST", "/v1/admin/licenses"), Action::Issue);
        assert_eq!(
            action_of("POST", "/v1/admin/licenses/{id}/revoke"),
            Action::Manage
        );
        assert_eq!(action_of("POST", "/licenses/{id}/suspend"), Action::Suspend);
        assert_eq!(
            action_of("DELETE", "/v1/admin/sites/{site}"),
            Action::Manage
        );
        assert_eq!(action_of("GET", "/licenses/{id}/revoke"), Action::Manage);
        assert_eq!(action_of("GET", "/licenses/{id}/extend"), Action::Extend);
        assert_eq!(action_of("GET", "/licenses/new"), Action::Issue);
        assert_eq!(action_of("GET", "/licenses"), Action::Read);
        assert_eq!(action_of("POST", "/logout"), Action::Read);
        assert_eq!(action_of("POST", "/policies"), Action::Manage);
        assert_eq!(
            action_of("PATCH", "/v1/admin/policies/{name}"),
            Action::Manage
        );
    }

    #[test]
    fn product_filters_never_widen_a_key() {
        let mut p = Principal::admin("ci");
        assert_eq!(p.product_filter(None), None);
        assert_eq!(p.product_filter(Some("a")), Some("a".into()));
        p.products = Some(vec!["a".into(), "b".into()]);
        assert_eq!(p.product_filter(None), Some("a,b".into()));
        assert_eq!(p.product_filter(Some("b")), Some("b".into()));
        assert_eq!(p.product_filter(Some("c")), Some(String::new()));
        assert!(p.may_use_product("c").is_err());
        assert!(p.may_use_product("a").is_ok());
    }
}

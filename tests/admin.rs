//! `opshub user …`: adding users, changing roles, removing memberships and
//! setting passwords — validated, audited, and on both databases.

mod support;

use opshub::domain::*;
use opshub::server::admin::{self, AdminError};
use opshub::server::auth::verify_password;
use opshub::server::store::*;
use std::sync::Arc;

const PASSWORD: &str = "long-enough-password";

async fn audit_actions(store: &dyn Store, tenant: TenantId) -> Vec<String> {
    store
        .list_audit(tenant, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

on_both! { store =>
    async fn add_creates_a_user_and_grants_a_role(store) {
        let f = support::fixture(store, "acme").await;
        let user = admin::cli::add_user(store, " New@Acme.test ", "New Person", "acme", Role::Viewer, Some(PASSWORD.into()))
            .await
            .unwrap();
        assert_eq!(user.email, "new@acme.test");
        let membership = store.membership(user.id, "acme").await.unwrap().unwrap();
        assert_eq!(membership.role, Role::Viewer);
        let hash = store.user_credentials("new@acme.test").await.unwrap().unwrap().password_hash;
        assert!(verify_password(hash, PASSWORD.into()).await.unwrap());
        assert_eq!(audit_actions(store, f.tenant.id).await, vec!["membership.grant"]);

        // An existing user joins another tenant without a new password.
        support::fixture(store, "globex").await;
        let again = admin::cli::add_user(store, "new@acme.test", "", "globex", Role::Admin, None).await.unwrap();
        assert_eq!(again.id, user.id);
        assert_eq!(store.memberships(user.id).await.unwrap().len(), 2);
    }

    async fn bad_input_is_refused_and_writes_nothing(store) {
        support::fixture(store, "acme").await;
        let before = store.list_audit(store.tenant_by_slug("acme").await.unwrap().unwrap().id, 100).await.unwrap().len();
        let cases = [
            admin::cli::add_user(store, "x@acme.test", "X", "nope", Role::Viewer, Some(PASSWORD.into())).await,
            admin::cli::add_user(store, "x@acme.test", "X", "acme", Role::Viewer, Some("short".into())).await,
            admin::cli::add_user(store, "not-an-email", "X", "acme", Role::Viewer, Some(PASSWORD.into())).await,
            admin::cli::add_user(store, "x@acme.test", "X", "acme", Role::Viewer, None).await,
            admin::cli::add_user(store, "x@acme.test", "  ", "acme", Role::Viewer, Some(PASSWORD.into())).await,
        ];
        for result in cases {
            let err = result.unwrap_err();
            assert!(matches!(err, AdminError::Invalid(_)), "{err:?}");
        }
        assert!(store.user_credentials("x@acme.test").await.unwrap().is_none());
        assert!(admin::cli::set_role(store, "ghost@acme.test", "acme", Role::Admin).await.is_err());
        assert!(admin::cli::remove_membership(store, "op@acme.test", "nope").await.is_err());
        let tenant = store.tenant_by_slug("acme").await.unwrap().unwrap();
        assert_eq!(store.list_audit(tenant.id, 100).await.unwrap().len(), before);
    }

    async fn roles_change_and_memberships_go_with_an_audit_trail(store) {
        let f = support::fixture(store, "acme").await;
        let g = support::fixture(store, "globex").await;
        admin::cli::set_role(store, "op@acme.test", "acme", Role::Admin).await.unwrap();
        assert_eq!(store.membership(f.user.id, "acme").await.unwrap().unwrap().role, Role::Admin);
        // Not a member of globex: changing a role there is refused.
        let err = admin::cli::set_role(store, "op@acme.test", "globex", Role::Viewer).await.unwrap_err();
        assert!(err.to_string().contains("not a member"), "{err}");

        // The only admin cannot leave or step down.
        let err = admin::cli::remove_membership(store, "op@acme.test", "acme").await.unwrap_err();
        assert!(err.to_string().contains("at least one admin"), "{err}");
        let err = admin::cli::set_role(store, "op@acme.test", "acme", Role::Viewer).await.unwrap_err();
        assert!(err.to_string().contains("at least one admin"), "{err}");
        admin::cli::add_user(store, "second@acme.test", "Second", "acme", Role::Admin, Some(PASSWORD.into()))
            .await
            .unwrap();

        admin::cli::remove_membership(store, "op@acme.test", "acme").await.unwrap();
        assert!(store.membership(f.user.id, "acme").await.unwrap().is_none());
        let err = admin::cli::remove_membership(store, "op@acme.test", "acme").await.unwrap_err();
        assert!(err.to_string().contains("not a member"), "{err}");

        let entries = store.list_audit(f.tenant.id, 10).await.unwrap();
        let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, vec!["membership.remove", "membership.grant", "membership.role_change"]);
        assert_eq!(entries[2].metadata, serde_json::json!({ "from": "operator", "to": "admin" }));
        assert_eq!(entries[2].resource_id, Some(f.user.id.to_string()));
        assert!(audit_actions(store, g.tenant.id).await.is_empty());
    }

    async fn a_new_password_replaces_the_old(store) {
        let f = support::fixture(store, "acme").await;
        admin::cli::set_password(store, "op@acme.test", PASSWORD.into()).await.unwrap();
        let hash = store.user_credentials_by_id(f.user.id).await.unwrap().unwrap().password_hash;
        assert!(verify_password(hash.clone(), PASSWORD.into()).await.unwrap());
        assert!(admin::cli::set_password(store, "op@acme.test", "short".into()).await.is_err());
        let unchanged = store.user_credentials_by_id(f.user.id).await.unwrap().unwrap().password_hash;
        assert_eq!(unchanged, hash);
        assert_eq!(audit_actions(store, f.tenant.id).await, vec!["user.password_change"]);
    }
}

/// Two admins demoting (or removing) each other at the same moment, through
/// two stores as two processes would: one of them always stays admin.
async fn admins_racing_to_demote_each_other_always_leave_one(backend: Backend) {
    let db = support::TestDb::new(backend).await;
    let stores = [db.store.clone(), connect(&db.url, 4).await.unwrap()];
    let f = support::fixture(stores[0].as_ref(), "acme").await;
    let mut admins = Vec::new();
    for name in ["first", "second"] {
        let email = format!("{name}@acme.test");
        let user = admin::cli::add_user(
            stores[0].as_ref(),
            &email,
            name,
            "acme",
            Role::Admin,
            Some(PASSWORD.into()),
        )
        .await
        .unwrap();
        admins.push(user.id);
    }
    // The fixture's operator is no admin: these two are the only ones.
    for round in 0..100 {
        let removing = round % 2 == 1;
        let act = |store: Arc<dyn Store>, actor: UserId, target: UserId| {
            let tenant = f.tenant.clone();
            tokio::spawn(async move {
                if removing {
                    admin::remove(store.as_ref(), Some(actor), &tenant, target).await
                } else {
                    admin::change_role(store.as_ref(), Some(actor), &tenant, target, Role::Operator)
                        .await
                }
            })
        };
        let first = act(stores[0].clone(), admins[0], admins[1]);
        let second = act(stores[1].clone(), admins[1], admins[0]);
        let outcomes = [first.await.unwrap(), second.await.unwrap()];
        let members = stores[0].members(f.tenant.id).await.unwrap();
        let left: Vec<UserId> = members
            .iter()
            .filter(|m| m.role == Role::Admin)
            .map(|m| m.user.id)
            .collect();
        assert_eq!(
            left.len(),
            1,
            "round {round}: admins left {left:?}, outcomes {outcomes:?}"
        );
        let refused: Vec<&AdminError> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
        assert_eq!(
            refused.len(),
            1,
            "round {round}: exactly one change goes through: {outcomes:?}"
        );
        assert!(
            refused[0].to_string().contains("at least one admin"),
            "{}",
            refused[0]
        );
        // Both admins again for the next round.
        for user in &admins {
            stores[0]
                .set_membership(f.tenant.id, *user, Role::Admin, MembershipAudit::Unaudited)
                .await
                .unwrap();
        }
    }
}

mod admins_racing {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        admins_racing_to_demote_each_other_always_leave_one(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        admins_racing_to_demote_each_other_always_leave_one(Backend::Postgres).await;
    }
}

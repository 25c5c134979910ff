//! Tenants, users and memberships (with the last-admin rule), and users'
//! credentials.
//!
//! Here: `change_membership` and `TenantRepository`; what a change does
//! (`MembershipChange`) needs no database and is in `sql/tenants.rs`.

use super::audit::insert_audit;
use super::Store;
use crate::domain::*;
use crate::server::store::rows::{
    CredentialsRow, MembershipRow, TenantRow, CREDENTIALS_COLUMNS, TENANT_COLUMNS,
};
use crate::server::store::sql::tenants::MembershipChange;
use crate::server::store::sql::{one_row_changed, SqlDialect};
use crate::server::store::{
    Change, MembershipAudit, NewUser, StoreError, StoreResult, TenantRepository, UserCredentials,
};
use async_trait::async_trait;

impl Store {
    /// Makes the change and returns the role before, refusing to
    /// leave the tenant without an admin and, for a change of
    /// members only, to touch a non-member (`NotFound`). The
    /// tenant's memberships are read and changed in one write
    /// transaction, with the audit entry: PostgreSQL locks them (in
    /// one order, so two such transactions cannot deadlock),
    /// SQLite's `BEGIN IMMEDIATE` excludes every other writer.
    async fn change_membership(
        &self,
        tenant: TenantId,
        user: UserId,
        change: MembershipChange,
        audit: MembershipAudit,
    ) -> StoreResult<Option<Role>> {
        let role = change.role();
        let (_turn, mut tx) = self.begin_write().await?;
        let members: Vec<(UserId, String)> = sqlx::query_as(&format!(
            "SELECT user_id, role FROM tenant_memberships WHERE tenant_id = $1 ORDER BY user_id{}",
            <Store as SqlDialect>::LOCK_ROWS
        ))
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await?;
        let mut before = None;
        let mut other_admins = 0;
        for (member, member_role) in &members {
            let member_role = Role::parse(member_role).map_err(|e| StoreError::Invalid(e.0))?;
            if *member == user {
                before = Some(member_role);
            } else if member_role == Role::Admin {
                other_admins += 1;
            }
        }
        if before.is_none() && change.members_only() {
            return Err(StoreError::NotFound);
        }
        if before == Some(Role::Admin) && role != Some(Role::Admin) && other_admins == 0 {
            return Err(StoreError::LastAdmin);
        }
        match role {
            Some(role) => {
                sqlx::query(
                    "INSERT INTO tenant_memberships (tenant_id, user_id, role, created_at) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(tenant)
                .bind(user)
                .bind(role.as_str())
                .bind(Timestamp::now())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM tenant_memberships WHERE tenant_id = $1 AND user_id = $2")
                    .bind(tenant)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if let MembershipAudit::By(actor) = audit {
            insert_audit(&mut tx, &change.audit_entry(tenant, user, before, actor)).await?;
        }
        tx.commit().await?;
        self.changes.record([Change::Access { tenant, user }]);
        Ok(before)
    }
}

#[async_trait]
impl TenantRepository for Store {
    async fn create_tenant(&self, slug: &TenantSlug, name: &str) -> StoreResult<Tenant> {
        let row: TenantRow = sqlx::query_as(&format!(
            "INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING {TENANT_COLUMNS}"
        ))
        .bind(TenantId::generate())
        .bind(slug.as_str())
        .bind(name.trim())
        .bind(Timestamp::now())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into())
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let rows: Vec<TenantRow> = sqlx::query_as(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants ORDER BY name, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn tenant_by_slug(&self, slug: &str) -> StoreResult<Option<Tenant>> {
        let row: Option<TenantRow> = sqlx::query_as(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE slug = $1"
        ))
        .bind(slug)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        let (id, email, display_name): (UserId, String, String) = sqlx::query_as(
            "INSERT INTO users (id, email, display_name, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id, email, display_name",
        )
        .bind(UserId::generate())
        .bind(user.email.trim().to_lowercase())
        .bind(user.display_name.trim())
        .bind(user.password_hash)
        .bind(Timestamp::now())
        .fetch_one(&self.pool)
        .await?;
        Ok(User {
            id,
            email,
            display_name,
        })
    }

    async fn set_membership(
        &self,
        tenant: TenantId,
        user: UserId,
        role: Role,
        audit: MembershipAudit,
    ) -> StoreResult<Option<Role>> {
        self.change_membership(tenant, user, MembershipChange::Grant(role), audit)
            .await
    }

    async fn change_member_role(
        &self,
        tenant: TenantId,
        user: UserId,
        role: Role,
        audit: MembershipAudit,
    ) -> StoreResult<Role> {
        self.change_membership(tenant, user, MembershipChange::ChangeRole(role), audit)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn members(&self, tenant: TenantId) -> StoreResult<Vec<Member>> {
        let rows: Vec<(UserId, String, String, String)> = sqlx::query_as(
            "SELECT u.id, u.email, u.display_name, m.role FROM tenant_memberships m \
             JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 \
             ORDER BY u.display_name, u.email",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, email, display_name, role)| {
                let role = Role::parse(&role).map_err(|e| StoreError::Invalid(e.0))?;
                Ok(Member {
                    user: User {
                        id,
                        email,
                        display_name,
                    },
                    role,
                })
            })
            .collect()
    }

    async fn membership(&self, user: UserId, tenant_slug: &str) -> StoreResult<Option<Membership>> {
        let row: Option<MembershipRow> = sqlx::query_as(
            "SELECT t.id, t.slug, t.name, m.role FROM tenant_memberships m \
             JOIN tenants t ON t.id = m.tenant_id WHERE m.user_id = $1 AND t.slug = $2",
        )
        .bind(user)
        .bind(tenant_slug)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn remove_membership(
        &self,
        tenant: TenantId,
        user: UserId,
        audit: MembershipAudit,
    ) -> StoreResult<Role> {
        self.change_membership(tenant, user, MembershipChange::Remove, audit)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn user_credentials(&self, email: &str) -> StoreResult<Option<UserCredentials>> {
        let row: Option<CredentialsRow> = sqlx::query_as(&format!(
            "SELECT {CREDENTIALS_COLUMNS} FROM users WHERE email = $1"
        ))
        .bind(email.trim().to_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn user_credentials_by_id(&self, id: UserId) -> StoreResult<Option<UserCredentials>> {
        let row: Option<CredentialsRow> = sqlx::query_as(&format!(
            "SELECT {CREDENTIALS_COLUMNS} FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn set_password_hash(&self, user: UserId, password_hash: &str) -> StoreResult<()> {
        one_row_changed(
            sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                .bind(user)
                .bind(password_hash)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )?;
        self.changes.record([Change::User { user }]);
        Ok(())
    }

    async fn memberships(&self, user: UserId) -> StoreResult<Vec<Membership>> {
        let rows: Vec<MembershipRow> = sqlx::query_as(
            "SELECT t.id, t.slug, t.name, m.role FROM tenant_memberships m \
             JOIN tenants t ON t.id = m.tenant_id WHERE m.user_id = $1 ORDER BY t.name, t.id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

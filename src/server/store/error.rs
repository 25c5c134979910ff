use crate::domain::RunStatus;

/// Domain-level failures of the store. Database details never travel in
/// these: `Database` is logged where it is created and shown as a generic
/// message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; `what` names the rule, not SQL.
    #[error("{what} already exists")]
    Duplicate { what: &'static str },
    /// A referenced row does not exist (or belongs to another tenant).
    #[error("a referenced record does not exist")]
    MissingReference,
    /// A value broke a rule the schema enforces.
    #[error("invalid value: {0}")]
    Invalid(String),
    #[error("a run cannot move from {from} to {to}")]
    IllegalTransition { from: RunStatus, to: RunStatus },
    /// The change would leave a tenant without an admin.
    #[error("a tenant keeps at least one admin")]
    LastAdmin,
    /// The database cannot answer right now (connection lost, pool
    /// exhausted, busy): the same call may well succeed a moment later.
    #[error("the database is unavailable")]
    Unavailable,
    /// The database could not be opened or reached at start-up.
    #[error("{0}")]
    Connect(String),
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

/// Unique constraints and the names users understand them by. PostgreSQL
/// reports the constraint's name, SQLite the table and columns.
const DUPLICATES: [(&str, &str, &str); 9] = [
    ("tenants_slug_key", "tenants.slug", "tenant slug"),
    ("users_email_key", "users.email", "user email"),
    ("bulk_operation_runs_pkey", "bulk_operation_runs.id", "run"),
    (
        "bulk_operation_runs_active_key",
        "bulk_operation_runs.tenant_id, bulk_operation_runs.idempotency_key",
        "active run for this key",
    ),
    (
        "findings_tenant_id_fingerprint_key",
        "findings.tenant_id, findings.fingerprint",
        "finding fingerprint",
    ),
    (
        "policies_tenant_id_external_id_key",
        "policies.tenant_id, policies.external_id",
        "policy",
    ),
    (
        "backup_sets_tenant_id_name_key",
        "backup_sets.tenant_id, backup_sets.name",
        "backup set name",
    ),
    (
        "backup_set_items_backup_set_id_policy_id_key",
        "backup_set_items.backup_set_id, backup_set_items.policy_id",
        "backup set item",
    ),
    (
        "inventory_items_sync_run_id_subject_type_external_id_key",
        "inventory_items.sync_run_id, inventory_items.subject_type, inventory_items.external_id",
        "inventory item",
    ),
];

impl StoreError {
    /// Worth trying again: the failure says nothing about the request.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable)
    }
}

/// Errors a database reports when the connection, not the statement, is the
/// problem, or when the statement only lost a race it can run again:
/// PostgreSQL's connection exceptions (class 08), an administrator or crash
/// ending the backend (57P01–57P03), too many connections, serialisation
/// failures and deadlocks; SQLite's BUSY and LOCKED (any extended code).
fn is_transient_database_error(error: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = error.code() else {
        return false;
    };
    if error
        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .is_some()
    {
        return code
            .parse::<u32>()
            .is_ok_and(|code| matches!(code & 0xff, 5 | 6));
    }
    code.starts_with("08")
        || matches!(
            code.as_ref(),
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
        )
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match &err {
            sqlx::Error::RowNotFound => return StoreError::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => {
                tracing::error!(error = %err, "database unavailable");
                return StoreError::Unavailable;
            }
            sqlx::Error::Database(db) if is_transient_database_error(db.as_ref()) => {
                tracing::warn!(error = %err, "database unavailable for the moment");
                return StoreError::Unavailable;
            }
            sqlx::Error::Database(db) => match db.kind() {
                ErrorKind::UniqueViolation => {
                    let message = db.message();
                    let constraint = db.constraint().unwrap_or_default();
                    let what = DUPLICATES
                        .iter()
                        .find(|(pg, sqlite, _)| *pg == constraint || message.ends_with(sqlite))
                        .map_or("record", |(_, _, what)| *what);
                    return StoreError::Duplicate { what };
                }
                ErrorKind::ForeignKeyViolation => return StoreError::MissingReference,
                // A trigger's RAISE(ABORT) on SQLite (SQLITE_CONSTRAINT_TRIGGER):
                // ours refuse illegal run status moves, as PostgreSQL's
                // triggers do with a check violation.
                _ if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                    && db.code().as_deref() == Some("1811") =>
                {
                    tracing::warn!(error = %err, "a trigger refused a change");
                    return StoreError::Invalid("a value breaks a rule of the data model".into());
                }
                ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
                    tracing::warn!(error = %err, "constraint refused a value");
                    return StoreError::Invalid("a value breaks a rule of the data model".into());
                }
                // PostgreSQL text and jsonb cannot hold NUL (SQLite can):
                // input that carries one is refused like any invalid value.
                _ if matches!(db.code().as_deref(), Some("22021" | "22P05")) => {
                    tracing::warn!(error = %err, "the database refused a character");
                    return StoreError::Invalid("text must not contain NUL characters".into());
                }
                _ => {}
            },
            _ => {}
        }
        tracing::error!(error = %err, "database error");
        StoreError::Database(err)
    }
}

//! Starting operations from the UI. Operators only; the same validation and
//! code path as `opshub start …` (`server::operations`).

use super::codec::JsonText;
use super::AppError;
use crate::domain::RunId;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Where a start led: a new run, or the active run it joined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartOutcome {
    pub run_id: RunId,
    pub joined: bool,
    /// The run's detail page.
    pub link: String,
}

// The start functions take form posts (the hub's forms work without
// JavaScript) and go to the run they started or joined.

#[server(endpoint = "operations/start-drift", output = JsonText)]
pub async fn start_drift(tenant: String, scope_key: String) -> Result<StartOutcome, AppError> {
    let request = crate::server::operations::StartRequest::Drift { scope_key };
    super::ssr::respond(ssr::start(&tenant, request).await.inspect(ssr::go_to_run))
}

/// `policy_ids[]` repeats once per chosen policy; `include_payload` is
/// `true` for full snapshots (absent or empty: metadata only).
#[server(endpoint = "operations/start-add-policies", output = JsonText)]
pub async fn start_add_policies(
    tenant: String,
    backup_set_id: String,
    #[server(default)] policy_ids: Vec<String>,
    #[server(default)] include_payload: Option<String>,
) -> Result<StartOutcome, AppError> {
    use crate::domain::{bounded_text, BackupSetId, ParseError, PolicyId, MAX_SEARCH_CHARS};
    use crate::server::operations::{AddPoliciesOptions, StartRequest, MAX_POLICIES};
    let parsed = (|| {
        let include_payload = match include_payload.as_deref() {
            None | Some("") => false,
            Some("true") => true,
            Some(_) => return Err(ParseError("`include_payload` is `true` or empty".into())),
        };
        if policy_ids.len() > MAX_POLICIES {
            return Err(ParseError(format!("choose 1 to {MAX_POLICIES} policies")));
        }
        let backup_set_id = BackupSetId::parse(bounded_text(
            "backup_set_id",
            &backup_set_id,
            MAX_SEARCH_CHARS,
        )?)?;
        let policy_ids = policy_ids
            .iter()
            .map(|id| PolicyId::parse(bounded_text("policy_ids[]", id, MAX_SEARCH_CHARS)?))
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, ParseError>(StartRequest::AddPolicies {
            backup_set_id,
            policy_ids,
            options: AddPoliciesOptions { include_payload },
        })
    })();
    let result = match parsed {
        Ok(request) => ssr::start(&tenant, request).await,
        Err(e) => ssr::authorized_bad_request(&tenant, e.0).await,
    };
    super::ssr::respond(result.inspect(ssr::go_to_run))
}

/// Aborts a queued run at once, or asks a running run's worker to stop;
/// the answer says which. A form post, so it works without JavaScript.
#[server(endpoint = "operations/abort", output = JsonText)]
pub async fn abort_run(tenant: String, run_id: String) -> Result<String, AppError> {
    super::ssr::respond(ssr::abort(&tenant, &run_id).await)
}

/// Starts a new run for the failed items of an ended run (or joins the one
/// already retrying them) and goes to it.
#[server(endpoint = "operations/retry", output = JsonText)]
pub async fn retry_run(tenant: String, run_id: String) -> Result<StartOutcome, AppError> {
    super::ssr::respond(ssr::retry(&tenant, &run_id).await)
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::super::ssr::{authorize, store};
    use super::{AppError, StartOutcome};
    use crate::domain::{bounded_text, Role, RunId, MAX_SEARCH_CHARS};
    use crate::server::operations::{self, StartError, StartRequest};

    impl From<StartError> for AppError {
        fn from(err: StartError) -> Self {
            match err {
                StartError::Invalid(message) => AppError::BadRequest(message),
                StartError::RunNotFound => AppError::NotFound,
                StartError::Store(e) => e.into(),
            }
        }
    }

    pub async fn start(tenant: &str, request: StartRequest) -> Result<StartOutcome, AppError> {
        let super::super::ssr::Access { tenant, user, .. } =
            authorize(tenant, Role::Operator).await?;
        let started = operations::start(store()?.as_ref(), &tenant, &user, &request).await?;
        let run_id = started.run.summary.id;
        Ok(StartOutcome {
            run_id,
            joined: started.joined,
            link: crate::domain::run_path(&tenant.slug, run_id),
        })
    }

    pub async fn retry(tenant: &str, run_id: &str) -> Result<StartOutcome, AppError> {
        // A malformed id names no run: the same answer as a missing one.
        let run_id = RunId::parse(run_id).map_err(|_| AppError::NotFound);
        let run_id = match run_id {
            Ok(id) => id,
            Err(e) => {
                authorize(tenant, Role::Operator).await?;
                return Err(e);
            }
        };
        let outcome = start(tenant, StartRequest::Retry { run_id }).await?;
        go_to_run(&outcome);
        Ok(outcome)
    }

    pub async fn abort(tenant: &str, run_id: &str) -> Result<String, AppError> {
        use crate::server::operations::AbortError;
        let super::super::ssr::Access { tenant, user, .. } =
            authorize(tenant, Role::Operator).await?;
        let run = RunId::parse(bounded_text("run_id", run_id, MAX_SEARCH_CHARS)?)?;
        match operations::abort(store()?.as_ref(), &tenant, &user, run).await {
            Ok(outcome) => Ok(operations::describe_abort(outcome)),
            Err(AbortError::NotFound) => Err(AppError::NotFound),
            Err(e @ AbortError::AlreadyFinished(_)) => Err(AppError::Conflict(e.to_string())),
            Err(AbortError::Store(e)) => Err(e.into()),
        }
    }

    /// After a start: to the run, saying so when the start joined it.
    pub fn go_to_run(outcome: &StartOutcome) {
        if outcome.joined {
            leptos_axum::redirect(&format!("{}?joined=1", outcome.link));
        } else {
            leptos_axum::redirect(&outcome.link);
        }
    }

    /// Malformed ids are a 400 — but only for someone allowed to start
    /// operations here; everyone else gets the answer access control gives.
    pub async fn authorized_bad_request(
        tenant: &str,
        message: String,
    ) -> Result<StartOutcome, AppError> {
        authorize(tenant, Role::Operator).await?;
        Err(AppError::BadRequest(message))
    }
}

use super::codec::JsonTextEncoding;
use crate::domain::sanitize_reason;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// The one error type of every server function. Each variant knows its HTTP
/// status; messages are safe to show — database details are logged on the
/// server and never put in here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("Not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("Sign in required")]
    Unauthorized,
    /// The same answer for an unknown email and a wrong password.
    #[error("Email or password is incorrect.")]
    InvalidCredentials,
    #[error("Too many attempts. Try again in {retry_after_secs} seconds.")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("Not allowed")]
    Forbidden,
    /// The request is well-formed but the thing is not in a state for it.
    #[error("{0}")]
    Conflict(String),
    #[error("Something went wrong on our side; it has been logged")]
    Internal,
    #[error("The service is temporarily unavailable; try again shortly")]
    Unavailable,
    /// Transport problems (network, decoding) seen by the client.
    #[error("Request failed: {0}")]
    Transport(String),
}

impl AppError {
    pub fn status(&self) -> u16 {
        match self {
            AppError::NotFound => 404,
            AppError::BadRequest(_) => 400,
            AppError::Unauthorized | AppError::InvalidCredentials => 401,
            AppError::TooManyAttempts { .. } => 429,
            AppError::Forbidden => 403,
            AppError::Conflict(_) => 409,
            AppError::Internal | AppError::Transport(_) => 500,
            AppError::Unavailable => 503,
        }
    }

    #[cfg(feature = "ssr")]
    pub fn http_status(&self) -> axum::http::StatusCode {
        axum::http::StatusCode::from_u16(self.status())
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonTextEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // Decoders quote the input they stumbled on: echo it sanitised.
            ServerFnErrorErr::Args(message) | ServerFnErrorErr::MissingArg(message) => {
                AppError::BadRequest(format!("Bad request: {}", sanitize_reason(&message)))
            }
            // On the server, failing to decode means the request body was bad;
            // in the browser it is a transport problem.
            ServerFnErrorErr::Deserialization(message) if cfg!(feature = "ssr") => {
                AppError::BadRequest(format!("Bad request: {}", sanitize_reason(&message)))
            }
            other => AppError::Transport(other.to_string()),
        }
    }
}

#[cfg(feature = "ssr")]
impl From<crate::server::store::StoreError> for AppError {
    fn from(err: crate::server::store::StoreError) -> Self {
        use crate::server::store::StoreError;
        match &err {
            StoreError::NotFound => AppError::NotFound,
            StoreError::Duplicate { .. }
            | StoreError::MissingReference
            | StoreError::Invalid(_)
            | StoreError::IllegalTransition { .. } => AppError::BadRequest(err.to_string()),
            StoreError::Unavailable | StoreError::Connect(_) => AppError::Unavailable,
            StoreError::Database(_) => AppError::Internal,
        }
    }
}

impl From<crate::domain::ParseError> for AppError {
    fn from(err: crate::domain::ParseError) -> Self {
        AppError::BadRequest(err.0)
    }
}

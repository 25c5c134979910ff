use super::codec::JsonTextEncoding;
#[cfg(feature = "ssr")]
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
            // On the server, arguments that do not decode are a bad request.
            // Decoders quote the input they stumbled on: echo it sanitised.
            #[cfg(feature = "ssr")]
            ServerFnErrorErr::Args(message)
            | ServerFnErrorErr::MissingArg(message)
            | ServerFnErrorErr::Deserialization(message) => AppError::BadRequest(format!(
                "Bad request: {}",
                sanitize_reason(&clipped(&message))
            )),
            // In the browser every such failure is the transport's (and its
            // bundle carries no sanitiser).
            other => AppError::Transport(other.to_string()),
        }
    }
}

/// A decoding error's message, short: serde quotes the value it could not
/// read, which may be a megabyte of the request, so long quotes are cut.
#[cfg(feature = "ssr")]
fn clipped(message: &str) -> String {
    const MAX_QUOTE_CHARS: usize = 32;
    const MAX_CHARS: usize = 300;
    let mut out = String::new();
    let mut shown = 0;
    // Inside a quote: characters so far, and whether the last was a `\`.
    let mut quote: Option<(usize, bool)> = None;
    for c in message.chars() {
        let show = match quote {
            None => {
                if c == '"' {
                    quote = Some((0, false));
                }
                Some(c)
            }
            Some((_, false)) if c == '"' => {
                quote = None;
                Some(c)
            }
            Some((length, escaped)) => {
                quote = Some((length + 1, !escaped && c == '\\'));
                match (length + 1).cmp(&MAX_QUOTE_CHARS) {
                    std::cmp::Ordering::Less => Some(c),
                    std::cmp::Ordering::Equal => Some('…'),
                    std::cmp::Ordering::Greater => None,
                }
            }
        };
        if let Some(c) = show {
            if shown == MAX_CHARS {
                out.push('…');
                break;
            }
            out.push(c);
            shown += 1;
        }
    }
    out
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
            | StoreError::LastAdmin
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_errors_do_not_quote_long_input() {
        let quoted = format!(
            "invalid type: string \"{}\", expected a map",
            "ü".repeat(100_000)
        );
        let error = AppError::from_server_fn_error(ServerFnErrorErr::Args(quoted));
        let AppError::BadRequest(message) = error else {
            panic!("{error:?}")
        };
        assert!(
            message.starts_with("Bad request: invalid type: string"),
            "{message}"
        );
        assert!(message.ends_with("…\", expected a map"), "{message}");
        assert!(message.chars().count() < 100, "{message}");
        let escaped = AppError::from_server_fn_error(ServerFnErrorErr::Args(
            r#"unknown variant "a\"b", expected one of "x""#.into(),
        ));
        assert_eq!(
            escaped,
            AppError::BadRequest(
                r#"Bad request: unknown variant "a\"b", expected one of "x""#.into()
            )
        );
    }
}

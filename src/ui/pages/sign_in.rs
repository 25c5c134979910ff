use crate::api::session::SignIn;
use crate::api::AppError;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// `/sign-in?next=…`: email and password. Works without JavaScript too (a
/// plain form post).
#[component]
pub fn SignInPage() -> impl IntoView {
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_else(|| "/".to_string());
    let action = ServerAction::<SignIn>::new();
    let error = move || match action.value().get() {
        Some(Err(AppError::BadRequest(message))) => Some(message),
        Some(Err(error @ (AppError::InvalidCredentials | AppError::TooManyAttempts { .. }))) => {
            Some(error.to_string())
        }
        Some(Err(_)) => Some("Signing in failed. Try again.".to_string()),
        _ => None,
    };
    view! {
        <Title text="Sign in" />
        <section class="sign-in">
            <h1>"Sign in to opshub"</h1>
            <ActionForm action attr:data-testid="sign-in-form" attr:class="form">
                <label>"Email"
                    <input type="email" name="email" autocomplete="username" required autofocus />
                </label>
                <label>"Password"
                    <input type="password" name="password" autocomplete="current-password" required />
                </label>
                <input type="hidden" name="next" value=next />
                {move || error().map(|message| view! {
                    <p class="form-error" role="alert" data-testid="sign-in-error">{message}</p>
                })}
                <button type="submit" class="button primary" disabled=move || action.pending().get()>
                    "Sign in"
                </button>
            </ActionForm>
        </section>
    }
}

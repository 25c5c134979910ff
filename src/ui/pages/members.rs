use crate::api::members::{list_members, AddMember, RemoveMember, SetMemberRole};
use crate::api::AppError;
use crate::domain::{Member, Role, MAX_EMAIL_CHARS};
use crate::ui::components::ErrorView;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

/// `/t/{tenant}/members`: admins manage who has which role.
#[component]
pub fn MembersPage() -> impl IntoView {
    let params = use_params_map();
    let tenant = move || params.read().get("tenant").unwrap_or_default();
    let add = ServerAction::<AddMember>::new();
    let set_role = ServerAction::<SetMemberRole>::new();
    let remove = ServerAction::<RemoveMember>::new();
    let members = Resource::new(
        move || {
            (
                tenant(),
                add.version().get(),
                set_role.version().get(),
                remove.version().get(),
            )
        },
        |(tenant, ..)| list_members(tenant),
    );
    // The last failure of any action, shown above the table.
    let failure = move || {
        [
            add.value().get(),
            set_role.value().get(),
            remove.value().get(),
        ]
        .into_iter()
        .find_map(|result| result.and_then(Result::err))
        .map(|error: AppError| error.to_string())
    };
    // Everything that names the tenant renders only once access is
    // confirmed, so a foreign tenant's page equals a missing one's.
    view! {
        <Title text="Members" />
        <Suspense fallback=|| view! { <p class="loading">"Loading members…"</p> }>
            {move || Suspend::new(async move {
                match members.await {
                    Ok(list) => view! {
                        <div class="page-head">
                            <h1>"Members"</h1>
                            <a href=format!("/t/{}/operations", tenant())>"Back to operations"</a>
                        </div>
                        {move || failure().map(|message| view! {
                            <p class="form-error" role="alert" data-testid="members-error">{message}</p>
                        })}
                        <table class="entries" data-testid="members-table">
                            <thead><tr>
                                <th scope="col">"Name"</th><th scope="col">"Email"</th>
                                <th scope="col">"Role"</th><th scope="col"><span class="sr-only">"Remove"</span></th>
                            </tr></thead>
                            <tbody>
                                {list.into_iter().map(|member| view! {
                                    <MemberRow member tenant=tenant() set_role remove />
                                }).collect_view()}
                            </tbody>
                        </table>
                        <h2>"Add a member"</h2>
                        <ActionForm action=add attr:class="form inline" attr:data-testid="add-member-form">
                            <input type="hidden" name="tenant" value=tenant() />
                            <label>"Email of an existing user" <input type="email" name="email" required maxlength=MAX_EMAIL_CHARS /></label>
                            <RoleSelect selected=Role::Viewer />
                            <button type="submit" class="button">"Add"</button>
                        </ActionForm>
                    }.into_any(),
                    Err(error) => view! { <ErrorView error /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn MemberRow(
    member: Member,
    tenant: String,
    set_role: ServerAction<SetMemberRole>,
    remove: ServerAction<RemoveMember>,
) -> impl IntoView {
    let user_id = member.user.id.to_string();
    let (email, name, role) = (member.user.email, member.user.display_name, member.role);
    let shown_email = email.clone();
    // Form children are closures: each form gets its own copies.
    let (role_tenant, role_user) = (tenant.clone(), user_id.clone());
    let role_form = view! {
        <ActionForm action=set_role attr:class="inline-form">
            <input type="hidden" name="tenant" value=role_tenant.clone() />
            <input type="hidden" name="user_id" value=role_user.clone() />
            <RoleSelect selected=role />
            <button type="submit" class="button">"Save"</button>
        </ActionForm>
    };
    let remove_form = view! {
        <ActionForm action=remove attr:class="inline-form">
            <input type="hidden" name="tenant" value=tenant.clone() />
            <input type="hidden" name="user_id" value=user_id.clone() />
            <button type="submit" class="button">"Remove"</button>
        </ActionForm>
    };
    view! {
        <tr data-testid="member-row" data-email=email>
            <td>{name}</td>
            <td>{shown_email}</td>
            <td>{role_form}</td>
            <td>{remove_form}</td>
        </tr>
    }
}

#[component]
fn RoleSelect(selected: Role) -> impl IntoView {
    view! {
        <label class="inline-label">"Role"
            <select name="role">
                {Role::ALL.into_iter().map(|role| view! {
                    <option value=role.as_str() selected=role == selected>{role.as_str()}</option>
                }).collect_view()}
            </select>
        </label>
    }
}

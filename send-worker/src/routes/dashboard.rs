//! `/dashboard`: the marketer dashboard. Pages are rendered by `epistola-dashboard` from rollups
//! (a bounded number of rows per page, whatever the event count); this module signs in, reads and
//! answers. Sign-in and sign-out are POSTs that must come from our own origin; the session cookie
//! is `SameSite=Strict`, so no other site can make a signed-in request.

use std::collections::{BTreeMap, HashMap};

use epistola_core::auth::{has_scope, hash_api_token, Scope};
use epistola_core::capture::normalize_email;
use epistola_core::chain::step_stats_id;
use epistola_core::event::{SendJob, SignInJob};
use epistola_core::ids::validate_id;
use epistola_core::listing::{parse_contact_search, split_page};
use epistola_core::roles::Role;
use epistola_core::stats::CampaignStats;
use epistola_core::token::Purpose;
use epistola_core::url::{origin_of, query_value};
use epistola_dashboard::{self as page, AnswerShare, CampaignInfo, ChainInfo, SegmentCount};
use epistola_worker_kit::db::{
    campaign_rollups, enqueue, live_token, live_token_scopes_by_id, token_scopes,
};
use worker::{Env, Method, Request, Response};

pub(super) use epistola_dashboard::minute;

use super::listing;
use crate::http::{self, ApiError, ApiResult};
use crate::{bindings, config, random, store};

/// Routes everything under `/dashboard`.
pub async fn dispatch(req: Request, env: &Env, rest: &[&str], now: u64) -> Response {
    let method = req.method();
    let result = match (rest, method) {
        (["session"], Method::Post) => sign_in(req, env, now).await,
        (["sign-in-link"], Method::Post) => request_link(req, env, now).await,
        (["sign-in-link"], _) => return http::method_not_allowed("POST"),
        (["sign-in", token], Method::Get) => link_page(env, token, now).await,
        (["sign-in", token], Method::Head) => link_page(env, token, now).await.map(http::head),
        (["sign-in", token], Method::Post) => use_link(&req, env, token, now).await,
        (["sign-in", _], _) => return http::method_not_allowed("GET, HEAD, POST"),
        (["logout"], Method::Post) => sign_out(&req),
        (["tokens"], Method::Post) => token_form(req, env, None, now).await,
        (["tokens", id, "revoke"], Method::Post) => {
            let id = (*id).to_owned();
            token_form(req, env, Some(&id), now).await
        }
        (["campaigns"], Method::Post) => campaign_save(req, env, None, now).await,
        (["templates"], Method::Post) => template_save(req, env, None, now).await,
        (["users"], Method::Post) => super::users::form(req, env, None, now).await,
        (["contacts", id, step @ ("test-list" | "lift" | "erase")], Method::Post) => {
            let (id, step) = ((*id).to_owned(), *step);
            super::contact_pages::form(req, env, &id, step, now).await
        }
        (["settings", "test-letter"], Method::Post) => {
            super::settings_pages::test_letter(req, env, now).await
        }
        (["suppressions", step @ ("import" | "lift")], Method::Post) => {
            let step = *step;
            super::suppression_pages::form(req, env, step, now).await
        }
        (["users", id, step @ ("role" | "disable" | "enable")], Method::Post) => {
            let (id, step) = ((*id).to_owned(), *step);
            super::users::form(req, env, Some((&id, step)), now).await
        }
        (["templates", id, "edit"], Method::Post) => {
            let id = (*id).to_owned();
            template_save(req, env, Some(&id), now).await
        }
        (["campaigns", id, "edit"], Method::Post) => {
            let id = (*id).to_owned();
            campaign_save(req, env, Some(&id), now).await
        }
        (
            ["campaigns", id, action @ ("test" | "approve" | "schedule" | "cancel")],
            Method::Post,
        ) => campaign_form(req, env, id, action, now).await,
        (["session" | "logout"], _) => return http::method_not_allowed("POST"),
        (_, Method::Get | Method::Head) => match signed_in(&req, env, now).await {
            Ok(Some(session)) => page_for(&req, env, rest, &session, now).await,
            Ok(None) if rest.is_empty() => Ok(http::html_document(200, page::sign_in(None))),
            Ok(None) => Ok(see_other("/dashboard", None)),
            Err(e) => Err(e),
        },
        _ => return http::method_not_allowed("GET, HEAD"),
    };
    result.unwrap_or_else(|e| match e.status {
        // Our failures get a page, not JSON: this is a browser.
        s if s >= 500 => http::page(
            s,
            "Dashboard",
            "<p>The dashboard could not load its data. Try again in a minute.</p>",
        ),
        _ => e.into_response(),
    })
}

async fn page_for(
    req: &Request,
    env: &Env,
    rest: &[&str],
    session: &Session,
    now: u64,
) -> ApiResult<Response> {
    let html =
        |document: String| http::html_document(200, page::with_viewer(&document, &session.viewer));
    match rest {
        ["tokens"] => {
            if !has_scope(&session.scopes, Scope::TokensWrite) {
                return Ok(not_yours("API tokens"));
            }
            tokens_page(env, session, &page::TokenForm::Blank, 200).await
        }
        ["audit" | "audit.csv"] => {
            if !has_scope(&session.scopes, Scope::AuditRead) {
                return Ok(not_yours("Audit log"));
            }
            audit_page(req, env, rest == ["audit.csv"], session).await
        }
        ["contacts"] => {
            if !has_scope(&session.scopes, Scope::ContactsRead) {
                return Ok(not_yours("Contacts"));
            }
            let (query, error, rows, next) = contact_page(req, env).await?;
            let url = req.inner().url();
            let notice = (query_value(&url, "erased") == Some("1"))
                .then_some("The contact was erased: everything that named them is gone.");
            Ok(html(page::contacts(
                &query,
                error.as_deref(),
                &rows,
                next.as_deref(),
                notice,
            )))
        }
        ["contacts", id] => {
            super::contact_pages::page(env, id, session, Default::default(), 200).await
        }
        ["contacts", id, "export"] => super::contact_pages::export(env, id, session, now).await,
        ["suppressions"] => super::suppression_pages::page(req, env, session).await,
        ["settings"] => super::settings_pages::page(req, env, session).await,
        [] => {
            let rows = campaign_rows(env).await?;
            let can_create = has_scope(&session.scopes, Scope::CampaignsWrite);
            Ok(html(page::campaigns(&rows, can_create)))
        }
        ["campaigns.csv"] => {
            let rows = campaign_rows(env).await?;
            Ok(http::csv(page::campaigns_csv(&rows), "campaigns.csv"))
        }
        ["users"] => super::users::page(env, session, None, 200).await,
        ["templates"] | ["templates", "new"] | ["templates", _, "edit"] => {
            template_page(env, rest, session).await
        }
        ["campaigns", "new"] | ["campaigns", _, "edit"] => {
            if !has_scope(&session.scopes, Scope::CampaignsWrite) {
                return Ok(not_yours("Campaign"));
            }
            let form = match rest {
                [_, id, _] => {
                    let c = store::get_campaign(env, &campaign_id(id)?)
                        .await?
                        .ok_or_else(|| ApiError::new(404, "not_found", "no such campaign"))?;
                    stored_form(&c)
                }
                _ => page::CampaignForm::default(),
            };
            campaign_form_page(env, session, &form, 200).await
        }
        ["campaigns", id] => campaign_page(env, id, session, None, 200, now).await,
        ["campaigns", id, "approve"] => {
            if !has_scope(&session.scopes, Scope::CampaignsApprove) {
                return Ok(not_yours("Approve a campaign"));
            }
            approval_screen(env, id, session, None, 200, now).await
        }
        ["campaigns", id, "summary.csv"] => {
            let (_, stats) = one_campaign(env, id).await?;
            Ok(http::csv(stats.summary_csv(), &format!("{id}-summary.csv")))
        }
        ["campaigns", id, "series.csv"] => {
            let (_, stats) = one_campaign(env, id).await?;
            Ok(http::csv(stats.series_csv(), &format!("{id}-hourly.csv")))
        }
        ["compare" | "compare.csv"] => {
            let url = req.inner().url();
            let a = one_campaign(env, query_value(&url, "a").unwrap_or("")).await?;
            let b = one_campaign(env, query_value(&url, "b").unwrap_or("")).await?;
            Ok(if rest == ["compare"] {
                html(page::compare((&a.0, &a.1), (&b.0, &b.1)))
            } else {
                http::csv(page::compare_csv((&a.0, &a.1), (&b.0, &b.1)), "compare.csv")
            })
        }
        ["chains"] => Ok(html(page::chains(&chain_infos(env).await?))),
        ["chains.csv"] => Ok(http::csv(
            page::chains_csv(&chain_infos(env).await?),
            "chains.csv",
        )),
        ["audience"] => Ok(html(page::audience(
            &answers(env).await?,
            &segments(env).await?,
        ))),
        ["segments.csv"] => Ok(http::csv(
            page::segments_csv(&segments(env).await?),
            "segments.csv",
        )),
        ["audience.csv"] => Ok(http::csv(
            page::audience_csv(&answers(env).await?),
            "audience.csv",
        )),
        _ => Err(ApiError::new(404, "not_found", "no such dashboard page")),
    }
}

/// A campaign's page: numbers, what waits, and the next step the viewer may take (`refused`: why
/// their last button did nothing).
async fn campaign_page(
    env: &Env,
    id: &str,
    session: &Session,
    refused: Option<String>,
    status: u16,
    now: u64,
) -> ApiResult<Response> {
    let (mut info, stats) = one_campaign(env, id).await?;
    let mut next = None;
    // Only the page says what waits; the CSVs and the comparison do not need the read.
    if info.status != "tracked" {
        let sent = stats.delivery.values().map(|d| d.sent).sum();
        info.waiting = store::campaign_waiting(env, &info.id)
            .await?
            .summary(sent, now);
        if let Some(c) = store::get_campaign(env, &info.id).await? {
            next = Some(page::NextStep {
                can_write: has_scope(&session.scopes, Scope::CampaignsWrite),
                can_approve: has_scope(&session.scopes, Scope::CampaignsApprove),
                test_list: if matches!(c.status.as_str(), "draft" | "tested") {
                    store::test_list(env).await?.len()
                } else {
                    0
                },
                last_test: last_test(&c),
                starts: (c.status == "scheduled")
                    .then_some(c.scheduled_at)
                    .flatten()
                    .map(|at| (minute(at), at - now as i64)),
                status: c.status,
                refused,
            });
        }
    }
    Ok(http::html_document(
        status,
        page::with_viewer(
            &page::campaign(&info, &stats, next.as_ref()),
            &session.viewer,
        ),
    ))
}

fn last_test(c: &store::CampaignRow) -> Option<page::LastTest> {
    Some(page::LastTest {
        at: minute(c.last_test_at?),
        stats_id: epistola_core::campaign::test_stats_id(c.last_test_run.as_deref()?),
    })
}

/// The approval screen: what approving sends, to how many, and who may approve it.
async fn approval_screen(
    env: &Env,
    id: &str,
    session: &Session,
    refused: Option<String>,
    status: u16,
    now: u64,
) -> ApiResult<Response> {
    let id = campaign_id(id)?;
    let f = super::campaigns::approval_facts(env, &id, now).await?;
    let c = &f.campaign;
    let previous = store::previous_send(env, &c.id, &c.site_id, &c.purpose).await?;
    let screen = page::Approval {
        id: c.id.clone(),
        name: c.name.clone(),
        status: c.status.clone(),
        subject: f.subject.clone(),
        audience: f.audience,
        threshold: f.threshold,
        previous,
        already_received: f.already_received["contacts"].as_i64().unwrap_or_default(),
        within_days: f.already_received["within_days"]
            .as_i64()
            .unwrap_or_default(),
        allow_resend: c.allow_resend == 1,
        edited_by: c.edited_by.clone(),
        viewer_edited: c.edited_by.as_deref() == Some(session.actor.as_str()),
        last_test: last_test(c),
        refused,
    };
    Ok(http::html_document(
        status,
        page::with_viewer(&page::approval(&screen), &session.viewer),
    ))
}

/// A campaign id from a dashboard path, checked (links percent-encode ids: `a:b` is `a%3Ab`).
fn campaign_id(segment: &str) -> ApiResult<String> {
    path_id_param(segment, "campaign")
}

/// An id from a dashboard path segment, percent-decoded and checked; errors name `field`.
pub(super) fn path_id_param(segment: &str, field: &str) -> ApiResult<String> {
    let id = epistola_core::url::percent_decode(segment)
        .ok_or_else(|| ApiError::field(field, "is not a valid path segment"))?;
    validate_id(&id, false).map_err(|e| ApiError::field(field, e.to_string()))?;
    Ok(id)
}

/// A form number field: `None` when empty, or the field's error.
fn form_number(form: &worker::FormData, field: &str, words: &str) -> ApiResult<Option<i64>> {
    match form.get_field(field).map(|v| v.trim().to_owned()) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::field(field, words)),
    }
}

/// `POST /dashboard/campaigns/{id}/{test|approve|schedule|cancel}`: the campaign page's buttons,
/// from our own pages, by a viewer whose role holds the step's scope, audited as that viewer. The
/// same rules as the API (the steps are its functions); a refusal comes back as the page with the
/// reason in words.
async fn campaign_form(
    mut req: Request,
    env: &Env,
    id: &str,
    action: &str,
    now: u64,
) -> ApiResult<Response> {
    use super::campaigns;
    let needs: &[Scope] = match action {
        "approve" | "schedule" => &[Scope::CampaignsApprove],
        "cancel" => &campaigns::CANCEL_SCOPES,
        _ => &[Scope::CampaignsWrite],
    };
    let session = match form_viewer(&req, env, needs, "Campaign", now).await? {
        Ok(session) => session,
        Err(refused) => return Ok(refused),
    };
    let id = campaign_id(id)?;
    let form = http::read_form(&mut req, http::MAX_FORM_BYTES).await?;
    let base_url = http::public_base_url(&req, env)?;
    let segments = ["v1", "campaigns", id.as_str(), action];
    let step = async {
        match action {
            "test" => campaigns::send_test(env, &id, base_url, now)
                .await
                .map(|_| 202),
            "approve" => {
                match form_number(&form, "confirm_audience", "type the number in digits") {
                    Ok(confirm) => campaigns::approve_as(env, &id, &session.actor, confirm, now)
                        .await
                        .map(|_| 200),
                    Err(e) => Err(e),
                }
            }
            "schedule" => match form_number(&form, "minutes", "minutes from now, in digits") {
                Ok(Some(m)) if !(0..=525_600).contains(&m) => {
                    Err(ApiError::field("minutes", "from 0 to 525600 (a year)"))
                }
                Ok(m) => {
                    let at = now + m.unwrap_or(0) as u64 * 60;
                    campaigns::schedule_at(env, &id, Some(at), base_url, now)
                        .await
                        .map(|_| 200)
                }
                Err(e) => Err(e),
            },
            _ => campaigns::cancel_now(env, &id, now).await.map(|_| 200),
        }
    };
    match crate::audit::change_as(env, "POST", &segments, &session.actor, now, step).await {
        Ok(_) => Ok(see_other(&format!("/dashboard/campaigns/{id}"), None)),
        Err(e) if e.status < 500 && e.status != 404 => {
            let why = match e.fields.iter().next() {
                Some((f, p)) if f == "confirm_audience" => format!("The number {p}."),
                Some((f, p)) => format!("{f}: {p}"),
                None => e.message.clone(),
            };
            if action == "approve" {
                approval_screen(env, &id, &session, Some(why), e.status, now).await
            } else {
                campaign_page(env, &id, &session, Some(why), e.status, now).await
            }
        }
        Err(e) => Err(e),
    }
}

/// The campaign form as a stored campaign fills it.
fn stored_form(c: &store::CampaignRow) -> page::CampaignForm {
    let segment = serde_json::from_slice(c.segment.as_bytes()).unwrap_or_default();
    page::CampaignForm {
        editing: Some(c.id.clone()),
        id: c.id.clone(),
        name: c.name.clone(),
        template: c.template_id.clone(),
        site: c.site_id.clone(),
        purpose: c.purpose.clone(),
        audience: epistola_dashboard::campaign_form::audience_of(&segment),
        allow_resend: c.allow_resend == 1,
        errors: Default::default(),
    }
}

/// The new-campaign or edit page with what to choose from.
async fn campaign_form_page(
    env: &Env,
    session: &Session,
    form: &page::CampaignForm,
    status: u16,
) -> ApiResult<Response> {
    let templates = store::list_templates(env, &listing::page_of(Some("200"), None)?)
        .await?
        .iter()
        .map(|t| {
            let text = |k: &str| t[k].as_str().unwrap_or_default().to_owned();
            (text("id"), text("name"))
        })
        .collect();
    let choices = page::Choices {
        templates,
        // What a campaign can be sent for: each site's e-mail consents.
        targets: store::sites(env)
            .await?
            .into_iter()
            .flat_map(|(id, site)| {
                site.consents
                    .into_iter()
                    .filter(|c| c.channel == epistola_core::site::Channel::Email)
                    .map(move |c| (id.clone(), site.name.clone(), c.purpose))
            })
            .collect(),
    };
    Ok(http::html_document(
        status,
        page::with_viewer(&page::campaign_form(form, &choices), &session.viewer),
    ))
}

/// `POST /dashboard/campaigns` (new) and `POST /dashboard/campaigns/{id}/edit`: the campaign
/// form, saved as a draft through the API's own function, audited as the viewer. A new campaign
/// never overwrites one with the same id; an edit keeps what the form does not show (send
/// window, anonymous tracking, SMS fallback).
async fn campaign_save(
    mut req: Request,
    env: &Env,
    editing: Option<&str>,
    now: u64,
) -> ApiResult<Response> {
    use epistola_dashboard::campaign_form::{form_field, form_from_fields, input_of};
    let session = match form_viewer(&req, env, &[Scope::CampaignsWrite], "Campaign", now).await? {
        Ok(session) => session,
        Err(refused) => return Ok(refused),
    };
    let editing = editing.map(campaign_id).transpose()?;
    let body = http::read_form(&mut req, 64 * 1024).await?;
    let mut form = form_from_fields(editing.as_deref(), |k| body.get_field(k));
    let Some(mut input) = input_of(&mut form) else {
        return campaign_form_page(env, &session, &form, 400).await;
    };
    if let Err(e) = validate_id(&form.id, false) {
        form.errors.insert("id".into(), e.to_string());
        return campaign_form_page(env, &session, &form, 400).await;
    }
    match (&editing, store::get_campaign(env, &form.id).await?) {
        (None, Some(_)) => {
            form.errors.insert(
                "id".into(),
                "a campaign with this id exists: choose another".into(),
            );
            return campaign_form_page(env, &session, &form, 409).await;
        }
        (Some(_), None) => return Err(ApiError::new(404, "not_found", "no such campaign")),
        (Some(_), Some(c)) => {
            input.send_window = c
                .send_window
                .as_deref()
                .and_then(|w| serde_json::from_slice(w.as_bytes()).ok());
            input.anonymous = c.anonymous == 1;
            input.sms_fallback_after_seconds =
                c.sms_fallback_after.and_then(|s| u64::try_from(s).ok());
        }
        (None, None) => {}
    }
    let segments = ["v1", "campaigns", form.id.as_str()];
    let put = async {
        super::campaigns::put_as(env, &form.id, &input, &session.actor, now)
            .await
            .map(|()| 200)
    };
    match crate::audit::change_as(env, "PUT", &segments, &session.actor, now, put).await {
        Ok(_) => Ok(see_other(
            &format!("/dashboard/campaigns/{}", form.id),
            None,
        )),
        Err(e) if e.status < 500 => {
            if e.fields.is_empty() {
                form.errors.insert("form".into(), e.message.clone());
            }
            for (f, why) in &e.fields {
                let field = form_field(f, &form.audience);
                form.errors.insert(field.into(), why.clone());
            }
            campaign_form_page(env, &session, &form, e.status).await
        }
        Err(e) => Err(e),
    }
}

/// Who submits a dashboard form: it came from our own origin, its viewer is signed in and holds
/// one of `scopes`; otherwise the answer (`403` page, or back to sign-in).
pub(super) async fn form_viewer(
    req: &Request,
    env: &Env,
    scopes: &[Scope],
    title: &str,
    now: u64,
) -> ApiResult<Result<Session, Response>> {
    if !same_origin(req) {
        return Ok(Err(http::page(
            403,
            title,
            "<p>Use the dashboard's own pages for this.</p>",
        )));
    }
    let Some(session) = signed_in(req, env, now).await? else {
        return Ok(Err(see_other("/dashboard", None)));
    };
    if !scopes.iter().any(|s| has_scope(&session.scopes, *s)) {
        return Ok(Err(not_yours(title)));
    }
    Ok(Ok(session))
}

/// The templates list, the new-template page or the editor, for viewers who write campaigns.
async fn template_page(env: &Env, rest: &[&str], session: &Session) -> ApiResult<Response> {
    if !has_scope(&session.scopes, Scope::CampaignsWrite) {
        return Ok(not_yours("Templates"));
    }
    let form = match rest {
        ["templates"] => {
            let lines: Vec<page::TemplateLine> =
                store::list_templates(env, &listing::page_of(Some("200"), None)?)
                    .await?
                    .iter()
                    .map(|t| {
                        let text = |k: &str| t[k].as_str().unwrap_or_default().to_owned();
                        page::TemplateLine {
                            id: text("id"),
                            name: text("name"),
                            subject: text("subject"),
                            updated: minute(t["updated_at"].as_i64().unwrap_or_default()),
                        }
                    })
                    .collect();
            return Ok(http::html_document(
                200,
                page::with_viewer(&page::templates(&lines, true), &session.viewer),
            ));
        }
        [_, id, "edit"] => {
            let t = store::get_template(env, &path_id_param(id, "template")?)
                .await?
                .ok_or_else(|| ApiError::new(404, "not_found", "no such template"))?;
            page::TemplateForm {
                editing: Some(t.id.clone()),
                id: t.id,
                name: t.name,
                subject: t.subject,
                html: t.html,
                text: t.text.unwrap_or_default(),
                sms: t.sms.unwrap_or_default(),
                ..page::TemplateForm::default()
            }
        }
        _ => page::TemplateForm::default(),
    };
    template_form_page(env, session, &form, 200).await
}

async fn template_form_page(
    env: &Env,
    session: &Session,
    form: &page::TemplateForm,
    status: u16,
) -> ApiResult<Response> {
    let sites: Vec<(String, String)> = store::sites(env)
        .await?
        .into_iter()
        .map(|(id, s)| (id, s.name))
        .collect();
    Ok(http::html_document(
        status,
        page::with_viewer(&page::template_form(form, &sites), &session.viewer),
    ))
}

/// `POST /dashboard/templates` (new) and `POST /dashboard/templates/{id}/edit`: the editor's
/// two buttons. "Preview" composes the letter as the chosen contact from what is typed (nothing
/// stored, nothing sent); "Save" stores it through the API's own function, audited as the
/// viewer. A new template never takes an existing id; an edit keeps the audience tags the editor
/// does not show.
async fn template_save(
    mut req: Request,
    env: &Env,
    editing: Option<&str>,
    now: u64,
) -> ApiResult<Response> {
    use super::templates::{preview_letter, put_checked, Letter, TemplateInput};
    use epistola_sender::template::TemplateSource;
    let session = match form_viewer(&req, env, &[Scope::CampaignsWrite], "Template", now).await? {
        Ok(session) => session,
        Err(refused) => return Ok(refused),
    };
    let editing = editing
        .map(|id| path_id_param(id, "template"))
        .transpose()?;
    let body = http::read_form(&mut req, 3 * 1024 * 1024).await?;
    let field = |k: &str| body.get_field(k).unwrap_or_default();
    let name = field("name").trim().to_owned();
    let id = match (&editing, field("id").trim()) {
        (Some(id), _) => id.clone(),
        (None, "") => epistola_dashboard::campaign_form::id_from_name(&name),
        (None, typed) => typed.to_owned(),
    };
    let mut form = page::TemplateForm {
        editing: editing.clone(),
        id,
        name,
        subject: field("subject"),
        html: field("html"),
        text: field("text"),
        sms: field("sms"),
        contact: field("contact").trim().to_owned(),
        site: field("site"),
        ..page::TemplateForm::default()
    };
    let optional = |s: &str| (!s.trim().is_empty()).then(|| s.to_owned());
    let beside = |form: &mut page::TemplateForm, e: &ApiError| {
        if e.fields.is_empty() {
            form.errors.insert("form".into(), e.message.clone());
        }
        for (f, why) in &e.fields {
            let f = match f.as_str() {
                "template" => "id",
                f @ ("name" | "subject" | "html" | "text" | "sms" | "contact" | "site") => f,
                _ => "form",
            };
            form.errors.insert(f.into(), why.clone());
        }
    };
    if field("do") == "preview" {
        // Exactly what is typed: an emptied text part is made from the HTML, as saving makes it.
        let letter = Letter {
            name: &form.name,
            source: TemplateSource {
                subject: form.subject.clone(),
                html: form.html.clone(),
                text: optional(&form.text),
                sms: optional(&form.sms),
            },
            contact: form.contact.clone(),
            site: form.site.clone(),
        };
        let base_url = http::public_base_url(&req, env)?;
        let previewed = preview_letter(env, letter, Default::default(), &base_url, now).await;
        let status = match previewed {
            Ok(p) => {
                let text = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
                form.preview = Some(page::Preview {
                    to: text("to"),
                    from: text("from"),
                    subject: text("subject"),
                    html: text("html"),
                    text: text("text"),
                    sms: p["sms"].as_str().map(str::to_owned),
                    links: p["links"]
                        .as_array()
                        .map(|l| {
                            l.iter()
                                .filter_map(|x| x["url"].as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
                200
            }
            Err(e) if e.status < 500 => {
                beside(&mut form, &e);
                e.status
            }
            Err(e) => return Err(e),
        };
        return template_form_page(env, &session, &form, status).await;
    }
    if form.id.is_empty() {
        form.errors.insert(
            "id".into(),
            "give the template a name (its id is made from it)".into(),
        );
        return template_form_page(env, &session, &form, 400).await;
    }
    let stored = store::get_template(env, &form.id).await?;
    let audience = match (&editing, &stored) {
        (None, Some(_)) => {
            form.errors.insert(
                "id".into(),
                "a template with this id exists: choose another".into(),
            );
            return template_form_page(env, &session, &form, 409).await;
        }
        (Some(_), None) => return Err(ApiError::new(404, "not_found", "no such template")),
        (_, Some(t)) => serde_json::from_slice(t.audience.as_bytes()).unwrap_or_default(),
        (None, None) => Default::default(),
    };
    let input = TemplateInput {
        name: form.name.clone(),
        subject: form.subject.clone(),
        html: form.html.clone(),
        text: optional(&form.text),
        sms: optional(&form.sms),
        audience,
    };
    let segments = ["v1", "templates", form.id.as_str()];
    let put = async { put_checked(env, &form.id, input, now).await.map(|_| 200) };
    match crate::audit::change_as(env, "PUT", &segments, &session.actor, now, put).await {
        Ok(_) => Ok(see_other("/dashboard/templates", None)),
        Err(e) if e.status < 500 => {
            beside(&mut form, &e);
            template_form_page(env, &session, &form, e.status).await
        }
        Err(e) => Err(e),
    }
}

/// A page the viewer's role does not open.
pub(super) fn not_yours(title: &str) -> Response {
    http::page(
        403,
        title,
        "<p>Your role does not open this page. <a href=\"/dashboard\">Back to the campaigns</a></p>",
    )
}

/// The tokens page with the form's outcome; only scopes the viewer holds are offered.
async fn tokens_page(
    env: &Env,
    session: &Session,
    form: &page::TokenForm<'_>,
    status: u16,
) -> ApiResult<Response> {
    let rows: Vec<page::TokenLine> = store::list_tokens(env)
        .await?
        .into_iter()
        .map(|t| page::TokenLine {
            created: minute(t.created_at),
            revoked: t.revoked_at.map(minute),
            created_by: t.created_by.unwrap_or_else(|| "a script".into()),
            id: t.id,
            name: t.name,
            scopes: t.scopes,
        })
        .collect();
    let grantable: Vec<&str> = Scope::ALL
        .iter()
        .filter(|s| has_scope(&session.scopes, **s))
        .map(|s| s.as_str())
        .collect();
    let document = page::with_viewer(&page::tokens(&rows, &grantable, form), &session.viewer);
    let mut resp = http::html_document(status, document);
    // A page that may hold a new token's secret is never stored.
    let _ = resp.headers_mut().set("Cache-Control", "no-store");
    Ok(resp)
}

/// `POST /dashboard/tokens` (create) and `POST /dashboard/tokens/{id}/revoke`: from our own
/// page, by a signed-in viewer holding `tokens:write`, audited as that user.
async fn token_form(
    mut req: Request,
    env: &Env,
    revoke: Option<&str>,
    now: u64,
) -> ApiResult<Response> {
    let session = match form_viewer(&req, env, &[Scope::TokensWrite], "API tokens", now).await? {
        Ok(session) => session,
        Err(refused) => return Ok(refused),
    };
    if let Some(id) = revoke {
        return match super::tokens::revoke(env, &session.actor, id, now).await {
            Ok(()) => Ok(see_other("/dashboard/tokens", None)),
            Err(e) if e.status == 404 => Ok(see_other("/dashboard/tokens", None)),
            Err(e) => Err(e),
        };
    }
    let form = http::read_form(&mut req, http::MAX_FORM_BYTES).await?;
    let name = form.get_field("name").unwrap_or_default();
    let scopes: Vec<String> = form
        .get_all("scope")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| match e {
            worker::FormEntry::Field(s) => Some(s),
            worker::FormEntry::File(_) => None,
        })
        .collect();
    match super::tokens::mint(env, &session.actor, &session.scopes, &name, &scopes, now).await {
        Ok(minted) => {
            let form = page::TokenForm::Minted {
                name: &minted.row.name,
                secret: &minted.secret,
            };
            tokens_page(env, &session, &form, 201).await
        }
        Err(e) if e.status < 500 => {
            let (field, problem) = e
                .fields
                .iter()
                .next()
                .map(|(f, p)| (f.clone(), p.clone()))
                .unwrap_or_else(|| ("name".into(), e.message.clone()));
            let form = page::TokenForm::Refused {
                field: &field,
                problem: &problem,
            };
            tokens_page(env, &session, &form, e.status).await
        }
        Err(e) => Err(e),
    }
}

/// The audit page, or its CSV (the newest rows of the filter, up to the export's bound).
async fn audit_page(req: &Request, env: &Env, csv: bool, session: &Session) -> ApiResult<Response> {
    let max = if csv {
        super::tokens::MAX_AUDIT_ROWS
    } else {
        epistola_core::listing::MAX_LIMIT
    };
    let [actor, subject] = listing::params(req, ["actor", "subject"]).unwrap_or_default();
    let (actor, subject) = (actor.unwrap_or_default(), subject.unwrap_or_default());
    let (rows, next, error) = match super::tokens::audit_query(req, max) {
        Ok(mut q) => {
            if csv {
                q.limit = max;
            }
            let (rows, next) = super::tokens::audit_page(env, &q).await?;
            (rows, next, None)
        }
        Err(e) => {
            let why: Vec<String> = e.fields.iter().map(|(f, p)| format!("{f}: {p}")).collect();
            (vec![], None, Some(why.join("; ")))
        }
    };
    let lines: Vec<page::AuditLine> = rows
        .into_iter()
        .map(|r| page::AuditLine {
            at: format!("{}:{:02}", minute(r.at), r.at.max(0) % 60),
            seq: r.seq,
            actor: r.actor,
            action: r.action,
            subject: r.subject,
            detail: r.detail,
        })
        .collect();
    Ok(if csv {
        http::csv(page::audit_csv(&lines), "audit.csv")
    } else {
        http::html_document(
            200,
            page::with_viewer(
                &page::audit(&lines, &actor, &subject, error.as_deref(), next.as_deref()),
                &session.viewer,
            ),
        )
    })
}

/// One page of the contacts list as `GET /v1/contacts` answers it, or the search's error.
async fn contact_page(
    req: &Request,
    env: &Env,
) -> ApiResult<(
    String,
    Option<String>,
    Vec<page::ContactLine>,
    Option<String>,
)> {
    let [query, cursor] = match listing::params(req, ["query", "cursor"]) {
        Ok(values) => values,
        Err(_) => {
            return Ok((
                String::new(),
                Some("The search was not readable.".into()),
                vec![],
                None,
            ))
        }
    };
    let query = query.unwrap_or_default();
    let parsed = parse_contact_search(&query).and_then(|search| {
        listing::page_of(None, cursor.as_deref())
            .map(|page| (search, page))
            .map_err(|_| "That page link is broken; search again.".to_owned())
    });
    let (search, page) = match parsed {
        Ok(p) => p,
        Err(e) => return Ok((query, Some(e), vec![], None)),
    };
    let rows = store::list_contacts(env, &search, &page).await?;
    let (rows, next) = split_page(rows, page.limit, listing::row_cursor);
    let lines = rows
        .iter()
        .map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            page::ContactLine {
                id: text("id"),
                email: text("email"),
                name: text("name"),
                status: text("status"),
                tags: c["tags"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                added: minute(c["created_at"].as_i64().unwrap_or_default()),
            }
        })
        .collect();
    Ok((query, None, lines, next))
}

pub(super) fn see_other(location: &str, cookie: Option<&str>) -> Response {
    let mut resp = http::with_body(
        303,
        Vec::new(),
        &[
            ("Location", location),
            ("Cache-Control", "no-store"),
            ("Referrer-Policy", "no-referrer"),
        ],
    );
    if let Some(c) = cookie {
        let _ = resp.headers_mut().set("Set-Cookie", c);
    }
    resp
}

/// A user session names the user in `contact` under this `campaign`; an API token's session
/// names the token in `campaign` and no contact.
const USER_SESSION: &str = "user";
/// How long a mailed sign-in link works.
const LINK_SECONDS: u64 = 15 * 60;

/// A live dashboard session: who, and the scopes they hold.
pub(super) struct Session {
    pub(super) viewer: page::Viewer,
    pub(super) scopes: String,
    /// How the audit log names them: `user:{id}` or `token:{id}`.
    pub(super) actor: String,
}

/// Does the request carry a live session: a signed, unexpired session token whose user is still
/// active, or whose API token is still live, with `stats:read` (disabling the user or revoking
/// the token ends its sessions at once)?
async fn signed_in(req: &Request, env: &Env, now: u64) -> ApiResult<Option<Session>> {
    let cookies = http::header(req, "Cookie");
    let Some(session) = page::session_token(cookies.as_deref()) else {
        return Ok(None);
    };
    let Ok(claims) = config::verify_token(env, session, Purpose::DashboardSession, now) else {
        return Ok(None);
    };
    let who = if claims.contact.is_empty() {
        live_token_scopes_by_id(env, &claims.campaign)
            .await?
            .map(|scopes| {
                (
                    format!("API token {}", claims.campaign),
                    "API token".to_owned(),
                    scopes,
                    format!("token:{}", claims.campaign),
                )
            })
    } else {
        store::active_user(env, &claims.contact)
            .await?
            .filter(|u| u.id == claims.contact)
            .and_then(|u| {
                let actor = format!("user:{}", u.id);
                Role::parse(&u.role)
                    .map(|r| (u.email, r.as_str().to_owned(), r.scope_list(), actor))
            })
    };
    Ok(who
        .filter(|(_, _, scopes, _)| has_scope(scopes, Scope::StatsRead))
        .map(|(name, role, scopes, actor)| Session {
            viewer: page::Viewer {
                name,
                role,
                reads_contacts: has_scope(&scopes, Scope::ContactsRead),
                manages_tokens: has_scope(&scopes, Scope::TokensWrite),
                reads_audit: has_scope(&scopes, Scope::AuditRead),
                writes_campaigns: has_scope(&scopes, Scope::CampaignsWrite),
            },
            scopes,
            actor,
        }))
}

/// `POST /dashboard/sign-in-link`: mails a one-time link to a workspace user. The answer is the
/// same for every address (no one learns who has an account); links per user are limited.
async fn request_link(mut req: Request, env: &Env, now: u64) -> ApiResult<Response> {
    if let Some(refused) = sign_in_refused(&req, env, now).await? {
        return Ok(refused);
    }
    let form = http::read_form(&mut req, http::MAX_FORM_BYTES).await?;
    let given = form.get_field("email").unwrap_or_default();
    let Ok(email) = normalize_email(&given) else {
        return Ok(http::html_document(
            400,
            page::sign_in(Some("That is not an e-mail address.")),
        ));
    };
    if let Some(user) = store::active_user(env, &email).await? {
        let id = random::id("sl_").ok_or_else(|| ApiError::internal("link id", "no randomness"))?;
        if store::create_sign_in_link(env, &id, &user.id, now, LINK_SECONDS).await? {
            let base_url = http::public_base_url(&req, env)?;
            let job = SendJob::SignInLinkV1(SignInJob { link: id, base_url });
            enqueue(env, bindings::SENDS, &job).await?;
        }
    }
    Ok(http::html_document(
        200,
        page::link_sent(&email, LINK_SECONDS / 60),
    ))
}

/// The link's row and user, if the token is genuine and the link still works.
async fn working_link(
    env: &Env,
    token: &str,
    now: u64,
) -> ApiResult<Option<(String, store::UserRow)>> {
    let Ok(claims) = config::verify_token(env, token, Purpose::SignIn, now) else {
        return Ok(None);
    };
    let link = store::sign_in_link(env, &claims.campaign).await?;
    let works = link.is_some_and(|l| {
        l.used_at.is_none() && l.expires_at > now as i64 && l.user_id == claims.contact
    });
    if !works {
        return Ok(None);
    }
    let user = store::active_user(env, &claims.contact)
        .await?
        .filter(|u| u.id == claims.contact);
    Ok(user.map(|u| (claims.campaign, u)))
}

/// `GET /dashboard/sign-in/{token}`: one button; a GET (a mail scanner's) signs no one in.
async fn link_page(env: &Env, token: &str, now: u64) -> ApiResult<Response> {
    Ok(match working_link(env, token, now).await? {
        Some((_, user)) => http::html_document(
            200,
            page::confirm_sign_in(&user.email, &format!("/dashboard/sign-in/{token}")),
        ),
        None => http::html_document(400, page::link_refused()),
    })
}

/// `POST /dashboard/sign-in/{token}`: uses the link once and starts the user's session.
async fn use_link(req: &Request, env: &Env, token: &str, now: u64) -> ApiResult<Response> {
    if !same_origin(req) {
        return Ok(http::page(
            403,
            "Sign in",
            "<p>Sign in from the page the link opened.</p>",
        ));
    }
    let Some((link, user)) = working_link(env, token, now).await? else {
        return Ok(http::html_document(400, page::link_refused()));
    };
    if !store::use_sign_in_link(env, &link, &user.id, now).await? {
        return Ok(http::html_document(400, page::link_refused()));
    }
    start_session(env, USER_SESSION, &user.id, now)
}

/// Signs the session (a user's, or an API token's with `contact` empty) and sends the browser to
/// the dashboard with its cookie.
fn start_session(env: &Env, campaign: &str, contact: &str, now: u64) -> ApiResult<Response> {
    let session = config::sign_contact_token(
        env,
        Purpose::DashboardSession,
        campaign,
        contact,
        "",
        now,
        page::SESSION_SECONDS as u32,
    )
    .ok_or_else(|| ApiError::internal("session", "no signing key"))?;
    Ok(see_other(
        "/dashboard",
        Some(&page::session_cookie(&session)),
    ))
}

/// Sign-in attempts per client (hashed IP) per 15 minutes: plenty for a person who mistyped,
/// too few to guess tokens.
const SIGN_IN_LIMIT: (u32, u64) = (10, 900);

/// A state-changing POST must come from a page of ours: `Origin` equal to our own origin. Our
/// pages send `Referrer-Policy: no-referrer`, under which browsers send `Origin: null` on form
/// posts; then the browser's `Sec-Fetch-Site` must say `same-origin`. Neither header: refused.
fn same_origin(req: &Request) -> bool {
    let url = req.inner().url();
    match http::header(req, "Origin").filter(|o| o != "null") {
        Some(origin) => origin_of(&url) == Some(origin.as_str()),
        None => http::header(req, "Sec-Fetch-Site").as_deref() == Some("same-origin"),
    }
}

/// Why a sign-in POST (token or link request) is refused before its form is read: another
/// origin (`403`), or this client (hashed IP) tried too often (`429`).
async fn sign_in_refused(req: &Request, env: &Env, now: u64) -> ApiResult<Option<Response>> {
    if !same_origin(req) {
        return Ok(Some(http::page(
            403,
            "Sign in",
            "<p>Sign in from the dashboard page itself.</p>",
        )));
    }
    let ip = http::header(req, "CF-Connecting-IP").unwrap_or_default();
    let subject = epistola_core::iphash::rate_limit_subject(&ip);
    let client = config::hash_client_ip(env, Some(&subject), now)
        // Without the hashing key no address is kept, not even hashed: one shared bucket.
        .unwrap_or_else(|| "unkeyed".to_owned());
    let (limit, window) = SIGN_IN_LIMIT;
    if store::count_hit(env, &format!("signin:{client}"), window, now).await? > limit {
        let mut resp = http::html_document(
            429,
            page::sign_in(Some("Too many attempts. Wait a few minutes and try again.")),
        );
        let _ = resp.headers_mut().set("Retry-After", &window.to_string());
        return Ok(Some(resp));
    }
    Ok(None)
}

async fn sign_in(mut req: Request, env: &Env, now: u64) -> ApiResult<Response> {
    if let Some(refused) = sign_in_refused(&req, env, now).await? {
        return Ok(refused);
    }
    let token = match http::read_form(&mut req, http::MAX_FORM_BYTES).await {
        Ok(form) => form.get_field("token").unwrap_or_default(),
        Err(e) if e.status == 413 => return Err(e),
        Err(_) => String::new(),
    };
    let token = token.trim();
    let refused = |why: &str| Ok(http::html_document(401, page::token_refused(why)));
    if !page::is_cookie_safe(token) {
        return refused("That is not an API token.");
    }
    match token_scopes(env, &hash_api_token(token)).await? {
        None => refused("Unknown or revoked API token."),
        Some(scopes) if !has_scope(&scopes, Scope::StatsRead) => {
            refused("This token lacks the stats:read scope.")
        }
        Some(_) => {
            let Some(id) = live_token(env, &hash_api_token(token)).await?.map(|t| t.id) else {
                return refused("Unknown or revoked API token.");
            };
            start_session(env, &id, "", now)
        }
    }
}

fn sign_out(req: &Request) -> ApiResult<Response> {
    if !same_origin(req) {
        return Ok(http::page(
            403,
            "Sign out",
            "<p>Sign out from the dashboard.</p>",
        ));
    }
    Ok(see_other("/dashboard", Some(&page::clear_session_cookie())))
}

async fn campaign_rows(env: &Env) -> ApiResult<Vec<(CampaignInfo, CampaignStats)>> {
    let listed = store::dashboard_campaigns(env).await?;
    let ids: Vec<String> = listed.iter().map(|c| c.id.clone()).collect();
    let mut totals = store::rollup_totals(env, &ids).await?;
    let waiting = store::waiting_letters(env, &ids).await?;
    Ok(listed
        .into_iter()
        .map(|c| {
            let rows = totals.remove(&c.id).unwrap_or_default();
            let stats = CampaignStats::from_rollups(&c.id, &rows, &[], &[]);
            let waiting = waiting
                .get(&c.id)
                .map(|n| format!("{n} {} waiting", if *n == 1 { "letter" } else { "letters" }));
            (
                CampaignInfo {
                    id: c.id,
                    name: c.name,
                    status: c.status,
                    waiting,
                },
                stats,
            )
        })
        .collect())
}

async fn one_campaign(env: &Env, id: &str) -> ApiResult<(CampaignInfo, CampaignStats)> {
    let id = &campaign_id(id)?;
    let r = campaign_rollups(env, id).await?;
    let stats = CampaignStats::from_rollups(id, &r.totals, &r.series, &r.links);
    let info = match store::campaign_listing(env, id).await? {
        Some(c) => CampaignInfo {
            id: c.id,
            name: c.name,
            status: c.status,
            waiting: None,
        },
        None if !r.totals.is_empty() => CampaignInfo {
            id: id.to_owned(),
            name: id.to_owned(),
            status: "tracked".into(),
            waiting: None,
        },
        None => return Err(ApiError::new(404, "not_found", "no such campaign")),
    };
    Ok((info, stats))
}

async fn chain_infos(env: &Env) -> ApiResult<Vec<ChainInfo>> {
    let (chains, runs) = store::dashboard_chains(env).await?;
    let mut runs_by_chain: HashMap<String, BTreeMap<String, u64>> = HashMap::new();
    for r in runs {
        runs_by_chain
            .entry(r.chain_id)
            .or_default()
            .insert(r.status, r.n.max(0) as u64);
    }
    let step_ids: Vec<String> = chains
        .iter()
        .flat_map(|c| (0..c.steps.clamp(0, 50) as usize).map(|n| step_stats_id(&c.id, n)))
        .collect();
    let totals = store::rollup_totals(env, &step_ids).await?;
    Ok(chains
        .into_iter()
        .map(|c| {
            let steps = (0..c.steps.clamp(0, 50) as usize)
                .map(|n| {
                    let id = step_stats_id(&c.id, n);
                    let rows = totals.get(&id).map(Vec::as_slice).unwrap_or(&[]);
                    CampaignStats::from_rollups(&id, rows, &[], &[])
                })
                .collect();
            ChainInfo {
                runs: runs_by_chain.remove(&c.id).unwrap_or_default(),
                id: c.id,
                name: c.name,
                status: c.status,
                trigger: c.trigger,
                steps,
            }
        })
        .collect())
}

async fn answers(env: &Env) -> ApiResult<Vec<AnswerShare>> {
    Ok(store::answer_counts(env)
        .await?
        .into_iter()
        .map(|a| AnswerShare {
            site: a.site_id,
            question: a.question,
            answer: a.answer,
            count: a.n.max(0) as u64,
        })
        .collect())
}

async fn segments(env: &Env) -> ApiResult<Vec<SegmentCount>> {
    Ok(store::rfm_counts(env)
        .await?
        .into_iter()
        .map(|(segment, buyers, churn_risk)| SegmentCount {
            segment,
            buyers,
            churn_risk,
        })
        .collect())
}

//! `/v1/campaigns/{id}`: create and edit (draft), test send (to the test list only), approve
//! (with a second confirmation above a configurable audience size), schedule, cancel, and read
//! status with send outcomes by reason.

use epistola_core::auth::Scope;
use epistola_core::campaign::{
    content_fingerprint, test_stats_id, transition, validate_campaign, Action, CampaignInput,
    Status,
};
use epistola_core::event::{CampaignChunk, SendJob, CAMPAIGN_CHUNK};
use epistola_core::ids::validate_id;
use epistola_worker_kit::auth::{require_any, require_scope};
use epistola_worker_kit::db::{enqueue_batch, int, text};
use serde::Deserialize;
use serde_json::json;
use worker::{Env, Request, Response};

use super::listing;
use crate::http::{self, read_json, ApiError, ApiResult};
use crate::store::{self, CampaignRow};
use crate::{bindings, config, random};

const MAX_CAMPAIGN_BYTES: usize = 64 * 1024;
/// Var: approving a campaign that can reach more contacts than this needs `confirm_audience`.
pub const APPROVAL_CONFIRM_ABOVE: &str = "APPROVAL_CONFIRM_ABOVE";
const DEFAULT_CONFIRM_ABOVE: i64 = 1000;

async fn load(env: &Env, id: &str) -> ApiResult<(CampaignRow, Status)> {
    let row = store::get_campaign(env, id)
        .await?
        .ok_or_else(|| ApiError::new(404, "not_found", "no such campaign"))?;
    let status = Status::parse(&row.status)
        .ok_or_else(|| ApiError::internal("campaign", "unknown status"))?;
    Ok((row, status))
}

/// A small optional JSON body: defaults when there is none.
async fn optional_json<T: serde::de::DeserializeOwned + Default>(
    req: &mut Request,
) -> ApiResult<T> {
    if http::content_type(req).starts_with("application/json") {
        read_json(req, 1024).await
    } else {
        Ok(T::default())
    }
}

/// The status after `action`, or `409` saying why not.
fn next(status: Status, action: Action) -> ApiResult<Status> {
    transition(status, action).ok_or_else(|| {
        ApiError::new(
            409,
            "invalid_status",
            format!(
                "cannot {} a campaign that is {}",
                action.as_str(),
                status.as_str()
            ),
        )
    })
}

/// Moves the campaign, failing with `409` if someone else moved it first.
async fn apply(
    env: &Env,
    id: &str,
    from: Status,
    to: Status,
    extra: (&str, &[wasm_bindgen::JsValue]),
    now: u64,
) -> ApiResult<()> {
    if store::set_campaign_status(env, id, from.as_str(), to.as_str(), extra, now).await? {
        Ok(())
    } else {
        Err(ApiError::new(
            409,
            "conflict",
            "the campaign changed meanwhile; read it and try again",
        ))
    }
}

/// `PUT /v1/campaigns/{id}`: creates a draft, or edits a draft or tested campaign (back to draft).
pub async fn put(mut req: Request, env: &Env, id: &str, now: u64) -> ApiResult<Response> {
    let editor = require_scope(&req, env, Scope::CampaignsWrite).await?;
    validate_id(id, false).map_err(|e| ApiError::field("campaign", e.to_string()))?;
    let input: CampaignInput = read_json(&mut req, MAX_CAMPAIGN_BYTES).await?;
    put_as(env, id, &input, &format!("token:{editor}"), now).await?;
    get_json(env, id, now).await.map(|v| http::json(200, &v))
}

/// Creates or edits (back to draft) campaign `id` as `editor` (`token:{id}` or `user:{id}`).
pub async fn put_as(
    env: &Env,
    id: &str,
    input: &CampaignInput,
    editor: &str,
    now: u64,
) -> ApiResult<()> {
    let valid = validate_campaign(input).map_err(ApiError::invalid)?;
    let Some(template) = store::get_template(env, &input.template).await? else {
        return Err(ApiError::field("template", "no such template"));
    };
    if input.sms_fallback_after_seconds.is_some() && template.sms.is_none() {
        return Err(ApiError::field(
            "sms_fallback_after_seconds",
            "the template has no SMS version to fall back to",
        ));
    }
    if store::get_site(env, &input.site).await?.is_none() {
        return Err(ApiError::field("site", "no such site"));
    }
    let row = CampaignRow {
        id: id.to_owned(),
        name: input.name.trim().to_owned(),
        site_id: input.site.clone(),
        template_id: input.template.clone(),
        purpose: input.purpose.clone(),
        segment: serde_json::to_string(&valid.segment)
            .map_err(|e| ApiError::internal("segment", e))?,
        send_window: match &input.send_window {
            Some(w) => Some(serde_json::to_string(w).map_err(|e| ApiError::internal("window", e))?),
            None => None,
        },
        anonymous: i64::from(input.anonymous),
        status: Status::Draft.as_str().to_owned(),
        audience_size: None,
        scheduled_at: None,
        cursor: String::new(),
        base_url: String::new(),
        sms_fallback_after: input
            .sms_fallback_after_seconds
            .and_then(|s| i64::try_from(s).ok()),
        created_at: now as i64,
        updated_at: now as i64,
        paused_reason: None,
        paused_at: None,
        allow_resend: i64::from(input.allow_resend),
        edited_by: Some(editor.to_owned()),
        last_test_run: None,
        last_test_at: None,
    };
    if !store::put_campaign(env, &row, now).await? {
        let (_, status) = load(env, id).await?;
        next(status, Action::Edit)?;
    }
    Ok(())
}

/// How many contacts got this campaign's content (a copy under another campaign) within the
/// duplicate-content window: they are skipped unless the campaign allows resending.
async fn already_received(env: &Env, c: &CampaignRow, now: u64) -> ApiResult<serde_json::Value> {
    let window = crate::pipeline::duplicate_content_seconds(env);
    let contacts = match store::get_template(env, &c.template_id).await? {
        Some(t) => {
            let fingerprint =
                content_fingerprint(&t.subject, &t.html, t.text.as_deref(), t.sms.as_deref());
            store::content_recipients(env, &fingerprint, &c.id, now.saturating_sub(window)).await?
        }
        None => 0,
    };
    Ok(
        json!({ "contacts": contacts, "within_days": window / 86_400, "skipped_unless_allow_resend": c.allow_resend == 0 }),
    )
}

async fn get_json(env: &Env, id: &str, now: u64) -> ApiResult<serde_json::Value> {
    let (c, _) = load(env, id).await?;
    let received = already_received(env, &c, now).await?;
    let mut outcomes = serde_json::Map::new();
    for (metric, label, n) in store::campaign_counters(env, id).await? {
        let entry = outcomes
            .entry(metric)
            .or_insert_with(|| json!({"total": 0, "by_reason": {}}));
        entry["total"] = json!(entry["total"].as_i64().unwrap_or(0) + n);
        if !label.is_empty() {
            entry["by_reason"][label] = json!(n);
        }
    }
    let waiting = store::campaign_waiting(env, id).await?;
    // Delivered on any channel (e-mail and SMS fallbacks).
    let sent: u64 = ["sent", "sms_sent"]
        .iter()
        .filter_map(|m| outcomes.get(*m).and_then(|o| o["total"].as_u64()))
        .sum();
    let delivery = json!({
        "state": waiting.state(&c.status),
        "waiting": waiting.total(),
        "next_attempt_at": waiting.next_attempt_at(),
        "groups": waiting.groups,
        "summary": waiting.summary(sent, now),
    });
    Ok(json!({
        "delivery": delivery,
        "campaign": {
            "id": c.id, "name": c.name, "site": c.site_id, "template": c.template_id, "purpose": c.purpose,
            "segment": serde_json::from_slice::<serde_json::Value>(c.segment.as_bytes()).unwrap_or_default(),
            "send_window": c.send_window.as_deref().and_then(|w| serde_json::from_slice::<serde_json::Value>(w.as_bytes()).ok()),
            "anonymous": c.anonymous == 1, "sms_fallback_after_seconds": c.sms_fallback_after, "status": c.status, "audience_size": c.audience_size,
            "scheduled_at": c.scheduled_at, "created_at": c.created_at, "updated_at": c.updated_at,
            "paused": c.paused_reason.as_ref().map(|reason| json!({"reason": reason, "since": c.paused_at})),
            "allow_resend": c.allow_resend == 1, "already_received": received,
        },
        "outcomes": outcomes,
    }))
}

/// `GET /v1/campaigns/{id}`.
pub async fn get(req: &Request, env: &Env, id: &str, now: u64) -> ApiResult<Response> {
    require_scope(req, env, Scope::CampaignsWrite).await?;
    get_json(env, id, now).await.map(|v| http::json(200, &v))
}

/// A test run just queued.
pub struct TestRun {
    pub status: Status,
    pub run: String,
    pub recipients: usize,
}

/// `POST /v1/campaigns/{id}/test`: sends the campaign to the test list, and only to it.
pub async fn test_send(req: &Request, env: &Env, id: &str, now: u64) -> ApiResult<Response> {
    require_scope(req, env, Scope::CampaignsWrite).await?;
    let t = send_test(env, id, http::public_base_url(req, env)?, now).await?;
    Ok(http::json(
        202,
        &json!({
            "status": t.status.as_str(),
            "test_run": t.run,
            "test_recipients": t.recipients,
            // Opens and clicks of test letters count here, never in the campaign's numbers.
            "test_stats": format!("/v1/stats/campaigns/{}", test_stats_id(&t.run)),
        }),
    ))
}

/// Queues the campaign's letters to the test list (the API's and the dashboard's button).
pub async fn send_test(env: &Env, id: &str, base_url: String, now: u64) -> ApiResult<TestRun> {
    let (_, status) = load(env, id).await?;
    let to = next(status, Action::Test)?;
    let recipients = store::test_list(env).await?;
    if recipients.is_empty() {
        return Err(ApiError::new(
            409,
            "no_test_list",
            "no contact is on the test list (set test_list: true on a contact)",
        ));
    }
    let run = random::id("").ok_or_else(|| ApiError::internal("test run", "no randomness"))?;
    let jobs: Vec<SendJob> = recipients
        .chunks(CAMPAIGN_CHUNK)
        .map(|chunk| {
            SendJob::CampaignChunkV1(CampaignChunk {
                campaign: id.to_owned(),
                contacts: chunk.to_vec(),
                test_run: Some(run.clone()),
                base_url: base_url.clone(),
                sms: false,
            })
        })
        .collect();
    enqueue_batch(env, bindings::SENDS, &jobs).await?;
    apply(
        env,
        id,
        status,
        to,
        (", last_test_run = ?5, last_test_at = ?4", &[text(&run)]),
        now,
    )
    .await?;
    Ok(TestRun {
        status: to,
        run,
        recipients: recipients.len(),
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApproveInput {
    #[serde(default)]
    confirm_audience: Option<i64>,
}

/// `POST /v1/campaigns/{id}/approve` (scope `campaigns:approve`): only a tested campaign. Above
/// `APPROVAL_CONFIRM_ABOVE` reachable contacts it takes two people: the approver must not be the
/// campaign's last editor, and must repeat the number.
pub async fn approve(mut req: Request, env: &Env, id: &str, now: u64) -> ApiResult<Response> {
    let approver = format!(
        "token:{}",
        require_scope(&req, env, Scope::CampaignsApprove).await?
    );
    let input: ApproveInput = optional_json(&mut req).await?;
    let a = approve_as(env, id, &approver, input.confirm_audience, now).await?;
    Ok(http::json(
        200,
        &json!({ "status": a.status.as_str(), "audience_size": a.audience, "already_received": a.already_received }),
    ))
}

/// An approval that went through.
pub struct Approved {
    pub status: Status,
    pub audience: i64,
    pub already_received: serde_json::Value,
}

/// What the approval screen shows before anyone approves: the reach, the threshold above which
/// it takes two people and the number repeated, who last edited it, who already got this content.
pub struct ApprovalFacts {
    pub campaign: CampaignRow,
    pub audience: i64,
    pub threshold: i64,
    pub already_received: serde_json::Value,
    pub subject: String,
}

/// The facts for the approval screen of campaign `id`.
pub async fn approval_facts(env: &Env, id: &str, now: u64) -> ApiResult<ApprovalFacts> {
    let (c, _) = load(env, id).await?;
    let audience = store::audience_upper_bound(env, &c.site_id, &c.purpose).await?;
    let already_received = already_received(env, &c, now).await?;
    let subject = store::get_template(env, &c.template_id)
        .await?
        .map(|t| t.subject)
        .unwrap_or_default();
    Ok(ApprovalFacts {
        campaign: c,
        audience,
        threshold: approval_threshold(env),
        already_received,
        subject,
    })
}

fn approval_threshold(env: &Env) -> i64 {
    config::number(env, APPROVAL_CONFIRM_ABOVE, DEFAULT_CONFIRM_ABOVE)
}

/// Approves campaign `id` as `approver` (`token:{id}` or `user:{id}`), who repeats the audience
/// size in `confirm` above the threshold.
pub async fn approve_as(
    env: &Env,
    id: &str,
    approver: &str,
    confirm: Option<i64>,
    now: u64,
) -> ApiResult<Approved> {
    let (c, status) = load(env, id).await?;
    let to = next(status, Action::Approve)?;
    let audience = store::audience_upper_bound(env, &c.site_id, &c.purpose).await?;
    let threshold = approval_threshold(env);
    if audience > threshold && c.edited_by.as_deref() == Some(approver) {
        return Err(ApiError::new(
            409,
            "second_approver_required",
            format!(
                "this campaign can reach up to {audience} contacts (above {threshold}): someone other than its last editor ({approver}) must approve it"
            ),
        ));
    }
    if audience > threshold && confirm != Some(audience) {
        let mut e = ApiError::new(
            409,
            "confirmation_required",
            format!("this campaign can reach up to {audience} contacts; approve again with confirm_audience: {audience}"),
        );
        e.fields
            .insert("confirm_audience".into(), format!("must be {audience}"));
        return Err(e);
    }
    apply(
        env,
        id,
        status,
        to,
        (", audience_size = ?5", &[int(audience)]),
        now,
    )
    .await?;
    Ok(Approved {
        status: to,
        audience,
        already_received: already_received(env, &c, now).await?,
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ScheduleInput {
    /// Unix seconds; now if absent.
    #[serde(default)]
    at: Option<u64>,
}

/// `POST /v1/campaigns/{id}/schedule` (scope `campaigns:approve`): the cron tick starts it at `at`.
pub async fn schedule(mut req: Request, env: &Env, id: &str, now: u64) -> ApiResult<Response> {
    require_scope(&req, env, Scope::CampaignsApprove).await?;
    let input: ScheduleInput = optional_json(&mut req).await?;
    let base_url = http::public_base_url(&req, env)?;
    let (to, at) = schedule_at(env, id, input.at, base_url, now).await?;
    Ok(http::json(
        200,
        &json!({ "status": to.as_str(), "scheduled_at": at }),
    ))
}

/// Schedules an approved campaign for `at` (now if `None`); the cron tick starts it.
pub async fn schedule_at(
    env: &Env,
    id: &str,
    at: Option<u64>,
    base_url: String,
    now: u64,
) -> ApiResult<(Status, u64)> {
    let at = at.unwrap_or(now);
    if at + 300 < now || at > now + 366 * 86_400 {
        return Err(ApiError::field(
            "at",
            "must be unix seconds from now to a year ahead",
        ));
    }
    let (_, status) = load(env, id).await?;
    let to = next(status, Action::Schedule)?;
    apply(
        env,
        id,
        status,
        to,
        (
            ", scheduled_at = ?5, base_url = ?6, cursor = ''",
            &[int(at as i64), text(&base_url)],
        ),
        now,
    )
    .await?;
    Ok((to, at))
}

/// `GET /v1/campaigns?status=&site=`: one page, newest first.
pub async fn list(req: &Request, env: &Env) -> ApiResult<Response> {
    require_scope(req, env, Scope::CampaignsWrite).await?;
    let page = listing::requested(req)?;
    let [status, site] = listing::params(req, ["status", "site"])?;
    let mut errors = epistola_core::track::FieldErrors::new();
    if let Some(s) = status.as_deref().filter(|s| Status::parse(s).is_none()) {
        let known: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        errors.insert(
            "status".into(),
            format!("\"{s}\" is not one of {}", known.join(", ")),
        );
    }
    if let Some(Err(e)) = site.as_deref().map(|s| validate_id(s, false)) {
        errors.insert("site".into(), e.to_string());
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let rows = store::list_campaigns(env, status.as_deref(), site.as_deref(), &page).await?;
    Ok(listing::answer("campaigns", rows, page.limit))
}

/// `DELETE /v1/campaigns/{id}`: only a draft or tested campaign (its test letters' stats stay).
pub async fn delete(req: &Request, env: &Env, id: &str) -> ApiResult<Response> {
    require_scope(req, env, Scope::CampaignsWrite).await?;
    listing::deletion(store::delete_campaign_draft(env, id).await?, "campaign", id)
}

/// `POST /v1/campaigns/{id}/cancel` (`campaigns:write` or `campaigns:approve`): stops a campaign
/// at any unfinished status; queued chunks find it cancelled and send nothing more.
pub async fn cancel(req: &Request, env: &Env, id: &str, now: u64) -> ApiResult<Response> {
    require_any(req, env, &CANCEL_SCOPES).await?;
    let to = cancel_now(env, id, now).await?;
    Ok(http::json(200, &json!({ "status": to.as_str() })))
}

/// Who may stop a campaign: those who write it and those who approve (and schedule) it.
pub const CANCEL_SCOPES: [Scope; 2] = [Scope::CampaignsWrite, Scope::CampaignsApprove];

/// Cancels campaign `id` at any unfinished status.
pub async fn cancel_now(env: &Env, id: &str, now: u64) -> ApiResult<Status> {
    let (_, status) = load(env, id).await?;
    let to = next(status, Action::Cancel)?;
    apply(env, id, status, to, ("", &[]), now).await?;
    Ok(to)
}

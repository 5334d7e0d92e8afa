//! `/dashboard`: the marketer dashboard. Pages are rendered by `epistola-dashboard` from rollups
//! (a bounded number of rows per page, whatever the event count); this module signs in, reads and
//! answers. Sign-in and sign-out are POSTs that must come from our own origin; the session cookie
//! is `SameSite=Strict`, so no other site can make a signed-in request.

use std::collections::{BTreeMap, HashMap};

use epistola_core::auth::{has_scope, hash_api_token, Scope};
use epistola_core::chain::step_stats_id;
use epistola_core::ids::validate_id;
use epistola_core::stats::CampaignStats;
use epistola_core::token::Purpose;
use epistola_core::url::{origin_of, query_value};
use epistola_dashboard::{self as page, AnswerShare, CampaignInfo, ChainInfo, SegmentCount};
use epistola_worker_kit::db::{
    campaign_rollups, live_token, live_token_scopes_by_id, token_scopes,
};
use worker::{Env, Method, Request, Response};

use crate::http::{self, ApiError, ApiResult};
use crate::{config, store};

/// Routes everything under `/dashboard`.
pub async fn dispatch(req: Request, env: &Env, rest: &[&str], now: u64) -> Response {
    let method = req.method();
    let result = match (rest, method) {
        (["session"], Method::Post) => sign_in(req, env, now).await,
        (["logout"], Method::Post) => sign_out(&req),
        (["session" | "logout"], _) => return http::method_not_allowed("POST"),
        (_, Method::Get | Method::Head) => match signed_in(&req, env, now).await {
            Ok(true) => page_for(&req, env, rest, now).await,
            Ok(false) if rest.is_empty() => Ok(http::html_document(200, page::sign_in(None))),
            Ok(false) => Ok(see_other("/dashboard", None)),
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

async fn page_for(req: &Request, env: &Env, rest: &[&str], now: u64) -> ApiResult<Response> {
    match rest {
        [] => {
            let rows = campaign_rows(env).await?;
            Ok(html(page::campaigns(&rows)))
        }
        ["campaigns.csv"] => {
            let rows = campaign_rows(env).await?;
            Ok(http::csv(page::campaigns_csv(&rows), "campaigns.csv"))
        }
        ["campaigns", id] => {
            let (mut info, stats) = one_campaign(env, id).await?;
            // Only the page says what waits; the CSVs and the comparison do not need the read.
            if info.status != "tracked" {
                let sent = stats.delivery.values().map(|d| d.sent).sum();
                info.waiting = store::campaign_waiting(env, &info.id)
                    .await?
                    .summary(sent, now);
            }
            Ok(html(page::campaign(&info, &stats)))
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

fn html(document: String) -> Response {
    http::html_document(200, document)
}

fn see_other(location: &str, cookie: Option<&str>) -> Response {
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

/// Does the request carry a live session: a signed, unexpired session token whose API token is
/// still live with `stats:read` (revoking the token ends its sessions at once)?
async fn signed_in(req: &Request, env: &Env, now: u64) -> ApiResult<bool> {
    let cookies = http::header(req, "Cookie");
    let Some(session) = page::session_token(cookies.as_deref()) else {
        return Ok(false);
    };
    let Ok(claims) = config::verify_token(env, session, Purpose::DashboardSession, now) else {
        return Ok(false);
    };
    Ok(live_token_scopes_by_id(env, &claims.campaign)
        .await?
        .is_some_and(|scopes| has_scope(&scopes, Scope::StatsRead)))
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

async fn sign_in(mut req: Request, env: &Env, now: u64) -> ApiResult<Response> {
    if !same_origin(&req) {
        return Ok(http::page(
            403,
            "Sign in",
            "<p>Sign in from the dashboard page itself.</p>",
        ));
    }
    let ip = http::header(&req, "CF-Connecting-IP").unwrap_or_default();
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
        return Ok(resp);
    }
    let token = match http::read_form(&mut req, http::MAX_FORM_BYTES).await {
        Ok(form) => form.get_field("token").unwrap_or_default(),
        Err(e) if e.status == 413 => return Err(e),
        Err(_) => String::new(),
    };
    let token = token.trim();
    let refused = |why: &str| Ok(http::html_document(401, page::sign_in(Some(why))));
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
            let session = config::sign_contact_token(
                env,
                Purpose::DashboardSession,
                &id,
                "",
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
    // Links percent-encode ids (`a:b` is `a%3Ab` in a path).
    let id = &epistola_core::url::percent_decode(id)
        .ok_or_else(|| ApiError::field("campaign", "is not a valid path segment"))?;
    validate_id(id, false).map_err(|e| ApiError::field("campaign", e.to_string()))?;
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

//! A campaign's lifecycle in the browser: the "next step" section of the campaign page (test,
//! approve, schedule with a countdown, cancel — only the buttons the viewer's role and the status
//! allow) and the approval screen (reach, the previous send, who edited, the last test, and the
//! second person and the repeated number above the threshold). Every button is a plain form POST.

use std::fmt::Write as _;

use epistola_core::html::escape;

use crate::{layout, path_id};

/// The campaign's last test letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastTest {
    /// `YYYY-MM-DD HH:MM` UTC.
    pub at: String,
    /// Their stats id (`test:{run}`): test letters never count in the campaign's numbers.
    pub stats_id: String,
}

/// What the campaign page's next-step section needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NextStep {
    pub status: String,
    /// The viewer holds `campaigns:write` (test, cancel).
    pub can_write: bool,
    /// The viewer holds `campaigns:approve` (approve, schedule, cancel).
    pub can_approve: bool,
    /// Contacts on the test list.
    pub test_list: usize,
    pub last_test: Option<LastTest>,
    /// A scheduled campaign's start: `YYYY-MM-DD HH:MM` UTC and seconds from now.
    pub starts: Option<(String, i64)>,
    /// Why the last button was refused, in words.
    pub refused: Option<String>,
}

/// "in 9 minutes", "in 2 hours 5 minutes", "any moment now".
pub fn countdown(seconds: i64) -> String {
    if seconds < 60 {
        return "any moment now (at the next tick)".into();
    }
    let minutes = (seconds + 59) / 60;
    let (h, m) = (minutes / 60, minutes % 60);
    let unit = |n: i64, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    match (h, m) {
        (0, m) => format!("in {}", unit(m, "minute")),
        (h, 0) => format!("in {}", unit(h, "hour")),
        (h, m) => format!("in {} {}", unit(h, "hour"), unit(m, "minute")),
    }
}

fn button(id: &str, action: &str, label: &str, extra: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/dashboard/campaigns/{}/{action}\" class=\"inline\">{extra}<button>{}</button></form> ",
        path_id(id),
        escape(label)
    )
}

fn last_test_line(t: &LastTest) -> String {
    format!(
        "<p id=\"last-test\">Last test letters: {} UTC · <a href=\"/dashboard/campaigns/{}\">their opens and clicks</a> (never counted in the campaign's numbers)</p>",
        escape(&t.at),
        path_id(&t.stats_id)
    )
}

/// The next-step section of campaign `id`'s page.
pub fn next_step(id: &str, n: &NextStep) -> String {
    let mut out =
        String::from("<section aria-labelledby=\"next-step\"><h2 id=\"next-step\">Next step</h2>");
    if let Some(why) = &n.refused {
        let _ = write!(
            out,
            "<p id=\"action-error\" class=\"err\" role=\"alert\">{}</p>",
            escape(why)
        );
    }
    let status = n.status.as_str();
    let mut offered = false;
    if matches!(status, "draft" | "tested") && n.can_write {
        offered = true;
        let _ = write!(
            out,
            "<p><a href=\"/dashboard/campaigns/{}/edit\">Edit the draft</a> (an edit makes a tested campaign a draft again)</p>",
            path_id(id)
        );
        if n.test_list == 0 {
            out.push_str("<p class=\"notice\">No contact is on the test list yet: mark one (<code>test_list: true</code>) to send a test.</p>");
        } else {
            let who = if n.test_list == 1 {
                "1 contact".to_owned()
            } else {
                format!("{} contacts", n.test_list)
            };
            out.push_str(&button(
                id,
                "test",
                &format!("Send a test to the test list ({who})"),
                "",
            ));
        }
    }
    if let Some(t) = &n.last_test {
        out.push_str(&last_test_line(t));
    }
    match status {
        "draft" => out.push_str("<p class=\"muted\">A campaign is approved only after a test.</p>"),
        "tested" if n.can_approve => {
            offered = true;
            let _ = write!(
                out,
                "<p><a href=\"/dashboard/campaigns/{}/approve\">Review and approve</a></p>",
                path_id(id)
            );
        }
        "approved" if n.can_approve => {
            offered = true;
            out.push_str(&button(
                id,
                "schedule",
                "Schedule",
                "<label for=\"start-in\">Start sending in</label> <input id=\"start-in\" name=\"minutes\" type=\"number\" \
min=\"0\" max=\"525600\" value=\"10\" inputmode=\"numeric\" size=\"6\"> minutes ",
            ));
            out.push_str("<p class=\"muted\">Until it starts, a scheduled campaign can be cancelled here.</p>");
        }
        "scheduled" => {
            if let Some((at, seconds)) = &n.starts {
                let _ = write!(
                    out,
                    "<p id=\"countdown\" class=\"notice\" role=\"status\">Sending starts at {} UTC, {}.</p>",
                    escape(at),
                    escape(&countdown(*seconds))
                );
            }
        }
        "done" | "cancelled" => {
            let _ = write!(
                out,
                "<p class=\"muted\">Nothing left to do: this campaign is {}.</p>",
                escape(status)
            );
        }
        _ => {}
    }
    if !matches!(status, "done" | "cancelled") && (n.can_write || n.can_approve) {
        offered = true;
        out.push_str(&button(id, "cancel", "Cancel the campaign", ""));
    }
    if !offered && !matches!(status, "done" | "cancelled") {
        out.push_str("<p class=\"muted\">Your role reads this campaign; it does not move it.</p>");
    }
    out.push_str("</section>");
    out
}

/// What the approval screen shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Approval {
    pub id: String,
    pub name: String,
    pub status: String,
    pub subject: String,
    /// Contacts with consent for the purpose who are not suppressed: segment rules and send-time
    /// checks only narrow this.
    pub audience: i64,
    /// Above this, two people and the repeated number.
    pub threshold: i64,
    /// The last campaign sent to this site and purpose: its name and reach.
    pub previous: Option<(String, i64)>,
    /// Contacts who got this content within `within_days` (skipped unless resending is allowed).
    pub already_received: i64,
    pub within_days: i64,
    pub allow_resend: bool,
    pub edited_by: Option<String>,
    /// The viewer is the last editor.
    pub viewer_edited: bool,
    pub last_test: Option<LastTest>,
    /// Why the last approval was refused.
    pub refused: Option<String>,
}

fn difference(now: i64, before: i64) -> String {
    let d = now - before;
    let sign = if d > 0 { "+" } else { "" };
    if before > 0 {
        format!(
            "{sign}{d} ({sign}{:.0} %)",
            d as f64 * 100.0 / before as f64
        )
    } else {
        format!("{sign}{d}")
    }
}

/// The approval screen of a campaign.
pub fn approval(a: &Approval) -> String {
    let mut body = String::new();
    let back = format!(
        "<p><a href=\"/dashboard/campaigns/{}\">Back to the campaign</a></p>",
        path_id(&a.id)
    );
    let mut rows = vec![
        ("Subject", escape(&a.subject)),
        (
            "Can reach up to",
            format!(
                "<strong id=\"reach\">{}</strong> contacts (consent for this purpose, not suppressed; the segment and the send-time checks only narrow it)",
                a.audience
            ),
        ),
    ];
    rows.push((
        "The last send",
        match &a.previous {
            Some((name, n)) => format!(
                "{} reached {n}: <span id=\"difference\">{}</span>",
                escape(name),
                escape(&difference(a.audience, *n))
            ),
            None => "no earlier campaign of this site and purpose".into(),
        },
    ));
    rows.push((
        "Already received this content",
        format!(
            "{} contacts in the last {} days{}",
            a.already_received,
            a.within_days,
            if a.allow_resend {
                " (they get it again: resending is allowed)"
            } else {
                " (they are skipped)"
            }
        ),
    ));
    rows.push((
        "Last edited by",
        escape(a.edited_by.as_deref().unwrap_or("unknown")),
    ));
    rows.push((
        "Last test",
        match &a.last_test {
            Some(t) => format!(
                "{} UTC · <a href=\"/dashboard/campaigns/{}\">its opens and clicks</a>",
                escape(&t.at),
                path_id(&t.stats_id)
            ),
            None => "none".into(),
        },
    ));
    body.push_str("<table class=\"facts\"><tbody>");
    for (k, v) in rows {
        let _ = write!(body, "<tr><th scope=\"row\">{k}</th><td>{v}</td></tr>");
    }
    body.push_str("</tbody></table>");
    let two_people = a.audience > a.threshold;
    let form_shown = a.status == "tested" && !(two_people && a.viewer_edited);
    // A refusal sits beside the number when there is one to type, above everything otherwise.
    if let (Some(why), false) = (&a.refused, form_shown && two_people) {
        let _ = write!(
            body,
            "<p id=\"approve-error\" class=\"err\" role=\"alert\">{}</p>",
            escape(why)
        );
    }
    if a.status != "tested" {
        let _ = write!(
            body,
            "<p class=\"notice\" role=\"status\">This campaign is {}: only a tested campaign can be approved.</p>",
            escape(&a.status)
        );
    } else if two_people && a.viewer_edited {
        let _ = write!(
            body,
            "<p id=\"second-approver\" class=\"notice\" role=\"alert\">You last edited this campaign, and it can reach more than {} contacts: someone else must approve it.</p>",
            a.threshold
        );
    } else {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/dashboard/campaigns/{}/approve\">",
            path_id(&a.id)
        );
        if two_people {
            let invalid = if a.refused.is_some() {
                " aria-describedby=\"confirm_audience-error\" aria-invalid=\"true\""
            } else {
                ""
            };
            let _ = write!(
                body,
                "<p><label for=\"confirm_audience\">It can reach more than {} contacts. Type the number it can reach ({}) to confirm</label><br>\
<input id=\"confirm_audience\" name=\"confirm_audience\" inputmode=\"numeric\" required autocomplete=\"off\" size=\"10\"{invalid}></p>",
                a.threshold, a.audience
            );
            if let Some(why) = &a.refused {
                let _ = write!(
                    body,
                    "<p id=\"confirm_audience-error\" class=\"err\" role=\"alert\">{}</p>",
                    escape(why)
                );
            }
        }
        body.push_str("<button>Approve</button></form>");
    }
    body.push_str(&back);
    layout(&format!("Approve {}", a.name), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(status: &str, can_write: bool, can_approve: bool) -> NextStep {
        NextStep {
            status: status.into(),
            can_write,
            can_approve,
            test_list: 2,
            ..NextStep::default()
        }
    }

    #[test]
    fn buttons_follow_the_status_and_the_role() {
        // (status, write, approve, offered actions)
        let cases: &[(&str, bool, bool, &[&str])] = &[
            ("draft", true, false, &["test", "cancel"]),
            ("draft", false, true, &["cancel"]),
            ("tested", true, true, &["test", "approve", "cancel"]),
            ("tested", false, true, &["approve", "cancel"]),
            ("approved", true, true, &["schedule", "cancel"]),
            ("approved", false, false, &[]),
            ("scheduled", true, false, &["cancel"]),
            ("sending", true, true, &["cancel"]),
            ("paused", false, true, &["cancel"]),
            ("sending", false, false, &[]),
            ("done", true, true, &[]),
            ("cancelled", true, true, &[]),
        ];
        for (status, w, a, want) in cases {
            let html = next_step("winter-drop", &step(status, *w, *a));
            for action in ["test", "approve", "schedule", "cancel"] {
                let offered =
                    html.contains(&format!("/dashboard/campaigns/winter-drop/{action}\""));
                assert_eq!(
                    offered,
                    want.contains(&action),
                    "{status} w={w} a={a} {action}: {html}"
                );
            }
            let reads_only = html.contains("Your role reads this campaign");
            assert_eq!(
                reads_only,
                want.is_empty() && !matches!(*status, "done" | "cancelled"),
                "{status}"
            );
        }
    }

    #[test]
    fn a_scheduled_campaign_counts_down_and_an_empty_test_list_says_so() {
        let mut n = step("scheduled", true, true);
        n.starts = Some(("2026-12-04 21:30".into(), 9 * 60 + 5));
        let html = next_step("c", &n);
        assert!(
            html.contains("Sending starts at 2026-12-04 21:30 UTC, in 10 minutes."),
            "{html}"
        );
        let mut n = step("draft", true, false);
        n.test_list = 0;
        n.refused = Some("no <contact> on the test list".into());
        let html = next_step("c", &n);
        assert!(!html.contains("/test\""));
        assert!(html.contains("No contact is on the test list"));
        assert!(
            html.contains("no &lt;contact&gt; on the test list"),
            "escaped: {html}"
        );
    }

    #[test]
    fn countdown_words() {
        for (s, want) in [
            (0, "any moment now (at the next tick)"),
            (60, "in 1 minute"),
            (61, "in 2 minutes"),
            (3600, "in 1 hour"),
            (3600 + 300, "in 1 hour 5 minutes"),
            (2 * 3600 + 60, "in 2 hours 1 minute"),
        ] {
            assert_eq!(countdown(s), want, "{s}");
        }
    }

    fn screen() -> Approval {
        Approval {
            id: "winter drop".into(),
            name: "Winter <drop>".into(),
            status: "tested".into(),
            subject: "Winter is coming".into(),
            audience: 1200,
            threshold: 1000,
            previous: Some(("Autumn".into(), 1000)),
            already_received: 3,
            within_days: 30,
            edited_by: Some("user:u1".into()),
            ..Approval::default()
        }
    }

    #[test]
    fn the_approval_screen_asks_for_the_number_above_the_threshold() {
        let html = approval(&screen());
        assert!(html.contains("action=\"/dashboard/campaigns/winter%20drop/approve\""));
        assert!(html.contains("id=\"confirm_audience\""));
        assert!(html.contains("+200 (+20 %)"), "{html}");
        assert!(html.contains("Winter &lt;drop&gt;"));
        let small = approval(&Approval {
            audience: 10,
            ..screen()
        });
        assert!(
            !small.contains("confirm_audience"),
            "no number below the threshold"
        );
        assert!(small.contains("<button>Approve</button>"));
    }

    #[test]
    fn the_last_editor_gets_no_approve_button_above_the_threshold() {
        let html = approval(&Approval {
            viewer_edited: true,
            ..screen()
        });
        assert!(html.contains("id=\"second-approver\""));
        assert!(!html.contains("<button>Approve</button>"));
        let below = approval(&Approval {
            viewer_edited: true,
            audience: 5,
            ..screen()
        });
        assert!(
            below.contains("<button>Approve</button>"),
            "one person may approve a small send"
        );
        let done = approval(&Approval {
            status: "approved".into(),
            ..screen()
        });
        assert!(!done.contains("<button>Approve</button>"));
        let refused = approval(&Approval {
            refused: Some("must be 1200".into()),
            ..screen()
        });
        assert!(refused.contains("aria-invalid=\"true\""));
        assert!(refused.contains("id=\"confirm_audience-error\""));
        let editor = approval(&Approval {
            viewer_edited: true,
            refused: Some("someone else must".into()),
            ..screen()
        });
        assert!(editor.contains("id=\"approve-error\""), "{editor}");
        assert!(!editor.contains("confirm_audience-error"));
    }
}

//! The relabel rules run as SQL (migrations/0018_relabel.sql) in the transaction that stores a
//! click; their numbers must be core's. The vectors (tests/vectors/relabel.json) check the logic
//! against `relabel_clicks` end to end; this checks every number the SQL spells out.
#![allow(clippy::expect_used)] // a missing migration should fail loudly

use epistola_core::classify::{
    burst_threshold, BURST_MIN_LINKS, BURST_WINDOW_SECONDS, HONEYPOT_WINDOW_SECONDS,
};
use epistola_core::track::HONEYPOT_LINK;

fn migration() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../migrations/0018_relabel.sql"
    );
    std::fs::read_to_string(path).expect("migration readable")
}

#[test]
fn the_relabel_sql_uses_cores_numbers() {
    let sql = migration();
    let trigger = &sql[sql.find("CREATE TRIGGER events_count").expect("trigger")..];
    let trigger = &trigger[..trigger.find("END;").expect("end")];
    let window = |w: u64| format!("NEW.occurred_at - {w} AND NEW.occurred_at + {w}");
    let around = |w: u64| format!("events.occurred_at - {w} AND events.occurred_at + {w}");
    for w in [HONEYPOT_WINDOW_SECONDS, BURST_WINDOW_SECONDS] {
        assert_eq!(trigger.matches(&window(w)).count(), 1, "{w}");
        assert_eq!(trigger.matches(&around(w)).count(), 1, "{w}");
    }
    assert_eq!(
        trigger
            .matches(&format!("link_index <> {HONEYPOT_LINK}"))
            .count(),
        2
    );
    assert_eq!(
        trigger
            .matches(&format!("link_index = {HONEYPOT_LINK}"))
            .count(),
        1
    );
    // burst_threshold(links) = MIN(BURST_MIN_LINKS, MAX(2, links)), spelled in SQL.
    assert!(trigger.contains(&format!("MIN({BURST_MIN_LINKS}, MAX(2, (SELECT COUNT(*)")));
    assert_eq!(
        (burst_threshold(0), burst_threshold(2), burst_threshold(9)),
        (2, 2, BURST_MIN_LINKS)
    );
}

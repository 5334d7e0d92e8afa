//! Imported suppression lists, as rules: which reasons a list may give, how a pasted list or an
//! uploaded CSV is read into rows, and how each row becomes the SHA-256 hash every send checks
//! (only hashes are stored). The API (`POST /v1/suppressions/import`) and the dashboard's form
//! share these, so a list gets the same answer whichever way it comes in.

use crate::capture::normalize_email;
use crate::contact::address_hash;

/// The reasons an imported list may give for its addresses.
pub const IMPORT_REASONS: [&str; 4] = ["imported", "unsubscribed", "bounced", "complained"];

/// The most rows one import takes.
pub const MAX_LIST_ROWS: usize = 100_000;

/// How the rows of a list name their addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// Addresses, normalised and hashed here.
    Plain,
    /// SHA-256 hex of normalised addresses, as another sender exports them.
    Sha256,
}

impl ImportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "plain" => Some(Self::Plain),
            "sha256" => Some(Self::Sha256),
            _ => None,
        }
    }
}

/// Is `reason` one an import may give?
pub fn is_import_reason(reason: &str) -> bool {
    IMPORT_REASONS.contains(&reason)
}

/// Where an imported list came from, as typed (e.g. the sender it was exported from): blank is
/// none; at most 100 characters, no control characters.
pub fn import_source(typed: &str) -> Result<Option<&str>, &'static str> {
    let source = typed.trim();
    if source.chars().count() > 100 || source.chars().any(char::is_control) {
        return Err("at most 100 characters, without control characters");
    }
    Ok((!source.is_empty()).then_some(source))
}

/// A list read into hashes: sorted and without repeats, and the rows refused with why.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HashedList {
    pub hashes: Vec<String>,
    /// `(row, why)`, rows counted from 1 as the caller numbered them.
    pub rejected: Vec<(usize, &'static str)>,
}

/// Hashes each `(row, address)`; a row that is no address (or, for `Sha256`, no 64-hex hash) is
/// refused with its number.
pub fn hash_rows<'a>(
    rows: impl IntoIterator<Item = (usize, &'a str)>,
    format: ImportFormat,
) -> HashedList {
    let mut list = HashedList::default();
    for (row, value) in rows {
        let value = value.trim();
        let hash = match format {
            ImportFormat::Sha256 => {
                let h = value.to_ascii_lowercase();
                (h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then_some(h)
                    .ok_or("must be 64 hex characters")
            }
            ImportFormat::Plain => normalize_email(value).map(|e| address_hash(&e)),
        };
        match hash {
            Ok(h) => list.hashes.push(h),
            Err(why) => list.rejected.push((row, why)),
        }
    }
    list.hashes.sort_unstable();
    list.hashes.dedup();
    list
}

/// The rows of a pasted list or an uploaded CSV, numbered by line: one address per line, or a
/// CSV's first column (`,`, `;` or tab separated, quotes taken off). Blank lines are skipped, and
/// a first line that names the column (`email`, `address`, `hash`, …) is a header, not a row.
pub fn list_rows(text: &str) -> Vec<(usize, &str)> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let first = line
            .split([',', ';', '\t'])
            .next()
            .unwrap_or_default()
            .trim()
            .trim_matches('"')
            .trim();
        if first.is_empty() || (i == 0 && is_header(first)) {
            continue;
        }
        rows.push((i + 1, first));
    }
    rows
}

fn is_header(cell: &str) -> bool {
    let cell = cell.trim_start_matches('\u{feff}').to_ascii_lowercase();
    matches!(
        cell.as_str(),
        "email" | "e-mail" | "email address" | "email_address" | "address" | "hash" | "sha256"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_a_pasted_list_or_a_csv() {
        let cases: &[(&str, &[(usize, &str)])] = &[
            (
                "ann@x.example\n\nbob@y.example\n",
                &[(1, "ann@x.example"), (3, "bob@y.example")],
            ),
            // A CSV export: header, quoted first column, other columns ignored.
            (
                "\u{feff}Email,Reason\n\"ann@x.example\",bounce\nbob@y.example;spam\r\n",
                &[(2, "ann@x.example"), (3, "bob@y.example")],
            ),
            ("hash\tsource\nABCDEF\tesp\n", &[(2, "ABCDEF")]),
            // A header is only ever the first line; later it is a (bad) row.
            ("a@x.example\nemail\n", &[(1, "a@x.example"), (2, "email")]),
            ("", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(list_rows(text), *want, "{text:?}");
        }
    }

    #[test]
    fn rows_become_sorted_unique_hashes_or_numbered_refusals() {
        let ann = address_hash("ann@x.example");
        let list = hash_rows(
            [
                (1, " Ann@X.example "),
                (2, "not an address"),
                (3, "ann@x.example"),
            ],
            ImportFormat::Plain,
        );
        assert_eq!(list.hashes, vec![ann.clone()]);
        assert_eq!(list.rejected.len(), 1);
        assert_eq!(list.rejected[0].0, 2);

        let upper = ann.to_ascii_uppercase();
        let list = hash_rows(
            [(1, upper.as_str()), (2, "abc"), (3, &ann[..63])],
            ImportFormat::Sha256,
        );
        assert_eq!(list.hashes, vec![ann]);
        assert_eq!(
            list.rejected,
            vec![
                (2, "must be 64 hex characters"),
                (3, "must be 64 hex characters")
            ]
        );
    }

    #[test]
    fn formats_and_reasons() {
        assert_eq!(ImportFormat::parse("plain"), Some(ImportFormat::Plain));
        assert_eq!(ImportFormat::parse("sha256"), Some(ImportFormat::Sha256));
        assert_eq!(ImportFormat::parse("SHA256"), None);
        assert!(is_import_reason("bounced"));
        assert!(!is_import_reason("lifted"));
        assert_eq!(import_source("  Old ESP "), Ok(Some("Old ESP")));
        assert_eq!(import_source(" "), Ok(None));
        assert!(import_source("a\nb").is_err());
        assert!(import_source(&"x".repeat(101)).is_err());
    }
}

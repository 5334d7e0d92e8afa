//! The list APIs (`GET /v1/contacts`, `/v1/templates`, `/v1/campaigns`, `/v1/chains`): keyset
//! pages, newest first, and the contact search query. Pure: the adapter turns a `Page` and a
//! `ContactSearch` into SQL.
//!
//! Pages are keyset, not offset: the next page starts after the last row's `(created_at, id)`, so
//! page 10,000 of a million contacts costs what page 1 costs, and a row created meanwhile never
//! shifts a page (it appears at the top, before page 1).

use crate::track::FieldErrors;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 200;
/// Most terms in one contact search, and the longest term.
pub const MAX_TERMS: usize = 8;
pub const MAX_TERM_LEN: usize = 100;

/// Where a page starts: after this row in `(created_at DESC, id DESC)` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: String,
}

impl Cursor {
    /// `{created_at}:{id}`: readable, and ids may themselves hold `:` (split at the first).
    pub fn encode(&self) -> String {
        format!("{}:{}", self.created_at, self.id)
    }

    pub fn parse(s: &str) -> Option<Cursor> {
        let (at, id) = s.split_once(':')?;
        let created_at = at.parse::<i64>().ok().filter(|n| *n >= 0)?;
        crate::ids::validate_id(id, false).ok()?;
        Some(Cursor {
            created_at,
            id: id.to_owned(),
        })
    }
}

/// One requested page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub after: Option<Cursor>,
}

/// `?limit=&cursor=` as given (already percent-decoded); errors name the parameter.
pub fn page(limit: Option<&str>, cursor: Option<&str>) -> Result<Page, FieldErrors> {
    let mut errors = FieldErrors::new();
    let limit = match limit.filter(|l| !l.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                errors.insert("limit".into(), format!("must be 1-{MAX_LIMIT}"));
                DEFAULT_LIMIT
            }
        },
    };
    let after = match cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            let parsed = Cursor::parse(c);
            if parsed.is_none() {
                errors.insert(
                    "cursor".into(),
                    "must be a next_cursor from an earlier page".into(),
                );
            }
            parsed
        }
    };
    if errors.is_empty() {
        Ok(Page { limit, after })
    } else {
        Err(errors)
    }
}

/// The rows of one page from `limit + 1` fetched rows, and the cursor of the next page if the
/// extra row shows there is one.
pub fn split_page<T>(
    mut rows: Vec<T>,
    limit: usize,
    key: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<String>) {
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let next = rows.last().map(|r| key(r).encode());
    (rows, next)
}

/// Contact columns a search term may name (`locale:uk`): the standard attributes and the two
/// states; any other name is a custom field.
pub fn is_contact_column(name: &str) -> bool {
    crate::contact::STANDARD.contains(&name) || matches!(name, "status" | "origin")
}

/// A contact search, from `?query=`: words are ANDed.
/// - `tag:vip` — has the tag;
/// - `locale:uk`, `city:"New York"` — a column or custom field equals the value exactly;
/// - any other word — found in the address or the name (`olena`, `@example.org`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactSearch {
    /// Lower-cased words to find in the address or the name.
    pub words: Vec<String>,
    pub tags: Vec<String>,
    /// (column or field name, value). Names are `[a-z0-9_]`, so they can name a JSON path.
    pub equals: Vec<(String, String)>,
}

impl ContactSearch {
    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.tags.is_empty() && self.equals.is_empty()
    }
}

/// Splits at spaces; `"…"` keeps spaces in a value (`city:"New York"`).
fn terms(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for ch in query.chars() {
        match ch {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Parses `?query=`; the error says what is wrong with which term (for the `query` field).
pub fn parse_contact_search(query: &str) -> Result<ContactSearch, String> {
    let terms = terms(query);
    if terms.len() > MAX_TERMS {
        return Err(format!("at most {MAX_TERMS} terms"));
    }
    let mut search = ContactSearch::default();
    for term in terms {
        if term.chars().count() > MAX_TERM_LEN {
            return Err(format!("a term may have at most {MAX_TERM_LEN} characters"));
        }
        match term.split_once(':') {
            Some(("tag", "")) => return Err("tag: needs a tag (tag:vip)".into()),
            Some(("tag", tag)) => {
                crate::ids::validate_id(tag, false).map_err(|e| format!("tag:{tag}: a tag {e}"))?;
                search.tags.push(tag.to_owned());
            }
            Some((name, value)) if is_name(name) => {
                if value.is_empty() {
                    return Err(format!("{name}: needs a value ({name}:value)"));
                }
                // Addresses are stored normalised; so is the one searched for.
                let value = if name == "email" {
                    value.to_lowercase()
                } else {
                    value.to_owned()
                };
                search.equals.push((name.to_owned(), value));
            }
            _ => search.words.push(term.to_lowercase()),
        }
    }
    Ok(search)
}

/// The word with its first letter in upper case: SQLite's `lower()` folds ASCII only, so a
/// Cyrillic name ("Олена") is also looked for as typed at the start of a name ("олена" → "Олена").
pub fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_default_bound_and_name_the_bad_parameter() {
        type Want = Result<(usize, Option<(i64, &'static str)>), &'static [&'static str]>;
        let cases: &[(Option<&str>, Option<&str>, Want)] = &[
            (None, None, Ok((DEFAULT_LIMIT, None))),
            (Some(""), Some(""), Ok((DEFAULT_LIMIT, None))),
            (Some("1"), None, Ok((1, None))),
            (
                Some("200"),
                Some("1700000000:c_a:b"),
                Ok((200, Some((1_700_000_000, "c_a:b")))),
            ),
            (Some("0"), None, Err(&["limit"])),
            (Some("201"), None, Err(&["limit"])),
            (Some("ten"), None, Err(&["limit"])),
            (None, Some("garbage"), Err(&["cursor"])),
            (None, Some("-1:c_1"), Err(&["cursor"])),
            (None, Some("17:bad id"), Err(&["cursor"])),
            (None, Some("17:"), Err(&["cursor"])),
            (Some("-3"), Some("x:y"), Err(&["cursor", "limit"])),
        ];
        for (limit, cursor, want) in cases {
            let got = page(*limit, *cursor);
            match want {
                Ok((l, after)) => {
                    let p = got.unwrap_or_else(|e| panic!("{limit:?} {cursor:?}: {e:?}"));
                    assert_eq!(p.limit, *l);
                    assert_eq!(
                        p.after.map(|c| (c.created_at, c.id)),
                        after.map(|(a, i)| (a, i.to_owned()))
                    );
                }
                Err(fields) => {
                    let e = got.expect_err("must be refused");
                    assert_eq!(e.keys().map(String::as_str).collect::<Vec<_>>(), *fields);
                }
            }
        }
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_a_row_is_left() {
        let key = |r: &(i64, &str)| Cursor {
            created_at: r.0,
            id: r.1.to_owned(),
        };
        let rows = vec![(30, "c"), (20, "b"), (20, "a")];
        assert_eq!(split_page(rows.clone(), 3, key), (rows.clone(), None));
        let (page, next) = split_page(rows.clone(), 2, key);
        assert_eq!(page, [(30, "c"), (20, "b")]);
        assert_eq!(next.as_deref(), Some("20:b"));
        assert_eq!(Cursor::parse("20:b"), Some(key(&(20, "b"))));
        assert_eq!(
            split_page(Vec::<(i64, &str)>::new(), 2, key),
            (vec![], None)
        );
    }

    #[test]
    fn contact_search_terms() {
        let s = parse_contact_search(
            r#"  Olena tag:vip locale:uk city:"New York" email:A@X.org @gmail.com "#,
        )
        .expect("valid");
        assert_eq!(s.words, ["olena", "@gmail.com"]);
        assert_eq!(s.tags, ["vip"]);
        assert_eq!(
            s.equals,
            [
                ("locale".to_owned(), "uk".to_owned()),
                ("city".to_owned(), "New York".to_owned()),
                ("email".to_owned(), "a@x.org".to_owned()),
            ]
        );
        assert!(parse_contact_search("   ")
            .expect("empty is valid")
            .is_empty());
        // A colon after something that cannot be a name is part of a word.
        assert_eq!(
            parse_contact_search("Re:Order").expect("valid").words,
            ["re:order"]
        );
        for bad in [
            "tag:",
            "tag:bad/tag",
            "locale:",
            "a b c d e f g h i",
            &"x".repeat(101),
        ] {
            assert!(parse_contact_search(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn capitalised_words_for_non_ascii_names() {
        assert_eq!(capitalised("олена"), "Олена");
        assert_eq!(capitalised("olena"), "Olena");
        assert_eq!(capitalised(""), "");
    }
}

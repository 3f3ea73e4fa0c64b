//! Pages of the HTTP API's lists: keyset paging by each list's own order, so a list never
//! stops silently at a bound and a page costs what it returns.
//!
//! A page asks `limit` rows (default [`PAGE_DEFAULT`], at most [`PAGE_MAX`]) `after` the
//! cursor the previous page gave; a page that stops before the end gives the cursor of its
//! last row as `next`. A cursor is the list's order key of that row (and its id, which makes
//! the order total), opaque to clients: rows written meanwhile before it are not repeated,
//! rows after it are in the next page.

use base64::Engine as _;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::{Engine, Error, Result};

/// Rows of a page when the caller names no `limit`.
pub const PAGE_DEFAULT: usize = 1_000;
/// The most rows of one page.
pub const PAGE_MAX: usize = 10_000;

/// Which page of a list: `after` a previous page's `next`, at most `limit` rows.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageAsk {
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One page of a list, and the cursor of the next (none: this is the last).
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next: self.next }
    }
}

/// A list's order: its fields (the record's id is added last), and its direction.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Order {
    pub fields: &'static [&'static str],
    pub newest_first: bool,
}

impl Order {
    pub const fn by(fields: &'static [&'static str]) -> Order {
        Order { fields, newest_first: false }
    }

    pub const fn newest_first(fields: &'static [&'static str]) -> Order {
        Order { fields, newest_first: true }
    }
}

fn encode(key: &[Value]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Value::Array(key.to_vec()).to_string())
}

fn decode(cursor: &str, len: usize) -> Result<Vec<Value>> {
    let bad = || Error::invalid("after: not a cursor this list gave (use the `next` link of the page before)");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| bad())?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Array(a)) if a.len() == len => Ok(a),
        _ => Err(bad()),
    }
}

impl Engine {
    /// One page of `SELECT *, record::id(id) AS id FROM {from} WHERE {cond}` in `order`.
    /// `vars` binds the condition's parameters (`$after` is the page's own).
    pub(crate) async fn page<T: DeserializeOwned>(
        &self,
        from: &str,
        cond: &str,
        mut vars: Value,
        order: Order,
        ask: &PageAsk,
    ) -> Result<Page<T>> {
        let limit = ask.limit.unwrap_or(PAGE_DEFAULT);
        if limit == 0 || limit > PAGE_MAX {
            return Err(Error::invalid(format!("limit: from 1 to {PAGE_MAX} rows")));
        }
        let mut key: Vec<String> = order.fields.iter().map(|f| f.to_string()).collect();
        key.push("record::id(id)".into());
        let (cmp, dir) = if order.newest_first { ("<", "DESC") } else { (">", "ASC") };
        let after = match &ask.after {
            Some(c) => {
                vars["after"] = Value::Array(decode(c, key.len())?);
                format!(" AND [{}] {cmp} $after", key.join(", "))
            }
            None => String::new(),
        };
        let sort: Vec<String> = order.fields.iter().chain(&["id"]).map(|f| format!("{f} {dir}")).collect();
        let sql = format!(
            "SELECT *, record::id(id) AS id FROM {from} WHERE {cond}{after} ORDER BY {} LIMIT {}",
            sort.join(", "),
            limit + 1
        );
        let mut rows: Vec<Value> = self.store.run(&sql, vars).await?.all(0)?;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| {
                let mut k: Vec<Value> =
                    order.fields.iter().map(|f| r.get(*f).cloned().unwrap_or(Value::Null)).collect();
                k.push(r.get("id").cloned().unwrap_or(Value::Null));
                encode(&k)
            })
        } else {
            None
        };
        let items = rows.into_iter().map(serde_json::from_value).collect::<std::result::Result<Vec<T>, _>>()?;
        Ok(Page { items, next })
    }
}

/// Binds nothing besides the event: for [`Engine::page`].
pub(crate) fn event_vars(event: &str) -> Value {
    json!({ "e": event })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_a_foreign_one_is_refused() {
        let key = vec![json!("2026-07-04T12:00:00.000Z"), json!("0192-abc")];
        assert_eq!(decode(&encode(&key), 2).unwrap(), key);
        assert!(decode(&encode(&key), 3).is_err(), "a cursor of another list's order");
        assert!(decode("not a cursor!", 2).is_err());
        assert!(decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("{}"), 2).is_err());
    }
}

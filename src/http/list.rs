//! What every list endpoint shares, as RabbitMQ's management API offers it: filtering by
//! `name` (a substring, or a regular expression with `use_regex=true`), sorting by any field
//! (`sort`, dotted for nested fields, `sort_reverse`), pruning to `columns`, and pages (`page`,
//! `page_size` up to 500) answered as `{items, page, page_count, page_size, total_count,
//! filtered_count, item_count}`. Without a page the whole (filtered, sorted) list comes back.

use super::error::{ApiError, ApiResult};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::cmp::Ordering;

/// The most items one page may hold.
const MAX_PAGE_SIZE: usize = 500;
const DEFAULT_PAGE_SIZE: usize = 100;

/// A list request's query string. Kept as text: RabbitMQ answers bad numbers with its own
/// error bodies, not axum's.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    page: Option<String>,
    page_size: Option<String>,
    name: Option<String>,
    use_regex: Option<String>,
    pagination: Option<String>,
    sort: Option<String>,
    sort_reverse: Option<String>,
    columns: Option<String>,
}

/// How items are ordered when the request names no field.
#[derive(Debug, Clone, Copy)]
pub enum DefaultSort {
    /// By vhost, then name (queues, exchanges, policies).
    VhostName,
    /// By name alone (vhosts, users, connections).
    Name,
    /// As the items came (bindings, permissions).
    None,
}

fn truthy(v: &Option<String>) -> bool {
    v.as_deref() == Some("true")
}

/// A page number or size; RabbitMQ answers text that is no number with this reason.
fn number(text: &Option<String>, default: i64) -> ApiResult<i64> {
    match text {
        None => Ok(default),
        Some(t) => t
            .parse()
            .map_err(|_| ApiError::bad_request("Pagination parameters are invalid")),
    }
}

fn api_error(status: u16, error: &'static str, reason: String) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::from_u16(status).unwrap_or_default(),
        error,
        reason: Value::String(reason),
    }
}

impl ListQuery {
    fn paginated(&self) -> bool {
        self.page.is_some() || truthy(&self.pagination)
    }
}

/// An item of a list: what filtering and the usual sorts read, and its JSON, which may be
/// costly to build (a queue's takes its lock), so lists build it only for the page shown
/// unless the request sorts by another field.
pub trait Item {
    fn name(&self) -> &str;
    fn vhost(&self) -> &str;
    fn into_json(self) -> Value;
}

impl Item for Value {
    fn name(&self) -> &str {
        self.get("name").and_then(Value::as_str).unwrap_or_default()
    }

    fn vhost(&self) -> &str {
        self.get("vhost")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn into_json(self) -> Value {
        self
    }
}

/// Filters, sorts, pages and prunes `items` as the query asks.
pub fn reply<T: Item>(
    mut items: Vec<T>,
    query: &ListQuery,
    default: DefaultSort,
) -> ApiResult<Json<Value>> {
    let total = items.len();
    if let Some(pattern) = query.name.as_deref().filter(|p| !p.is_empty()) {
        let matcher = NameMatcher::new(pattern, truthy(&query.use_regex));
        items.retain(|item| matcher.matches(item.name()));
    }
    let sort_field = query.sort.as_deref().filter(|s| !s.is_empty());
    let mut values: Vec<Value> = match sort_field {
        None | Some("name") | Some("vhost") => {
            sort_items(&mut items, sort_field, default, truthy(&query.sort_reverse));
            Vec::new()
        }
        Some(_) => {
            let mut values: Vec<Value> = items.drain(..).map(Item::into_json).collect();
            sort(&mut values, query, default);
            values
        }
    };
    let filtered = items.len().max(values.len());
    if !query.paginated() {
        values.extend(items.into_iter().map(Item::into_json));
        return Ok(Json(Value::Array(prune(values, query))));
    }
    let page = number(&query.page, 1)?;
    let page_size = number(&query.page_size, DEFAULT_PAGE_SIZE as i64)?;
    if page < 1 || page_size < 1 || page_size > MAX_PAGE_SIZE as i64 {
        return Err(api_error(
            400,
            "invalid_pagination_parameters",
            format!("Invalid pagination parameters: page number {page}, page size {page_size}"),
        ));
    }
    let (page, page_size) = (page as usize, page_size as usize);
    // As RabbitMQ: a page may start at the very end (and be empty), not beyond it.
    if (page - 1) * page_size > filtered {
        return Err(api_error(
            400,
            "page_out_of_range",
            format!("Page out of range, page: {page} page size: {page_size}, len: {filtered}"),
        ));
    }
    let page_count = filtered.div_ceil(page_size);
    let skip = (page - 1) * page_size;
    let page_items: Vec<Value> = match values.is_empty() {
        true => items
            .into_iter()
            .skip(skip)
            .take(page_size)
            .map(Item::into_json)
            .collect(),
        false => values.into_iter().skip(skip).take(page_size).collect(),
    };
    let item_count = page_items.len();
    Ok(Json(json!({
        "filtered_count": filtered,
        "item_count": item_count,
        "items": prune(page_items, query),
        "page": page,
        "page_count": page_count,
        "page_size": page_size,
        "total_count": total,
    })))
}

/// Sorts by name or vhost (or the list's usual order) without building any JSON.
fn sort_items<T: Item>(items: &mut [T], field: Option<&str>, default: DefaultSort, reverse: bool) {
    match (field, default) {
        (Some("name"), _) | (None, DefaultSort::Name) => {
            items.sort_by(|a, b| a.name().cmp(b.name()))
        }
        (Some("vhost"), _) => items.sort_by(|a, b| a.vhost().cmp(b.vhost())),
        (None, DefaultSort::VhostName) => {
            items.sort_by(|a, b| (a.vhost(), a.name()).cmp(&(b.vhost(), b.name())))
        }
        _ => {}
    }
    if reverse {
        items.reverse();
    }
}

/// Matches names case-insensitively, as RabbitMQ does; a pattern that is no valid regular
/// expression is taken as plain text.
enum NameMatcher {
    Regex(regex::Regex),
    Text(String),
}

impl NameMatcher {
    fn new(pattern: &str, use_regex: bool) -> Self {
        if use_regex {
            if let Ok(r) = regex::RegexBuilder::new(pattern)
                .case_insensitive(true)
                .build()
            {
                return Self::Regex(r);
            }
        }
        Self::Text(pattern.to_lowercase())
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Self::Regex(r) => r.is_match(name),
            Self::Text(t) => name.to_lowercase().contains(t.as_str()),
        }
    }
}

/// A field, dotted for nested objects (`message_stats.publish`).
fn field<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(item, |v, key| v.get(key))
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
        (None, None) => Ordering::Equal,
    }
}

fn sort(items: &mut [Value], query: &ListQuery, default: DefaultSort) {
    let keys: Vec<&str> = match (query.sort.as_deref(), default) {
        (Some(s), _) if !s.is_empty() => vec![s],
        (_, DefaultSort::VhostName) => vec!["vhost", "name"],
        (_, DefaultSort::Name) => vec!["name"],
        (_, DefaultSort::None) => vec![],
    };
    if !keys.is_empty() {
        items.sort_by(|a, b| {
            keys.iter()
                .map(|k| compare(field(a, k), field(b, k)))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
    }
    if truthy(&query.sort_reverse) {
        items.reverse();
    }
}

/// Keeps only the named columns (dotted names keep a nested field).
fn prune(items: Vec<Value>, query: &ListQuery) -> Vec<Value> {
    let Some(columns) = query.columns.as_deref().filter(|c| !c.is_empty()) else {
        return items;
    };
    let wanted: Vec<&str> = columns.split(',').map(str::trim).collect();
    items.into_iter().map(|item| keep(&item, &wanted)).collect()
}

fn keep(item: &Value, columns: &[&str]) -> Value {
    let mut out = Map::new();
    for column in columns {
        let mut parts = column.splitn(2, '.');
        let (Some(head), rest) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(value) = item.get(head) else {
            continue;
        };
        match rest {
            None => {
                out.insert(head.to_owned(), value.clone());
            }
            Some(rest) => {
                let nested = keep(value, &[rest]);
                let slot = out.entry(head.to_owned()).or_insert_with(|| json!({}));
                if let (Some(slot), Value::Object(n)) = (slot.as_object_mut(), nested) {
                    slot.extend(n);
                }
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<Value> {
        (1..=5)
            .map(|i| json!({"name": format!("q{i}"), "vhost": "/", "messages": 10 - i, "x": {"a": i, "b": 0}}))
            .collect()
    }

    fn query(text: &str) -> ListQuery {
        serde_json::from_value(Value::Object(
            text.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), Value::from(v)))
                .collect(),
        ))
        .unwrap()
    }

    #[test]
    fn pages_filter_sort_and_prune() {
        let Json(v) = reply(
            items(),
            &query("page=2&page_size=2&sort=messages"),
            DefaultSort::VhostName,
        )
        .unwrap();
        assert_eq!(v["page_count"], 3);
        assert_eq!(v["items"][0]["name"], "q3");
        let Json(v) = reply(
            items(),
            &query("name=Q[12]&use_regex=true&columns=name,x.a"),
            DefaultSort::Name,
        )
        .unwrap();
        assert_eq!(
            v,
            json!([{"name": "q1", "x": {"a": 1}}, {"name": "q2", "x": {"a": 2}}])
        );
        let Json(v) = reply(items(), &query("name=[&use_regex=true"), DefaultSort::Name).unwrap();
        assert_eq!(v, json!([]));
        let e = reply(items(), &query("page=5&page_size=2"), DefaultSort::Name).unwrap_err();
        assert_eq!(e.error, "page_out_of_range");
        assert_eq!(e.reason, "Page out of range, page: 5 page size: 2, len: 5");
        let e = reply(items(), &query("page=x"), DefaultSort::Name).unwrap_err();
        assert_eq!(e.reason, "Pagination parameters are invalid");
        let e = reply(items(), &query("page=1&page_size=501"), DefaultSort::Name).unwrap_err();
        assert_eq!(
            e.reason,
            "Invalid pagination parameters: page number 1, page size 501"
        );
    }
}

//! `POST /v1/entities/search`: a filter over the hot projection, the seed's
//! Query 1 generalised.
//!
//! A request is parsed against the tenant's catalog into a [`Search`], whose
//! every attribute is known and hot and every value typed, and only then
//! turned into SQL. Names and values travel as parameters; the SQL text
//! depends only on the request's shape, so each shape is prepared once per
//! connection. Equality and IN become `@>` containment and exists becomes
//! `?`: the operators the GIN index on `hot_attrs` answers. They read the
//! `entity_jsonb_search` view, because under Row-Level Security those
//! operators could not use the index (see `migrations/V3__hot_search.sql`).

use atlas_core::{DataType, EntityId, TenantId, Value};
use atlas_store::{Pool, StoreError, TenantCatalog, begin_tenant};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;

/// Most conditions one search may carry.
pub const MAX_CONDITIONS: usize = 20;
/// Most values one `in` may list.
pub const MAX_IN_VALUES: usize = 100;
pub const MAX_LIMIT: i64 = 1000;
/// Most statements one connection keeps prepared: each search shape's
/// generic plan holds server memory (see README, "Reads").
pub const MAX_PREPARED: usize = 16;
pub const DEFAULT_LIMIT: i64 = 100;

/// The body of `POST /v1/entities/search`, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    #[serde(default)]
    pub filter: Vec<ConditionRequest>,
    /// `updated_at` (the default) or a hot attribute.
    pub order_by: Option<String>,
    /// `asc` or `desc`; newest first for `updated_at`, ascending for an
    /// attribute.
    pub order: Option<String>,
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One condition as sent: `{"attribute", "op", "value"}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionRequest {
    pub attribute: String,
    pub op: String,
    pub value: Option<serde_json::Value>,
}

/// Why a search request was refused; `code` is the API's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

fn invalid(code: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        code,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    fn sql(self) -> &'static str {
        match self {
            Cmp::Gt => ">",
            Cmp::Gte => ">=",
            Cmp::Lt => "<",
            Cmp::Lte => "<=",
        }
    }
}

/// A condition on a known hot attribute, its values already typed and
/// rendered as the JSON the flusher writes (numerics exactly, as text).
#[derive(Debug, Clone, PartialEq)]
enum Condition {
    /// `hot_attrs @> {"name": value}`.
    Eq(String),
    /// `hot_attrs @> ANY(...)`: one containment object per value.
    In(Vec<String>),
    /// A numeric comparison; the attribute's JSON must be a number.
    Range {
        name: String,
        cmp: Cmp,
        value: String,
    },
    Exists {
        name: String,
        present: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OrderKey {
    UpdatedAt,
    Attribute(String),
}

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cursor {
    /// Fingerprint of the filter and order the cursor was issued for.
    q: String,
    /// The last row's `updated_at`, when ordering by it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    u: Option<DateTime<Utc>>,
    /// The last row's sort value, when ordering by an attribute (null
    /// when the row lacked it, which is not the same as absent).
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "present"
    )]
    k: Option<serde_json::Value>,
    i: i64,
}

/// A search whose every attribute is known, hot and typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    conditions: Vec<Condition>,
    order: OrderKey,
    descending: bool,
    limit: i64,
    after: Option<Cursor>,
    fingerprint: String,
    /// Who the next cursor is sealed for, and with what.
    tenant: TenantId,
    key: CursorKey,
}

/// The key search cursors are signed with (HMAC-SHA256 over the tenant and
/// the cursor), so a cursor is honoured only for the tenant it was issued
/// to and cannot be made or altered by hand. Every container of a
/// deployment must share it (`ATLAS_CURSOR_KEY`).
#[derive(Clone)]
pub struct CursorKey {
    key: hmac::Key,
    /// A hash of the secret: tells keys apart without showing them.
    id: [u8; 8],
}

impl CursorKey {
    /// Shortest secret accepted: 256 bits.
    pub const MIN_SECRET: usize = 32;

    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < Self::MIN_SECRET {
            return Err(format!(
                "a cursor key needs at least {} bytes, got {}",
                Self::MIN_SECRET,
                secret.len()
            ));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest.as_ref()[..8]);
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            id,
        })
    }

    /// A key of this process alone: cursors work only within it, which
    /// suits one `atlas dev` or a test, not a fleet of containers.
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut secret).expect("the OS random generator");
        Self::new(&secret).expect("32 bytes")
    }

    fn message(tenant: TenantId, payload: &[u8]) -> Vec<u8> {
        let mut m = tenant.get().to_be_bytes().to_vec();
        m.extend_from_slice(payload);
        m
    }

    fn seal(&self, tenant: TenantId, c: &Cursor) -> String {
        let payload = serde_json::to_vec(c).expect("cursors serialize");
        let tag = hmac::sign(&self.key, &Self::message(tenant, &payload));
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// The cursor's bytes, if this key signed them for `tenant`.
    fn open(&self, tenant: TenantId, raw: &str) -> Option<Vec<u8>> {
        let (payload, tag) = raw.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.key, &Self::message(tenant, &payload), &tag).ok()?;
        Some(payload)
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

impl PartialEq for CursorKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

/// One entity found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    pub entity_id: i64,
    pub entity_type: String,
    pub hot_attributes: serde_json::Value,
    pub updated_at: DateTime<Utc>,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    pub entities: Vec<Found>,
    /// Present when more may follow: send it back as `cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A statement and its parameters, ready to run or to EXPLAIN.
pub struct Statement {
    pub sql: String,
    pub params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Statement {
    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// JSON text of a typed value, as `to_jsonb` in the flusher renders it.
/// Built as text so a decimal keeps every digit (no trip through f64).
fn json_text(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => serde_json::to_string(s).expect("strings serialize"),
        Value::Timestamp(t) => serde_json::to_string(t).expect("timestamps serialize"),
    }
}

fn containment(name: &str, v: &Value) -> String {
    format!(
        "{{{}:{}}}",
        serde_json::to_string(name).expect("names serialize"),
        json_text(v)
    )
}

impl Search {
    /// Types `tenant`'s request against its `catalog`; `key` checks the
    /// request's cursor and signs the next. Every refusal names the
    /// attribute or field at fault.
    pub fn parse(
        req: SearchRequest,
        catalog: Option<&TenantCatalog>,
        tenant: TenantId,
        key: &CursorKey,
    ) -> Result<Self, Invalid> {
        if req.filter.len() > MAX_CONDITIONS {
            return Err(invalid(
                "too_many_conditions",
                format!(
                    "the filter has {} conditions; the limit is {MAX_CONDITIONS}",
                    req.filter.len()
                ),
            ));
        }
        let hot = |name: &str| -> Result<DataType, Invalid> {
            let def = catalog
                .and_then(|c| c.attributes.get(name))
                .ok_or_else(|| {
                    invalid(
                        "unknown_attribute",
                        format!("no attribute {name:?} in this tenant's catalog"),
                    )
                })?;
            if !def.is_hot {
                return Err(invalid(
                    "cold_attribute",
                    format!(
                        "attribute {name:?} is cold: search reads hot attributes only \
                         (promote it with PATCH /v1/attributes/{name})"
                    ),
                ));
            }
            Ok(def.data_type)
        };
        let mut conditions = Vec::with_capacity(req.filter.len());
        for c in &req.filter {
            let data_type = hot(&c.attribute)?;
            let name = c.attribute.as_str();
            let typed = |raw: &serde_json::Value| -> Result<Value, Invalid> {
                Value::parse(data_type, raw)
                    .map_err(|e| invalid("invalid_value", format!("filter on {name:?}: {e}")))
            };
            let value = || {
                c.value.as_ref().ok_or_else(|| {
                    invalid(
                        "invalid_filter",
                        format!("filter on {name:?}: op {:?} needs a value", c.op),
                    )
                })
            };
            let unsupported = |what: &str| {
                invalid(
                    "unsupported_operator",
                    format!(
                        "filter on {name:?}: {} is a {data_type} attribute, which supports {what}",
                        c.op
                    ),
                )
            };
            let cond = match c.op.as_str() {
                "eq" | "in" if data_type == DataType::Timestamp => {
                    return Err(unsupported("exists only"));
                }
                "eq" => Condition::Eq(containment(name, &typed(value()?)?)),
                "in" => {
                    let serde_json::Value::Array(items) = value()? else {
                        return Err(invalid(
                            "invalid_filter",
                            format!("filter on {name:?}: in takes an array of values"),
                        ));
                    };
                    if items.is_empty() || items.len() > MAX_IN_VALUES {
                        return Err(invalid(
                            "invalid_filter",
                            format!(
                                "filter on {name:?}: in takes 1 to {MAX_IN_VALUES} values, not {}",
                                items.len()
                            ),
                        ));
                    }
                    Condition::In(
                        items
                            .iter()
                            .map(|v| typed(v).map(|v| containment(name, &v)))
                            .collect::<Result<_, _>>()?,
                    )
                }
                op @ ("gt" | "gte" | "lt" | "lte") => {
                    if !matches!(data_type, DataType::Int | DataType::Decimal) {
                        return Err(unsupported(if data_type == DataType::Timestamp {
                            "exists only"
                        } else {
                            "eq, in and exists"
                        }));
                    }
                    let cmp = match op {
                        "gt" => Cmp::Gt,
                        "gte" => Cmp::Gte,
                        "lt" => Cmp::Lt,
                        _ => Cmp::Lte,
                    };
                    Condition::Range {
                        name: name.to_owned(),
                        cmp,
                        value: json_text(&typed(value()?)?),
                    }
                }
                "exists" => Condition::Exists {
                    name: name.to_owned(),
                    present: match &c.value {
                        None => true,
                        Some(serde_json::Value::Bool(b)) => *b,
                        Some(_) => {
                            return Err(invalid(
                                "invalid_filter",
                                format!("filter on {name:?}: exists takes true, false or no value"),
                            ));
                        }
                    },
                },
                other => {
                    return Err(invalid(
                        "invalid_filter",
                        format!(
                            "filter on {name:?}: unknown op {other:?}; use eq, in, gt, gte, lt, lte or exists"
                        ),
                    ));
                }
            };
            conditions.push(cond);
        }
        let order = match req.order_by.as_deref() {
            None | Some("updated_at") => OrderKey::UpdatedAt,
            Some(name) => {
                hot(name)?;
                OrderKey::Attribute(name.to_owned())
            }
        };
        let descending = match req.order.as_deref() {
            None => order == OrderKey::UpdatedAt,
            Some("desc") => true,
            Some("asc") => false,
            Some(other) => {
                return Err(invalid(
                    "invalid_order",
                    format!("order must be asc or desc, not {other:?}"),
                ));
            }
        };
        let limit = match req.limit {
            None => DEFAULT_LIMIT,
            Some(l) if (1..=MAX_LIMIT).contains(&l) => l,
            Some(l) => {
                return Err(invalid(
                    "invalid_limit",
                    format!("limit must be from 1 to {MAX_LIMIT}, not {l}"),
                ));
            }
        };
        let fingerprint = fingerprint(&req.filter, &order, descending);
        let after = req
            .cursor
            .as_deref()
            .map(|c| decode_cursor(key, tenant, c, &fingerprint, &order))
            .transpose()?;
        Ok(Self {
            conditions,
            order,
            descending,
            limit,
            after,
            fingerprint,
            tenant,
            key: key.clone(),
        })
    }

    /// The statement for `tenant`. It selects one row past the limit, so
    /// the caller knows whether another page follows.
    pub fn statement(&self, tenant: TenantId) -> Statement {
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(tenant.get())];
        let mut bind = |p: Box<dyn ToSql + Sync + Send>| {
            params.push(p);
            format!("${}", params.len())
        };
        let mut sql =
            String::from("SELECT ej.entity_id, ej.entity_type, ej.hot_attrs, ej.updated_at");
        let sort = match &self.order {
            OrderKey::UpdatedAt => None,
            OrderKey::Attribute(name) => {
                let s = format!("(ej.hot_attrs -> {}::text)", bind(Box::new(name.clone())));
                sql.push_str(&format!(", {s}"));
                Some(s)
            }
        };
        sql.push_str(" FROM entity_jsonb_search ej WHERE ej.tenant_id = $1");
        for c in &self.conditions {
            let clause = match c {
                Condition::Eq(obj) => {
                    format!(
                        "ej.hot_attrs @> {}::text::jsonb",
                        bind(Box::new(obj.clone()))
                    )
                }
                Condition::In(objs) => format!(
                    "ej.hot_attrs @> ANY({}::text[]::jsonb[])",
                    bind(Box::new(objs.clone()))
                ),
                Condition::Range { name, cmp, value } => {
                    let key = bind(Box::new(name.clone()));
                    let v = bind(Box::new(value.clone()));
                    // Comparing jsonb never fails, whatever the stored type;
                    // the type test keeps booleans and strings out.
                    format!(
                        "(jsonb_typeof(ej.hot_attrs -> {key}::text) = 'number' \
                         AND ej.hot_attrs -> {key}::text {} {v}::text::jsonb)",
                        cmp.sql()
                    )
                }
                Condition::Exists { name, present } => format!(
                    "{}ej.hot_attrs ? {}::text",
                    if *present { "" } else { "NOT " },
                    bind(Box::new(name.clone()))
                ),
            };
            sql.push_str(" AND ");
            sql.push_str(&clause);
        }
        let (dir, cmp) = if self.descending {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        };
        if let Some(after) = &self.after {
            let id = bind(Box::new(after.i));
            let clause = match (&sort, &after.k) {
                (None, _) => {
                    let u = bind(Box::new(after.u.unwrap_or_default()));
                    format!("(ej.updated_at, ej.entity_id) {cmp} ({u}, {id})")
                }
                // Rows without the attribute sort last, by id.
                (Some(s), None | Some(serde_json::Value::Null)) => {
                    format!("({s} IS NULL AND ej.entity_id {cmp} {id})")
                }
                (Some(s), Some(k)) => {
                    let k = bind(Box::new(k.to_string()));
                    format!(
                        "({s} {cmp} {k}::text::jsonb OR ({s} = {k}::text::jsonb AND ej.entity_id {cmp} {id}) \
                         OR {s} IS NULL)"
                    )
                }
            };
            sql.push_str(" AND ");
            sql.push_str(&clause);
        }
        match &sort {
            None => sql.push_str(&format!(
                " ORDER BY ej.updated_at {dir}, ej.entity_id {dir}"
            )),
            Some(s) => sql.push_str(&format!(
                " ORDER BY {s} {dir} NULLS LAST, ej.entity_id {dir}"
            )),
        }
        let limit = bind(Box::new(self.limit + 1));
        sql.push_str(&format!(" LIMIT {limit}"));
        Statement { sql, params }
    }

    /// Runs the search in a tenant-scoped transaction.
    pub async fn run(&self, pool: &Pool, tenant: TenantId) -> Result<Page, StoreError> {
        let st = self.statement(tenant);
        let mut client = pool.get().await?;
        // Every filter shape is a statement of its own, kept prepared with
        // its generic plan, and callers choose the shapes: past a bound the
        // connection's statements are all let go (the few fixed ones are
        // prepared again on their next use).
        if client.statement_cache.size() >= MAX_PREPARED {
            client.statement_cache.clear();
        }
        let tx = begin_tenant(&mut client, tenant).await?;
        let prepared = tx.prepare_cached(&st.sql).await?;
        let rows = tx.query(&prepared, &st.params()).await?;
        tx.commit().await?;
        let more = rows.len() as i64 > self.limit;
        let rows = &rows[..rows.len().min(self.limit as usize)];
        let next_cursor = match rows.last() {
            Some(last) if more => Some(
                self.key.seal(
                    self.tenant,
                    &Cursor {
                        q: self.fingerprint.clone(),
                        u: (self.order == OrderKey::UpdatedAt).then(|| last.get(3)),
                        k: match self.order {
                            OrderKey::UpdatedAt => None,
                            OrderKey::Attribute(_) => Some(
                                last.get::<_, Option<serde_json::Value>>(4)
                                    .unwrap_or(serde_json::Value::Null),
                            ),
                        },
                        i: last.get(0),
                    },
                ),
            ),
            _ => None,
        };
        Ok(Page {
            entities: rows
                .iter()
                .map(|r| Found {
                    entity_id: r.get(0),
                    entity_type: r.get(1),
                    hot_attributes: r.get(2),
                    updated_at: r.get(3),
                })
                .collect(),
            next_cursor,
        })
    }
}

/// Ties a cursor to the filter and order it was issued for, so a cursor
/// sent with another query is refused instead of skipping rows.
fn fingerprint(filter: &[ConditionRequest], order: &OrderKey, descending: bool) -> String {
    let key = serde_json::to_string(&(
        filter,
        match order {
            OrderKey::UpdatedAt => "updated_at",
            OrderKey::Attribute(a) => a,
        },
        descending,
    ))
    .expect("requests serialize");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A field that is present, even as `null`, is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

fn decode_cursor(
    key: &CursorKey,
    tenant: TenantId,
    raw: &str,
    fingerprint: &str,
    order: &OrderKey,
) -> Result<Cursor, Invalid> {
    let bad = |why: &str| invalid("invalid_cursor", format!("cursor is not valid: {why}"));
    if raw.len() > 1024 {
        return Err(bad("too long"));
    }
    let bytes = key
        .open(tenant, raw)
        .ok_or_else(|| bad("not a cursor this API issued to this tenant"))?;
    let c: Cursor =
        serde_json::from_slice(&bytes).map_err(|_| bad("not a cursor this API issued"))?;
    if c.q != fingerprint {
        return Err(bad(
            "it belongs to a search with another filter or order; start again without it",
        ));
    }
    let shape_ok = match order {
        OrderKey::UpdatedAt => c.u.is_some() && c.k.is_none(),
        OrderKey::Attribute(_) => c.u.is_none() && c.k.is_some(),
    };
    if !shape_ok || EntityId::parse(&c.i.to_string()).is_err() {
        return Err(bad("not a cursor this API issued"));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use atlas_store::AttributeDef;
    use serde_json::json;

    use super::*;

    fn catalog() -> TenantCatalog {
        let def = |id, data_type, is_hot| AttributeDef {
            id,
            data_type,
            is_hot,
        };
        TenantCatalog {
            tenant: TenantId::parse("1").unwrap(),
            auto_register: false,
            attributes: HashMap::from([
                ("status".into(), def(1, DataType::String, true)),
                ("priority".into(), def(2, DataType::Int, true)),
                ("temp".into(), def(3, DataType::Decimal, true)),
                ("seen".into(), def(4, DataType::Timestamp, true)),
                ("serial".into(), def(5, DataType::String, false)),
            ]),
        }
    }

    fn key() -> CursorKey {
        CursorKey::new(&[7; 32]).unwrap()
    }

    fn tenant() -> TenantId {
        TenantId::parse("1").unwrap()
    }

    fn parse(body: serde_json::Value) -> Result<Search, Invalid> {
        Search::parse(
            serde_json::from_value(body).unwrap(),
            Some(&catalog()),
            tenant(),
            &key(),
        )
    }

    fn code(body: serde_json::Value) -> &'static str {
        parse(body).unwrap_err().code
    }

    #[test]
    fn values_become_exact_json_parameters() {
        let s = parse(json!({"filter": [
            {"attribute": "status", "op": "eq", "value": "on\"line"},
            {"attribute": "temp", "op": "gte", "value": 20.12345},
            {"attribute": "priority", "op": "in", "value": [8, 9]},
        ]}))
        .unwrap();
        assert_eq!(
            s.conditions,
            vec![
                Condition::Eq(r#"{"status":"on\"line"}"#.into()),
                Condition::Range {
                    name: "temp".into(),
                    cmp: Cmp::Gte,
                    value: "20.12345".into()
                },
                Condition::In(vec![r#"{"priority":8}"#.into(), r#"{"priority":9}"#.into()]),
            ]
        );
        let st = s.statement(TenantId::parse("1").unwrap());
        assert!(!st.sql.contains("status") && !st.sql.contains("online"));
        assert!(st.sql.contains("ej.hot_attrs @> $2::text::jsonb"));
        assert!(st.sql.contains("@> ANY($5::text[]::jsonb[])"));
        assert_eq!(st.params.len(), 6);
    }

    #[test]
    fn unknown_cold_and_mistyped_filters_are_refused_by_name() {
        let unknown =
            parse(json!({"filter": [{"attribute": "nope", "op": "eq", "value": 1}]})).unwrap_err();
        assert_eq!(unknown.code, "unknown_attribute");
        assert!(unknown.message.contains("\"nope\""));
        let cold = parse(json!({"filter": [{"attribute": "serial", "op": "exists"}]})).unwrap_err();
        assert_eq!(cold.code, "cold_attribute");
        assert!(cold.message.contains("serial"));
        assert_eq!(
            code(json!({"order_by": "serial"})),
            "cold_attribute",
            "ordering reads the projection too"
        );
        assert_eq!(
            code(json!({"filter": [{"attribute": "priority", "op": "eq", "value": "8"}]})),
            "invalid_value"
        );
        assert_eq!(
            code(json!({"filter": [{"attribute": "status", "op": "gt", "value": "a"}]})),
            "unsupported_operator"
        );
        assert_eq!(
            code(
                json!({"filter": [{"attribute": "seen", "op": "eq", "value": "2026-01-01T00:00:00Z"}]})
            ),
            "unsupported_operator"
        );
        assert_eq!(
            code(json!({"filter": [{"attribute": "status", "op": "like", "value": "a"}]})),
            "invalid_filter"
        );
        assert_eq!(
            code(json!({"filter": [{"attribute": "status", "op": "in", "value": []}]})),
            "invalid_filter"
        );
        assert_eq!(
            code(json!({"filter": [{"attribute": "status", "op": "eq"}]})),
            "invalid_filter"
        );
        assert_eq!(code(json!({"limit": 1001})), "invalid_limit");
        assert_eq!(code(json!({"limit": 0})), "invalid_limit");
        assert_eq!(code(json!({"order": "up"})), "invalid_order");
        let many: Vec<_> = (0..=MAX_CONDITIONS)
            .map(|_| json!({"attribute": "status", "op": "exists"}))
            .collect();
        assert_eq!(code(json!({"filter": many})), "too_many_conditions");
        assert_eq!(
            Search::parse(
                serde_json::from_value(
                    json!({"filter": [{"attribute": "status", "op": "exists"}]})
                )
                .unwrap(),
                None,
                tenant(),
                &key(),
            )
            .unwrap_err()
            .code,
            "unknown_attribute",
            "a tenant without a catalog has no attributes"
        );
    }

    #[test]
    fn cursors_belong_to_their_query_tenant_and_key() {
        let cursor = Cursor {
            q: fingerprint(&[], &OrderKey::UpdatedAt, true),
            u: Some(Utc::now()),
            k: None,
            i: 7,
        };
        let c = key().seal(tenant(), &cursor);
        assert!(parse(json!({"cursor": c})).is_ok());
        // Another tenant's cursor, or one signed with another key, or one
        // whose payload was edited, or an unsigned one, is refused.
        let other = key().seal(TenantId::parse("2").unwrap(), &cursor);
        assert_eq!(code(json!({"cursor": other})), "invalid_cursor");
        let foreign = CursorKey::new(&[8; 32]).unwrap().seal(tenant(), &cursor);
        assert_eq!(code(json!({"cursor": foreign})), "invalid_cursor");
        let moved = key().seal(
            tenant(),
            &Cursor {
                i: 8,
                ..cursor.clone()
            },
        );
        let edited = format!(
            "{}.{}",
            moved.split_once('.').unwrap().0,
            c.split_once('.').unwrap().1
        );
        assert_eq!(code(json!({"cursor": edited})), "invalid_cursor");
        let unsigned = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap());
        assert_eq!(code(json!({"cursor": unsigned})), "invalid_cursor");
        assert!(CursorKey::new(&[1; 31]).is_err());
        assert_eq!(code(json!({"cursor": c, "order": "asc"})), "invalid_cursor");
        assert_eq!(
            code(json!({"cursor": c, "filter": [{"attribute": "status", "op": "exists"}]})),
            "invalid_cursor"
        );
        assert_eq!(code(json!({"cursor": "not a cursor"})), "invalid_cursor");
        assert_eq!(code(json!({"cursor": "eyJ4IjoxfQ"})), "invalid_cursor");
    }
}

//! The replica's bulk layout (see `schemas/surreal/device/0002_pages.surql` and
//! `0003_deltas.surql`): most rows are stored many to a document, as the JSON text of a page,
//! and the rows written since form an overlay of deltas, one document per transaction (the
//! rows it wrote, as JSON text). A first sync writes pages; so does a compaction, which
//! rewrites an event's rows from the mirror once its overlay has grown, and every narrowing of
//! access.

use std::{
    borrow::Borrow,
    collections::{HashMap, HashSet},
    sync::Arc,
};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Replica, Row, State, TOP, mirror::Mirror};
use crate::{Result, store::Store};

/// Most rows one page holds.
pub const PAGE_ROWS: usize = 500;
/// An event's overlay is due for compaction into pages once it holds more rows than this, and
/// more than half as many as the event (so the rows rewritten per row changed stay bounded);
/// the compaction runs at the next quiet moment (a heartbeat's answer), not mid-sync.
pub const OVERLAY_ROWS_MAX: usize = 2_000;
/// When the replica opens, an event whose overlay holds more rows than this is compacted. (An
/// overlay stored before deltas existed is compacted whatever its size; a replica written
/// before pages existed holds every row there.)
pub const OVERLAY_ROWS_ON_OPEN_MAX: usize = 256;
/// The largest generation (and delta number): the upper end of an event's page and delta keys.
const GEN_TOP: i64 = i64::MAX;

/// The statements that make `$compact.pages` (generation `$compact.gen`) the event's rows:
/// part of a larger transaction (`ROWS_SQL`), or alone in [`COMPACT_SQL`].
macro_rules! compact_statements {
    () => {
        "IF $compact != NONE {
    DELETE page:[$e, 0]..=[$e, $gen_top];
    FOR $p IN $compact.pages { CREATE type::record('page', [$e, $compact.gen, $p.n]) CONTENT { rows: $p.rows } RETURN NONE; };
    UPSERT type::record('sub', $e) SET pages = $compact.gen;
};"
    };
}
pub(super) use compact_statements;

const COMPACT_SQL: &str = concat!("BEGIN TRANSACTION;\n", compact_statements!(), "\nCOMMIT TRANSACTION;");

/// The JSON text of `rows` in pages of [`PAGE_ROWS`], numbered from `from`.
pub(super) fn pages_of<R: Borrow<Row>>(rows: &[R], from: usize) -> Result<Vec<Value>> {
    rows.chunks(PAGE_ROWS)
        .enumerate()
        .map(|(i, chunk)| {
            let refs: Vec<&Row> = chunk.iter().map(Borrow::borrow).collect();
            Ok(json!({ "n": from + i, "rows": serde_json::to_string(&refs)? }))
        })
        .collect()
}

/// A new generation of pages for `event`: later than its current one (overlay rows of older
/// generations are swept by "below the current", so generations only grow).
pub(super) fn fresh_gen(st: &State, event: &str) -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as i64);
    now.max(current(st, event) + 1)
}

/// The generation of `event`'s current pages (0: none yet). Overlay rows carry the generation
/// they were written over (`pg`); rows of an older one are superseded by the pages and ignored.
pub(super) fn current(st: &State, event: &str) -> i64 {
    st.pages_gen.get(event).copied().unwrap_or(0)
}

/// What [`compact_statements`] needs: the rows as pages of generation `generation`.
pub(super) fn compaction<R: Borrow<Row>>(rows: &[R], generation: i64) -> Result<Value> {
    Ok(json!({ "gen": generation, "pages": pages_of(rows, 0)? }))
}

/// The rows `event` would hold after `ops` (`ROWS_SQL`'s operations) were applied to what the
/// mirror holds: a narrowing's pages are written in the transaction that applies it.
pub(super) fn rows_after(mirror: &Mirror, event: &str, ops: &[Value]) -> Vec<Arc<Row>> {
    let mut scratch = Mirror::default();
    for r in mirror.event_rows(event) {
        scratch.put_row(event, r);
    }
    scratch.apply(event, ops);
    scratch.event_rows(event)
}

/// Parameters every statement over an event's pages and overlay takes.
pub(super) fn bounds(event: &str) -> Value {
    json!({ "e": event, "top": TOP, "gen_top": GEN_TOP })
}

/// Stores `$delta` (made by [`delta`]), if set: part of a larger transaction.
macro_rules! delta_statement {
    () => {
        "IF $delta { CREATE type::record('delta', [$e, $delta.k]) CONTENT { pg: $delta.pg, rows: $delta.rows } RETURN NONE };"
    };
}
pub(super) use delta_statement;

/// The overlay rows that row operations `ops` (`{put: row}` stores a row, `{del: {kind, id}}`
/// removes one, `{narrow: …}` is stored by a compaction) leave: each touched row's last
/// version, a tombstone for a removed row (it may be in a page).
pub(super) fn overlay_rows(ops: &[Value]) -> Vec<Value> {
    let mut last: HashMap<(String, String), Value> = HashMap::new();
    let mut order = Vec::new();
    for o in ops {
        let (kind, id, row) = if let Some(r) = o.get("put").filter(|r| r.is_object()) {
            let (k, id) = (r["kind"].as_str().unwrap_or_default(), r["rid"].as_str().unwrap_or_default());
            (k.to_string(), id.to_string(), r.clone())
        } else if let Some(d) = o.get("del") {
            let (k, id) = (d["kind"].as_str().unwrap_or_default(), d["id"].as_str().unwrap_or_default());
            (k.to_string(), id.to_string(), json!({ "kind": k, "rid": id, "gone": true }))
        } else {
            continue;
        };
        if last.insert((kind.clone(), id.clone()), row).is_none() {
            order.push((kind, id));
        }
    }
    order.iter().filter_map(|key| last.remove(key)).collect()
}

/// `$delta` for [`delta_statement`]: `rows` as one delta over pages of generation `pg`, numbered
/// after every delta before it. None when there are no rows.
pub(super) fn delta(st: &mut State, rows: &[Value], pg: i64) -> Result<Option<Value>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let k = st.next_delta;
    st.next_delta += 1;
    Ok(Some(json!({ "k": k, "pg": pg, "rows": serde_json::to_string(rows)? })))
}

/// The parameters of `ROWS_SQL` for row operations `ops` over the event's current pages.
pub(super) fn overlay_vars(st: &mut State, event: &str, ops: &[Value]) -> Result<Value> {
    let mut vars = bounds(event);
    if let Some(d) = delta(st, &overlay_rows(ops), current(st, event))? {
        vars["delta"] = d;
    }
    Ok(vars)
}

/// A page as the replica reads it when it opens.
#[derive(Deserialize)]
pub(super) struct StoredPage {
    /// [event, generation, n]
    key: (String, i64, i64),
    rows: String,
}

/// A delta as the replica reads it when it opens.
#[derive(Deserialize)]
pub(super) struct StoredDelta {
    /// [event, k]
    key: (String, i64),
    pg: i64,
    rows: String,
}

/// What the replica reads of its rows when it opens.
pub(super) struct Stored {
    pages: Vec<StoredPage>,
    deltas: Vec<StoredDelta>,
    /// Overlay rows as stored before deltas, one document each.
    legacy: Vec<Value>,
}

/// Every stored page, delta and earlier overlay row, as the replica opens.
pub(super) async fn read(store: &Store) -> Result<Stored> {
    let mut read = store
        .run(
            "SELECT record::id(id) AS key, rows FROM page;
             SELECT record::id(id) AS key, pg, rows FROM delta;
             SELECT * OMIT id FROM rec;",
            Value::Null,
        )
        .await?;
    Ok(Stored { pages: read.all(0)?, deltas: read.all(1)?, legacy: read.all(2)? })
}

/// What loading found besides the rows, for [`Replica::tidy_after_open`].
pub(super) struct Loaded {
    /// Pages of a generation that never became current (a snapshot or compaction that never
    /// finished): (event, generation).
    unfinished: HashSet<(String, i64)>,
    /// Overlay rows in force, by event.
    overlaid: HashMap<String, usize>,
    /// Events with overlay rows written over older pages than the current ones.
    superseded: HashSet<String>,
    /// Events with overlay rows in force stored as before deltas: compacted at once.
    legacy: HashSet<String>,
    /// The number the next delta takes.
    pub next_delta: i64,
}

/// Loads each event's current pages into `mirror` (`current`: event → generation), then the
/// overlay rows in force over them: the earlier layout's first, then the deltas in order.
pub(super) fn load(mirror: &mut Mirror, stored: Stored, current: &HashMap<String, i64>) -> Result<Loaded> {
    let mut loaded = Loaded {
        unfinished: HashSet::new(),
        overlaid: HashMap::new(),
        superseded: HashSet::new(),
        legacy: HashSet::new(),
        next_delta: 1,
    };
    for p in stored.pages {
        let (event, generation, _) = p.key;
        if current.get(&event) != Some(&generation) {
            loaded.unfinished.insert((event, generation));
            continue;
        }
        let rows: Vec<Row> = serde_json::from_str(&p.rows)?;
        for r in rows {
            mirror.put_row(&event, Arc::new(r));
        }
    }
    let in_force = |event: &str, pg: i64, loaded: &mut Loaded| {
        // Written over older pages than the current ones: superseded by them.
        let yes = pg == current.get(event).copied().unwrap_or(0);
        if !yes {
            loaded.superseded.insert(event.to_string());
        }
        yes
    };
    for row in &stored.legacy {
        let event = row["event"].as_str().unwrap_or_default();
        if in_force(event, row["pg"].as_i64().unwrap_or(0), &mut loaded) {
            loaded.legacy.insert(event.to_string());
            overlay_row(mirror, event, row);
        }
    }
    let mut deltas = stored.deltas;
    deltas.sort_by_key(|d| d.key.1);
    for d in deltas {
        let (event, k) = d.key;
        loaded.next_delta = loaded.next_delta.max(k.saturating_add(1));
        if in_force(&event, d.pg, &mut loaded) {
            let rows: Vec<Value> = serde_json::from_str(&d.rows)?;
            *loaded.overlaid.entry(event.clone()).or_default() += rows.len();
            for row in &rows {
                overlay_row(mirror, &event, row);
            }
        }
    }
    Ok(loaded)
}

/// Applies one overlay row (or tombstone) to the mirror.
fn overlay_row(mirror: &mut Mirror, event: &str, row: &Value) {
    match row["gone"].as_bool() {
        Some(true) => {
            mirror.del(event, row["kind"].as_str().unwrap_or_default(), row["rid"].as_str().unwrap_or_default())
        }
        _ => mirror.put(event, row),
    }
}

impl Replica {
    /// After the replica loaded (its state's `pages_gen` set): deletes unfinished pages,
    /// finishes sweeps of superseded overlay rows the app stopped before, and compacts a large
    /// overlay (all of a replica written before pages existed).
    pub(super) async fn tidy_after_open(&self, st: &mut State, loaded: Loaded) -> Result<()> {
        for (event, generation) in loaded.unfinished {
            let mut vars = bounds(&event);
            vars["gen"] = json!(generation);
            self.inner.store.run("DELETE page:[$e, $gen, 0]..=[$e, $gen, $gen_top];", vars).await?;
        }
        for event in &loaded.superseded {
            self.sweep_overlay(event, current(st, event)).await?;
        }
        for event in &loaded.legacy {
            self.compact(st, event).await?;
        }
        for (event, n) in loaded.overlaid {
            if loaded.legacy.contains(&event) {
                continue;
            }
            match n > OVERLAY_ROWS_ON_OPEN_MAX {
                true => self.compact(st, &event).await?,
                false => drop(st.overlay.insert(event, n)),
            }
        }
        Ok(())
    }

    /// Rewrites `event`'s rows as pages of a new generation and empties its overlay, in one
    /// transaction.
    pub(super) async fn compact(&self, st: &mut State, event: &str) -> Result<()> {
        let rows = self.mirror().event_rows(event);
        let generation = fresh_gen(st, event);
        let mut vars = bounds(event);
        vars["compact"] = compaction(&rows, generation)?;
        self.inner.store.run(COMPACT_SQL, vars).await?;
        self.pages_made(st, event, generation);
        tracing::debug!(event, rows = rows.len(), "replica rows compacted into pages");
        Ok(())
    }

    /// After pages of `generation` became `event`'s current ones: the overlay rows written
    /// before are superseded (ignored when the replica opens), and swept in the background —
    /// deleting thousands of documents one by one is slow, and nothing waits for it.
    pub(super) fn pages_made(&self, st: &mut State, event: &str, generation: i64) {
        st.pages_gen.insert(event.to_string(), generation);
        st.overlay.remove(event);
        let replica = self.clone();
        let event = event.to_string();
        self.in_background("sweeping a replica's superseded overlay", async move {
            replica.sweep_overlay(&event, generation).await
        });
    }

    /// Deletes `event`'s overlay rows and deltas written over pages older than `generation`.
    /// Safe beside any write: what is written since carries `generation` or a later one.
    pub(super) async fn sweep_overlay(&self, event: &str, generation: i64) -> Result<()> {
        let mut vars = bounds(event);
        vars["gen"] = json!(generation);
        self.inner
            .store
            .run(
                "DELETE delta:[$e, 0]..=[$e, $gen_top] WHERE pg < $gen;
                 DELETE rec:[$e, '']..[$e, $top] WHERE (pg ?? 0) < $gen;",
                vars,
            )
            .await?;
        Ok(())
    }

    /// Counts `written` rows into `event`'s overlay (see [`OVERLAY_ROWS_MAX`]).
    pub(super) fn overlay_grew(&self, st: &mut State, event: &str, written: usize) {
        *st.overlay.entry(event.to_string()).or_default() += written;
    }

    /// Compacts every event whose overlay has grown past [`OVERLAY_ROWS_MAX`] and half its
    /// rows — unless the device is busy syncing (not `quiet`), when it waits for a quiet
    /// moment up to [`HOUSEKEEPING_BACKLOG`](super::apply::HOUSEKEEPING_BACKLOG) rows.
    pub(super) async fn compact_due(&self, st: &mut State, quiet: bool) -> Result<()> {
        let bound = if quiet { OVERLAY_ROWS_MAX } else { super::apply::HOUSEKEEPING_BACKLOG };
        let due: Vec<String> = st
            .overlay
            .iter()
            .filter(|(e, n)| **n > bound && **n > self.mirror().held(e) / 2)
            .map(|(e, _)| e.clone())
            .collect();
        for event in due {
            self.compact(st, &event).await?;
        }
        Ok(())
    }
}

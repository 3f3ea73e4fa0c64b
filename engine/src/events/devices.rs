//! The devices that synced an event, as the sync servers record them: no event records,
//! no change-log entries.

use serde_json::json;

use crate::{
    Engine, Result,
    access::{Action, Target, decide, require},
    model::{DeviceSeen, DeviceSessions},
    paging::{Order, Page, PageAsk, event_vars},
};

impl Engine {
    /// Records that `account`'s `device` synced `event` up to `cursor` at `at` (RFC 3339),
    /// and whether it is still connected (`live`). Written by the sync servers, not by
    /// people: it is no event record and has no change-log entry.
    pub async fn device_synced(
        &self,
        event: &str,
        account: &str,
        device: &str,
        cursor: i64,
        at: &str,
        live: bool,
    ) -> Result<()> {
        self.store
            .run(
                "UPSERT type::record('device_seen', $k) SET event = $e, account = $a, device = $d,
                     cursor = IF cursor > $c THEN cursor ELSE $c END,
                     first_seen = IF first_seen THEN first_seen ELSE $now END,
                     live = $live,
                     last_seen = IF last_seen > $now THEN last_seen ELSE $now END;",
                json!({ "k": format!("{event}|{account}|{device}"), "e": event, "a": account, "d": device,
                        "c": cursor, "now": at, "live": live }),
            )
            .await?;
        Ok(())
    }

    /// A page of the devices that synced an event, the most recent first: for seat holders,
    /// who see the event as a whole.
    pub async fn devices_seen(&self, actor: &str, event: &str, ask: &PageAsk) -> Result<Page<DeviceSeen>> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Read, Target::Setup), "event")?;
        self.page("device_seen", "event = $e", event_vars(&ev.id), Order::newest_first(&["last_seen"]), ask).await
    }

    /// Notes that the sync node `node` is alive at `now_ms` (Unix milliseconds, its clock),
    /// and forgets the nodes silent since before `silent_since_ms` (crashed: a node that
    /// stops says so, [`Engine::node_stopped`]) with the device sessions they held.
    pub async fn node_alive(&self, node: &str, started_at: &str, now_ms: i64, silent_since_ms: i64) -> Result<()> {
        self.store
            .run(
                "UPSERT type::record('sync_node', $n) SET started_at = $started, alive_at = $now RETURN NONE;
                 LET $silent = SELECT VALUE record::id(id) FROM sync_node WHERE alive_at < $since;
                 IF array::len($silent) > 0 {
                     DELETE device_session WHERE node IN $silent RETURN NONE;
                     DELETE sync_node WHERE alive_at < $since RETURN NONE;
                     FOR $s IN $silent { DELETE type::record('node_commits', $s) RETURN NONE; };
                 };",
                json!({ "n": node, "started": started_at, "now": now_ms, "since": silent_since_ms }),
            )
            .await?;
        Ok(())
    }

    /// The sync node `node` stops: its device sessions end with it.
    pub async fn node_stopped(&self, node: &str) -> Result<()> {
        self.store
            .run(
                "DELETE device_session WHERE node = $n RETURN NONE;
                 DELETE type::record('sync_node', $n) RETURN NONE;
                 DELETE type::record('node_commits', $n) RETURN NONE;",
                json!({ "n": node }),
            )
            .await?;
        Ok(())
    }

    /// Records how many sessions `account`'s `device` has following `event` on the sync node
    /// `node` (0: none any more). Each node writes only its own.
    pub async fn device_sessions_on(
        &self,
        node: &str,
        event: &str,
        account: &str,
        device: &str,
        sessions: u32,
    ) -> Result<()> {
        let key = json!([node, event, account, device]);
        let sql = if sessions == 0 {
            "DELETE type::record('device_session', $k) RETURN NONE;"
        } else {
            "UPSERT type::record('device_session', $k)
                 SET node = $n, event = $e, account = $a, device = $d, sessions = $s RETURN NONE;"
        };
        self.store
            .run(sql, json!({ "k": key, "n": node, "e": event, "a": account, "d": device, "s": sessions }))
            .await?;
        Ok(())
    }

    /// The sessions of `event`'s devices on every sync node alive (heard from at or after
    /// `alive_since_ms`): for seat holders, as [`Engine::devices_seen`].
    pub async fn device_sessions(&self, actor: &str, event: &str, alive_since_ms: i64) -> Result<Vec<DeviceSessions>> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Read, Target::Setup), "event")?;
        let mut rows = self
            .store
            .run(
                "LET $alive = SELECT VALUE record::id(id) FROM sync_node WHERE alive_at >= $since;
                 SELECT node, account, device, sessions FROM device_session WHERE event = $e AND node IN $alive;",
                json!({ "e": ev.id, "since": alive_since_ms }),
            )
            .await?;
        rows.all(1)
    }

    /// Tells the other sync nodes that `node` has made `commits` commits so far (see
    /// [`Engine::node_commit_counts`]).
    pub async fn node_committed(&self, node: &str, commits: i64) -> Result<()> {
        self.store
            .run(
                "UPSERT type::record('node_commits', $n) SET commits = $c RETURN NONE;",
                json!({ "n": node, "c": commits }),
            )
            .await?;
        Ok(())
    }

    /// The sync nodes heard from at or after `alive_since_ms` (their heartbeats).
    pub async fn nodes_alive(&self, alive_since_ms: i64) -> Result<Vec<String>> {
        self.store
            .run(
                "SELECT VALUE record::id(id) FROM sync_node WHERE alive_at >= $since;",
                json!({ "since": alive_since_ms }),
            )
            .await?
            .all(0)
    }

    /// The commit counts of `nodes`, each read by its key (see migration 0013): a node whose
    /// count moved has committed since, and the heads of the events followed are worth
    /// reading. A node that never told of a commit is left out.
    pub async fn node_commit_counts(&self, nodes: &[String]) -> Result<Vec<(String, i64)>> {
        #[derive(serde::Deserialize)]
        struct Row {
            node: String,
            commits: i64,
        }
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<Row> = self
            .store
            .run(
                "LET $ids = $nodes.map(|$n| type::record('node_commits', $n));
                 SELECT record::id(id) AS node, commits FROM $ids WHERE commits != NONE;",
                json!({ "nodes": nodes }),
            )
            .await?
            .all(1)?;
        Ok(rows.into_iter().map(|r| (r.node, r.commits)).collect())
    }
}

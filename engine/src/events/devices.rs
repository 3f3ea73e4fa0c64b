//! The devices that synced an event, as the sync servers record them: no event records,
//! no change-log entries.

use serde_json::json;

use crate::{
    Engine, Result,
    access::{Action, Target, decide, require},
    model::DeviceSeen,
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

    /// The devices that synced an event, the most recent first (at most `limit`): for seat
    /// holders, who see the event as a whole.
    pub async fn devices_seen(&self, actor: &str, event: &str, limit: usize) -> Result<Vec<DeviceSeen>> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Read, Target::Setup), "event")?;
        self.store
            .run(
                "SELECT account, device, cursor, first_seen, last_seen, live FROM device_seen
                     WHERE event = $e ORDER BY last_seen DESC LIMIT $n;",
                json!({ "e": ev.id, "n": limit }),
            )
            .await?
            .all(0)
    }
}

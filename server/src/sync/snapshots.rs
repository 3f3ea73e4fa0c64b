//! Snapshots at call time: 2,000 phones of 20 collaborators subscribing within a minute
//! see 20 different things, not 2,000. A snapshot read for one standing (without the person)
//! is kept a few seconds, its frames serialized once, and given to every session of that
//! standing: each takes it as a snapshot at its cursor and catches up from there through
//! the log, exactly as a client resuming from that cursor would (and only if
//! `engine::feed::resume` says its access did not narrow since, else it reads its own).
//! A standing that receives records of its person's own (punches) is read for them alone.

use std::{sync::Arc, time::Duration};

use axum::extract::ws::Utf8Bytes;
use engine::{
    access::{Module, Standing},
    feed::{Resume, View},
    protocol::{Limits, Record, ServerMessage},
};

use super::hub::{Hub, frame, sized_chunks};

/// How long a snapshot is kept for other sessions of its standing.
pub(super) const KEPT: Duration = Duration::from_secs(10);
/// Snapshots kept at most (one per standing: the event's seat holders, each collaborator's
/// members, …).
pub(super) const KEPT_MAX: usize = 64;
/// A kept snapshot serves sessions whose head is at most about this far past it (further,
/// its catch-up would cost more than a read): the key changes every so many entries.
const BEHIND_MAX: i64 = 1_000;

/// A snapshot shared by the sessions of one standing.
pub(super) struct Shared {
    /// The standing it was read for, without the person.
    anyone: Standing,
    /// The view at `cursor` of the account that read it.
    view: View,
    cursor: i64,
    pub frames: Vec<Utf8Bytes>,
}

/// A snapshot for one session: its view at `cursor`, and the frames to send.
pub(super) struct Given {
    pub view: View,
    pub cursor: i64,
    pub shared: Arc<Shared>,
}

fn anyone(s: &Standing) -> Standing {
    Standing { person: String::new(), ..s.clone() }
}

/// A snapshot's records as frames (one empty chunk for an empty event).
fn frames(limits: &Limits, event: &str, cursor: i64, records: &[Record]) -> Vec<Utf8Bytes> {
    let chunks: Vec<&[Record]> = if records.is_empty() {
        vec![&[]]
    } else {
        sized_chunks(records, limits.snapshot_chunk_records_max, limits.frame_out_bytes_target)
    };
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            frame(&ServerMessage::Snapshot { event: event.into(), cursor, records: chunk.to_vec(), last: i + 1 == n })
        })
        .collect()
}

impl Hub {
    /// A snapshot of `event` for `account`, whose view at `head` is `view`: shared with the
    /// sessions of the same standing when one was read lately, else read (a few at a time on
    /// the node: a queue, not a refusal).
    pub(super) async fn snapshot(&self, account: &str, event: &str, view: &View, head: i64) -> engine::Result<Given> {
        let own = view.standing.membership.as_ref().is_some_and(|m| m.modules.has(Module::Labor));
        if !own {
            let anyone = anyone(&view.standing);
            let key = format!("{event}\u{0}{}\u{0}{anyone:?}", head / BEHIND_MAX);
            let cell = self.snapshots_kept.get(key);
            let mut read_here = false;
            let shared = cell
                .get_or_try_init(|| {
                    read_here = true;
                    self.read_snapshot(account, event)
                })
                .await?
                .clone();
            if read_here {
                return Ok(Given { view: shared.view.clone(), cursor: shared.cursor, shared });
            }
            if shared.anyone == anyone
                && let Some(view) = self.view_at(account, event, view, head, shared.cursor).await?
            {
                return Ok(Given { view, cursor: shared.cursor, shared });
            }
        }
        let shared = self.read_snapshot(account, event).await?;
        Ok(Given { view: shared.view.clone(), cursor: shared.cursor, shared })
    }

    async fn read_snapshot(&self, account: &str, event: &str) -> engine::Result<Arc<Shared>> {
        let snap = {
            let _turn = self.snapshots.acquire().await;
            self.engine.snapshot(account, event).await?
        };
        Ok(Arc::new(Shared {
            anyone: anyone(&snap.view.standing),
            cursor: snap.cursor,
            frames: frames(&self.limits, event, snap.cursor, &snap.records),
            view: snap.view,
        }))
    }

    /// `account`'s view at `cursor` (from `view`, theirs at `head`, or read again when the
    /// cursor is past it), if they lost no access since it; None if they did.
    async fn view_at(
        &self,
        account: &str,
        event: &str,
        view: &View,
        head: i64,
        cursor: i64,
    ) -> engine::Result<Option<View>> {
        let (view, head) = if cursor > head { self.engine.view(account, event).await? } else { (view.clone(), head) };
        // The log must still hold what follows the cursor.
        if cursor > head || cursor < self.engine.log_floor(event).await? {
            return Ok(None);
        }
        let mut about = self.engine.changes_about(event, cursor, account).await?;
        about.retain(|c| c.seq <= head);
        Ok(match engine::feed::resume(&view, &about) {
            Resume::Replay(at) => Some(at),
            Resume::Narrowed => None,
        })
    }
}

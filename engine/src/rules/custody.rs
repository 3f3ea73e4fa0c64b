//! Gear custody: assets with a tag, checked out to a person with a due time and checked back
//! in with their condition, at desks that may be offline. Every move is kept (custody
//! history, append only); a check-out made while the asset was already out — two desks that
//! could not talk — is flagged `double_checkout` on the later one by clock, and the flag is
//! kept equal to what the moves say.
//!
//! Members of a collaborator granted the `assets` module and seat holders reach the event's
//! gear; registering assets is the event team's.

use crate::{
    Error, Result,
    model::{Asset, AssetState, Condition, CustodyAction, CustodyMove},
    rules::{record_id, validate_name},
    time,
};
use serde::Deserialize;

/// Longest asset tag.
pub const TAG_LEN_MAX: usize = 64;
/// Longest custody note, in characters.
pub const NOTE_LEN_MAX: usize = 2_000;

pub fn asset_key(event: &str, tag: &str) -> String {
    format!("{event}|{tag}")
}

/// Filters of the asset list.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetFilter {
    /// Only the assets out past their due time.
    #[serde(default)]
    pub overdue: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAsset {
    pub tag: String,
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// A custody move as a desk sends it (the `fields` of a `custody` create).
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewMove {
    #[serde(default)]
    pub id: Option<String>,
    pub asset: String,
    pub action: CustodyAction,
    #[serde(default)]
    pub holder: Option<String>,
    #[serde(default)]
    pub due_at: Option<String>,
    #[serde(default)]
    pub condition: Option<Condition>,
    #[serde(default)]
    pub note: Option<String>,
    pub device_time: String,
}

// ---- rules (pure) ----

fn check_tag(tag: &str) -> Result<String> {
    super::gate::check_code("tag", tag, TAG_LEN_MAX)
}

pub fn build_asset(input: NewAsset, event: &str) -> Result<Asset> {
    let tag = check_tag(&input.tag)?;
    let kind = validate_name("kind", &input.kind)?;
    Ok(Asset {
        id: asset_key(event, &tag),
        event: event.into(),
        name: match input.name {
            Some(n) => validate_name("name", &n)?,
            None => format!("{kind} {tag}"),
        },
        tag,
        kind,
        created_at: time::now(),
    })
}

/// A move from what a desk sends; `device` and `by` are who sent it. A check-out names the
/// holder (checked by the caller) and a due time; a check-in its condition, with a note
/// when damaged.
pub fn build_move(input: NewMove, event: &str, device: &str, by: &str, hlc: &str) -> Result<CustodyMove> {
    let (holder, due_at, condition, note) = match input.action {
        CustodyAction::CheckOut => {
            if input.condition.is_some() || input.note.is_some() {
                return Err(Error::invalid("a check-out takes a holder and a due time, not a condition"));
            }
            let holder = input.holder.map(|h| h.trim().to_string()).filter(|h| !h.is_empty());
            let holder = holder.ok_or_else(|| Error::invalid("a check-out needs the holder"))?;
            let due = input.due_at.ok_or_else(|| Error::invalid("a check-out needs due_at"))?;
            (Some(holder), Some(time::parse("due_at", &due)?), None, None)
        }
        CustodyAction::CheckIn => {
            if input.holder.is_some() || input.due_at.is_some() {
                return Err(Error::invalid("a check-in takes a condition, not a holder or a due time"));
            }
            let condition =
                input.condition.ok_or_else(|| Error::invalid("a check-in needs its condition (ok or damaged)"))?;
            let note = input.note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
            if note.as_ref().is_some_and(|n| n.chars().count() > NOTE_LEN_MAX) {
                return Err(Error::invalid(format!("note must be at most {NOTE_LEN_MAX} characters")));
            }
            if condition == Condition::Damaged && note.is_none() {
                return Err(Error::invalid("a damaged check-in needs a note saying what is wrong"));
            }
            (None, None, Some(condition), note)
        }
    };
    Ok(CustodyMove {
        id: record_id(input.id.as_deref())?,
        event: event.into(),
        asset: check_tag(&input.asset)?,
        action: input.action,
        holder,
        due_at,
        condition,
        note,
        device: device.into(),
        device_time: time::parse("device_time", &input.device_time)?,
        hlc: hlc.into(),
        recorded_by: by.into(),
    })
}

pub(crate) fn by_clock<'a>(moves: impl IntoIterator<Item = &'a CustodyMove>) -> Vec<&'a CustodyMove> {
    let mut v: Vec<&CustodyMove> = moves.into_iter().collect();
    v.sort_by(|a, b| (&a.hlc, &a.id).cmp(&(&b.hlc, &b.id)));
    v
}

/// The check-outs among one asset's moves made while it was already out (walking by
/// clock): `(check-out, the check-out before it)`.
pub fn double_checkouts(moves: &[&CustodyMove]) -> Vec<(String, String)> {
    let mut out_with: Option<&str> = None;
    let mut found = Vec::new();
    for m in by_clock(moves.iter().copied()) {
        match m.action {
            CustodyAction::CheckOut => {
                if let Some(earlier) = out_with {
                    found.push((m.id.clone(), earlier.to_string()));
                }
                out_with = Some(&m.id);
            }
            CustodyAction::CheckIn => out_with = None,
        }
    }
    found
}

/// Where an asset is now, from its moves, as of `now`.
pub fn state(asset: Asset, moves: &[&CustodyMove], now: &str) -> AssetState {
    let ordered = by_clock(moves.iter().copied());
    let last = ordered.last();
    let (holder, due_at) = match last {
        Some(m) if m.action == CustodyAction::CheckOut => (m.holder.clone(), m.due_at.clone()),
        _ => (None, None),
    };
    let last_condition = ordered.iter().rev().find(|m| m.action == CustodyAction::CheckIn).and_then(|m| m.condition);
    let overdue = due_at.as_deref().is_some_and(|d| d < now);
    AssetState { asset, holder, due_at, overdue, last_condition }
}

pub(crate) fn flag_key(move_id: &str) -> String {
    format!("{move_id}|double_checkout")
}

// ---- the engine's operations ----

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(id: &str, hlc: &str, action: CustodyAction) -> CustodyMove {
        CustodyMove {
            id: id.into(),
            event: "e".into(),
            asset: "R-1".into(),
            action,
            holder: (action == CustodyAction::CheckOut).then(|| "p".to_string()),
            due_at: (action == CustodyAction::CheckOut).then(|| "2026-07-04T20:00:00.000Z".to_string()),
            condition: (action == CustodyAction::CheckIn).then_some(Condition::Ok),
            note: None,
            device: "d".into(),
            device_time: String::new(),
            hlc: hlc.into(),
            recorded_by: "b".into(),
        }
    }

    use CustodyAction::*;

    #[test]
    fn two_desks_check_out_the_same_radio() {
        let a = mv("a", "0002", CheckOut);
        let b = mv("b", "0001", CheckOut);
        assert_eq!(double_checkouts(&[&a, &b]), vec![("a".into(), "b".into())], "the later by clock");
        let back = mv("c", "0001.5", CheckIn);
        assert!(double_checkouts(&[&a, &b, &back]).is_empty(), "a check-in between: no double");
    }

    #[test]
    fn where_an_asset_is() {
        let asset = build_asset(NewAsset { tag: "R-1".into(), kind: "radio".into(), name: None }, "e").unwrap();
        assert_eq!(asset.name, "radio R-1");
        let out = mv("a", "0001", CheckOut);
        let s = state(asset.clone(), &[&out], "2026-07-04T21:00:00.000Z");
        assert_eq!((s.holder.as_deref(), s.overdue), (Some("p"), true));
        let s = state(asset.clone(), &[&out], "2026-07-04T19:00:00.000Z");
        assert!(!s.overdue);
        let back = mv("b", "0002", CheckIn);
        let s = state(asset, &[&back, &out], "2026-07-04T21:00:00.000Z");
        assert_eq!((s.holder, s.overdue, s.last_condition), (None, false, Some(Condition::Ok)));
    }

    #[test]
    fn moves_say_what_they_need() {
        let at = "2026-07-04T18:00:00Z".to_string();
        let base = NewMove {
            id: None,
            asset: "R-1".into(),
            action: CheckOut,
            holder: Some("p".into()),
            due_at: Some("2026-07-04T23:00:00Z".into()),
            condition: None,
            note: None,
            device_time: at.clone(),
        };
        assert!(build_move(base.clone(), "e", "d", "b", "h").is_ok());
        let no_due = NewMove { due_at: None, ..base.clone() };
        assert!(build_move(no_due, "e", "d", "b", "h").unwrap_err().to_string().contains("due_at"));
        let check_in = NewMove { action: CheckIn, holder: None, due_at: None, ..base.clone() };
        assert!(build_move(check_in.clone(), "e", "d", "b", "h").unwrap_err().to_string().contains("condition"));
        let damaged = NewMove { condition: Some(Condition::Damaged), ..check_in.clone() };
        assert!(build_move(damaged.clone(), "e", "d", "b", "h").unwrap_err().to_string().contains("note"));
        let noted = NewMove { note: Some("antenna snapped".into()), ..damaged };
        assert_eq!(build_move(noted, "e", "d", "b", "h").unwrap().note.as_deref(), Some("antenna snapped"));
        let bad_tag = NewMove { asset: "R 1".into(), ..base };
        assert!(build_move(bad_tag, "e", "d", "b", "h").is_err());
    }
}

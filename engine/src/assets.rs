//! Gear custody: assets with a tag, checked out to a person with a due time and checked back
//! in with their condition, at desks that may be offline. Every move is kept (custody
//! history, append only); a check-out made while the asset was already out — two desks that
//! could not talk — is flagged `double_checkout` on the later one by clock, and the flag is
//! kept equal to what the moves say.
//!
//! Members of a collaborator granted the `assets` module and seat holders reach the event's
//! gear; registering assets is the event team's.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use crate::{
    Engine, Error, Result,
    access::{Action, Module, Target, decide},
    accounts::validate_name,
    changes::Write,
    events::gate,
    model::{Asset, AssetState, Condition, CustodyAction, CustodyFlag, CustodyMove},
    rules::record_id,
    time,
};

/// Longest asset tag.
pub const TAG_LEN_MAX: usize = 64;
/// Longest custody note, in characters.
pub const NOTE_LEN_MAX: usize = 2_000;
/// Most assets, moves or flags one list returns.
pub const ASSET_LIST_MAX: usize = 10_000;

pub fn asset_key(event: &str, tag: &str) -> String {
    format!("{event}|{tag}")
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
    crate::frontgate::check_code("tag", tag, TAG_LEN_MAX)
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

fn by_clock<'a>(moves: impl IntoIterator<Item = &'a CustodyMove>) -> Vec<&'a CustodyMove> {
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

fn flag_key(move_id: &str) -> String {
    format!("{move_id}|double_checkout")
}

// ---- the engine's operations ----

impl Engine {
    pub async fn create_asset(&self, actor: &str, event: &str, input: NewAsset) -> Result<Asset> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        gate(decide(&s, Action::Write, Target::Setup), "event")?;
        let a = build_asset(input, &ev.id)?;
        self.commit_as(&ev, vec![Write::create("asset", &a.id, &a, Vec::new())?])
            .await
            .map_err(|e| crate::store::on_duplicate(e, "asset_exists", "this event has an asset with that tag"))?;
        Ok(a)
    }

    /// Records a custody move made at a desk (a member with the `assets` module, or the event
    /// team), and keeps the asset's `double_checkout` flags equal to what its moves say, in
    /// the same commit. A move whose id is stored already is answered with the stored one.
    pub async fn record_custody(&self, actor: &str, event: &str, input: NewMove) -> Result<CustodyMove> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        gate(decide(&s, Action::Write, Target::Module(Module::Assets)), "event")?;
        let device = self.origin.as_ref().map_or("server", |o| o.origin.device.as_str()).to_string();
        let m = build_move(input, &ev.id, &device, actor, &self.stamp())?;
        self.load::<Asset>("asset", &ev.id, &asset_key(&ev.id, &m.asset)).await?.ok_or(Error::not_found("asset"))?;
        if let Some(h) = &m.holder
            && self.account(h).await?.is_none()
        {
            return Err(Error::rule("unknown_holder", "holder must be the id of a BackOps account"));
        }
        let _held = self.field_guard(&ev.id).await;
        if let Some(old) = self.load::<CustodyMove>("custody", &ev.id, &m.id).await? {
            if (old.asset.as_str(), old.action, old.device_time.as_str())
                == (m.asset.as_str(), m.action, m.device_time.as_str())
            {
                return Ok(old);
            }
            return Err(Error::conflict("move_exists", "another custody move has this id"));
        }
        let mut moves: Vec<CustodyMove> = self.records_where("custody", &ev.id, "asset", &m.asset).await?;
        moves.push(m.clone());
        let refs: Vec<&CustodyMove> = moves.iter().collect();
        let want: BTreeMap<String, String> = double_checkouts(&refs).into_iter().collect();
        let flags: Vec<CustodyFlag> = self.records_where("custody_flag", &ev.id, "asset", &m.asset).await?;
        let mut have: BTreeMap<String, CustodyFlag> = flags.into_iter().map(|f| (f.custody.clone(), f)).collect();
        let mut writes = vec![Write::create("custody", &m.id, &m, Vec::new())?];
        let now = time::now();
        for (dup, earlier) in want {
            match have.remove(&dup) {
                Some(f) if f.earlier == earlier => {}
                Some(mut f) => {
                    f.earlier = earlier;
                    writes.push(Write::replace("custody_flag", &f.id, &f, Vec::new(), Vec::new())?);
                }
                None => {
                    let f = CustodyFlag {
                        id: flag_key(&dup),
                        event: ev.id.clone(),
                        asset: m.asset.clone(),
                        custody: dup,
                        earlier,
                        raised_at: now.clone(),
                    };
                    writes.push(Write::create("custody_flag", &f.id, &f, Vec::new())?);
                }
            }
        }
        for f in have.into_values() {
            writes.push(Write::delete("custody_flag", &f.id, Vec::new()));
        }
        self.commit_as(&ev, writes).await?;
        Ok(m)
    }

    async fn assets_module(&self, actor: &str, event: &str) -> Result<crate::model::Event> {
        let (ev, s) = self.standing(actor, event).await?;
        gate(decide(&s, Action::Read, Target::Module(Module::Assets)), "event")?;
        Ok(ev)
    }

    /// Every asset with where it is now; `overdue_only` keeps those out past their due time.
    pub async fn list_assets(&self, actor: &str, event: &str, overdue_only: bool) -> Result<Vec<AssetState>> {
        let ev = self.assets_module(actor, event).await?;
        let mut rows = self
            .store
            .run(
                &format!(
                    "SELECT *, record::id(id) AS id FROM asset WHERE event = $e ORDER BY tag LIMIT {ASSET_LIST_MAX};
                     SELECT *, record::id(id) AS id FROM custody WHERE event = $e;"
                ),
                json!({ "e": ev.id }),
            )
            .await?;
        let assets: Vec<Asset> = rows.all(0)?;
        let moves: Vec<CustodyMove> = rows.all(1)?;
        let mut by_asset: BTreeMap<&str, Vec<&CustodyMove>> = BTreeMap::new();
        for m in &moves {
            by_asset.entry(m.asset.as_str()).or_default().push(m);
        }
        let now = time::now();
        Ok(assets
            .into_iter()
            .map(|a| {
                let of = by_asset.get(a.tag.as_str()).cloned().unwrap_or_default();
                state(a, &of, &now)
            })
            .filter(|s| !overdue_only || s.overdue)
            .collect())
    }

    /// One asset's custody history, oldest first by clock.
    pub async fn custody_history(&self, actor: &str, event: &str, tag: &str) -> Result<Vec<CustodyMove>> {
        let ev = self.assets_module(actor, event).await?;
        self.load::<Asset>("asset", &ev.id, &asset_key(&ev.id, tag.trim())).await?.ok_or(Error::not_found("asset"))?;
        let moves: Vec<CustodyMove> = self.records_where("custody", &ev.id, "asset", tag.trim()).await?;
        Ok(by_clock(&moves).into_iter().cloned().collect())
    }

    pub async fn list_custody_flags(&self, actor: &str, event: &str) -> Result<Vec<CustodyFlag>> {
        let ev = self.assets_module(actor, event).await?;
        self.list("custody_flag", &ev.id, None, "raised_at").await
    }
}

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

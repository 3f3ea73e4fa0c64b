//! The planners of the field records made on devices: scans, punches and custody moves.
//!
//! A device decides what it can from its replica (a lane admits or refuses, a desk refuses
//! a check-out of gear it knows is out) and the app never decides for it: `lane_scan`,
//! `phone_punch` and `desk_custody` are the device's planners. The server records what the
//! device decided and keeps what it derives from all of them equal to what they say (scan
//! flags, timecards, custody flags): `record_scan`, `record_punch`, `record_custody`. Each is
//! decided on how many judgements of its subject (a credential, a person, an asset) were
//! committed, and its commit fails if that number moved (see [`Write::judged_on`]): the
//! caller plans again, whichever node judged first.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    Error, Result,
    access::{Action, Module, Target},
    kind::{Kind, person_scope},
    model::{
        Asset, Credential, CredentialStatus, CustodyAction, CustodyFlag, CustodyMove, Direction, Gate, Gps,
        LaborPeriod, LaborRules, Punch, PunchKind, Scan, ScanDecision, ScanFlag, ScanFlagCode, Timecard,
        TimecardException,
    },
    plan::{Facts, Planned, Write, allow, fields, judged_key, labor_key, load, load_where},
    protocol::MutationOp,
    rules::{
        custody::{self, NewMove, asset_key},
        gate::{self, NewScan, credential_key},
        labor::{self, NewPunch},
    },
};

/// The gate module's records are reached by its members and the event team.
const GATE: Target<'static> = Target::Module(Module::Gate);
const ASSETS: Target<'static> = Target::Module(Module::Assets);

// ---- the server: recording what devices decided ----

/// Records a scan a lane made (a gate member's device, or the event team's), as the device
/// decided it, and keeps the flags the scans call for: `duplicate_entry` on every admission
/// that came while the credential was already inside (by clock: a late exit scan that shows
/// an admission was a re-entry withdraws its flag), and `admitted_while_revoked` on an
/// admission stamped after a revocation. One scan and the flags it changes commit together.
pub async fn record_scan(f: &impl Facts, input: NewScan) -> Result<Planned<Scan>> {
    allow(f, Action::Write, GATE, "event")?;
    let ev = f.event().id.clone();
    let g: Gate = load(f, Kind::Gate, input.gate.trim()).await?.ok_or(Error::not_found("gate"))?;
    let scan = gate::build_scan(input, &ev, &g, f.device(), f.actor(), f.stamp())?;
    let key = judged_key(Kind::Scan, &scan.credential);
    let seen = f.judgement(&key).await?;
    let mut writes = vec![Write::create(Kind::Scan, &scan.id, &scan, Vec::new())?.judged_on(&key, seen)];
    let flag = |scan: &Scan, code, earlier: Option<String>| ScanFlag {
        id: gate::flag_key(&scan.id, code),
        event: scan.event.clone(),
        scan: scan.id.clone(),
        credential: scan.credential.clone(),
        gate: scan.gate.clone(),
        code,
        earlier,
        raised_at: f.now().to_string(),
    };
    if scan.decision == ScanDecision::Admit {
        let credential: Option<Credential> = load(f, Kind::Credential, &credential_key(&ev, &scan.credential)).await?;
        if let Some(c) = credential
            && c.status == CredentialStatus::Revoked
            && c.revoked_stamp.as_deref().is_some_and(|r| scan.hlc.as_str() > r)
        {
            let fl = flag(&scan, ScanFlagCode::AdmittedWhileRevoked, None);
            writes.push(Write::create(Kind::ScanFlag, &fl.id, &fl, Vec::new())?);
        }
    }
    if matches!(scan.decision, ScanDecision::Admit | ScanDecision::Exit) {
        // The duplicate entries of the credential, as all its scans now say.
        let mut scans: Vec<Scan> = load_where(f, Kind::Scan, "credential", &scan.credential).await?;
        scans.retain(|x| x.id != scan.id);
        scans.push(scan.clone());
        let refs: Vec<&Scan> = scans.iter().collect();
        let want: BTreeMap<String, String> = gate::duplicate_entries(&refs).into_iter().collect();
        let flags: Vec<ScanFlag> = load_where(f, Kind::ScanFlag, "credential", &scan.credential).await?;
        let mut have: BTreeMap<String, ScanFlag> =
            flags.into_iter().filter(|x| x.code == ScanFlagCode::DuplicateEntry).map(|x| (x.scan.clone(), x)).collect();
        for (dup, earlier) in &want {
            match have.remove(dup) {
                Some(x) if x.earlier.as_ref() == Some(earlier) => {}
                Some(mut x) => {
                    x.earlier = Some(earlier.clone());
                    writes.push(Write::replace(Kind::ScanFlag, &x.id, &x, Vec::new(), Vec::new())?);
                }
                None => {
                    let Some(d) = scans.iter().find(|x| &x.id == dup) else { continue };
                    let fl = flag(d, ScanFlagCode::DuplicateEntry, Some(earlier.clone()));
                    writes.push(Write::create(Kind::ScanFlag, &fl.id, &fl, Vec::new())?);
                }
            }
        }
        // Flags the scans no longer call for: a late exit showed a re-entry.
        for x in have.into_values() {
            writes.push(Write::delete(Kind::ScanFlag, &x.id, Vec::new()));
        }
    }
    Ok(Planned::new(scan, writes))
}

/// Records one of the writer's own punches (a member of a collaborator with the `labor`
/// module, or a seat holder) and rebuilds their timecards in the same commit. A punch whose
/// id is stored already is answered with the stored one and changes nothing.
pub async fn record_punch(f: &impl Facts, input: NewPunch) -> Result<Planned<Punch>> {
    let me = f.actor().to_string();
    allow(f, Action::Write, Target::Personal { module: Module::Labor, owner: &me }, "event")?;
    let ev = f.event().id.clone();
    let punch = labor::build_punch(input, &ev, &me, f.device(), f.stamp())?;
    if let Some(p) = load::<Punch>(f, Kind::Punch, &punch.id).await? {
        if p.person == punch.person && p.kind == punch.kind && p.device_time == punch.device_time {
            return Ok(Planned::new(p, Vec::new()));
        }
        return Err(Error::conflict("punch_exists", "another punch has this id"));
    }
    let key = judged_key(Kind::Punch, &me);
    let seen = f.judgement(&key).await?;
    // Timed with the event's rules and locked periods as they are now: a change of them on
    // another node before this commits sends the punch back to be planned again.
    let settings = f.judgement(&labor_key(&ev)).await?;
    let mut punches: Vec<Punch> = load_where(f, Kind::Punch, "person", &me).await?;
    punches.push(punch.clone());
    let rules: LaborRules = load(f, Kind::LaborRules, &ev).await?.unwrap_or_else(|| LaborRules::default_for(&ev));
    let mut periods: Vec<LaborPeriod> = load_where(f, Kind::LaborPeriod, "event", &ev).await?;
    periods.sort_by(|a, b| a.first_day.cmp(&b.first_day));
    let stored: Vec<Timecard> = load_where(f, Kind::Timecard, "person", &me).await?;
    let mut writes = vec![
        Write::create(Kind::Punch, &punch.id, &punch, vec![person_scope(&me)])?
            .judged_on(&key, seen)
            .checked_against(&labor_key(&ev), settings),
    ];
    writes.extend(timecard_writes(
        &stored,
        labor::build_timecards(&ev, &me, &punches, &rules),
        &periods,
        &me,
        f.now(),
    )?);
    Ok(Planned::new(punch, writes))
}

/// Records a custody move made at a desk (a member with the `assets` module, or the event
/// team), and keeps the asset's `double_checkout` flags equal to what its moves say, in the
/// same commit. A move whose id is stored already is answered with the stored one.
pub async fn record_custody(f: &impl Facts, input: NewMove) -> Result<Planned<CustodyMove>> {
    allow(f, Action::Write, ASSETS, "event")?;
    let ev = f.event().id.clone();
    let m = custody::build_move(input, &ev, f.device(), f.actor(), f.stamp())?;
    load::<Asset>(f, Kind::Asset, &asset_key(&ev, &m.asset)).await?.ok_or(Error::not_found("asset"))?;
    if let Some(h) = &m.holder
        && f.account_exists(h).await? == Some(false)
    {
        return Err(Error::rule("unknown_holder", "holder must be the id of a BackOps account"));
    }
    if let Some(old) = load::<CustodyMove>(f, Kind::Custody, &m.id).await? {
        if (old.asset.as_str(), old.action, old.device_time.as_str())
            == (m.asset.as_str(), m.action, m.device_time.as_str())
        {
            return Ok(Planned::new(old, Vec::new()));
        }
        return Err(Error::conflict("move_exists", "another custody move has this id"));
    }
    let key = judged_key(Kind::Custody, &m.asset);
    let seen = f.judgement(&key).await?;
    let mut moves: Vec<CustodyMove> = load_where(f, Kind::Custody, "asset", &m.asset).await?;
    moves.push(m.clone());
    let refs: Vec<&CustodyMove> = moves.iter().collect();
    let want: BTreeMap<String, String> = custody::double_checkouts(&refs).into_iter().collect();
    let flags: Vec<CustodyFlag> = load_where(f, Kind::CustodyFlag, "asset", &m.asset).await?;
    let mut have: BTreeMap<String, CustodyFlag> = flags.into_iter().map(|x| (x.custody.clone(), x)).collect();
    let mut writes = vec![Write::create(Kind::Custody, &m.id, &m, Vec::new())?.judged_on(&key, seen)];
    for (dup, earlier) in want {
        match have.remove(&dup) {
            Some(x) if x.earlier == earlier => {}
            Some(mut x) => {
                x.earlier = earlier;
                writes.push(Write::replace(Kind::CustodyFlag, &x.id, &x, Vec::new(), Vec::new())?);
            }
            None => {
                let x = CustodyFlag {
                    id: custody::flag_key(&dup),
                    event: ev.clone(),
                    asset: m.asset.clone(),
                    custody: dup,
                    earlier,
                    raised_at: f.now().to_string(),
                };
                writes.push(Write::create(Kind::CustodyFlag, &x.id, &x, Vec::new())?);
            }
        }
    }
    for x in have.into_values() {
        writes.push(Write::delete(Kind::CustodyFlag, &x.id, Vec::new()));
    }
    Ok(Planned::new(m, writes))
}

// ---- timecards: what the punches say, kept ----

/// Whether two timecards count the same (approval and times aside).
fn same_count(a: &Timecard, b: &Timecard) -> bool {
    a.punches == b.punches
        && a.worked_hours == b.worked_hours
        && a.paid_hours == b.paid_hours
        && a.overtime_hours == b.overtime_hours
        && a.meal_penalties == b.meal_penalties
        && a.exceptions == b.exceptions
}

fn locked(periods: &[LaborPeriod], day: &str) -> bool {
    periods.iter().any(|p| p.first_day.as_str() <= day && day <= p.last_day.as_str())
}

/// The writes that bring a person's stored timecards to what their punches say now. A day
/// in a locked period keeps its counts; a punch it does not count is added to it as a
/// `period_locked` exception. A timecard whose counts change loses its approval.
pub(crate) fn timecard_writes(
    stored: &[Timecard],
    built: Vec<Timecard>,
    periods: &[LaborPeriod],
    person: &str,
    now: &str,
) -> Result<Vec<Write>> {
    let scope = vec![person_scope(person)];
    let mut stored: BTreeMap<String, Timecard> = stored.iter().map(|t| (t.day.clone(), t.clone())).collect();
    let mut writes = Vec::new();
    for mut card in built {
        let old = stored.remove(&card.day);
        if locked(periods, &card.day) {
            let mut kept = old.clone().unwrap_or_else(|| Timecard {
                punches: Vec::new(),
                worked_hours: 0.0,
                paid_hours: 0.0,
                overtime_hours: 0.0,
                meal_penalties: 0,
                exceptions: Vec::new(),
                ..card.clone()
            });
            for p in card.punches.iter().filter(|p| !kept.punches.contains(p)) {
                if kept.exceptions.iter().any(|e| e.code == "period_locked" && e.punch.as_ref() == Some(p)) {
                    continue;
                }
                kept.exceptions.push(TimecardException {
                    code: "period_locked".into(),
                    message: "this punch came after the period was locked: kept, not counted; review it".into(),
                    punch: Some(p.clone()),
                });
            }
            match old {
                Some(o) if o == kept => {}
                Some(_) => {
                    kept.updated_at = now.to_string();
                    writes.push(Write::replace(Kind::Timecard, &kept.id, &kept, scope.clone(), scope.clone())?);
                }
                None => {
                    kept.updated_at = now.to_string();
                    writes.push(Write::create(Kind::Timecard, &kept.id, &kept, scope.clone())?);
                }
            }
            continue;
        }
        match old {
            Some(o) if same_count(&o, &card) => {}
            Some(_) => {
                card.updated_at = now.to_string();
                writes.push(Write::replace(Kind::Timecard, &card.id, &card, scope.clone(), scope.clone())?);
            }
            None => {
                card.updated_at = now.to_string();
                writes.push(Write::create(Kind::Timecard, &card.id, &card, scope.clone())?);
            }
        }
    }
    // Days no punch points to any more (a late clock-in moved a shift), unless locked.
    for (_, old) in stored {
        if !locked(periods, &old.day) {
            writes.push(Write::delete(Kind::Timecard, &old.id, scope.clone()));
        }
    }
    Ok(writes)
}

// ---- the engine's operations ----

// ---- the device: deciding from the replica ----

/// What the app asks of a lane: which credential was read, where, which way.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LaneScan {
    #[serde(default)]
    id: Option<String>,
    credential: String,
    gate: String,
    lane: String,
    #[serde(default)]
    direction: Option<Direction>,
}

/// A lane's scan, decided from what the device holds: never by the app. The mutation
/// carries what the lane decided ([`pushed_fields`]).
pub async fn lane_scan(f: &impl Facts, asked: &Value) -> Result<Planned<Scan>> {
    allow(f, Action::Write, GATE, "event")?;
    let input: LaneScan = fields(Kind::Scan, MutationOp::Create, asked)?;
    let ev = f.event().id.clone();
    let g: Gate = load(f, Kind::Gate, input.gate.trim()).await?.ok_or(Error::not_found("gate"))?;
    let uid = input.credential.trim();
    let credential: Option<Credential> = load(f, Kind::Credential, &credential_key(&ev, uid)).await?;
    // A scan the replica holds that does not decode is not one the lane can judge by.
    let scans: Vec<Scan> = f
        .records_where(Kind::Scan, "credential", uid)
        .await?
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    let direction = input.direction.unwrap_or(Direction::Entry);
    let now = f.now().to_string();
    let decision = gate::decide_scan(credential.as_ref(), &g, direction, &now, gate::presence(&scans));
    let scan = NewScan {
        id: input.id,
        credential: uid.into(),
        gate: g.id.clone(),
        lane: input.lane,
        direction: Some(direction),
        decision,
        device_time: now,
    };
    let scan = gate::build_scan(scan, &ev, &g, f.device(), f.actor(), f.stamp())?;
    Ok(Planned::new(scan.clone(), vec![Write::create(Kind::Scan, &scan.id, &scan, Vec::new())?]))
}

/// What the app asks of a punch: which kind, and where if it may say.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhonePunch {
    #[serde(default)]
    id: Option<String>,
    kind: PunchKind,
    #[serde(default)]
    gps: Option<Gps>,
}

/// One of the person's own punches, with the phone's clock.
pub async fn phone_punch(f: &impl Facts, asked: &Value) -> Result<Planned<Punch>> {
    let me = f.actor().to_string();
    allow(f, Action::Write, Target::Personal { module: Module::Labor, owner: &me }, "event")?;
    let input: PhonePunch = fields(Kind::Punch, MutationOp::Create, asked)?;
    let punch = NewPunch { id: input.id, kind: input.kind, device_time: f.now().to_string(), gps: input.gps };
    let punch = labor::build_punch(punch, &f.event().id, &me, f.device(), f.stamp())?;
    let w = Write::create(Kind::Punch, &punch.id, &punch, vec![person_scope(&me)])?;
    Ok(Planned::new(punch, vec![w]))
}

/// A desk's custody move, with the device's clock. A check-out of an asset the device knows
/// is out is refused: check it in first.
pub async fn desk_custody(f: &impl Facts, asked: &Value) -> Result<Planned<CustodyMove>> {
    allow(f, Action::Write, ASSETS, "event")?;
    let mut asked = if asked.is_null() { json!({}) } else { asked.clone() };
    asked["device_time"] = json!(f.now());
    let mut input: NewMove = fields(Kind::Custody, MutationOp::Create, &asked)?;
    input.asset = input.asset.trim().to_string();
    let ev = f.event().id.clone();
    let asset: Asset = load(f, Kind::Asset, &asset_key(&ev, &input.asset)).await?.ok_or(Error::not_found("asset"))?;
    if input.action == CustodyAction::CheckOut {
        let moves: Vec<CustodyMove> = f
            .records_where(Kind::Custody, "asset", &asset.tag)
            .await?
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect();
        let refs: Vec<&CustodyMove> = moves.iter().collect();
        if custody::state(asset, &refs, "").holder.is_some() {
            return Err(Error::conflict("already_checked_out", "this asset is checked out: check it in first"));
        }
    }
    let m = custody::build_move(input, &ev, f.device(), f.actor(), f.stamp())?;
    Ok(Planned::new(m.clone(), vec![Write::create(Kind::Custody, &m.id, &m, Vec::new())?]))
}

/// The fields a device pushes for a field record it planned: what it decided (a scan's
/// decision, a punch's and a move's clock), never what the app asked.
pub fn pushed_fields(kind: Kind, after: &Value) -> Option<Value> {
    let mut f = match kind {
        Kind::Scan => json!({
            "credential": after["credential"],
            "gate": after["gate"],
            "lane": after["lane"],
            "direction": after["direction"],
            "decision": after["decision"],
            "device_time": after["device_time"],
        }),
        Kind::Custody => {
            let mut f = after.clone();
            if let Some(m) = f.as_object_mut() {
                for k in ["id", "event", "device", "hlc", "recorded_by"] {
                    m.remove(k);
                }
            }
            f
        }
        Kind::Punch => json!({ "kind": after["kind"], "device_time": after["device_time"], "gps": after.get("gps") }),
        _ => return None,
    };
    if let Some(m) = f.as_object_mut() {
        m.remove("id");
    }
    Some(f)
}

/// The push of a field record as the server records it. None: `kind` is not a field
/// record made on devices.
pub async fn server_push(f: &impl Facts, m: super::Push<'_>) -> Option<Result<Planned<(String, Value)>>> {
    let planned = async {
        if !m.kind.pushable(m.op) {
            return Err(m.kind.refuse(m.op));
        }
        match m.kind {
            Kind::Scan => super::as_pushed(record_scan(f, m.decode()?).await?),
            Kind::Punch => super::as_pushed(record_punch(f, m.decode()?).await?),
            _ => super::as_pushed(record_custody(f, m.decode()?).await?),
        }
    };
    match m.kind {
        Kind::Scan | Kind::Punch | Kind::Custody => Some(planned.await),
        _ => None,
    }
}

/// The write of a field record as the device decides it. None: `kind` is not a field
/// record made on devices.
pub async fn device_push(f: &impl Facts, m: super::Push<'_>) -> Option<Result<Planned<(String, Value)>>> {
    let planned = async {
        if !m.kind.pushable(m.op) {
            return Err(m.kind.refuse(m.op));
        }
        let asked = m.create_fields();
        match m.kind {
            Kind::Scan => super::as_pushed(lane_scan(f, &asked).await?),
            Kind::Punch => super::as_pushed(phone_punch(f, &asked).await?),
            _ => super::as_pushed(desk_custody(f, &asked).await?),
        }
    };
    match m.kind {
        Kind::Scan | Kind::Punch | Kind::Custody => Some(planned.await),
        _ => None,
    }
}

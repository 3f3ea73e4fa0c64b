//! The planners of the event team's labor changes: approving a timecard, changing the labor
//! rules (and the timecards they rebuild), locking a period.
//!
//! Each is decided on the judgements it depends on, so it commits only if nothing it read
//! was judged again meanwhile, on any node: an approval on the person's punches (a punch
//! that changes the timecard first sends the approval back to be planned on the new
//! counts), a change of rules or a lock on the event's labor settings (which every punch is
//! checked against, see [`super::field::record_punch`]).

use crate::{
    Error, Result,
    access::{Action, Target},
    kind::{Kind, person_scope},
    model::{LaborPeriod, LaborRules, Punch, Timecard, TimecardStatus},
    plan::{Facts, Planned, Write, allow, field::timecard_writes, judged_key, labor_key, load, load_where},
    rules::labor::{self, NewPeriod, RulesPatch, apply_rules, timecard_key},
    time,
};

/// Approves `person`'s timecard of `day`. A later punch that changes its counts takes the
/// approval away again.
pub async fn approve_timecard(f: &impl Facts, person: &str, day: &str) -> Result<Planned<Timecard>> {
    allow(f, Action::Write, Target::Setup, "timecard")?;
    let ev = f.event().id.clone();
    let key = judged_key(Kind::Punch, person);
    let seen = f.judgement(&key).await?;
    let mut t: Timecard =
        load(f, Kind::Timecard, &timecard_key(&ev, person, day)).await?.ok_or(Error::not_found("timecard"))?;
    t.status = TimecardStatus::Approved;
    t.approved_by = Some(f.actor().to_string());
    t.approved_at = Some(f.now().to_string());
    t.updated_at = f.now().to_string();
    let scope = vec![person_scope(person)];
    let w = Write::replace(Kind::Timecard, &t.id, &t, scope.clone(), scope)?.judged_on(&key, seen);
    Ok(Planned::new(t, vec![w]))
}

/// The event's labor rules as they are (the defaults until the team sets them).
pub(crate) async fn rules(f: &impl Facts) -> Result<LaborRules> {
    let ev = &f.event().id;
    Ok(load(f, Kind::LaborRules, ev).await?.unwrap_or_else(|| LaborRules::default_for(ev)))
}

/// Changes the event's labor rules. The timecards they rebuild are planned person by person
/// afterwards ([`rebuild_timecards`]): a punch timed with the old rules that commits after
/// this is sent back by its check of the settings.
pub async fn set_rules(f: &impl Facts, patch: RulesPatch) -> Result<Planned<LaborRules>> {
    allow(f, Action::Write, Target::Setup, "event")?;
    let ev = f.event().id.clone();
    let key = labor_key(&ev);
    let seen = f.judgement(&key).await?;
    let existed = f.record(Kind::LaborRules, &ev).await?.is_some();
    let mut rules = rules(f).await?;
    apply_rules(&mut rules, patch)?;
    let w = if existed {
        Write::replace(Kind::LaborRules, &ev, &rules, Vec::new(), Vec::new())?
    } else {
        Write::create(Kind::LaborRules, &ev, &rules, Vec::new())?
    };
    Ok(Planned::new(rules, vec![w.judged_on(&key, seen)]))
}

/// The writes that bring `person`'s timecards to what their punches say under the event's
/// rules and locked periods now (none if they say so already).
pub async fn rebuild_timecards(f: &impl Facts, person: &str) -> Result<Planned<()>> {
    allow(f, Action::Write, Target::Setup, "event")?;
    let ev = f.event().id.clone();
    let key = judged_key(Kind::Punch, person);
    let seen = f.judgement(&key).await?;
    let settings = f.judgement(&labor_key(&ev)).await?;
    let mut punches: Vec<Punch> = load_where(f, Kind::Punch, "person", person).await?;
    punches.sort_by(|a, b| a.device_time.cmp(&b.device_time).then_with(|| a.id.cmp(&b.id)));
    let rules = rules(f).await?;
    let mut periods: Vec<LaborPeriod> = load_where(f, Kind::LaborPeriod, "event", &ev).await?;
    periods.sort_by(|a, b| a.first_day.cmp(&b.first_day));
    let stored: Vec<Timecard> = load_where(f, Kind::Timecard, "person", person).await?;
    let mut writes =
        timecard_writes(&stored, labor::build_timecards(&ev, person, &punches, &rules), &periods, person, f.now())?;
    // The rebuild is one judgement of the person's punches: its last write carries it.
    if let Some(last) = writes.pop() {
        writes.push(last.judged_on(&key, seen).checked_against(&labor_key(&ev), settings));
    }
    Ok(Planned::new((), writes))
}

/// Locks the days `first_day..=last_day`: their timecards keep their counts; a punch that
/// arrives for them is kept and shown as an exception.
pub async fn lock_period(f: &impl Facts, input: NewPeriod) -> Result<Planned<LaborPeriod>> {
    allow(f, Action::Write, Target::Setup, "event")?;
    let first = time::parse_date("first_day", input.first_day.trim())?;
    let last = time::parse_date("last_day", input.last_day.trim())?;
    if last < first {
        return Err(Error::invalid("last_day must not be before first_day"));
    }
    let ev = f.event().id.clone();
    let key = labor_key(&ev);
    let seen = f.judgement(&key).await?;
    let periods: Vec<LaborPeriod> = load_where(f, Kind::LaborPeriod, "event", &ev).await?;
    if periods.iter().any(|p| p.first_day <= last && first <= p.last_day) {
        return Err(Error::conflict("period_overlaps", "these days overlap a locked period"));
    }
    let p = LaborPeriod {
        id: format!("{ev}|{first}"),
        event: ev,
        first_day: first,
        last_day: last,
        locked_by: f.actor().to_string(),
        locked_at: f.now().to_string(),
    };
    let w = Write::create(Kind::LaborPeriod, &p.id, &p, Vec::new())?.judged_on(&key, seen);
    Ok(Planned::new(p, vec![w]))
}

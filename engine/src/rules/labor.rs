//! Crew time: clock punches from phones (offline too, never edited, sent twice and stored
//! once) and the timecards the server builds from them per person and local day, with the
//! event's rules — minimum call, daily overtime, meal penalties. Missing punches are
//! exceptions on the timecard, not errors; a punch for a locked period is kept and shown as
//! an exception, never counted.
//!
//! A member of a collaborator granted the `labor` module sees their own punches and
//! timecards; seat holders see everyone's and approve them.

use std::collections::BTreeMap;

use crate::{
    Error, Result,
    model::{Gps, LaborRules, Punch, PunchKind, Timecard, TimecardException, TimecardStatus},
    rules::{gate::local_day, record_id},
    time,
};
use serde::Deserialize;

/// A shift open longer than this without an `out` is closed as missing its `out`; the
/// punches after it start over.
pub const SHIFT_HOURS_MAX: i64 = 24;

const HOUR_MS: f64 = 3_600_000.0;

/// A punch as a phone sends it (the `fields` of a `punch` create).
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewPunch {
    #[serde(default)]
    pub id: Option<String>,
    pub kind: PunchKind,
    pub device_time: String,
    #[serde(default)]
    pub gps: Option<Gps>,
}

/// Changes to an event's labor rules.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesPatch {
    #[serde(default)]
    pub minimum_call_hours: Option<f64>,
    #[serde(default)]
    pub overtime_after_hours: Option<f64>,
    #[serde(default)]
    pub meal_penalty_after_hours: Option<f64>,
    #[serde(default)]
    pub utc_offset_minutes: Option<i32>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPeriod {
    pub first_day: String,
    pub last_day: String,
}

/// Filters of the punch and timecard lists.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaborFilter {
    #[serde(default)]
    pub person: Option<String>,
    #[serde(default)]
    pub day: Option<String>,
}

pub fn timecard_key(event: &str, person: &str, day: &str) -> String {
    format!("{event}|{person}|{day}")
}

// ---- rules (pure) ----

fn check_gps(gps: Option<Gps>) -> Result<Option<Gps>> {
    match gps {
        Some(g)
            if !(-90.0..=90.0).contains(&g.lat)
                || !(-180.0..=180.0).contains(&g.lon)
                || g.accuracy_m.is_some_and(|a| !(0.0..=100_000.0).contains(&a)) =>
        {
            Err(Error::invalid("gps must have lat in -90..90, lon in -180..180 and accuracy_m of 0 to 100000"))
        }
        g => Ok(g),
    }
}

/// A punch from what a phone sends; `person` and `device` are who sent it, never fields.
pub fn build_punch(input: NewPunch, event: &str, person: &str, device: &str, hlc: &str) -> Result<Punch> {
    Ok(Punch {
        id: record_id(input.id.as_deref())?,
        event: event.into(),
        person: person.into(),
        kind: input.kind,
        device: device.into(),
        device_time: time::parse("device_time", &input.device_time)?,
        hlc: hlc.into(),
        gps: check_gps(input.gps)?,
    })
}

pub fn apply_rules(r: &mut LaborRules, patch: RulesPatch) -> Result<()> {
    let hours = |field: &str, v: Option<f64>, max: f64| -> Result<Option<f64>> {
        match v {
            Some(h) if !(0.0..=max).contains(&h) => Err(Error::invalid(format!("{field} must be 0 to {max} hours"))),
            v => Ok(v),
        }
    };
    if let Some(h) = hours("minimum_call_hours", patch.minimum_call_hours, 24.0)? {
        r.minimum_call_hours = h;
    }
    if let Some(h) = hours("overtime_after_hours", patch.overtime_after_hours, 24.0)? {
        r.overtime_after_hours = h;
    }
    if let Some(h) = hours("meal_penalty_after_hours", patch.meal_penalty_after_hours, 24.0)? {
        r.meal_penalty_after_hours = h;
    }
    if let Some(o) = patch.utc_offset_minutes {
        if !(-14 * 60..=14 * 60).contains(&o) {
            return Err(Error::invalid("utc_offset_minutes must be between -840 and 840"));
        }
        r.utc_offset_minutes = o;
    }
    r.updated_at = time::now();
    Ok(())
}

fn millis(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t).map_or(0, |t| t.timestamp_millis())
}

fn round2(hours: f64) -> f64 {
    (hours * 100.0).round() / 100.0
}

fn exception(code: &str, message: &str, punch: &Punch) -> TimecardException {
    TimecardException { code: code.into(), message: message.into(), punch: Some(punch.id.clone()) }
}

/// What one local day adds up to.
#[derive(Default)]
struct Day {
    punches: Vec<String>,
    worked_ms: i64,
    paid_ms: i64,
    meal_penalties: i64,
    exceptions: Vec<TimecardException>,
}

/// A shift being walked: from an `in` to its `out`.
struct Shift<'a> {
    first: &'a Punch,
    start: i64,
    day: String,
    punches: Vec<&'a Punch>,
    meal_ms: i64,
    meal_since: Option<i64>,
    /// Start of the current stretch of work (the `in`, or the last meal's end).
    stretch: i64,
    penalized: bool,
    penalties: i64,
    exceptions: Vec<TimecardException>,
}

impl<'a> Shift<'a> {
    fn new(p: &'a Punch, t: i64, day: String) -> Shift<'a> {
        Shift {
            first: p,
            start: t,
            day,
            punches: vec![p],
            meal_ms: 0,
            meal_since: None,
            stretch: t,
            penalized: false,
            penalties: 0,
            exceptions: Vec::new(),
        }
    }

    /// A meal penalty if the stretch of work up to `t` ran past the limit with no meal.
    fn stretch_to(&mut self, t: i64, limit_ms: i64) {
        if !self.penalized && t - self.stretch > limit_ms {
            self.penalties += 1;
            self.penalized = true;
        }
    }
}

/// Every timecard of one person in an event from all their punches: punches in time order
/// make shifts (an `in` up to its `out`, at most [`SHIFT_HOURS_MAX`]); a shift belongs to the
/// local day it started on. Per day: hours worked (meals unpaid), paid hours (each complete
/// shift raised to the minimum call), overtime past the daily threshold, meal penalties (a
/// stretch of work past the limit with no meal started), and exceptions for missing punches.
/// Returned without approval, by day.
pub fn build_timecards(event: &str, person: &str, punches: &[Punch], rules: &LaborRules) -> Vec<Timecard> {
    let mut sorted: Vec<&Punch> = punches.iter().collect();
    sorted.sort_by(|a, b| (millis(&a.device_time), &a.hlc, &a.id).cmp(&(millis(&b.device_time), &b.hlc, &b.id)));
    let limit_ms = (rules.meal_penalty_after_hours * HOUR_MS) as i64;
    let min_call_ms = (rules.minimum_call_hours * HOUR_MS) as i64;
    let day_of = |p: &Punch| local_day(&p.device_time, rules.utc_offset_minutes);
    let mut days: BTreeMap<String, Day> = BTreeMap::new();
    let close = |days: &mut BTreeMap<String, Day>, s: Shift<'_>, out: Option<(&Punch, i64)>| {
        let d = days.entry(s.day.clone()).or_default();
        d.punches.extend(s.punches.iter().map(|p| p.id.clone()));
        d.exceptions.extend(s.exceptions);
        d.meal_penalties += s.penalties;
        match out {
            Some((_, t)) => {
                let worked = (t - s.start - s.meal_ms).max(0);
                d.worked_ms += worked;
                d.paid_ms += worked.max(min_call_ms);
            }
            None => d.exceptions.push(exception(
                "missing_out",
                "clocked in with no clock-out: the shift is not counted until it has one",
                s.first,
            )),
        }
    };
    let mut open: Option<Shift<'_>> = None;
    for p in sorted {
        let t = millis(&p.device_time);
        if open.as_ref().is_some_and(|s| t - s.start > SHIFT_HOURS_MAX * 3_600_000)
            && let Some(s) = open.take()
        {
            close(&mut days, s, None);
        }
        match (p.kind, open.as_mut()) {
            (PunchKind::In, _) => {
                if let Some(s) = open.take() {
                    close(&mut days, s, None);
                }
                open = Some(Shift::new(p, t, day_of(p)));
            }
            (PunchKind::Out, Some(s)) => {
                s.punches.push(p);
                if let Some(m) = s.meal_since.take() {
                    s.meal_ms += t - m;
                    s.exceptions.push(exception("missing_meal_end", "a meal was started and never ended", p));
                } else {
                    s.stretch_to(t, limit_ms);
                }
                if let Some(s) = open.take() {
                    close(&mut days, s, Some((p, t)));
                }
            }
            (PunchKind::MealStart, Some(s)) => {
                s.punches.push(p);
                if s.meal_since.is_some() {
                    s.exceptions.push(exception("missing_meal_end", "a meal started while another was open", p));
                } else {
                    s.stretch_to(t, limit_ms);
                    s.meal_since = Some(t);
                }
            }
            (PunchKind::MealEnd, Some(s)) => {
                s.punches.push(p);
                match s.meal_since.take() {
                    Some(m) => {
                        s.meal_ms += t - m;
                        s.stretch = t;
                        s.penalized = false;
                    }
                    None => s.exceptions.push(exception("missing_meal_start", "a meal ended that never started", p)),
                }
            }
            (kind, None) => {
                let d = days.entry(day_of(p)).or_default();
                d.punches.push(p.id.clone());
                let (code, message) = match kind {
                    PunchKind::Out => ("missing_in", "clocked out with no clock-in"),
                    _ => ("meal_off_clock", "a meal punch while not clocked in"),
                };
                d.exceptions.push(exception(code, message, p));
            }
        }
    }
    if let Some(s) = open.take() {
        close(&mut days, s, None);
    }
    days.into_iter()
        .map(|(day, d)| {
            let worked = d.worked_ms as f64 / HOUR_MS;
            Timecard {
                id: timecard_key(event, person, &day),
                event: event.into(),
                person: person.into(),
                day,
                punches: d.punches,
                worked_hours: round2(worked),
                paid_hours: round2(d.paid_ms as f64 / HOUR_MS),
                overtime_hours: round2((worked - rules.overtime_after_hours).max(0.0)),
                meal_penalties: d.meal_penalties,
                exceptions: d.exceptions,
                status: TimecardStatus::Open,
                approved_by: None,
                approved_at: None,
                updated_at: String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A punch of person `p` in event `e` at `at` (UTC).
    pub(crate) fn punch(id: &str, kind: PunchKind, at: &str) -> Punch {
        Punch {
            id: id.into(),
            event: "e".into(),
            person: "p".into(),
            kind,
            device: "d".into(),
            device_time: at.into(),
            hlc: String::new(),
            gps: None,
        }
    }

    fn rules() -> LaborRules {
        LaborRules { utc_offset_minutes: -300, ..LaborRules::default_for("e") }
    }

    use PunchKind::*;

    #[test]
    fn a_long_day_with_a_late_meal() {
        // 08:00–19:30 local (UTC-5), meal 14:30–15:00: 11 h worked, 3 h overtime, a penalty
        // (no meal within 6 h).
        let ps = [
            punch("a", In, "2026-07-04T13:00:00Z"),
            punch("b", MealStart, "2026-07-04T19:30:00Z"),
            punch("c", MealEnd, "2026-07-04T20:00:00Z"),
            punch("d", Out, "2026-07-05T00:30:00Z"),
        ];
        let cards = build_timecards("e", "p", &ps, &rules());
        assert_eq!(cards.len(), 1);
        let c = &cards[0];
        assert_eq!(c.day, "2026-07-04", "the shift's local day, though it ended after UTC midnight");
        assert_eq!((c.worked_hours, c.paid_hours, c.overtime_hours, c.meal_penalties), (11.0, 11.0, 3.0, 1));
        assert!(c.exceptions.is_empty());
        assert_eq!(c.punches, ["a", "b", "c", "d"]);
    }

    #[test]
    fn minimum_call_missing_punches_and_order_of_arrival() {
        // A 2-hour call is paid 4; the second shift never clocks out; punches arrive shuffled.
        let ps = [
            punch("x2", Out, "2026-07-04T17:00:00Z"),
            punch("x1", In, "2026-07-04T15:00:00Z"),
            punch("y1", In, "2026-07-04T19:00:00Z"),
            punch("z1", MealEnd, "2026-07-04T20:00:00Z"),
        ];
        let c = &build_timecards("e", "p", &ps, &rules())[0];
        assert_eq!((c.worked_hours, c.paid_hours, c.overtime_hours, c.meal_penalties), (2.0, 4.0, 0.0, 0));
        let codes: Vec<&str> = c.exceptions.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["missing_meal_start", "missing_out"]);
        // An out with no in, and a meal off the clock, on another day.
        let stray = [punch("o", Out, "2026-07-06T17:00:00Z"), punch("m", MealStart, "2026-07-06T18:00:00Z")];
        let c = &build_timecards("e", "p", &stray, &rules())[0];
        let codes: Vec<&str> = c.exceptions.iter().map(|e| e.code.as_str()).collect();
        assert_eq!((c.worked_hours, codes), (0.0, vec!["missing_in", "meal_off_clock"]));
    }

    #[test]
    fn a_forgotten_clock_out_does_not_swallow_the_next_day() {
        let ps = [
            punch("a", In, "2026-07-04T13:00:00Z"),
            punch("b", In, "2026-07-05T13:00:00Z"),
            punch("c", Out, "2026-07-05T21:00:00Z"),
        ];
        let cards = build_timecards("e", "p", &ps, &rules());
        assert_eq!(cards.iter().map(|c| c.day.as_str()).collect::<Vec<_>>(), ["2026-07-04", "2026-07-05"]);
        assert_eq!(cards[0].exceptions[0].code, "missing_out");
        assert_eq!((cards[1].worked_hours, cards[1].meal_penalties), (8.0, 1));
    }
}

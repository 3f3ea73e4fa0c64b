//! Crew time: punches, an event's labor rules, timecards and their exceptions, locked periods.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PunchKind {
    In,
    Out,
    MealStart,
    MealEnd,
}

/// Where a phone was when it punched, if the crew member allowed it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Gps {
    pub lat: f64,
    pub lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_m: Option<f64>,
}

/// A clock punch: made on a phone (offline too), never edited. Its id is the client's, so
/// the same punch sent twice is stored once.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Punch {
    pub id: String,
    pub event: String,
    pub person: String,
    pub kind: PunchKind,
    pub device: String,
    /// The phone's clock when the punch was made: what the timecard counts.
    pub device_time: String,
    pub hlc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gps: Option<Gps>,
}

/// How an event's timecards are built. Key: the event id.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LaborRules {
    pub id: String,
    pub event: String,
    /// A shift is paid at least this many hours.
    pub minimum_call_hours: f64,
    /// Hours of a day worked past this are overtime.
    pub overtime_after_hours: f64,
    /// A stretch of work this long with no meal started earns a meal penalty.
    pub meal_penalty_after_hours: f64,
    /// The site's offset from UTC: a shift belongs to the local day it starts on.
    pub utc_offset_minutes: i32,
    pub updated_at: String,
}

impl LaborRules {
    /// The rules of an event that has set none.
    pub fn default_for(event: &str) -> LaborRules {
        LaborRules {
            id: event.into(),
            event: event.into(),
            minimum_call_hours: 4.0,
            overtime_after_hours: 8.0,
            meal_penalty_after_hours: 6.0,
            utc_offset_minutes: 0,
            updated_at: String::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimecardStatus {
    Open,
    Approved,
}

/// Something on a timecard for a person to look at: a missing punch, a punch that came
/// after its period was locked. Exceptions are not errors: the punches are all kept.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TimecardException {
    /// `missing_out`, `missing_in`, `missing_meal_end`, `missing_meal_start`,
    /// `meal_off_clock`, `period_locked`.
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub punch: Option<String>,
}

/// One person's day, built by the server from their punches. Key:
/// `<event>|<person>|<day>`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Timecard {
    pub id: String,
    pub event: String,
    pub person: String,
    /// The local day its shifts started on (`YYYY-MM-DD`).
    pub day: String,
    /// The punches it counts, in time order.
    pub punches: Vec<String>,
    pub worked_hours: f64,
    /// Worked hours, each complete shift raised to the minimum call.
    pub paid_hours: f64,
    pub overtime_hours: f64,
    pub meal_penalties: i64,
    pub exceptions: Vec<TimecardException>,
    pub status: TimecardStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<String>,
    pub updated_at: String,
}

/// Days whose timecards are closed: a punch that arrives for them is kept and shown as an
/// exception, never counted. Key: `<event>|<first_day>`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LaborPeriod {
    pub id: String,
    pub event: String,
    pub first_day: String,
    pub last_day: String,
    pub locked_by: String,
    pub locked_at: String,
}

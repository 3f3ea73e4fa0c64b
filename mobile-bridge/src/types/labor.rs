//! Crew time: punches (with the phone's location, if given) and the timecards the server
//! builds from them.

use engine::model as m;

#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum PunchKind {
    In,
    Out,
    MealStart,
    MealEnd,
}

impl From<PunchKind> for m::PunchKind {
    fn from(k: PunchKind) -> Self {
        match k {
            PunchKind::In => m::PunchKind::In,
            PunchKind::Out => m::PunchKind::Out,
            PunchKind::MealStart => m::PunchKind::MealStart,
            PunchKind::MealEnd => m::PunchKind::MealEnd,
        }
    }
}

impl From<m::PunchKind> for PunchKind {
    fn from(k: m::PunchKind) -> Self {
        match k {
            m::PunchKind::In => PunchKind::In,
            m::PunchKind::Out => PunchKind::Out,
            m::PunchKind::MealStart => PunchKind::MealStart,
            m::PunchKind::MealEnd => PunchKind::MealEnd,
        }
    }
}

/// Where the phone was, if the crew member lets it say.
#[derive(Clone, Copy, Debug, PartialEq, uniffi::Record)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Punch {
    pub id: String,
    pub kind: PunchKind,
    pub device_time: String,
    pub location: Option<Location>,
}

impl From<m::Punch> for Punch {
    fn from(p: m::Punch) -> Self {
        Punch {
            id: p.id,
            kind: p.kind.into(),
            device_time: p.device_time,
            location: p.gps.map(|g| Location { lat: g.lat, lon: g.lon, accuracy_m: g.accuracy_m }),
        }
    }
}

/// Something on a timecard to look at (a missing punch, a punch after the period closed).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct TimecardException {
    pub code: String,
    pub message: String,
    pub punch: Option<String>,
}

/// One person's day, as the server built it.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Timecard {
    pub person: String,
    pub day: String,
    pub worked_hours: f64,
    pub paid_hours: f64,
    pub overtime_hours: f64,
    pub meal_penalties: i64,
    pub exceptions: Vec<TimecardException>,
    pub approved: bool,
}

impl From<m::Timecard> for Timecard {
    fn from(t: m::Timecard) -> Self {
        Timecard {
            person: t.person,
            day: t.day,
            worked_hours: t.worked_hours,
            paid_hours: t.paid_hours,
            overtime_hours: t.overtime_hours,
            meal_penalties: t.meal_penalties,
            exceptions: t
                .exceptions
                .into_iter()
                .map(|e| TimecardException { code: e.code, message: e.message, punch: e.punch })
                .collect(),
            approved: t.status == m::TimecardStatus::Approved,
        }
    }
}

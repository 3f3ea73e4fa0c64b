//! Gear custody: assets, where each is, and the moves of its custody.

use engine::model as m;

#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Condition {
    Ok,
    Damaged,
}

impl From<Condition> for m::Condition {
    fn from(c: Condition) -> Self {
        match c {
            Condition::Ok => m::Condition::Ok,
            Condition::Damaged => m::Condition::Damaged,
        }
    }
}

impl From<m::Condition> for Condition {
    fn from(c: m::Condition) -> Self {
        match c {
            m::Condition::Ok => Condition::Ok,
            m::Condition::Damaged => Condition::Damaged,
        }
    }
}

/// An asset and where it is now.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct AssetInfo {
    pub tag: String,
    pub kind: String,
    pub name: String,
    /// Out with this person, if out.
    pub holder: Option<String>,
    pub due_at: Option<String>,
    pub overdue: bool,
    pub last_condition: Option<Condition>,
}

impl From<m::AssetState> for AssetInfo {
    fn from(s: m::AssetState) -> Self {
        AssetInfo {
            tag: s.asset.tag,
            kind: s.asset.kind,
            name: s.asset.name,
            holder: s.holder,
            due_at: s.due_at,
            overdue: s.overdue,
            last_condition: s.last_condition.map(Into::into),
        }
    }
}

/// One move of an asset's custody.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct CustodyMove {
    pub id: String,
    pub asset: String,
    pub checked_out: bool,
    pub holder: Option<String>,
    pub due_at: Option<String>,
    pub condition: Option<Condition>,
    pub note: Option<String>,
    pub device_time: String,
}

impl From<m::CustodyMove> for CustodyMove {
    fn from(c: m::CustodyMove) -> Self {
        CustodyMove {
            id: c.id,
            asset: c.asset,
            checked_out: c.action == m::CustodyAction::CheckOut,
            holder: c.holder,
            due_at: c.due_at,
            condition: c.condition.map(Into::into),
            note: c.note,
            device_time: c.device_time,
        }
    }
}

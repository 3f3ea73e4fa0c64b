//! The front gate: gates and their lanes, credentials, scans and the lane's decision, the
//! server's flags and each gate's counts.

use engine::{device, model as m};

#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Direction {
    Entry,
    Exit,
}

impl From<Direction> for m::Direction {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Entry => m::Direction::Entry,
            Direction::Exit => m::Direction::Exit,
        }
    }
}

impl From<m::Direction> for Direction {
    fn from(d: m::Direction) -> Self {
        match d {
            m::Direction::Entry => Direction::Entry,
            m::Direction::Exit => Direction::Exit,
        }
    }
}

/// What the lane decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ScanDecision {
    Admit,
    WrongZone,
    WrongDay,
    Revoked,
    AlreadyInside,
    Unknown,
    Exit,
}

impl From<m::ScanDecision> for ScanDecision {
    fn from(d: m::ScanDecision) -> Self {
        match d {
            m::ScanDecision::Admit => ScanDecision::Admit,
            m::ScanDecision::WrongZone => ScanDecision::WrongZone,
            m::ScanDecision::WrongDay => ScanDecision::WrongDay,
            m::ScanDecision::Revoked => ScanDecision::Revoked,
            m::ScanDecision::AlreadyInside => ScanDecision::AlreadyInside,
            m::ScanDecision::Unknown => ScanDecision::Unknown,
            m::ScanDecision::Exit => ScanDecision::Exit,
        }
    }
}

/// A gate and its lanes.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct GateInfo {
    pub id: String,
    pub name: String,
    /// The code of the zone it admits into.
    pub zone: String,
    pub lanes: Vec<String>,
}

impl From<m::Gate> for GateInfo {
    fn from(g: m::Gate) -> Self {
        GateInfo { id: g.id, name: g.name, zone: g.zone, lanes: g.lanes }
    }
}

/// A credential as a lane sees it: what the decision needs and the holder's display name.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct CredentialInfo {
    pub uid: String,
    pub kind: String,
    pub holder_name: String,
    pub zones: Vec<String>,
    pub valid_days: Vec<String>,
    pub revoked: bool,
}

impl From<m::Credential> for CredentialInfo {
    fn from(c: m::Credential) -> Self {
        CredentialInfo {
            uid: c.uid,
            kind: c.kind,
            holder_name: c.holder_name,
            zones: c.zones,
            valid_days: c.valid_days,
            revoked: c.status == m::CredentialStatus::Revoked,
        }
    }
}

/// One scan, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Scan {
    pub id: String,
    pub credential: String,
    pub gate: String,
    pub lane: String,
    pub direction: Direction,
    pub decision: ScanDecision,
    pub device: String,
    pub device_time: String,
}

impl From<m::Scan> for Scan {
    fn from(s: m::Scan) -> Self {
        Scan {
            id: s.id,
            credential: s.credential,
            gate: s.gate,
            lane: s.lane,
            direction: s.direction.into(),
            decision: s.decision.into(),
            device: s.device,
            device_time: s.device_time,
        }
    }
}

/// What a lane shows after a scan: the decision, who it is, and for "already inside" where
/// and when they came in.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ScanResult {
    pub scan: Scan,
    pub credential: Option<CredentialInfo>,
    pub admitted_at_gate: Option<String>,
    pub admitted_at_time: Option<String>,
}

impl From<device::ScanOutcome> for ScanResult {
    fn from(o: device::ScanOutcome) -> Self {
        ScanResult {
            admitted_at_time: o.admitted_by.map(|s| s.device_time),
            admitted_at_gate: o.admitted_at_gate,
            credential: o.credential.map(Into::into),
            scan: o.scan.into(),
        }
    }
}

/// Something the server found wrong with a scan: `duplicate_entry` or
/// `admitted_while_revoked`.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ScanFlag {
    pub id: String,
    pub scan: String,
    pub credential: String,
    pub gate: String,
    pub code: String,
    /// For a duplicate entry: the earlier admission.
    pub earlier: Option<String>,
    pub raised_at: String,
}

impl From<m::ScanFlag> for ScanFlag {
    fn from(f: m::ScanFlag) -> Self {
        let code = match f.code {
            m::ScanFlagCode::DuplicateEntry => "duplicate_entry",
            m::ScanFlagCode::AdmittedWhileRevoked => "admitted_while_revoked",
        };
        ScanFlag {
            id: f.id,
            scan: f.scan,
            credential: f.credential,
            gate: f.gate,
            code: code.into(),
            earlier: f.earlier,
            raised_at: f.raised_at,
        }
    }
}

/// One gate's counts, from what the device holds.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct GateStatus {
    pub gate: String,
    pub name: String,
    pub admitted: u64,
    pub exits: u64,
    pub refused: u64,
    pub flagged: u64,
    pub last_scan: Option<String>,
}

impl From<device::GateStatus> for GateStatus {
    fn from(s: device::GateStatus) -> Self {
        GateStatus {
            gate: s.gate,
            name: s.name,
            admitted: s.admitted,
            exits: s.exits,
            refused: s.refused,
            flagged: s.flagged,
            last_scan: s.last_scan,
        }
    }
}

//! Gear custody: assets, custody moves and the flags on them, and where an asset is.

use serde::{Deserialize, Serialize};

/// A piece of gear with a tag. Key: `<event>|<tag>` (a tag is unique in its event).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Asset {
    pub id: String,
    pub event: String,
    /// What the desk scans: a barcode or an asset tag.
    pub tag: String,
    /// `radio`, `cart`, `forklift`, …
    pub kind: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CustodyAction {
    CheckOut,
    CheckIn,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Ok,
    Damaged,
}

/// One move of an asset's custody, made at a desk (offline too): never changed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustodyMove {
    pub id: String,
    pub event: String,
    /// The asset's tag.
    pub asset: String,
    pub action: CustodyAction,
    /// Check-out: who takes it (an account id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// Check-out: when it is due back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
    /// Check-in: the state it came back in, and a note when damaged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub device: String,
    pub device_time: String,
    pub hlc: String,
    /// Who worked the desk.
    pub recorded_by: String,
}

/// A check-out made while the asset was already out (two desks that could not talk): kept,
/// and flagged on the later by clock. Key: `<move>|double_checkout`; kept equal to what the
/// moves say (a late check-in between withdraws it).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustodyFlag {
    pub id: String,
    pub event: String,
    pub asset: String,
    /// The check-out flagged.
    pub custody: String,
    /// The check-out it came after, with no check-in between.
    pub earlier: String,
    pub raised_at: String,
}

/// Where an asset is, from its moves: who holds it and until when.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AssetState {
    pub asset: Asset,
    /// Out with this person, if out.
    pub holder: Option<String>,
    pub due_at: Option<String>,
    /// Out past its due time.
    pub overdue: bool,
    /// How it came back the last time (None: never checked in).
    pub last_condition: Option<Condition>,
}

//! Accounts, organizations and their members, billing details and licenses.

use serde::{Deserialize, Serialize};

use super::OrgRole;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub name: String,
    pub created_at: String,
    /// Whether the person proved they own the email (a code sent to it, or an identity
    /// provider that verified it). Grants to the address wait until it is.
    #[serde(default)]
    pub email_proven: bool,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    Personal,
    Team,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub kind: OrgKind,
    pub created_by: String,
    pub created_at: String,
}

/// An organization as one person reaches it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrgWithRole {
    #[serde(flatten)]
    pub org: Org,
    pub role: OrgRole,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrgMember {
    pub person: String,
    pub email: String,
    pub name: String,
    pub role: OrgRole,
    /// The role waits for the person to prove their email.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    Card,
    BankAccount,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethod {
    pub kind: PaymentKind,
    /// The payment provider's token for the card or account; the number itself never
    /// reaches BackOps. Stored, but never shown back: answers carry only kind and last four.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub provider_token: String,
    pub last4: String,
}

/// A billing address. Required fields default to empty when absent so that the engine can
/// answer with the rule ("a zip code is required") rather than a parse error.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BillingAddress {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub line1: String,
    #[serde(default)]
    pub line2: Option<String>,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub zip: String,
    #[serde(default)]
    pub country: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Billing {
    pub payment_method: Option<PaymentMethod>,
    pub address: Option<BillingAddress>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LicenseKind {
    OrgPro,
    EventPro,
    OrgStandard,
}

impl LicenseKind {
    /// Org Standard is platform access for supporting staff; it cannot create events.
    pub fn allows_event_creation(self) -> bool {
        !matches!(self, LicenseKind::OrgStandard)
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LicenseStatus {
    Pending,
    Active,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct License {
    pub id: String,
    pub org: String,
    pub kind: LicenseKind,
    pub quantity: i64,
    pub status: LicenseStatus,
    pub purchased_by: String,
    pub created_at: String,
    pub activate_at: String,
    #[serde(default)]
    pub activated_at: Option<String>,
}

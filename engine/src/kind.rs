//! Which kinds of records live in an event, and what each one is: ONE table.
//!
//! Everything the engine knows about a kind — who may reach its records, whose they are
//! (the collaborators or person a change entry names), what an append-only record is
//! about, whether writing it changes access, whether some people receive it trimmed, which
//! mutations a device may push of it — is a row of [`TABLE`]. The feed, the commit, the
//! device's mirror, the push dispatch and the dashboard (through `schemas/kinds.json`,
//! generated from this table and checked by a test) all ask it; none keeps a list of its own.
//!
//! Pure: no I/O, no async runtime, no database.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    access::{Module, Tab, Target},
    protocol::MutationOp,
};

/// A kind of record that lives in an event's change log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Event,
    Collaborator,
    CollabMember,
    Invitation,
    Seat,
    ModuleGrant,
    Task,
    Activity,
    FileMeta,
    Advance,
    Zone,
    Gate,
    Credential,
    Scan,
    ScanFlag,
    LaborRules,
    LaborPeriod,
    Punch,
    Timecard,
    Asset,
    Custody,
    CustodyFlag,
}

/// Who may reach a kind's records (see [`crate::access::decide`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// The event's own record: anyone with a standing in it.
    EventInfo,
    /// Seat records.
    Seats,
    /// The event team's (seat holders').
    Setup,
    /// A collaborator's tab, scoped to the record's owners.
    Tab(Tab),
    /// A tab whose records may belong to no collaborator: those are the event team's.
    TabOrSetup(Tab),
    /// A field module's data.
    Module(Module),
    /// A field module's record that belongs to one person.
    Personal(Module),
}

/// Whose a record is: the scope its change entries carry and a narrowing purges by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owners {
    /// Nobody's in particular (setup, module data): reach alone decides.
    Event,
    /// The record is a collaborator: its own id.
    Itself,
    /// The collaborator named by this field.
    Field(&'static str),
    /// The collaborators listed in this array field (an activity's tags).
    Tags(&'static str),
    /// The person named by this field, as the scope `person:<account>`.
    Person(&'static str),
}

/// What the table says of one kind.
#[derive(Debug)]
pub struct Info {
    pub kind: Kind,
    /// The table name in SurrealDB and the kind on the wire.
    pub name: &'static str,
    /// What a refusal calls one of its records ("file not found").
    pub noun: &'static str,
    pub reach: Reach,
    pub owners: Owners,
    /// The field naming what an append-only record is about (a scan's credential uid), for
    /// lookups that must not scan every record of the kind.
    pub subject: Option<&'static str>,
    /// Writing one changes who may do what in the event: its commit bumps the event's
    /// access version, and it is committed on its own.
    pub changes_access: bool,
    /// The fields people without a seat receive, when they receive fewer (a gate member gets
    /// no credential holder's contact details).
    pub shaped: Option<&'static [&'static str]>,
    /// What a device may push of it.
    pub pushable: &'static [MutationOp],
    /// A field record made on a device, judged with the others of its subject (flags,
    /// timecards): its commit checks that the subject was not judged meanwhile (the
    /// planner's `Write::judged_on`); a node also takes its field lock while judging.
    pub judged: bool,
    /// For records never changed once made: the sentence refusing a change.
    pub append_only: Option<&'static str>,
}

use MutationOp::{Create, Delete, Update};

const CUD: &[MutationOp] = &[Create, Update, Delete];
const NONE: &[MutationOp] = &[];

/// The fields of a credential a gate member receives: what a lane needs to decide, never the
/// holder's contact details or notes.
pub const GATE_CREDENTIAL_FIELDS: &[&str] =
    &["id", "event", "uid", "kind", "zones", "valid_days", "holder_name", "status", "created_at", "updated_at"];

const fn info(kind: Kind, name: &'static str, reach: Reach, owners: Owners) -> Info {
    Info {
        kind,
        name,
        noun: name,
        reach,
        owners,
        subject: None,
        changes_access: false,
        shaped: None,
        pushable: NONE,
        judged: false,
        append_only: None,
    }
}

/// Every kind, in the order of [`Kind`]'s variants.
pub const TABLE: [Info; 22] = [
    Info { changes_access: true, ..info(Kind::Event, "event", Reach::EventInfo, Owners::Event) },
    Info {
        changes_access: true,
        ..info(Kind::Collaborator, "collaborator", Reach::Tab(Tab::Dashboard), Owners::Itself)
    },
    Info {
        changes_access: true,
        noun: "membership",
        ..info(Kind::CollabMember, "collab_member", Reach::Tab(Tab::Dashboard), Owners::Field("collaborator"))
    },
    info(Kind::Invitation, "invitation", Reach::Setup, Owners::Field("collaborator")),
    Info { changes_access: true, ..info(Kind::Seat, "seat", Reach::Seats, Owners::Event) },
    Info {
        changes_access: true,
        noun: "module grant",
        ..info(Kind::ModuleGrant, "module_grant", Reach::Tab(Tab::Dashboard), Owners::Field("collaborator"))
    },
    Info { pushable: CUD, ..info(Kind::Task, "task", Reach::Tab(Tab::Tasks), Owners::Field("collaborator")) },
    Info {
        pushable: CUD,
        ..info(Kind::Activity, "activity", Reach::TabOrSetup(Tab::Schedule), Owners::Tags("collaborators"))
    },
    Info {
        noun: "file",
        pushable: &[Create, Delete],
        ..info(Kind::FileMeta, "file_meta", Reach::Tab(Tab::Files), Owners::Field("collaborator"))
    },
    Info { pushable: CUD, ..info(Kind::Advance, "advance", Reach::Tab(Tab::Advances), Owners::Field("collaborator")) },
    info(Kind::Zone, "zone", Reach::Module(Module::Gate), Owners::Event),
    info(Kind::Gate, "gate", Reach::Module(Module::Gate), Owners::Event),
    Info {
        shaped: Some(GATE_CREDENTIAL_FIELDS),
        ..info(Kind::Credential, "credential", Reach::Module(Module::Gate), Owners::Event)
    },
    Info {
        subject: Some("credential"),
        pushable: &[Create],
        judged: true,
        append_only: Some("a scan is never changed or deleted: make another scan"),
        ..info(Kind::Scan, "scan", Reach::Module(Module::Gate), Owners::Event)
    },
    Info {
        subject: Some("credential"),
        noun: "scan flag",
        ..info(Kind::ScanFlag, "scan_flag", Reach::Module(Module::Gate), Owners::Event)
    },
    Info { noun: "labor rules", ..info(Kind::LaborRules, "labor_rules", Reach::Module(Module::Labor), Owners::Event) },
    Info {
        noun: "locked period",
        ..info(Kind::LaborPeriod, "labor_period", Reach::Module(Module::Labor), Owners::Event)
    },
    Info {
        pushable: &[Create],
        judged: true,
        append_only: Some("a punch is never changed or deleted: punch again"),
        ..info(Kind::Punch, "punch", Reach::Personal(Module::Labor), Owners::Person("person"))
    },
    info(Kind::Timecard, "timecard", Reach::Personal(Module::Labor), Owners::Person("person")),
    info(Kind::Asset, "asset", Reach::Module(Module::Assets), Owners::Event),
    Info {
        subject: Some("asset"),
        noun: "custody move",
        pushable: &[Create],
        judged: true,
        append_only: Some("a custody move is never changed or deleted: make another"),
        ..info(Kind::Custody, "custody", Reach::Module(Module::Assets), Owners::Event)
    },
    Info {
        subject: Some("asset"),
        noun: "custody flag",
        ..info(Kind::CustodyFlag, "custody_flag", Reach::Module(Module::Assets), Owners::Event)
    },
];

/// The prefix of a person's scope among a record's owners.
const PERSON_SCOPE: &str = "person:";

/// The scope a person's own records (punches, timecards) carry: `person:<account>`.
pub fn person_scope(person: &str) -> String {
    format!("{PERSON_SCOPE}{person}")
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 22] = {
        let mut all = [Kind::Event; 22];
        let mut i = 0;
        while i < TABLE.len() {
            all[i] = TABLE[i].kind;
            i += 1;
        }
        all
    };

    /// What the table says of this kind.
    pub const fn info(self) -> &'static Info {
        &TABLE[self as usize]
    }

    pub const fn as_str(self) -> &'static str {
        self.info().name
    }

    /// The kind of a table name; None for a name this build does not know.
    pub fn parse(name: &str) -> Option<Kind> {
        TABLE.iter().find(|i| i.name == name).map(|i| i.kind)
    }

    /// Whether writing a record of this kind can change who may do what in the event.
    pub fn changes_access(self) -> bool {
        self.info().changes_access
    }

    /// Whether records of this kind belong to one person.
    pub fn personal(self) -> bool {
        matches!(self.info().owners, Owners::Person(_))
    }

    /// Whether some people receive records of this kind with fewer fields.
    pub fn shaped(self) -> bool {
        self.info().shaped.is_some()
    }

    /// Whether a device may push `op` of this kind.
    pub fn pushable(self, op: MutationOp) -> bool {
        self.info().pushable.contains(&op)
    }

    /// The owners a record of this kind names (its collaborators, or its person's scope).
    pub fn owners(self, id: &str, data: &Value) -> Vec<String> {
        let text = |f: &str| data.get(f).and_then(Value::as_str);
        match self.info().owners {
            Owners::Event => Vec::new(),
            Owners::Itself => vec![id.to_string()],
            Owners::Field(f) => text(f).map(|c| vec![c.to_string()]).unwrap_or_default(),
            Owners::Tags(f) => data
                .get(f)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|c| c.as_str().map(String::from)).collect())
                .unwrap_or_default(),
            Owners::Person(f) => text(f).map(|p| vec![person_scope(p)]).unwrap_or_default(),
        }
    }

    /// What an append-only record of this kind is about (a scan's credential uid).
    pub fn subject_of(self, data: &Value) -> Option<&str> {
        data.get(self.info().subject?).and_then(Value::as_str)
    }

    /// The access target of a record of this kind owned by `owners` (see [`Kind::owners`]);
    /// None when the owners cannot be reached by anyone (a personal record without a person).
    pub fn target(self, owners: &[String]) -> Option<Target<'_>> {
        Some(match self.info().reach {
            Reach::EventInfo => Target::EventInfo,
            Reach::Seats => Target::Seats,
            Reach::Setup => Target::Setup,
            Reach::TabOrSetup(_) if owners.is_empty() => Target::Setup,
            Reach::Tab(tab) | Reach::TabOrSetup(tab) => Target::Tab { tab, collaborators: owners },
            Reach::Module(m) => Target::Module(m),
            Reach::Personal(module) => {
                let owner = owners.first()?.strip_prefix(PERSON_SCOPE)?;
                Target::Personal { module, owner }
            }
        })
    }

    /// A visible record as someone with (`seat`) or without a seat receives it.
    pub fn shape(self, seat: bool, mut data: Value) -> Value {
        if let (Some(fields), false, Some(m)) = (self.info().shaped, seat, data.as_object_mut()) {
            m.retain(|k, _| fields.contains(&k.as_str()));
        }
        data
    }

    /// The refusal of a push of `op` of this kind that the table does not allow.
    pub fn refuse(self, op: MutationOp) -> crate::Error {
        match self.info().append_only {
            Some(why) if op != Create => crate::Error::invalid(why),
            _ => not_pushable(self.as_str(), op),
        }
    }
}

/// The refusal of a push of a kind or an operation no device may push.
pub fn not_pushable(kind: &str, op: MutationOp) -> crate::Error {
    crate::Error::invalid(format!("{op:?} of {kind} is not a mutation this server takes"))
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Kind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The table as the dashboard reads it (`schemas/kinds.json`): each kind's owners rule, and
/// which kinds are personal and shaped.
pub fn table_json() -> Value {
    let kinds: serde_json::Map<String, Value> = TABLE
        .iter()
        .map(|i| {
            let owners = match i.owners {
                Owners::Event => json!({ "rule": "event" }),
                Owners::Itself => json!({ "rule": "itself" }),
                Owners::Field(f) => json!({ "rule": "field", "field": f }),
                Owners::Tags(f) => json!({ "rule": "tags", "field": f }),
                Owners::Person(f) => json!({ "rule": "person", "field": f, "prefix": PERSON_SCOPE }),
            };
            let pushable: Vec<Value> = i.pushable.iter().map(|op| json!(op)).collect();
            (
                i.name.to_string(),
                json!({ "owners": owners, "changes_access": i.changes_access, "shaped": i.shaped.is_some(), "pushable": pushable }),
            )
        })
        .collect();
    json!({
        "$comment": "Generated from engine/src/kind.rs (the one table of record kinds); a test fails when it is stale.",
        "kinds": kinds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_variant_order_and_names_are_unique() {
        for (i, info) in TABLE.iter().enumerate() {
            assert_eq!(info.kind as usize, i, "{} is out of place", info.name);
            assert_eq!(Kind::parse(info.name), Some(info.kind));
            assert_eq!(serde_json::to_value(info.kind).unwrap(), json!(info.name), "serde and the table agree");
        }
        assert_eq!(Kind::parse("nope"), None);
    }

    #[test]
    fn owners_follow_the_rule_of_each_kind() {
        let d = json!({ "collaborator": "c1", "collaborators": ["a", "b"], "person": "p1" });
        assert_eq!(Kind::Task.owners("t", &d), ["c1"]);
        assert_eq!(Kind::Activity.owners("t", &d), ["a", "b"]);
        assert_eq!(Kind::Collaborator.owners("c9", &d), ["c9"]);
        assert_eq!(Kind::Punch.owners("x", &d), ["person:p1"]);
        assert!(Kind::Gate.owners("g", &d).is_empty());
        assert!(Kind::Task.owners("t", &json!({})).is_empty());
    }

    #[test]
    fn append_only_kinds_are_pushed_only_as_creates() {
        for i in &TABLE {
            if i.append_only.is_some() {
                assert_eq!(i.pushable, &[Create], "{}", i.name);
                assert!(i.judged, "{}", i.name);
            }
        }
    }

    #[test]
    fn a_personal_target_needs_a_person() {
        assert!(Kind::Timecard.target(&[]).is_none());
        assert!(Kind::Timecard.target(&["c1".into()]).is_none());
        assert!(matches!(
            Kind::Timecard.target(&["person:p".into()]),
            Some(Target::Personal { module: Module::Labor, owner: "p" })
        ));
        assert!(matches!(Kind::Activity.target(&[]), Some(Target::Setup)));
    }
}

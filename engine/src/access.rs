//! Who may read and write what — one pure function, no I/O.
//!
//! The engine gathers a person's [`Standing`] in an event (or their role in an
//! organization) from the database, then asks [`decide`] (or [`decide_org`]). Every path
//! that returns or changes data goes through one of these two functions, and the sync
//! feed will use the same function to filter what each client receives.
//!
//! Architecture invariant: nothing else in the engine decides access.

use serde::{Deserialize, Serialize};

/// A person's role inside an organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    Owner,
    Admin,
    Member,
}

impl OrgRole {
    pub fn manages(self) -> bool {
        matches!(self, OrgRole::Owner | OrgRole::Admin)
    }
}

/// A field module a seat holder grants a collaborator, beyond the five tabs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Module {
    /// Scan the event's credentials at its gates.
    Gate,
    /// Clock punches and one's own timecards.
    Labor,
    /// Gear check-out and check-in.
    Assets,
}

impl Module {
    pub const ALL: [Module; 3] = [Module::Gate, Module::Labor, Module::Assets];

    pub fn as_str(self) -> &'static str {
        match self {
            Module::Gate => "gate",
            Module::Labor => "labor",
            Module::Assets => "assets",
        }
    }

    pub fn parse(s: &str) -> Option<Module> {
        Module::ALL.into_iter().find(|m| m.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of modules (a small bit set: cheap to copy, compare and hash).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Modules(u8);

impl Modules {
    pub fn has(self, m: Module) -> bool {
        self.0 & m.bit() != 0
    }

    pub fn with(self, m: Module) -> Modules {
        Modules(self.0 | m.bit())
    }

    pub fn without(self, m: Module) -> Modules {
        Modules(self.0 & !m.bit())
    }

    /// Whether some module of `self` is not in `other`.
    pub fn lost_in(self, other: Modules) -> bool {
        self.0 & !other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Module> {
        Module::ALL.into_iter().filter(move |m| self.has(*m))
    }
}

impl FromIterator<Module> for Modules {
    fn from_iter<I: IntoIterator<Item = Module>>(iter: I) -> Modules {
        iter.into_iter().fold(Modules::default(), Modules::with)
    }
}

/// Free collaborator access: the one collaborator a person belongs to in an event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    pub collaborator: String,
    /// Read-only set on the collaborator or on this person in it.
    pub read_only: bool,
    /// The field modules granted to the collaborator.
    pub modules: Modules,
}

/// Everything access needs to know about one person in one event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    /// The person's account id (their own punches and timecards are theirs to see).
    pub person: String,
    /// Holds one of the event's Event Pro seats.
    pub seat: bool,
    /// Role in the organization that owns the event, if any.
    pub org_role: Option<OrgRole>,
    /// Free access through a collaborator, if any.
    pub membership: Option<Membership>,
}

/// The five tabs of a collaborator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Dashboard,
    Tasks,
    Schedule,
    Files,
    Advances,
}

/// What is being read or written inside an event.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// The event's name and the caller's own standing in it.
    EventInfo,
    /// A record of one of the five tabs, scoped to the collaborators it belongs to (one for
    /// tasks, files and advances; the tagged collaborators for a schedule activity).
    Tab { tab: Tab, collaborators: &'a [String] },
    /// Building the event: renaming it, collaborators, invitations, read-only settings, and
    /// records that span collaborators.
    Setup,
    /// The event's Event Pro seats.
    Seats,
    /// The data of a field module (credentials, gates and scans for `gate`): reached by
    /// seat holders and by members of a collaborator granted the module.
    Module(Module),
    /// A field module's record that belongs to one person (a clock punch, a timecard):
    /// seat holders reach everyone's, a member of a collaborator granted the module only
    /// their own.
    Personal { module: Module, owner: &'a str },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The caller may not know the target exists: answer "not found".
    Hidden,
    /// The caller sees the target but their collaborator (or they in it) is read-only.
    ReadOnly,
    /// The caller sees the target but this action needs more (a seat, an admin role).
    Denied,
}

/// Turns a decision inside an event into the error the caller may see: "not found" for
/// what they may not know exists, a refusal with a stable code otherwise.
pub fn require(decision: Decision, what: &'static str) -> crate::Result<()> {
    match decision {
        Decision::Allow => Ok(()),
        Decision::Hidden => Err(crate::Error::not_found(what)),
        Decision::ReadOnly => {
            Err(crate::Error::forbidden("read_only", "your access to this collaborator is read-only"))
        }
        Decision::Denied => {
            Err(crate::Error::forbidden("not_permitted", "your access to this event does not allow this"))
        }
    }
}

/// The access matrix for records of an event.
///
/// - An Event Pro seat holder reads and writes the whole event (but seats are managed by
///   the organization's owners and admins).
/// - A collaborator member reads their own collaborator's five tabs and writes them unless
///   read-only; a record shared with other collaborators (an activity tagged to several) can
///   be read but not changed, since free access is contained in one collaborator.
/// - A member of a collaborator granted a field module reads that module's data and writes
///   it (scans, punches, custody moves) unless read-only; managing it (credentials, gates)
///   is the event team's, as setup.
/// - Organization owners and admins see the event and manage its seats.
/// - Anyone else: nothing.
pub fn decide(s: &Standing, action: Action, target: Target<'_>) -> Decision {
    let manager = s.org_role.is_some_and(OrgRole::manages);
    match target {
        Target::EventInfo => {
            if s.seat || manager || s.membership.is_some() {
                if action == Action::Read || s.seat { Decision::Allow } else { Decision::Denied }
            } else {
                Decision::Hidden
            }
        }
        Target::Seats => match (manager, action) {
            (true, _) => Decision::Allow,
            (false, Action::Read) if s.seat => Decision::Allow,
            (false, _) if s.seat || s.membership.is_some() => Decision::Denied,
            _ => Decision::Hidden,
        },
        Target::Setup => {
            if s.seat {
                Decision::Allow
            } else if manager || s.membership.is_some() {
                Decision::Denied
            } else {
                Decision::Hidden
            }
        }
        Target::Module(module) => {
            if s.seat {
                return Decision::Allow;
            }
            match &s.membership {
                Some(m) if m.modules.has(module) => match action {
                    Action::Read => Decision::Allow,
                    Action::Write if m.read_only => Decision::ReadOnly,
                    Action::Write => Decision::Allow,
                },
                _ => Decision::Hidden,
            }
        }
        Target::Personal { module, owner } => {
            if s.seat || (owner == s.person && !s.person.is_empty()) {
                decide(s, action, Target::Module(module))
            } else {
                Decision::Hidden
            }
        }
        Target::Tab { collaborators, .. } => {
            if s.seat {
                return Decision::Allow;
            }
            let Some(m) = &s.membership else {
                return Decision::Hidden;
            };
            if !collaborators.iter().any(|c| c == &m.collaborator) {
                return Decision::Hidden;
            }
            match action {
                Action::Read => Decision::Allow,
                Action::Write if m.read_only => Decision::ReadOnly,
                Action::Write if collaborators.len() == 1 => Decision::Allow,
                Action::Write => Decision::Denied,
            }
        }
    }
}

/// What can be done to an organization itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrgAction {
    /// See the organization, its members and its events' names.
    View,
    /// Payment method, billing address, licenses, people, event creation.
    Manage,
    /// Grant or take the owner role.
    ManageOwners,
}

/// The access matrix for an organization.
pub fn decide_org(role: Option<OrgRole>, action: OrgAction) -> Decision {
    match (role, action) {
        (None, _) => Decision::Hidden,
        (Some(_), OrgAction::View) => Decision::Allow,
        (Some(r), OrgAction::Manage) if r.manages() => Decision::Allow,
        (Some(OrgRole::Owner), OrgAction::ManageOwners) => Decision::Allow,
        (Some(_), _) => Decision::Denied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(c: &str, read_only: bool) -> Option<Membership> {
        Some(Membership { collaborator: c.into(), read_only, ..Default::default() })
    }

    /// The people of the matrix.
    fn people() -> Vec<(&'static str, Standing)> {
        vec![
            ("seat holder", Standing { seat: true, ..Default::default() }),
            (
                "seat holder, also read-only member",
                Standing { seat: true, membership: member("A", true), ..Default::default() },
            ),
            ("member of A", Standing { membership: member("A", false), ..Default::default() }),
            ("read-only member of A", Standing { membership: member("A", true), ..Default::default() }),
            ("org owner", Standing { org_role: Some(OrgRole::Owner), ..Default::default() }),
            ("org admin", Standing { org_role: Some(OrgRole::Admin), ..Default::default() }),
            ("org member", Standing { org_role: Some(OrgRole::Member), ..Default::default() }),
            ("stranger", Standing::default()),
        ]
    }

    use Decision::{Allow as A, Denied as D, Hidden as H, ReadOnly as R};

    #[test]
    fn event_matrix_every_cell() {
        let a = ["A".to_string()];
        let b = ["B".to_string()];
        let ab = ["A".to_string(), "B".to_string()];
        let targets: Vec<(&str, Target<'_>)> = vec![
            ("event info", Target::EventInfo),
            ("tab of A", Target::Tab { tab: Tab::Tasks, collaborators: &a }),
            ("tab of B", Target::Tab { tab: Tab::Files, collaborators: &b }),
            ("shared A+B", Target::Tab { tab: Tab::Schedule, collaborators: &ab }),
            ("setup", Target::Setup),
            ("seats", Target::Seats),
        ];
        // Rows: people in the order of `people()`; per target (read, write).
        #[rustfmt::skip]
        let expected: [[(Decision, Decision); 6]; 8] = [
            //  info     tab A    tab B    A+B      setup    seats
            [(A, A), (A, A), (A, A), (A, A), (A, A), (A, D)], // seat holder
            [(A, A), (A, A), (A, A), (A, A), (A, A), (A, D)], // seat + read-only member
            [(A, D), (A, A), (H, H), (A, D), (D, D), (D, D)], // member of A
            [(A, D), (A, R), (H, H), (A, R), (D, D), (D, D)], // read-only member of A
            [(A, D), (H, H), (H, H), (H, H), (D, D), (A, A)], // org owner
            [(A, D), (H, H), (H, H), (H, H), (D, D), (A, A)], // org admin
            [(H, H), (H, H), (H, H), (H, H), (H, H), (H, H)], // org member
            [(H, H), (H, H), (H, H), (H, H), (H, H), (H, H)], // stranger
        ];
        for ((who, standing), row) in people().iter().zip(expected) {
            for ((what, target), (read, write)) in targets.iter().zip(row) {
                assert_eq!(decide(standing, Action::Read, *target), read, "{who} reads {what}");
                assert_eq!(decide(standing, Action::Write, *target), write, "{who} writes {what}");
            }
        }
    }

    #[test]
    fn every_tab_is_scoped_alike() {
        let b = ["B".to_string()];
        let a = ["A".to_string()];
        let m = Standing { membership: member("A", false), ..Default::default() };
        for tab in [Tab::Dashboard, Tab::Tasks, Tab::Schedule, Tab::Files, Tab::Advances] {
            assert_eq!(decide(&m, Action::Read, Target::Tab { tab, collaborators: &a }), A);
            assert_eq!(decide(&m, Action::Read, Target::Tab { tab, collaborators: &b }), H);
            assert_eq!(decide(&m, Action::Read, Target::Tab { tab, collaborators: &[] }), H);
        }
    }

    #[test]
    fn module_matrix_every_cell() {
        let gate = Modules::default().with(Module::Gate);
        let with = |read_only| Standing {
            membership: Some(Membership { collaborator: "A".into(), read_only, modules: gate }),
            ..Default::default()
        };
        let people = [
            ("seat holder", Standing { seat: true, ..Default::default() }),
            ("gate member", with(false)),
            ("read-only gate member", with(true)),
            ("member without modules", Standing { membership: member("A", false), ..Default::default() }),
            ("org owner", Standing { org_role: Some(OrgRole::Owner), ..Default::default() }),
            ("stranger", Standing::default()),
        ];
        // Per person: (read, write) of the gate module, then of the labor module.
        #[rustfmt::skip]
        let expected = [
            [(A, A), (A, A)], // seat holder
            [(A, A), (H, H)], // gate member
            [(A, R), (H, H)], // read-only gate member
            [(H, H), (H, H)], // member without modules
            [(H, H), (H, H)], // org owner
            [(H, H), (H, H)], // stranger
        ];
        for ((who, s), row) in people.iter().zip(expected) {
            for (module, (read, write)) in [Module::Gate, Module::Labor].into_iter().zip(row) {
                assert_eq!(decide(s, Action::Read, Target::Module(module)), read, "{who} reads {module:?}");
                assert_eq!(decide(s, Action::Write, Target::Module(module)), write, "{who} writes {module:?}");
            }
        }
        // Personal records of a module: one's own, or everyone's with a seat.
        let me = Standing { person: "me".into(), ..with(false) };
        let labor = Modules::default().with(Module::Labor);
        let crew = Standing {
            person: "me".into(),
            membership: Some(Membership { collaborator: "A".into(), read_only: false, modules: labor }),
            ..Default::default()
        };
        let own = Target::Personal { module: Module::Labor, owner: "me" };
        let other = Target::Personal { module: Module::Labor, owner: "someone" };
        assert_eq!(decide(&crew, Action::Write, own), A);
        assert_eq!(decide(&crew, Action::Read, other), H);
        assert_eq!(decide(&me, Action::Read, own), H, "without the module, not even one's own");
        let seat = Standing { seat: true, ..Default::default() };
        assert_eq!(decide(&seat, Action::Read, other), A);
        assert_eq!(
            decide(&Standing::default(), Action::Read, Target::Personal { module: Module::Labor, owner: "" }),
            H
        );
        // A module is no way into the five tabs of another collaborator, nor into setup.
        let b = ["B".to_string()];
        assert_eq!(decide(&with(false), Action::Read, Target::Tab { tab: Tab::Tasks, collaborators: &b }), H);
        assert_eq!(decide(&with(false), Action::Write, Target::Setup), D);
    }

    #[test]
    fn module_sets() {
        let m: Modules = [Module::Gate, Module::Assets].into_iter().collect();
        assert!(m.has(Module::Gate) && m.has(Module::Assets) && !m.has(Module::Labor));
        assert!(m.lost_in(Modules::default().with(Module::Gate)));
        assert!(!Modules::default().with(Module::Gate).lost_in(m));
        assert_eq!(m.without(Module::Assets).iter().collect::<Vec<_>>(), vec![Module::Gate]);
        assert_eq!(Module::parse("labor"), Some(Module::Labor));
        assert_eq!(Module::parse("Gate"), None);
    }

    #[test]
    fn org_matrix_every_cell() {
        let roles = [Some(OrgRole::Owner), Some(OrgRole::Admin), Some(OrgRole::Member), None];
        let actions = [OrgAction::View, OrgAction::Manage, OrgAction::ManageOwners];
        #[rustfmt::skip]
        let expected = [
            [A, A, A], // owner
            [A, A, D], // admin
            [A, D, D], // member
            [H, H, H], // not in the organization
        ];
        for (role, row) in roles.iter().zip(expected) {
            for (action, want) in actions.iter().zip(row) {
                assert_eq!(decide_org(*role, *action), want, "{role:?} {action:?}");
            }
        }
    }
}

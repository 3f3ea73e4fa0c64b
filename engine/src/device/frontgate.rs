//! The front gate on a lane's device: scans decided from the replica with no network, and
//! the lists a gate tablet shows.

use serde::Serialize;
use serde_json::json;

use super::{LocalWrite, Replica, write::typed_row};
use crate::{
    Error, Result,
    access::{Action, Module, Target, decide, require},
    frontgate::{credential_key, presence},
    model::{Credential, Direction, Gate, Scan, ScanDecision, ScanFlag, Zone},
    protocol::MutationOp,
};

/// What a lane shows after a scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScanOutcome {
    /// The mutation that carries the scan to the server.
    pub mutation: String,
    /// The scan as recorded (in the outbox until the server has it).
    pub scan: Scan,
    /// The credential as the device holds it (None: unknown uid).
    pub credential: Option<Credential>,
    /// For `already_inside`: the admission that put the credential inside.
    pub admitted_by: Option<Scan>,
    /// The name of that admission's gate.
    pub admitted_at_gate: Option<String>,
}

/// One gate's counts, from the scans the device holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GateStatus {
    pub gate: String,
    pub name: String,
    pub admitted: u64,
    pub exits: u64,
    /// Scans that did not admit (wrong zone or day, revoked, already inside, unknown).
    pub refused: u64,
    pub flagged: u64,
    /// The device time of the gate's last scan.
    pub last_scan: Option<String>,
}

impl Replica {
    /// Checks that the person reaches the gate module of `event` on this device.
    async fn gate_module(&self, event: &str) -> Result<()> {
        let s = self.standing(event).await?;
        require(decide(&s, Action::Read, Target::Module(Module::Gate)), "gate module")
    }

    fn held_all<T: serde::de::DeserializeOwned>(&self, event: &str, kind: &str) -> Vec<T> {
        self.mirror().kind(event, kind).iter().filter_map(|r| typed_row(r)).collect()
    }

    /// Scans a credential at a lane: decided on the device from what it holds (no network),
    /// recorded at once as an immutable scan in the outbox, and sent when online. Every scan
    /// is recorded, admitted or not.
    pub async fn scan(
        &self,
        event: &str,
        credential: &str,
        gate_id: &str,
        lane: &str,
        direction: Direction,
    ) -> Result<ScanOutcome> {
        let fields = json!({ "credential": credential, "gate": gate_id, "lane": lane, "direction": direction });
        let written =
            self.write(event, LocalWrite { kind: "scan".into(), op: MutationOp::Create, record: None, fields }).await?;
        let scan: Scan = serde_json::from_value(written.record.data)
            .map_err(|e| Error::Internal(format!("a scan made here does not decode: {e}")))?;
        let credential = self.credential(event, &scan.credential).await?;
        let mutation = written.mutation;
        let mut outcome = ScanOutcome { mutation, scan, credential, admitted_by: None, admitted_at_gate: None };
        if outcome.scan.decision == ScanDecision::AlreadyInside {
            let scans = self.scans_of(event, &outcome.scan.credential);
            if let Some(last) = presence(&scans).filter(|s| s.decision == ScanDecision::Admit) {
                outcome.admitted_at_gate = self.load::<Gate>(event, "gate", &last.gate)?.map(|g| g.name);
                outcome.admitted_by = Some(last.clone());
            }
        }
        Ok(outcome)
    }

    fn scans_of(&self, event: &str, uid: &str) -> Vec<Scan> {
        self.mirror().about(event, "scan", uid).iter().filter_map(|r| typed_row(r)).collect()
    }

    /// A credential as the device holds it (a gate device: without contact details).
    pub async fn credential(&self, event: &str, uid: &str) -> Result<Option<Credential>> {
        self.gate_module(event).await?;
        self.load(event, "credential", &credential_key(event, uid.trim()))
    }

    /// How many credentials the device holds for `event`.
    pub async fn credential_count(&self, event: &str) -> Result<usize> {
        self.gate_module(event).await?;
        Ok(self.mirror().count(event, "credential"))
    }

    /// The event's gates, by name.
    pub async fn gates(&self, event: &str) -> Result<Vec<Gate>> {
        self.gate_module(event).await?;
        let mut g: Vec<Gate> = self.held_all(event, "gate");
        g.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        Ok(g)
    }

    pub async fn zones(&self, event: &str) -> Result<Vec<Zone>> {
        self.gate_module(event).await?;
        let mut z: Vec<Zone> = self.held_all(event, "zone");
        z.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(z)
    }

    /// Scans held (this device's and those the feed brought), newest first by clock, of one
    /// credential or one gate when asked, at most `limit`.
    pub async fn scans(
        &self,
        event: &str,
        credential: Option<&str>,
        gate_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Scan>> {
        self.gate_module(event).await?;
        let mut scans = match credential {
            Some(uid) => self.scans_of(event, uid.trim()),
            None => self.held_all(event, "scan"),
        };
        scans.retain(|s| gate_id.is_none_or(|g| s.gate == g));
        scans.sort_by(|a, b| (&b.hlc, &b.id).cmp(&(&a.hlc, &a.id)));
        scans.truncate(limit.min(super::READ_ROWS_MAX));
        Ok(scans)
    }

    /// The flags the server raised on the event's scans, newest first.
    pub async fn scan_flags(&self, event: &str) -> Result<Vec<ScanFlag>> {
        self.gate_module(event).await?;
        let mut flags: Vec<ScanFlag> = self.held_all(event, "scan_flag");
        flags.sort_by(|a, b| (&b.raised_at, &b.id).cmp(&(&a.raised_at, &a.id)));
        Ok(flags)
    }

    /// Each gate's counts from the scans and flags held.
    pub async fn gate_status(&self, event: &str) -> Result<Vec<GateStatus>> {
        let gates = self.gates(event).await?;
        let scans: Vec<Scan> = self.held_all(event, "scan");
        let flags: Vec<ScanFlag> = self.held_all(event, "scan_flag");
        Ok(gates
            .into_iter()
            .map(|g| {
                let mut st = GateStatus { gate: g.id.clone(), name: g.name.clone(), ..Default::default() };
                for s in scans.iter().filter(|s| s.gate == g.id) {
                    match s.decision {
                        ScanDecision::Admit => st.admitted += 1,
                        ScanDecision::Exit => st.exits += 1,
                        _ => st.refused += 1,
                    }
                    if st.last_scan.as_deref().is_none_or(|t| s.device_time.as_str() > t) {
                        st.last_scan = Some(s.device_time.clone());
                    }
                }
                st.flagged = flags.iter().filter(|f| f.gate == g.id).count() as u64;
                st
            })
            .collect())
    }
}

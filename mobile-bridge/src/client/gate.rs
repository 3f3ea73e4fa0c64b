//! The front gate: scans decided on the device from what it holds, with no network; the
//! gates, their counts, the credentials, recent scans and the server's flags.

use super::{BackOpsClient, check_id, lock};
use crate::{
    BackOpsError,
    types::{CredentialInfo, Direction, GateInfo, GateStatus, Scan, ScanFlag, ScanResult},
};

#[uniffi::export]
impl BackOpsClient {
    /// Scans a credential at a lane of a gate. The decision is made on the device from what
    /// it holds, at once, whether online or not; the scan is recorded (admitted or not) and
    /// sent when online. Needs the gate module (or a seat).
    pub fn scan(
        &self,
        event: String,
        credential: String,
        gate: String,
        lane: String,
        direction: Direction,
    ) -> Result<ScanResult, BackOpsError> {
        check_id("event", &event)?;
        check_id("gate", &gate)?;
        if lock(&self.session).token.is_none() {
            return Err(BackOpsError::not_ready("sign_in", "sign in before scanning"));
        }
        let outcome = self.run(self.replica()?.scan(&event, &credential, &gate, &lane, direction.into()))?;
        self.wake();
        Ok(outcome.into())
    }

    /// The event's gates and their lanes.
    pub fn gates(&self, event: String) -> Result<Vec<GateInfo>, BackOpsError> {
        self.list(self.replica()?.gates(&event))
    }

    /// Each gate's admissions, exits, refusals and flags, from what the device holds.
    pub fn gate_status(&self, event: String) -> Result<Vec<GateStatus>, BackOpsError> {
        self.list(self.replica()?.gate_status(&event))
    }

    /// A credential as the device holds it (None: the event has no such uid).
    pub fn credential(&self, event: String, uid: String) -> Result<Option<CredentialInfo>, BackOpsError> {
        Ok(self.run(self.replica()?.credential(&event, &uid))?.map(Into::into))
    }

    /// How many credentials the device holds: the gate is ready when they are all here.
    pub fn credential_count(&self, event: String) -> Result<u64, BackOpsError> {
        Ok(self.run(self.replica()?.credential_count(&event))? as u64)
    }

    /// Recent scans, newest first: of one credential or one gate when given.
    pub fn scans(
        &self,
        event: String,
        credential: Option<String>,
        gate: Option<String>,
        limit: u32,
    ) -> Result<Vec<Scan>, BackOpsError> {
        let replica = self.replica()?;
        self.list(replica.scans(&event, credential.as_deref(), gate.as_deref(), limit as usize))
    }

    /// The flags the server raised (duplicate entries, admissions after a revocation).
    pub fn scan_flags(&self, event: String) -> Result<Vec<ScanFlag>, BackOpsError> {
        self.list(self.replica()?.scan_flags(&event))
    }
}

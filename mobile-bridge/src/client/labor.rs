//! Crew time: punching the clock on the device, the person's punches and the timecards.

use super::{BackOpsClient, check_id, lock};
use crate::{
    BackOpsError,
    types::{Location, Punch, PunchKind, Timecard},
};

#[uniffi::export]
impl BackOpsClient {
    /// Punches the clock now with the phone's time (and location, if given): recorded at
    /// once, online or not, sent when online. Giving the id of a punch already made returns
    /// it and records nothing (a punch sent twice is stored once). Needs the labor module.
    pub fn punch(
        &self,
        event: String,
        kind: PunchKind,
        location: Option<Location>,
        id: Option<String>,
    ) -> Result<Punch, BackOpsError> {
        check_id("event", &event)?;
        if lock(&self.session).token.is_none() {
            return Err(BackOpsError::not_ready("sign_in", "sign in before punching"));
        }
        let gps = location.map(|l| engine::model::Gps { lat: l.lat, lon: l.lon, accuracy_m: l.accuracy_m });
        let p = self.run(self.replica()?.punch(&event, kind.into(), gps, id.as_deref()))?;
        self.wake();
        Ok(p.into())
    }

    /// The person's own punches, sent or not, in time order.
    pub fn my_punches(&self, event: String) -> Result<Vec<Punch>, BackOpsError> {
        self.list(self.replica()?.my_punches(&event))
    }

    /// Timecards as the server built them: the person's own (a seat holder: everyone's).
    pub fn timecards(&self, event: String) -> Result<Vec<Timecard>, BackOpsError> {
        self.list(self.replica()?.timecards(&event))
    }
}

//! Gear custody: checking assets out and in at a desk, on the device and offline too; where
//! each asset is and its history.

use std::future::Future;

use engine::device::Replica;

use super::{BackOpsClient, check_id, lock};
use crate::{
    BackOpsError,
    types::{AssetInfo, Condition, CustodyMove},
};

#[uniffi::export]
impl BackOpsClient {
    /// Checks an asset out to `holder` (an account id) until `due_at`, at once, offline too.
    /// Refused when the device knows it is out: check it in first. Needs the assets module.
    pub fn check_out(
        &self,
        event: String,
        tag: String,
        holder: String,
        due_at: String,
    ) -> Result<CustodyMove, BackOpsError> {
        self.desk(event, |r, e| async move { r.check_out(&e, &tag, &holder, &due_at).await })
    }

    /// Checks an asset back in with its condition (a note when damaged).
    pub fn check_in(
        &self,
        event: String,
        tag: String,
        condition: Condition,
        note: Option<String>,
    ) -> Result<CustodyMove, BackOpsError> {
        self.desk(event, |r, e| async move { r.check_in(&e, &tag, condition.into(), note.as_deref()).await })
    }

    /// Every asset and where it is (overdue ones say so).
    pub fn assets(&self, event: String) -> Result<Vec<AssetInfo>, BackOpsError> {
        self.list(self.replica()?.assets(&event))
    }

    /// The assets out with the person using this phone.
    pub fn assets_i_hold(&self, event: String) -> Result<Vec<AssetInfo>, BackOpsError> {
        self.list(self.replica()?.assets_i_hold(&event))
    }

    /// One asset's custody history, oldest first.
    pub fn custody_history(&self, event: String, tag: String) -> Result<Vec<CustodyMove>, BackOpsError> {
        self.list(self.replica()?.custody_history(&event, &tag))
    }
}

impl BackOpsClient {
    /// A custody move made here: checked, recorded, and sent when online.
    fn desk<F, Fut>(&self, event: String, f: F) -> Result<CustodyMove, BackOpsError>
    where
        F: FnOnce(Replica, String) -> Fut,
        Fut: Future<Output = engine::Result<engine::model::CustodyMove>>,
    {
        check_id("event", &event)?;
        if lock(&self.session).token.is_none() {
            return Err(BackOpsError::not_ready("sign_in", "sign in before checking gear out or in"));
        }
        let m = self.run(f(self.replica()?, event))?;
        self.wake();
        Ok(m.into())
    }
}

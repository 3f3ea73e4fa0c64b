//! Gear custody at a desk: check-outs and check-ins made offline and kept in the outbox, and
//! where every asset is, as the device holds it.

use std::collections::BTreeMap;

use serde_json::json;

use super::{LocalWrite, Replica, write::typed_row};
use crate::{
    Error, Result,
    access::{Action, Module, Target, decide, require},
    assets::state,
    model::{Asset, AssetState, Condition, CustodyAction, CustodyFlag, CustodyMove},
    protocol::MutationOp,
};

impl Replica {
    async fn custody_move(&self, event: &str, fields: serde_json::Value) -> Result<CustodyMove> {
        let w = LocalWrite { kind: "custody".into(), op: MutationOp::Create, record: None, fields };
        let written = self.write(event, w).await?;
        serde_json::from_value(written.record.data)
            .map_err(|e| Error::Internal(format!("a custody move made here does not decode: {e}")))
    }

    /// Checks an asset out to `holder` (an account id) until `due_at`, at once and offline
    /// too. Refused when the device knows the asset is out.
    pub async fn check_out(&self, event: &str, tag: &str, holder: &str, due_at: &str) -> Result<CustodyMove> {
        let fields = json!({ "asset": tag, "action": CustodyAction::CheckOut, "holder": holder, "due_at": due_at });
        self.custody_move(event, fields).await
    }

    /// Checks an asset back in, with its condition (a note is needed when damaged).
    pub async fn check_in(
        &self,
        event: &str,
        tag: &str,
        condition: Condition,
        note: Option<&str>,
    ) -> Result<CustodyMove> {
        let fields = json!({ "asset": tag, "action": CustodyAction::CheckIn, "condition": condition, "note": note });
        self.custody_move(event, fields).await
    }

    async fn assets_module(&self, event: &str) -> Result<crate::access::Standing> {
        let s = self.standing(event).await?;
        require(decide(&s, Action::Read, Target::Module(Module::Assets)), "assets module")?;
        Ok(s)
    }

    /// Every asset held, with where it is now (moves made here included), by tag.
    pub async fn assets(&self, event: &str) -> Result<Vec<AssetState>> {
        self.assets_module(event).await?;
        let mirror = self.mirror();
        let assets: Vec<Asset> = mirror.kind(event, "asset").iter().filter_map(|r| typed_row(r)).collect();
        let moves: Vec<CustodyMove> = mirror.kind(event, "custody").iter().filter_map(|r| typed_row(r)).collect();
        drop(mirror);
        let mut by_asset: BTreeMap<&str, Vec<&CustodyMove>> = BTreeMap::new();
        for m in &moves {
            by_asset.entry(m.asset.as_str()).or_default().push(m);
        }
        let now = crate::time::now();
        let mut out: Vec<AssetState> = assets
            .into_iter()
            .map(|a| {
                let of = by_asset.get(a.tag.as_str()).cloned().unwrap_or_default();
                state(a, &of, &now)
            })
            .collect();
        out.sort_by(|a, b| a.asset.tag.cmp(&b.asset.tag));
        Ok(out)
    }

    /// The assets out with the person using the device.
    pub async fn assets_i_hold(&self, event: &str) -> Result<Vec<AssetState>> {
        let me = self.assets_module(event).await?.person;
        Ok(self.assets(event).await?.into_iter().filter(|a| a.holder.as_deref() == Some(me.as_str())).collect())
    }

    /// One asset's custody history held, oldest first by clock.
    pub async fn custody_history(&self, event: &str, tag: &str) -> Result<Vec<CustodyMove>> {
        self.assets_module(event).await?;
        let mut moves: Vec<CustodyMove> =
            self.mirror().about(event, "custody", tag.trim()).iter().filter_map(|r| typed_row(r)).collect();
        moves.sort_by(|a, b| (&a.hlc, &a.id).cmp(&(&b.hlc, &b.id)));
        Ok(moves)
    }

    /// The double check-outs the server flagged.
    pub async fn custody_flags(&self, event: &str) -> Result<Vec<CustodyFlag>> {
        self.assets_module(event).await?;
        let mut f: Vec<CustodyFlag> =
            self.mirror().kind(event, "custody_flag").iter().filter_map(|r| typed_row(r)).collect();
        f.sort_by(|a, b| (&a.raised_at, &a.id).cmp(&(&b.raised_at, &b.id)));
        Ok(f)
    }
}

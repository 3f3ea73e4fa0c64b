//! Gear custody's operations: assets, where each is, custody history, a desk's moves and
//! the flags. The rules are in [`crate::rules::custody`]; a move is planned by
//! [`crate::plan::field::record_custody`].

use std::collections::BTreeMap;

use crate::{
    Engine, Error, Result,
    access::{Action, Module, Target, decide, require},
    kind::Kind,
    model::{Asset, AssetState, CustodyFlag, CustodyMove},
    plan::Write,
    time,
};
use serde_json::json;

pub use crate::rules::custody::*;
impl Engine {
    pub async fn create_asset(&self, actor: &str, event: &str, input: NewAsset) -> Result<Asset> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        require(decide(&s, Action::Write, Target::Setup), "event")?;
        let a = build_asset(input, &ev.id)?;
        self.commit_as(&ev, vec![Write::create(Kind::Asset, &a.id, &a, Vec::new())?])
            .await
            .map_err(|e| crate::store::on_duplicate(e, "asset_exists", "this event has an asset with that tag"))?;
        Ok(a)
    }

    /// See [`crate::plan::field::record_custody`]; planned again while another judgement of the
    /// same subject commits first, on any node (see `write::judged!`).
    pub async fn record_custody(&self, actor: &str, event: &str, input: NewMove) -> Result<CustodyMove> {
        crate::write::judged!(self, actor, event, |f| crate::plan::field::record_custody(&f, input.clone()).await)
    }

    async fn assets_module(&self, actor: &str, event: &str) -> Result<crate::model::Event> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Read, Target::Module(Module::Assets)), "event")?;
        Ok(ev)
    }

    /// Every asset with where it is now; `overdue_only` keeps those out past their due time.
    pub async fn list_assets(&self, actor: &str, event: &str, overdue_only: bool) -> Result<Vec<AssetState>> {
        let ev = self.assets_module(actor, event).await?;
        let mut rows = self
            .store
            .run(
                &format!(
                    "SELECT *, record::id(id) AS id FROM asset WHERE event = $e ORDER BY tag LIMIT {ASSET_LIST_MAX};
                     SELECT *, record::id(id) AS id FROM custody WHERE event = $e;"
                ),
                json!({ "e": ev.id }),
            )
            .await?;
        let assets: Vec<Asset> = rows.all(0)?;
        let moves: Vec<CustodyMove> = rows.all(1)?;
        let mut by_asset: BTreeMap<&str, Vec<&CustodyMove>> = BTreeMap::new();
        for m in &moves {
            by_asset.entry(m.asset.as_str()).or_default().push(m);
        }
        let now = time::now();
        Ok(assets
            .into_iter()
            .map(|a| {
                let of = by_asset.get(a.tag.as_str()).cloned().unwrap_or_default();
                state(a, &of, &now)
            })
            .filter(|s| !overdue_only || s.overdue)
            .collect())
    }

    /// One asset's custody history, oldest first by clock.
    pub async fn custody_history(&self, actor: &str, event: &str, tag: &str) -> Result<Vec<CustodyMove>> {
        let ev = self.assets_module(actor, event).await?;
        self.load::<Asset>(Kind::Asset, &ev.id, &asset_key(&ev.id, tag.trim()))
            .await?
            .ok_or(Error::not_found("asset"))?;
        let moves: Vec<CustodyMove> = self.records_where(Kind::Custody, &ev.id, "asset", tag.trim()).await?;
        Ok(by_clock(&moves).into_iter().cloned().collect())
    }

    pub async fn list_custody_flags(&self, actor: &str, event: &str) -> Result<Vec<CustodyFlag>> {
        let ev = self.assets_module(actor, event).await?;
        self.list(Kind::CustodyFlag, &ev.id, None, "raised_at").await
    }
}

//! Gear custody's operations: assets, where each is, custody history, a desk's moves and
//! the flags. The rules are in [`crate::rules::custody`]; a move is planned by
//! [`crate::plan::field::record_custody`].

use std::collections::BTreeMap;

use crate::{
    Engine, Error, Result,
    access::{Action, Module, Target, decide, require},
    kind::Kind,
    model::{Asset, AssetState, CustodyFlag, CustodyMove},
    paging::{Order, Page, PageAsk, event_vars},
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

    /// A page of the assets by tag, each with where it is now (read from its own custody
    /// moves, by index); `overdue_only` keeps those out past their due time, so such a page
    /// may hold fewer than it asked.
    pub async fn list_assets(
        &self,
        actor: &str,
        event: &str,
        filter: AssetFilter,
        ask: &PageAsk,
    ) -> Result<Page<AssetState>> {
        let overdue_only = filter.overdue;
        let ev = self.assets_module(actor, event).await?;
        let page: Page<Asset> = self.page("asset", "event = $e", event_vars(&ev.id), Order::by(&["tag"]), ask).await?;
        let tags: Vec<&str> = page.items.iter().map(|a| a.tag.as_str()).collect();
        let moves: Vec<CustodyMove> = self
            .store
            .run(
                "RETURN array::flatten($tags.map(|$t| (SELECT *, record::id(id) AS id FROM custody WHERE event = $e AND asset = $t)));",
                json!({ "e": ev.id, "tags": tags }),
            )
            .await?
            .all(0)?;
        let mut by_asset: BTreeMap<String, Vec<&CustodyMove>> = BTreeMap::new();
        for m in &moves {
            by_asset.entry(m.asset.clone()).or_default().push(m);
        }
        let now = time::now();
        let next = page.next;
        let items = page
            .items
            .into_iter()
            .map(|a| {
                let of = by_asset.get(a.tag.as_str()).cloned().unwrap_or_default();
                state(a, &of, &now)
            })
            .filter(|s| !overdue_only || s.overdue)
            .collect();
        Ok(Page { items, next })
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

    pub async fn list_custody_flags(&self, actor: &str, event: &str, ask: &PageAsk) -> Result<Page<CustodyFlag>> {
        let ev = self.assets_module(actor, event).await?;
        self.page("custody_flag", "event = $e", event_vars(&ev.id), Order::by(&["raised_at"]), ask).await
    }
}

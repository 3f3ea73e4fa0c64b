//! The front gate's operations: module grants, zones, gates, credentials (one by one or a
//! CSV import), scans and their flags. The rules are in [`crate::rules::gate`]; a scan is
//! planned by [`crate::plan::field::record_scan`].

use std::collections::HashSet;

use crate::{
    Engine, Error, Result,
    access::{Action, Module, Target, decide, require},
    kind::Kind,
    model::{Credential, Gate, ModuleGrant, Scan, ScanFlag, Zone},
    paging::{Order, Page, PageAsk, event_vars},
    plan::Write,
    time,
};
use serde_json::{Value, json};

pub use crate::rules::gate::*;
/// Credentials written by one commit of an import.
const IMPORT_COMMIT_ROWS: usize = 250;

impl Engine {
    fn module_of(name: &str) -> Result<Module> {
        Module::parse(name).ok_or_else(|| Error::invalid("module must be one of gate, labor, assets"))
    }

    /// Grants a collaborator a field module (the event team's: a seat). Granting one it has
    /// is a no-op that answers the grant.
    pub async fn grant_module(
        &self,
        actor: &str,
        event: &str,
        collaborator: &str,
        module: &str,
    ) -> Result<ModuleGrant> {
        let module = Self::module_of(module)?;
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Write, Target::Setup), "event")?;
        self.collaborator(&ev.id, collaborator).await?.ok_or(Error::not_found("collaborator"))?;
        let key = grant_key(&ev.id, collaborator, module);
        if let Some(g) = self.load::<ModuleGrant>(Kind::ModuleGrant, &ev.id, &key).await? {
            return Ok(g);
        }
        let g = ModuleGrant {
            id: key,
            event: ev.id.clone(),
            collaborator: collaborator.into(),
            module,
            granted_by: actor.into(),
            created_at: time::now(),
        };
        let w = Write::create(Kind::ModuleGrant, &g.id, &g, vec![g.collaborator.clone()])?;
        match self.commit(&ev.id, vec![w]).await {
            Ok(_) => Ok(g),
            // Granted meanwhile by someone else.
            Err(Error::Conflict { code: "already_exists", .. }) => {
                self.load(Kind::ModuleGrant, &ev.id, &g.id).await?.ok_or(Error::not_found("module grant"))
            }
            Err(e) => Err(e),
        }
    }

    /// Takes a field module from a collaborator: its members' devices purge the module's data.
    pub async fn revoke_module(&self, actor: &str, event: &str, collaborator: &str, module: &str) -> Result<()> {
        let module = Self::module_of(module)?;
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Write, Target::Setup), "event")?;
        self.collaborator(&ev.id, collaborator).await?.ok_or(Error::not_found("collaborator"))?;
        let key = grant_key(&ev.id, collaborator, module);
        if self.load::<ModuleGrant>(Kind::ModuleGrant, &ev.id, &key).await?.is_none() {
            return Err(Error::not_found("module grant"));
        }
        self.commit(&ev.id, vec![Write::delete(Kind::ModuleGrant, &key, vec![collaborator.into()])]).await?;
        Ok(())
    }

    /// The module grants the caller may see: all for the event team, their own collaborator's
    /// for members.
    pub async fn list_module_grants(&self, actor: &str, event: &str) -> Result<Vec<ModuleGrant>> {
        let (ev, s) = self.standing(actor, event).await?;
        let all: Vec<ModuleGrant> = self
            .store
            .run(
                "SELECT *, record::id(id) AS id FROM module_grant WHERE event = $e ORDER BY created_at",
                json!({ "e": ev.id }),
            )
            .await?
            .all(0)?;
        Ok(all
            .into_iter()
            .filter(|g| crate::feed::visible(&s, Kind::ModuleGrant, std::slice::from_ref(&g.collaborator)))
            .collect())
    }

    async fn zone_codes(&self, event: &str) -> Result<HashSet<String>> {
        let codes: Vec<String> =
            self.store.run("SELECT VALUE code FROM zone WHERE event = $e", json!({ "e": event })).await?.all(0)?;
        Ok(codes.into_iter().collect())
    }

    pub async fn create_zone(&self, actor: &str, event: &str, input: NewZone) -> Result<Zone> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        require(decide(&s, Action::Write, Target::Setup), "event")?;
        let z = build_zone(input, &ev.id)?;
        self.commit_as(&ev, vec![Write::create(Kind::Zone, &z.id, &z, Vec::new())?])
            .await
            .map_err(|e| crate::store::on_duplicate(e, "zone_exists", "this event has a zone with that code"))?;
        Ok(z)
    }

    /// Lists records of the gate module (zones, gates), for the event team and gate members.
    async fn list_gate_kind<T: serde::de::DeserializeOwned>(
        &self,
        actor: &str,
        event: &str,
        table: Kind,
    ) -> Result<Vec<T>> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Read, Target::Module(Module::Gate)), "event")?;
        self.list_all(table, &ev.id, "created_at").await
    }

    pub async fn list_zones(&self, actor: &str, event: &str) -> Result<Vec<Zone>> {
        self.list_gate_kind(actor, event, Kind::Zone).await
    }

    pub async fn create_gate(&self, actor: &str, event: &str, input: NewGate) -> Result<Gate> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        require(decide(&s, Action::Write, Target::Setup), "event")?;
        let zone = input.zone.trim().to_string();
        let known = self.zone_codes(&ev.id).await?.contains(&zone);
        let g = build_gate(input, &ev.id, known)?;
        self.commit_as(&ev, vec![Write::create(Kind::Gate, &g.id, &g, Vec::new())?]).await?;
        Ok(g)
    }

    pub async fn list_gates(&self, actor: &str, event: &str) -> Result<Vec<Gate>> {
        self.list_gate_kind(actor, event, Kind::Gate).await
    }

    pub async fn create_credential(&self, actor: &str, event: &str, input: NewCredential) -> Result<Credential> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        require(decide(&s, Action::Write, Target::Setup), "event")?;
        let zones = self.zone_codes(&ev.id).await?;
        let c = build_credential(input, &ev.id, &|z| zones.contains(z))?;
        self.commit_as(&ev, vec![Write::create(Kind::Credential, &c.id, &c, Vec::new())?]).await.map_err(|e| {
            crate::store::on_duplicate(e, "credential_exists", "this event has a credential with that uid")
        })?;
        Ok(c)
    }

    /// Changes a credential: revoke it, issue it again, change its zones, days or holder.
    pub async fn update_credential(
        &self,
        actor: &str,
        event: &str,
        uid: &str,
        patch: CredentialPatch,
    ) -> Result<Credential> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        require(decide(&s, Action::Write, Target::Setup), "credential")?;
        let key = credential_key(&ev.id, uid);
        let mut c: Credential =
            self.load(Kind::Credential, &ev.id, &key).await?.ok_or(Error::not_found("credential"))?;
        let zones = self.zone_codes(&ev.id).await?;
        apply_credential(&mut c, patch, &|z| zones.contains(z), &self.stamp(None))?;
        self.commit_as(&ev, vec![Write::replace(Kind::Credential, &c.id, &c, Vec::new(), Vec::new())?]).await?;
        Ok(c)
    }

    /// One credential as the caller may see it (a gate member: the gate's fields only).
    pub async fn get_credential(&self, actor: &str, event: &str, uid: &str) -> Result<Value> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Read, Target::Module(Module::Gate)), "credential")?;
        let c: Value = self
            .load(Kind::Credential, &ev.id, &credential_key(&ev.id, uid))
            .await?
            .ok_or(Error::not_found("credential"))?;
        Ok(shape_credential(&s, c))
    }

    /// A page of the event's credentials by uid, as the caller may see them; `next` is the
    /// last uid of a page that has more after it.
    pub async fn list_credentials(&self, actor: &str, event: &str, page: &PageAsk) -> Result<Page<Value>> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Read, Target::Module(Module::Gate)), "event")?;
        let limit = page.limit.unwrap_or(CREDENTIAL_PAGE_MAX).clamp(1, CREDENTIAL_PAGE_MAX);
        let rows: Vec<Value> = self
            .store
            .run(
                &format!(
                    "SELECT *, record::id(id) AS id FROM credential WHERE event = $e AND uid > $after ORDER BY uid LIMIT {}",
                    limit + 1
                ),
                json!({ "e": ev.id, "after": page.after.clone().unwrap_or_default() }),
            )
            .await?
            .all(0)?;
        let mut rows = rows;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().and_then(|c| c.get("uid")?.as_str().map(String::from))
        } else {
            None
        };
        Ok(Page { items: rows.into_iter().map(|c| shape_credential(&s, c)).collect(), next })
    }

    /// Imports credentials from CSV in one request: every row is checked first and a file
    /// with malformed rows imports nothing (the answer lists them by line). A uid already in
    /// the event is updated (its status stays as it is), so importing the same file again
    /// changes nothing. The rows commit in parts of [`IMPORT_COMMIT_ROWS`]: each part reaches
    /// devices as one burst of the feed, and the event's other writes go between them.
    pub async fn import_credentials(
        &self,
        actor: &str,
        event: &str,
        csv_text: &str,
    ) -> Result<std::result::Result<ImportReport, (Vec<ImportError>, usize)>> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Write, Target::Setup), "event")?;
        let zones = self.zone_codes(&ev.id).await?;
        let rows = match parse_import(csv_text, &ev.id, &|z| zones.contains(z)) {
            Ok(rows) => rows,
            Err(errors) => return Ok(Err(errors)),
        };
        let existing: Vec<Credential> = self
            .store
            .run("SELECT *, record::id(id) AS id FROM credential WHERE event = $e", json!({ "e": ev.id }))
            .await?
            .all(0)?;
        let existing: std::collections::HashMap<String, Credential> =
            existing.into_iter().map(|c| (c.uid.clone(), c)).collect();
        let mut report = ImportReport { rows: rows.len(), ..Default::default() };
        let mut writes = Vec::new();
        for mut c in rows {
            match existing.get(&c.uid) {
                None => {
                    report.created += 1;
                    writes.push(Write::create(Kind::Credential, &c.id, &c, Vec::new())?);
                }
                Some(old) => {
                    c.status = old.status;
                    c.revoked_stamp.clone_from(&old.revoked_stamp);
                    c.created_at.clone_from(&old.created_at);
                    c.updated_at.clone_from(&old.updated_at);
                    if &c == old {
                        report.unchanged += 1;
                        continue;
                    }
                    c.updated_at = time::now();
                    report.updated += 1;
                    writes.push(Write::replace(Kind::Credential, &c.id, &c, Vec::new(), Vec::new())?);
                }
            }
        }
        // In commits of a few hundred: the event's other writes (a lane's scans at gates open)
        // take their turns between them instead of waiting for the whole import.
        while !writes.is_empty() {
            let rest = writes.split_off(writes.len().min(IMPORT_COMMIT_ROWS));
            self.commit(&ev.id, std::mem::replace(&mut writes, rest)).await?;
        }
        Ok(Ok(report))
    }

    /// See [`crate::plan::field::record_scan`]; planned again while another judgement of the
    /// same subject commits first, on any node (see `write::judged!`).
    pub async fn record_scan(&self, actor: &str, event: &str, input: NewScan) -> Result<Scan> {
        crate::write::judged!(self, actor, event, |f| crate::plan::field::record_scan(&f, input.clone()).await)
    }

    /// Scans of the event, newest first (by clock), for the event team and gate members.
    pub async fn list_scans(&self, actor: &str, event: &str, filter: ScanFilter, ask: &PageAsk) -> Result<Page<Scan>> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Read, Target::Module(Module::Gate)), "event")?;
        let mut cond = String::from("event = $e");
        if filter.credential.is_some() {
            cond.push_str(" AND credential = $c");
        }
        if filter.gate.is_some() {
            cond.push_str(" AND gate = $g");
        }
        let vars = json!({ "e": ev.id, "c": filter.credential, "g": filter.gate });
        self.page("scan", &cond, vars, Order::newest_first(&["hlc"]), ask).await
    }

    /// The flags raised on the event's scans, newest first.
    pub async fn list_scan_flags(&self, actor: &str, event: &str, ask: &PageAsk) -> Result<Page<ScanFlag>> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Read, Target::Module(Module::Gate)), "event")?;
        self.page("scan_flag", "event = $e", event_vars(&ev.id), Order::newest_first(&["raised_at"]), ask).await
    }
}

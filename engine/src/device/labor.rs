//! Crew time on a phone: punches made offline and kept in the outbox, and the timecards the
//! server built, as the device holds them.

use serde_json::json;

use super::{LocalWrite, Replica, write::typed_row};
use crate::{
    Error, Result,
    access::{Action, Module, Target, decide, require},
    kind::person_scope,
    model::{Gps, LaborRules, Punch, PunchKind, Timecard},
    protocol::MutationOp,
};

impl Replica {
    /// Punches the clock now, with the phone's time (and where it is, if given): recorded at
    /// once, offline too, and sent when online. Punching again with the id of a punch the
    /// device holds answers that punch and records nothing.
    pub async fn punch(&self, event: &str, kind: PunchKind, gps: Option<Gps>, id: Option<&str>) -> Result<Punch> {
        if let Some(id) = id
            && let Some(held) = self.load::<Punch>(event, "punch", id)?
        {
            return Ok(held);
        }
        let fields = json!({ "id": id, "kind": kind, "gps": gps });
        let w = LocalWrite { kind: "punch".into(), op: MutationOp::Create, record: None, fields };
        let written = self.write(event, w).await?;
        serde_json::from_value(written.record.data)
            .map_err(|e| Error::Internal(format!("a punch made here does not decode: {e}")))
    }

    async fn labor_module(&self, event: &str) -> Result<crate::access::Standing> {
        let s = self.standing(event).await?;
        require(decide(&s, Action::Read, Target::Module(Module::Labor)), "labor module")?;
        Ok(s)
    }

    /// The person's own punches held (sent or not), in time order.
    pub async fn my_punches(&self, event: &str) -> Result<Vec<Punch>> {
        let s = self.labor_module(event).await?;
        let mut p: Vec<Punch> =
            self.mirror().tab(event, "punch", &person_scope(&s.person)).iter().filter_map(|r| typed_row(r)).collect();
        p.sort_by(|a, b| (&a.device_time, &a.id).cmp(&(&b.device_time, &b.id)));
        Ok(p)
    }

    /// The timecards held, by day: the person's own (a seat holder's device: everyone's).
    pub async fn timecards(&self, event: &str) -> Result<Vec<Timecard>> {
        self.labor_module(event).await?;
        let mut t: Vec<Timecard> = self.mirror().kind(event, "timecard").iter().filter_map(|r| typed_row(r)).collect();
        t.sort_by(|a, b| (&a.day, &a.person).cmp(&(&b.day, &b.person)));
        Ok(t)
    }

    /// The event's labor rules as the device holds them (the defaults when none were set).
    pub async fn labor_rules(&self, event: &str) -> Result<LaborRules> {
        self.labor_module(event).await?;
        Ok(self.load(event, "labor_rules", event)?.unwrap_or_else(|| LaborRules::default_for(event)))
    }
}

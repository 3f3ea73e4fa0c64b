//! Crew time's operations: punches, timecards (a member's own, the event team's all),
//! approval, labor rules and locked periods. The rules are in [`crate::rules::labor`]; a
//! punch is planned by [`crate::plan::field::record_punch`], the team's changes by
//! [`crate::plan::labor`].

use crate::{
    Engine, Result,
    access::{Action, Module, Target, decide, require},
    kind::Kind,
    model::{LaborPeriod, LaborRules, Punch, Timecard},
    paging::{Order, Page, PageAsk},
};
use serde_json::json;

pub use crate::rules::labor::*;
impl Engine {
    async fn labor_rules(&self, event: &str) -> Result<LaborRules> {
        Ok(self.load(Kind::LaborRules, event, event).await?.unwrap_or_else(|| LaborRules::default_for(event)))
    }

    async fn labor_periods(&self, event: &str) -> Result<Vec<LaborPeriod>> {
        self.list_all(Kind::LaborPeriod, event, "first_day").await
    }

    /// See [`crate::plan::field::record_punch`]; planned again while another judgement of the
    /// same subject commits first, on any node (see `write::judged!`).
    pub async fn record_punch(&self, actor: &str, event: &str, input: NewPunch) -> Result<Punch> {
        crate::write::judged!(self, actor, event, |f| crate::plan::field::record_punch(&f, input.clone()).await)
    }

    /// Which person's records a list shows: a member only their own.
    fn labor_person(&self, s: &crate::access::Standing, asked: Option<String>) -> Result<Option<String>> {
        match asked {
            Some(p) => {
                require(decide(s, Action::Read, Target::Personal { module: Module::Labor, owner: &p }), "person")?;
                Ok(Some(p))
            }
            None if s.seat => Ok(None),
            None => {
                require(
                    decide(s, Action::Read, Target::Personal { module: Module::Labor, owner: &s.person }),
                    "event",
                )?;
                Ok(Some(s.person.clone()))
            }
        }
    }

    /// Punches in time order: the caller's own, or for a seat holder anyone's.
    pub async fn list_punches(
        &self,
        actor: &str,
        event: &str,
        filter: LaborFilter,
        ask: &PageAsk,
    ) -> Result<Page<Punch>> {
        let (ev, s) = self.standing(actor, event).await?;
        let person = self.labor_person(&s, filter.person)?;
        let cond = if person.is_some() { "event = $e AND person = $p" } else { "event = $e" };
        self.page("punch", cond, json!({ "e": ev.id, "p": person }), Order::by(&["device_time"]), ask).await
    }

    /// Timecards by day: the caller's own, or for a seat holder anyone's.
    pub async fn list_timecards(
        &self,
        actor: &str,
        event: &str,
        filter: LaborFilter,
        ask: &PageAsk,
    ) -> Result<Page<Timecard>> {
        let (ev, s) = self.standing(actor, event).await?;
        let person = self.labor_person(&s, filter.person)?;
        let mut cond = String::new();
        if person.is_some() {
            cond.push_str(" AND person = $p");
        }
        if filter.day.is_some() {
            cond.push_str(" AND day = $d");
        }
        let vars = json!({ "e": ev.id, "p": person, "d": filter.day });
        self.page("timecard", &format!("event = $e{cond}"), vars, Order::by(&["day", "person"]), ask).await
    }

    /// Approves a timecard (the event team's); see [`crate::plan::labor::approve_timecard`].
    pub async fn approve_timecard(&self, actor: &str, event: &str, person: &str, day: &str) -> Result<Timecard> {
        crate::write::judged!(self, actor, event, |f| crate::plan::labor::approve_timecard(&f, person, day).await)
    }

    pub async fn get_labor_rules(&self, actor: &str, event: &str) -> Result<LaborRules> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Read, Target::Module(Module::Labor)), "event")?;
        self.labor_rules(&ev.id).await
    }

    /// Changes the event's labor rules (the event team's) and rebuilds every timecard that
    /// is not in a locked period, person by person, each on the person's punches as they are
    /// when it commits (see [`crate::plan::labor`]).
    pub async fn set_labor_rules(&self, actor: &str, event: &str, patch: RulesPatch) -> Result<LaborRules> {
        let rules =
            crate::write::judged!(self, actor, event, |f| crate::plan::labor::set_rules(&f, patch.clone()).await)?;
        let people: Vec<String> = self
            .store
            .run(
                "RETURN array::distinct((SELECT VALUE person FROM punch WHERE event = $e))",
                json!({ "e": rules.event }),
            )
            .await?
            .all(0)?;
        for person in people {
            crate::write::judged!(self, actor, event, |f| crate::plan::labor::rebuild_timecards(&f, &person).await)?;
        }
        Ok(rules)
    }

    /// Locks the days `first_day..=last_day` (the event team's); see
    /// [`crate::plan::labor::lock_period`].
    pub async fn lock_period(&self, actor: &str, event: &str, input: NewPeriod) -> Result<LaborPeriod> {
        crate::write::judged!(self, actor, event, |f| crate::plan::labor::lock_period(&f, input.clone()).await)
    }

    pub async fn list_periods(&self, actor: &str, event: &str) -> Result<Vec<LaborPeriod>> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Read, Target::Module(Module::Labor)), "event")?;
        self.labor_periods(&ev.id).await
    }
}

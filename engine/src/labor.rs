//! Crew time's operations: punches, timecards (a member's own, the event team's all),
//! approval, labor rules and locked periods. The rules are in [`crate::rules::labor`]; a
//! punch is planned by [`crate::plan::field::record_punch`].

use std::collections::BTreeMap;

use crate::{
    Engine, Error, Result,
    access::{Action, Module, Target, decide, require},
    kind::{Kind, person_scope},
    model::{LaborPeriod, LaborRules, Punch, Timecard, TimecardStatus},
    plan::Write,
    time,
};
use serde_json::json;

pub use crate::rules::labor::*;
impl Engine {
    async fn labor_rules(&self, event: &str) -> Result<LaborRules> {
        Ok(self.load(Kind::LaborRules, event, event).await?.unwrap_or_else(|| LaborRules::default_for(event)))
    }

    async fn labor_periods(&self, event: &str) -> Result<Vec<LaborPeriod>> {
        self.list(Kind::LaborPeriod, event, None, "first_day").await
    }

    /// The writes that rebuild `person`'s timecards from `punches`.
    async fn rebuild_timecards(&self, event: &str, person: &str, punches: &[Punch]) -> Result<Vec<Write>> {
        let rules = self.labor_rules(event).await?;
        let periods = self.labor_periods(event).await?;
        let stored: Vec<Timecard> = self.records_where(Kind::Timecard, event, "person", person).await?;
        crate::plan::field::timecard_writes(
            &stored,
            build_timecards(event, person, punches, &rules),
            &periods,
            person,
            &time::now(),
        )
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
    pub async fn list_punches(&self, actor: &str, event: &str, filter: LaborFilter) -> Result<Vec<Punch>> {
        let (ev, s) = self.standing(actor, event).await?;
        let person = self.labor_person(&s, filter.person)?;
        let cond = if person.is_some() { "AND person = $p" } else { "" };
        self.store
            .run(
                &format!(
                    "SELECT *, record::id(id) AS id FROM punch WHERE event = $e {cond} ORDER BY device_time LIMIT {LABOR_LIST_MAX}"
                ),
                json!({ "e": ev.id, "p": person }),
            )
            .await?
            .all(0)
    }

    /// Timecards by day: the caller's own, or for a seat holder anyone's.
    pub async fn list_timecards(&self, actor: &str, event: &str, filter: LaborFilter) -> Result<Vec<Timecard>> {
        let (ev, s) = self.standing(actor, event).await?;
        let person = self.labor_person(&s, filter.person)?;
        let mut cond = String::new();
        if person.is_some() {
            cond.push_str(" AND person = $p");
        }
        if filter.day.is_some() {
            cond.push_str(" AND day = $d");
        }
        self.store
            .run(
                &format!(
                    "SELECT *, record::id(id) AS id FROM timecard WHERE event = $e{cond} ORDER BY day, person LIMIT {LABOR_LIST_MAX}"
                ),
                json!({ "e": ev.id, "p": person, "d": filter.day }),
            )
            .await?
            .all(0)
    }

    /// Approves a timecard (the event team's). A later punch that changes its counts takes
    /// the approval away again.
    pub async fn approve_timecard(&self, actor: &str, event: &str, person: &str, day: &str) -> Result<Timecard> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        require(decide(&s, Action::Write, Target::Setup), "timecard")?;
        let key = timecard_key(&ev.id, person, day);
        let _held = self.judging(&ev.id).await;
        let mut t: Timecard = self.load(Kind::Timecard, &ev.id, &key).await?.ok_or(Error::not_found("timecard"))?;
        t.status = TimecardStatus::Approved;
        t.approved_by = Some(actor.into());
        t.approved_at = Some(time::now());
        t.updated_at = time::now();
        let scope = vec![person_scope(person)];
        self.commit_as(&ev, vec![Write::replace(Kind::Timecard, &t.id, &t, scope.clone(), scope)?]).await?;
        Ok(t)
    }

    pub async fn get_labor_rules(&self, actor: &str, event: &str) -> Result<LaborRules> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Read, Target::Module(Module::Labor)), "event")?;
        self.labor_rules(&ev.id).await
    }

    /// Changes the event's labor rules (the event team's) and rebuilds every timecard that
    /// is not in a locked period.
    pub async fn set_labor_rules(&self, actor: &str, event: &str, patch: RulesPatch) -> Result<LaborRules> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Write, Target::Setup), "event")?;
        let _held = self.judging(&ev.id).await;
        let existed = self.load::<LaborRules>(Kind::LaborRules, &ev.id, &ev.id).await?.is_some();
        let mut rules = self.labor_rules(&ev.id).await?;
        apply_rules(&mut rules, patch)?;
        let w = if existed {
            Write::replace(Kind::LaborRules, &ev.id, &rules, Vec::new(), Vec::new())?
        } else {
            Write::create(Kind::LaborRules, &ev.id, &rules, Vec::new())?
        };
        self.commit(&ev.id, vec![w]).await?;
        let all: Vec<Punch> = self.list(Kind::Punch, &ev.id, None, "device_time").await?;
        let mut by_person: BTreeMap<String, Vec<Punch>> = BTreeMap::new();
        for p in all {
            by_person.entry(p.person.clone()).or_default().push(p);
        }
        for (person, punches) in by_person {
            let writes = self.rebuild_timecards(&ev.id, &person, &punches).await?;
            if !writes.is_empty() {
                self.commit(&ev.id, writes).await?;
            }
        }
        Ok(rules)
    }

    /// Locks the days `first_day..=last_day` (the event team's): their timecards keep their
    /// counts; a punch that arrives for them is kept and shown as an exception.
    pub async fn lock_period(&self, actor: &str, event: &str, input: NewPeriod) -> Result<LaborPeriod> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Write, Target::Setup), "event")?;
        let first = time::parse_date("first_day", input.first_day.trim())?;
        let last = time::parse_date("last_day", input.last_day.trim())?;
        if last < first {
            return Err(Error::invalid("last_day must not be before first_day"));
        }
        let periods = self.labor_periods(&ev.id).await?;
        if periods.iter().any(|p| p.first_day <= last && first <= p.last_day) {
            return Err(Error::conflict("period_overlaps", "these days overlap a locked period"));
        }
        let p = LaborPeriod {
            id: format!("{}|{first}", ev.id),
            event: ev.id.clone(),
            first_day: first,
            last_day: last,
            locked_by: actor.into(),
            locked_at: time::now(),
        };
        let _held = self.judging(&ev.id).await;
        self.commit(&ev.id, vec![Write::create(Kind::LaborPeriod, &p.id, &p, Vec::new())?]).await?;
        Ok(p)
    }

    pub async fn list_periods(&self, actor: &str, event: &str) -> Result<Vec<LaborPeriod>> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Read, Target::Module(Module::Labor)), "event")?;
        self.labor_periods(&ev.id).await
    }
}

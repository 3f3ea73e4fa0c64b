//! The five tabs of a collaborator: tasks, schedule (activities), files, advances, and the
//! dashboard derived from them.
//!
//! Reads are here; every write is planned by [`crate::plan::tabs`] and committed once.

use serde::{Deserialize, de::DeserializeOwned};
use serde_json::json;

use crate::{
    Engine, Error, Result,
    access::{Action, Standing, Tab, Target, decide, require},
    kind::Kind,
    model::{Activity, Advance, AdvanceCounts, AdvanceStatus, Dashboard, FileMeta, Task, TaskCounts, TaskStatus},
    paging::{Order, Page, PageAsk},
    plan::tabs,
    rules::{ActivityPatch, AdvancePatch, NewActivity, NewAdvance, NewFile, NewTask, TaskPatch},
    time,
};

/// Which rows of a tab's list: one collaborator's (or every one the caller sees).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFilter {
    pub collaborator: Option<String>,
}

fn one(c: &str) -> [String; 1] {
    [c.to_string()]
}

impl Engine {
    /// Which collaborators' records a list returns for this caller.
    fn list_scope(&self, s: &Standing, filter: &ListFilter, tab: Tab) -> Result<Option<String>> {
        match (&filter.collaborator, s.seat, &s.membership) {
            (Some(c), _, _) => {
                require(decide(s, Action::Read, Target::Tab { tab, collaborators: &one(c) }), "collaborator")?;
                Ok(Some(c.clone()))
            }
            (None, true, _) => Ok(None),
            (None, false, Some(m)) => Ok(Some(m.collaborator.clone())),
            (None, false, None) => Err(Error::forbidden(
                "not_permitted",
                "the tabs of an event need an Event Pro seat or membership of a collaborator",
            )),
        }
    }

    /// One page of a tab's records in `order`: the event's, or one collaborator's.
    pub(crate) async fn list<T: DeserializeOwned>(
        &self,
        kind: Kind,
        event: &str,
        scope: Option<String>,
        order: Order,
        ask: &PageAsk,
    ) -> Result<Page<T>> {
        let filter = match (&scope, kind) {
            (None, _) => "",
            (Some(_), Kind::Activity) => " AND $c IN collaborators",
            (Some(_), _) => " AND collaborator = $c",
        };
        let vars = json!({ "tb": kind.as_str(), "e": event, "c": scope });
        self.page("type::table($tb)", &format!("event = $e{filter}"), vars, order, ask).await
    }

    /// Every record of a kind of the event's setup that stays small (zones, gates, locked
    /// periods), in `order`.
    pub(crate) async fn list_all<T: DeserializeOwned>(&self, kind: Kind, event: &str, order: &str) -> Result<Vec<T>> {
        self.store
            .run(
                &format!("SELECT *, record::id(id) AS id FROM type::table($tb) WHERE event = $e ORDER BY {order}, id"),
                json!({ "tb": kind.as_str(), "e": event }),
            )
            .await?
            .all(0)
    }

    // ---- tasks ----

    pub async fn list_tasks(&self, actor: &str, event: &str, filter: ListFilter, page: &PageAsk) -> Result<Page<Task>> {
        let (ev, s) = self.standing(actor, event).await?;
        let scope = self.list_scope(&s, &filter, Tab::Tasks)?;
        self.list(Kind::Task, &ev.id, scope, Order::by(&["created_at"]), page).await
    }

    pub async fn create_task(&self, actor: &str, event: &str, input: NewTask) -> Result<Task> {
        let f = self.facts(actor, event).await?;
        let p = tabs::create_task(&f, input).await?;
        self.commit_record(&f, p).await
    }

    pub async fn update_task(&self, actor: &str, event: &str, id: &str, patch: TaskPatch) -> Result<Task> {
        let f = self.facts(actor, event).await?;
        let p = tabs::update_task(&f, id, patch).await?;
        self.commit_record(&f, p).await
    }

    pub async fn delete_task(&self, actor: &str, event: &str, id: &str) -> Result<()> {
        let f = self.facts(actor, event).await?;
        let p = tabs::delete_task(&f, id).await?;
        self.commit_plan(&f, p).await.map(|_| ())
    }

    // ---- schedule ----

    pub async fn list_activities(
        &self,
        actor: &str,
        event: &str,
        filter: ListFilter,
        page: &PageAsk,
    ) -> Result<Page<Activity>> {
        let (ev, s) = self.standing(actor, event).await?;
        let scope = self.list_scope(&s, &filter, Tab::Schedule)?;
        self.list(Kind::Activity, &ev.id, scope, Order::by(&["starts_at"]), page).await
    }

    pub async fn create_activity(&self, actor: &str, event: &str, input: NewActivity) -> Result<Activity> {
        let f = self.facts(actor, event).await?;
        let p = tabs::create_activity(&f, input).await?;
        self.commit_record(&f, p).await
    }

    pub async fn update_activity(&self, actor: &str, event: &str, id: &str, patch: ActivityPatch) -> Result<Activity> {
        let f = self.facts(actor, event).await?;
        let p = tabs::update_activity(&f, id, patch).await?;
        self.commit_record(&f, p).await
    }

    pub async fn delete_activity(&self, actor: &str, event: &str, id: &str) -> Result<()> {
        let f = self.facts(actor, event).await?;
        let p = tabs::delete_activity(&f, id).await?;
        self.commit_plan(&f, p).await.map(|_| ())
    }

    // ---- files ----

    pub async fn list_files(
        &self,
        actor: &str,
        event: &str,
        filter: ListFilter,
        page: &PageAsk,
    ) -> Result<Page<FileMeta>> {
        let (ev, s) = self.standing(actor, event).await?;
        let scope = self.list_scope(&s, &filter, Tab::Files)?;
        self.list(Kind::FileMeta, &ev.id, scope, Order::by(&["created_at"]), page).await
    }

    /// Adds a file to a collaborator's folder from the caller's finished upload of the same
    /// file id (see [`crate::files`]): the record carries the upload's size, hash and what
    /// processing found (thumbnails), so it is never visible before its bytes are.
    pub async fn add_file(&self, actor: &str, event: &str, input: NewFile) -> Result<FileMeta> {
        let f = self.facts(actor, event).await?;
        let p = tabs::add_file(&f, input).await?;
        self.commit_record(&f, p).await
    }

    pub async fn delete_file(&self, actor: &str, event: &str, id: &str) -> Result<()> {
        let f = self.facts(actor, event).await?;
        let p = tabs::delete_file(&f, id).await?;
        self.commit_plan(&f, p).await.map(|_| ())
    }

    // ---- advances ----

    pub async fn list_advances(
        &self,
        actor: &str,
        event: &str,
        filter: ListFilter,
        page: &PageAsk,
    ) -> Result<Page<Advance>> {
        let (ev, s) = self.standing(actor, event).await?;
        let scope = self.list_scope(&s, &filter, Tab::Advances)?;
        self.list(Kind::Advance, &ev.id, scope, Order::by(&["created_at"]), page).await
    }

    /// Sends an advance form to a collaborator (the event team's job: seat holders).
    pub async fn create_advance(&self, actor: &str, event: &str, input: NewAdvance) -> Result<Advance> {
        let f = self.facts(actor, event).await?;
        let p = tabs::create_advance(&f, input).await?;
        self.commit_record(&f, p).await
    }

    /// Answers, reviews or re-sends an advance. The collaborator's members answer; review
    /// (done, archived, back to not started), titles and moves are the event team's. Editing
    /// the answers of an advance puts it (back) into `needs_review`.
    pub async fn update_advance(&self, actor: &str, event: &str, id: &str, patch: AdvancePatch) -> Result<Advance> {
        let f = self.facts(actor, event).await?;
        let p = tabs::update_advance(&f, id, patch).await?;
        self.commit_record(&f, p).await
    }

    pub async fn delete_advance(&self, actor: &str, event: &str, id: &str) -> Result<()> {
        let f = self.facts(actor, event).await?;
        let p = tabs::delete_advance(&f, id).await?;
        self.commit_plan(&f, p).await.map(|_| ())
    }

    // ---- dashboard ----

    /// The Dashboard tab of one collaborator (the caller's own when not given).
    pub async fn dashboard(&self, actor: &str, event: &str, collaborator: Option<String>) -> Result<Dashboard> {
        let (ev, s) = self.standing(actor, event).await?;
        let c = crate::rules::collaborator_asked(&ev.default_collaborator, &s, collaborator)?;
        require(
            decide(&s, Action::Read, Target::Tab { tab: Tab::Dashboard, collaborators: &one(&c) }),
            "collaborator",
        )?;
        let collab = self.collaborator(&ev.id, &c).await?.ok_or(Error::not_found("collaborator"))?;
        let mut rows = self
            .store
            .run(
                "SELECT status, count() AS n FROM task WHERE event = $e AND collaborator = $c GROUP BY status;
                 SELECT status, count() AS n FROM advance WHERE event = $e AND collaborator = $c GROUP BY status;
                 SELECT VALUE ends_at FROM activity WHERE event = $e AND $c IN collaborators;
                 SELECT VALUE size FROM file_meta WHERE event = $e AND collaborator = $c;",
                json!({ "e": ev.id, "c": c }),
            )
            .await?;
        #[derive(Deserialize)]
        struct N<S> {
            status: S,
            n: i64,
        }
        let mut tasks = TaskCounts::default();
        for r in rows.all::<N<TaskStatus>>(0)? {
            *match r.status {
                TaskStatus::Todo => &mut tasks.todo,
                TaskStatus::Active => &mut tasks.active,
                TaskStatus::InReview => &mut tasks.in_review,
                TaskStatus::Done => &mut tasks.done,
                TaskStatus::Archived => &mut tasks.archived,
            } += r.n;
        }
        let mut advances = AdvanceCounts::default();
        for r in rows.all::<N<AdvanceStatus>>(1)? {
            *match r.status {
                AdvanceStatus::NotStarted => &mut advances.not_started,
                AdvanceStatus::NeedsReview => &mut advances.needs_review,
                AdvanceStatus::Done => &mut advances.done,
                AdvanceStatus::Archived => &mut advances.archived,
            } += r.n;
        }
        let ends: Vec<String> = rows.all(2)?;
        let now = time::now();
        let sizes: Vec<i64> = rows.all(3)?;
        Ok(Dashboard {
            collaborator: collab.id,
            name: collab.name,
            read_only: !s.seat && s.membership.as_ref().is_some_and(|m| m.read_only),
            tasks,
            activities: ends.len() as i64,
            upcoming_activities: ends.iter().filter(|e| **e >= now).count() as i64,
            files: sizes.len() as i64,
            files_bytes: sizes.iter().sum(),
            advances,
        })
    }
}

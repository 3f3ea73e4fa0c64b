//! The five tabs of a collaborator: tasks, schedule (activities), files, advances, and the
//! dashboard derived from them.
//!
//! Every operation loads the caller's standing once and asks the access function about the
//! record's collaborators *before* the change and, for moves, *after* it as well.

use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::{
    Engine, Error, Result,
    access::{Action, Decision, Standing, Tab, Target, decide},
    changes::Write,
    events::gate,
    model::{
        Activity, Advance, AdvanceCounts, AdvanceStatus, Dashboard, Event, FileMeta, Task, TaskCounts, TaskStatus,
    },
    rules, time,
};

/// Most collaborators one activity may be tagged to.
pub const ACTIVITY_TAGS_MAX: usize = 100;
/// Longest file name, in characters.
pub const FILE_NAME_LEN_MAX: usize = 255;
/// Largest serialized advance answers document, in bytes.
pub const ANSWERS_BYTES_MAX: usize = 64 * 1024;
/// Most rows one list returns; lists are per collaborator or per event and bounded.
pub const LIST_ROWS_MAX: usize = 10_000;

/// Distinguishes "field absent" (`None`) from "field set to null" (`Some(None)`).
fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFilter {
    pub collaborator: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// A client-chosen id (a UUID), so a device can refer to a record it created offline;
    /// the server chooses one when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Defaults to the caller's own collaborator, or the event's default collaborator for
    /// seat holders.
    #[serde(default)]
    pub collaborator: Option<String>,
    pub title: String,
    #[serde(default)]
    pub status: Option<TaskStatus>,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub due: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    #[serde(default)]
    pub collaborator: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub status: Option<TaskStatus>,
    #[serde(default, deserialize_with = "double_option")]
    pub assignee: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub due: Option<Option<String>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewActivity {
    /// A client-chosen id (a UUID), so a device can refer to a record it created offline;
    /// the server chooses one when absent.
    #[serde(default)]
    pub id: Option<String>,
    pub title: String,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(default)]
    pub area: Option<String>,
    /// Defaults to the caller's own collaborator for collaborator members.
    #[serde(default)]
    pub collaborators: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityPatch {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub starts_at: Option<String>,
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub area: Option<Option<String>>,
    #[serde(default)]
    pub collaborators: Option<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFile {
    /// A client-chosen id (a UUID), so a device can refer to a record it created offline;
    /// the server chooses one when absent.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub collaborator: Option<String>,
    pub name: String,
    /// The content's size and sha256 (64 hex digits): taken from the finished upload of
    /// this file id when absent, and checked against it when given.
    #[serde(default)]
    pub size: Option<i64>,
    #[serde(default)]
    pub content_hash: Option<String>,
    #[serde(default)]
    pub media_type: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAdvance {
    /// A client-chosen id (a UUID), so a device can refer to a record it created offline;
    /// the server chooses one when absent.
    #[serde(default)]
    pub id: Option<String>,
    pub collaborator: String,
    pub title: String,
    #[serde(default)]
    pub answers: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvancePatch {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub collaborator: Option<String>,
    #[serde(default)]
    pub answers: Option<Value>,
    #[serde(default)]
    pub status: Option<AdvanceStatus>,
}

fn one(c: &str) -> [String; 1] {
    [c.to_string()]
}

impl Engine {
    pub(crate) async fn load<T: DeserializeOwned>(&self, table: &str, event: &str, id: &str) -> Result<Option<T>> {
        // Inside a batch, earlier mutations of the batch are visible to later ones.
        if let Some(batch) = &self.batch
            && let Some(planned) = batch.planned(table, id)
        {
            return Ok(match planned {
                Some(v) if v.get("event").and_then(serde_json::Value::as_str) == Some(event) => {
                    Some(serde_json::from_value(v)?)
                }
                _ => None,
            });
        }
        self.store
            .run(
                "SELECT *, record::id(id) AS id FROM type::record($tb, $id) WHERE event = $e",
                json!({ "tb": table, "id": id, "e": event }),
            )
            .await?
            .first(0)
    }

    /// The collaborator a new record goes to: the one asked for (which must exist in the
    /// event and be visible), else the member's own, else the event's default.
    pub(crate) async fn target_collaborator(&self, ev: &Event, s: &Standing, asked: Option<String>) -> Result<String> {
        let c = rules::collaborator_asked(&ev.default_collaborator, s, asked)?;
        // Facts kept at the version of the caller's standing are checked again by the commit.
        let kept = ev.basis.as_ref().and_then(|b| self.shared.access.collaborator(&ev.id, b.version, &c));
        let exists = match kept {
            Some(exists) => exists,
            None => {
                let exists = self.collaborator(&ev.id, &c).await?.is_some();
                if let Some(b) = &ev.basis {
                    self.shared.access.keep_collaborator(&ev.id, b.version, &c, exists);
                }
                exists
            }
        };
        if !exists {
            return Err(Error::not_found("collaborator"));
        }
        Ok(c)
    }

    /// Which collaborators' records a list returns for this caller.
    fn list_scope(&self, s: &Standing, filter: &ListFilter, tab: Tab) -> Result<Option<String>> {
        match (&filter.collaborator, s.seat, &s.membership) {
            (Some(c), _, _) => {
                gate(decide(s, Action::Read, Target::Tab { tab, collaborators: &one(c) }), "collaborator")?;
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

    async fn check_assignee(&self, assignee: Option<String>) -> Result<Option<String>> {
        match assignee.map(|a| a.trim().to_string()).filter(|a| !a.is_empty()) {
            None => Ok(None),
            Some(a) => match self.account(&a).await? {
                Some(_) => Ok(Some(a)),
                None => Err(Error::rule("unknown_assignee", "assignee must be the id of a BackOps account")),
            },
        }
    }

    pub(crate) async fn list<T: DeserializeOwned>(
        &self,
        table: &str,
        event: &str,
        scope: Option<String>,
        order: &str,
    ) -> Result<Vec<T>> {
        let filter = match (&scope, table) {
            (None, _) => "",
            (Some(_), "activity") => "AND $c IN collaborators",
            (Some(_), _) => "AND collaborator = $c",
        };
        self.store
            .run(
                &format!(
                    "SELECT *, record::id(id) AS id FROM type::table($tb) WHERE event = $e {filter} ORDER BY {order} LIMIT {LIST_ROWS_MAX}"
                ),
                json!({ "tb": table, "e": event, "c": scope }),
            )
            .await?
            .all(0)
    }

    /// The records of `table` in `event` whose `field` is `value`, as the writes this batch
    /// planned earlier leave them.
    pub(crate) async fn records_where<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        event: &str,
        field: &'static str,
        value: &str,
    ) -> Result<Vec<T>> {
        let mut rows: std::collections::BTreeMap<String, Value> = self
            .store
            .run(
                &format!("SELECT *, record::id(id) AS id FROM type::table($tb) WHERE event = $e AND {field} = $v"),
                json!({ "tb": table, "e": event, "v": value }),
            )
            .await?
            .all::<Value>(0)?
            .into_iter()
            .map(|v| (v["id"].as_str().unwrap_or_default().to_string(), v))
            .collect();
        if let Some(batch) = &self.batch {
            for (id, v) in batch.planned_of(table) {
                match v {
                    Some(v) if v["event"] == event && v[field] == value => {
                        rows.insert(id, v);
                    }
                    Some(_) => {}
                    None => {
                        rows.remove(&id);
                    }
                }
            }
        }
        rows.into_values().map(|v| serde_json::from_value(v).map_err(Error::from)).collect()
    }

    // ---- tasks ----

    pub async fn list_tasks(&self, actor: &str, event: &str, filter: ListFilter) -> Result<Vec<Task>> {
        let (ev, s) = self.standing(actor, event).await?;
        let scope = self.list_scope(&s, &filter, Tab::Tasks)?;
        self.list("task", &ev.id, scope, "created_at").await
    }

    pub async fn create_task(&self, actor: &str, event: &str, input: NewTask) -> Result<Task> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        let collaborator = self.target_collaborator(&ev, &s, input.collaborator.clone()).await?;
        gate(
            decide(&s, Action::Write, Target::Tab { tab: Tab::Tasks, collaborators: &one(&collaborator) }),
            "collaborator",
        )?;
        let assignee = self.check_assignee(input.assignee.clone()).await?;
        let task = rules::build_task(input, &ev.id, collaborator, assignee, actor)?;
        self.commit_as(&ev, vec![Write::create("task", &task.id, &task, one(&task.collaborator).into())?]).await?;
        Ok(task)
    }

    pub async fn update_task(&self, actor: &str, event: &str, id: &str, patch: TaskPatch) -> Result<Task> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        let mut task: Task = self.load("task", &ev.id, id).await?.ok_or(Error::not_found("task"))?;
        let before = vec![task.collaborator.clone()];
        gate(
            decide(&s, Action::Read, Target::Tab { tab: Tab::Tasks, collaborators: &one(&task.collaborator) }),
            "task",
        )?;
        gate(
            decide(&s, Action::Write, Target::Tab { tab: Tab::Tasks, collaborators: &one(&task.collaborator) }),
            "task",
        )?;
        let mut patch = patch;
        if let Some(c) = patch.collaborator.take() {
            let c = self.target_collaborator(&ev, &s, Some(c)).await?;
            gate(decide(&s, Action::Write, Target::Tab { tab: Tab::Tasks, collaborators: &one(&c) }), "collaborator")?;
            patch.collaborator = Some(c);
        }
        if let Some(a) = patch.assignee.take() {
            patch.assignee = Some(self.check_assignee(a).await?);
        }
        rules::apply_task(&mut task, patch, &self.stamp())?;
        let after = vec![task.collaborator.clone()];
        self.commit_as(&ev, vec![Write::replace("task", &task.id, &task, before, after)?]).await?;
        Ok(task)
    }

    pub async fn delete_task(&self, actor: &str, event: &str, id: &str) -> Result<()> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        let task: Task = self.load("task", &ev.id, id).await?.ok_or(Error::not_found("task"))?;
        gate(
            decide(&s, Action::Read, Target::Tab { tab: Tab::Tasks, collaborators: &one(&task.collaborator) }),
            "task",
        )?;
        gate(
            decide(&s, Action::Write, Target::Tab { tab: Tab::Tasks, collaborators: &one(&task.collaborator) }),
            "task",
        )?;
        self.commit_as(&ev, vec![Write::delete("task", &task.id, vec![task.collaborator.clone()])]).await?;
        Ok(())
    }

    // ---- schedule ----

    async fn check_tags(&self, ev: &Event, s: &Standing, tags: Option<Vec<String>>) -> Result<Vec<String>> {
        let tags = rules::tags_asked(&ev.default_collaborator, s, tags)?;
        for c in &tags {
            if self.collaborator(&ev.id, c).await?.is_none() {
                return Err(Error::not_found("collaborator"));
            }
        }
        Ok(tags)
    }

    pub async fn list_activities(&self, actor: &str, event: &str, filter: ListFilter) -> Result<Vec<Activity>> {
        let (ev, s) = self.standing(actor, event).await?;
        let scope = self.list_scope(&s, &filter, Tab::Schedule)?;
        self.list("activity", &ev.id, scope, "starts_at").await
    }

    pub async fn create_activity(&self, actor: &str, event: &str, input: NewActivity) -> Result<Activity> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        let tags = self.check_tags(&ev, &s, input.collaborators.clone()).await?;
        gate(decide(&s, Action::Write, rules::schedule_target(&tags)), "collaborator")?;
        let a = rules::build_activity(input, &ev.id, tags, actor)?;
        self.commit_as(&ev, vec![Write::create("activity", &a.id, &a, a.collaborators.clone())?]).await?;
        Ok(a)
    }

    pub async fn update_activity(&self, actor: &str, event: &str, id: &str, patch: ActivityPatch) -> Result<Activity> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        let mut a: Activity = self.load("activity", &ev.id, id).await?.ok_or(Error::not_found("activity"))?;
        let before = a.collaborators.clone();
        if !s.seat {
            gate(
                decide(&s, Action::Read, Target::Tab { tab: Tab::Schedule, collaborators: &a.collaborators }),
                "activity",
            )?;
        }
        gate(decide(&s, Action::Write, rules::schedule_target(&a.collaborators)), "activity")?;
        let mut patch = patch;
        if let Some(tags) = patch.collaborators.take() {
            let tags = self.check_tags(&ev, &s, Some(tags)).await?;
            gate(decide(&s, Action::Write, rules::schedule_target(&tags)), "collaborator")?;
            patch.collaborators = Some(tags);
        }
        rules::apply_activity(&mut a, patch, &self.stamp())?;
        let after = a.collaborators.clone();
        self.commit_as(&ev, vec![Write::replace("activity", &a.id, &a, before, after)?]).await?;
        Ok(a)
    }

    pub async fn delete_activity(&self, actor: &str, event: &str, id: &str) -> Result<()> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        let a: Activity = self.load("activity", &ev.id, id).await?.ok_or(Error::not_found("activity"))?;
        if !s.seat {
            gate(
                decide(&s, Action::Read, Target::Tab { tab: Tab::Schedule, collaborators: &a.collaborators }),
                "activity",
            )?;
        }
        gate(decide(&s, Action::Write, rules::schedule_target(&a.collaborators)), "activity")?;
        self.commit_as(&ev, vec![Write::delete("activity", &a.id, a.collaborators.clone())]).await?;
        Ok(())
    }

    // ---- files ----

    pub async fn list_files(&self, actor: &str, event: &str, filter: ListFilter) -> Result<Vec<FileMeta>> {
        let (ev, s) = self.standing(actor, event).await?;
        let scope = self.list_scope(&s, &filter, Tab::Files)?;
        self.list("file_meta", &ev.id, scope, "created_at").await
    }

    /// Adds a file to a collaborator's folder from the caller's finished upload of the same
    /// file id (see [`crate::files`]): the record carries the upload's size, hash and what
    /// processing found (thumbnails), so it is never visible before its bytes are.
    pub async fn add_file(&self, actor: &str, event: &str, mut input: NewFile) -> Result<FileMeta> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        let collaborator = self.target_collaborator(&ev, &s, input.collaborator.clone()).await?;
        gate(
            decide(&s, Action::Write, Target::Tab { tab: Tab::Files, collaborators: &one(&collaborator) }),
            "collaborator",
        )?;
        let id = rules::record_id(Some(input.id.as_deref().ok_or_else(|| {
            Error::invalid("id must be the file id its upload was opened with (a file is added from a finished upload)")
        })?))?;
        let up = self.finished_upload(&ev.id, actor, &id).await?;
        let hash = input.content_hash.take().map(|h| h.trim().to_lowercase());
        if hash.as_ref().is_some_and(|h| *h != up.sha256) || input.size.is_some_and(|n| n != up.size) {
            return Err(Error::rule("upload_mismatch", "size and content_hash must be those of the finished upload"));
        }
        input.size = Some(up.size);
        input.content_hash = Some(up.sha256.clone());
        input.media_type = input.media_type.or(up.media_type.clone()).or(up.processed.media_type.clone());
        let mut f = rules::build_file(input, &ev.id, collaborator, actor)?;
        f.preview = up.processed.preview;
        self.commit_as(&ev, vec![Write::create("file_meta", &f.id, &f, one(&f.collaborator).into())?]).await?;
        self.upload_added(&up.id).await?;
        Ok(f)
    }

    pub async fn delete_file(&self, actor: &str, event: &str, id: &str) -> Result<()> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        let f: FileMeta = self.load("file_meta", &ev.id, id).await?.ok_or(Error::not_found("file"))?;
        gate(decide(&s, Action::Read, Target::Tab { tab: Tab::Files, collaborators: &one(&f.collaborator) }), "file")?;
        gate(decide(&s, Action::Write, Target::Tab { tab: Tab::Files, collaborators: &one(&f.collaborator) }), "file")?;
        self.commit_as(&ev, vec![Write::delete("file_meta", &f.id, vec![f.collaborator.clone()])]).await?;
        Ok(())
    }

    // ---- advances ----

    pub async fn list_advances(&self, actor: &str, event: &str, filter: ListFilter) -> Result<Vec<Advance>> {
        let (ev, s) = self.standing(actor, event).await?;
        let scope = self.list_scope(&s, &filter, Tab::Advances)?;
        self.list("advance", &ev.id, scope, "created_at").await
    }

    /// Sends an advance form to a collaborator (the event team's job: seat holders).
    pub async fn create_advance(&self, actor: &str, event: &str, input: NewAdvance) -> Result<Advance> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        gate(decide(&s, Action::Write, Target::Setup), "event")?;
        let collaborator = self.target_collaborator(&ev, &s, Some(input.collaborator.clone())).await?;
        let a = rules::build_advance(input, &ev.id, collaborator, actor)?;
        self.commit_as(&ev, vec![Write::create("advance", &a.id, &a, one(&a.collaborator).into())?]).await?;
        Ok(a)
    }

    /// Answers, reviews or re-sends an advance. The collaborator's members answer; review
    /// (done, archived, back to not started), titles and moves are the event team's. Editing
    /// the answers of an advance puts it (back) into `needs_review`.
    pub async fn update_advance(&self, actor: &str, event: &str, id: &str, patch: AdvancePatch) -> Result<Advance> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        let mut a: Advance = self.load("advance", &ev.id, id).await?.ok_or(Error::not_found("advance"))?;
        let before = vec![a.collaborator.clone()];
        let scope = one(&a.collaborator);
        gate(decide(&s, Action::Read, Target::Tab { tab: Tab::Advances, collaborators: &scope }), "advance")?;
        gate(decide(&s, Action::Write, Target::Tab { tab: Tab::Advances, collaborators: &scope }), "advance")?;
        let team = decide(&s, Action::Write, Target::Setup) == Decision::Allow;
        rules::check_advance_patch(&patch, team)?;
        let mut patch = patch;
        if let Some(c) = patch.collaborator.take() {
            patch.collaborator = Some(self.target_collaborator(&ev, &s, Some(c)).await?);
        }
        rules::apply_advance(&mut a, patch, team, &self.stamp())?;
        let after = vec![a.collaborator.clone()];
        self.commit_as(&ev, vec![Write::replace("advance", &a.id, &a, before, after)?]).await?;
        Ok(a)
    }

    pub async fn delete_advance(&self, actor: &str, event: &str, id: &str) -> Result<()> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        let a: Advance = self.load("advance", &ev.id, id).await?.ok_or(Error::not_found("advance"))?;
        gate(
            decide(&s, Action::Read, Target::Tab { tab: Tab::Advances, collaborators: &one(&a.collaborator) }),
            "advance",
        )?;
        gate(decide(&s, Action::Write, Target::Setup), "advance")?;
        self.commit_as(&ev, vec![Write::delete("advance", &a.id, vec![a.collaborator.clone()])]).await?;
        Ok(())
    }

    // ---- dashboard ----

    /// The Dashboard tab of one collaborator (the caller's own when not given).
    pub async fn dashboard(&self, actor: &str, event: &str, collaborator: Option<String>) -> Result<Dashboard> {
        let (ev, s) = self.standing(actor, event).await?;
        let c = self.target_collaborator(&ev, &s, collaborator).await?;
        gate(decide(&s, Action::Read, Target::Tab { tab: Tab::Dashboard, collaborators: &one(&c) }), "collaborator")?;
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

//! The five tabs of a collaborator: tasks, schedule (activities), files, advances, and the
//! dashboard derived from them.
//!
//! Every operation loads the caller's standing once and asks the access function about the
//! record's collaborators *before* the change and, for moves, *after* it as well.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::{
    Engine, Error, Result,
    access::{Action, Decision, Standing, Tab, Target, decide},
    accounts::validate_name,
    changes::Write,
    events::gate,
    model::{
        Activity, Advance, AdvanceCounts, AdvanceStatus, Dashboard, Event, FileMeta, Task, TaskCounts, TaskStatus,
        new_id,
    },
    time,
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
    pub size: i64,
    /// sha256 of the content, 64 hex digits.
    pub content_hash: String,
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

/// The id of a new record: the client's when it gave a valid UUID, else a fresh one.
fn record_id(asked: Option<&str>) -> Result<String> {
    match asked {
        None => Ok(new_id()),
        Some(id) => uuid::Uuid::parse_str(id)
            .map(|u| u.hyphenated().to_string())
            .map_err(|_| Error::invalid("id must be a UUID when given")),
    }
}

/// Per-field last-writer-wins: whether an edit stamped `stamp` (a hybrid logical clock, see
/// [`crate::hlc`]) wins `field` over the edit that last set it. A winner's stamp is kept.
/// Fields never edited since the record was created carry no stamp: any edit wins them.
pub fn won(stamps: &mut BTreeMap<String, String>, field: &str, stamp: &str) -> bool {
    match stamps.get(field) {
        Some(last) if last.as_str() >= stamp => false,
        _ => {
            stamps.insert(field.to_string(), stamp.to_string());
            true
        }
    }
}

fn one(c: &str) -> [String; 1] {
    [c.to_string()]
}

fn optional_text(field: &str, v: Option<String>) -> Result<Option<String>> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => validate_name(field, s).map(Some),
    }
}

impl Engine {
    async fn load<T: DeserializeOwned>(&self, table: &str, event: &str, id: &str) -> Result<Option<T>> {
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
    async fn target_collaborator(&self, ev: &Event, s: &Standing, asked: Option<String>) -> Result<String> {
        let c = match asked {
            Some(c) => c.trim().to_string(),
            None => match &s.membership {
                Some(m) if !s.seat => m.collaborator.clone(),
                _ => ev.default_collaborator.clone(),
            },
        };
        gate(decide(s, Action::Read, Target::Tab { tab: Tab::Dashboard, collaborators: &one(&c) }), "collaborator")?;
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

    async fn list<T: DeserializeOwned>(
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

    // ---- tasks ----

    pub async fn list_tasks(&self, actor: &str, event: &str, filter: ListFilter) -> Result<Vec<Task>> {
        let (ev, s) = self.standing(actor, event).await?;
        let scope = self.list_scope(&s, &filter, Tab::Tasks)?;
        self.list("task", &ev.id, scope, "created_at").await
    }

    pub async fn create_task(&self, actor: &str, event: &str, input: NewTask) -> Result<Task> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        let collaborator = self.target_collaborator(&ev, &s, input.collaborator).await?;
        gate(
            decide(&s, Action::Write, Target::Tab { tab: Tab::Tasks, collaborators: &one(&collaborator) }),
            "collaborator",
        )?;
        let now = time::now();
        let task = Task {
            id: record_id(input.id.as_deref())?,
            event: ev.id.clone(),
            collaborator,
            title: validate_name("title", &input.title)?,
            status: input.status.unwrap_or(TaskStatus::Todo),
            assignee: self.check_assignee(input.assignee).await?,
            due: input.due.as_deref().map(|d| time::parse_date("due", d)).transpose()?,
            created_by: actor.into(),
            created_at: now.clone(),
            updated_at: now,
            stamps: Default::default(),
        };
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
        let stamp = self.stamp();
        let stamps = &mut task.stamps;
        if let Some(c) = patch.collaborator {
            let c = self.target_collaborator(&ev, &s, Some(c)).await?;
            gate(decide(&s, Action::Write, Target::Tab { tab: Tab::Tasks, collaborators: &one(&c) }), "collaborator")?;
            if won(stamps, "collaborator", &stamp) {
                task.collaborator = c;
            }
        }
        if let Some(t) = patch.title {
            let t = validate_name("title", &t)?;
            if won(stamps, "title", &stamp) {
                task.title = t;
            }
        }
        if let Some(st) = patch.status
            && won(stamps, "status", &stamp)
        {
            task.status = st;
        }
        if let Some(a) = patch.assignee {
            let a = self.check_assignee(a).await?;
            if won(stamps, "assignee", &stamp) {
                task.assignee = a;
            }
        }
        if let Some(d) = patch.due {
            let d = d.as_deref().map(|d| time::parse_date("due", d)).transpose()?;
            if won(stamps, "due", &stamp) {
                task.due = d;
            }
        }
        task.updated_at = time::now();
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
        let mut tags: Vec<String> = match tags {
            Some(t) => t.into_iter().map(|c| c.trim().to_string()).collect(),
            None => match &s.membership {
                Some(m) if !s.seat => vec![m.collaborator.clone()],
                _ => vec![ev.default_collaborator.clone()],
            },
        };
        tags.sort();
        tags.dedup();
        if tags.len() > ACTIVITY_TAGS_MAX {
            return Err(Error::invalid(format!(
                "an activity may be tagged to at most {ACTIVITY_TAGS_MAX} collaborators"
            )));
        }
        for c in &tags {
            gate(decide(s, Action::Read, Target::Tab { tab: Tab::Schedule, collaborators: &one(c) }), "collaborator")?;
            if self.collaborator(&ev.id, c).await?.is_none() {
                return Err(Error::not_found("collaborator"));
            }
        }
        Ok(tags)
    }

    /// An activity tagged to no collaborator belongs to the event team (seat holders).
    fn schedule_target(tags: &[String]) -> Target<'_> {
        if tags.is_empty() { Target::Setup } else { Target::Tab { tab: Tab::Schedule, collaborators: tags } }
    }

    pub async fn list_activities(&self, actor: &str, event: &str, filter: ListFilter) -> Result<Vec<Activity>> {
        let (ev, s) = self.standing(actor, event).await?;
        let scope = self.list_scope(&s, &filter, Tab::Schedule)?;
        self.list("activity", &ev.id, scope, "starts_at").await
    }

    pub async fn create_activity(&self, actor: &str, event: &str, input: NewActivity) -> Result<Activity> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        let tags = self.check_tags(&ev, &s, input.collaborators).await?;
        gate(decide(&s, Action::Write, Self::schedule_target(&tags)), "collaborator")?;
        let now = time::now();
        let a = Activity {
            id: record_id(input.id.as_deref())?,
            event: ev.id.clone(),
            title: validate_name("title", &input.title)?,
            starts_at: time::parse("starts_at", &input.starts_at)?,
            ends_at: time::parse("ends_at", &input.ends_at)?,
            area: optional_text("area", input.area)?,
            collaborators: tags,
            created_by: actor.into(),
            created_at: now.clone(),
            updated_at: now,
            stamps: Default::default(),
        };
        if a.ends_at < a.starts_at {
            return Err(Error::invalid("ends_at must not be before starts_at"));
        }
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
        gate(decide(&s, Action::Write, Self::schedule_target(&a.collaborators)), "activity")?;
        let stamp = self.stamp();
        let stamps = &mut a.stamps;
        if let Some(tags) = patch.collaborators {
            let tags = self.check_tags(&ev, &s, Some(tags)).await?;
            gate(decide(&s, Action::Write, Self::schedule_target(&tags)), "collaborator")?;
            if won(stamps, "collaborators", &stamp) {
                a.collaborators = tags;
            }
        }
        if let Some(t) = patch.title {
            let t = validate_name("title", &t)?;
            if won(stamps, "title", &stamp) {
                a.title = t;
            }
        }
        if let Some(t) = patch.starts_at {
            let t = time::parse("starts_at", &t)?;
            if won(stamps, "starts_at", &stamp) {
                a.starts_at = t;
            }
        }
        if let Some(t) = patch.ends_at {
            let t = time::parse("ends_at", &t)?;
            if won(stamps, "ends_at", &stamp) {
                a.ends_at = t;
            }
        }
        if let Some(area) = patch.area {
            let area = optional_text("area", area)?;
            if won(stamps, "area", &stamp) {
                a.area = area;
            }
        }
        if a.ends_at < a.starts_at {
            return Err(Error::invalid("ends_at must not be before starts_at"));
        }
        a.updated_at = time::now();
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
        gate(decide(&s, Action::Write, Self::schedule_target(&a.collaborators)), "activity")?;
        self.commit_as(&ev, vec![Write::delete("activity", &a.id, a.collaborators.clone())]).await?;
        Ok(())
    }

    // ---- files ----

    pub async fn list_files(&self, actor: &str, event: &str, filter: ListFilter) -> Result<Vec<FileMeta>> {
        let (ev, s) = self.standing(actor, event).await?;
        let scope = self.list_scope(&s, &filter, Tab::Files)?;
        self.list("file_meta", &ev.id, scope, "created_at").await
    }

    /// Records a file in a collaborator's folder (its metadata; the bytes travel separately).
    pub async fn add_file(&self, actor: &str, event: &str, input: NewFile) -> Result<FileMeta> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        let collaborator = self.target_collaborator(&ev, &s, input.collaborator).await?;
        gate(
            decide(&s, Action::Write, Target::Tab { tab: Tab::Files, collaborators: &one(&collaborator) }),
            "collaborator",
        )?;
        let name = input.name.trim().to_string();
        if name.is_empty() || name.chars().count() > FILE_NAME_LEN_MAX || name.contains(['/', '\\', '\0']) {
            return Err(Error::invalid(format!(
                "name must be a file name of 1 to {FILE_NAME_LEN_MAX} characters without slashes"
            )));
        }
        if input.size < 0 {
            return Err(Error::invalid("size must not be negative"));
        }
        let hash = input.content_hash.trim().to_lowercase();
        if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::invalid("content_hash must be the sha256 of the content as 64 hex digits"));
        }
        let f = FileMeta {
            id: record_id(input.id.as_deref())?,
            event: ev.id.clone(),
            collaborator,
            name,
            size: input.size,
            content_hash: hash,
            media_type: optional_text("media_type", input.media_type)?,
            uploaded_by: actor.into(),
            created_at: time::now(),
        };
        self.commit_as(&ev, vec![Write::create("file_meta", &f.id, &f, one(&f.collaborator).into())?]).await?;
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
        let collaborator = self.target_collaborator(&ev, &s, Some(input.collaborator)).await?;
        let answers = check_answers(input.answers.unwrap_or_else(|| json!({})))?;
        let now = time::now();
        let a = Advance {
            id: record_id(input.id.as_deref())?,
            event: ev.id.clone(),
            collaborator,
            title: validate_name("title", &input.title)?,
            status: if answers.as_object().is_some_and(|m| !m.is_empty()) {
                AdvanceStatus::NeedsReview
            } else {
                AdvanceStatus::NotStarted
            },
            answers,
            created_by: actor.into(),
            created_at: now.clone(),
            updated_at: now,
            stamps: Default::default(),
        };
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
        let team = decide(&s, Action::Write, Target::Setup);
        let review_gate = |what: &str| -> Result<()> {
            if team == Decision::Allow {
                Ok(())
            } else {
                Err(Error::forbidden(
                    "review_requires_seat",
                    format!("{what} is done by the event team (an Event Pro seat)"),
                ))
            }
        };
        let stamp = self.stamp();
        let stamps = &mut a.stamps;
        if let Some(t) = patch.title {
            review_gate("renaming an advance")?;
            let t = validate_name("title", &t)?;
            if won(stamps, "title", &stamp) {
                a.title = t;
            }
        }
        if let Some(c) = patch.collaborator {
            review_gate("sending an advance to another collaborator")?;
            let c = self.target_collaborator(&ev, &s, Some(c)).await?;
            if won(stamps, "collaborator", &stamp) {
                a.collaborator = c;
            }
        }
        if let Some(answers) = patch.answers {
            let answers = check_answers(answers)?;
            if answers != a.answers && won(stamps, "answers", &stamp) {
                a.answers = answers;
                // Changed answers need a review again, unless a later review already happened.
                if won(stamps, "status", &stamp) {
                    a.status = AdvanceStatus::NeedsReview;
                }
            }
        }
        if let Some(st) = patch.status {
            if st != AdvanceStatus::NeedsReview {
                review_gate("reviewing an advance")?;
            }
            if won(stamps, "status", &stamp) {
                a.status = st;
            }
        }
        a.updated_at = time::now();
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

fn check_answers(answers: Value) -> Result<Value> {
    if !answers.is_object() {
        return Err(Error::invalid("answers must be a JSON object"));
    }
    if serde_json::to_vec(&answers)?.len() > ANSWERS_BYTES_MAX {
        return Err(Error::invalid(format!("answers must be at most {ANSWERS_BYTES_MAX} bytes of JSON")));
    }
    Ok(answers)
}

//! The planners of the tabs' records: tasks, schedule activities, files and advances.
//!
//! Each loads the record through [`Facts`], asks the access function about its owners
//! *before* the change and, for moves, *after* it as well, then applies the field rules of
//! [`crate::rules`]. The HTTP API, the push dispatch and the device all come here.

use crate::{
    Error, Result,
    access::{Action, Tab, Target},
    kind::Kind,
    model::{Activity, Advance, FileMeta, Task},
    plan::{Effect, Facts, Planned, Write, allow, load, team},
    rules::{self, ActivityPatch, AdvancePatch, NewActivity, NewAdvance, NewFile, NewTask, TaskPatch},
};

fn one(c: &str) -> Vec<String> {
    vec![c.to_string()]
}

fn tab<'a>(tab: Tab, owners: &'a [String]) -> Target<'a> {
    Target::Tab { tab, collaborators: owners }
}

/// The collaborator a new or moved record goes to: the one asked for (which must exist in
/// the event and be visible), else the member's own, else the event's default.
pub async fn collaborator(f: &impl Facts, asked: Option<String>) -> Result<String> {
    let c = rules::collaborator_asked(&f.event().default_collaborator, f.standing(), asked)?;
    if !f.collaborator_exists(&c).await? {
        return Err(Error::not_found("collaborator"));
    }
    Ok(c)
}

/// The collaborators an activity is tagged to (see [`rules::tags_asked`]), each existing.
async fn tags(f: &impl Facts, asked: Option<Vec<String>>) -> Result<Vec<String>> {
    let tags = rules::tags_asked(&f.event().default_collaborator, f.standing(), asked)?;
    for c in &tags {
        if !f.collaborator_exists(c).await? {
            return Err(Error::not_found("collaborator"));
        }
    }
    Ok(tags)
}

/// An assignee, trimmed, and a BackOps account where that can be known.
async fn assignee(f: &impl Facts, asked: Option<String>) -> Result<Option<String>> {
    match asked.map(|a| a.trim().to_string()).filter(|a| !a.is_empty()) {
        None => Ok(None),
        Some(a) => match f.account_exists(&a).await? {
            Some(false) => Err(Error::rule("unknown_assignee", "assignee must be the id of a BackOps account")),
            _ => Ok(Some(a)),
        },
    }
}

/// A record the writer may read and change: "not found" when it is gone or hidden.
async fn held<T: serde::de::DeserializeOwned>(f: &impl Facts, kind: Kind, id: &str) -> Result<T> {
    load(f, kind, id).await?.ok_or(Error::not_found(kind.info().noun))
}

// ---- tasks ----

pub async fn create_task(f: &impl Facts, input: NewTask) -> Result<Planned<Task>> {
    let c = collaborator(f, input.collaborator.clone()).await?;
    allow(f, Action::Write, tab(Tab::Tasks, &one(&c)), "collaborator")?;
    let who = assignee(f, input.assignee.clone()).await?;
    let task = rules::build_task(input, &f.event().id, c, who, f.actor(), f.now())?;
    let w = Write::create(Kind::Task, &task.id, &task, one(&task.collaborator))?;
    Ok(Planned::new(task, vec![w]))
}

pub async fn update_task(f: &impl Facts, id: &str, mut patch: TaskPatch) -> Result<Planned<Task>> {
    let mut task: Task = held(f, Kind::Task, id).await?;
    let before = one(&task.collaborator);
    allow(f, Action::Read, tab(Tab::Tasks, &before), "task")?;
    allow(f, Action::Write, tab(Tab::Tasks, &before), "task")?;
    if let Some(c) = patch.collaborator.take() {
        let c = collaborator(f, Some(c)).await?;
        allow(f, Action::Write, tab(Tab::Tasks, &one(&c)), "collaborator")?;
        patch.collaborator = Some(c);
    }
    if let Some(a) = patch.assignee.take() {
        patch.assignee = Some(assignee(f, a).await?);
    }
    rules::apply_task(&mut task, patch, f.stamp(), f.now())?;
    let w = Write::replace(Kind::Task, &task.id, &task, before, one(&task.collaborator))?;
    Ok(Planned::new(task, vec![w]))
}

pub async fn delete_task(f: &impl Facts, id: &str) -> Result<Planned<String>> {
    let task: Task = held(f, Kind::Task, id).await?;
    let owners = one(&task.collaborator);
    allow(f, Action::Read, tab(Tab::Tasks, &owners), "task")?;
    allow(f, Action::Write, tab(Tab::Tasks, &owners), "task")?;
    Ok(Planned::new(task.id.clone(), vec![Write::delete(Kind::Task, &task.id, owners)]))
}

// ---- schedule ----

pub async fn create_activity(f: &impl Facts, input: NewActivity) -> Result<Planned<Activity>> {
    let tags = tags(f, input.collaborators.clone()).await?;
    allow(f, Action::Write, rules::schedule_target(&tags), "collaborator")?;
    let a = rules::build_activity(input, &f.event().id, tags, f.actor(), f.now())?;
    let w = Write::create(Kind::Activity, &a.id, &a, a.collaborators.clone())?;
    Ok(Planned::new(a, vec![w]))
}

/// The checks of changing or deleting an activity: a member reads it in their schedule; an
/// activity shared with others (or the team's) is changed by the team only.
fn may_change_activity(f: &impl Facts, a: &Activity) -> Result<()> {
    if !f.standing().seat {
        allow(f, Action::Read, tab(Tab::Schedule, &a.collaborators), "activity")?;
    }
    allow(f, Action::Write, rules::schedule_target(&a.collaborators), "activity")
}

pub async fn update_activity(f: &impl Facts, id: &str, mut patch: ActivityPatch) -> Result<Planned<Activity>> {
    let mut a: Activity = held(f, Kind::Activity, id).await?;
    let before = a.collaborators.clone();
    may_change_activity(f, &a)?;
    if let Some(asked) = patch.collaborators.take() {
        let t = tags(f, Some(asked)).await?;
        allow(f, Action::Write, rules::schedule_target(&t), "collaborator")?;
        patch.collaborators = Some(t);
    }
    rules::apply_activity(&mut a, patch, f.stamp(), f.now())?;
    let w = Write::replace(Kind::Activity, &a.id, &a, before, a.collaborators.clone())?;
    Ok(Planned::new(a, vec![w]))
}

pub async fn delete_activity(f: &impl Facts, id: &str) -> Result<Planned<String>> {
    let a: Activity = held(f, Kind::Activity, id).await?;
    may_change_activity(f, &a)?;
    Ok(Planned::new(a.id.clone(), vec![Write::delete(Kind::Activity, &a.id, a.collaborators)]))
}

// ---- files ----

/// Adds a file to a collaborator's folder. On the server it is made from the writer's
/// finished upload of the same file id (its size, hash and what processing found), so the
/// record is never visible before its bytes are; a device makes it from the bytes it holds.
pub async fn add_file(f: &impl Facts, mut input: NewFile) -> Result<Planned<FileMeta>> {
    let c = collaborator(f, input.collaborator.clone()).await?;
    allow(f, Action::Write, tab(Tab::Files, &one(&c)), "collaborator")?;
    let id = rules::record_id(Some(input.id.as_deref().ok_or_else(|| {
        Error::invalid("id must be the file id its upload was opened with (a file is added from a finished upload)")
    })?))?;
    let up = f.finished_upload(&id).await?;
    if let Some(up) = &up {
        let hash = input.content_hash.take().map(|h| h.trim().to_lowercase());
        if hash.as_ref().is_some_and(|h| *h != up.sha256) || input.size.is_some_and(|n| n != up.size) {
            return Err(Error::rule("upload_mismatch", "size and content_hash must be those of the finished upload"));
        }
        input.size = Some(up.size);
        input.content_hash = Some(up.sha256.clone());
        input.media_type = input.media_type.or(up.media_type.clone());
    }
    let mut file = rules::build_file(input, &f.event().id, c, f.actor(), f.now())?;
    let mut effects = Vec::new();
    if let Some(up) = up {
        file.preview = up.preview;
        effects.push(Effect::UploadAdded(up.id));
    }
    let w = Write::create(Kind::FileMeta, &file.id, &file, one(&file.collaborator))?;
    Ok(Planned { record: file, writes: vec![w], effects })
}

pub async fn delete_file(f: &impl Facts, id: &str) -> Result<Planned<String>> {
    let file: FileMeta = held(f, Kind::FileMeta, id).await?;
    let owners = one(&file.collaborator);
    allow(f, Action::Read, tab(Tab::Files, &owners), "file")?;
    allow(f, Action::Write, tab(Tab::Files, &owners), "file")?;
    Ok(Planned::new(file.id.clone(), vec![Write::delete(Kind::FileMeta, &file.id, owners)]))
}

// ---- advances ----

/// Sends an advance form to a collaborator (the event team's job: seat holders).
pub async fn create_advance(f: &impl Facts, input: NewAdvance) -> Result<Planned<Advance>> {
    allow(f, Action::Write, Target::Setup, "event")?;
    let c = collaborator(f, Some(input.collaborator.clone())).await?;
    let a = rules::build_advance(input, &f.event().id, c, f.actor(), f.now())?;
    let w = Write::create(Kind::Advance, &a.id, &a, one(&a.collaborator))?;
    Ok(Planned::new(a, vec![w]))
}

/// Answers, reviews or re-sends an advance. The collaborator's members answer; review
/// (done, archived, back to not started), titles and moves are the event team's. Editing
/// the answers of an advance puts it (back) into `needs_review`.
pub async fn update_advance(f: &impl Facts, id: &str, mut patch: AdvancePatch) -> Result<Planned<Advance>> {
    let mut a: Advance = held(f, Kind::Advance, id).await?;
    let before = one(&a.collaborator);
    allow(f, Action::Read, tab(Tab::Advances, &before), "advance")?;
    allow(f, Action::Write, tab(Tab::Advances, &before), "advance")?;
    let team = team(f);
    rules::check_advance_patch(&patch, team)?;
    if let Some(c) = patch.collaborator.take() {
        patch.collaborator = Some(collaborator(f, Some(c)).await?);
    }
    rules::apply_advance(&mut a, patch, team, f.stamp(), f.now())?;
    let w = Write::replace(Kind::Advance, &a.id, &a, before, one(&a.collaborator))?;
    Ok(Planned::new(a, vec![w]))
}

pub async fn delete_advance(f: &impl Facts, id: &str) -> Result<Planned<String>> {
    let a: Advance = held(f, Kind::Advance, id).await?;
    allow(f, Action::Read, tab(Tab::Advances, &one(&a.collaborator)), "advance")?;
    allow(f, Action::Write, Target::Setup, "advance")?;
    Ok(Planned::new(a.id.clone(), vec![Write::delete(Kind::Advance, &a.id, one(&a.collaborator))]))
}

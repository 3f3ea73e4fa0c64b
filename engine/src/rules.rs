//! The field rules of the five tabs' records: how a create builds a record and how an update
//! changes one, with per-field last-writer-wins. Pure functions, no I/O: the server
//! ([`crate::tabs`]) and the device replica ([`crate::device`]) both use them, after each has
//! resolved, its own way, what needs a lookup (the target collaborator, the assignee) and
//! asked the access function.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{
    Error, Result,
    access::{Action, Standing, Tab, Target, decide},
    accounts::validate_name,
    events::gate,
    model::{Activity, Advance, AdvanceStatus, FileMeta, Task, TaskStatus, new_id},
    tabs::{
        ACTIVITY_TAGS_MAX, ANSWERS_BYTES_MAX, ActivityPatch, AdvancePatch, FILE_NAME_LEN_MAX, NewActivity, NewAdvance,
        NewFile, NewTask, TaskPatch,
    },
    time,
};

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

/// The collaborator a new record goes to, before the caller checks that it exists: the one
/// asked for (which must be visible), else the member's own, else the event's default.
pub(crate) fn collaborator_asked(default: &str, s: &Standing, asked: Option<String>) -> Result<String> {
    let c = match asked {
        Some(c) => c.trim().to_string(),
        None => match &s.membership {
            Some(m) if !s.seat => m.collaborator.clone(),
            _ => default.to_string(),
        },
    };
    gate(
        decide(s, Action::Read, Target::Tab { tab: Tab::Dashboard, collaborators: std::slice::from_ref(&c) }),
        "collaborator",
    )?;
    Ok(c)
}

/// The collaborators an activity is tagged to, before the caller checks that they exist:
/// those asked for (each visible), else the member's own, else the event's default; sorted,
/// without repeats, at most [`ACTIVITY_TAGS_MAX`].
pub(crate) fn tags_asked(default: &str, s: &Standing, asked: Option<Vec<String>>) -> Result<Vec<String>> {
    let mut tags: Vec<String> = match asked {
        Some(t) => t.into_iter().map(|c| c.trim().to_string()).collect(),
        None => match &s.membership {
            Some(m) if !s.seat => vec![m.collaborator.clone()],
            _ => vec![default.to_string()],
        },
    };
    tags.sort();
    tags.dedup();
    if tags.len() > ACTIVITY_TAGS_MAX {
        return Err(Error::invalid(format!("an activity may be tagged to at most {ACTIVITY_TAGS_MAX} collaborators")));
    }
    for c in &tags {
        gate(
            decide(s, Action::Read, Target::Tab { tab: Tab::Schedule, collaborators: std::slice::from_ref(c) }),
            "collaborator",
        )?;
    }
    Ok(tags)
}

/// An activity tagged to no collaborator belongs to the event team (seat holders).
pub(crate) fn schedule_target(tags: &[String]) -> Target<'_> {
    if tags.is_empty() { Target::Setup } else { Target::Tab { tab: Tab::Schedule, collaborators: tags } }
}

/// The id of a new record: the client's when it gave a valid UUID, else a fresh one.
pub(crate) fn record_id(asked: Option<&str>) -> Result<String> {
    match asked {
        None => Ok(new_id()),
        Some(id) => uuid::Uuid::parse_str(id)
            .map(|u| u.hyphenated().to_string())
            .map_err(|_| Error::invalid("id must be a UUID when given")),
    }
}

pub(crate) fn optional_text(field: &str, v: Option<String>) -> Result<Option<String>> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => validate_name(field, s).map(Some),
    }
}

pub(crate) fn check_answers(answers: Value) -> Result<Value> {
    if !answers.is_object() {
        return Err(Error::invalid("answers must be a JSON object"));
    }
    if serde_json::to_vec(&answers)?.len() > ANSWERS_BYTES_MAX {
        return Err(Error::invalid(format!("answers must be at most {ANSWERS_BYTES_MAX} bytes of JSON")));
    }
    Ok(answers)
}

/// A task as its create makes it, in `collaborator` (checked by the caller), assigned to
/// `assignee` (checked by the caller).
pub(crate) fn build_task(
    input: NewTask,
    event: &str,
    collaborator: String,
    assignee: Option<String>,
    actor: &str,
) -> Result<Task> {
    let now = time::now();
    Ok(Task {
        id: record_id(input.id.as_deref())?,
        event: event.into(),
        collaborator,
        title: validate_name("title", &input.title)?,
        status: input.status.unwrap_or(TaskStatus::Todo),
        assignee,
        due: input.due.as_deref().map(|d| time::parse_date("due", d)).transpose()?,
        created_by: actor.into(),
        created_at: now.clone(),
        updated_at: now,
        stamps: Default::default(),
    })
}

/// Applies an update to a task, field by field, each only if `stamp` wins it. The patch's
/// `collaborator` and `assignee` are already resolved and checked by the caller.
pub(crate) fn apply_task(task: &mut Task, patch: TaskPatch, stamp: &str) -> Result<()> {
    let title = patch.title.map(|t| validate_name("title", &t)).transpose()?;
    let due = patch.due.map(|d| d.as_deref().map(|d| time::parse_date("due", d)).transpose()).transpose()?;
    let stamps = &mut task.stamps;
    if let Some(c) = patch.collaborator
        && won(stamps, "collaborator", stamp)
    {
        task.collaborator = c;
    }
    if let Some(t) = title
        && won(stamps, "title", stamp)
    {
        task.title = t;
    }
    if let Some(st) = patch.status
        && won(stamps, "status", stamp)
    {
        task.status = st;
    }
    if let Some(a) = patch.assignee
        && won(stamps, "assignee", stamp)
    {
        task.assignee = a;
    }
    if let Some(d) = due
        && won(stamps, "due", stamp)
    {
        task.due = d;
    }
    task.updated_at = time::now();
    Ok(())
}

/// An activity as its create makes it, tagged to `tags` (checked by the caller).
pub(crate) fn build_activity(input: NewActivity, event: &str, tags: Vec<String>, actor: &str) -> Result<Activity> {
    let now = time::now();
    let a = Activity {
        id: record_id(input.id.as_deref())?,
        event: event.into(),
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
    check_times(&a)?;
    Ok(a)
}

fn check_times(a: &Activity) -> Result<()> {
    if a.ends_at < a.starts_at {
        return Err(Error::invalid("ends_at must not be before starts_at"));
    }
    Ok(())
}

/// Applies an update to an activity, field by field (see [`apply_task`]); its
/// `collaborators` are already checked by the caller.
pub(crate) fn apply_activity(a: &mut Activity, patch: ActivityPatch, stamp: &str) -> Result<()> {
    let title = patch.title.map(|t| validate_name("title", &t)).transpose()?;
    let starts = patch.starts_at.map(|t| time::parse("starts_at", &t)).transpose()?;
    let ends = patch.ends_at.map(|t| time::parse("ends_at", &t)).transpose()?;
    let area = patch.area.map(|v| optional_text("area", v)).transpose()?;
    let stamps = &mut a.stamps;
    if let Some(tags) = patch.collaborators
        && won(stamps, "collaborators", stamp)
    {
        a.collaborators = tags;
    }
    if let Some(t) = title
        && won(stamps, "title", stamp)
    {
        a.title = t;
    }
    if let Some(t) = starts
        && won(stamps, "starts_at", stamp)
    {
        a.starts_at = t;
    }
    if let Some(t) = ends
        && won(stamps, "ends_at", stamp)
    {
        a.ends_at = t;
    }
    if let Some(v) = area
        && won(stamps, "area", stamp)
    {
        a.area = v;
    }
    check_times(a)?;
    a.updated_at = time::now();
    Ok(())
}

/// A file record as its create makes it, in `collaborator`'s folder (checked by the caller).
pub(crate) fn build_file(input: NewFile, event: &str, collaborator: String, actor: &str) -> Result<FileMeta> {
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > FILE_NAME_LEN_MAX || name.contains(['/', '\\', '\0']) {
        return Err(Error::invalid(format!(
            "name must be a file name of 1 to {FILE_NAME_LEN_MAX} characters without slashes"
        )));
    }
    let size = input.size.ok_or_else(|| Error::invalid("size is required"))?;
    if size < 0 {
        return Err(Error::invalid("size must not be negative"));
    }
    let hash = input.content_hash.as_deref().unwrap_or_default().trim().to_lowercase();
    if !crate::files::is_content_hash(&hash) {
        return Err(Error::invalid("content_hash must be the sha256 of the content as 64 hex digits"));
    }
    Ok(FileMeta {
        id: record_id(input.id.as_deref())?,
        event: event.into(),
        collaborator,
        name,
        size,
        content_hash: hash,
        media_type: optional_text("media_type", input.media_type)?,
        uploaded_by: actor.into(),
        created_at: time::now(),
        preview: Default::default(),
    })
}

/// An advance as its create makes it, sent to `collaborator` (checked by the caller).
pub(crate) fn build_advance(input: NewAdvance, event: &str, collaborator: String, actor: &str) -> Result<Advance> {
    let answers = check_answers(input.answers.unwrap_or_else(|| json!({})))?;
    let now = time::now();
    Ok(Advance {
        id: record_id(input.id.as_deref())?,
        event: event.into(),
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
    })
}

/// Whether the parts of an advance update that are the event team's are asked by the team.
pub(crate) fn check_advance_patch(patch: &AdvancePatch, team: bool) -> Result<()> {
    let team_only = |what: &str| -> Result<()> {
        if team {
            Ok(())
        } else {
            Err(Error::forbidden(
                "review_requires_seat",
                format!("{what} is done by the event team (an Event Pro seat)"),
            ))
        }
    };
    if patch.title.is_some() {
        team_only("renaming an advance")?;
    }
    if patch.collaborator.is_some() {
        team_only("sending an advance to another collaborator")?;
    }
    if patch.status.is_some_and(|st| st != AdvanceStatus::NeedsReview) {
        team_only("reviewing an advance")?;
    }
    Ok(())
}

/// Applies an update to an advance (see [`apply_task`]). Members answer; review (any status
/// but `needs_review`), titles and moves are the event team's (`team`). Changed answers put
/// the advance (back) into `needs_review`, unless a later review already happened. The
/// patch's `collaborator` is already resolved by the caller.
pub(crate) fn apply_advance(a: &mut Advance, patch: AdvancePatch, team: bool, stamp: &str) -> Result<()> {
    check_advance_patch(&patch, team)?;
    let title = patch.title.map(|t| validate_name("title", &t)).transpose()?;
    let answers = patch.answers.map(check_answers).transpose()?;
    let stamps = &mut a.stamps;
    if let Some(t) = title
        && won(stamps, "title", stamp)
    {
        a.title = t;
    }
    if let Some(c) = patch.collaborator
        && won(stamps, "collaborator", stamp)
    {
        a.collaborator = c;
    }
    if let Some(answers) = answers
        && answers != a.answers
        && won(stamps, "answers", stamp)
    {
        a.answers = answers;
        if won(stamps, "status", stamp) {
            a.status = AdvanceStatus::NeedsReview;
        }
    }
    if let Some(st) = patch.status
        && won(stamps, "status", stamp)
    {
        a.status = st;
    }
    a.updated_at = time::now();
    Ok(())
}

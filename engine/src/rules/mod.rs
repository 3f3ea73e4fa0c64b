//! The business rules of records, as pure functions: what an input may be, how a create
//! builds a record and how an update changes one (per-field last-writer-wins). No I/O, no
//! clock: the time of a write is passed in. The planners ([`crate::plan`]) apply them on the
//! server and on the device alike.
//!
//! This module holds the five tabs' rules and the text checks every record shares; the
//! field modules have theirs in [`gate`], [`labor`] and [`custody`].

pub mod custody;
pub mod gate;
pub mod labor;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::{
    Error, Result,
    access::{Action, Standing, Tab, Target, decide, require},
    model::{Activity, Advance, AdvanceStatus, FileMeta, Task, TaskStatus, new_id},
    time,
};

/// Longest name-like text (names, titles), in characters.
pub const NAME_LEN_MAX: usize = 200;

/// Whether `s` is a sha256 as 64 lowercase hex digits (a blob's name).
pub fn is_content_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks a name-like text field: trimmed, non-empty, bounded.
pub(crate) fn validate_name(field: &str, value: &str) -> Result<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Error::invalid(format!("{field} must not be empty")));
    }
    if v.chars().count() > NAME_LEN_MAX {
        return Err(Error::invalid(format!("{field} must be at most {NAME_LEN_MAX} characters")));
    }
    Ok(v.to_string())
}

/// Most collaborators one activity may be tagged to.
pub const ACTIVITY_TAGS_MAX: usize = 100;
/// Longest file name, in characters.
pub const FILE_NAME_LEN_MAX: usize = 255;
/// Largest serialized advance answers document, in bytes.
pub const ANSWERS_BYTES_MAX: usize = 64 * 1024;

/// Distinguishes "field absent" (`None`) from "field set to null" (`Some(None)`).
fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
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
pub fn collaborator_asked(default: &str, s: &Standing, asked: Option<String>) -> Result<String> {
    let c = match asked {
        Some(c) => c.trim().to_string(),
        None => match &s.membership {
            Some(m) if !s.seat => m.collaborator.clone(),
            _ => default.to_string(),
        },
    };
    require(
        decide(s, Action::Read, Target::Tab { tab: Tab::Dashboard, collaborators: std::slice::from_ref(&c) }),
        "collaborator",
    )?;
    Ok(c)
}

/// The collaborators an activity is tagged to, before the caller checks that they exist:
/// those asked for (each visible), else the member's own, else the event's default; sorted,
/// without repeats, at most [`ACTIVITY_TAGS_MAX`].
pub fn tags_asked(default: &str, s: &Standing, asked: Option<Vec<String>>) -> Result<Vec<String>> {
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
        require(
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
    now: &str,
) -> Result<Task> {
    Ok(Task {
        id: record_id(input.id.as_deref())?,
        event: event.into(),
        collaborator,
        title: validate_name("title", &input.title)?,
        status: input.status.unwrap_or(TaskStatus::Todo),
        assignee,
        due: input.due.as_deref().map(|d| time::parse_date("due", d)).transpose()?,
        created_by: actor.into(),
        created_at: now.into(),
        updated_at: now.into(),
        stamps: Default::default(),
    })
}

/// Applies an update to a task, field by field, each only if `stamp` wins it. The patch's
/// `collaborator` and `assignee` are already resolved and checked by the caller.
pub(crate) fn apply_task(task: &mut Task, patch: TaskPatch, stamp: &str, now: &str) -> Result<()> {
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
    task.updated_at = now.into();
    Ok(())
}

/// An activity as its create makes it, tagged to `tags` (checked by the caller).
pub(crate) fn build_activity(
    input: NewActivity,
    event: &str,
    tags: Vec<String>,
    actor: &str,
    now: &str,
) -> Result<Activity> {
    let a = Activity {
        id: record_id(input.id.as_deref())?,
        event: event.into(),
        title: validate_name("title", &input.title)?,
        starts_at: time::parse("starts_at", &input.starts_at)?,
        ends_at: time::parse("ends_at", &input.ends_at)?,
        area: optional_text("area", input.area)?,
        collaborators: tags,
        created_by: actor.into(),
        created_at: now.into(),
        updated_at: now.into(),
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
pub(crate) fn apply_activity(a: &mut Activity, patch: ActivityPatch, stamp: &str, now: &str) -> Result<()> {
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
    a.updated_at = now.into();
    Ok(())
}

/// A file record as its create makes it, in `collaborator`'s folder (checked by the caller).
pub(crate) fn build_file(
    input: NewFile,
    event: &str,
    collaborator: String,
    actor: &str,
    now: &str,
) -> Result<FileMeta> {
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
    if !is_content_hash(&hash) {
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
        created_at: now.into(),
        preview: Default::default(),
    })
}

/// An advance as its create makes it, sent to `collaborator` (checked by the caller).
pub(crate) fn build_advance(
    input: NewAdvance,
    event: &str,
    collaborator: String,
    actor: &str,
    now: &str,
) -> Result<Advance> {
    let answers = check_answers(input.answers.unwrap_or_else(|| json!({})))?;
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
        created_at: now.into(),
        updated_at: now.into(),
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
pub(crate) fn apply_advance(a: &mut Advance, patch: AdvancePatch, team: bool, stamp: &str, now: &str) -> Result<()> {
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
    a.updated_at = now.into();
    Ok(())
}

//! What the app sends to the tabs: new records and patches, turned into the fields of a pushed
//! mutation (`clear_*` empties an optional field; an advance's answers are JSON text, checked
//! to be an object).

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{
    BackOpsError,
    types::{AdvanceStatus, TaskStatus},
};

/// What [`crate::BackOpsClient::attach_file`] may be told of a file.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct AttachOptions {
    /// A UUID for the file (chosen here when absent).
    #[uniffi(default)]
    pub id: Option<String>,
    /// The folder; the person's own collaborator when absent.
    #[uniffi(default)]
    pub collaborator: Option<String>,
    /// The file's name; the source file's own name when absent.
    #[uniffi(default)]
    pub name: Option<String>,
    /// Recognized from the first bytes when absent (JPEG, PNG, WebP, HEIC, PDF).
    #[uniffi(default)]
    pub media_type: Option<String>,
}

#[derive(Clone, Debug, Serialize, uniffi::Record)]
pub struct NewTask {
    pub title: String,
    /// Defaults to the person's own collaborator (a seat holder's: the event's default).
    #[uniffi(default)]
    pub collaborator: Option<String>,
    #[uniffi(default)]
    pub status: Option<TaskStatus>,
    #[uniffi(default)]
    pub assignee: Option<String>,
    /// RFC 3339.
    #[uniffi(default)]
    pub due: Option<String>,
    /// A UUID for the new record; one is made when absent.
    #[uniffi(default)]
    pub id: Option<String>,
}

/// Fields to change; absent fields stay. `clear_*` empties an optional field.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct TaskPatch {
    #[uniffi(default)]
    pub title: Option<String>,
    #[uniffi(default)]
    pub status: Option<TaskStatus>,
    /// Moves the task to another collaborator (seat holders).
    #[uniffi(default)]
    pub collaborator: Option<String>,
    #[uniffi(default)]
    pub assignee: Option<String>,
    #[uniffi(default)]
    pub clear_assignee: bool,
    #[uniffi(default)]
    pub due: Option<String>,
    #[uniffi(default)]
    pub clear_due: bool,
}

#[derive(Clone, Debug, Serialize, uniffi::Record)]
pub struct NewActivity {
    pub title: String,
    /// RFC 3339.
    pub starts_at: String,
    pub ends_at: String,
    #[uniffi(default)]
    pub area: Option<String>,
    /// Defaults to the person's own collaborator.
    #[uniffi(default)]
    pub collaborators: Option<Vec<String>>,
    #[uniffi(default)]
    pub id: Option<String>,
}

#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct ActivityPatch {
    #[uniffi(default)]
    pub title: Option<String>,
    #[uniffi(default)]
    pub starts_at: Option<String>,
    #[uniffi(default)]
    pub ends_at: Option<String>,
    #[uniffi(default)]
    pub area: Option<String>,
    #[uniffi(default)]
    pub clear_area: bool,
    #[uniffi(default)]
    pub collaborators: Option<Vec<String>>,
}

#[derive(Clone, Debug, uniffi::Record)]
pub struct NewAdvance {
    pub collaborator: String,
    pub title: String,
    /// A JSON object.
    #[uniffi(default)]
    pub answers_json: Option<String>,
    #[uniffi(default)]
    pub id: Option<String>,
}

/// Answering an advance: new answers (a JSON object) and/or a status.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct AdvancePatch {
    #[uniffi(default)]
    pub answers_json: Option<String>,
    #[uniffi(default)]
    pub status: Option<AdvanceStatus>,
    #[uniffi(default)]
    pub title: Option<String>,
    #[uniffi(default)]
    pub collaborator: Option<String>,
}

/// The fields of a create: the input's fields that are set.
pub(crate) fn fields(input: &impl Serialize) -> Result<Value, BackOpsError> {
    let mut v = serde_json::to_value(input).map_err(BackOpsError::storage)?;
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| !x.is_null());
    }
    Ok(v)
}

/// An advance's answers from the app's JSON text: an object, or a clear error.
pub(crate) fn answers(text: &str) -> Result<Value, BackOpsError> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(BackOpsError::invalid("answers must be a JSON object")),
    }
}

impl TaskPatch {
    pub(crate) fn fields(&self) -> Result<Value, BackOpsError> {
        let mut o = Map::new();
        put(&mut o, "title", &self.title);
        put(&mut o, "status", &self.status);
        put(&mut o, "collaborator", &self.collaborator);
        put(&mut o, "assignee", &self.assignee);
        put(&mut o, "due", &self.due);
        clear(&mut o, "assignee", self.clear_assignee, self.assignee.is_some())?;
        clear(&mut o, "due", self.clear_due, self.due.is_some())?;
        Ok(Value::Object(o))
    }
}

impl ActivityPatch {
    pub(crate) fn fields(&self) -> Result<Value, BackOpsError> {
        let mut o = Map::new();
        put(&mut o, "title", &self.title);
        put(&mut o, "starts_at", &self.starts_at);
        put(&mut o, "ends_at", &self.ends_at);
        put(&mut o, "area", &self.area);
        put(&mut o, "collaborators", &self.collaborators);
        clear(&mut o, "area", self.clear_area, self.area.is_some())?;
        Ok(Value::Object(o))
    }
}

impl NewAdvance {
    pub(crate) fn fields(&self) -> Result<Value, BackOpsError> {
        let mut o = json!({ "collaborator": self.collaborator, "title": self.title });
        if let Some(a) = &self.answers_json {
            o["answers"] = answers(a)?;
        }
        if let Some(id) = &self.id {
            o["id"] = json!(id);
        }
        Ok(o)
    }
}

impl AdvancePatch {
    pub(crate) fn fields(&self) -> Result<Value, BackOpsError> {
        let mut o = Map::new();
        put(&mut o, "title", &self.title);
        put(&mut o, "collaborator", &self.collaborator);
        put(&mut o, "status", &self.status);
        if let Some(a) = &self.answers_json {
            o.insert("answers".into(), answers(a)?);
        }
        Ok(Value::Object(o))
    }
}

fn put<T: Serialize>(o: &mut Map<String, Value>, name: &str, v: &Option<T>) {
    if let Some(v) = v {
        o.insert(name.into(), json!(v));
    }
}

fn clear(o: &mut Map<String, Value>, name: &str, yes: bool, set: bool) -> Result<(), BackOpsError> {
    match (yes, set) {
        (true, true) => Err(BackOpsError::invalid(format!("{name} cannot be both set and cleared"))),
        (true, false) => {
            o.insert(name.into(), Value::Null);
            Ok(())
        }
        _ => Ok(()),
    }
}

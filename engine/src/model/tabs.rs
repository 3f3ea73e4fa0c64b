//! The records of the five tabs: tasks, schedule activities, files (with what the server made
//! of an image), advances, and the derived dashboard.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Todo,
    Active,
    InReview,
    Done,
    Archived,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub event: String,
    pub collaborator: String,
    pub title: String,
    pub status: TaskStatus,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub due: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// Per-field edit stamps (hybrid logical clocks): the last edit of each field wins,
    /// whichever reached the server first. Absent for fields never edited.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub stamps: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Activity {
    pub id: String,
    pub event: String,
    pub title: String,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(default)]
    pub area: Option<String>,
    pub collaborators: Vec<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// Per-field edit stamps (hybrid logical clocks): the last edit of each field wins,
    /// whichever reached the server first. Absent for fields never edited.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub stamps: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileMeta {
    pub id: String,
    pub event: String,
    /// The folder: files live in their collaborator's folder.
    pub collaborator: String,
    pub name: String,
    pub size: i64,
    pub content_hash: String,
    #[serde(default)]
    pub media_type: Option<String>,
    pub uploaded_by: String,
    pub created_at: String,
    /// What the server made of the content (images): its fields sit in the record itself.
    #[serde(flatten)]
    pub preview: Preview,
}

/// What the server made of an image's content when its upload finished.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Preview {
    /// Longest side ("256", "1024") → the thumbnail's content hash.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub thumbnails: std::collections::BTreeMap<String, String>,
    /// The upright image's size, for images that decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    /// What others download when it differs from the upload: the photo without its
    /// location and camera metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_hash: Option<String>,
    /// The photo may carry location or camera metadata that could not be taken out (its
    /// structure is not understood): only its uploader downloads it, unless the event keeps
    /// photo locations. Thumbnails, re-encoded without metadata, are still everyone's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub original_withheld: bool,
    /// Why an image has no thumbnails (unsupported format, too large, corrupt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_note: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AdvanceStatus {
    NotStarted,
    NeedsReview,
    Done,
    Archived,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Advance {
    pub id: String,
    pub event: String,
    pub collaborator: String,
    pub title: String,
    pub answers: Value,
    pub status: AdvanceStatus,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// Per-field edit stamps (hybrid logical clocks): the last edit of each field wins,
    /// whichever reached the server first. Absent for fields never edited.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub stamps: std::collections::BTreeMap<String, String>,
}

/// The Dashboard tab: counts derived from the other four tabs of one collaborator.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Dashboard {
    pub collaborator: String,
    pub name: String,
    pub read_only: bool,
    pub tasks: TaskCounts,
    pub activities: i64,
    pub upcoming_activities: i64,
    pub files: i64,
    pub files_bytes: i64,
    pub advances: AdvanceCounts,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct TaskCounts {
    pub todo: i64,
    pub active: i64,
    pub in_review: i64,
    pub done: i64,
    pub archived: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct AdvanceCounts {
    pub not_started: i64,
    pub needs_review: i64,
    pub done: i64,
    pub archived: i64,
}

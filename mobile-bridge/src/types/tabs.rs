//! The five tabs as the device reads them: tasks, the schedule's activities, files (and how
//! their uploads go), advances and the dashboard's counts.

use engine::model as m;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, uniffi::Enum)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Todo,
    Active,
    InReview,
    Done,
    Archived,
}

impl From<m::TaskStatus> for TaskStatus {
    fn from(s: m::TaskStatus) -> Self {
        match s {
            m::TaskStatus::Todo => TaskStatus::Todo,
            m::TaskStatus::Active => TaskStatus::Active,
            m::TaskStatus::InReview => TaskStatus::InReview,
            m::TaskStatus::Done => TaskStatus::Done,
            m::TaskStatus::Archived => TaskStatus::Archived,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, uniffi::Enum)]
#[serde(rename_all = "snake_case")]
pub enum AdvanceStatus {
    NotStarted,
    NeedsReview,
    Done,
    Archived,
}

impl From<m::AdvanceStatus> for AdvanceStatus {
    fn from(s: m::AdvanceStatus) -> Self {
        match s {
            m::AdvanceStatus::NotStarted => AdvanceStatus::NotStarted,
            m::AdvanceStatus::NeedsReview => AdvanceStatus::NeedsReview,
            m::AdvanceStatus::Done => AdvanceStatus::Done,
            m::AdvanceStatus::Archived => AdvanceStatus::Archived,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Task {
    pub id: String,
    pub event: String,
    pub collaborator: String,
    pub title: String,
    pub status: TaskStatus,
    pub assignee: Option<String>,
    pub due: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

/// One page of the Tasks tab: `next` is where the following page starts (none after the last).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct TaskPage {
    pub items: Vec<Task>,
    pub next: Option<String>,
}

impl From<m::Task> for Task {
    fn from(t: m::Task) -> Self {
        Task {
            id: t.id,
            event: t.event,
            collaborator: t.collaborator,
            title: t.title,
            status: t.status.into(),
            assignee: t.assignee,
            due: t.due,
            created_by: t.created_by,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// An entry of the Schedule tab.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Activity {
    pub id: String,
    pub event: String,
    pub title: String,
    pub starts_at: String,
    pub ends_at: String,
    pub area: Option<String>,
    pub collaborators: Vec<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<m::Activity> for Activity {
    fn from(a: m::Activity) -> Self {
        Activity {
            id: a.id,
            event: a.event,
            title: a.title,
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            area: a.area,
            collaborators: a.collaborators,
            created_by: a.created_by,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// An entry of the Files tab (the file's record; its bytes travel separately).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct FileInfo {
    pub id: String,
    pub event: String,
    /// The folder: the collaborator the file belongs to.
    pub collaborator: String,
    pub name: String,
    pub size: i64,
    pub content_hash: String,
    pub media_type: Option<String>,
    pub uploaded_by: String,
    pub created_at: String,
    /// The sizes of its thumbnails (256, 1024), for images the server previewed.
    pub thumbnail_sizes: Vec<u32>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// Why an image has no thumbnails (unsupported format, corrupt, too large).
    pub preview_note: Option<String>,
}

impl From<m::FileMeta> for FileInfo {
    fn from(f: m::FileMeta) -> Self {
        FileInfo {
            id: f.id,
            event: f.event,
            collaborator: f.collaborator,
            name: f.name,
            size: f.size,
            content_hash: f.content_hash,
            media_type: f.media_type,
            uploaded_by: f.uploaded_by,
            created_at: f.created_at,
            thumbnail_sizes: f.preview.thumbnails.keys().filter_map(|k| k.parse().ok()).collect(),
            width: f.preview.width,
            height: f.preview.height,
            preview_note: f.preview.preview_note,
        }
    }
}

/// How far the upload of one of the device's files got.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct UploadProgress {
    pub file: String,
    pub name: String,
    pub bytes_sent: u64,
    pub bytes_total: u64,
    /// Every byte is on the server (the record follows with the next push).
    pub done: bool,
    /// The last failure, while it retries.
    pub error: Option<String>,
}

impl From<engine::device::files::UploadState> for UploadProgress {
    fn from(u: engine::device::files::UploadState) -> Self {
        UploadProgress {
            file: u.file,
            name: u.name,
            bytes_sent: u.sent,
            bytes_total: u.total,
            done: u.done,
            error: u.error,
        }
    }
}

/// Bytes of file contents on the device.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct FileStorage {
    pub held_bytes: u64,
    pub budget_bytes: u64,
}

/// An advance (a form a collaborator answers before the show).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Advance {
    pub id: String,
    pub event: String,
    pub collaborator: String,
    pub title: String,
    /// The answers, a JSON object.
    pub answers_json: String,
    pub status: AdvanceStatus,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<m::Advance> for Advance {
    fn from(a: m::Advance) -> Self {
        Advance {
            id: a.id,
            event: a.event,
            collaborator: a.collaborator,
            title: a.title,
            answers_json: a.answers.to_string(),
            status: a.status.into(),
            created_by: a.created_by,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct TaskCounts {
    pub todo: i64,
    pub active: i64,
    pub in_review: i64,
    pub done: i64,
    pub archived: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct AdvanceCounts {
    pub not_started: i64,
    pub needs_review: i64,
    pub done: i64,
    pub archived: i64,
}

/// The Dashboard tab of one collaborator, counted on the device.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
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

impl From<m::Dashboard> for Dashboard {
    fn from(d: m::Dashboard) -> Self {
        let (t, a) = (d.tasks, d.advances);
        Dashboard {
            collaborator: d.collaborator,
            name: d.name,
            read_only: d.read_only,
            tasks: TaskCounts {
                todo: t.todo,
                active: t.active,
                in_review: t.in_review,
                done: t.done,
                archived: t.archived,
            },
            activities: d.activities,
            upcoming_activities: d.upcoming_activities,
            files: d.files,
            files_bytes: d.files_bytes,
            advances: AdvanceCounts {
                not_started: a.not_started,
                needs_review: a.needs_review,
                done: a.done,
                archived: a.archived,
            },
        }
    }
}

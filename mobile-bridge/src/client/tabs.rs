//! The tabs on the device: the event, its collaborators, and the Dashboard, Tasks, Schedule
//! and Advances tabs read from the replica; creating, changing and deleting tasks, activities
//! and advances with one local write each, sent when online.

use engine::{ListFilter, protocol::MutationOp};

use super::BackOpsClient;
use crate::{
    BackOpsError,
    types::{
        Activity, ActivityPatch, Advance, AdvancePatch, Collaborator, Dashboard, EventInfo, NewActivity, NewAdvance,
        NewTask, Receipt, Task, TaskPage, TaskPatch, fields,
    },
};

#[uniffi::export]
impl BackOpsClient {
    // ---- the tabs, read on the device ----

    /// The event and the person's access to it.
    pub fn event(&self, event: String) -> Result<EventInfo, BackOpsError> {
        let (ev, access) = self.run(self.replica()?.event(&event))?;
        Ok(EventInfo {
            id: ev.id,
            org: ev.org,
            name: ev.name,
            default_collaborator: ev.default_collaborator,
            seat: access.seat,
            collaborator: access.collaborator,
            read_only: access.read_only,
        })
    }

    /// The event's collaborators the person sees (a member: their own; a seat holder: all).
    pub fn collaborators(&self, event: String) -> Result<Vec<Collaborator>, BackOpsError> {
        self.run(self.replica()?.standing(&event))?;
        let mut v: Vec<Collaborator> = self
            .run(self.replica()?.records(&event, "collaborator"))?
            .into_iter()
            .map(|r| Collaborator {
                name: r.data["name"].as_str().unwrap_or_default().into(),
                read_only: r.data["read_only"].as_bool().unwrap_or(false),
                id: r.id,
            })
            .collect();
        v.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        Ok(v)
    }

    /// The Dashboard tab of `collaborator` (the person's own when not given).
    pub fn dashboard(&self, event: String, collaborator: Option<String>) -> Result<Dashboard, BackOpsError> {
        Ok(self.run(self.replica()?.dashboard(&event, collaborator))?.into())
    }

    /// The Tasks tab: the person's collaborator's tasks, or for a seat holder the whole
    /// event's (or one collaborator's).
    pub fn tasks(&self, event: String, collaborator: Option<String>) -> Result<Vec<Task>, BackOpsError> {
        self.list(self.replica()?.tasks(&event, ListFilter { collaborator }))
    }

    /// One page of the Tasks tab, by creation, for a list that scrolls through thousands: at
    /// most `limit` tasks (1 to 500), after `after` (the `next` of the page before; none: from
    /// the start). Reads only the page, whatever the tab's size.
    pub fn tasks_page(
        &self,
        event: String,
        collaborator: Option<String>,
        after: Option<String>,
        limit: u32,
    ) -> Result<TaskPage, BackOpsError> {
        let filter = ListFilter { collaborator };
        let page = self.run(self.replica()?.tasks_page(&event, filter, after.as_deref(), limit as usize))?;
        Ok(TaskPage { items: page.items.into_iter().map(Task::from).collect(), next: page.next })
    }

    /// The Schedule tab, by start time.
    pub fn schedule(&self, event: String, collaborator: Option<String>) -> Result<Vec<Activity>, BackOpsError> {
        self.list(self.replica()?.activities(&event, ListFilter { collaborator }))
    }

    /// The Advances tab.
    pub fn advances(&self, event: String, collaborator: Option<String>) -> Result<Vec<Advance>, BackOpsError> {
        self.list(self.replica()?.advances(&event, ListFilter { collaborator }))
    }

    // ---- writes: shown at once, sent when online ----

    pub fn create_task(&self, event: String, task: NewTask) -> Result<Receipt, BackOpsError> {
        self.write(event, "task", MutationOp::Create, None, fields(&task)?)
    }

    pub fn update_task(&self, event: String, id: String, patch: TaskPatch) -> Result<Receipt, BackOpsError> {
        self.write(event, "task", MutationOp::Update, Some(id), patch.fields()?)
    }

    pub fn delete_task(&self, event: String, id: String) -> Result<Receipt, BackOpsError> {
        self.write(event, "task", MutationOp::Delete, Some(id), serde_json::json!({}))
    }

    pub fn create_activity(&self, event: String, activity: NewActivity) -> Result<Receipt, BackOpsError> {
        self.write(event, "activity", MutationOp::Create, None, fields(&activity)?)
    }

    pub fn update_activity(&self, event: String, id: String, patch: ActivityPatch) -> Result<Receipt, BackOpsError> {
        self.write(event, "activity", MutationOp::Update, Some(id), patch.fields()?)
    }

    pub fn delete_activity(&self, event: String, id: String) -> Result<Receipt, BackOpsError> {
        self.write(event, "activity", MutationOp::Delete, Some(id), serde_json::json!({}))
    }

    /// Sends a collaborator an advance (seat holders).
    pub fn create_advance(&self, event: String, advance: NewAdvance) -> Result<Receipt, BackOpsError> {
        self.write(event, "advance", MutationOp::Create, None, advance.fields()?)
    }

    /// Answers an advance (its answers and/or status), or edits it.
    pub fn update_advance(&self, event: String, id: String, patch: AdvancePatch) -> Result<Receipt, BackOpsError> {
        self.write(event, "advance", MutationOp::Update, Some(id), patch.fields()?)
    }

    pub fn delete_advance(&self, event: String, id: String) -> Result<Receipt, BackOpsError> {
        self.write(event, "advance", MutationOp::Delete, Some(id), serde_json::json!({}))
    }
}

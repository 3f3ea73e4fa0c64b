//! Files: the Files tab, attaching a photo or any file (copied in at once, uploaded when
//! online), how the uploads go, where a file's original or thumbnails are on the device, and
//! the budget for fetched contents.

use std::path::Path;

use engine::{ListFilter, protocol::MutationOp};

use super::{BackOpsClient, check_id, lock};
use crate::{
    BackOpsError,
    types::{AttachOptions, FileInfo, FileStorage, Receipt, UploadProgress},
};

// Named only by a link in the documentation.
#[cfg(doc)]
use super::SyncListener;

#[uniffi::export]
impl BackOpsClient {
    /// The Files tab.
    pub fn files(&self, event: String, collaborator: Option<String>) -> Result<Vec<FileInfo>, BackOpsError> {
        self.list(self.replica()?.files(&event, ListFilter { collaborator }))
    }

    /// Takes a photo into the event's Files tab (the caller's own folder): its bytes are
    /// copied into the app's storage at once and the file is shown from there; it uploads
    /// when online (resuming after any cut) and becomes visible to others once every byte
    /// is on the server. `path` is where the camera wrote it; it may be deleted afterwards.
    pub fn attach_photo(&self, event: String, path: String) -> Result<Receipt, BackOpsError> {
        self.attach_file(event, path, AttachOptions::default())
    }

    /// [`BackOpsClient::attach_photo`] for any file, with its folder, name, media type or id.
    pub fn attach_file(&self, event: String, path: String, options: AttachOptions) -> Result<Receipt, BackOpsError> {
        check_id("event", &event)?;
        if let Some(id) = &options.id {
            check_id("id", id)?;
        }
        if lock(&self.session).token.is_none() {
            return Err(BackOpsError::not_ready("sign_in", "sign in before making changes"));
        }
        let attach = engine::device::files::Attach {
            id: options.id,
            collaborator: options.collaborator,
            name: options.name,
            media_type: options.media_type,
        };
        let written = self.run(self.replica()?.attach_file(&event, Path::new(&path), attach))?;
        self.wake();
        Ok(Receipt { mutation: written.mutation, record: written.record.id })
    }

    /// How far the uploads of this device's files in `event` got (bytes sent of each).
    pub fn uploads(&self, event: String) -> Result<Vec<UploadProgress>, BackOpsError> {
        let replica = self.replica()?;
        Ok(self.block_on(replica.uploads(&event))?.into_iter().map(UploadProgress::from).collect())
    }

    /// Where a file's original is on the device, when held (the app's own photos always are;
    /// others' after [`BackOpsClient::request_original`]).
    pub fn file_path(&self, event: String, file: String) -> Result<Option<String>, BackOpsError> {
        let p = self.replica()?.file_path(&event, &file, engine::device::files::Variant::Original);
        Ok(p.map(|p| p.display().to_string()))
    }

    /// Where a file's thumbnail (`size`: 256 or 1024, longest side in pixels) is on the device,
    /// once fetched (thumbnails are fetched as soon as their file's record arrives).
    pub fn thumbnail_path(&self, event: String, file: String, size: u32) -> Result<Option<String>, BackOpsError> {
        let p = self.replica()?.file_path(&event, &file, engine::device::files::Variant::Thumbnail(size));
        Ok(p.map(|p| p.display().to_string()))
    }

    /// Asks for a file's original; [`SyncListener::on_change`] hears `file_content` when it
    /// has arrived. True when it is held already.
    pub fn request_original(&self, event: String, file: String) -> Result<bool, BackOpsError> {
        let held = self.replica()?.request_original(&event, &file)?;
        Ok(held)
    }

    /// Bytes of file contents the device keeps, and the budget for fetched ones.
    pub fn file_storage(&self) -> Result<FileStorage, BackOpsError> {
        let (held_bytes, budget_bytes) = self.replica()?.file_bytes();
        Ok(FileStorage { held_bytes, budget_bytes })
    }

    /// Sets the budget for fetched thumbnails and originals (the least recently used go first
    /// past it; the device's own photos not yet uploaded are always kept).
    pub fn set_file_budget(&self, bytes: u64) -> Result<(), BackOpsError> {
        self.replica()?.set_file_budget(bytes);
        Ok(())
    }

    pub fn delete_file(&self, event: String, id: String) -> Result<Receipt, BackOpsError> {
        self.write(event, "file_meta", MutationOp::Delete, Some(id), serde_json::json!({}))
    }
}

//! Files and photos: the records of uploads and of the files made from them, and storage
//! accounting. The bytes themselves are the server's business (its blob store): the engine
//! decides who may upload where, remembers how far an upload got and what its processing
//! found, and makes a file record only from an upload its uploader finished — so a file's
//! record and its bytes become visible to others together, and nobody can claim bytes they
//! did not send by naming their hash.
//!
//! An upload is keyed by its event, its uploader and the file id the client chose, so a
//! device that lost its answer (or its memory) opens the same upload again and resumes it.
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    Engine, Error, NewFile, Result,
    access::{Action, OrgAction, Tab, Target, decide, decide_org, require},
    kind::Kind,
    model::{FileMeta, Preview},
    rules, time,
};

/// The default largest file, in bytes (100 MiB).
pub const FILE_LIMIT_DEFAULT: u64 = 100 * 1024 * 1024;
/// Longest side of the thumbnails made of every image, in pixels.
pub const THUMBNAIL_SIZES: [u32; 2] = [256, 1024];

/// Why a photo's original is withheld from all but its uploader (`Preview::original_withheld`).
pub const ORIGINAL_WITHHELD: &str = "this photo may hold its location, which could not be removed: only its uploader \
     downloads it (its thumbnails are available), unless the event team keeps photo locations";

pub use crate::rules::is_content_hash;

/// What a client says of the file it is about to send.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    /// The file's id (a UUID chosen by the client; the server chooses one when absent). The
    /// file record made from the upload carries it.
    #[serde(default)]
    pub id: Option<String>,
    /// The folder; the caller's own collaborator (or the default one) when absent.
    #[serde(default)]
    pub collaborator: Option<String>,
    pub name: String,
    pub size: i64,
    /// sha256 of the whole content, 64 hex digits.
    pub sha256: String,
    #[serde(default)]
    pub media_type: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    /// Bytes are still expected.
    Open,
    /// Every byte arrived, the content matched its hash and is in the blob store.
    Complete,
}

/// What processing found in a finished upload's content.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Processed {
    /// Thumbnails and the rest, for images; the file record carries them.
    #[serde(flatten)]
    pub preview: Preview,
    /// The media type the content's first bytes show (images), for a file announced without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// A size in words: bytes, and MiB when it is that large.
pub fn size_words(n: u64) -> String {
    if n >= 1 << 20 { format!("{n} bytes ({:.1} MiB)", n as f64 / f64::from(1 << 20)) } else { format!("{n} bytes") }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Upload {
    pub id: String,
    pub event: String,
    pub account: String,
    /// The file record's id once the file is added.
    pub file: String,
    pub collaborator: String,
    pub name: String,
    pub size: i64,
    pub sha256: String,
    #[serde(default)]
    pub media_type: Option<String>,
    pub status: UploadStatus,
    #[serde(default)]
    pub processed: Processed,
    pub created_at: String,
    #[serde(default)]
    pub completed_at: Option<String>,
    /// Bytes received so far: the offset a client resumes from (the size once complete).
    #[serde(default, skip_serializing)]
    pub received: i64,
    /// The bytes received so far, in order, as blobs of the blob store: any node resumes or
    /// finishes the upload from them. Emptied when the upload completes.
    #[serde(default, skip_serializing)]
    pub parts: Vec<UploadPart>,
}

/// One run of an upload's bytes, stored as a blob.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadPart {
    /// The blob's name: the sha256 of these bytes.
    pub hash: String,
    pub size: i64,
}

/// Stored bytes of an organization's files.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct StorageUse {
    pub org: String,
    pub files: i64,
    /// The sum of the files' sizes (what the organization is accounted for).
    pub bytes: i64,
    /// The limit, when the deployment sets one.
    #[serde(default)]
    pub limit_bytes: Option<u64>,
}

const UPLOAD_FIELDS: &str = "record::id(id) AS id, event, account, file, collaborator, name, size, sha256, media_type, status, processed, created_at, completed_at, received, parts";

/// An upload moved on since a request began to write it.
fn offset_moved() -> Error {
    Error::conflict("offset_mismatch", "the upload moved on meanwhile: ask for its offset and resume from there")
}

/// The subject of an organization's storage judgement (see [`Engine::open_upload`]).
const STORAGE_SUBJECT: &str = "storage";
/// How many times an upload's storage check is made again while other uploads of the
/// organization keep opening first.
const STORAGE_ATTEMPTS_MAX: usize = 32;
/// What the upload's statement throws when the organization's storage was judged since.
const STORAGE_MOVED: &str = "backops:storage_moved";
/// Creates an upload's record; with a storage limit (`$seen` set), only if no other upload of
/// the organization was opened since its storage was summed, counting this one.
const OPEN_UPLOAD_SQL: &str = "BEGIN TRANSACTION;
IF $seen != NONE {
    IF ((SELECT VALUE n FROM type::record('judged', [$org, 'storage']))[0] ?? 0) != $seen {
        THROW 'backops:storage_moved'
    };
    UPSERT type::record('judged', [$org, 'storage']) SET n = $seen + 1 RETURN NONE;
};
CREATE type::record('upload', $id) CONTENT $content RETURN NONE;
COMMIT TRANSACTION;";

impl Engine {
    /// Opens (or finds again) the upload of a file into a collaborator's folder: the caller
    /// must be able to write that folder; the size is checked against the file limit and
    /// the organization's storage limit. The same file id opened again by the same person
    /// answers the same upload (its hash and size must agree).
    pub async fn open_upload(&self, actor: &str, event: &str, input: NewUpload) -> Result<Upload> {
        let (ev, s) = self.standing_for_write(actor, event).await?;
        let f = crate::write::DbFacts::new(self, (ev.clone(), s.clone()), "server", None, None);
        let collaborator = crate::plan::tabs::collaborator(&f, input.collaborator.clone()).await?;
        require(
            decide(
                &s,
                Action::Write,
                Target::Tab { tab: Tab::Files, collaborators: std::slice::from_ref(&collaborator) },
            ),
            "collaborator",
        )?;
        let limit = self.config.file_limit_bytes;
        if input.size < 0 {
            return Err(Error::invalid("size must not be negative"));
        }
        if input.size as u64 > limit {
            return Err(Error::rule(
                "file_too_large",
                format!("the file is {}; files may be at most {}", size_words(input.size as u64), size_words(limit)),
            ));
        }
        // The record it will make, checked now so a bad name fails before any byte is sent.
        let meta = rules::build_file(
            NewFile {
                id: input.id.clone(),
                collaborator: None,
                name: input.name,
                size: Some(input.size),
                content_hash: Some(input.sha256),
                media_type: input.media_type,
            },
            &ev.id,
            collaborator,
            actor,
            &time::now(),
        )?;
        if let Some(found) = self.upload_of(&ev.id, actor, &meta.id).await? {
            if found.sha256 != meta.content_hash || found.size != meta.size {
                return Err(Error::conflict(
                    "upload_mismatch",
                    "an upload of this file id with other content is already open; use a new file id",
                ));
            }
            return Ok(found);
        }
        let existing: Option<FileMeta> = self.load(Kind::FileMeta, &ev.id, &meta.id).await?;
        if existing.is_some() {
            return Err(Error::conflict("file_exists", "a file with this id exists already"));
        }
        // Open uploads and finished ones not yet added count against the limit: they hold
        // (or will hold) bytes. The sum is taken on the organization's storage judgement (how
        // many uploads were opened in it), and the upload's record is created only if that
        // has not moved: two nodes opening uploads at once cannot both fit in the last room.
        let quota = self.config.org_storage_limit_bytes;
        let mut attempts = 0;
        loop {
            let seen = match quota {
                Some(_) => Some(self.judgement(&ev.org, STORAGE_SUBJECT).await?),
                None => None,
            };
            if let Some(quota) = quota {
                let used = self.storage_bytes(&ev.org).await?;
                if used.saturating_add(meta.size) as u64 > quota {
                    return Err(Error::rule(
                        "storage_full",
                        format!(
                            "the organization's storage holds {} (uploads under way included) of {}; this file does not fit",
                            size_words(used as u64),
                            size_words(quota)
                        ),
                    ));
                }
            }
            let up = Upload {
                id: crate::model::new_id(),
                event: ev.id.clone(),
                account: actor.into(),
                file: meta.id.clone(),
                collaborator: meta.collaborator.clone(),
                name: meta.name.clone(),
                size: meta.size,
                sha256: meta.content_hash.clone(),
                media_type: meta.media_type.clone(),
                status: UploadStatus::Open,
                processed: Processed::default(),
                created_at: time::now(),
                completed_at: None,
                received: 0,
                parts: Vec::new(),
            };
            let content = crate::plan::stored(&up)?;
            let mut vars = json!({ "id": up.id, "content": content, "org": ev.org });
            // Absent, not null, without a limit: the statement tests it against NONE.
            if let (Some(n), Some(m)) = (seen, vars.as_object_mut()) {
                m.insert("seen".into(), json!(n));
            }
            let created = self.store.run(OPEN_UPLOAD_SQL, vars).await;
            match created {
                Ok(_) => return Ok(up),
                // Another upload of the organization was opened since the sum: sum again,
                // after a pause that grows and is drawn at random, so that many phones opening
                // uploads at once (a crew after a show) take turns instead of colliding again.
                Err(Error::Internal(m)) if m.contains(STORAGE_MOVED) && attempts < STORAGE_ATTEMPTS_MAX => {
                    attempts += 1;
                    let ceiling = 2u64.saturating_pow(attempts.min(6) as u32);
                    let pause = rand::random_range(0..=ceiling);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                Err(Error::Internal(m)) if m.contains(STORAGE_MOVED) => {
                    return Err(Error::conflict("busy", "many files are being added at once; try again"));
                }
                // Two opens of the same file at once: the unique index let one through.
                Err(Error::Conflict { .. }) => {
                    return self.upload_of(&ev.id, actor, &up.file).await?.ok_or(Error::not_found("upload"));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn upload_of(&self, event: &str, actor: &str, file: &str) -> Result<Option<Upload>> {
        self.store
            .run(
                &format!("SELECT {UPLOAD_FIELDS} FROM upload WHERE event = $e AND account = $a AND file = $f LIMIT 1"),
                json!({ "e": event, "a": actor, "f": file }),
            )
            .await?
            .first(0)
    }

    /// An upload, to its uploader only (anyone else: not found). The caller's access to the
    /// folder is checked again, so an upload left open by someone who lost it goes no further.
    pub async fn upload(&self, actor: &str, id: &str) -> Result<Upload> {
        let found: Option<Upload> = self
            .store
            .run(&format!("SELECT {UPLOAD_FIELDS} FROM type::record('upload', $id)"), json!({ "id": id }))
            .await?
            .first(0)?;
        let up = found.filter(|u| u.account == actor).ok_or(Error::not_found("upload"))?;
        let (_, s) = self.standing(actor, &up.event).await.map_err(|_| Error::not_found("upload"))?;
        require(
            decide(
                &s,
                Action::Write,
                Target::Tab { tab: Tab::Files, collaborators: std::slice::from_ref(&up.collaborator) },
            ),
            "upload",
        )?;
        Ok(up)
    }

    /// Records `part`, the upload's bytes from offset `at` on, stored in the blob store. The
    /// offset moves past them only if it is still `at`: of two requests writing one upload at
    /// once (on two nodes), one advances it and the other hears `offset_mismatch`.
    pub async fn add_upload_part(&self, actor: &str, id: &str, at: i64, part: UploadPart) -> Result<Upload> {
        let up = self.upload(actor, id).await?;
        if !is_content_hash(&part.hash) || part.size <= 0 || at.saturating_add(part.size) > up.size {
            return Err(Error::invalid("an upload's part is named by its sha256 and lies within the upload"));
        }
        let moved: Vec<i64> = self
            .store
            .run(
                "UPDATE type::record('upload', $id) SET parts += $part, received = $at + $part.size
                 WHERE status = 'open' AND received = $at RETURN VALUE received;",
                json!({ "id": up.id, "at": at, "part": part }),
            )
            .await?
            .all(0)?;
        if moved.is_empty() {
            return Err(offset_moved());
        }
        self.upload(actor, id).await
    }

    /// Forgets the bytes of an upload received so far (they did not hash to its sha256): it
    /// starts over at offset 0. Only if it is still at `at`.
    pub async fn restart_upload(&self, actor: &str, id: &str, at: i64) -> Result<()> {
        let up = self.upload(actor, id).await?;
        self.store
            .run(
                "UPDATE type::record('upload', $id) SET parts = [], received = 0
                 WHERE status = 'open' AND received = $at RETURN NONE;",
                json!({ "id": up.id, "at": at }),
            )
            .await?;
        Ok(())
    }

    /// Marks an upload complete: its bytes matched the hash and are stored; `processed` is what
    /// the server found in them. The bytes were those received up to `at` and one last run:
    /// if the upload moved meanwhile (another node finished it, or took another part), this
    /// answers the upload as it is, or `offset_mismatch`.
    pub async fn complete_upload(&self, actor: &str, id: &str, at: i64, processed: Processed) -> Result<Upload> {
        let mut up = self.upload(actor, id).await?;
        up.status = UploadStatus::Complete;
        up.processed = processed;
        up.completed_at = Some(time::now());
        up.received = up.size;
        up.parts = Vec::new();
        let done: Vec<String> = self
            .store
            .run(
                "UPDATE type::record('upload', $id)
                 SET status = 'complete', processed = $p, completed_at = $at_time, received = size, parts = []
                 WHERE status = 'open' AND received = $at RETURN VALUE record::id(id);",
                json!({ "id": up.id, "p": up.processed, "at_time": up.completed_at, "at": at }),
            )
            .await?
            .all(0)?;
        if done.is_empty() {
            let now = self.upload(actor, id).await?;
            return match now.status {
                UploadStatus::Complete => Ok(now),
                UploadStatus::Open => Err(offset_moved()),
            };
        }
        Ok(up)
    }

    /// The finished upload a new file record is made from.
    pub(crate) async fn finished_upload(&self, event: &str, actor: &str, file: &str) -> Result<Upload> {
        match self.upload_of(event, actor, file).await? {
            None => Err(Error::rule(
                "upload_missing",
                "a file is added from a finished upload: upload its bytes first, with this file id",
            )),
            Some(u) if u.status != UploadStatus::Complete => Err(Error::rule(
                "upload_incomplete",
                "the upload of this file has not finished: send the rest of its bytes first",
            )),
            Some(u) => Ok(u),
        }
    }

    /// One file's record, if the caller may see it (its folder's Files tab); anything else is
    /// "not found", exactly as for any record.
    pub async fn file(&self, actor: &str, event: &str, id: &str) -> Result<FileMeta> {
        Ok(self.file_in_event(actor, event, id).await?.0)
    }

    /// [`Engine::file`] and its event (whose settings say what others download).
    pub async fn file_in_event(&self, actor: &str, event: &str, id: &str) -> Result<(FileMeta, crate::model::Event)> {
        let (ev, s) = self.standing(actor, event).await.map_err(|_| Error::not_found("file"))?;
        let f: FileMeta = self.load(Kind::FileMeta, &ev.id, id).await?.ok_or(Error::not_found("file"))?;
        require(
            decide(
                &s,
                Action::Read,
                Target::Tab { tab: Tab::Files, collaborators: std::slice::from_ref(&f.collaborator) },
            ),
            "file",
        )
        .map_err(|_| Error::not_found("file"))?;
        Ok((f, ev))
    }

    /// The organization's files and their bytes, for its members.
    pub async fn org_storage(&self, actor: &str, org: &str) -> Result<StorageUse> {
        let role = self.org_role(actor, org).await?;
        crate::orgs::org_gate(decide_org(role, OrgAction::View))?;
        let mut rows = self
            .store
            .run(
                "LET $evs = SELECT VALUE record::id(id) FROM event WHERE org = $o;
                 SELECT count() AS files, math::sum(size) AS bytes FROM file_meta WHERE event IN $evs GROUP ALL;",
                json!({ "o": org }),
            )
            .await?;
        #[derive(Deserialize)]
        struct Sums {
            files: i64,
            bytes: i64,
        }
        let sums: Option<Sums> = rows.first(1)?;
        Ok(StorageUse {
            org: org.into(),
            files: sums.as_ref().map_or(0, |s| s.files),
            bytes: sums.map_or(0, |s| s.bytes),
            limit_bytes: self.config.org_storage_limit_bytes,
        })
    }

    /// Bytes of the organization's files and of its uploads not yet made into files.
    async fn storage_bytes(&self, org: &str) -> Result<i64> {
        let mut rows = self
            .store
            .run(
                "LET $evs = SELECT VALUE record::id(id) FROM event WHERE org = $o;
                 RETURN math::sum(SELECT VALUE size FROM file_meta WHERE event IN $evs)
                      + math::sum(SELECT VALUE size FROM upload WHERE event IN $evs AND added_at = NONE);",
                json!({ "o": org }),
            )
            .await?;
        Ok(rows.value::<i64>(1)?.unwrap_or(0))
    }

    /// Marks an upload as made into its file (its bytes are the file's from now on).
    pub(crate) async fn upload_added(&self, id: &str) -> Result<()> {
        self.store
            .run(
                "UPDATE type::record('upload', $id) SET added_at = $at RETURN NONE;",
                json!({ "id": id, "at": time::now() }),
            )
            .await?;
        Ok(())
    }

    /// Removes the uploads opened before `before` (RFC 3339): abandoned ones, finished ones
    /// never made into a file, and the records of those that were. They are returned so the
    /// server can drop their partial bytes. A device that comes back later opens its upload
    /// again and starts over.
    pub async fn expire_uploads(&self, before: &str) -> Result<Vec<Upload>> {
        let mut rows = self
            .store
            .run(
                &format!(
                    "LET $gone = SELECT {UPLOAD_FIELDS} FROM upload WHERE created_at < $before;
                     DELETE upload WHERE record::id(id) IN $gone.id RETURN NONE;
                     RETURN $gone;"
                ),
                json!({ "before": before }),
            )
            .await?;
        rows.all::<Upload>(2)
    }

    /// Every content hash a file or an upload still names (contents, the copies without
    /// metadata, thumbnails): the blobs that must be kept.
    pub async fn blob_references(&self) -> Result<std::collections::HashSet<String>> {
        let mut rows = self
            .store
            .run(
                "SELECT content_hash, served_hash, thumbnails, [] AS parts FROM file_meta;
                 SELECT sha256 AS content_hash, processed.served_hash AS served_hash, processed.thumbnails AS thumbnails, parts.hash AS parts FROM upload;",
                json!({}),
            )
            .await?;
        #[derive(Deserialize)]
        struct Named {
            #[serde(default)]
            content_hash: Option<String>,
            #[serde(default)]
            served_hash: Option<String>,
            #[serde(default)]
            thumbnails: Option<std::collections::BTreeMap<String, String>>,
            #[serde(default)]
            parts: Option<Vec<String>>,
        }
        let mut out = std::collections::HashSet::new();
        for i in 0..2 {
            for n in rows.all::<Named>(i)? {
                out.extend(n.content_hash);
                out.extend(n.served_hash);
                out.extend(n.thumbnails.into_iter().flat_map(|t| t.into_values()));
                out.extend(n.parts.into_iter().flatten());
            }
        }
        Ok(out)
    }
}

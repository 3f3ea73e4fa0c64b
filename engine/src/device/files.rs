//! Files on the device. A photo taken here is kept at once — its bytes in the replica's file
//! directory (named by their sha256, written under a temporary name, fsynced, renamed) and
//! its record in the outbox like any write — and shown from there. Its record is pushed only
//! after the link has uploaded its bytes (`pending_uploads` → `upload_done`), so others never
//! see a file whose bytes are missing.
//!
//! Files others made arrive as records; the link fetches their thumbnails eagerly and the
//! originals the app asks for (`request_original`), within a byte budget: past it, the
//! least recently used bytes go first (never those of a photo not uploaded yet). Bytes no
//! held record names any more — a file deleted, access lost — are removed at once.

use std::{
    collections::{HashMap, HashSet},
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{LocalWrite, Replica, State, Written};
use crate::{
    Error, Result,
    files::{FILE_LIMIT_DEFAULT, is_content_hash},
    protocol::MutationOp,
};

/// Where a replica keeps file bytes, and how much of them it may keep.
#[derive(Clone, Debug)]
pub struct FilesConfig {
    pub dir: PathBuf,
    /// Bytes of fetched thumbnails and originals kept; photos not uploaded yet are kept
    /// whatever the budget.
    pub budget_bytes: u64,
}

/// The default budget of fetched bytes (512 MiB).
pub const BUDGET_DEFAULT: u64 = 512 * 1024 * 1024;
/// Thumbnails are fetched eagerly while the held bytes stay under this share of the budget
/// (the rest is room for originals the app asks for, so fetching never chases eviction).
const EAGER_SHARE: f64 = 0.8;

/// The bytes the device keeps of a file: its content, or one of its thumbnails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    Original,
    Thumbnail(u32),
}

impl Variant {
    /// The server's path for it, below `/v1/events/{event}/files/{id}/`.
    pub fn path(self) -> String {
        match self {
            Variant::Original => "content".into(),
            Variant::Thumbnail(n) => format!("thumbnails/{n}"),
        }
    }
}

/// A photo (or any file) taken on the device that still has to be uploaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingUpload {
    pub event: String,
    /// The file's id: the upload's and the record's.
    pub file: String,
    pub collaborator: Option<String>,
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub media_type: Option<String>,
    /// Its bytes on the device.
    pub path: PathBuf,
}

/// Bytes the link should fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Download {
    pub event: String,
    pub file: String,
    pub variant: Variant,
    /// What the bytes must hash to.
    pub sha256: String,
}

/// How far the upload of one of the device's files got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadState {
    pub event: String,
    pub file: String,
    pub name: String,
    pub sent: u64,
    pub total: u64,
    /// The server holds every byte (the record follows with the next push).
    pub done: bool,
    /// The last failure, while it retries.
    pub error: Option<String>,
}

/// What the app gives when it attaches a file.
#[derive(Clone, Debug, Default)]
pub struct Attach {
    pub id: Option<String>,
    pub collaborator: Option<String>,
    /// The file's name; the source file's own name when absent.
    pub name: Option<String>,
    /// Its media type; recognized from the first bytes when absent (photos).
    pub media_type: Option<String>,
}

#[derive(Debug)]
pub(super) struct Blobs {
    dir: PathBuf,
    budget: std::sync::atomic::AtomicU64,
    index: std::sync::Mutex<Index>,
}

#[derive(Debug, Default)]
struct Index {
    /// Held blobs: size and when last used (a counter).
    held: HashMap<String, (u64, u64)>,
    total: u64,
    tick: u64,
    /// Files whose bytes the server holds (their records may be pushed).
    uploaded: HashSet<String>,
    /// Bytes sent of uploads under way, and their last failure.
    progress: HashMap<String, (u64, Option<String>)>,
    /// Originals the app asked for: (event, file).
    wanted: HashSet<(String, String)>,
    /// Bytes of photos being attached right now (stored, their record not yet written), with
    /// how many attaches of the same bytes are under way.
    attaching: HashMap<String, u32>,
    /// Counts finished attaches: a sweep that saw another count when it began does not
    /// delete (the records it read may predate that photo's).
    attached: u64,
    /// Bytes of the device's own files in the outbox, as last read from it (at `own_at`, a
    /// value of `attached`): never swept, whatever the mirror holds (a refused subscription
    /// clears the mirror, not the outbox).
    own: HashSet<String>,
    own_at: u64,
}

/// The media type of a photo (or PDF) from its first bytes.
pub fn media_type_of(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some("image/webp")
    } else if head.len() >= 12 && &head[4..8] == b"ftyp" && matches!(&head[8..12], b"heic" | b"heix" | b"mif1") {
        Some("image/heic")
    } else if head.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else {
        None
    }
}

impl Blobs {
    pub(super) fn open(c: &FilesConfig) -> Result<Blobs> {
        let io = |e: io::Error| Error::Config(format!("the file directory {}: {e}", c.dir.display()));
        std::fs::create_dir_all(c.dir.join("tmp")).map_err(io)?;
        let mut index = Index::default();
        for e in std::fs::read_dir(&c.dir).map_err(io)?.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if is_content_hash(&name)
                && let Ok(m) = e.metadata()
            {
                index.total += m.len();
                index.held.insert(name, (m.len(), 0));
            }
        }
        // Partial downloads from an earlier run start over.
        for e in std::fs::read_dir(c.dir.join("tmp")).map_err(io)?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        Ok(Blobs {
            dir: c.dir.clone(),
            budget: std::sync::atomic::AtomicU64::new(c.budget_bytes),
            index: std::sync::Mutex::new(index),
        })
    }

    fn budget(&self) -> u64 {
        self.budget.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn path(&self, hash: &str) -> PathBuf {
        self.dir.join(hash)
    }

    /// A fresh temporary path inside the file directory (same file system: renames work).
    pub fn temp_path(&self) -> PathBuf {
        self.dir.join("tmp").join(uuid::Uuid::new_v4().simple().to_string())
    }

    fn holds(&self, hash: &str) -> bool {
        self.lock().held.contains_key(hash)
    }

    fn touch(&self, hash: &str) -> bool {
        let mut ix = self.lock();
        ix.tick += 1;
        let tick = ix.tick;
        match ix.held.get_mut(hash) {
            Some(e) => {
                e.1 = tick;
                true
            }
            None => false,
        }
    }

    /// Moves `tmp` (checked to hash to `hash`) in as blob `hash`.
    fn adopt(&self, hash: &str, tmp: &Path) -> io::Result<()> {
        let target = self.path(hash);
        if target.exists() {
            std::fs::remove_file(tmp)?;
        } else {
            std::fs::File::open(tmp)?.sync_all()?;
            std::fs::rename(tmp, &target)?;
            #[cfg(unix)]
            std::fs::File::open(&self.dir)?.sync_all()?;
        }
        let size = std::fs::metadata(&target)?.len();
        let mut ix = self.lock();
        ix.tick += 1;
        let tick = ix.tick;
        if ix.held.insert(hash.to_string(), (size, tick)).is_none() {
            ix.total += size;
        }
        Ok(())
    }

    /// One attach of `hash` is over (its record written, or not).
    fn attached(&self, hash: &str) {
        let mut ix = self.lock();
        if let Some(n) = ix.attaching.get_mut(hash) {
            *n -= 1;
            if *n == 0 {
                ix.attaching.remove(hash);
            }
        }
        ix.attached += 1;
    }

    fn remove(&self, ix: &mut Index, hash: &str) {
        if let Some((size, _)) = ix.held.remove(hash) {
            ix.total -= size;
            let _ = std::fs::remove_file(self.path(hash));
        }
    }

    /// Removes blobs nobody names, then the least recently used of the rest while over the
    /// budget; `pinned` and those being attached are never removed. `named` and `pinned`
    /// were read when `Index::attached` was `since`: if an attach finished after that, they
    /// may miss its photo, and nothing is removed this time.
    fn sweep(&self, named: &HashSet<String>, pinned: &HashSet<String>, since: u64) {
        let mut ix = self.lock();
        if ix.attached != since {
            return;
        }
        let mut pinned = pinned.clone();
        pinned.extend(ix.attaching.keys().cloned());
        let pinned = &pinned;
        let gone: Vec<String> =
            ix.held.keys().filter(|h| !named.contains(*h) && !pinned.contains(*h)).cloned().collect();
        for h in gone {
            self.remove(&mut ix, &h);
        }
        let budget = self.budget();
        if ix.total > budget {
            let mut lru: Vec<(u64, String)> =
                ix.held.iter().filter(|(h, _)| !pinned.contains(*h)).map(|(h, (_, used))| (*used, h.clone())).collect();
            lru.sort();
            for (_, h) in lru {
                if ix.total <= budget {
                    break;
                }
                self.remove(&mut ix, &h);
            }
        }
    }
}

/// Copies `source` to `tmp`, fsynced, and returns its sha256 and size.
fn copy_hashing(source: &Path, tmp: &Path, limit: u64) -> Result<(String, u64)> {
    let unreadable = |e: io::Error| Error::invalid(format!("the file {} cannot be read: {e}", source.display()));
    let mut src = std::fs::File::open(source).map_err(unreadable)?;
    let len = src.metadata().map_err(unreadable)?.len();
    if len > limit {
        return Err(Error::rule(
            "file_too_large",
            format!(
                "the file is {}; files may be at most {}",
                crate::files::size_words(len),
                crate::files::size_words(limit)
            ),
        ));
    }
    let store = |e: io::Error| Error::Internal(format!("writing the file directory: {e}"));
    let mut out = std::fs::File::create(tmp).map_err(store)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(unreadable)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(store)?;
        size += n as u64;
    }
    out.sync_all().map_err(store)?;
    Ok((format!("{:x}", h.finalize()), size))
}

/// The hashes a file record names: its content, the copy others get, its thumbnails.
fn named_by(data: &Value) -> impl Iterator<Item = String> + '_ {
    let content = ["content_hash", "served_hash"].into_iter().filter_map(|k| data.get(k).and_then(Value::as_str));
    let thumbs = data
        .get("thumbnails")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(Value::as_str);
    content.chain(thumbs).map(String::from)
}

impl Replica {
    fn blobs(&self) -> Result<&Blobs> {
        self.inner
            .files
            .as_ref()
            .ok_or_else(|| Error::Config("this replica was opened without a file directory".into()))
    }

    /// Takes a file (a photo) into the replica: its bytes are copied into the file directory
    /// and its record is written like any local write (shown at once, kept in the outbox). The
    /// record is pushed once the link has uploaded the bytes.
    pub async fn attach_file(&self, event: &str, source: &Path, a: Attach) -> Result<Written> {
        self.inner.store.guard().check()?;
        let blobs = self.blobs()?;
        let tmp = blobs.temp_path();
        let (hash, size, head) = {
            let (source, tmp) = (source.to_path_buf(), tmp.clone());
            tokio::task::spawn_blocking(move || -> Result<(String, u64, Vec<u8>)> {
                let (hash, size) = copy_hashing(&source, &tmp, FILE_LIMIT_DEFAULT)?;
                let mut head = vec![0u8; 16];
                let n = std::fs::File::open(&tmp).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
                head.truncate(n);
                Ok((hash, size, head))
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))??
        };
        *blobs.lock().attaching.entry(hash.clone()).or_default() += 1;
        if let Err(e) = blobs.adopt(&hash, &tmp) {
            blobs.attached(&hash);
            return Err(Error::Internal(format!("storing a file: {e}")));
        }
        // The file's id is chosen here when the app gave none: its upload and its record name it.
        let id = a.id.unwrap_or_else(crate::model::new_id);
        let name = a.name.or_else(|| source.file_name().map(|n| n.to_string_lossy().to_string())).unwrap_or_default();
        let media_type = a.media_type.or_else(|| media_type_of(&head).map(String::from));
        let fields = json!({
            "collaborator": a.collaborator,
            "name": name,
            "size": size,
            "content_hash": hash,
            "media_type": media_type,
        });
        let written = self
            .write(event, LocalWrite { kind: "file_meta".into(), op: MutationOp::Create, record: Some(id), fields })
            .await;
        blobs.attached(&hash);
        if written.is_err() {
            self.sweep_files();
        }
        written
    }

    /// Whether a file record's bytes are held here (a create of one needs them).
    pub(super) fn holds_blob(&self, hash: &str) -> bool {
        self.inner.files.as_ref().is_some_and(|b| b.holds(hash))
    }

    /// Whether the outbox entry waits for its bytes to be uploaded.
    pub(super) fn awaits_upload(&self, st: &State, o: &super::Outgoing) -> bool {
        o.kind == "file_meta"
            && o.mutation.op == MutationOp::Create
            && o.accepted.is_none()
            && !st.subs.get(&o.event).is_some_and(|s| s.lost)
            && self.inner.files.as_ref().is_some_and(|b| !b.lock().uploaded.contains(&o.record))
    }

    /// The device's files whose bytes the server does not hold yet, oldest first.
    pub async fn pending_uploads(&self) -> Vec<PendingUpload> {
        let st = self.inner.state.lock().await;
        let Some(blobs) = &self.inner.files else { return Vec::new() };
        st.outbox
            .values()
            .filter(|o| self.awaits_upload(&st, o))
            .filter(|o| st.subs.get(&o.event).is_some_and(|s| s.cursor.is_some()))
            .filter_map(|o| {
                let f = &o.mutation.fields;
                let hash = f["content_hash"].as_str()?.to_string();
                Some(PendingUpload {
                    event: o.event.clone(),
                    file: o.record.clone(),
                    collaborator: f["collaborator"].as_str().map(String::from),
                    name: f["name"].as_str().unwrap_or_default().to_string(),
                    size: f["size"].as_u64().unwrap_or(0),
                    path: blobs.path(&hash),
                    sha256: hash,
                    media_type: f["media_type"].as_str().map(String::from),
                })
            })
            .collect()
    }

    /// The upload of `file` got to `sent` bytes (or failed for now, with `error`).
    pub fn upload_progress(&self, event: &str, file: &str, sent: u64, error: Option<String>) {
        if let Some(b) = &self.inner.files {
            b.lock().progress.insert(file.to_string(), (sent, error));
            self.changed(event, ["upload".to_string()].into());
        }
    }

    /// The server holds every byte of `file`: its record may be pushed.
    pub fn upload_done(&self, event: &str, file: &str) {
        if let Some(b) = &self.inner.files {
            let mut ix = b.lock();
            ix.progress.remove(file);
            ix.uploaded.insert(file.to_string());
            drop(ix);
            self.changed(event, ["upload".to_string()].into());
        }
    }

    /// The server refused the upload for good (too large, no longer allowed): the file's
    /// write is rolled back and reported like a refused mutation.
    pub async fn upload_refused(&self, event: &str, file: &str, code: &str, message: &str) -> Result<()> {
        let mut st = self.inner.state.lock().await;
        let n = st
            .outbox
            .values()
            .find(|o| o.event == event && o.record == file && o.kind == "file_meta" && o.accepted.is_none())
            .map(|o| o.n);
        let Some(o) = n.and_then(|n| st.outbox.get(&n)).cloned() else { return Ok(()) };
        let r = super::Rejection {
            event: event.into(),
            mutation: o.mutation.id,
            kind: o.kind,
            record: o.record,
            code: code.into(),
            message: message.into(),
            at: crate::time::now(),
        };
        self.record_answers(&mut st, &[(o.n, r.clone())]).await?;
        self.refresh_status(&st, |_| {});
        drop(st);
        if let Some(b) = &self.inner.files {
            b.lock().progress.remove(file);
        }
        self.tell_rejected(vec![r]);
        Ok(())
    }

    /// The uploads of the device's own files in `event`: bytes sent of each.
    pub async fn uploads(&self, event: &str) -> Vec<UploadState> {
        let st = self.inner.state.lock().await;
        let Some(blobs) = &self.inner.files else { return Vec::new() };
        let ix = blobs.lock();
        st.outbox
            .values()
            .filter(|o| o.event == event && o.kind == "file_meta" && o.mutation.op == MutationOp::Create)
            .map(|o| {
                let total = o.mutation.fields["size"].as_u64().unwrap_or(0);
                let done = ix.uploaded.contains(&o.record) || o.accepted.is_some();
                let (sent, error) = ix.progress.get(&o.record).cloned().unwrap_or((0, None));
                UploadState {
                    event: o.event.clone(),
                    file: o.record.clone(),
                    name: o.mutation.fields["name"].as_str().unwrap_or_default().to_string(),
                    sent: if done { total } else { sent },
                    total,
                    done,
                    error,
                }
            })
            .collect()
    }

    /// The path of a file's bytes on the device, when held (its original, or a thumbnail).
    pub fn file_path(&self, event: &str, file: &str, variant: Variant) -> Option<PathBuf> {
        let blobs = self.inner.files.as_ref()?;
        let row = self.mirror().get(event, "file_meta", file)?;
        let data = &row.data;
        let hashes: Vec<&str> = match variant {
            // The device's own upload, or the copy the server serves.
            Variant::Original => ["content_hash", "served_hash"].iter().filter_map(|k| data[*k].as_str()).collect(),
            Variant::Thumbnail(n) => data["thumbnails"][n.to_string()].as_str().into_iter().collect(),
        };
        hashes.into_iter().find(|h| blobs.touch(h)).map(|h| blobs.path(h))
    }

    /// Asks for a file's original: the link fetches it (see [`Replica::downloads`]). True when
    /// it is held already.
    pub fn request_original(&self, event: &str, file: &str) -> Result<bool> {
        let blobs = self.blobs()?;
        if self.mirror().get(event, "file_meta", file).is_none_or(|r| r.data.is_null()) {
            return Err(Error::not_found("file"));
        }
        if self.file_path(event, file, Variant::Original).is_some() {
            return Ok(true);
        }
        if let Some(row) = self.mirror().get(event, "file_meta", file)
            && let Ok(st) = self.inner.state.try_lock()
            && withheld_from(
                &row.data,
                self.mirror().get(event, "event", event).as_ref().map(|e| &e.data),
                st.account.as_deref(),
            )
        {
            return Err(Error::rule("original_withheld", crate::files::ORIGINAL_WITHHELD));
        }
        blobs.lock().wanted.insert((event.to_string(), file.to_string()));
        self.changed(event, ["file_request".to_string()].into());
        Ok(false)
    }

    /// What the link should fetch now: the originals asked for, then thumbnails of held files
    /// (while the held bytes stay under the eager share of the budget), largest last.
    pub async fn downloads(&self) -> Vec<Download> {
        let Some(blobs) = &self.inner.files else { return Vec::new() };
        let (events, account) = {
            let st = self.inner.state.lock().await;
            let events: Vec<String> =
                st.subs.iter().filter(|(_, s)| s.cursor.is_some() && !s.lost).map(|(e, _)| e.clone()).collect();
            (events, st.account.clone())
        };
        let (wanted, eager) = {
            let ix = blobs.lock();
            (ix.wanted.clone(), (ix.total as f64) < blobs.budget() as f64 * EAGER_SHARE)
        };
        let mirror = self.mirror();
        let mut out = Vec::new();
        for (event, file) in wanted {
            let Some(row) = mirror.get(&event, "file_meta", &file).filter(|r| !r.data.is_null()) else {
                blobs.lock().wanted.remove(&(event, file));
                continue;
            };
            let d = &row.data;
            let ev = mirror.get(&event, "event", &event);
            if withheld_from(d, ev.as_ref().map(|e| &e.data), account.as_deref()) {
                blobs.lock().wanted.remove(&(event, file));
                continue;
            }
            let Some(hash) = d["served_hash"].as_str().or(d["content_hash"].as_str()) else { continue };
            if blobs.holds(hash) || d["content_hash"].as_str().is_some_and(|h| blobs.holds(h)) {
                blobs.lock().wanted.remove(&(event, file));
                continue;
            }
            out.push(Download { event, file, variant: Variant::Original, sha256: hash.into() });
        }
        if eager {
            for size in crate::files::THUMBNAIL_SIZES {
                for event in &events {
                    for row in mirror.kind(event, "file_meta") {
                        if let Some(h) = row.data["thumbnails"][size.to_string()].as_str()
                            && !blobs.holds(h)
                        {
                            out.push(Download {
                                event: event.clone(),
                                file: row.id.clone(),
                                variant: Variant::Thumbnail(size),
                                sha256: h.into(),
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// Where the download of `d` is written while under way: the same path until it is
    /// taken in, so a cut download resumes where it stopped (the next open starts it over).
    pub fn download_path(&self, d: &Download) -> Result<PathBuf> {
        Ok(self.blobs()?.dir.join("tmp").join(format!("{}.part", d.sha256)))
    }

    /// Takes a fetched file (`tmp`, at [`Replica::download_path`]) in, if it hashes to what
    /// `d` says; otherwise it is dropped and the fetch is refused.
    pub async fn downloaded(&self, d: &Download, tmp: &Path) -> Result<()> {
        let blobs = self.blobs()?;
        let path = tmp.to_path_buf();
        let hash = tokio::task::spawn_blocking(move || -> io::Result<String> {
            let mut f = std::fs::File::open(path)?;
            let mut h = Sha256::new();
            io::copy(&mut f, &mut h)?;
            Ok(format!("{:x}", h.finalize()))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| Error::Internal(format!("reading a download: {e}")))?;
        // An original is either the upload as made or the copy without metadata, as the
        // event's setting has the server send it.
        let row = self.mirror().get(&d.event, "file_meta", &d.file);
        let also = row
            .as_ref()
            .filter(|_| d.variant == Variant::Original)
            .and_then(|r| r.data["content_hash"].as_str().map(String::from));
        if hash != d.sha256 && also.as_deref() != Some(hash.as_str()) {
            let _ = std::fs::remove_file(tmp);
            return Err(Error::rule("hash_mismatch", "the bytes fetched do not match the file's record"));
        }
        blobs.adopt(&hash, tmp).map_err(|e| Error::Internal(format!("storing a file: {e}")))?;
        if d.variant == Variant::Original {
            blobs.lock().wanted.remove(&(d.event.clone(), d.file.clone()));
        }
        self.sweep_files();
        self.changed(&d.event, ["file_content".to_string()].into());
        Ok(())
    }

    /// Bytes held in the file directory, and the budget.
    pub fn file_bytes(&self) -> (u64, u64) {
        self.inner.files.as_ref().map_or((0, 0), |b| (b.lock().total, b.budget()))
    }

    /// Sets the budget of fetched bytes (and keeps to it at once).
    pub fn set_file_budget(&self, bytes: u64) {
        if let Some(b) = &self.inner.files {
            b.budget.store(bytes, std::sync::atomic::Ordering::Relaxed);
            self.sweep_files();
        }
    }

    /// Removes the bytes no held record names, and the least recently used past the budget
    /// (never those of the device's own files the server has not confirmed). Runs whenever
    /// file records change.
    pub fn sweep_files(&self) {
        let Some(blobs) = &self.inner.files else { return };
        let (mut named, mut pinned) = (HashSet::new(), HashSet::new());
        let since = blobs.lock().attached;
        // The outbox when it can be read without waiting (callers may hold it); otherwise the
        // set last read from it, if no attach finished since (else the next sweep decides).
        let own: HashSet<String> = match self.inner.state.try_lock() {
            Ok(st) => {
                let own: HashSet<String> = st
                    .outbox
                    .values()
                    .filter(|o| o.kind == "file_meta" && o.mutation.op == MutationOp::Create)
                    .filter_map(|o| o.mutation.fields["content_hash"].as_str().map(String::from))
                    .collect();
                let mut ix = blobs.lock();
                (ix.own, ix.own_at) = (own.clone(), since);
                own
            }
            Err(_) => {
                let ix = blobs.lock();
                if ix.own_at != since {
                    return;
                }
                ix.own.clone()
            }
        };
        pinned.extend(own);
        for r in self.mirror().all_of_kind("file_meta") {
            named.extend(named_by(&r.data));
            if r.pending && r.base.is_none() {
                pinned.extend(named_by(&r.data));
            }
        }
        blobs.sweep(&named, &pinned, since);
    }
}

/// Whether the server withholds a file's original from `account`: a photo whose metadata
/// could not be removed is its uploader's only, unless its event keeps photo locations.
fn withheld_from(file: &Value, event: Option<&Value>, account: Option<&str>) -> bool {
    file["original_withheld"].as_bool() == Some(true)
        && file["served_hash"].is_null()
        && event.is_none_or(|e| e["keep_photo_location"].as_bool() != Some(true))
        && account.is_some_and(|a| file["uploaded_by"].as_str() != Some(a))
}

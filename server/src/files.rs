//! Files and photos over HTTP, next to the sync socket: resumable uploads in chunks (a small
//! protocol in the manner of tus, `docs/protocol.md` "Files"), downloads with `Range`, and
//! the processing of a finished upload (hash check, thumbnails, the copy without metadata).
//! Every decision on who may do what is the engine's; this module moves bytes.

use std::{
    collections::HashSet,
    io,
    path::{Path as FsPath, PathBuf},
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    body::Body as RawBody,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use engine::{
    files::{NewUpload, ORIGINAL_WITHHELD, Processed, THUMBNAIL_SIZES, Upload, UploadStatus},
    model::{Event, FileMeta},
};
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::{io::AsyncWriteExt, sync::Semaphore};

use crate::{
    AppState,
    api::Body,
    auth::Caller,
    blobs::BlobStore,
    error::{ApiError, ApiResult},
    images::{self, ImageLimits, Kind},
    strip::{self, Stripped},
};

/// The header of the offset an upload holds (as in tus).
pub const UPLOAD_OFFSET: &str = "upload-offset";
pub const UPLOAD_LENGTH: &str = "upload-length";
/// The content type of a chunk (as in tus); `application/octet-stream` is taken too.
pub const CHUNK_CONTENT_TYPE: &str = "application/offset+octet-stream";

/// The server's side of files: the blob store, the staging directory of open uploads and
/// the bounded pool that processes images.
#[derive(Debug)]
pub struct Files {
    blobs: Arc<dyn BlobStore>,
    staging: PathBuf,
    image_slots: Arc<Semaphore>,
    image_limits: ImageLimits,
    /// A chunk whose connection sends nothing for this long is cut (what arrived is kept),
    /// so a dead connection does not hold its upload.
    chunk_idle: std::time::Duration,
    /// Uploads a request is writing to right now: one writer per upload.
    busy: Mutex<HashSet<String>>,
    /// Held (shared) by a finishing upload from storing its blobs until its record names
    /// them, and (exclusive) by a collection, which so never takes a blob being finished.
    finishing: tokio::sync::RwLock<()>,
}

/// What one [`Files::collect`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// Upload records expired (abandoned, never added, or long since added).
    pub uploads: usize,
    /// Stray files removed from the staging directory (of requests cut by a crash).
    pub partial_files: usize,
    /// Blobs no file or upload names any more, and their bytes.
    pub blobs: usize,
    pub blob_bytes: u64,
}

/// A blob no longer named is kept this long after it was last stored, for a server that
/// stored it and has not yet recorded it (another server on the same bucket).
pub const BLOB_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

impl Files {
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        staging: PathBuf,
        image_workers: usize,
        image_limits: ImageLimits,
        chunk_idle: std::time::Duration,
    ) -> io::Result<Files> {
        std::fs::create_dir_all(&staging)?;
        Ok(Files {
            blobs,
            staging,
            image_slots: Arc::new(Semaphore::new(image_workers.max(1))),
            image_limits,
            chunk_idle,
            busy: Mutex::new(HashSet::new()),
            finishing: tokio::sync::RwLock::new(()),
        })
    }

    /// Upkeep of file storage, as of `now`: uploads opened more than `upload_expiry` ago are
    /// forgotten with their partial bytes (a client coming back starts over), stray staging
    /// files as old are removed, and blobs that no file or upload names any more (deleted
    /// files, expired uploads) are deleted once [`BLOB_GRACE`] has passed since they were
    /// last stored. The server runs it periodically (`file_sweep_interval`).
    pub async fn collect(
        &self,
        engine: &engine::Engine,
        now: std::time::SystemTime,
        upload_expiry: std::time::Duration,
    ) -> Result<Collected, crate::Error> {
        let mut done = Collected::default();
        let cutoff = now.checked_sub(upload_expiry).unwrap_or(std::time::UNIX_EPOCH);
        let before = engine::time::format(cutoff.into());
        let busy = self.busy.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for up in engine.expire_uploads(&before).await? {
            done.uploads += 1;
            // Its parts are blobs no record names any more: collected below once old.
            let _ = up;
        }
        let mut staged = tokio::fs::read_dir(&self.staging).await?;
        while let Some(entry) = staged.next_entry().await? {
            let name = entry.file_name().to_string_lossy().to_string();
            let upload = name.split('.').next().unwrap_or_default();
            let old = entry.metadata().await?.modified()? < cutoff;
            if old && !busy.contains(upload) && remove_if_present(&entry.path()).await? {
                done.partial_files += 1;
            }
        }
        let _exclusive = self.finishing.write().await;
        let named = engine.blob_references().await?;
        for blob in self.blobs.list().await? {
            let stored_long_ago = blob.stored_at.checked_add(BLOB_GRACE).is_some_and(|t| t < now);
            if !named.contains(&blob.hash) && stored_long_ago {
                self.blobs.delete(&blob.hash).await?;
                done.blobs += 1;
                done.blob_bytes += blob.size;
            }
        }
        if done != Collected::default() {
            tracing::info!(?done, "file storage collected");
        }
        Ok(done)
    }

    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// Where a request receives the bytes of `upload` from offset `at` on, before they become
    /// a part in the blob store.
    fn receiving(&self, upload: &str, at: u64) -> PathBuf {
        self.staging.join(format!("{upload}.{at}.recv"))
    }

    /// Where a finishing upload's bytes are put together.
    fn whole(&self, upload: &str) -> PathBuf {
        self.staging.join(format!("{upload}.whole"))
    }

    fn claim(&self, upload: &str) -> Option<Claim<'_>> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        busy.insert(upload.to_string()).then(|| Claim { files: self, upload: upload.to_string() })
    }
}

/// One request's hold on an upload, released when the request ends (or is dropped).
struct Claim<'a> {
    files: &'a Files,
    upload: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.files.busy.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.upload);
    }
}

/// The routes. A chunk's body is read as a stream and bounded by the upload's announced
/// size (itself bounded by the file limit), not by the JSON body limit.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/events/{event}/uploads", post(open_upload))
        .route("/uploads/{id}", get(upload_status).head(upload_head).patch(upload_chunk))
        .route("/events/{event}/files/{id}/content", get(download_content))
        .route("/events/{event}/files/{id}/links", post(make_links))
        .route("/links/{token}", get(follow_link))
        .route("/events/{event}/files/{id}/thumbnails/{size}", get(download_thumbnail))
        .route("/orgs/{org}/storage", get(org_storage))
}

/// An upload as its uploader sees it: the record and the offset the server holds.
#[derive(Serialize)]
struct UploadView {
    #[serde(flatten)]
    upload: Upload,
    offset: u64,
}

async fn remove_if_present(path: &FsPath) -> io::Result<bool> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn io_error(e: io::Error) -> ApiError {
    tracing::error!(error = %e, "file storage failed");
    if disk_full(&e) {
        return ApiError::storage_unavailable();
    }
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "something went wrong on the server; try again")
}

/// Whether a file write failed for lack of space (or a file size limit).
fn disk_full(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge)
}

/// A chunk's bytes could not be written: the partial file is removed (a full disk gets its
/// space back), and the upload keeps the offset it had (answered with the error, so the
/// client resumes from there).
async fn chunk_failed(st: &AppState, path: &FsPath, e: io::Error) -> ApiError {
    if disk_full(&e) {
        st.engine.store().guard().failed();
    }
    let _ = remove_if_present(path).await;
    io_error(e)
}

fn with_offset(mut r: Response, offset: u64, size: i64) -> Response {
    let h = r.headers_mut();
    h.insert(UPLOAD_OFFSET, HeaderValue::from(offset));
    h.insert(UPLOAD_LENGTH, HeaderValue::from(size));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn open_upload(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(ev): Path<String>,
    Body(input): Body<NewUpload>,
) -> ApiResult<Response> {
    let up = st.engine.open_upload(&me, &ev, input).await?;
    let offset = offset(&up);
    let size = up.size;
    let location = format!("/v1/uploads/{}", up.id);
    let mut r = (StatusCode::CREATED, Json(UploadView { upload: up, offset })).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(with_offset(r, offset, size))
}

async fn upload_status(State(st): State<AppState>, Caller(me): Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let up = st.engine.upload(&me, &id).await?;
    let offset = offset(&up);
    let size = up.size;
    Ok(with_offset(Json(UploadView { upload: up, offset }).into_response(), offset, size))
}

async fn upload_head(State(st): State<AppState>, Caller(me): Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let up = st.engine.upload(&me, &id).await?;
    let offset = offset(&up);
    Ok(with_offset(StatusCode::OK.into_response(), offset, up.size))
}

/// The offset an upload holds: what its parts hold, on whichever node they were received.
fn offset(up: &Upload) -> u64 {
    match up.status {
        UploadStatus::Complete => up.size as u64,
        UploadStatus::Open => up.received.clamp(0, up.size) as u64,
    }
}

fn offset_mismatch(held: u64, size: i64) -> Response {
    let e = ApiError::new(
        StatusCode::CONFLICT,
        "offset_mismatch",
        format!("the server holds {held} bytes of this upload: send the chunk that starts there"),
    );
    with_offset(e.into_response(), held, size)
}

/// How much of a refused chunk is read (and dropped) before the refusal, and for how long.
const REFUSED_DRAIN_BYTES_MAX: usize = 8 * 1024 * 1024;
const REFUSED_DRAIN_MAX: std::time::Duration = std::time::Duration::from_secs(2);

/// Appends one chunk at `Upload-Offset`. The body is written as it arrives; when the request
/// ends (or its connection is cut) what arrived becomes a part in the blob store and the
/// upload's offset moves past it, so the client resumes from the offset `HEAD` answers — on
/// this node or any other. The chunk that reaches the announced size finishes the upload:
/// the parts and the chunk are put together, checked against the sha256 (a mismatch
/// discards them: the upload starts over), images are processed, and the bytes move into
/// the blob store.
async fn upload_chunk(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: RawBody,
) -> ApiResult<Response> {
    let up = st.engine.upload(&me, &id).await?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with(CHUNK_CONTENT_TYPE) && !content_type.starts_with("application/octet-stream") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send a chunk's bytes with `Content-Type: {CHUNK_CONTENT_TYPE}`"),
        ));
    }
    let asked: u64 =
        headers.get(UPLOAD_OFFSET).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok()).ok_or_else(
            || ApiError::bad_request("offset_required", "a chunk needs an `Upload-Offset` header (bytes)"),
        )?;
    let files = &st.files;
    // One writer per upload on this node, answered at once; across nodes, the offset's
    // check when a part is recorded decides.
    let Some(_claim) = files.claim(&up.id) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "upload_busy",
            "another request is writing this upload; wait for it (or for its connection to drop) and resume",
        ));
    };
    let size = up.size as u64;
    if up.status == UploadStatus::Complete {
        return Ok(with_offset(Json(UploadView { upload: up.clone(), offset: size }).into_response(), size, up.size));
    }
    let held = offset(&up);
    if asked != held {
        // The chunk is read and dropped (within bounds) before the answer: a server that
        // answers and closes while the client still sends its bytes makes the client lose the
        // answer to a reset, and with it the offset to resume from.
        let _ = tokio::time::timeout(REFUSED_DRAIN_MAX, async {
            let mut stream = body.into_data_stream();
            let mut read = 0;
            while let Some(Ok(c)) = stream.next().await {
                read += c.len();
                if read > REFUSED_DRAIN_BYTES_MAX {
                    break;
                }
            }
        })
        .await;
        return Ok(offset_mismatch(held, up.size));
    }
    let path = files.receiving(&up.id, held);
    let file = tokio::fs::File::create(&path).await.map_err(io_error)?;
    // Frames arrive in tens of KiB; each write to a tokio file is a trip to a blocking thread,
    // so they are gathered into writes of up to 1 MiB.
    let mut out = tokio::io::BufWriter::with_capacity(1024 * 1024, file);
    let mut part = Sha256::new();
    let mut written = held;
    let mut stream = body.into_data_stream();
    let mut too_long = false;
    loop {
        let next = tokio::time::timeout(files.chunk_idle, stream.next()).await;
        let chunk = match next {
            Ok(None) => break,
            Ok(Some(Ok(chunk))) => chunk,
            // The connection dropped, went silent, or the chunk passed the request limit:
            // keep what arrived (and free the upload for the client's next try).
            failed => {
                let kept = match out.flush().await {
                    Ok(()) => keep_part(&st, &me, &up, held, &path, written, part).await?,
                    Err(_) => held,
                };
                let (status, code) = if failed.is_err() {
                    (StatusCode::REQUEST_TIMEOUT, "upload_stalled")
                } else {
                    (StatusCode::BAD_REQUEST, "upload_interrupted")
                };
                let e = ApiError::new(
                    status,
                    code,
                    format!("the chunk was cut after {kept} bytes in all; resume from there"),
                );
                return Ok(with_offset(e.into_response(), kept, up.size));
            }
        };
        let room = (size - written) as usize;
        let take = chunk.len().min(room);
        if let Err(e) = out.write_all(&chunk[..take]).await {
            return Ok(with_offset(chunk_failed(&st, &path, e).await.into_response(), held, up.size));
        }
        part.update(&chunk[..take]);
        written += take as u64;
        if take < chunk.len() {
            too_long = true;
            break;
        }
    }
    if let Err(e) = out.flush().await {
        drop(out);
        return Ok(with_offset(chunk_failed(&st, &path, e).await.into_response(), held, up.size));
    }
    drop(out);
    if too_long || written < size {
        let kept = keep_part(&st, &me, &up, held, &path, written, part).await?;
        if too_long {
            let e = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "upload_too_long",
                format!("the upload was announced as {size} bytes; the bytes past it were not kept"),
            );
            return Ok(with_offset(e.into_response(), kept, up.size));
        }
        if kept != written {
            return Ok(offset_mismatch(kept, up.size));
        }
        return Ok(with_offset(StatusCode::NO_CONTENT.into_response(), written, up.size));
    }
    let whole = assemble(files, &up, &path).await.map_err(io_error)?;
    let done = finish(&st, &me, up, &whole, held).await?;
    let size = done.size;
    Ok(with_offset(Json(UploadView { upload: done, offset: size as u64 }).into_response(), size as u64, size))
}

/// Makes the bytes a request received (`held..written`, in the file at `path`) a part of the
/// upload in the blob store; answers the upload's offset after it (another request's, if one
/// on another node moved it first: this part is then left for collection).
async fn keep_part(
    st: &AppState,
    me: &str,
    up: &Upload,
    held: u64,
    path: &FsPath,
    written: u64,
    part: Sha256,
) -> ApiResult<u64> {
    if written == held {
        remove_if_present(path).await.map_err(io_error)?;
        return Ok(held);
    }
    tokio::fs::File::open(path).await.map_err(io_error)?.sync_data().await.map_err(io_error)?;
    let hash = format!("{:x}", part.finalize());
    st.files.blobs.put_file(&hash, path).await.map_err(io_error)?;
    let recorded = engine::files::UploadPart { hash, size: (written - held) as i64 };
    match st.engine.add_upload_part(me, &up.id, held as i64, recorded).await {
        Ok(now) => Ok(offset(&now)),
        Err(engine::Error::Conflict { code: "offset_mismatch", .. }) => {
            Ok(offset(&st.engine.upload(me, &up.id).await?))
        }
        Err(e) => Err(e.into()),
    }
}

/// The whole content of a finishing upload in one staged file: its parts from the blob store
/// (received on this node or any other), then the last run, received here at `last`.
async fn assemble(files: &Files, up: &Upload, last: &FsPath) -> io::Result<PathBuf> {
    let whole = files.whole(&up.id);
    if up.parts.is_empty() {
        tokio::fs::rename(last, &whole).await?;
        return Ok(whole);
    }
    let mut out = tokio::io::BufWriter::with_capacity(1024 * 1024, tokio::fs::File::create(&whole).await?);
    for part in &up.parts {
        let mut bytes = files.blobs.read(&part.hash, 0..part.size as u64).await?;
        while let Some(chunk) = bytes.next().await {
            out.write_all(&chunk?).await?;
        }
    }
    let mut tail = tokio::fs::File::open(last).await?;
    tokio::io::copy(&mut tail, &mut out).await?;
    out.flush().await?;
    remove_if_present(last).await?;
    Ok(whole)
}

/// sha256 of a file, in lowercase hex.
pub fn file_sha256(path: &FsPath) -> io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h)?;
    Ok(format!("{:x}", h.finalize()))
}

/// Checks, processes and stores a finishing upload's content (at `path`), received up to
/// `held` before this request.
async fn finish(st: &AppState, me: &str, up: Upload, path: &FsPath, held: u64) -> ApiResult<Upload> {
    let files = &st.files;
    let staged = path.to_path_buf();
    let hash = tokio::task::spawn_blocking(move || file_sha256(&staged))
        .await
        .map_err(|e| io_error(io::Error::other(e)))?
        .map_err(io_error)?;
    if hash != up.sha256 {
        remove_if_present(path).await.map_err(io_error)?;
        st.engine.restart_upload(me, &up.id, held as i64).await?;
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "hash_mismatch",
            format!(
                "the {} bytes received hash to {hash}, not to the announced {}; nothing was kept and the upload starts over at offset 0",
                up.size, up.sha256
            ),
        ));
    }
    let _finishing = files.finishing.read().await;
    let processed = process(files, path, &up).await.map_err(io_error)?;
    files.blobs.put_file(&up.sha256, path).await.map_err(io_error)?;
    Ok(st.engine.complete_upload(me, &up.id, held as i64, processed).await?)
}

/// The note of an image whose processing failed outright (a decoder that panicked).
const NOT_PROCESSED: &str = "the image could not be processed; it gets no thumbnails";

/// Thumbnails and the copy without metadata, for images; made on the bounded pool.
async fn process(files: &Files, path: &FsPath, up: &Upload) -> io::Result<Processed> {
    let mut head = [0u8; 16];
    let n = {
        use tokio::io::AsyncReadExt;
        let mut f = tokio::fs::File::open(path).await?;
        f.read(&mut head).await?
    };
    let Some(kind) = images::sniff(&head[..n]) else { return Ok(Processed::default()) };
    let detected = match kind {
        Kind::Jpeg => Some("image/jpeg"),
        Kind::Png => Some("image/png"),
        Kind::Webp => Some("image/webp"),
        Kind::Heif => Some("image/heic"),
        Kind::OtherImage => None,
    };
    let _slot = files.image_slots.acquire().await.map_err(io::Error::other)?;
    let limits = files.image_limits;
    let source = path.to_path_buf();
    let processing = tokio::task::spawn_blocking(move || -> io::Result<_> {
        let bytes = std::fs::read(&source)?;
        // A decoder that panics on some input: the file is kept unpreviewed, and the upload
        // finishes (retrying would panic again).
        let made = std::panic::catch_unwind(|| images::thumbnails(&bytes, kind, &THUMBNAIL_SIZES, limits))
            .unwrap_or_else(|_| Err(NOT_PROCESSED.to_string()));
        let stripped = std::panic::catch_unwind(|| strip::without_metadata(&bytes, kind)).unwrap_or(Stripped::Unknown);
        Ok((made, stripped))
    })
    .await;
    let (made, stripped) = match processing {
        Ok(done) => done?,
        Err(e) => {
            tracing::error!(error = %e, upload = %up.id, "image processing failed");
            (Err(NOT_PROCESSED.to_string()), Stripped::Unknown)
        }
    };
    if let Err(note) = &made {
        tracing::info!(upload = %up.id, note = %note, "image not previewed");
    }
    let mut p = Processed { media_type: detected.map(String::from), ..Processed::default() };
    match made {
        Ok(made) => {
            p.preview.width = Some(i64::from(made.width));
            p.preview.height = Some(i64::from(made.height));
            for (size, jpeg) in made.thumbnails {
                p.preview.thumbnails.insert(size.to_string(), store_bytes(files, &up.id, &jpeg).await?);
            }
        }
        Err(note) => p.preview.preview_note = Some(note),
    }
    match stripped {
        Stripped::Clean => {}
        Stripped::Copy(copy) => p.preview.served_hash = Some(store_bytes(files, &up.id, &copy).await?),
        // Fail closed: what could not be cleaned stays its uploader's.
        Stripped::Unknown => {
            p.preview.original_withheld = true;
            p.preview.preview_note = Some(match p.preview.preview_note.take() {
                Some(note) => format!("{note}; {ORIGINAL_WITHHELD}"),
                None => ORIGINAL_WITHHELD.to_string(),
            });
        }
    }
    Ok(p)
}

async fn store_bytes(files: &Files, upload: &str, bytes: &[u8]) -> io::Result<String> {
    let hash = format!("{:x}", Sha256::digest(bytes));
    let tmp = files.staging.join(format!("{upload}.{}.derived", &hash[..16]));
    tokio::fs::write(&tmp, bytes).await?;
    files.blobs.put_file(&hash, &tmp).await?;
    Ok(hash)
}

// ---- downloads ----

/// A `Range` header's one range, resolved against `size`: `Ok(None)` for the whole content.
fn parse_range(headers: &HeaderMap, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(v) = headers.get(header::RANGE) else { return Ok(None) };
    let v = v.to_str().map_err(|_| ())?.trim();
    let spec = v.strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Err(()); // one range per request
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        if size == 0 {
            return Err(());
        }
        size.saturating_sub(n)..size
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() { size } else { b.parse::<u64>().map_err(|_| ())?.saturating_add(1).min(size) };
        if start >= size || end <= start {
            return Err(());
        }
        start..end
    };
    Ok(Some(range))
}

/// Types a browser may show inline; anything else downloads as an attachment (an uploaded
/// HTML page never runs on this origin).
fn inline_type(media_type: Option<&str>) -> Option<&'static str> {
    match media_type? {
        "image/jpeg" => Some("image/jpeg"),
        "image/png" => Some("image/png"),
        "image/webp" => Some("image/webp"),
        "application/pdf" => Some("application/pdf"),
        _ => None,
    }
}

async fn send_blob(
    st: &AppState,
    headers: &HeaderMap,
    hash: &str,
    content_type: Option<&'static str>,
    name: Option<&str>,
) -> ApiResult<Response> {
    let size = st.files.blobs.size(hash).await.map_err(io_error)?.ok_or_else(|| {
        tracing::error!(blob = hash, "a file's bytes are missing from the blob store");
        ApiError::not_found()
    })?;
    let etag = format!("\"{hash}\"");
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        r.headers_mut().insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex is a header value"));
        return Ok(r);
    }
    let range = match parse_range(headers, size) {
        Ok(r) => r,
        Err(()) => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("ask for one range of bytes within the {size} bytes, as `Range: bytes=START-END`"),
            )
            .into_response();
            r.headers_mut()
                .insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"));
            return Ok(r);
        }
    };
    let (status, span) = match &range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.clone()),
        None => (StatusCode::OK, 0..size),
    };
    let stream = st.files.blobs.read(hash, span.clone()).await.map_err(io_error)?;
    let mut r = Response::new(RawBody::from_stream(stream));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(span.end - span.start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex is a header value"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type.unwrap_or("application/octet-stream")));
    if content_type.is_none() {
        let disposition = match name {
            Some(n) => format!("attachment; filename*=UTF-8''{}", percent(n)),
            None => "attachment".into(),
        };
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    if range.is_some() {
        let v = format!("bytes {}-{}/{size}", span.start, span.end.saturating_sub(1));
        h.insert(header::CONTENT_RANGE, HeaderValue::from_str(&v).expect("ascii"));
    }
    Ok(r)
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// The file's content: the copy without metadata when the photo had some.
async fn download_content(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((ev, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (f, event) = st.engine.file_in_event(&me, &ev, &id).await?;
    send_content(&st, &headers, &me, &f, &event).await
}

/// A file's content as `caller` gets it: without the photo's metadata unless the event keeps
/// it; a photo whose metadata could not be removed only to its uploader.
async fn send_content(
    st: &AppState,
    headers: &HeaderMap,
    caller: &str,
    f: &FileMeta,
    event: &Event,
) -> ApiResult<Response> {
    let hash = match &f.preview.served_hash {
        _ if event.keep_photo_location => &f.content_hash,
        Some(served) => served,
        None if f.preview.original_withheld && caller != f.uploaded_by => {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "original_withheld", ORIGINAL_WITHHELD));
        }
        None => &f.content_hash,
    };
    send_blob(st, headers, hash, inline_type(f.media_type.as_deref()), Some(&f.name)).await
}

async fn download_thumbnail(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((ev, id, size)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let f = st.engine.file(&me, &ev, &id).await?;
    let hash = f.preview.thumbnails.get(&size).ok_or_else(ApiError::not_found)?;
    send_blob(&st, &headers, hash, Some("image/jpeg"), None).await
}

/// How long a file link lasts.
pub const LINK_TTL: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Serialize)]
struct Links {
    content: String,
    thumbnails: std::collections::BTreeMap<String, String>,
    expires_at: u64,
}

/// Short-lived links to a file's content and thumbnails, for a browser (an `<img src>` sends
/// no bearer token). Each is the caller's, for this file, for [`LINK_TTL`].
async fn make_links(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((ev, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let f = st.engine.file(&me, &ev, &id).await?;
    let link = |variant: &str| -> ApiResult<(String, u64)> {
        let (token, exp) = st.tokens.sign_link(&me, &f.event, &f.id, variant, LINK_TTL)?;
        Ok((format!("/v1/links/{token}"), exp))
    };
    let (content, expires_at) = link("content")?;
    let mut thumbnails = std::collections::BTreeMap::new();
    for size in f.preview.thumbnails.keys() {
        thumbnails.insert(size.clone(), link(size)?.0);
    }
    Ok(Json(Links { content, thumbnails, expires_at }).into_response())
}

/// A file link: the signer's access to the file is checked again, now.
async fn follow_link(State(st): State<AppState>, Path(token): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    let link = st.tokens.verify_link(&token)?;
    let (f, event) = st.engine.file_in_event(&link.sub, &link.event, &link.file).await?;
    if link.variant == "content" {
        return send_content(&st, &headers, &link.sub, &f, &event).await;
    }
    let hash = f.preview.thumbnails.get(&link.variant).ok_or_else(ApiError::not_found)?;
    send_blob(&st, &headers, hash, Some("image/jpeg"), None).await
}

async fn org_storage(State(st): State<AppState>, Caller(me): Caller, Path(org): Path<String>) -> ApiResult<Response> {
    Ok(Json(st.engine.org_storage(&me, &org).await?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        parse_range(&h, size)
    }

    #[test]
    fn ranges_resolve_against_the_size() {
        assert_eq!(range("bytes=0-99", 1000), Ok(Some(0..100)));
        assert_eq!(range("bytes=900-", 1000), Ok(Some(900..1000)));
        assert_eq!(range("bytes=-100", 1000), Ok(Some(900..1000)));
        assert_eq!(range("bytes=990-2000", 1000), Ok(Some(990..1000)));
        assert_eq!(range("bytes=1000-", 1000), Err(()));
        assert_eq!(range("bytes=5-1", 1000), Err(()));
        assert_eq!(range("bytes=0-1,5-6", 1000), Err(()));
        assert_eq!(range("items=0-1", 1000), Err(()));
        assert_eq!(parse_range(&HeaderMap::new(), 10), Ok(None));
    }
}

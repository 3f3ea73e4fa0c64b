//! File transfers beside the sync socket, while a link is connected: the device's photos go
//! up in chunks (resuming from the offset the server holds after any cut), thumbnails come
//! down eagerly and originals when the app asks, each checked against its hash. What to move
//! and where the bytes live is the replica's ([`engine::device::files`]); this moves them.

use std::{path::Path, sync::Arc, time::Duration};

use engine::device::{
    Notice, Replica,
    files::{Download, PendingUpload},
};
use futures_util::StreamExt;
use reqwest::{StatusCode, header};
use serde::Deserialize;
use tokio::{
    io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt},
    sync::Notify,
};

/// Bytes of one upload request: a cut loses at most what of it the server did not keep.
pub const CHUNK_BYTES: u64 = 1024 * 1024;
/// Waits after a failed transfer: doubling from the first to the last.
const RETRY_MIN: Duration = Duration::from_millis(300);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// With nothing to do, how often to look again anyway.
const IDLE_LOOK: Duration = Duration::from_secs(30);

/// The HTTP side of a server: its base address and a client on the link's TLS settings.
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    /// For the sync socket at `ws_url` (`ws://host:port/v1/sync` → `http://host:port`).
    pub fn new(ws_url: &str, tls: rustls::ClientConfig) -> Option<Http> {
        let (scheme, rest) = ws_url.split_once("://")?;
        let scheme = match scheme {
            "ws" => "http",
            "wss" => "https",
            _ => return None,
        };
        let host = rest.split('/').next().filter(|h| !h.is_empty())?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(30))
            .build()
            .ok()?;
        Some(Http { client, base: format!("{scheme}://{host}") })
    }

    /// A POST to `path` on the server.
    pub(crate) fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.base))
    }

    /// A DELETE of `path` on the server.
    pub(crate) fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(format!("{}{path}", self.base))
    }
}

/// Why a transfer stopped.
enum Failure {
    /// The network or the server failed: try again later.
    Retry(String),
    /// The server refused for good (code, message).
    Refused(String, String),
}

type Outcome<T> = Result<T, Failure>;

#[derive(Deserialize)]
struct UploadView {
    id: String,
    offset: u64,
    status: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

fn lost(e: reqwest::Error) -> Failure {
    Failure::Retry(format!("the connection was lost: {e}"))
}

/// A refusal from its body, or a retry for what is worth retrying.
async fn refusal(r: reqwest::Response) -> Failure {
    let status = r.status();
    let body: Option<ErrorBody> = r.json().await.ok();
    // A conflict (another request still writing the upload, e.g. the one a network change
    // cut) or a chunk the server cut for silence passes: it is retried, never taken for a
    // refusal that would drop the photo.
    if status.is_server_error()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::CONFLICT
        || status == StatusCode::REQUEST_TIMEOUT
    {
        return Failure::Retry(body.map_or_else(|| format!("the server answered {status}"), |b| b.message));
    }
    match body {
        Some(b) => Failure::Refused(b.code, b.message),
        None => Failure::Refused("refused".into(), format!("the server answered {status}")),
    }
}

fn offset_header(r: &reqwest::Response) -> Option<u64> {
    r.headers().get("upload-offset")?.to_str().ok()?.parse().ok()
}

/// Runs until dropped (the link aborts it when its connection ends), each pass with the
/// link's access token as it is then (renewed as the link goes).
pub async fn run(
    replica: Replica,
    http: Http,
    tokens: tokio::sync::watch::Receiver<engine::device::SignInTokens>,
    push: Arc<Notify>,
) {
    let mut notices = replica.notices();
    let mut retry = RETRY_MIN;
    loop {
        let token = tokens.borrow().token.clone();
        let ok = work(&replica, &http, &token, &push).await;
        while notices.try_recv().is_ok() {}
        let wait = if ok {
            retry = RETRY_MIN;
            IDLE_LOOK
        } else {
            let w = retry;
            retry = (retry * 2).min(RETRY_MAX);
            w
        };
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => break,
                n = notices.recv(), if ok => match n {
                    Ok(Notice::Changed { kinds, .. }) if kinds.iter().any(|k| k == "file_meta" || k == "file_request") => break,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(_) => return,
                },
            }
        }
    }
}

/// One pass: every pending upload, then every wanted download. False when one failed and
/// should be retried.
async fn work(replica: &Replica, http: &Http, token: &str, push: &Notify) -> bool {
    for up in replica.pending_uploads().await {
        match upload(replica, http, token, &up).await {
            Ok(()) => {
                replica.upload_done(&up.event, &up.file);
                push.notify_one();
            }
            Err(Failure::Refused(code, message)) => {
                tracing::warn!(file = %up.file, code = %code, "the server refused an upload");
                if let Err(e) = replica.upload_refused(&up.event, &up.file, &code, &message).await {
                    tracing::error!(error = %e, "could not record a refused upload");
                }
            }
            Err(Failure::Retry(why)) => {
                tracing::info!(file = %up.file, why = %why, "upload interrupted; it resumes");
                return false;
            }
        }
    }
    for d in replica.downloads().await {
        match download(replica, http, token, &d).await {
            Ok(()) => {}
            // Gone or out of reach: the feed removes its record next.
            Err(Failure::Refused(code, _)) => tracing::debug!(file = %d.file, code = %code, "a download was refused"),
            Err(Failure::Retry(why)) => {
                tracing::info!(file = %d.file, why = %why, "download interrupted");
                return false;
            }
        }
    }
    true
}

async fn upload(replica: &Replica, http: &Http, token: &str, up: &PendingUpload) -> Outcome<()> {
    let opened = http
        .client
        .post(format!("{}/v1/events/{}/uploads", http.base, up.event))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "id": up.file,
            "collaborator": up.collaborator,
            "name": up.name,
            "size": up.size,
            "sha256": up.sha256,
            "media_type": up.media_type,
        }))
        .send()
        .await
        .map_err(lost)?;
    let view: UploadView = match opened.status() {
        StatusCode::OK | StatusCode::CREATED => opened.json().await.map_err(lost)?,
        _ => {
            return match refusal(opened).await {
                // Its record exists: an earlier push was applied; the next one is answered so.
                Failure::Refused(code, _) if code == "file_exists" => Ok(()),
                f => Err(f),
            };
        }
    };
    if view.status == "complete" {
        return Ok(());
    }
    let mut offset = view.offset;
    let mut file = tokio::fs::File::open(&up.path).await.map_err(|e| {
        Failure::Refused("file_missing".into(), format!("the photo's bytes are gone from the device: {e}"))
    })?;
    let progress = |sent: u64, error: Option<String>| replica.upload_progress(&up.event, &up.file, sent, error);
    progress(offset, None);
    loop {
        let len = (up.size - offset.min(up.size)).min(CHUNK_BYTES);
        let mut chunk = vec![0u8; len as usize];
        file.seek(std::io::SeekFrom::Start(offset)).await.map_err(|e| Failure::Retry(e.to_string()))?;
        file.read_exact(&mut chunk).await.map_err(|e| Failure::Retry(e.to_string()))?;
        let sent = http
            .client
            .patch(format!("{}/v1/uploads/{}", http.base, view.id))
            .bearer_auth(token)
            .header("upload-offset", offset)
            .header(header::CONTENT_TYPE, "application/offset+octet-stream")
            .body(chunk)
            .send()
            .await;
        let r = match sent {
            Ok(r) => r,
            Err(e) => {
                progress(offset, Some("the connection was lost; the upload resumes".into()));
                return Err(lost(e));
            }
        };
        match r.status() {
            StatusCode::OK => {
                progress(up.size, None);
                return Ok(());
            }
            StatusCode::NO_CONTENT | StatusCode::CONFLICT if offset_header(&r).is_some() => {
                offset = offset_header(&r).unwrap_or(offset);
                progress(offset, None);
            }
            // The upload expired on the server while under way (days offline): the next
            // attempt opens it again and starts over; the photo stays.
            StatusCode::NOT_FOUND => return Err(Failure::Retry("the upload expired on the server".into())),
            _ => return Err(refusal(r).await),
        }
    }
}

/// Fetches `d` into its download path, resuming a cut download with `Range`.
async fn download(replica: &Replica, http: &Http, token: &str, d: &Download) -> Outcome<()> {
    let tmp = replica.download_path(d).map_err(|e| Failure::Retry(e.to_string()))?;
    let have = tokio::fs::metadata(&tmp).await.map(|m| m.len()).unwrap_or(0);
    let mut req = http
        .client
        .get(format!("{}/v1/events/{}/files/{}/{}", http.base, d.event, d.file, d.variant.path()))
        .bearer_auth(token);
    if have > 0 {
        req = req.header(header::RANGE, format!("bytes={have}-"));
    }
    let r = req.send().await.map_err(lost)?;
    let append = match r.status() {
        StatusCode::OK => false,
        StatusCode::PARTIAL_CONTENT => true,
        // What is held is all there is (or the file changed): start over.
        StatusCode::RANGE_NOT_SATISFIABLE => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(Failure::Retry("the partial download is stale".into()));
        }
        _ => return Err(refusal(r).await),
    };
    save(r, &tmp, append).await?;
    replica.downloaded(d, &tmp).await.map_err(|e| Failure::Refused(e.code().into(), e.to_string()))
}

async fn save(r: reqwest::Response, tmp: &Path, append: bool) -> Outcome<()> {
    let mut out = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(tmp)
        .await
        .map_err(|e| Failure::Retry(e.to_string()))?;
    let mut body = r.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(lost)?;
        out.write_all(&chunk).await.map_err(|e| Failure::Retry(e.to_string()))?;
    }
    out.flush().await.map_err(|e| Failure::Retry(e.to_string()))?;
    Ok(())
}

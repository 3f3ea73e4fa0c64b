//! Where file contents live: blobs named by their sha256, stored once however many files
//! hold the same bytes. A [`BlobStore`] only ever receives content already checked against
//! its name, so a blob is whole or absent.
//!
//! Two stores: a directory under the data directory (the embedded default: one file a blob,
//! fanned out by the hash's first two digits, written under a temporary name, fsynced and
//! renamed) and an S3-compatible bucket (`object_store`), for deployments where several
//! servers share one store.

use std::{
    io,
    ops::Range,
    path::{Path, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream::BoxStream};
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart, aws::AmazonS3Builder,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// A stream of a blob's bytes.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// The size of blob `hash`, when it is stored.
    async fn size(&self, hash: &str) -> io::Result<Option<u64>>;
    /// Stores the content of `file` (already checked to hash to `hash`) as blob `hash`, and
    /// removes `file`. Nothing is written when the blob is stored already.
    async fn put_file(&self, hash: &str, file: &Path) -> io::Result<()>;
    /// Bytes `range` of blob `hash` (within its size).
    async fn read(&self, hash: &str, range: Range<u64>) -> io::Result<ByteStream>;
    /// Every blob: its name, size and when it was last stored (a `put_file` of bytes held
    /// already counts as storing them again, so a collection never takes what was just put).
    async fn list(&self) -> io::Result<Vec<BlobEntry>>;
    /// Removes blob `hash` (nothing when absent).
    async fn delete(&self, hash: &str) -> io::Result<()>;
    /// Where blobs go, for the log.
    fn describe(&self) -> String;
}

/// One stored blob, as [`BlobStore::list`] finds it.
#[derive(Clone, Debug)]
pub struct BlobEntry {
    pub hash: String,
    pub size: u64,
    pub stored_at: std::time::SystemTime,
}

fn check_name(hash: &str) -> io::Result<()> {
    if engine::files::is_content_hash(hash) {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, "a blob is named by a sha256 in lowercase hex"))
    }
}

/// Blobs as files under one directory.
#[derive(Debug)]
pub struct DirBlobs {
    root: PathBuf,
}

impl DirBlobs {
    pub fn new(root: impl Into<PathBuf>) -> io::Result<DirBlobs> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(DirBlobs { root })
    }

    fn path(&self, hash: &str) -> PathBuf {
        self.root.join(&hash[..2]).join(hash)
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[async_trait::async_trait]
impl BlobStore for DirBlobs {
    async fn size(&self, hash: &str) -> io::Result<Option<u64>> {
        check_name(hash)?;
        match tokio::fs::metadata(self.path(hash)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put_file(&self, hash: &str, file: &Path) -> io::Result<()> {
        check_name(hash)?;
        let target = self.path(hash);
        let file = file.to_path_buf();
        let hash = hash.to_string();
        tokio::task::spawn_blocking(move || {
            if target.exists() {
                // Stored again: a collection running now must not take it.
                std::fs::File::options().append(true).open(&target)?.set_modified(std::time::SystemTime::now())?;
                return std::fs::remove_file(&file);
            }
            let dir = target.parent().expect("a blob path has a parent");
            std::fs::create_dir_all(dir)?;
            std::fs::File::open(&file)?.sync_all()?;
            // The staged file is under the same data directory: a rename, not a copy. On
            // another file system, copy to a temporary name in the blob's directory first.
            if std::fs::rename(&file, &target).is_err() {
                let tmp = dir.join(format!(".{hash}.tmp"));
                std::fs::copy(&file, &tmp)?;
                std::fs::File::open(&tmp)?.sync_all()?;
                std::fs::rename(&tmp, &target)?;
                std::fs::remove_file(&file)?;
            }
            sync_dir(dir)
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn read(&self, hash: &str, range: Range<u64>) -> io::Result<ByteStream> {
        check_name(hash)?;
        let mut f = tokio::fs::File::open(self.path(hash)).await?;
        f.seek(io::SeekFrom::Start(range.start)).await?;
        let body = f.take(range.end.saturating_sub(range.start));
        Ok(tokio_util::io::ReaderStream::with_capacity(body, 64 * 1024).boxed())
    }

    async fn list(&self) -> io::Result<Vec<BlobEntry>> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for fan in std::fs::read_dir(&root)? {
                let fan = fan?;
                if !fan.file_type()?.is_dir() {
                    continue;
                }
                for blob in std::fs::read_dir(fan.path())? {
                    let blob = blob?;
                    let hash = blob.file_name().to_string_lossy().to_string();
                    if !engine::files::is_content_hash(&hash) {
                        continue; // a temporary name
                    }
                    let m = blob.metadata()?;
                    out.push(BlobEntry { hash, size: m.len(), stored_at: m.modified()? });
                }
            }
            Ok(out)
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn delete(&self, hash: &str) -> io::Result<()> {
        check_name(hash)?;
        match tokio::fs::remove_file(self.path(hash)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
    }
}

/// Where an S3-compatible store is and how to sign in to it.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// `http(s)://host:port` of the service; AWS itself when absent.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Key prefix inside the bucket.
    pub prefix: String,
}

/// Blobs as objects in an S3-compatible bucket.
#[derive(Debug)]
pub struct S3Blobs {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    bucket: String,
}

/// Parts of a multipart upload (S3's minimum part is 5 MiB).
const S3_PART_BYTES: usize = 8 * 1024 * 1024;

impl S3Blobs {
    pub fn new(c: &S3Config) -> io::Result<S3Blobs> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&c.bucket)
            .with_region(&c.region)
            .with_access_key_id(&c.access_key_id)
            .with_secret_access_key(&c.secret_access_key);
        if let Some(e) = &c.endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        let store = b.build().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(S3Blobs { store: Arc::new(store), prefix: c.prefix.trim_matches('/').to_string(), bucket: c.bucket.clone() })
    }

    fn key(&self, hash: &str) -> object_store::path::Path {
        let name = format!("{}/{hash}", &hash[..2]);
        if self.prefix.is_empty() {
            object_store::path::Path::from(name)
        } else {
            object_store::path::Path::from(format!("{}/{name}", self.prefix))
        }
    }
}

fn s3_error(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, "blob not found"),
        e => io::Error::other(e.to_string()),
    }
}

#[async_trait::async_trait]
impl BlobStore for S3Blobs {
    async fn size(&self, hash: &str) -> io::Result<Option<u64>> {
        check_name(hash)?;
        match self.store.head(&self.key(hash)).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(s3_error(e)),
        }
    }

    /// Writes the object even when it exists (the same bytes under the same key): that
    /// renews its last-modified time, which is what keeps a collection on another server
    /// from taking a blob just stored again.
    async fn put_file(&self, hash: &str, file: &Path) -> io::Result<()> {
        check_name(hash)?;
        let key = self.key(hash);
        let mut f = tokio::fs::File::open(file).await?;
        let len = f.metadata().await?.len();
        if len <= S3_PART_BYTES as u64 {
            let mut buf = Vec::with_capacity(len as usize);
            f.read_to_end(&mut buf).await?;
            self.store.put(&key, PutPayload::from(buf)).await.map_err(s3_error)?;
        } else {
            let upload = self.store.put_multipart(&key).await.map_err(s3_error)?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, S3_PART_BYTES);
            let mut buf = vec![0u8; 1024 * 1024];
            loop {
                let n = f.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                w.wait_for_capacity(2).await.map_err(s3_error)?;
                w.write(&buf[..n]);
            }
            w.finish().await.map_err(s3_error)?;
        }
        tokio::fs::remove_file(file).await
    }

    async fn read(&self, hash: &str, range: Range<u64>) -> io::Result<ByteStream> {
        check_name(hash)?;
        if range.is_empty() {
            return Ok(futures_util::stream::empty().boxed());
        }
        let options = GetOptions { range: Some(GetRange::Bounded(range)), ..Default::default() };
        let got = self.store.get_opts(&self.key(hash), options).await.map_err(s3_error)?;
        Ok(got.into_stream().map_err(s3_error).boxed())
    }

    async fn list(&self) -> io::Result<Vec<BlobEntry>> {
        let prefix = (!self.prefix.is_empty()).then(|| object_store::path::Path::from(self.prefix.as_str()));
        let mut listed = self.store.list(prefix.as_ref());
        let mut out = Vec::new();
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(s3_error)?;
            let Some(hash) = meta.location.filename().filter(|n| engine::files::is_content_hash(n)) else { continue };
            out.push(BlobEntry { hash: hash.to_string(), size: meta.size, stored_at: meta.last_modified.into() });
        }
        Ok(out)
    }

    async fn delete(&self, hash: &str) -> io::Result<()> {
        check_name(hash)?;
        match self.store.delete(&self.key(hash)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(s3_error(e)),
        }
    }

    fn describe(&self) -> String {
        format!("S3 bucket {}", self.bucket)
    }
}

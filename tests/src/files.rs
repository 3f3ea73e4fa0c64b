//! Helpers for files and photos: uploads through the HTTP API, photos made on the spot (with
//! an EXIF orientation, metadata to strip, or crafted to be corrupt or a bomb), and a proxy
//! that cuts an upload's connection once, in the middle of its bytes.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use image::{ImageEncoder, Rgb, RgbImage, codecs::jpeg::JpegEncoder};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::Api;

pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Opens an upload of `bytes` (returns the upload as the server answers it).
pub async fn open_upload(api: &Api, event: &str, collaborator: &str, name: &str, bytes: &[u8]) -> crate::Reply {
    api.post(
        &format!("/v1/events/{event}/uploads"),
        json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "collaborator": collaborator,
            "name": name,
            "size": bytes.len(),
            "sha256": sha256(bytes),
        }),
    )
    .await
}

/// Sends one chunk at `offset`; returns the status, the offset the server answers, the body.
pub async fn chunk(api: &Api, upload: &str, offset: u64, bytes: &[u8]) -> (u16, Option<u64>, Value) {
    let r = api
        .request(reqwest::Method::PATCH, &format!("/v1/uploads/{upload}"))
        .header("upload-offset", offset)
        .header(reqwest::header::CONTENT_TYPE, "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let held = r.headers().get("upload-offset").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let body = r.bytes().await.expect("body");
    (status, held, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The offset the server holds of an upload (`HEAD`).
pub async fn held(api: &Api, upload: &str) -> u64 {
    let r = api.request(reqwest::Method::HEAD, &format!("/v1/uploads/{upload}")).send().await.expect("request");
    assert_eq!(r.status().as_u16(), 200);
    r.headers()["upload-offset"].to_str().unwrap().parse().unwrap()
}

/// Uploads `bytes` whole and adds the file: returns the file record.
pub async fn upload_file(api: &Api, event: &str, collaborator: &str, name: &str, bytes: &[u8]) -> Value {
    let up = open_upload(api, event, collaborator, name, bytes).await.ok();
    let (status, _, _) = chunk(api, up["id"].as_str().unwrap(), 0, bytes).await;
    assert_eq!(status, 200, "the upload finished");
    api.post(
        &format!("/v1/events/{event}/files"),
        json!({ "id": up["file"], "collaborator": collaborator, "name": name }),
    )
    .await
    .ok()
}

/// GET with optional headers: status, headers, bytes.
pub async fn fetch(api: &Api, path: &str, range: Option<&str>) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = api.request(reqwest::Method::GET, path);
    if let Some(r) = range {
        req = req.header(reqwest::header::RANGE, r);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.expect("body").to_vec())
}

/// A `w`×`h` JPEG, red on the left half and blue on the right, with `noise` (0–255) of
/// deterministic grain (grain makes it compress poorly: a bigger file).
pub fn jpeg(w: u32, h: u32, noise: u8) -> Vec<u8> {
    let mut seed = 0x2545_f491_u32;
    let img = RgbImage::from_fn(w, h, |x, _| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = if noise == 0 { 0 } else { (seed % u32::from(noise)) as u8 };
        if x < w / 2 { Rgb([220u8.saturating_sub(n), n, n]) } else { Rgb([n, n, 220u8.saturating_sub(n)]) }
    });
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// `jpeg` with an EXIF block (orientation `o`, a GPS sub-IFD pointer, a camera make), an XMP
/// packet naming a location, and a comment: what a phone writes.
pub fn jpeg_with_metadata(w: u32, h: u32, o: u16) -> Vec<u8> {
    let plain = jpeg(w, h, 0);
    // TIFF, big-endian: IFD0 with Make (ASCII, at offset 50), Orientation, GPS IFD pointer.
    let mut t: Vec<u8> = b"MM\0\x2a\0\0\0\x08".to_vec();
    t.extend_from_slice(&3u16.to_be_bytes());
    t.extend_from_slice(&[0x01, 0x0F, 0, 2, 0, 0, 0, 8, 0, 0, 0, 50]); // Make
    t.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]);
    t.extend_from_slice(&o.to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&[0x88, 0x25, 0, 4, 0, 0, 0, 1, 0, 0, 0, 58]); // GPS IFD at 58
    t.extend_from_slice(&0u32.to_be_bytes());
    t.resize(50, 0);
    t.extend_from_slice(b"PhoneCo\0");
    // GPS IFD: GPSLatitudeRef 'N'.
    t.extend_from_slice(&1u16.to_be_bytes());
    t.extend_from_slice(&[0x00, 0x01, 0, 2, 0, 0, 0, 2, b'N', 0, 0, 0]);
    t.extend_from_slice(&0u32.to_be_bytes());
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend_from_slice(&t);
    let xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><exif:GPSLatitude>52,31.0N</exif:GPSLatitude></x:xmpmeta>";
    let comment = b"shot at the loading dock";
    let segment = |marker: u8, body: &[u8]| {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(body);
        s
    };
    let mut out = plain[..2].to_vec();
    out.extend(segment(0xE1, &exif));
    out.extend(segment(0xE1, xmp));
    out.extend(segment(0xFE, comment));
    out.extend_from_slice(&plain[2..]);
    out
}

/// A `w`×`h` PNG (red left, blue right) carrying a text chunk that names a location.
pub fn png_with_text(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, _| if x < w / 2 { Rgb([220, 0, 0]) } else { Rgb([0, 0, 220]) });
    let mut plain = Vec::new();
    image::codecs::png::PngEncoder::new(&mut plain)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    // After the signature and IHDR (8 + 25 bytes), a tEXt chunk.
    [&plain[..33], &png_chunk(b"tEXt", b"Comment\0GPSLatitude 52.3 N"), &plain[33..]].concat()
}

/// One PNG chunk: length, kind, data, CRC.
fn png_chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// A `w`×`h` lossless WebP.
pub fn webp(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
    }
    !c
}

/// An ISO box: size, type, content.
fn bx(kind: &[u8; 4], content: &[u8]) -> Vec<u8> {
    [&((content.len() + 8) as u32).to_be_bytes()[..], kind, content].concat()
}

fn full(kind: &[u8; 4], version: u8, content: &[u8]) -> Vec<u8> {
    bx(kind, &[&[version, 0, 0, 0][..], content].concat())
}

fn infe(id: u16, kind: &[u8; 4], extra: &[u8]) -> Vec<u8> {
    full(b"infe", 2, &[&id.to_be_bytes()[..], &[0, 0], kind, b"\0", extra].concat())
}

/// A HEIC's structure (no real HEVC): an image item and an EXIF item in `mdat`, and an XMP
/// item in `idat` (`iloc` construction method 1).
pub fn heic(exif: &[u8], xmp: &[u8]) -> Vec<u8> {
    let ftyp = bx(b"ftyp", b"heic\0\0\0\0mif1heic");
    let pixels = b"not really hevc".to_vec();
    let build = |mdat_at: u32| {
        let iinf = full(
            b"iinf",
            0,
            &[
                &3u16.to_be_bytes()[..],
                &infe(1, b"hvc1", b""),
                &infe(2, b"Exif", b""),
                &infe(3, b"mime", b"application/rdf+xml\0"),
            ]
            .concat(),
        );
        // v1: offset 4 bytes, length 4 bytes, base 0, index 0.
        let mut iloc = vec![1, 0, 0, 0, 0x44, 0x00];
        iloc.extend_from_slice(&3u16.to_be_bytes());
        for (id, method, off, len) in [
            (1u16, 0u16, mdat_at, pixels.len() as u32),
            (2, 0, mdat_at + pixels.len() as u32, exif.len() as u32),
            (3, 1, 0, xmp.len() as u32),
        ] {
            iloc.extend_from_slice(&id.to_be_bytes());
            iloc.extend_from_slice(&method.to_be_bytes());
            iloc.extend_from_slice(&0u16.to_be_bytes()); // data reference
            iloc.extend_from_slice(&1u16.to_be_bytes()); // one extent
            iloc.extend_from_slice(&off.to_be_bytes());
            iloc.extend_from_slice(&len.to_be_bytes());
        }
        let meta = full(b"meta", 0, &[bx(b"hdlr", &[0; 24]), iinf, bx(b"iloc", &iloc), bx(b"idat", xmp)].concat());
        [ftyp.clone(), meta].concat()
    };
    let head = build(0);
    let head = build(head.len() as u32 + 8);
    [head, bx(b"mdat", &[&pixels[..], exif].concat())].concat()
}

/// A valid PNG header announcing `side`×`side` pixels with almost no data: a decompression bomb.
pub fn png_bomb(side: u32) -> Vec<u8> {
    let mut ihdr = side.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    [
        &b"\x89PNG\r\n\x1a\n"[..],
        &png_chunk(b"IHDR", &ihdr),
        &png_chunk(b"IDAT", &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]),
        &png_chunk(b"IEND", &[]),
    ]
    .concat()
}

/// A TCP proxy to `upstream` that, once armed, cuts the first connection carrying an upload
/// chunk (`PATCH /v1/uploads/`) after `after` bytes of it have passed; every other byte
/// passes untouched.
pub struct CutProxy {
    pub base: String,
    pub cuts: Arc<AtomicUsize>,
    armed: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const MARK: &[u8] = b"PATCH /v1/uploads/";

impl CutProxy {
    pub async fn start(upstream: SocketAddr, after: usize) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let cuts = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(true));
        let (c, a) = (cuts.clone(), armed.clone());
        let task = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let (c, a) = (c.clone(), a.clone());
                tokio::spawn(async move {
                    let Ok(up) = TcpStream::connect(upstream).await else { return };
                    let _ = down.set_nodelay(true);
                    let _ = up.set_nodelay(true);
                    let (mut dr, mut dw) = down.into_split();
                    let (mut ur, mut uw) = up.into_split();
                    let back = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut ur, &mut dw).await;
                    });
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut window: Vec<u8> = Vec::new();
                    let mut left: Option<usize> = None;
                    loop {
                        let n = match dr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let mut send = &buf[..n];
                        if left.is_none() && a.load(Ordering::SeqCst) {
                            window.extend_from_slice(send);
                            if let Some(at) = window.windows(MARK.len()).position(|w| w == MARK)
                                && a.swap(false, Ordering::SeqCst)
                            {
                                // Counted from the read that carried the mark.
                                let _ = at;
                                left = Some(after.max(1));
                            }
                            let keep = window.len().saturating_sub(MARK.len());
                            window.drain(..keep);
                        }
                        if let Some(l) = left.as_mut() {
                            if send.len() >= *l {
                                send = &send[..*l];
                                let _ = uw.write_all(send).await;
                                let _ = uw.flush().await;
                                c.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            *l -= send.len();
                        }
                        if uw.write_all(send).await.is_err() {
                            break;
                        }
                    }
                    back.abort();
                });
            }
        });
        CutProxy { base, cuts, armed, task }
    }

    /// Arms the proxy again: the next upload chunk is cut too.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

//! Files and photos against the real server in a child process, over loopback.
//!
//! 1. Upload throughput: one file of SIZE MiB in 8 MiB chunks (open, PATCHes, the hash check
//!    at the end, into the blob store), against a plain copy of the same bytes on the same
//!    disk (read, write, fsync). Three runs each; medians.
//! 2. Thumbnails: a 12-megapixel (4032 × 3024) JPEG made into its 1024 and 256 px thumbnails
//!    (decode, orientation, scaling, encoding), on one thread; PHOTOS photos, median per photo.
//! 3. CONCURRENT uploads at once of EACH MiB each in 1 MiB chunks: the server's resident
//!    memory sampled every 20 ms (before, peak, after) and the total throughput.
//!
//! Run: `cargo bench -p benches --bench files -- [SIZE_MIB] [PHOTOS] [CONCURRENT] [EACH_MIB]`
//! (defaults 100 10 50 8). All traffic stays on 127.0.0.1; every loop is bounded.

use std::{
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use image::{ImageEncoder, Rgb, RgbImage, codecs::jpeg::JpegEncoder};
use serde_json::json;
use server::images::{ImageLimits, Kind, thumbnails};
use tests::{Api, TestServer, bench, files::sha256};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MIB: usize = 1024 * 1024;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Uploads `bytes` as one file in chunks of `chunk` bytes; returns the file id.
async fn upload(api: &Api, event: &str, name: &str, bytes: &[u8], chunk: usize) -> String {
    let up = api
        .post(
            &format!("/v1/events/{event}/uploads"),
            json!({ "name": name, "size": bytes.len(), "sha256": sha256(bytes) }),
        )
        .await
        .ok();
    let id = up["id"].as_str().unwrap().to_string();
    let mut offset = 0;
    loop {
        let end = (offset + chunk).min(bytes.len());
        let r = api
            .request(reqwest::Method::PATCH, &format!("/v1/uploads/{id}"))
            .header("upload-offset", offset)
            .header(reqwest::header::CONTENT_TYPE, "application/offset+octet-stream")
            .body(bytes[offset..end].to_vec())
            .send()
            .await
            .expect("chunk");
        match r.status().as_u16() {
            200 => break,
            204 => offset = end,
            s => panic!("chunk answered {s}"),
        }
    }
    api.post(&format!("/v1/events/{event}/files"), json!({ "id": up["file"], "name": name })).await.ok()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A 12-megapixel photo: gradients and grain, as a phone's JPEG at quality 90.
fn photo_12mp() -> Vec<u8> {
    let (w, h) = (4032u32, 3024u32);
    let grain = noise((w * h) as usize, 7);
    let img = RgbImage::from_fn(w, h, |x, y| {
        let g = grain[(y * w + x) as usize] % 24;
        Rgb([((x * 255 / w) as u8).saturating_add(g), ((y * 255 / h) as u8).saturating_add(g), 128u8.saturating_add(g)])
    });
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

#[tokio::main]
async fn main() {
    if bench::serve_if_child(|_| {}).await {
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let size_mib: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100);
    let photos: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10).max(1);
    let concurrent: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(50).max(1);
    let each_mib: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(8).max(1);
    println!("files: {size_mib} MiB upload, {photos} photos, {concurrent} uploads of {each_mib} MiB at once");

    let (mut child, base) = bench::spawn_server("surrealkv");
    let pid = child.id().to_string();
    let srv = TestServer::attach(&base);
    let owner = srv.sign_up("Owner").await;
    let org = owner.personal_org().await;
    let license = owner.ready_org(&org, 2).await;
    let (event, _) = owner.create_event(&org, &license, "Files").await;
    let api = owner.api.clone();

    // 1. One big upload against a plain copy.
    let bytes = noise(size_mib * MIB, 11);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.bin");
    std::fs::write(&source, &bytes).unwrap();
    let (mut up_rates, mut copy_rates) = (Vec::new(), Vec::new());
    for run in 0..3 {
        let t = Instant::now();
        upload(&api, &event, &format!("big-{run}.bin"), &noise(size_mib * MIB, 100 + run), 8 * MIB).await;
        up_rates.push(size_mib as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let data = std::fs::read(&source).unwrap();
        let target = dir.path().join(format!("copy-{run}.bin"));
        let mut f = std::fs::File::create(&target).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        copy_rates.push(size_mib as f64 / t.elapsed().as_secs_f64());
        std::fs::remove_file(target).unwrap();
    }
    let (up, copy) = (median(up_rates.clone()), median(copy_rates.clone()));
    println!(
        "upload of {size_mib} MiB (8 MiB chunks): {up:.0} MiB/s median of {up_rates:.0?}; plain copy with fsync {copy:.0} MiB/s of {copy_rates:.0?}; ratio {:.2}",
        up / copy
    );

    // 2. Thumbnails of a 12-megapixel photo.
    let photo = photo_12mp();
    let mut per_photo = Vec::new();
    for _ in 0..photos {
        let t = Instant::now();
        let made = thumbnails(&photo, Kind::Jpeg, &engine::files::THUMBNAIL_SIZES, ImageLimits::default()).unwrap();
        per_photo.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!((made.width, made.thumbnails.len()), (4032, 2));
    }
    let ms = median(per_photo.clone());
    println!(
        "thumbnails of a 12 MP JPEG ({:.1} MiB): {ms:.0} ms per photo (1024 + 256 px) median of {photos}: {:.2} photos/s on one thread",
        photo.len() as f64 / MIB as f64,
        1e3 / ms
    );
    let t = Instant::now();
    upload(&api, &event, "photo.jpg", &photo, 8 * MIB).await;
    println!("the same photo uploaded and processed by the server: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);

    // 3. Many uploads at once, and the server's memory. First the same number of requests at
    //    once that only open an upload (database work, no bytes): what the server holds for
    //    that many requests in flight is its baseline, so the uploads' own cost shows apart.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = bench::status_kib(&pid, "VmRSS:");
    let mut tasks = Vec::new();
    for i in 0..concurrent {
        let (api, event) = (api.clone(), event.clone());
        tasks.push(tokio::spawn(async move {
            let b = noise(1000, i as u64 + 5000);
            let path = format!("/v1/events/{event}/uploads");
            api.post(&path, json!({ "name": format!("open-{i}"), "size": b.len(), "sha256": sha256(&b) })).await.ok();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = bench::status_kib(&pid, "VmRSS:");
    println!(
        "server RSS {} MiB idle, {} MiB after {concurrent} requests at once that open uploads (no bytes)",
        idle / 1024,
        before / 1024
    );
    let peak = Arc::new(AtomicU64::new(before));
    let threads = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, threads, done, pid) = (peak.clone(), threads.clone(), done.clone(), pid.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(bench::status_kib(&pid, "VmRSS:"), Ordering::Relaxed);
                threads.fetch_max(bench::status_kib(&pid, "Threads:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let files: Vec<Vec<u8>> = (0..concurrent).map(|i| noise(each_mib * MIB, 1000 + i as u64)).collect();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (i, f) in files.into_iter().enumerate() {
        let (api, event) = (api.clone(), event.clone());
        tasks.push(tokio::spawn(async move { upload(&api, &event, &format!("many-{i}.bin"), &f, MIB).await }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = bench::status_kib(&pid, "VmRSS:");
    let peak = peak.load(Ordering::Relaxed);
    println!(
        "{concurrent} uploads of {each_mib} MiB at once: {:.1} s, {:.0} MiB/s in all; server RSS {} MiB before, peak {} MiB (+{} MiB), {} MiB after",
        secs,
        (concurrent * each_mib) as f64 / secs,
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before) / 1024,
        after / 1024
    );
    println!("server threads: at most {} while uploading", threads.load(Ordering::Relaxed));
    let used = api.get(&format!("/v1/orgs/{org}/storage")).await.ok();
    println!("storage accounted: {} files, {} MiB", used["files"], used["bytes"].as_u64().unwrap_or(0) >> 20);
    drop(child.stdin.take());
    let _ = child.wait();
}

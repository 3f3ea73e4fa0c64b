//! Files and photos: resumable uploads, downloads checked like records, thumbnails, and a
//! phone that takes a photo offline.

use std::{net::SocketAddr, time::Duration};

use engine::{
    ListFilter,
    device::{
        Replica,
        files::{Attach, Download, FilesConfig, Variant},
    },
};
use image::{GenericImageView, ImageDecoder};
use mobile_bridge::Link;
use serde_json::json;
use tests::{
    TestServer, WAIT_MAX,
    files::{CutProxy, chunk, fetch, heic, held, jpeg, jpeg_with_metadata, open_upload, png_bomb, sha256, upload_file},
    stage,
};

async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let deadline = tokio::time::Instant::now() + WAIT_MAX;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Bytes that look like nothing in particular (no image).
fn noise(n: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 7;
            x ^= x >> 9;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn an_upload_cut_mid_chunk_resumes_and_the_file_appears_only_when_whole() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let bytes = noise(300_017);
    let up = open_upload(&s.vic.api, &s.event, &s.audio, "rider.bin", &bytes).await;
    assert_eq!(up.status, 201, "{}", up.body);
    let up = up.body;
    let id = up["id"].as_str().unwrap();
    assert_eq!((up["offset"].as_u64(), up["status"].as_str()), (Some(0), Some("open")));

    // A first chunk, at an arbitrary length.
    let (status, at, _) = chunk(&s.vic.api, id, 0, &bytes[..100_001]).await;
    assert_eq!((status, at), (204, Some(100_001)));

    // The next is cut in the middle of its body (the client's connection dies).
    let cut_at = 100_001 + 70_003;
    let part = bytes[100_001..cut_at].to_vec();
    let body = futures_util::stream::iter(vec![
        Ok::<_, std::io::Error>(bytes::Bytes::from(part)),
        Err(std::io::Error::other("the network went away")),
    ]);
    let sent = s
        .vic
        .api
        .request(reqwest::Method::PATCH, &format!("/v1/uploads/{id}"))
        .header("upload-offset", 100_001u64)
        .header(reqwest::header::CONTENT_TYPE, "application/offset+octet-stream")
        .header(reqwest::header::CONTENT_LENGTH, (bytes.len() - 100_001) as u64)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await;
    assert!(sent.is_err(), "the cut request fails on the client");
    // The server keeps what reached it.
    // The server keeps what it wrote of the cut chunk (all, part or none of it, depending on
    // when it noticed the cut): the offset it answers is where the client resumes.
    let resume = held(&s.vic.api, id).await;
    assert!((100_001..=cut_at as u64).contains(&resume), "held {resume} of {cut_at}");

    // Not finished: no file yet, for anyone.
    let file_id = up["file"].as_str().unwrap();
    s.vic
        .api
        .post(&format!("/v1/events/{}/files", s.event), json!({ "id": file_id, "name": "rider.bin" }))
        .await
        .err(422, "upload_incomplete");
    assert_eq!(s.pm.api.get(&format!("/v1/events/{}/files", s.event)).await.ok(), json!([]));

    // A chunk at the wrong offset is told where to resume.
    let (status, at, body) = chunk(&s.vic.api, id, 5, &bytes[5..10]).await;
    assert_eq!((status, at, body["code"].as_str()), (409, Some(resume), Some("offset_mismatch")));
    // Someone else cannot see or write the upload.
    let (status, _, _) = chunk(&s.cara.api, id, resume, &bytes[resume as usize..]).await;
    assert_eq!(status, 404);

    let (status, at, done) = chunk(&s.vic.api, id, resume, &bytes[resume as usize..]).await;
    assert_eq!((status, at), (200, Some(bytes.len() as u64)), "{done}");
    assert_eq!(done["status"], "complete");
    let f = s
        .vic
        .api
        .post(&format!("/v1/events/{}/files", s.event), json!({ "id": file_id, "name": "rider.bin" }))
        .await
        .ok();
    assert_eq!(
        (f["size"].as_u64(), f["content_hash"].as_str()),
        (Some(bytes.len() as u64), Some(sha256(&bytes).as_str()))
    );
    assert!(f.get("thumbnails").is_none(), "not an image: {f}");

    // The seat holder downloads it whole, and in ranges.
    let path = format!("/v1/events/{}/files/{file_id}/content", s.event);
    let (status, h, got) = fetch(&s.pm.api, &path, None).await;
    assert_eq!(status, 200);
    assert!(got == bytes, "the downloaded bytes are the uploaded ones");
    assert_eq!(h["accept-ranges"], "bytes");
    assert!(h["content-disposition"].to_str().unwrap().starts_with("attachment"), "not shown inline");
    let (status, h, got) = fetch(&s.pm.api, &path, Some("bytes=1000-1999")).await;
    assert_eq!((status, got.as_slice()), (206, &bytes[1000..2000]));
    assert_eq!(h["content-range"], format!("bytes 1000-1999/{}", bytes.len()).as_str());
    let (status, _, got) = fetch(&s.pm.api, &path, Some("bytes=-17")).await;
    assert_eq!((status, got.as_slice()), (206, &bytes[bytes.len() - 17..]));
    let (status, h, _) = fetch(&s.pm.api, &path, Some("bytes=400000-")).await;
    assert_eq!(status, 416);
    assert_eq!(h["content-range"], format!("bytes */{}", bytes.len()).as_str());

    // Another collaborator's member gets "not found", exactly like a record they cannot see;
    // so does a stranger, and an anonymous caller is asked to sign in.
    assert_eq!(fetch(&s.cara.api, &path, None).await.0, 404);
    let stranger = srv.sign_up("Stranger").await;
    assert_eq!(fetch(&stranger.api, &path, None).await.0, 404);
    assert_eq!(fetch(&srv.anonymous(), &path, None).await.0, 401);

    // Opening the same file id again answers the finished upload; a file id in use is refused.
    let again = s
        .vic
        .api
        .post(
            &format!("/v1/events/{}/uploads", s.event),
            json!({ "id": file_id, "collaborator": s.audio, "name": "rider.bin", "size": bytes.len(), "sha256": sha256(&bytes) }),
        )
        .await
        .ok();
    assert_eq!((again["id"].as_str(), again["status"].as_str()), (Some(id), Some("complete")));

    // The same bytes in another file are stored once.
    let twin = upload_file(&s.vic.api, &s.event, &s.audio, "copy.bin", &bytes).await;
    assert_ne!(twin["id"], f["id"]);
    let blob = srv.config.data_dir.join("blobs").join(&sha256(&bytes)[..2]);
    assert_eq!(std::fs::read_dir(&blob).unwrap().count(), 1, "one blob for both files");
    // Storage is accounted to the organization.
    let org = s.pm.personal_org().await;
    let used = s.pm.api.get(&format!("/v1/orgs/{org}/storage")).await.ok();
    assert_eq!((used["files"].as_i64(), used["bytes"].as_u64()), (Some(2), Some(2 * bytes.len() as u64)));
    s.cara.api.get(&format!("/v1/orgs/{org}/storage")).await.err(404, "not_found");
}

#[tokio::test]
async fn a_hash_mismatch_keeps_nothing_and_sizes_are_bounded() {
    let srv = TestServer::start_with(|c| {
        c.engine.file_limit_bytes = 64 * 1024;
        c.engine.org_storage_limit_bytes = Some(100 * 1024);
    })
    .await;
    let s = stage(&srv).await;
    let ev = &s.event;
    let bytes = noise(40_000);
    let up = s
        .vic
        .api
        .post(
            &format!("/v1/events/{ev}/uploads"),
            json!({ "collaborator": s.audio, "name": "a.bin", "size": bytes.len(), "sha256": sha256(b"other bytes") }),
        )
        .await
        .ok();
    let id = up["id"].as_str().unwrap();
    let (status, _, body) = chunk(&s.vic.api, id, 0, &bytes).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("hash_mismatch")), "{body}");
    assert_eq!(held(&s.vic.api, id).await, 0, "nothing of it is kept; the upload starts over");
    s.vic
        .api
        .post(&format!("/v1/events/{ev}/files"), json!({ "id": up["file"], "name": "a.bin" }))
        .await
        .err(422, "upload_incomplete");

    // Too large: refused before a byte is sent, naming the limit.
    let big = s
        .vic
        .api
        .post(
            &format!("/v1/events/{ev}/uploads"),
            json!({ "collaborator": s.audio, "name": "big.mov", "size": 65 * 1024, "sha256": "a".repeat(64) }),
        )
        .await
        .err(422, "file_too_large");
    assert!(big["message"].as_str().unwrap().contains("65536"), "{big}");
    // More bytes than announced: the surplus is not kept.
    let small = open_upload(&s.vic.api, ev, &s.audio, "s.bin", &bytes[..1000]).await.ok();
    let (status, at, body) = chunk(&s.vic.api, small["id"].as_str().unwrap(), 0, &bytes[..1500]).await;
    assert_eq!((status, at, body["code"].as_str()), (413, Some(1000), Some("upload_too_long")));
    // A chunk without its offset, or as JSON.
    let r = s
        .vic
        .api
        .request(reqwest::Method::PATCH, &format!("/v1/uploads/{}", small["id"].as_str().unwrap()))
        .header(reqwest::header::CONTENT_TYPE, "application/offset+octet-stream")
        .body(vec![1, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = s
        .vic
        .api
        .raw(
            reqwest::Method::PATCH,
            &format!("/v1/uploads/{}", small["id"].as_str().unwrap()),
            "application/json",
            b"{}".to_vec(),
        )
        .await;
    r.err(415, "unsupported_media_type");
    // Bad metadata, before any byte.
    s.vic
        .api
        .post(&format!("/v1/events/{ev}/uploads"), json!({ "name": "../x", "size": 1, "sha256": "a".repeat(64) }))
        .await
        .err(422, "invalid_input");
    s.vic
        .api
        .post(&format!("/v1/events/{ev}/uploads"), json!({ "name": "x", "size": 1, "sha256": "xyz" }))
        .await
        .err(422, "invalid_input");
    // A file record needs an upload: naming a hash is not enough.
    s.cara
        .api
        .post(
            &format!("/v1/events/{ev}/files"),
            json!({ "id": up["file"], "name": "a.bin", "content_hash": sha256(&bytes) }),
        )
        .await
        .err(422, "upload_missing");
    // A folder one may not write.
    s.cara
        .api
        .post(
            &format!("/v1/events/{ev}/uploads"),
            json!({ "collaborator": s.audio, "name": "x", "size": 1, "sha256": "a".repeat(64) }),
        )
        .await
        .err(404, "not_found");

    // The organization's storage limit: 100 KiB. The two uploads above are still open and
    // hold their 41,000 bytes; one 40,000-byte file fits beside them, a second does not.
    upload_file(&s.vic.api, ev, &s.audio, "one.bin", &noise(40_001)).await;
    let full = open_upload(&s.vic.api, ev, &s.audio, "two.bin", &noise(40_002)).await.err(422, "storage_full");
    assert!(full["message"].as_str().unwrap().contains("81001 bytes (uploads under way included)"), "{full}");
}

#[tokio::test]
async fn photos_get_upright_thumbnails_and_others_get_them_without_metadata() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    // Stored 64 × 32 (red left, blue right) with orientation 6: shown rotated 90° clockwise,
    // so upright it is 32 × 64 with red on top.
    let photo = jpeg_with_metadata(64, 32, 6);
    assert!(photo.windows(11).any(|w| w == b"GPSLatitude"));
    let f = upload_file(&s.vic.api, &s.event, &s.audio, "dock.jpg", &photo).await;
    assert_eq!((f["width"].as_i64(), f["height"].as_i64()), (Some(32), Some(64)), "{f}");
    assert_eq!(f["media_type"], "image/jpeg", "recognized from the upload's bytes? {f}");
    let id = f["id"].as_str().unwrap();
    for size in ["256", "1024"] {
        let (status, h, thumb) =
            fetch(&s.pm.api, &format!("/v1/events/{}/files/{id}/thumbnails/{size}", s.event), None).await;
        assert_eq!((status, h["content-type"].to_str().unwrap()), (200, "image/jpeg"));
        assert!(
            !thumb.windows(4).any(|w| w == b"Exif") && !thumb.windows(11).any(|w| w == b"GPSLatitude"),
            "no metadata"
        );
        let img = image::load_from_memory(&thumb).unwrap();
        assert_eq!(img.dimensions(), (32, 64), "upright");
        let (top, bottom) = (img.get_pixel(16, 4), img.get_pixel(16, 60));
        assert!(top[0] > 150 && top[2] < 100, "red on top: {top:?}");
        assert!(bottom[2] > 150 && bottom[0] < 100, "blue below: {bottom:?}");
    }
    // What others download has no location, camera or comment, and keeps its orientation.
    let (status, h, served) = fetch(&s.pm.api, &format!("/v1/events/{}/files/{id}/content", s.event), None).await;
    assert_eq!((status, h["content-type"].to_str().unwrap()), (200, "image/jpeg"));
    for secret in [&b"GPSLatitude"[..], b"PhoneCo", b"loading dock"] {
        assert!(!served.windows(secret.len()).any(|w| w == secret), "{} was served", String::from_utf8_lossy(secret));
    }
    let mut decoder =
        image::ImageReader::new(std::io::Cursor::new(&served)).with_guessed_format().unwrap().into_decoder().unwrap();
    assert_eq!(decoder.orientation().unwrap(), image::metadata::Orientation::Rotate90);
    assert_eq!(f["content_hash"].as_str(), Some(sha256(&photo).as_str()), "the record names what was uploaded");
    assert_eq!(f["served_hash"].as_str(), Some(sha256(&served).as_str()));
    // The event team may let others have the photo as taken, location and all.
    s.pm.api.patch(&format!("/v1/events/{}", s.event), json!({ "keep_photo_location": true })).await.ok();
    let (_, _, original) = fetch(&s.pm.api, &format!("/v1/events/{}/files/{id}/content", s.event), None).await;
    assert!(original == photo, "the original, metadata and all");
    s.vic
        .api
        .patch(&format!("/v1/events/{}", s.event), json!({ "keep_photo_location": false }))
        .await
        .err(403, "not_permitted");
    s.pm.api.patch(&format!("/v1/events/{}", s.event), json!({ "keep_photo_location": false })).await.ok();
    // PNG and WebP are previewed too; a PNG's text chunks do not reach others.
    let png = tests::files::png_with_text(600, 300);
    let f = upload_file(&s.vic.api, &s.event, &s.audio, "plan.png", &png).await;
    assert_eq!((f["media_type"].as_str(), f["width"].as_i64()), (Some("image/png"), Some(600)), "{f}");
    let (_, _, png_served) =
        fetch(&s.pm.api, &format!("/v1/events/{}/files/{}/content", s.event, f["id"].as_str().unwrap()), None).await;
    assert!(!png_served.windows(11).any(|w| w == b"GPSLatitude") && png_served.len() < png.len());
    assert_eq!(image::load_from_memory(&png_served).unwrap().dimensions(), (600, 300), "the same pixels");
    let path = format!("/v1/events/{}/files/{}/thumbnails/256", s.event, f["id"].as_str().unwrap());
    assert_eq!(image::load_from_memory(&fetch(&s.pm.api, &path, None).await.2).unwrap().dimensions(), (256, 128));
    let f = upload_file(&s.vic.api, &s.event, &s.audio, "stage.webp", &tests::files::webp(400, 400)).await;
    assert_eq!((f["media_type"].as_str(), f["thumbnails"]["1024"].is_string()), (Some("image/webp"), true), "{f}");
    // Links for a browser (no bearer token): short-lived, this file only, access checked on use.
    let links = s.vic.api.post(&format!("/v1/events/{}/files/{id}/links", s.event), json!({})).await.ok();
    let anon = srv.anonymous();
    let (status, _, got) = fetch(&anon, links["content"].as_str().unwrap(), None).await;
    assert_eq!(status, 200, "{links}");
    assert!(got == served, "the content link serves what others get");
    let (status, _, got) = fetch(&anon, links["thumbnails"]["256"].as_str().unwrap(), Some("bytes=0-1")).await;
    assert_eq!((status, got.as_slice()), (206, &[0xFF, 0xD8][..]));
    let token = links["content"].as_str().unwrap().trim_start_matches("/v1/links/").to_string();
    assert_eq!(fetch(&anon, &format!("/v1/links/{token}x"), None).await.0, 404, "a tampered link");
    assert_eq!(
        fetch(&s.vic.api.with_token(&token), &format!("/v1/events/{}/files", s.event), None).await.0,
        401,
        "a link is no sign-in"
    );
    let claims = json!({ "sub": s.vic.id, "iss": "backops-file-link", "exp": 1_000_000, "event": s.event, "file": id, "variant": "content" });
    let old = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(tests::TEST_SECRET.as_bytes()),
    )
    .unwrap();
    let (status, _, body) = fetch(&anon, &format!("/v1/links/{old}"), None).await;
    assert_eq!(
        (status, serde_json::from_slice::<serde_json::Value>(&body).unwrap()["code"].as_str()),
        (403, Some("link_expired"))
    );
    assert_eq!(fetch(&s.cara.api, &format!("/v1/events/{}/files/{id}/links", s.event), None).await.0, 405);
    s.cara.api.post(&format!("/v1/events/{}/files/{id}/links", s.event), json!({})).await.err(404, "not_found");
    // Vic leaves Audio: the link Vic holds stops working at once.
    s.pm.api.delete(&format!("/v1/events/{}/collaborators/{}/members/{}", s.event, s.audio, s.vic.id)).await.ok();
    assert_eq!(fetch(&anon, links["content"].as_str().unwrap(), None).await.0, 404);
    // A size that was not made.
    assert_eq!(fetch(&s.pm.api, &format!("/v1/events/{}/files/{id}/thumbnails/512", s.event), None).await.0, 404);
    assert_eq!(fetch(&s.cara.api, &format!("/v1/events/{}/files/{id}/thumbnails/256", s.event), None).await.0, 404);
}

#[tokio::test]
async fn corrupt_bomb_and_heic_images_are_kept_with_a_note_and_their_metadata_never_leaks() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let mut corrupt = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    corrupt.extend(noise(5_000));
    let mut truncated = jpeg(400, 300, 40);
    truncated.truncate(truncated.len() / 3);
    for (name, bytes, says) in [
        ("corrupt.jpg", corrupt, "corrupt"),
        ("bomb.png", png_bomb(60_000), "larger"),
        ("big.png", png_bomb(12_000), "megapixels"),
    ] {
        let f = upload_file(&s.vic.api, &s.event, &s.audio, name, &bytes).await;
        assert!(f.get("thumbnails").is_none(), "{name}: {f}");
        let note = f["preview_note"].as_str().unwrap_or_else(|| panic!("{name} has a note: {f}"));
        assert!(note.contains(says), "{name}: {note}");
        // Its bytes are kept all the same; the PNGs (no metadata) reach others as they are,
        // the JPEG whose segments do not parse stays its uploader's (it fails closed).
        let path = format!("/v1/events/{}/files/{}/content", s.event, f["id"].as_str().unwrap());
        let (status, _, got) = fetch(&s.vic.api, &path, None).await;
        assert_eq!((status, got == bytes), (200, true), "{name}");
        let withheld = f["original_withheld"].as_bool() == Some(true);
        assert_eq!(
            (withheld, fetch(&s.pm.api, &path, None).await.0),
            if name == "corrupt.jpg" { (true, 403) } else { (false, 200) },
            "{name}"
        );
    }
    // A HEIC: its location and camera items are zeroed in what others download, in place.
    let photo = heic(b"\0\0\0\x06Exif\0\0MM\0* GPS 51.5N 0.12W PhoneCo", b"<exif:GPSLatitude>51.5</exif:GPSLatitude>");
    let has = |b: &[u8], s: &[u8]| b.windows(s.len()).any(|w| w == s);
    let f = upload_file(&s.vic.api, &s.event, &s.audio, "dock.heic", &photo).await;
    assert!(f.get("thumbnails").is_none() && f["preview_note"].as_str().unwrap().contains("HEIC"), "{f}");
    let content = format!("/v1/events/{}/files/{}/content", s.event, f["id"].as_str().unwrap());
    let (status, _, served) = fetch(&s.pm.api, &content, None).await;
    assert_eq!((status, served.len(), f["original_withheld"].as_bool()), (200, photo.len(), None), "{f}");
    assert!(!has(&served, b"GPS") && !has(&served, b"PhoneCo") && has(&served, b"not really hevc"));
    // One whose structure is not understood could still hold a location: it fails closed.
    // Others are refused its original (with the reason); its uploader still gets it.
    let junk = [&b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"[..], b"GPS 51.5N", &noise(2_000)].concat();
    let f = upload_file(&s.vic.api, &s.event, &s.audio, "odd.heic", &junk).await;
    assert_eq!(f["original_withheld"].as_bool(), Some(true), "{f}");
    assert!(f["preview_note"].as_str().unwrap().contains("only its uploader"), "{f}");
    let content = format!("/v1/events/{}/files/{}/content", s.event, f["id"].as_str().unwrap());
    let (status, _, body) = fetch(&s.pm.api, &content, None).await;
    assert_eq!(status, 403);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["code"], "original_withheld");
    let (status, _, own) = fetch(&s.vic.api, &content, None).await;
    assert_eq!((status, own == junk), (200, true));
    // Nor through a link.
    let links = s.pm.api.post(&format!("{}/links", content.trim_end_matches("/content")), json!({})).await.ok();
    let anon = srv.anonymous();
    assert_eq!(fetch(&anon, links["content"].as_str().unwrap(), None).await.0, 403);
    // The event team may keep locations: then everyone gets the original.
    s.pm.api.patch(&format!("/v1/events/{}", s.event), json!({ "keep_photo_location": true })).await.ok();
    let (status, _, kept) = fetch(&s.pm.api, &content, None).await;
    assert_eq!((status, kept == junk), (200, true));
    // A truncated JPEG: thumbnails of what decodes, or a note; never a stuck server.
    let f = upload_file(&s.vic.api, &s.event, &s.audio, "cut.jpg", &truncated).await;
    assert!(f.get("thumbnails").is_some() || f.get("preview_note").is_some(), "{f}");
    // And the next photo is previewed as usual.
    let f = upload_file(&s.vic.api, &s.event, &s.audio, "ok.jpg", &jpeg(300, 200, 0)).await;
    assert_eq!((f["width"].as_i64(), f["thumbnails"]["256"].is_string()), (Some(300), true), "{f}");
}

/// What phones put after a JPEG's end of image — the MPF's second image (with its own EXIF
/// and location), a motion photo's video (Google's appended MP4; Samsung's marked MP4 and
/// index) — never reaches others: the copy ends at the photo's end of image. A trailer of an
/// unknown kind withholds the original; a GIF loses its comments and application extensions.
#[tokio::test]
async fn what_follows_a_photo_and_a_gifs_extensions_never_reach_others() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let has = |b: &[u8], s: &[u8]| b.windows(s.len()).any(|w| w == s);
    let photo = jpeg_with_metadata(64, 32, 1);
    let second = jpeg_with_metadata(16, 8, 1);
    let mp4 = [&b"\0\0\0\x10ftypmp42\0\0\0\0"[..], b"\0\0\0\x1dmdatGPS 51.5007N 0.1246W!"].concat();
    let sef = b"SEFH\x01\0\0\0 MotionPhoto_Data GPS".to_vec();
    let samsung = [&photo[..], b"MotionPhoto_Data", &mp4, &sef, &(sef.len() as u32).to_le_bytes(), b"SEFT"].concat();
    let served_of = async |name: &str, bytes: &[u8]| {
        let f = upload_file(&s.vic.api, &s.event, &s.audio, name, bytes).await;
        let path = format!("/v1/events/{}/files/{}/content", s.event, f["id"].as_str().unwrap());
        let (status, _, served) = fetch(&s.pm.api, &path, None).await;
        (f, status, served)
    };
    let mut copies = Vec::new();
    for (name, bytes) in [
        ("mpf.jpg", [&photo[..], &second].concat()),
        ("google-motion.jpg", [&photo[..], &mp4].concat()),
        ("samsung-motion.jpg", samsung),
    ] {
        assert!(has(&bytes, b"GPS"));
        let (f, status, served) = served_of(name, &bytes).await;
        assert_eq!((status, f["original_withheld"].as_bool()), (200, None), "{name}: {f}");
        assert!(!has(&served, b"GPS") && !has(&served, b"ftyp") && !has(&served, b"PhoneCo"), "{name}");
        assert!(served.ends_with(&[0xFF, 0xD9]) && served.len() < photo.len(), "{name}: cut at the end of image");
        assert_eq!(image::load_from_memory(&served).unwrap().dimensions(), (64, 32), "{name}");
        copies.push(served);
    }
    assert!(copies.windows(2).all(|w| w[0] == w[1]), "each is the same photo, alone");
    // Bytes after the end of image that no phone documents: fail closed.
    let odd = [&photo[..], b"vendor-blob lat=51.5007 lon=-0.1246"].concat();
    let (f, status, _) = served_of("odd-trailer.jpg", &odd).await;
    assert_eq!((status, f["original_withheld"].as_bool()), (403, Some(true)), "{f}");
    assert!(f["thumbnails"]["256"].is_string(), "the pixels are still previewed: {f}");
    // A GIF: its comment and XMP go; the animation's loop stays.
    let mut gif = b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff".to_vec();
    gif.extend_from_slice(b"\x21\xff\x0bNETSCAPE2.0\x03\x01\0\0\0");
    gif.extend_from_slice(b"\x21\xfe\x0eGPS 51.5N here\0");
    gif.extend_from_slice(b"\x21\xff\x0bXMP DataXMP\x0b<gps>51</x>\0");
    gif.extend_from_slice(b"\x2c\0\0\0\0\x01\0\x01\0\0\x02\x02\x44\x01\0\x3b");
    let (f, status, served) = served_of("wave.gif", &gif).await;
    assert_eq!((status, f["original_withheld"].as_bool()), (200, None), "{f}");
    assert!(!has(&served, b"GPS") && !has(&served, b"XMP") && has(&served, b"NETSCAPE2.0"));
    assert_eq!(f["served_hash"].as_str(), Some(tests::files::sha256(&served).as_str()));
}

fn proxy_sync_url(proxy: &CutProxy) -> String {
    format!("{}/v1/sync", proxy.base.replacen("http://", "ws://", 1))
}

fn listed(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.len() == 64)
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_taken_offline_uploads_through_a_cut_and_a_removal_purges_its_bytes() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let upstream: SocketAddr = srv.base.trim_start_matches("http://").parse().unwrap();
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let files = |d: &tempfile::TempDir| Some(FilesConfig { dir: d.path().into(), budget_bytes: 64 << 20 });
    let phone = Replica::open_with_files("mem://", Some("vic-phone"), files(&dirs.0)).await.unwrap();
    let office = Replica::open_with_files("mem://", Some("pm-laptop"), files(&dirs.1)).await.unwrap();
    for r in [&phone, &office] {
        r.subscribe(&s.event).await.unwrap();
    }
    // The phone syncs once, then goes offline.
    let link = Link::start(phone.clone(), &srv.sync_url(), &s.vic.token);
    eventually("the phone synced", async || phone.event(&s.event).await.is_ok()).await;
    link.stop().await;
    let office_link = Link::start(office.clone(), &srv.sync_url(), &s.pm.token);

    // A photo taken offline: kept and shown at once, from the device.
    let shot = tempfile::NamedTempFile::new().unwrap();
    let photo = jpeg(640, 480, 60);
    assert!(photo.len() > 100_000, "big enough to be cut: {}", photo.len());
    std::fs::write(shot.path(), &photo).unwrap();
    let made = phone.attach_file(&s.event, shot.path(), Attach::default()).await.unwrap();
    let id = made.record.id.clone();
    let mine = phone.files(&s.event, ListFilter::default()).await.unwrap();
    assert_eq!((mine.len(), mine[0].media_type.as_deref()), (1, Some("image/jpeg")));
    let local = phone.file_path(&s.event, &id, Variant::Original).expect("held on the phone");
    assert_eq!(std::fs::read(&local).unwrap(), photo);
    assert!(phone.uploads(&s.event).await.iter().all(|u| !u.done && u.total == photo.len() as u64));
    // Others see nothing of it yet.
    assert_eq!(s.pm.api.get(&format!("/v1/events/{}/files", s.event)).await.ok(), json!([]));

    // Back online through a network that drops the upload once, 40 KB into it.
    let proxy = CutProxy::start(upstream, 40_000).await;
    let link = Link::start(phone.clone(), &proxy_sync_url(&proxy), &s.vic.token);
    let path = format!("/v1/events/{}/files", s.event);
    eventually("the photo reaches the server", async || {
        s.pm.api.get(&path).await.ok().as_array().unwrap().iter().any(|f| f["id"] == id.as_str())
    })
    .await;
    assert_eq!(proxy.cuts.load(std::sync::atomic::Ordering::SeqCst), 1, "the upload was cut once and resumed");
    let (_, _, got) = fetch(&s.pm.api, &format!("{path}/{id}/content"), None).await;
    assert!(got == photo, "the seat holder downloads the photo as taken");
    eventually("the phone's write is confirmed", async || phone.status().pending == 0).await;
    assert!(phone.uploads(&s.event).await.iter().all(|u| u.done && u.sent == u.total));
    eventually("the upload leaves the list", async || phone.uploads(&s.event).await.is_empty()).await;

    // The office's device fetches both thumbnails by itself, and the original on demand.
    eventually("thumbnails arrive at the office", async || {
        office.file_path(&s.event, &id, Variant::Thumbnail(256)).is_some()
            && office.file_path(&s.event, &id, Variant::Thumbnail(1024)).is_some()
    })
    .await;
    let thumb = std::fs::read(office.file_path(&s.event, &id, Variant::Thumbnail(256)).unwrap()).unwrap();
    assert_eq!(image::load_from_memory(&thumb).unwrap().dimensions(), (256, 192));
    assert!(office.file_path(&s.event, &id, Variant::Original).is_none(), "originals only on demand");
    // A download cut earlier resumes where it stopped (the first 10,000 bytes are held).
    let d = Download { event: s.event.clone(), file: id.clone(), variant: Variant::Original, sha256: sha256(&photo) };
    std::fs::write(office.download_path(&d).unwrap(), &photo[..10_000]).unwrap();
    assert!(!office.request_original(&s.event, &id).unwrap());
    eventually("the original arrives", async || office.file_path(&s.event, &id, Variant::Original).is_some()).await;
    assert_eq!(listed(dirs.1.path()).len(), 3);

    // Deleted: every device drops its bytes.
    s.pm.api.delete(&format!("{path}/{id}")).await.ok();
    eventually("the bytes are purged", async || listed(dirs.0.path()).is_empty() && listed(dirs.1.path()).is_empty())
        .await;
    assert!(phone.file_path(&s.event, &id, Variant::Original).is_none());

    // Access lost: Vic leaves Audio; what the phone held of Audio's files goes with it.
    let again = upload_file(&s.pm.api, &s.event, &s.audio, "stage.jpg", &jpeg(300, 200, 0)).await;
    let again = again["id"].as_str().unwrap().to_string();
    eventually("the phone fetched the thumbnail", async || {
        phone.file_path(&s.event, &again, Variant::Thumbnail(256)).is_some()
    })
    .await;
    s.pm.api.delete(&format!("/v1/events/{}/collaborators/{}/members/{}", s.event, s.audio, s.vic.id)).await.ok();
    eventually("the phone purged what it may no longer see", async || listed(dirs.0.path()).is_empty()).await;

    link.stop().await;
    office_link.stop().await;
}

#[tokio::test]
async fn a_device_keeps_to_its_budget_but_never_drops_a_photo_not_uploaded() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let dir = tempfile::tempdir().unwrap();
    let phone =
        Replica::open_with_files("mem://", Some("vic"), Some(FilesConfig { dir: dir.path().into(), budget_bytes: 1 }))
            .await
            .unwrap();
    phone.subscribe(&s.event).await.unwrap();
    let link = Link::start(phone.clone(), &srv.sync_url(), &s.vic.token);
    eventually("synced", async || phone.event(&s.event).await.is_ok()).await;
    link.stop().await;
    let shot = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(shot.path(), jpeg(64, 64, 0)).unwrap();
    let made = phone.attach_file(&s.event, shot.path(), Attach::default()).await.unwrap();
    phone.set_file_budget(0);
    assert!(phone.file_path(&s.event, &made.record.id, Variant::Original).is_some(), "kept over the budget");
    // A file that is not there, and a file too big for the device.
    let err = phone.attach_file(&s.event, std::path::Path::new("/nonexistent/photo.jpg"), Attach::default()).await;
    assert_eq!(err.unwrap_err().code(), "invalid_input");
    // A file record without its bytes is refused on the device.
    let w = engine::device::LocalWrite {
        kind: "file_meta".into(),
        op: engine::protocol::MutationOp::Create,
        record: None,
        fields: json!({ "name": "x.jpg", "size": 3, "content_hash": "b".repeat(64) }),
    };
    assert_eq!(phone.write(&s.event, w).await.unwrap_err().code(), "invalid_input");
    let link = Link::start(phone.clone(), &srv.sync_url(), &s.vic.token);
    eventually("everything is sent", async || phone.status().pending == 0).await;
    // Once the server holds it, the phone may let it go when over budget.
    eventually("past the budget it goes", async || {
        phone.set_file_budget(0);
        listed(dir.path()).is_empty()
    })
    .await;
    link.stop().await;
}

/// An S3-compatible server (moto, installed from PyPI by `.ci/run`) on a free loopback port,
/// stopped when dropped.
struct S3Server {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn s3_server() -> S3Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let program = std::env::var("BACKOPS_S3_TEST_SERVER").unwrap_or_else(|_| "moto_server".into());
    let child = std::process::Command::new(&program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("the S3 test needs an S3-compatible server: `pip install 'moto[server]'` (.ci/run does) — {program}: {e}")
        });
    let server = S3Server { child, endpoint: format!("http://127.0.0.1:{port}") };
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while http.get(&server.endpoint).send().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the S3 server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_live_in_an_s3_compatible_store_when_configured() {
    let s3 = s3_server().await;
    let http = reqwest::Client::new();
    assert!(http.put(format!("{}/backops-files", s3.endpoint)).send().await.unwrap().status().is_success(), "bucket");
    let endpoint = s3.endpoint.clone();
    let srv = TestServer::start_with(move |c| {
        c.file_store = server::FileStore::S3(server::blobs::S3Config {
            endpoint: Some(endpoint),
            bucket: "backops-files".into(),
            region: "us-east-1".into(),
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
            prefix: "blobs".into(),
        });
    })
    .await;
    let s = stage(&srv).await;
    // Larger than one multipart part (8 MiB), and a photo.
    let big = noise(9 * 1024 * 1024 + 123);
    let f = upload_file(&s.vic.api, &s.event, &s.audio, "show.bin", &big).await;
    let photo = jpeg_with_metadata(640, 480, 1);
    let p = upload_file(&s.vic.api, &s.event, &s.audio, "dock.jpg", &photo).await;
    let base = format!("/v1/events/{}/files", s.event);
    let (status, _, got) = fetch(&s.pm.api, &format!("{base}/{}/content", f["id"].as_str().unwrap()), None).await;
    assert!(status == 200 && got == big, "the big file back from S3 whole");
    let (status, _, got) =
        fetch(&s.pm.api, &format!("{base}/{}/content", f["id"].as_str().unwrap()), Some("bytes=8388600-8388700")).await;
    assert_eq!((status, got.as_slice()), (206, &big[8_388_600..8_388_701]));
    let (status, _, thumb) =
        fetch(&s.pm.api, &format!("{base}/{}/thumbnails/256", p["id"].as_str().unwrap()), None).await;
    assert_eq!((status, image::load_from_memory(&thumb).unwrap().dimensions()), (200, (256, 192)));
    assert_eq!(fetch(&s.cara.api, &format!("{base}/{}/content", p["id"].as_str().unwrap()), None).await.0, 404);
    // The objects are in the bucket, named by their hash, and nothing is in the data directory.
    let listing =
        http.get(format!("{}/backops-files?list-type=2", s3.endpoint)).send().await.unwrap().text().await.unwrap();
    let hash = sha256(&big);
    assert!(listing.contains(&format!("blobs/{}/{hash}", &hash[..2])), "{listing}");
    assert!(!srv.config.data_dir.join("blobs").exists(), "nothing stored locally");
}

#[tokio::test]
async fn storage_upkeep_expires_abandoned_uploads_and_collects_blobs_nothing_names() {
    let srv = TestServer::start_with(|c| c.engine.org_storage_limit_bytes = Some(100_000)).await;
    let s = stage(&srv).await;
    let ev = &s.event;
    let org = s.pm.personal_org().await;
    let blobs = srv.config.data_dir.join("blobs");
    let held = |bytes: &[u8]| {
        let h = sha256(bytes);
        blobs.join(&h[..2]).join(&h).exists()
    };
    // A file kept, a file deleted, an upload finished but never made a file, one abandoned
    // half way.
    let kept = noise(20_000);
    let f = upload_file(&s.vic.api, ev, &s.audio, "kept.bin", &kept).await;
    let content = format!("/v1/events/{ev}/files/{}/content", f["id"].as_str().unwrap());
    let gone = noise(20_001);
    let g = upload_file(&s.vic.api, ev, &s.audio, "gone.bin", &gone).await;
    s.vic.api.delete(&format!("/v1/events/{ev}/files/{}", g["id"].as_str().unwrap())).await.ok();
    let unadded = noise(20_002);
    let up = open_upload(&s.vic.api, ev, &s.audio, "unadded.bin", &unadded).await.ok();
    assert_eq!(chunk(&s.vic.api, up["id"].as_str().unwrap(), 0, &unadded).await.0, 200);
    let abandoned = noise(20_003);
    let half = open_upload(&s.vic.api, ev, &s.audio, "half.bin", &abandoned).await.ok();
    let half = half["id"].as_str().unwrap();
    assert_eq!(chunk(&s.vic.api, half, 0, &abandoned[..10_000]).await.0, 204);
    // Uploads under way and finished ones not yet added hold room: 60,005 of 100,000 bytes
    // are taken, so 40,000 more do not fit.
    open_upload(&s.vic.api, ev, &s.audio, "big.bin", &noise(40_000)).await.err(422, "storage_full");

    let (files, engine) = (srv.files.as_ref().unwrap(), srv.engine.as_ref().unwrap());
    let week = Duration::from_secs(7 * 24 * 3600);
    // Now, nothing is old enough: the deleted file's bytes wait out their grace.
    let now = std::time::SystemTime::now();
    assert_eq!(files.collect(engine, now, week).await.unwrap(), server::files::Collected::default());
    assert!(held(&gone) && held(&unadded));
    // Eight days on: the four uploads are forgotten, and the blobs nothing names any more
    // collected: the deleted file, the upload never added, and the half-sent bytes (a part
    // of the abandoned upload, kept in the blob store so any node could resume it).
    let later = now + Duration::from_secs(8 * 24 * 3600);
    let done = files.collect(engine, later, week).await.unwrap();
    assert_eq!(
        (done.uploads, done.partial_files, done.blobs, done.blob_bytes),
        (4, 0, 3, (gone.len() + unadded.len() + 10_000) as u64),
        "{done:?}"
    );
    assert_eq!((held(&kept), held(&gone), held(&unadded)), (true, false, false));
    assert_eq!(std::fs::read_dir(srv.config.data_dir.join("uploads")).unwrap().count(), 0);
    // The kept file downloads as before; the abandoned upload is gone (its sender starts
    // over), and the room is free again.
    let (status, _, got) = fetch(&s.pm.api, &content, None).await;
    assert_eq!((status, got == kept), (200, true));
    s.vic.api.get(&format!("/v1/uploads/{half}")).await.err(404, "not_found");
    let used = s.pm.api.get(&format!("/v1/orgs/{org}/storage")).await.ok();
    assert_eq!(used["bytes"].as_u64(), Some(kept.len() as u64));
    open_upload(&s.vic.api, ev, &s.audio, "big.bin", &noise(40_000)).await.ok();
    // A second pass finds nothing more.
    assert_eq!(files.collect(engine, later, week).await.unwrap().blobs, 0);
}

/// Vic's phone, synced once and then offline, with a file directory (kept while it lives).
async fn offline_phone(srv: &TestServer, s: &tests::Stage) -> (Replica, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let files = FilesConfig { dir: dir.path().into(), budget_bytes: 64 << 20 };
    let phone = Replica::open_with_files("mem://", Some("vic-phone"), Some(files)).await.unwrap();
    phone.subscribe(&s.event).await.unwrap();
    let link = Link::start(phone.clone(), &srv.sync_url(), &s.vic.token);
    eventually("the phone synced", async || phone.event(&s.event).await.is_ok()).await;
    link.stop().await;
    (phone, dir)
}

/// Sends a PATCH of the first `sent` of `total` bytes on a raw connection and then goes
/// silent, as a phone whose network died mid-chunk; returns the connection.
async fn stalled_chunk(base: &str, token: &str, upload: &str, bytes: &[u8], sent: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut c = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "PATCH /v1/uploads/{upload} HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {token}\r\n\
         content-type: application/offset+octet-stream\r\nupload-offset: 0\r\ncontent-length: {}\r\n\r\n",
        bytes.len()
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(&bytes[..sent]).await.unwrap();
    c.flush().await.unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_chunk_is_cut_and_the_phone_waits_out_a_busy_upload_without_losing_its_photo() {
    let srv = TestServer::start_with(|c| c.chunk_idle_timeout = Duration::from_secs(3)).await;
    let s = stage(&srv).await;
    let (phone, _dir) = offline_phone(&srv, &s).await;
    let shot = tempfile::NamedTempFile::new().unwrap();
    let photo = jpeg(320, 240, 30);
    std::fs::write(shot.path(), &photo).unwrap();
    let made = phone.attach_file(&s.event, shot.path(), Attach::default()).await.unwrap();
    let id = made.record.id.clone();

    // The same upload, opened by Vic's earlier connection, whose chunk stalls 1,000 bytes in.
    let up = s
        .vic
        .api
        .post(
            &format!("/v1/events/{}/uploads", s.event),
            json!({ "id": id, "collaborator": s.audio, "name": made.record.data["name"], "size": photo.len(), "sha256": sha256(&photo) }),
        )
        .await
        .ok();
    let upload = up["id"].as_str().unwrap().to_string();
    let stalled = tokio::sync::Mutex::new(stalled_chunk(&srv.base, &s.vic.token, &upload, &photo, 1_000).await);
    // While it holds the upload, another writer is told to wait (409, not a refusal)… A
    // probe that took the upload first made the stalled chunk itself wait: it is sent again.
    eventually("the stalled chunk holds the upload", async || {
        let probe = chunk(&s.vic.api, &upload, photo.len() as u64 + 1, b"x").await;
        if probe.2["code"] == "upload_busy" {
            return true;
        }
        let mut held = stalled.lock().await;
        let mut buf = vec![0u8; 4096];
        use tokio::io::AsyncReadExt;
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(20), held.read(&mut buf)).await {
            assert!(String::from_utf8_lossy(&buf[..n]).contains("upload_busy"), "only a probe stops it");
            *held = stalled_chunk(&srv.base, &s.vic.token, &upload, &photo, 1_000).await;
        }
        false
    })
    .await;
    // …and so is the phone, which keeps its photo and tries again.
    let link = Link::start(phone.clone(), &srv.sync_url(), &s.vic.token);
    // The server cuts the silent chunk, keeping the 1,000 bytes that arrived.
    let answer = {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(WAIT_MAX, stalled.lock().await.read(&mut buf)).await.expect("an answer").unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("upload_stalled"), "{answer}");
    let path = format!("/v1/events/{}/files", s.event);
    eventually("the photo reaches the server", async || {
        s.pm.api.get(&path).await.ok().as_array().unwrap().iter().any(|f| f["id"] == id.as_str())
    })
    .await;
    let (_, _, got) = fetch(&s.pm.api, &format!("{path}/{id}/content"), None).await;
    assert!(got == photo, "whole and as taken");
    eventually("the phone's write is confirmed", async || phone.status().pending == 0).await;
    assert!(phone.file_path(&s.event, &id, Variant::Original).is_some(), "never rolled back");
    link.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_running_while_photos_are_attached_never_take_their_bytes() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let (phone, _dir) = offline_phone(&srv, &s).await;
    // Offline, photos are attached while sweeps run without pause on another thread: each
    // photo's bytes are stored before its record exists, and must survive that moment.
    let sweeping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sweeper = {
        let (phone, sweeping) = (phone.clone(), sweeping.clone());
        tokio::task::spawn_blocking(move || {
            let mut n = 0u64;
            while sweeping.load(std::sync::atomic::Ordering::Relaxed) {
                phone.sweep_files();
                n += 1;
            }
            n
        })
    };
    let mut ids = Vec::new();
    for i in 0..12u8 {
        let shot = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(shot.path(), jpeg(160, 120, i)).unwrap();
        ids.push((phone.attach_file(&s.event, shot.path(), Attach::default()).await.unwrap().record.id, i));
    }
    sweeping.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(sweeper.await.unwrap() > 12, "sweeps ran throughout");
    phone.sweep_files();
    for (id, i) in &ids {
        let held = phone.file_path(&s.event, id, Variant::Original).expect("the photo's bytes are held");
        assert!(std::fs::read(held).unwrap() == jpeg(160, 120, *i));
    }
    // Back online, every one of them uploads.
    let link = Link::start(phone.clone(), &srv.sync_url(), &s.vic.token);
    let path = format!("/v1/events/{}/files", s.event);
    eventually("all twelve reach the server", async || s.pm.api.get(&path).await.ok().as_array().unwrap().len() == 12)
        .await;
    link.stop().await;
}

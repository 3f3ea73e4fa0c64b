//! The mobile bridge through its compiled library, as an app loads it: bindings generated
//! from the built `mobile_bridge` cdylib (Python here; Kotlin and Swift are generated too, to
//! prove the command the apps use), and a Python program driving it against a real server.

use std::path::{Path, PathBuf};

use serde_json::json;
use tests::{stage, task};

/// The library Python loads: the one cargo built beside this test binary, or the one
/// `BACKOPS_BRIDGE_LIBRARY` names (e.g. the `mobile` profile's, as an app ships it; the
/// bindings, generated from the test build, must load it all the same).
fn loaded_library() -> PathBuf {
    std::env::var_os("BACKOPS_BRIDGE_LIBRARY").map_or_else(bridge_library, PathBuf::from)
}

/// The compiled bridge library cargo built beside this test binary.
fn bridge_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps dir");
    let name = format!("{}mobile_bridge{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    [deps.join(&name), deps.parent().expect("profile dir").join(&name)]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} was not built next to {}", exe.display()))
}

fn generate(library: &Path, languages: Vec<uniffi::TargetLanguage>, out: &Path) {
    uniffi::generate(uniffi::GenerateOptions {
        languages,
        source: library.to_str().expect("utf-8 path").into(),
        out_dir: out.to_str().expect("utf-8 path").into(),
        crate_filter: Some("mobile_bridge".into()),
        metadata_no_deps: true,
        ..Default::default()
    })
    .expect("bindings generated");
}

/// Every file under `dir`, with its text.
fn texts(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(texts(&p));
        } else if let Ok(t) = std::fs::read_to_string(&p) {
            out.push((p, t));
        }
    }
    out
}

#[test]
fn kotlin_and_swift_bindings_come_from_the_built_library() {
    let out = tempfile::tempdir().unwrap();
    generate(&bridge_library(), vec![uniffi::TargetLanguage::Kotlin, uniffi::TargetLanguage::Swift], out.path());
    let files = texts(out.path());
    let kotlin = files.iter().find(|(p, _)| p.extension().is_some_and(|e| e == "kt")).expect("a Kotlin file");
    assert!(kotlin.0.ends_with("app/backops/sync/mobile_bridge.kt"), "{}", kotlin.0.display());
    assert!(kotlin.1.contains("package app.backops.sync") && kotlin.1.contains("class BackOpsClient"));
    let swift = files.iter().find(|(p, _)| p.extension().is_some_and(|e| e == "swift")).expect("a Swift file");
    assert!(swift.1.contains("class BackOpsClient") && swift.1.contains("protocol SyncListener"));
    assert!(files.iter().any(|(p, _)| p.extension().is_some_and(|e| e == "modulemap")), "Swift module map");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_drives_the_compiled_library_against_a_real_server() {
    // The server mails through a real SMTP server; the Python crew member reads the code
    // that proves their email from its maildir.
    let smtp = tests::mail::SmtpSink::start().await;
    let srv = smtp.server().await;
    let s = stage(&srv).await;
    task(&s, &s.pm, &s.audio, "Line array").await;

    let bindings = tempfile::tempdir().unwrap();
    let library = bridge_library();
    generate(&library, vec![uniffi::TargetLanguage::Python], bindings.path());
    // The generated module loads the library from its own directory.
    std::fs::copy(loaded_library(), bindings.path().join(library.file_name().unwrap())).unwrap();

    let data = tempfile::tempdir().unwrap();
    // A photo, and a network to the server that drops the first upload 30 KB in.
    let photo = data.path().join("IMG_0001.jpg");
    std::fs::write(&photo, tests::files::jpeg(640, 480, 60)).unwrap();
    let upstream = srv.base.trim_start_matches("http://").parse().unwrap();
    let proxy = tests::files::CutProxy::start(upstream, 30_000).await;
    // A server whose access tokens last 2 s, standing in for 15 minutes across a show day.
    let short = smtp.server_with(|c| c.token_ttl = std::time::Duration::from_secs(2)).await;
    let short_stage = stage(&short).await;
    let setup = json!({
        "base": srv.base,
        "event": s.event,
        "audio": s.audio,
        "client": s.client,
        "pm_token": s.pm.token,
        "vic_token": s.vic.token,
        "vic_id": s.vic.id,
        "cara_token": s.cara.token,
        "data_dir": data.path(),
        "photo": photo,
        "proxy": proxy.base,
        "maildir": smtp.delivered(),
        "short": {
            "base": short.base,
            "event": short_stage.event,
            "audio": short_stage.audio,
            "vic_email": short_stage.vic.email,
            "pm_email": short_stage.pm.email,
            "password": "correct horse battery",
        },
    });
    let script_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("python");
    let python_path = std::env::join_paths([bindings.path(), script_dir.as_path()]).unwrap();
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-m", "unittest", "-v", "test_mobile_bridge"])
            .current_dir(&script_dir)
            .env("PYTHONPATH", python_path)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("BACKOPS_E2E", setup.to_string())
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    println!("{said}");
    assert!(run.status.success(), "the Python end-to-end test failed:\n{said}");
    assert!(said.contains("OK") && !said.contains("skipped"), "{said}");

    assert_eq!(proxy.cuts.load(std::sync::atomic::Ordering::SeqCst), 1, "the photo's upload was cut once");
    // What Python wrote offline reached the server, once.
    let tasks = s.pm.api.get(&format!("/v1/events/{}/tasks", s.event)).await.ok();
    let titles: Vec<&str> = tasks.as_array().unwrap().iter().filter_map(|t| t["title"].as_str()).collect();
    assert_eq!(titles.iter().filter(|t| **t == "Cable run, written offline").count(), 1, "{titles:?}");
    assert_eq!(titles.iter().filter(|t| **t == "Written after the app was killed").count(), 1, "{titles:?}");
    assert!(!titles.contains(&"Written while read-only"), "{titles:?}");
}

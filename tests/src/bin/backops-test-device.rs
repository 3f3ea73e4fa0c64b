//! A phone in a process of its own: the mobile bridge's `BackOpsClient` (as an app holds it)
//! on the replica in `BACKOPS_TEST_DEVICE_DIR`, driven by commands on stdin, one a line, so a
//! test can kill it (-9) in the middle of whatever it is doing. Every command's output ends
//! with a line `done`.
//!
//! - `sign_in TOKEN`, `connect URL`, `disconnect`, `subscribe EVENT`
//! - `synced EVENT`: waits until the device is online, holds the event and has nothing
//!   unanswered (at most 60 s; prints `synced` or `not synced: STATUS`)
//! - `write EVENT COLLABORATOR FROM TO`: creates the tasks `dev FROM` … `dev TO` one after
//!   another, printing `wrote K` as each call returns (the app has been told it is kept), or
//!   `refused K CODE`
//! - `titles EVENT`: the task titles the device holds, as a JSON array
//! - `rejections`: the writes the server refused, a line each
//! - `status`: the sync status as JSON

use std::io::{BufRead, Write};

use mobile_bridge::{BackOpsClient, NewTask};

fn main() {
    let dir = std::env::var("BACKOPS_TEST_DEVICE_DIR").expect("BACKOPS_TEST_DEVICE_DIR");
    let client = match BackOpsClient::open(dir, Some("phone".into())) {
        Ok(c) => c,
        Err(e) => {
            println!("cannot open: {} {e}", e.code());
            return;
        }
    };
    println!("open");
    let out = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let say = |s: String| {
            let mut o = out.lock();
            let _ = writeln!(o, "{s}");
            let _ = o.flush();
        };
        let outcome = match words.as_slice() {
            ["sign_in", token] => client.sign_in(token.to_string()),
            ["connect", url] => client.connect(url.to_string()),
            ["disconnect"] => client.disconnect(),
            ["subscribe", event] => client.subscribe(event.to_string()),
            ["synced", event] => {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                loop {
                    let st = client.sync_status();
                    let held = client.event(event.to_string()).is_ok();
                    if let Ok(s) = &st
                        && s.online
                        && s.pending == 0
                        && held
                    {
                        say("synced".into());
                        break;
                    }
                    if std::time::Instant::now() > deadline {
                        say(format!("not synced: {st:?}"));
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Ok(())
            }
            ["write", event, collaborator, from, to] => {
                let (from, to): (u64, u64) = (from.parse().expect("from"), to.parse().expect("to"));
                for k in from..=to {
                    let task = NewTask {
                        title: format!("dev {k}"),
                        collaborator: Some(collaborator.to_string()),
                        status: None,
                        assignee: None,
                        due: None,
                        id: None,
                    };
                    match client.create_task(event.to_string(), task) {
                        Ok(_) => say(format!("wrote {k}")),
                        Err(e) => say(format!("refused {k} {}", e.code())),
                    }
                }
                Ok(())
            }
            ["titles", event] => client.tasks(event.to_string(), None).map(|ts| {
                let titles: Vec<String> = ts.into_iter().map(|t| t.title).collect();
                say(serde_json::to_string(&titles).expect("JSON"));
            }),
            ["rejections"] => client.rejections().map(|rs| {
                for r in rs {
                    say(format!("rejected {} {} {}", r.record, r.code, r.message));
                }
            }),
            ["status"] => client.sync_status().map(|s| {
                say(serde_json::json!({ "online": s.online, "pending": s.pending, "last_error": s.last_error })
                    .to_string())
            }),
            _ => {
                say(format!("unknown command: {line}"));
                Ok(())
            }
        };
        if let Err(e) = outcome {
            say(format!("error {} {e}", e.code()));
        }
        say("done".into());
    }
    client.shutdown();
}

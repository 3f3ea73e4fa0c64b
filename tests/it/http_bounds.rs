//! Plain HTTP is bounded like the socket: a client that trickles its headers, or a JSON
//! body, is cut after its limit while an honest client is served; a kept-alive connection
//! that sends nothing is closed; and one address cannot open more connections than its cap
//! (sync sockets included).

use std::time::{Duration, Instant};

use tests::{SyncClient, TestServer};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

fn bounded(c: &mut server::Config) {
    c.http.header_timeout = Duration::from_secs(1);
    c.http.body_timeout = Duration::from_secs(1);
    c.http.connections_per_address_max = 4;
}

async fn connect(srv: &TestServer) -> TcpStream {
    TcpStream::connect(srv.base.trim_start_matches("http://")).await.unwrap()
}

/// Reads until the server closes the connection (or 5 s pass); returns what it said and
/// when it closed, measured from `since`.
async fn until_closed(s: &mut TcpStream, since: Instant) -> (String, Duration) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = since + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline.into(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), since.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("still open after 5 s; said: {}", String::from_utf8_lossy(&got)),
        }
    }
}

/// Sends `bytes` one at a time, 150 ms apart, while the connection takes them.
async fn trickle(s: &mut TcpStream, bytes: &[u8]) {
    for b in bytes {
        if s.write_all(&[*b]).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn honest(srv: &TestServer) {
    let r = reqwest::get(format!("{}/v1/health", srv.base)).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_slow_bodies_are_cut_while_others_are_served() {
    let srv = TestServer::start_with(bounded).await;

    // Headers trickled (a plain request, and a WebSocket upgrade): cut after about 1 s.
    for head in [
        "POST /v1/sessions HTTP/1.1\r\nHost: venue\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        "GET /v1/sync HTTP/1.1\r\nHost: venue\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
    ] {
        let mut slow = connect(&srv).await;
        let since = Instant::now();
        let writer = async {
            trickle(&mut slow, head.as_bytes()).await;
            until_closed(&mut slow, since).await
        };
        let (closed, ()) = tokio::join!(writer, honest(&srv));
        let (said, after) = closed;
        assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(3), "cut after {after:?}");
        assert!(!said.contains("200 OK"), "{said}");
    }

    // A JSON body trickled after complete headers: 408 `body_timeout` after about 1 s.
    let body = r#"{"email":"vic@example.test","password":"correct horse battery"}"#;
    let mut slow = connect(&srv).await;
    let head = format!(
        "POST /v1/sessions HTTP/1.1\r\nHost: venue\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let since = Instant::now();
    let (said, after) = {
        let (mut r, mut w) = slow.into_split();
        let trickling = tokio::spawn(async move {
            for b in body.bytes() {
                if w.write_all(&[b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = since + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline.into(), r.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => {
                    got.extend_from_slice(&buf[..n]);
                    if String::from_utf8_lossy(&got).contains("}") {
                        break;
                    }
                }
                Err(_) => panic!("no answer in 5 s"),
            }
        }
        trickling.abort();
        (String::from_utf8_lossy(&got).into_owned(), since.elapsed())
    };
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    assert!(said.contains("body_timeout"), "{said}");
    assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(3), "answered after {after:?}");
    honest(&srv).await;

    // A kept-alive connection that sends no next request is closed after the header limit.
    let mut idle = connect(&srv).await;
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nHost: venue\r\n\r\n").await.unwrap();
    let since = Instant::now();
    let (said, after) = until_closed(&mut idle, since).await;
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
    assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(3), "closed after {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_connections_sync_sockets_included() {
    let srv = TestServer::start_with(|c| {
        bounded(c);
        c.http.header_timeout = Duration::from_secs(10);
    })
    .await;
    let vic = srv.sign_up("Vic").await;
    // Two sync sockets and two idle connections: the cap of four.
    let a = SyncClient::connect(&srv, &vic.token).await;
    let b = SyncClient::connect(&srv, &vic.token).await;
    let mut idle = vec![connect(&srv).await, connect(&srv).await];
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A fifth is closed at once, before it says anything.
    let mut fifth = connect(&srv).await;
    let _ = fifth.write_all(b"GET /v1/health HTTP/1.1\r\nHost: venue\r\n\r\n").await;
    let (said, after) = until_closed(&mut fifth, Instant::now()).await;
    assert!(said.is_empty() && after < Duration::from_secs(1), "{said} after {after:?}");
    // As connections end, places come back.
    drop(a);
    idle.pop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    honest(&srv).await;
    drop((b, idle));
}

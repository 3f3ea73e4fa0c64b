//! The link a phone runs: it keeps a replica connected by itself — snapshot, live changes,
//! local writes sent as they are made, reconnects after a loss, stops cleanly.

use std::time::Duration;

use engine::{ListFilter, device::LocalWrite, device::Replica, protocol::MutationOp};
use mobile_bridge::Link;
use serde_json::json;
use tests::{TestServer, WAIT_MAX, stage, task};

async fn titles(r: &Replica, event: &str) -> Vec<String> {
    let mut t: Vec<String> = r
        .tasks(event, ListFilter::default())
        .await
        .map(|v| v.into_iter().map(|t| t.title).collect())
        .unwrap_or_default();
    t.sort();
    t
}

/// Waits until `check` holds, failing after [`WAIT_MAX`].
async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let deadline = tokio::time::Instant::now() + WAIT_MAX;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_link_keeps_a_phone_in_sync_by_itself() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    task(&s, &s.pm, &s.audio, "Line array").await;
    let phone = Replica::open("mem://", Some("vic-phone")).await.unwrap();
    phone.subscribe(&s.event).await.unwrap();
    let link = Link::start(phone.clone(), &srv.sync_url(), &s.vic.token);

    eventually("the snapshot arrives", async || titles(&phone, &s.event).await == ["Line array"]).await;
    assert!(phone.status().online);
    task(&s, &s.pm, &s.audio, "Rig").await;
    eventually("a live change arrives", async || titles(&phone, &s.event).await == ["Line array", "Rig"]).await;

    // A write made on the phone goes out by itself.
    let w = LocalWrite {
        kind: "task".into(),
        op: MutationOp::Create,
        record: None,
        fields: json!({ "title": "From the phone" }),
    };
    let made = phone.write(&s.event, w).await.unwrap();
    link.wake();
    let path = format!("/v1/events/{}/tasks", s.event);
    eventually("the write is accepted", async || {
        phone.status().pending == 0
            && s.pm.api.get(&path).await.ok().as_array().unwrap().iter().any(|t| t["id"] == made.record.id)
    })
    .await;

    // The connection drops; the link comes back by itself and resumes from its cursor.
    let mut heard = phone.notices();
    link.reconnect();
    let mut went = Vec::new();
    while went != [false, true] {
        let n = tokio::time::timeout(WAIT_MAX, heard.recv()).await.expect("the link reconnects").unwrap();
        if let engine::device::Notice::Status(st) = n
            && went.last() != Some(&st.online)
        {
            went.push(st.online);
        }
    }
    task(&s, &s.pm, &s.audio, "While away").await;
    eventually("it resumes", async || titles(&phone, &s.event).await.contains(&"While away".to_string())).await;
    assert!(phone.status().online && phone.status().last_sync.is_some());

    // Stopped: offline, and writes wait in the outbox for the next link.
    link.stop().await;
    assert!(!phone.status().online);
    let w =
        LocalWrite { kind: "task".into(), op: MutationOp::Create, record: None, fields: json!({ "title": "Offline" }) };
    phone.write(&s.event, w).await.unwrap();
    assert_eq!(phone.status().pending, 1);
    let link = Link::start(phone.clone(), &srv.sync_url(), &s.vic.token);
    eventually("the outbox drains", async || phone.status().pending == 0 && phone.status().online).await;
    link.stop().await;
}

#[tokio::test]
async fn a_link_without_a_server_keeps_trying_and_says_why() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let phone = Replica::open("mem://", Some("lonely-phone")).await.unwrap();
    let link = Link::start(phone.clone(), &format!("ws://127.0.0.1:{port}/v1/sync"), "token");
    eventually("the error is shown", async || phone.status().last_error.is_some()).await;
    let status = phone.status();
    assert!(!status.online);
    assert!(status.last_error.unwrap().contains("cannot reach the server"));
    link.stop().await;
}

#[tokio::test]
async fn an_expired_sign_in_waits_for_a_new_token() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let short = s.vic.token_until(now + 2);
    let phone = Replica::open("mem://", Some("vic-phone")).await.unwrap();
    phone.subscribe(&s.event).await.unwrap();
    let link = Link::start(phone.clone(), &srv.sync_url(), &short);
    eventually("online", async || phone.status().online).await;
    eventually("told the sign-in expired", async || {
        !phone.status().online && phone.status().last_error.is_some_and(|e| e.contains("sign-in expired"))
    })
    .await;
    // Work goes on offline; a fresh token brings the link back by itself.
    let w = LocalWrite {
        kind: "task".into(),
        op: MutationOp::Create,
        record: None,
        fields: json!({ "title": "Meanwhile" }),
    };
    phone.write(&s.event, w).await.unwrap();
    link.set_token(&s.vic.token);
    eventually("back online and synced", async || phone.status().online && phone.status().pending == 0).await;
    assert!(phone.status().last_error.is_none());
    link.stop().await;
}

/// A site's own certificate authority and a server certificate it issued for 127.0.0.1.
fn site_authority() -> (String, rustls::pki_types::CertificateDer<'static>, rustls::pki_types::PrivateKeyDer<'static>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Harbor Fest site CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &ca).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    (ca.pem(), cert.der().clone(), key)
}

/// Terminates TLS on a loopback port in front of `srv` (as a site's proxy would); returns
/// the `wss://` address of its sync socket.
async fn tls_in_front_of(
    srv: &TestServer,
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> String {
    let config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let backend = srv.base.trim_start_matches("http://").to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, backend) = (acceptor.clone(), backend.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    format!("wss://127.0.0.1:{port}/v1/sync")
}

#[tokio::test]
async fn a_link_syncs_over_tls_with_a_site_authority_it_was_told_to_trust() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    task(&s, &s.pm, &s.audio, "Line array").await;
    let (ca_pem, cert, key) = site_authority();
    let url = tls_in_front_of(&srv, cert, key).await;

    // Public authorities only: the site's certificate is refused, and the app is told why.
    let phone = Replica::open("mem://", Some("vic-phone")).await.unwrap();
    phone.subscribe(&s.event).await.unwrap();
    let link = Link::start(phone.clone(), &url, &s.vic.token);
    eventually("the refusal is shown", async || phone.status().last_error.is_some()).await;
    let why = phone.status().last_error.unwrap();
    assert!(why.contains("certificate") && !phone.status().online, "{why}");
    link.stop().await;

    // Told to trust the site's authority: it syncs, and writes go out, over TLS.
    let mut trust = mobile_bridge::link::Trust::default();
    assert!(trust.add_pem("not a certificate").is_err());
    assert_eq!(trust.add_pem(&ca_pem), Ok(1));
    let tokens = engine::device::SignInTokens { token: s.vic.token.clone(), refresh_token: None };
    let link = mobile_bridge::Link::start_with(phone.clone(), &url, tokens, trust);
    eventually("the snapshot arrives over TLS", async || titles(&phone, &s.event).await == ["Line array"]).await;
    let w =
        LocalWrite { kind: "task".into(), op: MutationOp::Create, record: None, fields: json!({ "title": "Via TLS" }) };
    phone.write(&s.event, w).await.unwrap();
    link.wake();
    eventually("the write is accepted", async || phone.status().pending == 0).await;
    assert!(phone.status().online);
    link.stop().await;
}

/// A gate tablet through a show day and a night offline, with short lifetimes standing in
/// for the real ones (access tokens of 2 s for 15 minutes; an offline night longer than
/// them): connected, the link renews its token on the open socket and never drops; offline
/// past the token's expiry and restarted from what the device kept, it renews first, then
/// pushes its outbox with nobody at it. Signed out by the event team, it says so, keeps its
/// outbox, and pushes it after the next sign-in.
#[tokio::test]
async fn a_gate_tablet_renews_its_sign_in_by_itself_and_keeps_its_outbox_when_it_ends() {
    let srv = TestServer::start_with(|c| c.token_ttl = Duration::from_secs(2)).await;
    let s = stage(&srv).await;
    let signed = srv.device_sign_in(&s.vic, Some("gate B")).await;
    let tokens = engine::device::SignInTokens {
        token: signed["token"].as_str().unwrap().into(),
        refresh_token: Some(signed["refresh_token"].as_str().unwrap().into()),
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("surrealkv://{}", dir.path().join("replica").display());
    let tablet = Replica::open(&url, Some("gate-b")).await.unwrap();
    tablet.keep_sign_in(Some(&tokens)).await.unwrap();
    tablet.subscribe(&s.event).await.unwrap();
    let link = Link::start_with(tablet.clone(), &srv.sync_url(), tokens.clone(), Default::default());
    eventually("online", async || tablet.status().online).await;

    // Three token lifetimes on one connection: renewed on the socket, never dropped (every
    // status the tablet announces is online).
    let mut notices = tablet.notices();
    tokio::time::sleep(Duration::from_secs(6)).await;
    while let Ok(n) = notices.try_recv() {
        if let engine::device::Notice::Status(st) = n {
            assert!(st.online, "the connection dropped: {:?}", st.last_error);
        }
    }
    let renewed = tablet.kept_sign_in().await.unwrap().unwrap();
    assert_ne!(renewed, tokens, "the renewed tokens are kept on the device");
    let pm = srv.signed_in(&s.pm).await;
    pm.post(&format!("/v1/events/{}/tasks", s.event), json!({ "collaborator": s.audio, "title": "Doors at six" }))
        .await
        .ok();
    eventually("live changes after the renewals", async || {
        titles(&tablet, &s.event).await.contains(&"Doors at six".to_string())
    })
    .await;

    // The night: offline past the token's expiry, a scan-like write made meanwhile, then the
    // app restarts with nobody at it and connects from what the device kept.
    link.stop().await;
    let write = |title: &str| LocalWrite {
        kind: "task".into(),
        op: MutationOp::Create,
        record: None,
        fields: json!({ "title": title }),
    };
    let night = tablet.write(&s.event, write("Written offline")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kept = tablet.kept_sign_in().await.unwrap().expect("kept across the night");
    let link = Link::start_with(tablet.clone(), &srv.sync_url(), kept, Default::default());
    let path = format!("/v1/events/{}/tasks", s.event);
    let pm = srv.signed_in(&s.pm).await;
    eventually("the outbox is pushed after the night", async || {
        tablet.status().pending == 0
            && pm.get(&path).await.ok().as_array().unwrap().iter().any(|t| t["id"] == night.record.id)
    })
    .await;

    // Lost: the event team signs the tablet out. It hears it, forgets the tokens, and keeps
    // what it writes meanwhile.
    let people = format!("/v1/events/{}/people/{}/sessions", s.event, s.vic.id);
    let pm = srv.signed_in(&s.pm).await;
    let listed = pm.get(&people).await.ok();
    let id = listed[0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed[0]["device"], tablet.device());
    pm.delete(&format!("{people}/{id}")).await.ok();
    eventually("told the sign-in ended", async || {
        !tablet.status().online && tablet.status().last_error.is_some_and(|e| e.contains("sign-in has ended"))
    })
    .await;
    assert!(tablet.kept_sign_in().await.unwrap().is_none(), "the ended sign-in's tokens are forgotten");
    let after = tablet.write(&s.event, write("Written after the sign-out")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(tablet.status().pending, 1, "kept, not sent");
    let again = srv.device_sign_in(&s.vic, Some("gate B")).await;
    link.set_tokens(engine::device::SignInTokens {
        token: again["token"].as_str().unwrap().into(),
        refresh_token: Some(again["refresh_token"].as_str().unwrap().into()),
    });
    let pm = srv.signed_in(&s.pm).await;
    eventually("pushed after the new sign-in", async || {
        tablet.status().pending == 0
            && pm.get(&path).await.ok().as_array().unwrap().iter().any(|t| t["id"] == after.record.id)
    })
    .await;
    link.stop().await;
}

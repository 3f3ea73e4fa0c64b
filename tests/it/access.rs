//! Access over time: every record a session is sent is allowed by its person's standing
//! when it is sent, whatever cursor the client resumes from and whatever changed since —
//! seats, memberships, field modules and roles in the organization that owns the event.

use serde_json::{Value, json};
use tests::{Stage, SyncClient, TestServer, User, assert_allowed_now, fresh, stage, task};

fn head_of(srv: &TestServer, event: &str) -> impl std::future::Future<Output = i64> {
    let engine = srv.engine.clone().expect("an in-process server");
    let event = event.to_string();
    async move { engine.head(&event).await.unwrap() }
}

/// A new connection of `who` subscribing from `cursor` (a fresh client holding nothing, as
/// one written from the protocol alone may do): brought to the head, every frame judged
/// against the person's standing now, and its replica compared with a fresh snapshot.
/// Returns what it received.
async fn resume_from(srv: &TestServer, who: &User, event: &str, cursor: i64) -> Vec<Value> {
    let mut c = SyncClient::connect(srv, &who.token).await;
    c.subscribe(event, Some(cursor)).await;
    let (want, head) = fresh(srv, &who.token, event).await;
    c.sync_to(event, head).await;
    assert_allowed_now(srv.engine.as_ref().unwrap(), &who.id, event, &c.log).await;
    let mut held = c.held(event);
    held.sort();
    // A client resumed from a cursor holds what it had then: here nothing, so only records
    // sent since can be compared — every one the snapshot holds and nothing more after a
    // resync.
    if c.log.iter().any(|m| m["type"] == "resync") {
        assert_eq!(held, want, "after a resync the replica is the fresh snapshot");
    }
    c.log
}

fn mentions(log: &[Value], needle: &str) -> bool {
    log.iter().any(|m| m.to_string().contains(needle))
}

fn resynced(log: &[Value], reason: &str) -> bool {
    log.iter().any(|m| m["type"] == "resync" && m["reason"] == reason)
}

/// A seat holder whose seat is released stays a member of Audio. Afterwards a task is created
/// in Client's collaborator and an older one renamed. Resuming from any cursor before the
/// release never brings either (the log once replayed the seat, and the widening it replayed
/// read the records as they are now).
#[tokio::test]
async fn a_resume_never_replays_a_seat_released_since_its_cursor() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let ev = format!("/v1/events/{}", s.event);
    let older = task(&s, &s.pm, &s.client, "Approve plot").await;
    let before_seat = head_of(&srv, &s.event).await;
    s.pm.api.post(&format!("{ev}/seats"), json!({ "email": s.vic.email })).await.ok();
    let with_seat = head_of(&srv, &s.event).await;
    task(&s, &s.pm, &s.client, "Seen with the seat").await;
    s.pm.api.delete(&format!("{ev}/seats/{}", s.vic.id)).await.ok();
    let after_release = head_of(&srv, &s.event).await;
    let secret = task(&s, &s.pm, &s.client, "Fee renegotiation").await;
    s.pm.api.patch(&format!("{ev}/tasks/{older}"), json!({ "title": "Confidential rider" })).await.ok();
    task(&s, &s.pm, &s.audio, "Patch list").await;

    for cursor in [0, before_seat, with_seat, with_seat + 1] {
        let log = resume_from(&srv, &s.vic, &s.event, cursor).await;
        assert!(resynced(&log, "access_narrowed"), "from {cursor}: {log:?}");
        assert!(!mentions(&log, &secret) && !mentions(&log, "Confidential rider") && !mentions(&log, &older));
        assert!(mentions(&log, "Patch list"), "the member's own collaborator still arrives");
    }
    // From after the release nothing was lost since: the log is replayed, not a snapshot.
    let log = resume_from(&srv, &s.vic, &s.event, after_release).await;
    assert!(log.iter().all(|m| m["type"] != "resync" && m["type"] != "snapshot"), "{log:?}");
    assert!(mentions(&log, "Patch list") && !mentions(&log, &secret));
}

/// A member whose collaborator's gate module was revoked resumes from before the grant and
/// never receives the credential imported after the revocation (nor any other).
#[tokio::test]
async fn a_resume_never_replays_a_module_revoked_since_its_cursor() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let ev = format!("/v1/events/{}", s.event);
    let api = &s.pm.api;
    api.post(&format!("{ev}/zones"), json!({ "code": "GA", "name": "General admission" })).await.ok();
    let import = |uid: &str| {
        let csv = format!("uid,kind,holder_name,zones\n{uid},ga,Guest,GA\n");
        let path = format!("{ev}/credentials/import");
        async move { api.raw(reqwest::Method::POST, &path, "text/csv", csv.into_bytes()).await.ok() }
    };
    import("WB-BEFORE").await;
    let before_grant = head_of(&srv, &s.event).await;
    api.put(&format!("{ev}/collaborators/{}/modules/gate", s.audio), json!({})).await.ok();
    let granted = head_of(&srv, &s.event).await;
    import("WB-DURING").await;
    api.delete(&format!("{ev}/collaborators/{}/modules/gate", s.audio)).await.ok();
    import("WB-0042-SECRET").await;

    for cursor in [0, before_grant, granted] {
        let log = resume_from(&srv, &s.vic, &s.event, cursor).await;
        assert!(resynced(&log, "access_narrowed"), "from {cursor}");
        for uid in ["WB-BEFORE", "WB-DURING", "WB-0042-SECRET"] {
            assert!(!mentions(&log, uid), "from {cursor} the stream carries {uid}");
        }
    }
}

/// A team organization owned by `pm`, with an event (Audio as a collaborator) and `ada` as an
/// admin of the organization; `vic` is a member of Audio.
struct Team {
    s: Stage,
    org: String,
    ada: User,
}

async fn team(srv: &TestServer) -> Team {
    let s = stage(srv).await;
    let org = s.pm.api.post("/v1/orgs", json!({ "name": "Touring Co" })).await.ok()["id"].as_str().unwrap().to_string();
    let license = s.pm.ready_org(&org, 2).await;
    let (event, prod) = s.pm.create_event(&org, &license, "Arena run").await;
    let audio =
        s.pm.api.post(&format!("/v1/events/{event}/collaborators"), json!({ "name": "Audio" })).await.ok()["id"]
            .as_str()
            .unwrap()
            .to_string();
    let ada = srv.sign_up("Ada").await;
    s.pm.api.post(&format!("/v1/orgs/{org}/members"), json!({ "email": ada.email, "role": "admin" })).await.ok();
    let s = Stage { event, prod, audio, ..s };
    Team { s, org, ada }
}

/// An owner or admin removed from the organization, or demoted to member, stops receiving the
/// event on an open socket at once: a narrow, then nothing more of what the role gave.
#[tokio::test]
async fn an_org_role_removed_or_demoted_narrows_an_open_session() {
    let srv = TestServer::start().await;
    let Team { s, org, ada } = team(&srv).await;
    let ev = format!("/v1/events/{}", s.event);
    // Ada (admin) also belongs to Audio; Cara (admin) belongs to nothing.
    let cara = &s.cara;
    s.pm.api.post(&format!("/v1/orgs/{org}/members"), json!({ "email": cara.email, "role": "admin" })).await.ok();
    s.pm.api.post(&format!("{ev}/collaborators/{}/members", s.audio), json!({ "email": ada.email })).await.ok();
    let mut a = SyncClient::connect(&srv, &ada.token).await;
    let mut c = SyncClient::connect(&srv, &cara.token).await;
    for x in [&mut a, &mut c] {
        x.subscribe(&s.event, None).await;
        assert!(x.held(&s.event).iter().any(|(k, _)| k == "seat"), "a manager receives the seats");
    }

    s.pm.api.patch(&format!("/v1/orgs/{org}/members/{}", ada.id), json!({ "role": "member" })).await.ok();
    s.pm.api.delete(&format!("/v1/orgs/{org}/members/{}", cara.id)).await.ok();
    let removed_at = head_of(&srv, &s.event).await;
    // What the role gave goes on changing: a seat assigned, the event renamed.
    s.pm.api.post(&format!("{ev}/seats"), json!({ "email": s.vic.email })).await.ok();
    s.pm.api.patch(&ev, json!({ "name": "Arena run (moved)" })).await.ok();
    let head = head_of(&srv, &s.event).await;
    for (x, who) in [(&mut a, &ada), (&mut c, cara)] {
        x.sync_to(&s.event, head).await;
        let narrowed = x.log.iter().any(|m| {
            m["changes"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["op"] == "narrow" && c["seq"].as_i64() <= Some(removed_at)))
        });
        assert!(narrowed, "{} was narrowed at the role's change", who.email);
        assert!(x.held(&s.event).iter().all(|(k, _)| k != "seat"), "no seat held");
        let (want, _) = fresh(&srv, &who.token, &s.event).await;
        assert_eq!(x.held(&s.event), want);
    }
    // Ada keeps Audio and the event; Cara has nothing left, and heard nothing after.
    assert!(mentions(&a.log, "Arena run (moved)"));
    assert!(c.held(&s.event).is_empty());
    let after: Vec<Value> = c.log.iter().filter(|m| m["type"] == "changes").cloned().collect();
    assert!(!mentions(&after, "Arena run (moved)") && !mentions(&after, &s.vic.id));
    // The HTTP API agrees.
    cara.api.get(&ev).await.err(404, "not_found");
    // Resuming from before the change is a resync, never a replay of the role.
    let log = resume_from(&srv, &ada, &s.event, 0).await;
    assert!(resynced(&log, "access_narrowed"));

    // Made an admin again: the seats come back, live.
    s.pm.api.patch(&format!("/v1/orgs/{org}/members/{}", ada.id), json!({ "role": "admin" })).await.ok();
    let head = head_of(&srv, &s.event).await;
    a.sync_to(&s.event, head).await;
    let (want, _) = fresh(&srv, &ada.token, &s.event).await;
    assert_eq!(a.held(&s.event), want);
    assert!(a.held(&s.event).iter().any(|(k, _)| k == "seat"));
}

// ---- a model of access over time ----

use engine::access::{Membership, Module, Modules, OrgRole, Standing};
use proptest::{collection::vec, prelude::*, test_runner::TestRunner};
use std::collections::BTreeMap;

/// People whose access the histories change (the owner, who holds a seat, changes it).
const PEOPLE: usize = 2;
/// Collaborators the histories use besides the default one.
const COLLABS: usize = 2;
const MODULES: [Module; 2] = [Module::Gate, Module::Labor];
const ROLES: [OrgRole; 3] = [OrgRole::Owner, OrgRole::Admin, OrgRole::Member];
/// Sessions open at once at most.
const CLIENTS_MAX: usize = 3;

/// Where a session resumes from.
#[derive(Clone, Copy, Debug)]
enum From {
    Zero,
    /// Before the person's latest widening (at or below the client's cursor).
    BeforeWidening,
    /// Before the person's latest narrowing (at or below the client's cursor).
    BeforeNarrowing,
    Own,
}

/// One step of a history.
#[derive(Clone, Debug)]
enum Op {
    Seat(usize, bool),
    /// Joins a collaborator (leaving the one held, if another: a move), or leaves.
    Member(usize, Option<usize>),
    ReadOnly(usize, bool),
    Module(usize, usize, bool),
    Role(usize, Option<usize>),
    CreateTask(usize),
    EditTask(usize),
    MoveTask(usize, usize),
    DeleteTask(usize),
    Credential,
    Rename,
    /// A new session of a person (a snapshot).
    Connect(usize),
    /// A session drops its connection, keeping its replica.
    Drop(usize),
    /// A session's device reconnects, holding its replica, and subscribes from a cursor.
    Resume(usize, From),
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PEOPLE;
    let c = 0..COLLABS;
    prop_oneof![
        2 => (p.clone(), any::<bool>()).prop_map(|(p, on)| Op::Seat(p, on)),
        3 => (p.clone(), proptest::option::weighted(0.7, c.clone())).prop_map(|(p, c)| Op::Member(p, c)),
        1 => (p.clone(), any::<bool>()).prop_map(|(p, on)| Op::ReadOnly(p, on)),
        2 => (c.clone(), 0..MODULES.len(), any::<bool>()).prop_map(|(c, m, on)| Op::Module(c, m, on)),
        2 => (p.clone(), proptest::option::weighted(0.7, 0..ROLES.len())).prop_map(|(p, r)| Op::Role(p, r)),
        3 => c.clone().prop_map(Op::CreateTask),
        2 => (0..8usize).prop_map(Op::EditTask),
        2 => (0..8usize, c.clone()).prop_map(|(t, c)| Op::MoveTask(t, c)),
        1 => (0..8usize).prop_map(Op::DeleteTask),
        1 => Just(Op::Credential),
        1 => Just(Op::Rename),
        2 => p.clone().prop_map(Op::Connect),
        1 => (0..CLIENTS_MAX).prop_map(Op::Drop),
        3 => (0..CLIENTS_MAX, prop_oneof![Just(From::Zero), Just(From::BeforeWidening), Just(From::BeforeNarrowing), Just(From::Own)])
            .prop_map(|(i, f)| Op::Resume(i, f)),
    ]
}

/// What the history has made of each person, kept by the test itself.
#[derive(Clone, Debug, Default)]
struct Model {
    seat: Vec<bool>,
    member: Vec<Option<(usize, bool)>>,
    grants: Vec<Modules>,
    role: Vec<Option<OrgRole>>,
    /// Tasks made: their id and collaborator (None: deleted).
    tasks: Vec<(String, Option<usize>)>,
    /// Per person, the heads before the steps that widened and narrowed their access.
    widened: Vec<Vec<i64>>,
    narrowed: Vec<Vec<i64>>,
}

/// One session of the history: a person's client, and how much of its log was judged.
struct Session {
    person: usize,
    client: SyncClient,
    node: usize,
    /// Live: subscribed and followed (a refused subscription, or a dropped connection, is not).
    live: bool,
    judged: usize,
}

/// The world a history runs in: the nodes, a team organization's event, its people.
struct World<'a> {
    nodes: &'a [TestServer],
    pm: User,
    org: String,
    event: String,
    collabs: Vec<String>,
    people: Vec<User>,
}

impl<'a> World<'a> {
    /// A new event for history number `case` (people of their own: every history signs up
    /// anew on the same nodes).
    async fn new(nodes: &'a [TestServer], case: u64) -> World<'a> {
        let srv = &nodes[0];
        let pm = srv.sign_up(&format!("Pm{case}")).await;
        let org =
            pm.api.post("/v1/orgs", json!({ "name": "Touring Co" })).await.ok()["id"].as_str().unwrap().to_string();
        let license = pm.ready_org(&org, 4).await;
        let (event, _) = pm.create_event(&org, &license, "Festival").await;
        let mut collabs = Vec::new();
        for name in ["Audio", "Catering"] {
            let c = pm.api.post(&format!("/v1/events/{event}/collaborators"), json!({ "name": name })).await.ok();
            collabs.push(c["id"].as_str().unwrap().to_string());
        }
        pm.api.post(&format!("/v1/events/{event}/zones"), json!({ "code": "GA", "name": "General" })).await.ok();
        let mut people = Vec::new();
        for name in ["Ada", "Ben"] {
            people.push(srv.sign_up(&format!("{name}{case}")).await);
        }
        World { nodes, pm, org, event, collabs, people }
    }

    async fn head(&self) -> i64 {
        self.nodes[0].engine.as_ref().unwrap().head(&self.event).await.unwrap()
    }

    /// The standing the model gives person `p`.
    fn standing(&self, m: &Model, p: usize) -> Standing {
        Standing {
            person: self.people[p].id.clone(),
            seat: m.seat[p],
            org_role: m.role[p],
            membership: m.member[p].map(|(c, read_only)| Membership {
                collaborator: self.collabs[c].clone(),
                read_only,
                modules: m.grants[c],
            }),
        }
    }

    fn has_event(s: &Standing) -> bool {
        s.seat || s.membership.is_some() || s.org_role.is_some_and(OrgRole::manages)
    }

    /// Applies one step through the HTTP API of node `via` (and the model with it), noting for
    /// each person whether it widened or narrowed their access.
    async fn apply(&self, m: &mut Model, sessions: &mut Vec<Session>, op: &Op, via: usize) {
        let api = self.nodes[via].anonymous().with_token(&self.pm.token);
        let ev = format!("/v1/events/{}", self.event);
        let before: Vec<Standing> = (0..PEOPLE).map(|p| self.standing(m, p)).collect();
        let head = self.head().await;
        match *op {
            Op::Seat(p, on) if on != m.seat[p] => {
                let who = &self.people[p];
                if on {
                    api.post(&format!("{ev}/seats"), json!({ "email": who.email })).await.ok();
                } else {
                    api.delete(&format!("{ev}/seats/{}", who.id)).await.ok();
                }
                m.seat[p] = on;
            }
            Op::Member(p, c) if c != m.member[p].map(|(c, _)| c) => {
                let who = &self.people[p];
                if let Some((held, _)) = m.member[p] {
                    api.delete(&format!("{ev}/collaborators/{}/members/{}", self.collabs[held], who.id)).await.ok();
                    m.member[p] = None;
                }
                if let Some(c) = c {
                    api.post(&format!("{ev}/collaborators/{}/members", self.collabs[c]), json!({ "email": who.email }))
                        .await
                        .ok();
                    m.member[p] = Some((c, false));
                }
            }
            Op::ReadOnly(p, on) => {
                if let Some((c, _)) = m.member[p] {
                    let path = format!("{ev}/collaborators/{}/members/{}", self.collabs[c], self.people[p].id);
                    api.patch(&path, json!({ "read_only": on })).await.ok();
                    m.member[p] = Some((c, on));
                }
            }
            Op::Module(c, i, on) if on != m.grants[c].has(MODULES[i]) => {
                let path = format!("{ev}/collaborators/{}/modules/{}", self.collabs[c], MODULES[i].as_str());
                if on {
                    api.put(&path, json!({})).await.ok();
                    m.grants[c] = m.grants[c].with(MODULES[i]);
                } else {
                    api.delete(&path).await.ok();
                    m.grants[c] = m.grants[c].without(MODULES[i]);
                }
            }
            Op::Role(p, r) if r.map(|r| ROLES[r]) != m.role[p] => {
                let who = &self.people[p];
                let path = format!("/v1/orgs/{}/members/{}", self.org, who.id);
                match (m.role[p], r.map(|r| ROLES[r])) {
                    (None, Some(role)) => {
                        api.post(
                            &format!("/v1/orgs/{}/members", self.org),
                            json!({ "email": who.email, "role": role }),
                        )
                        .await
                        .ok();
                    }
                    (Some(_), Some(role)) => {
                        api.patch(&path, json!({ "role": role })).await.ok();
                    }
                    (Some(_), None) => {
                        api.delete(&path).await.ok();
                    }
                    (None, None) => {}
                }
                m.role[p] = r.map(|r| ROLES[r]);
            }
            Op::CreateTask(c) => {
                let t = api
                    .post(
                        &format!("{ev}/tasks"),
                        json!({ "collaborator": self.collabs[c], "title": format!("task {}", m.tasks.len()) }),
                    )
                    .await
                    .ok();
                m.tasks.push((t["id"].as_str().unwrap().to_string(), Some(c)));
            }
            Op::EditTask(i) | Op::MoveTask(i, _) | Op::DeleteTask(i) => {
                let alive: Vec<usize> = (0..m.tasks.len()).filter(|&t| m.tasks[t].1.is_some()).collect();
                if alive.is_empty() {
                    return;
                }
                let t = alive[i % alive.len()];
                let path = format!("{ev}/tasks/{}", m.tasks[t].0);
                match *op {
                    Op::EditTask(_) => {
                        api.patch(&path, json!({ "title": format!("task {t} edited at {head}") })).await.ok();
                    }
                    Op::MoveTask(_, c) => {
                        api.patch(&path, json!({ "collaborator": self.collabs[c] })).await.ok();
                        m.tasks[t].1 = Some(c);
                    }
                    _ => {
                        api.delete(&path).await.ok();
                        m.tasks[t].1 = None;
                    }
                }
            }
            Op::Credential => {
                let body = json!({ "uid": format!("WB-{head}"), "kind": "ga", "holder_name": "Guest",
                                   "holder_email": "guest@example.test", "zones": ["GA"] });
                api.post(&format!("{ev}/credentials"), body).await.ok();
            }
            Op::Rename => {
                api.patch(&ev, json!({ "name": format!("Festival {head}") })).await.ok();
            }
            Op::Connect(p) => {
                if sessions.len() < CLIENTS_MAX {
                    let node = via;
                    let mut client = SyncClient::connect(&self.nodes[node], &self.people[p].token).await;
                    let live = self.subscribe(&mut client, &self.standing(m, p), None).await;
                    sessions.push(Session { person: p, client, node, live, judged: 0 });
                }
            }
            Op::Drop(i) => {
                if let Some(s) = sessions.get_mut(i).filter(|s| s.live) {
                    s.client.disconnect().await;
                    s.live = false;
                }
            }
            Op::Resume(i, from) => {
                let Some(s) = sessions.get_mut(i) else { return };
                let Some(own) = s.client.cursors.get(&self.event).copied() else { return };
                let points = match from {
                    From::Zero => vec![0],
                    From::BeforeWidening => m.widened[s.person].clone(),
                    From::BeforeNarrowing => m.narrowed[s.person].clone(),
                    From::Own => vec![own],
                };
                let cursor = points.into_iter().filter(|c| *c <= own).max().unwrap_or(own);
                if s.live {
                    s.client.disconnect().await;
                }
                s.node = via;
                let standing = self.standing(m, s.person);
                s.client.reconnect_without_subscribing(&self.nodes[via], &self.people[s.person].token).await;
                s.live = self.subscribe(&mut s.client, &standing, Some(cursor)).await;
            }
            _ => return,
        }
        for (p, before) in before.iter().enumerate() {
            let after = self.standing(m, p);
            if !engine::feed::within(&after, before) {
                m.widened[p].push(head);
            }
            if !engine::feed::within(before, &after) {
                m.narrowed[p].push(head);
            }
        }
    }

    /// Subscribes `client` (from `cursor`); a person with no access to the event is refused.
    /// Returns whether the subscription is live.
    async fn subscribe(&self, client: &mut SyncClient, standing: &Standing, cursor: Option<i64>) -> bool {
        client.send(json!({ "type": "subscribe", "event": self.event, "cursor": cursor })).await;
        if Self::has_event(standing) {
            return true;
        }
        let m = client.next_of("refused").await;
        assert_eq!(m["code"], "not_found");
        false
    }

    /// Brings every live session to the head, then judges what each received since the last
    /// check against its person's standing now — as the model has it, which must be the
    /// engine's too.
    async fn settle(&self, m: &Model, sessions: &mut [Session]) -> Result<(), TestCaseError> {
        let head = self.head().await;
        let engine = self.nodes[0].engine.as_ref().unwrap();
        for p in 0..PEOPLE {
            let modelled = self.standing(m, p);
            let read = engine.view(&self.people[p].id, &self.event).await.ok().map(|(v, _)| v.standing);
            if Self::has_event(&modelled) {
                prop_assert_eq!(read.as_ref(), Some(&modelled), "the model and the engine agree on {}", p);
            } else {
                prop_assert!(read.is_none(), "no standing for {}: {:?}", p, read);
            }
        }
        for s in sessions.iter_mut() {
            if s.live {
                s.client.sync_to(&self.event, head).await;
            }
            let standing = self.standing(m, s.person);
            for (kind, id, data) in tests::carried(&s.client.log[s.judged..]) {
                let k = engine::Kind::parse(&kind).unwrap();
                let allowed = Self::has_event(&standing)
                    && engine::feed::visible(&standing, k, &k.owners(&id, &data))
                    && engine::feed::shape(&standing, k, data.clone()) == data;
                prop_assert!(allowed, "person {} was sent {} {} ({}) under {:?}", s.person, kind, id, data, standing);
            }
            s.judged = s.client.log.len();
        }
        Ok(())
    }

    /// At the end: every live session holds exactly what a fresh snapshot gives its person.
    async fn converged(&self, sessions: &[Session]) -> Result<(), TestCaseError> {
        let engine = self.nodes[0].engine.as_ref().unwrap();
        for s in sessions.iter().filter(|s| s.live) {
            // A person left with no access holds nothing.
            let want: BTreeMap<(String, String), Value> =
                match engine.snapshot(&self.people[s.person].id, &self.event).await {
                    Ok(snap) => snap.records.into_iter().map(|r| ((r.kind, r.id), r.data)).collect(),
                    Err(engine::Error::NotFound { .. }) => BTreeMap::new(),
                    Err(e) => panic!("{e:?}"),
                };
            let held = s.client.replica.get(&self.event).cloned().unwrap_or_default();
            prop_assert_eq!(held, want, "person {}'s replica", s.person);
        }
        Ok(())
    }
}

/// Runs `cases` random histories of `steps` on `nodes` (every case a new event).
fn histories(nodes: usize, cases: u32, steps: std::ops::Range<usize>) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let db = (nodes > 1).then(|| rt.block_on(tests::surreal::SurrealServer::start()));
    let servers: Vec<TestServer> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..nodes {
            v.push(match &db {
                Some(db) => db.node().await,
                None => TestServer::start().await,
            });
        }
        v
    });
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = TestRunner::new(config);
    let started = std::time::Instant::now();
    let case = std::sync::atomic::AtomicU64::new(0);
    let result = runner.run(&vec((op(), 0..nodes), steps), |history| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        rt.block_on(async {
            let w = World::new(&servers, n).await;
            let mut m = Model {
                seat: vec![false; PEOPLE],
                member: vec![None; PEOPLE],
                grants: vec![Modules::default(); COLLABS],
                role: vec![None; PEOPLE],
                widened: vec![Vec::new(); PEOPLE],
                narrowed: vec![Vec::new(); PEOPLE],
                ..Default::default()
            };
            let mut sessions = Vec::new();
            for (op, via) in &history {
                w.apply(&mut m, &mut sessions, op, *via).await;
                w.settle(&m, &mut sessions).await?;
            }
            w.converged(&sessions).await
        })
    });
    eprintln!("{cases} histories on {nodes} node(s) in {:?}", started.elapsed());
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Random histories of access changes, writes and sessions that connect, drop and resume
/// from any cursor, on one node: every record any session is sent is allowed by its person's
/// standing when it is sent, and every live session ends holding a fresh snapshot's records.
/// `PROPTEST_CASES` histories (256 by default).
#[test]
fn access_over_time_on_one_node() {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
    histories(1, cases, 4..24);
}

/// The same on two nodes over one SurrealDB server, ops and sessions on either: fewer
/// histories (`PROPTEST_CASES` / 8).
#[test]
fn access_over_time_on_two_nodes() {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256u32);
    histories(2, (cases / 8).max(8), 4..16);
}

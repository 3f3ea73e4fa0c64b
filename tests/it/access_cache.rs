//! The write path keeps access facts between requests; every commit checks them against the
//! event's access version, so a kept fact never lets a write through that fresh facts refuse.

use engine::{Engine, Error, InviteInput, NewAccount, NewTask};
use serde_json::json;
use tests::fixture;

fn task(title: &str) -> NewTask {
    NewTask { id: None, collaborator: None, title: title.into(), status: None, assignee: None, due: None }
}

async fn member_of_default_collaborator(engine: &Engine, owner: &str, event: &str) -> (String, String) {
    let collab = engine.get_event(owner, event).await.unwrap().event.default_collaborator;
    let member = tests::proven(
        engine,
        NewAccount { email: "crew@example.test".into(), name: "Crew".into(), password: "crew password 1".into() },
    )
    .await
    .id;
    engine
        .invite(owner, event, &collab, InviteInput { email: "crew@example.test".into(), read_only: false })
        .await
        .unwrap();
    (member, collab)
}

/// This server removes a member: their next write, decided on kept facts, is refused.
#[tokio::test]
async fn a_member_removed_here_cannot_write_with_kept_facts() {
    let f = fixture("mem://").await;
    let (member, collab) = member_of_default_collaborator(&f.engine, &f.owner, &f.event).await;
    f.engine.create_task(&member, &f.event, task("first")).await.expect("a member writes to their tabs");

    f.engine.remove_collab_member(&f.owner, &f.event, &collab, &member).await.unwrap();
    let refused = f.engine.create_task(&member, &f.event, task("after removal")).await;
    assert!(matches!(refused, Err(Error::NotFound { .. } | Error::Forbidden { .. })), "{refused:?}");
}

/// Another server (simulated by writing the database directly, as its commit would) removes
/// the member and bumps the event's access version. The kept facts here are out of date:
/// the member's write fails its commit and, read afresh, is refused; the owner — whose standing did not
/// change — is served without noticing.
#[tokio::test]
async fn kept_facts_are_checked_at_commit_against_changes_made_elsewhere() {
    let f = fixture("mem://").await;
    let (member, _) = member_of_default_collaborator(&f.engine, &f.owner, &f.event).await;
    f.engine.create_task(&member, &f.event, task("member, kept")).await.unwrap();
    f.engine.create_task(&f.owner, &f.event, task("owner, kept")).await.unwrap();

    f.engine
        .store()
        .run(
            "BEGIN TRANSACTION;
             DELETE type::record('collab_member', $e + '|' + $p);
             UPDATE type::record('event_seq', $e) SET access = (access ?? 0) + 1;
             COMMIT TRANSACTION;",
            json!({ "e": f.event, "p": member }),
        )
        .await
        .unwrap();

    let stale = f.engine.create_task(&member, &f.event, task("member, stale")).await;
    // Refused as the fresh facts say (not found), never committed.
    assert!(matches!(stale, Err(Error::NotFound { .. } | Error::Forbidden { .. })), "{stale:?}");
    f.engine.create_task(&f.owner, &f.event, task("owner, retried")).await.expect("unchanged standing is served");
    let fresh = f.engine.create_task(&member, &f.event, task("member, fresh")).await;
    assert!(matches!(fresh, Err(Error::NotFound { .. } | Error::Forbidden { .. })), "{fresh:?}");

    let titles: Vec<String> = f
        .engine
        .list_tasks(&f.owner, &f.event, Default::default(), &Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.title)
        .collect();
    assert_eq!(titles, ["member, kept", "owner, kept", "owner, retried"]);
}

/// Commits that change access (a seat, a membership, a collaborator, the event) bump the
/// event's access version; others do not.
#[tokio::test]
async fn access_changes_bump_the_access_version() {
    let f = fixture("mem://").await;
    let version = |e: Engine, ev: String| async move {
        e.store()
            .run("SELECT VALUE access FROM type::record('event_seq', $e)", json!({ "e": ev }))
            .await
            .unwrap()
            .value::<i64>(0)
            .unwrap()
            .unwrap_or(0)
    };
    let v0 = version(f.engine.clone(), f.event.clone()).await;
    f.engine.create_task(&f.owner, &f.event, task("no access change")).await.unwrap();
    assert_eq!(version(f.engine.clone(), f.event.clone()).await, v0);
    member_of_default_collaborator(&f.engine, &f.owner, &f.event).await;
    assert!(version(f.engine.clone(), f.event.clone()).await > v0, "a new membership bumps the version");
}

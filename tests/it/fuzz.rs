//! Property-based fuzzing of what takes input from outside: the sync protocol's decoder,
//! pushed mutations (through a real engine), the credential CSV import, the photo metadata
//! stripper and image decoding. Each property runs `PROPTEST_CASES` cases (proptest's default,
//! 256, in CI); larger runs are a matter of setting it. Inputs that once broke a property are
//! kept as regression cases at the end.

use std::sync::atomic::{AtomicU64, Ordering};

use engine::{
    protocol::{ClientMessage, Mutation, MutationOp, MutationResult},
    rules::gate::{IMPORT_ERRORS_MAX, parse_import},
};
use proptest::{collection::vec, prelude::*, test_runner::TestRunner};
use serde_json::{Map, Value, json};
use server::{
    images::{ImageLimits, Kind, thumbnails},
    strip::{Stripped, without_metadata},
};
use tests::files::{heic, jpeg, jpeg_with_metadata, png_with_text};

/// Words the protocol and the records use, so generated input reaches past the first check.
const WORDS: &[&str] = &[
    "type",
    "hello",
    "subscribe",
    "unsubscribe",
    "push",
    "ping",
    "event",
    "cursor",
    "token",
    "device",
    "protocol",
    "mutations",
    "id",
    "n",
    "kind",
    "op",
    "record",
    "fields",
    "hlc",
    "create",
    "update",
    "delete",
    "task",
    "activity",
    "file_meta",
    "scan",
    "punch",
    "title",
    "status",
    "collaborator",
    "due",
    "assignee",
    "name",
    "starts_at",
    "ends_at",
    "todo",
    "done",
    "uid",
    "zones",
    "holder_name",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![3 => proptest::sample::select(WORDS).prop_map(String::from), 1 => ".{0,24}"]
}

/// JSON of any shape, its keys and strings mostly the protocol's words.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((word(), inner), 0..8).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    /// Any text is answered by the decoder (a message or an error), never a crash.
    #[test]
    fn the_protocol_decoder_takes_any_text(text in ".{0,2048}") {
        let _ = serde_json::from_str::<ClientMessage>(&text);
    }

    /// Any JSON is answered too; what the decoder accepts it can say again, unchanged.
    #[test]
    fn what_the_protocol_decoder_accepts_survives_a_round_trip(v in json_value(), t in word()) {
        let mut v = v;
        if let Some(m) = v.as_object_mut() {
            m.insert("type".into(), json!(t));
        }
        if let Ok(m) = serde_json::from_str::<ClientMessage>(&v.to_string()) {
            let again: ClientMessage = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
            prop_assert_eq!(again, m);
        }
    }

    /// Any text as a credential import: credentials for at most its lines, or at most
    /// IMPORT_ERRORS_MAX errors and their count.
    #[test]
    fn a_credential_import_of_any_text_is_answered(
        lines in vec(prop_oneof![
            ".{0,80}",
            vec(prop_oneof![word(), "[A-Za-z0-9 ;,\"]{0,12}"], 0..7).prop_map(|cells| cells.join(",")),
        ], 0..40),
        header in any::<bool>(),
    ) {
        let mut text = String::new();
        if header {
            text.push_str("uid,kind,holder_name,zones,valid_days,holder_email\n");
        }
        text.push_str(&lines.join("\n"));
        match parse_import(&text, "e", &|z: &str| z == "todo" || z == "task") {
            Ok(credentials) => prop_assert!(credentials.len() <= text.lines().count()),
            Err((errors, n)) => prop_assert!(errors.len() <= IMPORT_ERRORS_MAX && n >= errors.len()),
        }
    }
}

/// Photos as phones send them, with their metadata.
fn photos() -> Vec<(Kind, Vec<u8>)> {
    vec![
        (Kind::Jpeg, jpeg_with_metadata(24, 16, 6)),
        (Kind::Jpeg, jpeg(16, 16, 40)),
        (Kind::Png, png_with_text(16, 12)),
        (Kind::Heif, heic(b"\0\0\0\x06Exif\0\0MM\0* GPS 51.5N", b"<exif:GPSLatitude>51.5</exif:GPSLatitude>")),
    ]
}

/// Edits to a file: a byte changed, the file cut short, bytes inserted, a run repeated.
#[derive(Clone, Debug)]
enum Edit {
    Set(usize, u8),
    Cut(usize),
    Insert(usize, Vec<u8>),
    Repeat(usize, usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    vec(
        prop_oneof![
            4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
            1 => any::<usize>().prop_map(Edit::Cut),
            2 => (any::<usize>(), vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Edit::Insert(i, b)),
            1 => (any::<usize>(), 1..64usize).prop_map(|(i, n)| Edit::Repeat(i, n)),
        ],
        0..6,
    )
}

fn edited(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len().max(1);
        match e {
            Edit::Set(i, b) => {
                if let Some(x) = bytes.get_mut(i % len) {
                    *x = *b;
                }
            }
            Edit::Cut(i) => bytes.truncate(i % len),
            Edit::Insert(i, b) => {
                let at = (i % len).min(bytes.len());
                bytes.splice(at..at, b.iter().copied());
            }
            Edit::Repeat(i, n) => {
                let at = (i % len).min(bytes.len());
                let run: Vec<u8> = bytes[at..(at + n).min(bytes.len())].to_vec();
                bytes.splice(at..at, run);
            }
        }
    }
    bytes
}

proptest! {
    /// A photo damaged in any of these ways is stripped or reported unknown, never a crash;
    /// what the stripper hands out has nothing left for a second pass to take.
    #[test]
    fn a_damaged_photo_is_stripped_once_and_for_all(which in 0..4usize, edits in edits()) {
        let (kind, photo) = photos().swap_remove(which);
        let bytes = edited(photo, &edits);
        if let Stripped::Copy(out) = without_metadata(&bytes, kind) {
            prop_assert_eq!(without_metadata(&out, kind), Stripped::Clean);
        }
    }

    /// A damaged image is decoded within its limits or refused, never a crash; every
    /// thumbnail made fits its size.
    #[test]
    fn a_damaged_image_is_decoded_within_its_limits_or_refused(which in 0..3usize, edits in edits()) {
        let (kind, photo) = photos().swap_remove(which);
        let bytes = edited(photo, &edits);
        if let Ok(made) = thumbnails(&bytes, kind, &[8, 64], ImageLimits::default()) {
            for (size, t) in made.thumbnails {
                let img = image::load_from_memory(&t).expect("a thumbnail decodes");
                prop_assert!(img.width() <= size && img.height() <= size);
            }
        }
    }
}

const KINDS: &[&str] = &["task", "activity", "advance", "file_meta", "scan", "punch", "asset_move", "seat", "event"];
const FIELDS: &[&str] = &[
    "title",
    "status",
    "collaborator",
    "due",
    "assignee",
    "name",
    "starts_at",
    "ends_at",
    "notes",
    "id",
    "event",
    "kind",
    "uid",
    "gate",
    "zones",
    "content_hash",
    "size",
    "at",
];

/// A mutation: of any shape (known kinds and fields mostly, any values), or a plausible task
/// create or edit (any title, a status of the list or not), so pushes also get applied.
fn mutation() -> impl Strategy<Value = (Mutation, bool)> {
    prop_oneof![wild_mutation(), task_mutation()]
}

fn task_mutation() -> impl Strategy<Value = (Mutation, bool)> {
    (
        "[a-z0-9-]{1,36}",
        any::<bool>(),
        prop_oneof![Just(MutationOp::Create), Just(MutationOp::Update), Just(MutationOp::Delete)],
        proptest::option::of(prop_oneof![Just("0193a1b2-0000-7000-8000-000000000001".to_string()), "[0-9a-f-]{1,36}"]),
        ".{0,300}",
        proptest::option::of(prop_oneof![
            proptest::sample::select(&["todo", "active", "in_review", "done", "archived"][..]).prop_map(String::from),
            ".{0,12}",
        ]),
    )
        .prop_map(|(id, numbered, op, record, title, status)| {
            let mut fields = json!({ "title": title });
            if let Some(s) = status {
                fields["status"] = json!(s);
            }
            (Mutation { id, n: None, kind: "task".into(), op, record, fields, hlc: None }, numbered)
        })
}

fn wild_mutation() -> impl Strategy<Value = (Mutation, bool)> {
    (
        prop_oneof![4 => "[a-z0-9-]{1,36}", 1 => ".{0,80}"],
        any::<bool>(),
        prop_oneof![4 => proptest::sample::select(KINDS).prop_map(String::from), 1 => ".{0,16}"],
        prop_oneof![Just(MutationOp::Create), Just(MutationOp::Update), Just(MutationOp::Delete)],
        proptest::option::of(prop_oneof![Just("0193a1b2-0000-7000-8000-000000000001".to_string()), ".{0,40}"]),
        vec((proptest::sample::select(FIELDS), json_value()), 0..6),
        proptest::option::of(".{0,40}"),
    )
        .prop_map(|(id, numbered, kind, op, record, fields, hlc)| {
            let fields = Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
            (Mutation { id, n: None, kind, op, record, fields, hlc }, numbered)
        })
}

/// Pushes of any mutations, through a real engine: each mutation gets one answer, its own,
/// and the event's log stays a gap-free run of seqs however many were applied.
#[test]
fn pushed_mutations_of_any_shape_are_answered_and_leave_the_log_whole() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = rt.block_on(tests::fixture("mem://"));
    let counter = AtomicU64::new(1);
    let (pushed, accepted) = (AtomicU64::new(0), AtomicU64::new(0));
    let head = AtomicU64::new(rt.block_on(f.engine.head(&f.event)).unwrap() as u64);
    let mut runner = TestRunner::new(ProptestConfig::default());
    runner
        .run(&vec(mutation(), 1..8), |ms| {
            let ms: Vec<Mutation> = ms
                .into_iter()
                .map(|(mut m, numbered)| {
                    if numbered {
                        m.n = Some(counter.fetch_add(1, Ordering::Relaxed));
                    }
                    m
                })
                .collect();
            let answer = rt.block_on(f.engine.apply_mutations(&f.owner, &f.event, "fuzz", &ms));
            prop_assert!(answer.failed.is_none(), "no input is the server's own failure: {:?}", answer.failed);
            let results = answer.results;
            prop_assert_eq!(results.len(), ms.len());
            pushed.fetch_add(ms.len() as u64, Ordering::Relaxed);
            let taken = results.iter().filter(|r| matches!(r, MutationResult::Accepted { .. })).count();
            accepted.fetch_add(taken as u64, Ordering::Relaxed);
            for (r, m) in results.iter().zip(&ms) {
                let answered = match r {
                    MutationResult::Accepted { mutation, .. } | MutationResult::Rejected { mutation, .. } => mutation,
                    MutationResult::Deferred { .. } => {
                        prop_assert!(false, "the engine defers nothing (quotas are the server's): {:?}", r);
                        continue;
                    }
                };
                // An id longer than the protocol allows is refused, and named by its first
                // characters only: the answer stays bounded.
                let id: String = m.id.chars().take(engine::MUTATION_ID_LEN_MAX).collect();
                prop_assert_eq!(answered, &id);
                if id != m.id {
                    let refused = matches!(r, MutationResult::Rejected { code, .. } if code == "invalid_input");
                    prop_assert!(refused, "an over-long id is refused: {:?}", r);
                }
            }
            let before = head.load(Ordering::Relaxed) as i64;
            let now = rt.block_on(f.engine.head(&f.event)).unwrap();
            let log = rt.block_on(f.engine.changes_since(&f.event, before, 10_000)).unwrap();
            prop_assert_eq!(log.len() as i64, now - before, "every seq up to the head is in the log");
            for (i, c) in log.iter().enumerate() {
                prop_assert_eq!(c.seq, before + 1 + i as i64);
            }
            head.store(now as u64, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    let (pushed, accepted) = (pushed.into_inner(), accepted.into_inner());
    eprintln!("fuzzed pushes: {pushed} mutations, {accepted} accepted");
    // The generator reaches past validation: some of its mutations are applied.
    assert!(accepted > 0, "none of {pushed} fuzzed mutations was accepted");
}

/// Found by the push property: a mutation naming the empty record (`"record": ""`) made the
/// store fail ("not a valid id"), which is the server's own failure, never an answer, so a
/// device would have pushed it forever. It is refused as bad input.
#[tokio::test]
async fn a_push_naming_an_empty_record_is_refused_as_bad_input() {
    let f = tests::fixture("mem://").await;
    for op in [MutationOp::Update, MutationOp::Delete] {
        let m = Mutation {
            id: "m1".into(),
            n: None,
            kind: "task".into(),
            op,
            record: Some(String::new()),
            fields: json!({ "title": "x" }),
            hlc: None,
        };
        let answer = f.engine.apply_mutations(&f.owner, &f.event, "fuzz", &[m]).await;
        assert!(answer.failed.is_none(), "{:?}", answer.failed);
        assert!(
            matches!(&answer.results[..], [MutationResult::Rejected { code, .. }] if code == "invalid_input"),
            "{:?}",
            answer.results
        );
    }
}

/// Found by the stripper's property: a photo cut to its first few bytes (shorter than the
/// format's signature) crashed the stripper. Every prefix is now answered — as `Unknown`, or
/// `Clean` for a bare signature, which holds nothing.
#[test]
fn a_photo_cut_short_is_answered() {
    for (kind, photo) in photos() {
        for n in 0..24 {
            let out = without_metadata(&photo[..n], kind);
            assert!(!matches!(out, Stripped::Copy(_)), "{kind:?}, {n} bytes: {out:?}");
        }
    }
}

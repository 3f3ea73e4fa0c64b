//! The front gate: zones, gates with lanes, credentials (wristbands, badges) and the scans
//! made at the lanes — and the field modules that open them to a collaborator.
//!
//! A lane decides on its device, from the replica, with no network ([`decide_scan`]); every
//! scan, admitted or not, is an immutable record. The server keeps every scan it is sent and
//! flags what the devices could not know: an admission while the credential was already
//! inside (two gates that could not talk admitted it: `duplicate_entry`, raised on the later
//! one by clock) and an admission after a revocation the device had not heard of
//! (`admitted_while_revoked`). Flags are records of their own, kept equal to what the scans
//! say; a scan is never dropped or rewritten.
//!
//! The rules are pure functions here, used by the server and the device replica alike.

use std::collections::BTreeMap;

use crate::{
    Error, Result,
    access::{Module, Standing},
    model::{Credential, CredentialStatus, Direction, Gate, Scan, ScanDecision, ScanFlagCode, Zone},
    rules::{optional_text, record_id, validate_name},
    time,
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Longest credential uid.
pub const UID_LEN_MAX: usize = 64;
/// Longest zone code.
pub const ZONE_CODE_LEN_MAX: usize = 32;
/// Most zones one credential admits into.
pub const CREDENTIAL_ZONES_MAX: usize = 32;
/// Most valid days one credential lists.
pub const VALID_DAYS_MAX: usize = 366;
/// Most lanes one gate has.
pub const GATE_LANES_MAX: usize = 64;
/// Longest notes on a credential, in characters.
pub const NOTES_LEN_MAX: usize = 2_000;
/// Most rows one credential import takes (one request; it commits in parts of at most
/// `COMMIT_WRITES_MAX` writes, the change log's limit per commit).
pub const IMPORT_ROWS_MAX: usize = 100_000;
/// Most row errors one refused import reports (it reports how many there were in all).
pub const IMPORT_ERRORS_MAX: usize = 100;
/// Most credentials one page of the list returns.
pub const CREDENTIAL_PAGE_MAX: usize = 5_000;

/// The key of a module grant.
pub fn grant_key(event: &str, collaborator: &str, module: Module) -> String {
    format!("{event}|{collaborator}|{}", module.as_str())
}

/// The key of a credential: a uid is unique in its event.
pub fn credential_key(event: &str, uid: &str) -> String {
    format!("{event}|{uid}")
}

fn zone_key(event: &str, code: &str) -> String {
    format!("{event}|{code}")
}

pub(crate) fn flag_key(scan: &str, code: ScanFlagCode) -> String {
    let code = match code {
        ScanFlagCode::DuplicateEntry => "duplicate_entry",
        ScanFlagCode::AdmittedWhileRevoked => "admitted_while_revoked",
    };
    format!("{scan}|{code}")
}

/// Distinguishes "field absent" (`None`) from "field set to null" (`Some(None)`).
fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewZone {
    pub code: String,
    pub name: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGate {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    /// The code of the zone its lanes admit into.
    pub zone: String,
    pub lanes: Vec<String>,
    #[serde(default)]
    pub utc_offset_minutes: Option<i32>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    pub uid: String,
    pub kind: String,
    pub holder_name: String,
    pub zones: Vec<String>,
    #[serde(default)]
    pub valid_days: Vec<String>,
    #[serde(default)]
    pub holder_email: Option<String>,
    #[serde(default)]
    pub holder_phone: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialPatch {
    /// `revoked` takes the credential out of use; `issued` puts it back.
    #[serde(default)]
    pub status: Option<CredentialStatus>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub holder_name: Option<String>,
    #[serde(default)]
    pub zones: Option<Vec<String>>,
    #[serde(default)]
    pub valid_days: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub holder_email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub holder_phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub notes: Option<Option<String>>,
}

/// A scan as a lane's device sends it (the `fields` of a `scan` create).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewScan {
    #[serde(default)]
    pub id: Option<String>,
    /// The uid read.
    pub credential: String,
    pub gate: String,
    pub lane: String,
    #[serde(default)]
    pub direction: Option<Direction>,
    /// What the device decided (the server records it; it never decides again).
    pub decision: ScanDecision,
    pub device_time: String,
}

/// The answer to a credential import.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImportReport {
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// One malformed row of an import: its line in the file (the header is line 1).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImportError {
    pub line: u64,
    pub message: String,
}

// ---- rules (pure) ----

/// A uid, zone code or lane name: 1 to `max` characters of `A-Z a-z 0-9 _ . : -`.
pub(crate) fn check_code(field: &str, v: &str, max: usize) -> Result<String> {
    let v = v.trim();
    let ok = !v.is_empty()
        && v.len() <= max
        && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
    if ok {
        Ok(v.to_string())
    } else {
        Err(Error::invalid(format!("{field} must be 1 to {max} characters of A-Z a-z 0-9 _ . : -")))
    }
}

fn check_uid(uid: &str) -> Result<String> {
    check_code("uid", uid, UID_LEN_MAX)
}

fn check_zones(zones: Vec<String>, known: &dyn Fn(&str) -> bool) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(zones.len());
    for z in zones {
        let z = check_code("zone", &z, ZONE_CODE_LEN_MAX)?;
        if !known(&z) {
            return Err(Error::rule("unknown_zone", format!("zone {z} is not a zone of this event")));
        }
        if !out.contains(&z) {
            out.push(z);
        }
    }
    if out.is_empty() || out.len() > CREDENTIAL_ZONES_MAX {
        return Err(Error::invalid(format!("zones must list 1 to {CREDENTIAL_ZONES_MAX} zone codes")));
    }
    out.sort();
    Ok(out)
}

fn check_days(days: Vec<String>) -> Result<Vec<String>> {
    if days.len() > VALID_DAYS_MAX {
        return Err(Error::invalid(format!("valid_days may list at most {VALID_DAYS_MAX} days")));
    }
    let mut out = days.iter().map(|d| time::parse_date("valid_days", d.trim())).collect::<Result<Vec<_>>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn check_notes(notes: Option<String>) -> Result<Option<String>> {
    match notes.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(n) if n.chars().count() > NOTES_LEN_MAX => {
            Err(Error::invalid(format!("notes must be at most {NOTES_LEN_MAX} characters")))
        }
        Some(n) => Ok(Some(n.to_string())),
    }
}

fn check_email(email: Option<String>) -> Result<Option<String>> {
    match email.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(e) => crate::validate_email(e).map(Some),
    }
}

pub fn build_zone(input: NewZone, event: &str) -> Result<Zone> {
    let code = check_code("code", &input.code, ZONE_CODE_LEN_MAX)?;
    Ok(Zone {
        id: zone_key(event, &code),
        event: event.into(),
        code,
        name: validate_name("name", &input.name)?,
        created_at: time::now(),
    })
}

pub fn build_gate(input: NewGate, event: &str, zone_known: bool) -> Result<Gate> {
    let zone = check_code("zone", &input.zone, ZONE_CODE_LEN_MAX)?;
    if !zone_known {
        return Err(Error::rule("unknown_zone", format!("zone {zone} is not a zone of this event")));
    }
    let mut lanes = Vec::with_capacity(input.lanes.len());
    for l in input.lanes {
        let l = check_code("lane", &l, ZONE_CODE_LEN_MAX)?;
        if !lanes.contains(&l) {
            lanes.push(l);
        }
    }
    if lanes.is_empty() || lanes.len() > GATE_LANES_MAX {
        return Err(Error::invalid(format!("lanes must list 1 to {GATE_LANES_MAX} lane names")));
    }
    let offset = input.utc_offset_minutes.unwrap_or(0);
    if !(-14 * 60..=14 * 60).contains(&offset) {
        return Err(Error::invalid("utc_offset_minutes must be between -840 and 840"));
    }
    Ok(Gate {
        id: record_id(input.id.as_deref())?,
        event: event.into(),
        name: validate_name("name", &input.name)?,
        zone,
        lanes,
        utc_offset_minutes: offset,
        created_at: time::now(),
    })
}

/// A credential as its create (or an import row) makes it; `zone_known` says which zone codes
/// the event has.
pub fn build_credential(input: NewCredential, event: &str, zone_known: &dyn Fn(&str) -> bool) -> Result<Credential> {
    let uid = check_uid(&input.uid)?;
    let now = time::now();
    Ok(Credential {
        id: credential_key(event, &uid),
        event: event.into(),
        uid,
        kind: check_code("kind", &input.kind, ZONE_CODE_LEN_MAX)?,
        zones: check_zones(input.zones, zone_known)?,
        valid_days: check_days(input.valid_days)?,
        holder_name: validate_name("holder_name", &input.holder_name)?,
        status: CredentialStatus::Issued,
        holder_email: check_email(input.holder_email)?,
        holder_phone: optional_text("holder_phone", input.holder_phone)?,
        notes: check_notes(input.notes)?,
        revoked_stamp: None,
        created_at: now.clone(),
        updated_at: now,
    })
}

/// Applies a change to a credential. Revoking records the server's clock (`stamp`), so an
/// admission stamped later is known to have come after it.
pub fn apply_credential(
    c: &mut Credential,
    patch: CredentialPatch,
    zone_known: &dyn Fn(&str) -> bool,
    stamp: &str,
) -> Result<()> {
    if let Some(k) = patch.kind {
        c.kind = check_code("kind", &k, ZONE_CODE_LEN_MAX)?;
    }
    if let Some(n) = patch.holder_name {
        c.holder_name = validate_name("holder_name", &n)?;
    }
    if let Some(z) = patch.zones {
        c.zones = check_zones(z, zone_known)?;
    }
    if let Some(d) = patch.valid_days {
        c.valid_days = check_days(d)?;
    }
    if let Some(e) = patch.holder_email {
        c.holder_email = check_email(e)?;
    }
    if let Some(p) = patch.holder_phone {
        c.holder_phone = optional_text("holder_phone", p)?;
    }
    if let Some(n) = patch.notes {
        c.notes = check_notes(n)?;
    }
    match patch.status {
        Some(CredentialStatus::Revoked) if c.status != CredentialStatus::Revoked => {
            c.status = CredentialStatus::Revoked;
            c.revoked_stamp = Some(stamp.to_string());
        }
        Some(CredentialStatus::Issued) => {
            c.status = CredentialStatus::Issued;
            c.revoked_stamp = None;
        }
        _ => {}
    }
    c.updated_at = time::now();
    Ok(())
}

/// A scan record from what a lane sends. `device` and `actor` are who sent it (never taken
/// from the fields), `hlc` its clock.
pub fn build_scan(input: NewScan, event: &str, gate: &Gate, device: &str, actor: &str, hlc: &str) -> Result<Scan> {
    let lane = input.lane.trim().to_string();
    if !gate.lanes.contains(&lane) {
        return Err(Error::rule("unknown_lane", format!("lane {lane} is not a lane of gate {}", gate.name)));
    }
    Ok(Scan {
        id: record_id(input.id.as_deref())?,
        event: event.into(),
        credential: check_uid(&input.credential)?,
        gate: gate.id.clone(),
        lane,
        direction: input.direction.unwrap_or(Direction::Entry),
        decision: input.decision,
        device: device.into(),
        device_time: time::parse("device_time", &input.device_time)?,
        hlc: hlc.into(),
        scanned_by: actor.into(),
    })
}

/// The calendar day at the gate for a UTC timestamp.
pub fn local_day(utc: &str, utc_offset_minutes: i32) -> String {
    chrono::DateTime::parse_from_rfc3339(utc)
        .map(|t| t.with_timezone(&chrono::Utc) + chrono::Duration::minutes(i64::from(utc_offset_minutes)))
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Whether a scan moves its credential in or out.
fn moves(s: &Scan) -> bool {
    matches!(s.decision, ScanDecision::Admit | ScanDecision::Exit)
}

/// The scan that says where a credential is now: the latest admission or exit by clock.
pub fn presence<'a>(scans: impl IntoIterator<Item = &'a Scan>) -> Option<&'a Scan> {
    scans.into_iter().filter(|s| moves(s)).max_by(|a, b| (&a.hlc, &a.id).cmp(&(&b.hlc, &b.id)))
}

/// The lane's decision, made on the device from what its replica holds: the credential (None:
/// the event has no such uid), the gate, the direction, the device's time, and the scan that
/// says where the credential is (see [`presence`]).
pub fn decide_scan(
    credential: Option<&Credential>,
    gate: &Gate,
    direction: Direction,
    device_time: &str,
    last: Option<&Scan>,
) -> ScanDecision {
    let Some(c) = credential else { return ScanDecision::Unknown };
    if direction == Direction::Exit {
        return ScanDecision::Exit;
    }
    if c.status == CredentialStatus::Revoked {
        return ScanDecision::Revoked;
    }
    if !c.zones.contains(&gate.zone) {
        return ScanDecision::WrongZone;
    }
    if !c.valid_days.is_empty() && !c.valid_days.contains(&local_day(device_time, gate.utc_offset_minutes)) {
        return ScanDecision::WrongDay;
    }
    if last.is_some_and(|l| l.decision == ScanDecision::Admit) {
        return ScanDecision::AlreadyInside;
    }
    ScanDecision::Admit
}

/// The admissions among one credential's scans that came while it was already inside
/// (walking admissions and exits by clock): `(admission, the admission it duplicates)`.
pub fn duplicate_entries(scans: &[&Scan]) -> Vec<(String, String)> {
    let mut ordered: Vec<&&Scan> = scans.iter().filter(|s| moves(s)).collect();
    ordered.sort_by(|a, b| (&a.hlc, &a.id).cmp(&(&b.hlc, &b.id)));
    let mut inside: Option<&str> = None;
    let mut out = Vec::new();
    for s in ordered {
        match s.decision {
            ScanDecision::Admit => {
                if let Some(earlier) = inside {
                    out.push((s.id.clone(), earlier.to_string()));
                }
                inside = Some(&s.id);
            }
            _ => inside = None,
        }
    }
    out
}

/// A credential as `s` may receive it: the event team gets all of it; a gate device only
/// [`crate::model::GATE_CREDENTIAL_FIELDS`].
pub fn shape_credential(s: &Standing, mut data: Value) -> Value {
    if !s.seat
        && let Some(m) = data.as_object_mut()
    {
        m.retain(|k, _| crate::model::GATE_CREDENTIAL_FIELDS.contains(&k.as_str()));
    }
    data
}

/// The columns an import file may have; the first four are required.
const IMPORT_COLUMNS: &[&str] =
    &["uid", "kind", "holder_name", "zones", "valid_days", "holder_email", "holder_phone", "notes"];

/// Splits a list cell: codes or days separated by `;`, `,` or spaces.
fn list_cell(v: &str) -> Vec<String> {
    v.split([';', ',', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// Reads a CSV import (a header line naming [`IMPORT_COLUMNS`], then one credential per line)
/// into credentials, or every malformed line (at most [`IMPORT_ERRORS_MAX`] of them, and how
/// many there were).
pub fn parse_import(
    csv_text: &str,
    event: &str,
    zone_known: &dyn Fn(&str) -> bool,
) -> std::result::Result<Vec<Credential>, (Vec<ImportError>, usize)> {
    let fail = |line: u64, message: String| Err((vec![ImportError { line, message }], 1));
    let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(csv_text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.to_lowercase()).collect(),
        Err(_) => return fail(1, "the first line must name the columns (uid,kind,holder_name,zones,…)".into()),
    };
    for c in &header {
        if !IMPORT_COLUMNS.contains(&c.as_str()) {
            return fail(1, format!("unknown column {c:?}; the columns are {}", IMPORT_COLUMNS.join(", ")));
        }
    }
    for need in &IMPORT_COLUMNS[..4] {
        if !header.iter().any(|c| c == need) {
            return fail(1, format!("the column {need} is required"));
        }
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut error_count = 0;
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for record in reader.records() {
        let (line, result) = match record {
            Err(e) => (e.position().map_or(0, |p| p.line()), Err(Error::invalid("the line is not valid CSV"))),
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line());
                if out.len() + error_count >= IMPORT_ROWS_MAX {
                    return fail(line, format!("an import takes at most {IMPORT_ROWS_MAX} credentials"));
                }
                let cell = |name: &str| header.iter().position(|c| c == name).and_then(|i| r.get(i)).unwrap_or("");
                let some = |name: &str| Some(cell(name).to_string()).filter(|v| !v.is_empty());
                let input = NewCredential {
                    uid: cell("uid").into(),
                    kind: cell("kind").into(),
                    holder_name: cell("holder_name").into(),
                    zones: list_cell(cell("zones")),
                    valid_days: list_cell(cell("valid_days")),
                    holder_email: some("holder_email"),
                    holder_phone: some("holder_phone"),
                    notes: some("notes"),
                };
                if r.len() > header.len() {
                    (line, Err(Error::invalid(format!("the line has {} cells for {} columns", r.len(), header.len()))))
                } else {
                    (line, build_credential(input, event, zone_known))
                }
            }
        };
        let result = result.and_then(|c| match seen.insert(c.uid.clone(), line) {
            Some(first) => Err(Error::invalid(format!("uid {} is also on line {first}", c.uid))),
            None => Ok(c),
        });
        match result {
            Ok(c) => out.push(c),
            Err(e) => {
                error_count += 1;
                if errors.len() < IMPORT_ERRORS_MAX {
                    errors.push(ImportError { line, message: e.to_string() });
                }
            }
        }
    }
    if error_count > 0 {
        return Err((errors, error_count));
    }
    Ok(out)
}

// ---- the engine's operations ----

/// Filters of the scan list.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanFilter {
    #[serde(default)]
    pub credential: Option<String>,
    #[serde(default)]
    pub gate: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        Gate {
            id: "g".into(),
            event: "e".into(),
            name: "Gate A".into(),
            zone: "GA".into(),
            lanes: vec!["1".into()],
            utc_offset_minutes: -300,
            created_at: String::new(),
        }
    }

    fn credential(zones: &[&str], days: &[&str]) -> Credential {
        let known = |_: &str| true;
        build_credential(
            NewCredential {
                uid: "W-1".into(),
                kind: "ga".into(),
                holder_name: "Ada".into(),
                zones: zones.iter().map(|z| z.to_string()).collect(),
                valid_days: days.iter().map(|d| d.to_string()).collect(),
                holder_email: None,
                holder_phone: None,
                notes: None,
            },
            "e",
            &known,
        )
        .unwrap()
    }

    fn scan(id: &str, hlc: &str, decision: ScanDecision) -> Scan {
        Scan {
            id: id.into(),
            event: "e".into(),
            credential: "W-1".into(),
            gate: "g".into(),
            lane: "1".into(),
            direction: Direction::Entry,
            decision,
            device: "d".into(),
            device_time: "2026-07-04T18:00:00.000Z".into(),
            hlc: hlc.into(),
            scanned_by: "p".into(),
        }
    }

    #[test]
    fn every_decision() {
        use ScanDecision::*;
        let g = gate();
        let t = "2026-07-04T18:00:00.000Z"; // 13:00 on July 4th at the gate (UTC-5)
        let ok = credential(&["GA", "VIP"], &["2026-07-04"]);
        let mut revoked = ok.clone();
        apply_credential(
            &mut revoked,
            CredentialPatch { status: Some(CredentialStatus::Revoked), ..Default::default() },
            &|_| true,
            "s",
        )
        .unwrap();
        let vip_only = credential(&["VIP"], &[]);
        let other_day = credential(&["GA"], &["2026-07-05"]);
        let every_day = credential(&["GA"], &[]);
        let inside = scan("a", "1", Admit);
        let out = scan("b", "2", Exit);
        type Case<'a> = (&'a str, Option<&'a Credential>, Direction, &'a str, Option<&'a Scan>, ScanDecision);
        let cases: Vec<Case<'_>> = vec![
            ("valid", Some(&ok), Direction::Entry, t, None, Admit),
            ("unknown uid", None, Direction::Entry, t, None, Unknown),
            ("unknown uid leaving", None, Direction::Exit, t, None, Unknown),
            ("revoked", Some(&revoked), Direction::Entry, t, None, Revoked),
            ("other zone", Some(&vip_only), Direction::Entry, t, None, WrongZone),
            ("other day", Some(&other_day), Direction::Entry, t, None, WrongDay),
            // 02:00 UTC on the 5th is still the 4th at the gate.
            ("the site's calendar", Some(&ok), Direction::Entry, "2026-07-05T02:00:00Z", None, Admit),
            ("every day", Some(&every_day), Direction::Entry, t, None, Admit),
            ("inside", Some(&ok), Direction::Entry, t, Some(&inside), AlreadyInside),
            ("back after an exit", Some(&ok), Direction::Entry, t, Some(&out), Admit),
            ("leaving", Some(&ok), Direction::Exit, t, Some(&inside), Exit),
        ];
        for (what, c, dir, at, last, want) in cases {
            assert_eq!(decide_scan(c, &g, dir, at, last), want, "{what}");
        }
    }

    #[test]
    fn presence_is_the_latest_move_by_clock() {
        let a = scan("a", "0002", ScanDecision::Admit);
        let b = scan("b", "0001", ScanDecision::Exit);
        let refused = scan("c", "0003", ScanDecision::AlreadyInside);
        assert_eq!(presence([&a, &b, &refused]).map(|s| s.id.as_str()), Some("a"));
        assert_eq!(presence([&refused]), None);
    }

    #[test]
    fn duplicates_are_the_later_admissions_by_clock() {
        use ScanDecision::*;
        // Arrival order differs from clock order: the gate that was offline admitted first.
        let online = scan("online", "0005", Admit);
        let offline = scan("offline", "0003", Admit);
        assert_eq!(duplicate_entries(&[&online, &offline]), vec![("online".into(), "offline".into())]);
        // An exit between two admissions: no duplicate.
        let exit = scan("exit", "0004", Exit);
        assert!(duplicate_entries(&[&online, &offline, &exit]).is_empty());
        // Refused scans do not move anyone.
        let refused = scan("r", "0006", AlreadyInside);
        assert_eq!(duplicate_entries(&[&online, &offline, &refused]).len(), 1);
        // Three gates, one credential: two duplicates.
        let third = scan("third", "0007", Admit);
        assert_eq!(duplicate_entries(&[&online, &offline, &third]).len(), 2);
    }

    #[test]
    fn import_reports_every_bad_line() {
        let zones = |z: &str| z == "GA" || z == "VIP";
        let csv = "uid,kind,holder_name,zones,valid_days,holder_email\n\
                   W-1,ga,Ada,GA,2026-07-04;2026-07-05,ada@example.com\n\
                   W-2,ga,,GA,,\n\
                   W 3,ga,Bo,GA,,\n\
                   W-4,ga,Cy,MOON,,\n\
                   W-1,vip,Di,VIP,,\n\
                   W-6,ga,Ed,GA,July 4th,\n\
                   W-7,vip,\"Lee, Jr.\",GA VIP,,lee@example.com\n";
        let (errors, n) = parse_import(csv, "e", &zones).unwrap_err();
        assert_eq!(n, 5);
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7]);
        assert!(errors[0].message.contains("holder_name"), "{}", errors[0].message);
        assert!(errors[2].message.contains("MOON"), "{}", errors[2].message);
        assert!(errors[3].message.contains("line 2"), "{}", errors[3].message);

        let good = "UID,Kind,Holder_Name,Zones\nW-1,ga,Ada,GA\nW-2,vip,\"Lee, Jr.\",GA;VIP\n";
        let rows = parse_import(good, "e", &zones).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].holder_name, "Lee, Jr.");
        assert_eq!(rows[1].zones, vec!["GA".to_string(), "VIP".to_string()]);
        assert_eq!(rows[1].id, "e|W-2");

        let (errors, _) = parse_import("uid,kind,name\n", "e", &zones).unwrap_err();
        assert_eq!(errors[0].line, 1);
        let (errors, _) = parse_import("uid,kind,holder_name\n", "e", &zones).unwrap_err();
        assert!(errors[0].message.contains("zones"));
    }

    #[test]
    fn a_gate_device_gets_no_contact_details() {
        let mut c = credential(&["GA"], &[]);
        c.holder_email = Some("ada@example.com".into());
        c.notes = Some("allergic to bees".into());
        let full = serde_json::to_value(&c).unwrap();
        let member = Standing {
            membership: Some(crate::access::Membership {
                collaborator: "C".into(),
                read_only: false,
                modules: crate::access::Modules::default().with(Module::Gate),
            }),
            ..Default::default()
        };
        let shaped = shape_credential(&member, full.clone());
        assert!(shaped.get("holder_email").is_none() && shaped.get("notes").is_none());
        assert_eq!(shaped["holder_name"], "Ada");
        let seat = Standing { seat: true, ..Default::default() };
        assert_eq!(shape_credential(&seat, full.clone()), full);
    }
}

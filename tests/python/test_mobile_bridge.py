"""The crew app's view of BackOps, through the compiled mobile-bridge library.

Run by tests/it/bridge.rs, which starts a real server, stages an event (a seat holder `pm`,
Vic in the Audio collaborator, Cara in the Client collaborator), generates these bindings
from the built library and passes the setup in BACKOPS_E2E.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

from mobile_bridge import (
    AdvancePatch,
    AdvanceStatus,
    BackOpsClient,
    BackOpsError,
    Condition,
    Direction,
    Location,
    NewAdvance,
    NewTask,
    PunchKind,
    ScanDecision,
    TaskPatch,
)

SETUP = json.loads(os.environ["BACKOPS_E2E"])
EVENT = SETUP["event"]
WAIT_MAX = 10.0


def eventually(what, check):
    """Waits until check() is true, failing after WAIT_MAX seconds."""
    deadline = time.monotonic() + WAIT_MAX
    while True:
        try:
            if check():
                return
        except BackOpsError.NotFound:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("never: " + what)
        time.sleep(0.02)


def fetch(path, token):
    """Bytes from the server's HTTP API (a file's content or thumbnail)."""
    req = urllib.request.Request(SETUP["base"] + path, headers={"authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=WAIT_MAX) as r:
        return r.read()


def api(method, path, token, body=None):
    """The server's HTTP API, as the production office uses it."""
    req = urllib.request.Request(
        SETUP["base"] + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": "Bearer " + token, "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=WAIT_MAX) as r:
        return json.loads(r.read() or b"null")


class Recorder:
    """A listener: remembers what it heard, from the client's own thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.changes = []
        self.statuses = []
        self.rejections = []
        self.threads = set()

    def on_change(self, event, kinds):
        with self.lock:
            self.changes.append((event, list(kinds)))
            self.threads.add(threading.get_ident())

    def on_status(self, status):
        with self.lock:
            self.statuses.append(status)

    def on_rejection(self, rejection):
        with self.lock:
            self.rejections.append(rejection)


def titles(client):
    return sorted(t.title for t in client.tasks(EVENT, None))


class MobileBridge(unittest.TestCase):
    def open(self, name, device):
        return BackOpsClient.open(os.path.join(SETUP["data_dir"], name), device)

    def synced_cara(self, name):
        """Cara's device (the Client collaborator), synced once and then offline."""
        client = self.open(name, None)
        client.sign_in(SETUP["cara_token"])
        client.subscribe(EVENT)
        client.connect(SETUP["base"])
        eventually("the snapshot arrives", lambda: client.event(EVENT).collaborator == SETUP["client"])
        client.disconnect()
        return client

    def test_a_new_crew_member_proves_their_email_and_the_waiting_invitation_syncs(self):
        # A crew member signs up in the app (its HTTP call), unproven.
        req = urllib.request.Request(
            SETUP["base"] + "/v1/accounts", method="POST",
            data=json.dumps({"email": "omar@example.test", "name": "Omar", "password": "crew password 1"}).encode(),
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=WAIT_MAX) as r:
            session = json.loads(r.read())
        token = session["token"]
        self.assertFalse(session["account"]["email_proven"])
        # The office invites the address: it waits for the proof.
        invited = api("POST", "/v1/events/%s/collaborators/%s/members" % (EVENT, SETUP["audio"]),
                      SETUP["pm_token"], {"email": "omar@example.test"})
        self.assertEqual(invited["status"], "pending")
        phone = self.open("omar", "omar-phone")
        phone.sign_in(token)
        phone.subscribe(EVENT)
        phone.connect(SETUP["base"])
        time.sleep(0.3)
        try:
            self.assertEqual(titles(phone), [], "nothing before the proof")
        except BackOpsError.NotFound:
            pass
        # The code arrives by mail (delivered over SMTP into the maildir).
        code = None
        deadline = time.monotonic() + WAIT_MAX
        while code is None and time.monotonic() < deadline:
            for name in os.listdir(SETUP["maildir"]):
                with open(os.path.join(SETUP["maildir"], name)) as f:
                    text = f.read()
                if "To: omar@example.test" in text:
                    code = text.split("Subject: ", 1)[1][:8]
            time.sleep(0.05)
        self.assertIsNotNone(code, "the code was mailed")
        me = api("POST", "/v1/me/email/proof", token, {"code": code})
        self.assertTrue(me["email_proven"])
        # The invitation became a membership: the phone, subscribed all along, receives
        # Audio's tasks (it asks again with its heartbeat; a reconnect makes it at once).
        phone.disconnect()
        phone.connect(SETUP["base"])
        eventually("Audio's tasks arrive", lambda: "Line array" in titles(phone))
        phone.disconnect()

    def test_offline_gate_scans_reconcile_and_a_duplicate_is_flagged(self):
        # The production office sets up a front gate and gives Audio (Vic) the gate module.
        pm = SETUP["pm_token"]
        base = "/v1/events/" + EVENT
        api("POST", base + "/zones", pm, {"code": "GA", "name": "General admission"})
        gates = [
            api("POST", base + "/gates", pm, {"name": name, "zone": "GA", "lanes": ["1"]})["id"]
            for name in ("North gate", "South gate")
        ]
        for uid in ("WB-1", "WB-2"):
            api("POST", base + "/credentials", pm,
                {"uid": uid, "kind": "ga", "holder_name": "Guest " + uid, "zones": ["GA"],
                 "holder_email": uid.lower() + "@example.com"})
        api("PUT", base + "/collaborators/" + SETUP["audio"] + "/modules/gate", pm, {})

        lanes = []
        for name in ("north-1", "south-1"):
            lane = self.open(name, name)
            lane.sign_in(SETUP["vic_token"])
            lane.subscribe(EVENT)
            lane.connect(SETUP["base"])
            eventually("the credentials arrive", lambda: lane.credential_count(EVENT) == 2)
            lanes.append(lane)
        north, south = lanes
        self.assertEqual([g.name for g in north.gates(EVENT)], ["North gate", "South gate"])
        self.assertEqual(north.credential(EVENT, "WB-1").holder_name, "Guest WB-1")
        self.assertIsNone(north.credential(EVENT, "NOPE"))

        # The arrival peak takes the network down at both gates: both admit WB-1.
        for lane in lanes:
            lane.disconnect()
        at_north = north.scan(EVENT, "WB-1", gates[0], "1", Direction.ENTRY)
        time.sleep(0.005)
        at_south = south.scan(EVENT, "WB-1", gates[1], "1", Direction.ENTRY)
        self.assertEqual((at_north.scan.decision, at_south.scan.decision), (ScanDecision.ADMIT, ScanDecision.ADMIT))
        self.assertEqual(at_north.credential.holder_name, "Guest WB-1")
        unknown = north.scan(EVENT, "FAKE-7", gates[0], "1", Direction.ENTRY)
        self.assertEqual((unknown.scan.decision, unknown.credential), (ScanDecision.UNKNOWN, None))
        self.assertEqual(north.sync_status().pending, 2)
        with self.assertRaises(BackOpsError.Invalid):
            north.scan(EVENT, "WB-2", gates[0], "no such lane", Direction.ENTRY)

        # Back online: every scan reaches the server once, the later admission is flagged,
        # and the flag reaches both lanes.
        for lane in lanes:
            lane.connect(SETUP["base"])
        for lane in lanes:
            eventually("the scans are sent", lambda: lane.sync_status().pending == 0)
            eventually("the flag arrives", lambda: [f.code for f in lane.scan_flags(EVENT)] == ["duplicate_entry"])
        flag = north.scan_flags(EVENT)[0]
        self.assertEqual((flag.scan, flag.earlier), (at_south.scan.id, at_north.scan.id))
        scans = api("GET", base + "/scans?credential=WB-1", pm)
        # Each scan names the installation that made it: the lane's name and its mark.
        self.assertEqual(sorted(s["device"].split(":")[0] for s in scans), ["north-1", "south-1"])
        # Online again, a third lane scan knows WB-1 is inside, and where it came in.
        eventually("the other lane's scan arrives", lambda: len(north.scans(EVENT, "WB-1", None, 10)) == 2)
        third = north.scan(EVENT, "WB-1", gates[0], "1", Direction.ENTRY)
        self.assertEqual(third.scan.decision, ScanDecision.ALREADY_INSIDE)
        self.assertIn(third.admitted_at_gate, ("North gate", "South gate"))
        status = {g.name: g for g in north.gate_status(EVENT)}
        self.assertEqual((status["North gate"].admitted, status["South gate"].admitted), (1, 1))
        for lane in lanes:
            lane.shutdown()

    def test_a_photo_taken_offline_uploads_after_reconnect_through_a_cut(self):
        pm = SETUP["pm_token"]
        files = "/v1/events/" + EVENT + "/files"
        phone = self.open("photo", "photo-phone")
        heard = Recorder()
        phone.set_listener(heard)
        phone.sign_in(SETUP["vic_token"])
        phone.subscribe(EVENT)
        phone.connect(SETUP["base"])
        eventually("the snapshot arrives", lambda: phone.event(EVENT).collaborator == SETUP["audio"])
        phone.disconnect()

        # Offline: the photo is kept and shown from the phone at once.
        with open(SETUP["photo"], "rb") as f:
            photo = f.read()
        made = phone.attach_photo(EVENT, SETUP["photo"])
        mine = [f for f in phone.files(EVENT, None) if f.id == made.record]
        self.assertEqual((mine[0].media_type, mine[0].size), ("image/jpeg", len(photo)))
        with open(phone.file_path(EVENT, made.record), "rb") as f:
            self.assertEqual(f.read(), photo)
        [up] = phone.uploads(EVENT)
        self.assertEqual((up.bytes_sent, up.bytes_total, up.done), (0, len(photo), False))
        self.assertNotIn(made.record, [f["id"] for f in api("GET", files, pm)])

        # Back online through a network that drops the upload once, part way in.
        phone.connect(SETUP["proxy"])
        eventually("the photo reaches the office", lambda: made.record in [f["id"] for f in api("GET", files, pm)])
        eventually("the phone's write is confirmed", lambda: phone.sync_status().pending == 0)
        with heard.lock:
            self.assertTrue(any("upload" in kinds for _, kinds in heard.changes), "progress was heard")
        self.assertEqual(fetch(files + "/" + made.record + "/content", pm), photo)
        thumb = fetch(files + "/" + made.record + "/thumbnails/256", pm)
        self.assertTrue(thumb.startswith(b"\xff\xd8"), "a JPEG thumbnail")
        eventually("the phone has the thumbnail", lambda: phone.thumbnail_path(EVENT, made.record, 256) is not None)
        with open(phone.thumbnail_path(EVENT, made.record, 256), "rb") as f:
            self.assertEqual(f.read(), thumb)
        info = [f for f in phone.files(EVENT, None) if f.id == made.record][0]
        self.assertEqual(sorted(info.thumbnail_sizes), [256, 1024])
        self.assertEqual((info.width, info.height), (640, 480))
        with self.assertRaises(BackOpsError.Invalid):
            phone.attach_photo(EVENT, "/nonexistent/photo.jpg")
        phone.shutdown()

    def test_a_crew_phone_punches_and_holds_gear_offline(self):
        pm = SETUP["pm_token"]
        base = "/v1/events/" + EVENT
        for module in ("labor", "assets"):
            api("PUT", base + "/collaborators/" + SETUP["audio"] + "/modules/" + module, pm, {})
        api("POST", base + "/assets", pm, {"tag": "RADIO-7", "kind": "radio"})
        phone = self.open("crew", "crew-phone")
        phone.sign_in(SETUP["vic_token"])
        phone.subscribe(EVENT)
        phone.connect(SETUP["base"])
        eventually("the radio arrives", lambda: [a.tag for a in phone.assets(EVENT)] == ["RADIO-7"])

        # Offline: clock in (with a location) and take the radio.
        phone.disconnect()
        punch = phone.punch(EVENT, PunchKind.IN, Location(lat=30.27, lon=-97.74, accuracy_m=8.0), None)
        self.assertEqual(phone.punch(EVENT, PunchKind.IN, None, punch.id), punch, "the same punch, once")
        due = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        phone.check_out(EVENT, "RADIO-7", SETUP["vic_id"], due)
        with self.assertRaises(BackOpsError.Conflict):
            phone.check_out(EVENT, "RADIO-7", SETUP["vic_id"], due)
        self.assertEqual([a.tag for a in phone.assets_i_hold(EVENT)], ["RADIO-7"])
        self.assertEqual(phone.sync_status().pending, 2)

        # Back online: the server has both, and built the timecard (the shift is still open).
        phone.connect(SETUP["base"])
        eventually("sent", lambda: phone.sync_status().pending == 0)
        eventually("the timecard arrives", lambda: len(phone.timecards(EVENT)) == 1)
        card = phone.timecards(EVENT)[0]
        self.assertEqual([e.code for e in card.exceptions], ["missing_out"])
        self.assertEqual([p.id for p in phone.my_punches(EVENT)], [punch.id])
        self.assertAlmostEqual(phone.my_punches(EVENT)[0].location.lat, 30.27)
        held = api("GET", base + "/assets", pm)
        self.assertEqual(held[0]["holder"], SETUP["vic_id"])
        phone.check_in(EVENT, "RADIO-7", Condition.DAMAGED, "antenna snapped")
        eventually("checked in", lambda: phone.assets_i_hold(EVENT) == [])
        self.assertEqual(len(phone.custody_history(EVENT, "RADIO-7")), 2)
        phone.shutdown()

    def test_offline_write_reconciles_and_a_refused_write_is_heard(self):
        client = self.open("vic", "vic-phone")
        heard = Recorder()
        client.set_listener(heard)
        self.assertTrue(client.device_id().startswith("vic-phone:"), client.device_id())

        with self.assertRaises(BackOpsError.NotReady) as e:
            client.connect(SETUP["base"])
        self.assertEqual(e.exception.code, "sign_in")
        with self.assertRaises(BackOpsError.Invalid):
            client.sign_in("not a token")

        # Sign in, follow the event, read a tab.
        client.sign_in(SETUP["vic_token"])
        client.subscribe(EVENT)
        client.connect(SETUP["base"])
        eventually("the snapshot arrives", lambda: titles(client) == ["Line array"])
        self.assertTrue(client.sync_status().online)
        self.assertTrue(any(s.online for s in heard.statuses))
        info = client.event(EVENT)
        self.assertEqual((info.seat, info.collaborator, info.read_only), (False, SETUP["audio"], False))
        self.assertEqual([c.id for c in client.collaborators(EVENT)], [SETUP["audio"]])
        dash = client.dashboard(EVENT, None)
        self.assertEqual((dash.name, dash.tasks.todo), ("Audio", 1))
        # Another collaborator's tab is not on this device.
        with self.assertRaises(BackOpsError.NotFound):
            client.dashboard(EVENT, SETUP["client"])

        # Offline: the write shows at once and waits.
        client.disconnect()
        self.assertFalse(client.sync_status().online)
        made = client.create_task(EVENT, NewTask(title="Cable run, written offline"))
        self.assertEqual(titles(client), ["Cable run, written offline", "Line array"])
        self.assertEqual(client.sync_status().pending, 1)
        edited = client.update_task(EVENT, made.record, TaskPatch(assignee=SETUP["vic_id"]))
        self.assertEqual(edited.record, made.record)
        self.assertEqual(client.sync_status().pending, 2)
        eventually("the write is heard", lambda: any(e == EVENT and "task" in k for e, k in heard.changes))
        self.assertNotIn(threading.get_ident(), heard.threads, "the listener has a thread of its own")

        # Back online: accepted, once, and the server has it.
        client.connect(SETUP["base"])
        eventually("the outbox drains", lambda: client.sync_status().pending == 0)
        server = api("GET", "/v1/events/%s/tasks" % EVENT, SETUP["pm_token"])
        mine = [t for t in server if t["id"] == made.record]
        self.assertEqual(len(mine), 1)
        self.assertEqual((mine[0]["title"], mine[0]["assignee"]), ("Cable run, written offline", SETUP["vic_id"]))
        self.assertEqual(heard.rejections, [])

        # A change made elsewhere arrives live.
        api("POST", "/v1/events/%s/tasks" % EVENT, SETUP["pm_token"],
            {"title": "From the office", "collaborator": SETUP["audio"]})
        eventually("a live change arrives", lambda: "From the office" in titles(client))

        # Written offline while the office makes Audio read-only: refused, rolled back, heard.
        client.disconnect()
        refused = client.create_task(EVENT, NewTask(title="Written while read-only"))
        api("PATCH", "/v1/events/%s/collaborators/%s" % (EVENT, SETUP["audio"]), SETUP["pm_token"],
            {"read_only": True})
        self.addCleanup(api, "PATCH", "/v1/events/%s/collaborators/%s" % (EVENT, SETUP["audio"]),
                        SETUP["pm_token"], {"read_only": False})
        client.connect(SETUP["base"])
        eventually("the rejection is heard", lambda: len(heard.rejections) == 1)
        r = heard.rejections[0]
        self.assertEqual((r.code, r.mutation, r.record, r.kind), ("read_only", refused.mutation, refused.record, "task"))
        self.assertEqual([x.mutation for x in client.rejections()], [refused.mutation])
        self.assertNotIn("Written while read-only", titles(client))
        self.assertEqual(client.sync_status().pending, 0)

        # The device now knows: a write is refused on the spot, with the server's reason.
        eventually("the device learns it is read-only", lambda: client.event(EVENT).read_only)
        with self.assertRaises(BackOpsError.Forbidden) as e:
            client.create_task(EVENT, NewTask(title="Refused at once"))
        self.assertEqual(e.exception.code, "read_only")

        client.shutdown()
        with self.assertRaises(BackOpsError.NotReady) as e:
            client.tasks(EVENT, None)
        self.assertEqual(e.exception.code, "shut_down")

    def test_a_seat_holder_sees_the_whole_event_and_a_vendor_answers_an_advance(self):
        office = self.open("pm", "office-tablet")
        office.sign_in(SETUP["pm_token"])
        office.subscribe(EVENT)
        office.connect(SETUP["base"])
        eventually("the whole event arrives", lambda: office.event(EVENT).seat)
        names = [c.name for c in office.collaborators(EVENT)]
        self.assertTrue({"Audio", "Client"} <= set(names), names)
        eventually("every collaborator's tasks", lambda: "Line array" in titles(office))
        audio_only = office.tasks(EVENT, SETUP["audio"])
        self.assertTrue(audio_only and all(t.collaborator == SETUP["audio"] for t in audio_only))
        # The same tab a page at a time: every task once, in the tab's order.
        paged, after = [], None
        while True:
            page = office.tasks_page(EVENT, None, after, 1)
            paged.extend(t.id for t in page.items)
            if page.next is None:
                break
            after = page.next
        self.assertEqual(paged, [t.id for t in office.tasks(EVENT, None)])
        self.assertEqual(office.dashboard(EVENT, SETUP["audio"]).name, "Audio")

        vendor = self.open("vic-advance", "vic-tablet")
        vendor.sign_in(SETUP["vic_token"])
        vendor.subscribe(EVENT)
        vendor.connect(SETUP["base"])
        sent = office.create_advance(EVENT, NewAdvance(collaborator=SETUP["audio"], title="Power needs"))
        eventually("the vendor receives the advance", lambda: [a.id for a in vendor.advances(EVENT, None)] == [sent.record])
        vendor.update_advance(EVENT, sent.record, AdvancePatch(answers_json='{"amps": 63, "phases": 3}'))
        eventually("the office sees the answer", lambda: json.loads(
            [a for a in office.advances(EVENT, None) if a.id == sent.record][0].answers_json) == {"amps": 63, "phases": 3})
        answered = [a for a in office.advances(EVENT, None) if a.id == sent.record][0]
        self.assertEqual(answered.status, AdvanceStatus.NEEDS_REVIEW)
        self.assertEqual(office.dashboard(EVENT, SETUP["audio"]).advances.needs_review, 1)
        # Reviewing is the event team's: the vendor's device refuses it on the spot.
        with self.assertRaises(BackOpsError.Forbidden) as e:
            vendor.update_advance(EVENT, sent.record, AdvancePatch(status=AdvanceStatus.DONE))
        self.assertEqual(e.exception.code, "review_requires_seat")
        office.update_advance(EVENT, sent.record, AdvancePatch(status=AdvanceStatus.DONE))
        eventually("the vendor sees it reviewed",
                   lambda: vendor.advances(EVENT, None)[0].status == AdvanceStatus.DONE)
        office.shutdown()
        vendor.shutdown()

    def test_a_gate_tablet_keeps_its_sign_in_alive_through_a_day_and_a_night(self):
        # A server whose access tokens last 2 s: three lifetimes connected, then a "night"
        # offline past the token's expiry and a restart with nobody at the tablet.
        short = SETUP["short"]

        def sign_in(email, device):
            body = json.dumps({"email": email, "password": short["password"], "device_name": device}).encode()
            req = urllib.request.Request(short["base"] + "/v1/sessions", data=body, method="POST",
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=WAIT_MAX) as r:
                return json.loads(r.read())

        def short_api(method, path, token, body=None):
            req = urllib.request.Request(
                short["base"] + path, method=method,
                data=None if body is None else json.dumps(body).encode(),
                headers={"authorization": "Bearer " + token, "content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=WAIT_MAX) as r:
                raw = r.read()
                return json.loads(raw) if raw else None

        event = short["event"]
        signed = sign_in(short["vic_email"], "gate B lane 1")
        tablet = self.open("gate-b", "gate-b-lane-1")
        with self.assertRaises(BackOpsError.Invalid):
            tablet.sign_in_device(signed["token"], "")
        heard = Recorder()
        tablet.set_listener(heard)
        tablet.sign_in_device(signed["token"], signed["refresh_token"])
        tablet.subscribe(event)
        tablet.connect(short["base"])
        eventually("online", lambda: tablet.sync_status().online)
        with heard.lock:
            before = len(heard.statuses)
        time.sleep(6)
        with heard.lock:
            during = heard.statuses[before:]
        self.assertTrue(all(s.online for s in during) and tablet.sync_status().online,
                        "renewed on the open connection, never dropped: %r" % during)
        self.assertNotEqual(tablet.access_token(), signed["token"], "the access token was renewed")

        # The night: offline, a write, the token expires, the app is restarted.
        tablet.disconnect()
        tablet.create_task(event, NewTask(title="Written at night", collaborator=short["audio"]))
        time.sleep(3)
        tablet.shutdown()
        del tablet
        morning = self.open("gate-b", None)
        morning.connect(short["base"])  # no sign-in: the kept one, renewed first
        eventually("the outbox drains", lambda: morning.sync_status().pending == 0 and morning.sync_status().online)
        pm = sign_in(short["pm_email"], "office")["token"]
        server = short_api("GET", "/v1/events/%s/tasks" % event, pm)
        self.assertEqual(len([t for t in server if t["title"] == "Written at night"]), 1)

        # Signing out on the tablet ends the sign-in on the server too.
        token = morning.access_token()
        morning.sign_out()
        with self.assertRaises(urllib.error.HTTPError) as e:
            short_api("GET", "/v1/me", token)
        self.assertEqual(e.exception.code, 401)
        self.assertEqual(json.loads(e.exception.read())["code"], "sign_in_ended")
        with self.assertRaises(BackOpsError.NotReady):
            morning.connect(short["base"])
        morning.shutdown()

    def test_writes_made_offline_survive_the_app_being_killed(self):
        client = self.synced_cara("cara")
        device = client.device_id()
        client.shutdown()
        del client

        # Another process writes offline and dies without shutting anything down.
        killed = subprocess.run([sys.executable, "-c", """
import os, sys
from mobile_bridge import BackOpsClient, NewTask
c = BackOpsClient.open(sys.argv[1], None)
c.sign_in(sys.argv[2])
made = c.create_task(sys.argv[3], NewTask(title="Written after the app was killed"))
print(made.record, flush=True)
os._exit(9)
""", os.path.join(SETUP["data_dir"], "cara"), SETUP["cara_token"], EVENT], capture_output=True, text=True,
            timeout=60)
        self.assertEqual(killed.returncode, 9, killed.stderr)
        record = killed.stdout.strip()

        again = self.open("cara", None)
        self.assertEqual(again.device_id(), device)
        self.assertEqual(again.sync_status().pending, 1)
        self.assertIn("Written after the app was killed", titles(again))
        again.sign_in(SETUP["cara_token"])
        again.connect(SETUP["base"])
        eventually("the outbox drains", lambda: again.sync_status().pending == 0 and again.sync_status().online)
        server = api("GET", "/v1/events/%s/tasks" % EVENT, SETUP["pm_token"])
        self.assertEqual(len([t for t in server if t["id"] == record]), 1)
        again.shutdown()

    def test_a_server_that_never_answers_blocks_no_call(self):
        client = self.synced_cara("blackhole")
        # A server that takes the connection and then says nothing (a captive portal, a
        # dead proxy): the kernel completes the handshake, nobody ever answers.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        try:
            started = time.monotonic()
            client.connect("ws://127.0.0.1:%d" % port)
            made = client.create_task(EVENT, NewTask(title="While the network hangs"))
            self.assertIn("While the network hangs", titles(client))
            self.assertFalse(client.sync_status().online)
            client.disconnect()
            # The link waits up to 10 s for a welcome; none of these calls waited for it.
            self.assertLess(time.monotonic() - started, 5.0)
            self.assertEqual(client.sync_status().pending, 1)
            client.connect(SETUP["base"])
            eventually("sent once back on a real server", lambda: client.sync_status().pending == 0)
            server = api("GET", "/v1/events/%s/tasks" % EVENT, SETUP["pm_token"])
            self.assertEqual(len([t for t in server if t["id"] == made.record]), 1)
        finally:
            silent.close()
            client.shutdown()

    def test_a_failing_listener_does_not_silence_the_next_notices(self):
        class Failing(Recorder):
            def on_status(self, status):
                super().on_status(status)
                raise RuntimeError("the app's handler has a bug")

        client = self.synced_cara("failing")
        heard = Failing()
        client.set_listener(heard)
        client.create_task(EVENT, NewTask(title="First"))
        client.create_task(EVENT, NewTask(title="Second"))
        # Each write changes the pending count; the listener fails on every notice and still
        # hears the next one.
        eventually("both writes are heard", lambda: [s.pending for s in heard.statuses][-2:] == [1, 2])
        client.shutdown()

    def test_bad_input_gets_a_clear_error_and_changes_nothing(self):
        with self.assertRaises(BackOpsError.Invalid):
            BackOpsClient.open("", None)
        client = self.open("bad", None)
        with self.assertRaises(BackOpsError.NotReady) as e:
            client.create_task(EVENT, NewTask(title="Before signing in"))
        self.assertEqual(e.exception.code, "sign_in")
        with self.assertRaises(BackOpsError.Invalid):
            client.connect("ftp://somewhere")
        with self.assertRaises(BackOpsError.Invalid):
            client.subscribe("")
        with self.assertRaises(BackOpsError.Invalid):
            client.trust_certificate("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        # Not followed (or not synced yet): nothing to read or write.
        with self.assertRaises(BackOpsError.NotFound):
            client.tasks("no-such-event", None)
        with self.assertRaises(BackOpsError.Invalid):
            client.update_task(EVENT, "t1", TaskPatch(assignee="Vic", clear_assignee=True))
        with self.assertRaises(BackOpsError.Invalid):
            client.create_advance(EVENT, NewAdvance(collaborator="c", title="Power", answers_json="[1]"))
        with self.assertRaises(BackOpsError.Invalid):
            client.update_advance(EVENT, "a1", AdvancePatch(answers_json="{not json"))
        client.shutdown()


if __name__ == "__main__":
    unittest.main()

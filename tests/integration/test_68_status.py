"""68: the /ark/status page, loaded in a real headless browser (Debian's
chromium) while traffic flows.

A gateway has one model on two channels: chan-bad (its stub answers every
request with HTTP 500, so its circuit opens after three failures) first,
chan-good second, with a fallback route, so every request still succeeds.
Two tenants send chat requests from a background thread while chromium
loads the page. Chromium is driven over the DevTools protocol (a small
websocket client, standard library only): each load returns the DOM after
the load event and the URLs the page made the browser fetch. The test
reads what the page shows through the hooks docs/status.md documents: both
channel rows, chan-bad's circuit "open", request counts > 0 and rising
between two loads, three inline SVG charts per channel, the spend tables.
It loads the page again with JavaScript off (everything is still there),
checks that nothing points outside the page and that the browser fetched
nothing but the page itself. Once the traffic stops, the numbers on the
page and in ?format=json are checked against the stubs' own records
(requests, failures, tokens times price).
"""
import base64
import hashlib
import html.parser
import json
import os
import re
import socket
import struct
import subprocess
import threading
import time

import pytest

CHROMIUM = os.environ.get("ARK_CHROMIUM", "/usr/bin/chromium")

# price=IN/OUT per 1M tokens: 1000 and 3000 nano-units a token
PRICE_IN, PRICE_OUT = 1000, 3000

STATUS_LOC = """
<Location /ark/status>
    SetHandler ark-status
</Location>
"""

PROV = ("ArkProvider {name} openai {base}/v1 key=env:ARK_TEST_PROVIDER_KEY\n")

BAD_LOG = r"ARK00036: channel chan-bad answered HTTP 500"


# ------------------------------------------------------------- browser

class WebSocket:
    """The client side of RFC 6455, as much as the DevTools protocol
    needs: text frames out (masked), text frames in (fragments joined),
    pings answered."""

    def __init__(self, host, port, path, timeout=30):
        self.sock = socket.create_connection((host, port), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n"
                           % (path, host, port, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, "websocket handshake: connection closed"
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        assert head.split(b"\r\n")[0].split()[1] == b"101", head
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode())
            .digest())
        assert accept in head, head

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            assert chunk, "websocket closed by the browser"
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + body)

    def send(self, text):
        self._send(0x1, text.encode())

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            opcode = b0 & 0x0F
            if opcode == 0x9:                       # ping
                self._send(0xA, data)
                continue
            if opcode == 0x8:
                raise AssertionError("websocket closed by the browser")
            if opcode in (0x0, 0x1, 0x2):
                message += data
                if b0 & 0x80:
                    return message.decode()

    def close(self):
        self.sock.close()


class Browser:
    """Headless chromium driven over the DevTools protocol: load(url)
    returns the DOM after the load event, serialized, and the URLs the
    page made the browser fetch; with js=False scripts do not run (the
    DOM is read through the DOM domain, which needs none)."""

    def __init__(self, tmp_path):
        if not os.access(CHROMIUM, os.X_OK):
            pytest.fail("the status page test needs a browser: "
                        "apt-get install chromium (%s)" % CHROMIUM)
        self.profile = str(tmp_path / "chromium-profile")
        self.errlog = open(str(tmp_path / "chromium.log"), "w")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--user-data-dir=" + self.profile, "--remote-debugging-port=0",
             "--no-first-run", "--no-default-browser-check",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions",
             "--disable-default-apps", "--disable-domain-reliability",
             "--mute-audio", "--window-size=1280,2000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=self.errlog,
            env=dict(os.environ, HOME=str(tmp_path)))
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 60
        lines = []
        while len(lines) < 2:
            assert self.proc.poll() is None, "chromium exited at start"
            assert time.time() < deadline, "chromium did not start"
            time.sleep(0.1)
            if os.path.exists(port_file):
                with open(port_file) as f:
                    lines = f.read().split()
        self.ws = WebSocket("127.0.0.1", int(lines[0]), lines[1])
        self.next_id = 0
        self.events = []
        target = self.call("Target.createTarget", url="about:blank")
        self.session = self.call("Target.attachToTarget", flatten=True,
                                 targetId=target["targetId"])["sessionId"]
        for domain in ("Page", "Network", "DOM"):
            self.call(domain + ".enable", session=True)

    def call(self, method, session=False, **params):
        """Sends one command and returns its result; events that arrive
        meanwhile are kept in self.events."""
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == self.next_id:
                assert "error" not in m, (method, m["error"])
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def wait_event(self, method):
        """Reads until an event named method is in self.events (the
        websocket's timeout bounds the wait)."""
        while not any(m["method"] == method for m in self.events):
            m = json.loads(self.ws.recv())
            if "method" in m:
                self.events.append(m)

    def load(self, url, js=True):
        """(serialized DOM, URLs requested) of url, loaded afresh."""
        self.call("Emulation.setScriptExecutionDisabled", session=True,
                  value=not js)
        self.events = []
        nav = self.call("Page.navigate", session=True, url=url)
        assert not nav.get("errorText"), nav
        self.wait_event("Page.loadEventFired")
        root = self.call("DOM.getDocument", session=True, depth=-1)["root"]
        text = self.call("DOM.getOuterHTML", session=True,
                         nodeId=root["nodeId"])["outerHTML"]
        urls = [m["params"]["request"]["url"] for m in self.events
                if m["method"] == "Network.requestWillBeSent"]
        return text, urls

    def close(self):
        try:
            self.call("Browser.close")
        except (AssertionError, OSError):
            pass
        self.ws.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.errlog.close()


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path)
    yield b
    b.close()


# ------------------------------------------------------------------ DOM

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link",
        "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag = tag
        self.attrs = dict(attrs)
        self.parent = parent
        self.children = []
        self.texts = []

    def text(self):
        """All text inside, whitespace collapsed."""
        out = list(self.texts)
        for c in self.children:
            out.append(c.text())
        return " ".join(" ".join(out).split())

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def classes(self):
        return self.attrs.get("class", "").split()

    def find_all(self, tag=None, cls=None, **attrs):
        """Descendants (self included) with that tag, class and attribute
        values (name with - as _, e.g. data_channel="x"; True: present)."""
        out = []
        for n in self.iter():
            if tag and n.tag != tag:
                continue
            if cls and cls not in n.classes():
                continue
            ok = True
            for k, v in attrs.items():
                k = k.replace("_", "-")
                if v is True:
                    ok = ok and k in n.attrs
                else:
                    ok = ok and n.attrs.get(k) == v
            if ok:
                out.append(n)
        return out

    def find(self, tag=None, cls=None, **attrs):
        hits = self.find_all(tag, cls, **attrs)
        assert len(hits) == 1, ("want one", tag, cls, attrs, len(hits))
        return hits[0]


class DomBuilder(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.texts.append(data)


def dom(text):
    b = DomBuilder()
    b.feed(text)
    b.close()
    return b.root


# ----------------------------------------------------------------- page

class Page:
    """What the status page shows, read through its documented hooks."""

    def __init__(self, text):
        self.html = text
        self.root = dom(text)

    def row(self, channel):
        return self.root.find("tr", data_channel=channel)

    def cell(self, channel, cls):
        return self.row(channel).find("td", cls=cls)

    def circuit(self, channel):
        td = self.cell(channel, "circuit")
        assert td.text() == td.attrs["data-state"], td.text()
        return td.attrs["data-state"]

    def number(self, channel, cls):
        td = self.cell(channel, cls)
        assert td.text() == td.attrs["data-value"], td.text()
        return int(td.attrs["data-value"])

    def charts(self, channel):
        return self.root.find("div", cls="channel-charts",
                              data_channel=channel)

    def spend_rows(self, kind):
        table = self.root.find("table", id="spend-%ss" % kind)
        return {r.attrs["data-" + kind]: r
                for r in table.find_all("tr") if "data-" + kind in r.attrs}

    def circuits_card(self):
        card = self.root.find(id="card-circuits")
        return {s.attrs["data-state"]: int(s.text())
                for s in card.find_all("span", cls="count")}


def assert_no_external_urls(page, origin):
    """No attribute and no CSS of the page points outside origin."""
    for n in page.root.iter():
        for k, v in n.attrs.items():
            if k in ("src", "href", "xlink:href", "action", "data",
                     "poster", "srcset", "formaction", "background"):
                v = (v or "").strip()
                if re.match(r"(?i)^(https?:)?//", v):
                    assert v.startswith(origin + "/"), (n.tag, k, v)
                assert not re.match(r"(?i)^(ftp|ws|wss):", v), (n.tag, k, v)
    for m in re.finditer(r"(?i)url\(\s*['\"]?([^'\")]*)", page.html):
        assert not re.match(r"(?i)^(https?:)?//", m.group(1)), m.group(0)
    assert "@import" not in page.html


# ---------------------------------------------------------------- traffic

class Traffic(threading.Thread):
    """Chat requests for each key in turn until stopped; records the
    statuses."""

    def __init__(self, gw, keys):
        super().__init__(daemon=True)
        self.gw = gw
        self.keys = keys
        self.stop_event = threading.Event()
        self.statuses = []

    def run(self):
        i = 0
        while not self.stop_event.is_set():
            try:
                st, _, _ = self.gw.chat(self.keys[i % len(self.keys)], "m",
                                        "status page traffic %d" % i)
            except OSError as e:           # shows in the status check
                st = repr(e)
            self.statuses.append(st)
            i += 1
            time.sleep(0.02)

    def stop(self):
        self.stop_event.set()
        self.join(30)
        assert not self.is_alive()


def status_json(gw):
    st, headers, body = gw.request("GET", "/ark/status?format=json")
    assert st == 200, body
    assert headers["content-type"].startswith("application/json")
    return json.loads(body)


def channel_json(doc, name):
    hits = [c for c in doc["channels"] if c["name"] == name]
    assert len(hits) == 1, doc["channels"]
    return hits[0]


def wait_for(pred, what, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


@pytest.fixture
def status_gateway(make_gateway, make_stub):
    good, bad = make_stub("good"), make_stub("bad")
    bad.faults({"kind": "status", "code": 500, "times": -1})
    ark = (PROV.format(name="prov-bad", base=bad.base)
           + PROV.format(name="prov-good", base=good.base)
           + "ArkModel m prov-bad up-bad name=chan-bad price=1/3\n"
             "ArkModel m prov-good up-good name=chan-good price=1/3\n"
             "ArkRoute m strategy=fallback\n"
             "ArkCircuit failures=3 cooldown=600s\n"
           + STATUS_LOC)
    gw = make_gateway(ark=ark, start=False, allow=[BAD_LOG])
    gw.keys = [gw.create_key("acme-app", tenant="acme"),
               gw.create_key("globex-app", tenant="globex")]
    gw.start()
    gw.good, gw.bad = good, bad
    return gw


# ------------------------------------------------------------------ test

# a page whose script, when it runs, marks the DOM
PROBE = ("data:text/html,<!DOCTYPE html><p id=probe>static</p><script>"
         "document.getElementById('probe').textContent='scripted'</script>")


def test_68_01_status_page_in_a_browser(status_gateway, browser):
    gw = status_gateway
    origin = "http://127.0.0.1:%d" % gw.port
    url = origin + "/ark/status"

    # the browser runs scripts, or not, as asked
    assert Page(browser.load(PROBE)[0]).root.find(id="probe").text() == \
        "scripted"
    assert Page(browser.load(PROBE, js=False)[0]).root.find(
        id="probe").text() == "static"

    # served as a page of its own, not cached
    st, headers, body = gw.request("GET", "/ark/status")
    assert st == 200, body
    assert headers["content-type"].startswith("text/html")
    assert "no-store" in headers.get("cache-control", "")

    traffic = Traffic(gw, gw.keys)
    traffic.start()
    try:
        wait_for(lambda: channel_json(status_json(gw), "chan-bad")["circuit"]
                 == "open", "chan-bad's circuit to open")
        wait_for(lambda: channel_json(status_json(gw),
                                      "chan-good")["requests"] >= 5,
                 "traffic on chan-good")

        # ---- loaded while the traffic flows, scripts on
        text, fetched = browser.load(url)
        first = Page(text)
        time.sleep(1.0)
        second = Page(browser.load(url)[0])
        # ---- and with JavaScript off
        text, fetched_nojs = browser.load(url, js=False)
        nojs = Page(text)
    finally:
        traffic.stop()
    assert traffic.statuses and set(traffic.statuses) == {200}, \
        set(traffic.statuses)

    for page in (first, second, nojs):
        # both channels, in configuration order
        rows = page.root.find("table", id="channels").find_all(
            "tr", data_channel=True)
        assert [r.attrs["data-channel"] for r in rows] == \
            ["chan-bad", "chan-good"]
        assert page.circuit("chan-bad") == "open"
        assert page.circuit("chan-good") == "closed"
        assert page.cell("chan-bad", "circuit").find(
            "span", cls="badge").classes() == ["badge", "open"]
        assert page.circuits_card() == {"closed": 1, "half-open": 0,
                                        "open": 1}
        assert page.number("chan-bad", "requests") >= 3
        assert page.number("chan-bad", "failures") >= 3
        assert page.number("chan-good", "requests") > 0
        assert page.cell("chan-bad", "error-ratio").text() == "100.0%"
        assert page.cell("chan-good", "error-ratio").text() == "0.0%"
        assert page.cell("chan-good", "model").text() == "m"
        assert page.cell("chan-good", "provider").text() == \
            "prov-good openai"
        assert re.fullmatch(r"[\d.]+ (ms|s)",
                            page.cell("chan-good", "p95-total").text())
        # an inline SVG chart per channel and metric, with data in it
        for ch in ("chan-bad", "chan-good"):
            charts = page.charts(ch)
            figs = charts.find_all("figure", cls="chart")
            assert [f.attrs["data-metric"] for f in figs] == \
                ["requests", "error-ratio", "p95"]
            for f in figs:
                svg = f.find("svg")
                assert int(svg.attrs["data-points"]) >= 1, ch
        good_req = page.charts("chan-good").find(
            "figure", data_metric="requests")
        assert good_req.find_all("rect", cls="bar")
        assert not good_req.find_all("rect", cls="err")
        bad_req = page.charts("chan-bad").find(
            "figure", data_metric="requests")
        assert bad_req.find_all("rect", cls="err")
        assert page.charts("chan-good").find(
            "figure", data_metric="p95").find_all("circle", cls="dot")
        # the spend tables
        tenants = page.spend_rows("tenant")
        assert set(tenants) == {"acme", "globex"}, set(tenants)
        for r in tenants.values():
            assert int(r.find("td", cls="spend").attrs["data-nano"]) > 0
            assert int(r.find("td", cls="requests").attrs["data-value"]) > 0
        providers = page.spend_rows("provider")
        assert "prov-good" in providers, set(providers)
        assert int(providers["prov-good"].find(
            "td", cls="spend").attrs["data-nano"]) > 0
        assert page.root.find(id="node").text() == "127.0.0.1"
        assert re.fullmatch(r"mod_ark \d+\.\d+\.\d+\S*",
                            page.root.find(id="version").text()), \
            page.root.find(id="version").text()
        assert_no_external_urls(page, origin)

    # the page moves with the traffic
    assert second.number("chan-good", "requests") > \
        first.number("chan-good", "requests")

    # no script is needed: the page has none, and reads the same without
    assert not first.root.find_all("script")
    assert "<table" in nojs.html

    # the browser fetched the page and nothing else
    assert fetched == [url], fetched
    assert fetched_nojs == [url], fetched_nojs

    # ---- traffic stopped: the numbers agree with the stubs' records
    # (accounting ends just after the answer: wait until all of it is in)
    wait_for(lambda: sum(t["requests"] for t in
                         status_json(gw)["spend_by_tenant"])
             == len(traffic.statuses), "the last requests' accounting")
    good_recs, bad_recs = gw.good.requests(), gw.bad.requests()
    doc = status_json(gw)
    page = Page(browser.load(url)[0])
    good_c, bad_c = channel_json(doc, "chan-good"), channel_json(doc,
                                                                 "chan-bad")
    assert bad_c["circuit"] == "open" and bad_c["opens"] == 1
    assert bad_c["requests"] == len(bad_recs) == 3
    assert bad_c["failures"] == 3
    assert good_c["requests"] == len(good_recs)
    assert good_c["failures"] == 0
    assert page.number("chan-good", "requests") == len(good_recs)
    assert page.number("chan-bad", "requests") == len(bad_recs)
    assert sum(p["requests"] for p in good_c["points"]) == len(good_recs)
    assert sum(p["errors"] for p in bad_c["points"]) == 3
    prompt = sum(r["usage"]["prompt_tokens"] for r in good_recs)
    completion = sum(r["usage"]["completion_tokens"] for r in good_recs)
    spend = prompt * PRICE_IN + completion * PRICE_OUT
    assert good_c["spend_today_nano"] == spend
    assert bad_c["spend_today_nano"] == 0
    assert doc["spend_today_nano"] == spend
    assert sum(t["spend_nano"] for t in doc["spend_by_tenant"]) == spend
    assert sum(t["requests"] for t in doc["spend_by_tenant"]) == \
        len(traffic.statuses)
    prov = {p["name"]: p for p in doc["spend_by_provider"]}
    assert prov["prov-good"]["spend_nano"] == spend
    assert prov["prov-good"]["requests"] == len(good_recs)
    assert int(page.root.find(id="spend-total").attrs["data-nano"]) == spend
    assert int(page.spend_rows("provider")["prov-good"].find(
        "td", cls="spend").attrs["data-nano"]) == spend
    assert doc["circuits"] == {"closed": 1, "half_open": 0, "open": 1}
    assert doc["governance"]["redis"] == "off"
    assert doc["cache"]["configured"] is False

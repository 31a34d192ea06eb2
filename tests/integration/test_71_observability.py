"""71: what operators see and what they must never see.

- A request full of secrets and personal data, through a location with
  ArkLogBodies on: the access log carries the bodies redacted (each value
  replaced by a consistent token), and no original value appears in any
  log file, in /ark/metrics or in /ark/status; a location without
  ArkLogBodies logs no body at all.
- The admin endpoints are protected by ordinary httpd Require rules,
  separately from the gateway's virtual keys.
- /ark/metrics content after known traffic: per key and tenant requests,
  tokens and spend; per channel responses by class, tokens, spend and a
  latency histogram; the access log's channel and attempts fields.
"""
import json

from conftest import PROVIDER_SECRET, openai_provider

PRICE = "price=2/8"     # per 1M tokens: 2000 / 8000 nano per token


def cn_resident_id(body17):
    """A Chinese resident ID with a valid ISO 7064 MOD 11-2 check digit."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(body17, weights))
    return body17 + "10X98765432"[total % 11]


SENSITIVE = {
    "email": "li.wei@example.com",
    "phone": "13812345678",
    "card": "4111 1111 1111 1111",
    "cn_id": cn_resident_id("11010519491231002"),
    "ip": "203.0.113.77",
    "openai_key": "sk-proj-Abcdefghijklmnopqrstuvwxyz0123456789",
    "aws_key": "AKIAIOSFODNN7EXAMPLE",
    "bearer": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl",
}

ADMIN = """
<Location /ark/metrics>
    SetHandler ark-metrics
    Require expr "%{REMOTE_ADDR} == '127.0.0.1'"
</Location>
<Location /ark/status>
    SetHandler ark-status
    Require expr "%{REMOTE_ADDR} == '127.0.0.1'"
</Location>
<Location /ark/closed>
    SetHandler ark-metrics
    Require all denied
</Location>
<Location /logged/v1>
    SetHandler ark-gateway
    ArkLogBodies both max=8K
</Location>
"""


def make(make_gateway, stub):
    gw = make_gateway(ark=openai_provider(stub)
                      + "ArkModel chat stub gpt-4o-mini " + PRICE + "\n"
                      + ADMIN, start=False)
    gw.key = gw.create_key("alice", tenant="acme")
    gw.start()
    return gw


def test_71_01_redacted_bodies_leave_no_secret_anywhere(make_gateway, stub):
    gw = make(make_gateway, stub)
    text = ("Mail %(email)s or call %(phone)s; card %(card)s, ID %(cn_id)s, "
            "from %(ip)s with %(openai_key)s and %(aws_key)s; header "
            "%(bearer)s; again %(email)s" % SENSITIVE)
    body = {"model": "chat", "messages": [{"role": "user", "content": text}]}
    st, _, answer = gw.request("POST", "/logged/v1/chat/completions", body,
                               gw.key)
    assert st == 200, answer
    # the stub echoes the text: the answer holds every value too
    assert SENSITIVE["email"] in answer.decode()
    st, _, _ = gw.request("POST", "/v1/chat/completions", body, gw.key)
    assert st == 200
    entries = gw.access_entries(wait_for=2)
    logged, plain = entries[-2], entries[-1]
    assert logged["path"] == "/logged/v1/chat/completions"
    req, resp = logged["request_body"], logged["response_body"]
    # JSON still, and every kind replaced by its token
    assert json.loads(req)["messages"][0]["content"].startswith("Mail [EMAIL_1]")
    for token in ("[EMAIL_1]", "[PHONE_1]", "[CARD_1]", "[CN_ID_1]",
                  "[IP_1]", "[SECRET_"):
        assert token in req, (token, req)
    # one value, one token: in both bodies of the line
    assert req.count("[EMAIL_1]") == 2 and "[EMAIL_2]" not in req
    assert "[EMAIL_1]" in resp and "[PHONE_1]" in resp
    # a location without ArkLogBodies logs no body at all
    assert "request_body" not in plain and "response_body" not in plain
    # no original value in any log, in the metrics or on the status page
    st, _, metrics = gw.request("GET", "/ark/metrics")
    assert st == 200
    st, _, status = gw.request("GET", "/ark/status")
    assert st == 200
    st, _, status_json = gw.request("GET", "/ark/status?format=json")
    assert st == 200
    gw.stop()
    everything = (gw.all_logs_text() + metrics.decode() + status.decode()
                  + status_json.decode())
    for kind, value in SENSITIVE.items():
        for form in {value, value.replace(" ", ""), value.split(" ")[-1]}:
            assert form not in everything, (kind, form)
    # nor the client's key or the provider's
    assert gw.key not in everything
    assert PROVIDER_SECRET not in everything


def test_71_02_admin_endpoints_use_httpd_access_control(make_gateway, stub):
    gw = make(make_gateway, stub)
    st, _, _ = gw.request("GET", "/ark/metrics")
    assert st == 200
    st, _, _ = gw.request("GET", "/ark/status")
    assert st == 200
    # the same handler behind Require all denied: httpd refuses it
    st, _, body = gw.request("GET", "/ark/closed")
    assert st == 403, body
    assert b"ark_" not in body
    # a virtual key does not open an admin endpoint, nor does the lack of
    # one close it: they are separate
    st, _, _ = gw.request("GET", "/ark/closed", key=gw.key)
    assert st == 403
    gw.allow.append(r"AH01630: client denied by server configuration")


def test_71_03_metrics_after_known_traffic(make_gateway, stub):
    gw = make(make_gateway, stub)
    sent = 3
    for i in range(sent):
        st, _, _ = gw.chat(gw.key, "chat", "count these words %d" % i)[:3]
        assert st == 200
    st, _, _ = gw.chat(gw.key, "chat", "streamed words", stream=True)[:3]
    assert st == 200
    served = [r["usage"] for r in stub.requests()]
    assert len(served) == sent + 1
    p = sum(u["prompt_tokens"] for u in served)
    c = sum(u["completion_tokens"] for u in served)
    spend = p * 2000 + c * 8000
    m = gw.metrics()
    assert m['ark_requests_total_by_key{key="alice"}'] == sent + 1
    assert m['ark_requests_total_by_tenant{tenant="acme"}'] == sent + 1
    assert m['ark_tokens_total_by_key{direction="in",key="alice"}'] == p
    assert m['ark_tokens_total_by_key{direction="out",key="alice"}'] == c
    assert m['ark_spend_nano_total_by_tenant{tenant="acme"}'] == spend
    lab = 'model="chat",channel="stub/gpt-4o-mini",provider="stub"'
    assert m['ark_channel_responses_total{%s,class="2xx"}' % lab] == sent + 1
    assert m['ark_channel_responses_total{%s,class="5xx"}' % lab] == 0
    assert m['ark_channel_tokens_total{%s,direction="in"}' % lab] == p
    assert m['ark_channel_tokens_total{%s,direction="out"}' % lab] == c
    assert m['ark_channel_spend_nano_total{%s}' % lab] == spend
    assert m['ark_channel_duration_seconds_count{%s}' % lab] == sent + 1
    assert m['ark_channel_duration_seconds_bucket{%s,le="+Inf"}' % lab] \
        == sent + 1
    assert m['ark_governance_redis_up'] == -1
    entry = gw.access_entries(wait_for=sent + 1)[-1]
    assert entry["channel"] == "stub/gpt-4o-mini"
    assert entry["attempts"] == 1
    assert entry["spend_nano"] == (served[-1]["prompt_tokens"] * 2000
                                   + served[-1]["completion_tokens"] * 8000)


def test_71_04_identity_from_another_auth_module(make_gateway, stub,
                                                 tmp_path):
    """ArkAuthRemoteUser: httpd's own Basic auth establishes the user; the
    key of that name serves the request, without an Ark secret."""
    import base64
    import os
    import shutil
    import subprocess
    import tempfile
    from ark_harness import SYS_MODDIR

    gw = make_gateway(start=False)
    # the children (User) read it at request time: outside pytest's
    # private temp directory
    d = tempfile.mkdtemp(prefix="ark-test-users-")
    os.chmod(d, 0o755)
    users = os.path.join(d, "htpasswd")
    subprocess.run(["htpasswd", "-cbB", users, "alice", "s3cret-pw"],
                   check=True, capture_output=True)
    subprocess.run(["htpasswd", "-bB", users, "mallory", "other-pw"],
                   check=True, capture_output=True)
    os.chmod(users, 0o644)
    mods = "".join('LoadModule %s_module "%s/mod_%s.so"\n' % (m, SYS_MODDIR, m)
                   for m in ("auth_basic", "authn_core", "authn_file",
                             "authz_user"))
    gw.ark = (mods + openai_provider(stub)
              + "ArkModel chat stub gpt-4o-mini " + PRICE + "\n"
              + """
<Location /sso/v1>
    SetHandler ark-gateway
    AuthType Basic
    AuthName "ark"
    AuthBasicProvider file
    AuthUserFile "%s"
    Require valid-user
    ArkAuthRemoteUser on
</Location>
""" % users)
    gw.key = gw.create_key("alice", tenant="acme")
    gw.start()
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}

    def basic(user, pw):
        return {"Authorization": "Basic " + base64.b64encode(
            ("%s:%s" % (user, pw)).encode()).decode()}

    st, _, answer = gw.request("POST", "/sso/v1/chat/completions", body,
                               headers=basic("alice", "s3cret-pw"))
    assert st == 200, answer
    assert gw.access_entries(wait_for=1)[-1]["key"] == "alice"
    # a wrong password: httpd refuses before Ark sees anything
    st, _, _ = gw.request("POST", "/sso/v1/chat/completions", body,
                          headers=basic("alice", "wrong"))
    assert st == 401
    # a valid user with no key of that name: refused by Ark
    st, _, answer = gw.request("POST", "/sso/v1/chat/completions", body,
                               headers=basic("mallory", "other-pw"))
    assert st == 403 and b"no_key_for_user" in answer
    # the default location still wants an Ark key
    st, _, _ = gw.request("POST", "/v1/chat/completions", body,
                          headers=basic("alice", "s3cret-pw"))
    assert st == 401
    assert len(stub.requests()) == 1
    gw.allow += [r"AH01617: user alice: authentication failure",
                 r"ARK00058"]
    gw.stop()
    shutil.rmtree(d)

"""60: the official OpenAI and Anthropic SDKs work unchanged, only their
base URL set.

Installs the pinned `openai` and `@anthropic-ai/sdk` npm packages (tests/integration/sdk) from the
npm registry on first use; requires Node.js and npm.
"""
import json
import os
import shutil
import subprocess

import pytest

SDK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sdk")


@pytest.fixture(scope="module")
def node_sdk():
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.fail("Node.js and npm are required for the SDK test "
                    "(Debian packages nodejs and npm)")
    if not all(os.path.isdir(os.path.join(SDK_DIR, "node_modules", m))
               for m in ("openai", "@anthropic-ai/sdk")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund",
                        "--loglevel=error"], cwd=SDK_DIR, check=True,
                       timeout=300)
    return SDK_DIR


def test_60_01_openai_node_sdk(node_sdk, gateway, stub):
    r = subprocess.run(
        ["node", os.path.join(node_sdk, "openai_sdk_check.mjs"),
         "http://127.0.0.1:%d/v1" % gateway.port, gateway.key, "chat-fast"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["models"] == ["chat-fast", "chat-big"]
    assert out["text"] == "stub says: hello from the sdk"
    assert out["usage"]["total_tokens"] == 4 + 6
    assert out["streamText"] == "stub says: streaming from the sdk"
    assert out["streamUsage"]["completion_tokens"] == 6
    assert out["chunks"] >= 6
    assert out["authError"] == {"status": 401, "code": "invalid_api_key",
                                "type": "authentication_error",
                                "name": "AuthenticationError"}
    assert out["notFound"]["status"] == 404
    assert out["notFound"]["name"] == "NotFoundError"
    assert out["notFound"]["code"] == "model_not_found"
    # the SDK's own headers did not disturb the upstream request
    ups = stub.requests()
    assert [u["body"]["model"] for u in ups] == ["gpt-4o-mini-2024-07-18"] * 2


def test_60_02_anthropic_node_sdk_through_messages_front(node_sdk, gateway,
                                                        stub):
    """Claude-native clients reach an OpenAI-type channel via /v1/messages."""
    r = subprocess.run(
        ["node", os.path.join(node_sdk, "anthropic_sdk_check.mjs"),
         "http://127.0.0.1:%d" % gateway.port, gateway.key, "chat-fast"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["type"] == "message" and out["role"] == "assistant"
    assert out["text"] == "stub says: hello from claude code"
    assert out["stopReason"] == "end_turn"
    assert out["usage"]["output_tokens"] == 6
    assert out["usage"]["input_tokens"] == 3 + 4    # system + user words
    assert out["streamText"] == "stub says: streaming through ark"
    assert out["streamStop"] == "end_turn"
    assert out["streamUsage"]["output_tokens"] == 5
    assert out["events"][0] == "message_start"
    assert out["events"][-1] == "message_stop"
    assert "content_block_delta" in out["events"]
    assert out["authError"] == {"status": 401, "name": "AuthenticationError",
                                "type": "authentication_error"}
    assert out["badRequest"]["status"] == 400
    assert out["badRequest"]["name"] == "BadRequestError"
    assert out["badRequest"]["type"] == "invalid_request_error"
    # what the OpenAI-type upstream received: a translated OpenAI request
    ups = stub.requests()
    assert ups[0]["path"] == "/v1/chat/completions"
    assert ups[0]["body"]["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello from claude code"}]
    assert ups[0]["body"]["max_tokens"] == 256

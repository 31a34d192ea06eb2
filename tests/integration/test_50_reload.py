"""50: keys and configuration re-read on graceful reload."""
import json

from ark_harness import ark_keys, assert_openai_error
from conftest import openai_provider


def test_50_01_new_and_revoked_keys_take_effect_on_graceful(gateway, stub):
    later = gateway.create_key("later")
    st, _, body = gateway.chat(later, "chat-fast", "hi")
    assert_openai_error(st, body, 401, "invalid_api_key")   # not yet loaded
    gateway.graceful()
    st, _, _ = gateway.chat(later, "chat-fast", "hi")
    assert st == 200
    ark_keys("revoke", "-f", gateway.keys_file, "later")
    gateway.graceful()
    st, _, body = gateway.chat(later, "chat-fast", "hi")
    assert_openai_error(st, body, 401, "revoked_api_key")
    ark_keys("enable", "-f", gateway.keys_file, "later")
    gateway.graceful()
    st, _, _ = gateway.chat(later, "chat-fast", "hi")
    assert st == 200
    # the original key kept working throughout
    st, _, _ = gateway.chat(gateway.key, "chat-fast", "hi")
    assert st == 200


def test_50_02_remapping_an_alias_is_a_config_change(make_gateway, stub):
    gw = make_gateway(ark=openai_provider(stub) + "ArkModel m stub old-x\n",
                      start=False)
    key = gw.create_key("k")
    gw.start()
    assert gw.chat(key, "m", "hi")[0] == 200
    gw.ark = openai_provider(stub) + "ArkModel m stub new-y\n"
    gw.write_conf()
    gw.graceful()
    assert gw.chat(key, "m", "hi")[0] == 200
    assert [r["body"]["model"] for r in stub.requests()] == ["old-x",
                                                             "new-y"]

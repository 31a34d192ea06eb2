"""96: tools/litellm2ark converts LiteLLM proxy configs into directives
that the real httpd, loading the built mod_ark, accepts.

Each fixture under tests/data/litellm/ is a realistic LiteLLM config.yaml.
The tests check the directives printed (providers, channels, prices,
routing, fallbacks, cache, governance Redis), the warnings for what has
no equivalent, that no literal secret of the input reaches the output
or the warnings, and that `apache2 -t` accepts the output with the
environment variables it names set (as /etc/apache2/envvars would).
One test runs a converted config for real: httpd started with it routes
a chat request to the stub provider with the key from the environment.
"""
import os
import re
import subprocess
import sys

import pytest

from ark_harness import Httpd, SRC

TOOL = os.path.join(SRC, "tools", "litellm2ark")
DATA = os.path.join(SRC, "tests", "data", "litellm")
FIXTURES = sorted(f for f in os.listdir(DATA) if f.endswith(".yaml"))


def convert(path_or_text, *args, stdin=None):
    if stdin is not None:
        cmd = [sys.executable, TOOL, "-"] + list(args)
    else:
        cmd = [sys.executable, TOOL, path_or_text] + list(args)
    res = subprocess.run(cmd, input=stdin, capture_output=True, text=True,
                         timeout=30)
    return res.returncode, res.stdout, res.stderr


def fixture(name):
    rc, out, err = convert(os.path.join(DATA, name))
    assert rc == 0, err
    return out, err


def directives(out):
    return [line for line in out.splitlines()
            if line.startswith("Ark")]


def env_for(out):
    return {v: "sk-test-%s" % v.lower()
            for v in re.findall(r"env:([A-Za-z_][A-Za-z0-9_]*)", out)}


def configtest(tmp_path, out):
    gw = Httpd(tmp_path, ark=out, env=env_for(out))
    return gw.configtest()


@pytest.mark.parametrize("name", FIXTURES)
def test_96_01_every_fixture_loads_into_httpd(tmp_path, name):
    out, _ = fixture(name)
    res = configtest(tmp_path, out)
    assert res.returncode == 0 and "Syntax OK" in res.stderr, \
        "%s:\n%s\n%s" % (name, out, res.stderr)


def test_96_02_missing_environment_is_refused(tmp_path):
    """The configtest above is meaningful: without the variables the
    output names, httpd refuses the provider."""
    out, _ = fixture("openai.yaml")
    gw = Httpd(tmp_path, ark=out,
               env={"OPENAI_API_KEY": ""})
    gw.env.pop("OPENAI_API_KEY", None)
    res = gw.configtest()
    assert res.returncode != 0
    assert "OPENAI_API_KEY" in res.stderr


def test_96_03_openai(tmp_path):
    out, err = fixture("openai.yaml")
    d = directives(out)
    assert d[0] == ("ArkProvider openai openai https://api.openai.com/v1 "
                    "key=env:OPENAI_API_KEY")
    assert "ArkModel gpt-4o openai gpt-4o price=2.5/10" in d
    assert "ArkModel gpt-4o-mini openai gpt-4o-mini price=0.15/0.6" in d
    assert ("ArkModel text-embedding-3-small openai text-embedding-3-small"
            in d)
    assert sum(1 for x in d if x.startswith("ArkProvider")) == 1
    assert "rpm=500" in err and "tpm=300000" in err
    assert "master_key" in err
    assert "sk-1234-literal-master-key" not in out + err


def test_96_04_azure_literal_key_becomes_placeholder():
    out, err = fixture("azure.yaml")
    d = directives(out)
    assert ("ArkProvider azure-acme-eu azure https://acme-eu.openai.azure.com"
            " key=env:AZURE_EU_KEY api-version=2024-10-21") in d
    assert ("ArkProvider azure-acme-ca azure https://acme-ca.openai.azure.com"
            " key=env:ARK_AZURE_ACME_CA_API_KEY "
            "api-version=2025-01-01-preview") in d
    assert "ArkModel gpt-4o azure-acme-eu gpt4o-eu weight=3" in d
    assert "ArkModel gpt-4o azure-acme-ca gpt4o-ca weight=1" in d
    # simple-shuffle with weights; num_retries 2 -> 3 attempts; timeout
    assert "ArkRoute * strategy=weighted attempts=3 deadline=45s" in d
    secret = "0123456789abcdef0123456789abcdef"
    assert secret not in out and secret not in err
    assert "written literally" in err and "ARK_AZURE_ACME_CA_API_KEY" in err


def test_96_05_anthropic_prices_and_timeout():
    out, err = fixture("anthropic.yaml")
    d = directives(out)
    assert ("ArkProvider anthropic anthropic https://api.anthropic.com/v1 "
            "key=env:ANTHROPIC_API_KEY timeout=120s") in d
    assert ("ArkModel claude-sonnet anthropic claude-3-5-sonnet-20241022 "
            "price=3/15/0.3") in d
    # no prefix, claude name: anthropic, LiteLLM's default variable
    assert "ArkModel claude-haiku anthropic claude-3-5-haiku-20241022" in d
    assert "success_callback" in err and "drop_params" in err


def test_96_06_gemini_and_unsupported_providers():
    out, err = fixture("gemini.yaml")
    d = directives(out)
    assert ("ArkProvider gemini gemini "
            "https://generativelanguage.googleapis.com/v1beta "
            "key=env:GEMINI_API_KEY") in d
    assert "ArkModel gemini-pro gemini gemini-1.5-pro" in d
    assert not any("vertex" in x or "titan" in x for x in d)
    assert "'vertex_ai' has no Ark provider type" in err
    assert "'bedrock' has no Ark provider type" in err


def test_96_07_openai_compatible_endpoints():
    out, err = fixture("compatible.yaml")
    d = directives(out)
    assert ("ArkProvider deepseek openai https://api.deepseek.com/v1 "
            "key=env:DEEPSEEK_API_KEY") in d
    assert ("ArkProvider hosted-vllm-10-1-2-3 openai "
            "http://10.1.2.3:8000/v1 plaintext=on max-conns=32") in d
    assert ("ArkModel llama-70b hosted-vllm-10-1-2-3 "
            "meta-llama/Llama-3.1-70B-Instruct") in d
    assert ("ArkProvider ollama-local-11434 openai "
            "http://localhost:11434/v1") in d
    assert "ArkModel llama3 ollama-local-11434 llama3.1:8b" in d
    assert ("ArkProvider dashscope openai "
            "https://dashscope.aliyuncs.com/compatible-mode/v1 "
            "key=env:DASHSCOPE_API_KEY") in d
    assert "plaintext=on added" in err


def test_96_08_groups_fallbacks_cache_and_redis():
    out, err = fixture("fallbacks.yaml")
    d = directives(out)
    gpt = [x for x in d if x.startswith("ArkModel gpt-4o ")]
    # the group in its order, then the fallback models' channels
    assert gpt[0] == "ArkModel gpt-4o openai gpt-4o"
    assert gpt[1] == "ArkModel gpt-4o azure-acme gpt4o-prod"
    assert gpt[2].startswith("ArkModel gpt-4o anthropic "
                             "claude-3-5-sonnet-20241022 name=")
    assert gpt[3].startswith("ArkModel gpt-4o deepseek deepseek-chat name=")
    assert len(gpt) == 4
    assert "ArkRoute gpt-4o strategy=fallback attempts=4" in d
    assert "ArkRoute * strategy=least-latency attempts=4" in d
    assert "ArkCircuit failures=3 cooldown=30s" in d
    assert "ArkGovernRedis 10.0.0.20:6379 password=env:REDIS_PASSWORD" in d
    assert "ArkCacheServer 127.0.0.1:7480" in d
    assert "ArkCache on threshold=0.92 ttl=600s" in d
    assert "context_window_fallbacks" in err
    assert "instead of balancing" in err


def test_96_09_bad_input(tmp_path):
    rc, out, err = convert("-", stdin="model_list: [\n")
    assert rc == 1 and out == "" and err.startswith("litellm2ark: -:")
    rc, out, err = convert("-", stdin="model_list:\n  - model_name: x\n"
                           "    litellm_params:\n      model: bedrock/y\n")
    assert rc == 1 and "no model" in err
    rc, _, err = convert(str(tmp_path / "absent.yaml"))
    assert rc == 1 and "absent.yaml" in err


def test_96_10_literal_secrets_never_printed():
    text = """
model_list:
  - model_name: m
    litellm_params:
      model: openai/m
      api_base: https://relay.example.net/v1
      api_key: sk-live-LITERAL-7d1e
router_settings:
  redis_host: 10.0.0.9
  redis_password: hunter2-LITERAL
general_settings:
  master_key: sk-master-LITERAL
environment_variables:
  OPENAI_API_KEY: sk-env-LITERAL
"""
    rc, out, err = convert("-", stdin=text)
    assert rc == 0
    assert "LITERAL" not in out and "LITERAL" not in err
    assert "key=env:ARK_RELAY_API_KEY" in out
    assert "password=env:ARK_REDIS_PASSWORD" in out


def test_96_11_converted_config_serves_requests(make_gateway, stub):
    """The output, with the base URL pointed at the stub, runs: httpd
    routes the alias to the upstream model with the key from the
    environment."""
    text = """
model_list:
  - model_name: team-model
    litellm_params:
      model: openai/stub-model-x
      api_base: %s/v1
      api_key: os.environ/STUB_PROVIDER_KEY
""" % stub.base
    rc, out, err = convert("-", "--no-location", stdin=text)
    assert rc == 0, err
    assert "<Location" not in out
    gw = make_gateway(ark=out, start=False,
                      env={"STUB_PROVIDER_KEY": stub.key})
    key = gw.create_key("k")
    gw.start()
    st, _, body = gw.chat(key, "team-model", "hello")
    assert st == 200, body
    reqs = stub.requests()
    assert reqs[-1]["body"]["model"] == "stub-model-x"


def test_96_12_migration_guide_example_is_current(tmp_path):
    """docs/migrating-from-litellm.md shows a config.yaml and the
    directives and warnings the converter prints for it: they must be
    what the converter prints now."""
    with open(os.path.join(SRC, "docs", "migrating-from-litellm.md"),
              encoding="utf-8") as f:
        page = f.read()
    yml = re.search(r"^```yaml\n(.*?)^```", page, re.M | re.S).group(1)
    shown = re.search(r"^```apache\n(.*?)^```", page[page.index(yml):],
                      re.M | re.S).group(1)
    warned = re.search(r"^```text\n(.*?)^```", page[page.index(shown):],
                       re.M | re.S).group(1)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yml)
    res = subprocess.run([sys.executable, TOOL, "config.yaml"],
                         cwd=str(tmp_path), capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0
    assert res.stdout == shown
    assert res.stderr == warned
    assert "master_key" in warned and "LITELLM_MASTER_KEY" not in shown

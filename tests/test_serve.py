"""`mmagent serve`: a real uvicorn server on a free 127.0.0.1 port over a tiny random-weight LLaVA with two
LoRA adapters, driven by the official `openai` client, LangChain's `ChatOpenAI`, plain HTTP, and the
`OpenAICompatBackend` (model.id openai+http://...). Greedy answers over HTTP must equal the same model's
answers computed in-process, adapter for adapter."""

from __future__ import annotations

import base64
import io
import json
import time

import pytest
from conftest import tiny_config

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

HELLO = [{"role": "user", "content": "hello world"}]


@pytest.fixture(scope="module")
def config(tiny_llava_dir, tiny_adapters, tmp_path_factory):
    data = tmp_path_factory.mktemp("serve-data")
    return tiny_config(tiny_llava_dir, **{"adapters.a": str(tiny_adapters["a"]), "adapters.b": str(tiny_adapters["b"]),
                                          "paths.data": str(data)})


@pytest.fixture(scope="module")
def backend(config):
    from mmagent.model.backend import HFVisionBackend

    return HFVisionBackend(config)


@pytest.fixture(scope="module")
def server(config, backend):
    from mmagent.serve.app import create_app
    from mmagent.serve.limits import ServeSettings
    from mmagent.serve.runner import BackgroundServer

    with BackgroundServer(create_app(config, ServeSettings(served_name="tiny"), backend=backend)) as running:
        yield running


@pytest.fixture(scope="module")
def guarded(config, backend):
    """Auth on, small limits: a 20 kB body, 8 tokens, 64x64 px images."""
    from mmagent.serve.app import create_app
    from mmagent.serve.limits import ServeSettings
    from mmagent.serve.runner import BackgroundServer

    settings = ServeSettings(api_key="s3cret", max_body_mb=0.02, max_tokens=8, max_image_pixels=64 * 64,
                             served_name="tiny")
    with BackgroundServer(create_app(config, settings, backend=backend)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def reference(backend, messages, model):
    return backend.complete(messages, adapter=None if model == "tiny" else model)


def data_url(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# ---- OpenAI surface -----------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["tiny", "a", "b"])
def test_openai_client_gets_each_models_greedy_answer(client, backend, model):
    expected = reference(backend, HELLO, model)
    answer = client.chat.completions.create(model=model, messages=HELLO)
    assert answer.choices[0].message.content == expected
    assert answer.choices[0].finish_reason == "length"  # the tiny model never ends before 12 tokens
    assert answer.usage.completion_tokens == 12 and answer.usage.prompt_tokens > 0
    stream = client.chat.completions.create(model=model, messages=HELLO, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # streamed, not one block
    assert chunks[-1].usage.completion_tokens == 12


def test_adapters_differ_so_the_comparison_means_something(backend):
    assert len({reference(backend, HELLO, m) for m in ("tiny", "a", "b")}) == 3


def test_langchain_chat_openai_pointed_at_the_server(server, backend):
    langchain_openai = pytest.importorskip("langchain_openai")

    chat = langchain_openai.ChatOpenAI(base_url=server.url + "/v1", api_key="unused", model="a", temperature=0,
                                       max_retries=0)
    assert chat.invoke("hello world").content == reference(backend, HELLO, "a")
    assert "".join(c.content for c in chat.stream("hello world")) == reference(backend, HELLO, "a")


def test_models_health_metrics(client, server):
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {"tiny", "a", "b"} and models["a"].parent == "tiny"
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["adapters"] == ["a", "b"]
    client.chat.completions.create(model="b", messages=HELLO)
    metrics = httpx.get(server.url + "/metrics").text
    assert 'mmagent_requests_total{route="/v1/chat/completions",status="200"}' in metrics
    assert 'mmagent_generated_tokens_total{adapter="b"}' in metrics and "mmagent_batch_rows_bucket" in metrics


def test_unknown_model_and_unsupported_fields_are_4xx_naming_the_fix(client):
    with pytest.raises(openai.NotFoundError, match="available: tiny, a, b"):
        client.chat.completions.create(model="nope", messages=HELLO)
    with pytest.raises(openai.BadRequestError, match="n=2"):
        client.chat.completions.create(model="tiny", messages=HELLO, n=2)


def test_image_as_data_url_equals_the_in_process_answer(client, backend, cat_photo):
    from PIL import Image

    image = Image.open(cat_photo).convert("RGB")
    content = [{"type": "image_url", "image_url": {"url": data_url(image)}}, {"type": "text", "text": "Describe"}]
    answer = client.chat.completions.create(model="a", messages=[{"role": "user", "content": content}])
    expected = backend.complete([{"role": "user", "content": [{"type": "image", "image": image},
                                                              {"type": "text", "text": "Describe"}]}], adapter="a")
    assert answer.choices[0].message.content == expected


def test_http_image_urls_are_refused_by_default(client):
    content = [{"type": "image_url", "image_url": {"url": "http://example.com/cat.jpg"}}, {"type": "text", "text": "hi"}]
    with pytest.raises(openai.BadRequestError, match="data URL") as info:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": content}])
    assert info.value.body["code"] == "image_url_refused"


def test_malformed_json_is_a_400_that_says_so(server):
    response = httpx.post(server.url + "/v1/chat/completions", content=b'{"model": "tiny", "messages": [',
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]
    response = httpx.post(server.url + "/v1/chat/completions", json={"model": "tiny", "messages": "hi"})
    assert response.status_code == 400 and "messages" in response.json()["error"]["message"]


def test_embeddings_are_the_memory_embedders(server, config):
    pytest.importorskip("sentence_transformers")
    from mmagent.memory.embedder import get_embedder

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    result = client.embeddings.create(input=["office cat", "router reset"], model="default")
    expected = get_embedder(config.memory.embedder).embed(["office cat", "router reset"])
    assert len(result.data) == 2
    for got, want in zip(result.data, expected):
        assert got.embedding == pytest.approx(want, abs=1e-6)


# ---- limits and auth ------------------------------------------------------------------------------------
def test_auth_body_tokens_and_pixels_limits(guarded, cat_photo):
    url = guarded.url + "/v1/chat/completions"
    body = {"model": "tiny", "messages": HELLO}
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(guarded.url + "/health").status_code == 200  # liveness probes need no key
    auth = {"Authorization": "Bearer s3cret"}
    assert httpx.post(url, json=body, headers=auth).status_code == 200
    big = httpx.post(url, json={**body, "messages": [{"role": "user", "content": "x" * 30_000}]}, headers=auth)
    assert big.status_code == 413 and "over the server's limit" in big.json()["error"]["message"]
    many = httpx.post(url, json={**body, "max_tokens": 9}, headers=auth)
    assert many.status_code == 400 and many.json()["error"]["code"] == "max_tokens_over_limit"
    from PIL import Image

    content = [{"type": "image_url", "image_url": {"url": data_url(Image.new("RGB", (100, 100)))}}]
    large = httpx.post(url, json={"model": "tiny", "messages": [{"role": "user", "content": content}]}, headers=auth)
    assert large.status_code == 413 and large.json()["error"]["code"] == "image_too_large"


def test_a_request_over_the_time_limit_times_out(backend):
    from mmagent.serve.batching import Batcher, GenerationTimeout

    batcher = Batcher(backend)
    try:
        with pytest.raises(GenerationTimeout, match="longer than the server's limit"):
            "".join(batcher.submit(HELLO, timeout=1e-6))
    finally:
        batcher.close()


# ---- flows --------------------------------------------------------------------------------------------
def sse(response) -> list[dict]:
    events = []
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            events.append(json.loads(line[6:]))
    return events


def test_classify_flow_streams_its_events(server):
    with httpx.stream("POST", server.url + "/v1/flows/classify", json={"labels": ["yes", "no"], "text": "a cat"},
                      timeout=120) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = sse(response)
    assert events[-1]["type"] == "done" and events[-1]["data"]["prediction"]["label"] in ("yes", "no")


def test_flow_input_errors_are_4xx(server):
    assert httpx.post(server.url + "/v1/flows/nope", json={}).status_code == 404
    response = httpx.post(server.url + "/v1/flows/classify", json={"labels": ["yes", "no"], "prompts": "/etc/passwd"})
    assert response.status_code == 400 and "unknown field" in response.json()["error"]["message"]
    response = httpx.post(server.url + "/v1/flows/classify", json={"labels": ["yes"], "text": "a"})
    assert response.status_code == 400 and "two distinct labels" in response.json()["error"]["message"]


def test_support_sessions_by_id(server):
    for session, message in (("s1", "Where is order 1001?"), ("s2", "I want a refund"), ("s1", "hello again")):
        with httpx.stream("POST", server.url + "/v1/flows/support", json={"message": message, "session": session},
                          timeout=300) as response:
            assert response.status_code == 200
            assert sse(response)[-1]["type"] == "done"
    s1 = httpx.get(server.url + "/v1/flows/support/sessions/s1").json()["history"]
    s2 = httpx.get(server.url + "/v1/flows/support/sessions/s2").json()["history"]
    said = lambda history: [turn["content"] for turn in history if turn["role"] == "user"]  # noqa: E731
    assert said(s1) == ["Where is order 1001?", "hello again"] and said(s2) == ["I want a refund"]


# ---- the OpenAI-compatible backend ------------------------------------------------------------------------
def test_openai_compat_backend_on_mmagent_serve(server, backend, config, cat_photo):
    from mmagent.errors import AdapterError
    from mmagent.model import load_backend

    remote = load_backend(tiny_config(config.model.id, **{"model.id": f"openai+{server.url}/v1"}))
    assert remote.adapters.names == ("a", "b") and remote.info().device == server.url + "/v1"
    for adapter in (None, "a", "b"):
        pieces = list(remote.generate(HELLO, adapter=adapter))
        assert "".join(pieces) == backend.complete(HELLO, adapter=adapter) and len(pieces) > 1
    assert remote.generate_batch([HELLO, HELLO], adapter="b") == [backend.complete(HELLO, adapter="b")] * 2
    assert remote.complete(HELLO, images=[str(cat_photo)], adapter="a") == backend.complete(
        HELLO, images=[str(cat_photo)], adapter="a")
    with pytest.raises(AdapterError, match="serves: a, b"):
        remote.generate(HELLO, adapter="c")


def test_a_flow_runs_on_the_remote_backend_as_on_the_local_one(server, backend, config):
    from mmagent.flows.base import answer_of, get_flow
    from mmagent.flows.qa import QARequest
    from mmagent.model import load_backend

    remote_config = tiny_config(config.model.id, **{"model.id": f"openai+{server.url}/v1",
                                                    "paths.data": config.paths.data})
    request = QARequest("What is in this picture?")
    local = answer_of(get_flow("qa", config, backend).run(request))
    remote = answer_of(get_flow("qa", remote_config, load_backend(remote_config)).run(QARequest("What is in this picture?")))
    assert remote.answer == local.answer


def test_classify_flow_on_the_remote_backend_scores_on_the_server(server, backend, config):
    from mmagent.flows.base import answer_of, get_flow
    from mmagent.flows.classify import ClassifyRequest
    from mmagent.model import load_backend

    remote_config = tiny_config(config.model.id, **{"model.id": f"openai+{server.url}/v1"})
    remote = load_backend(remote_config)
    messages = [{"role": "user", "content": "Is it a cat?"}]
    assert remote.score(messages, ["yes", "no"], adapter="a") == pytest.approx(
        backend.score(messages, ["yes", "no"], adapter="a"), abs=1e-4)
    request = lambda: ClassifyRequest(["yes", "no"], "a cat")  # noqa: E731
    local = answer_of(get_flow("classify", config, backend).run(request())).data["prediction"]
    there = answer_of(get_flow("classify", remote_config, remote).run(request())).data["prediction"]
    assert there["label"] == local["label"] and there["confidence"] == pytest.approx(local["confidence"], abs=1e-4)


# ---- load -------------------------------------------------------------------------------------------------
CLIENTS, TURNS, SESSIONS = 8, 13, 4  # 8 x 13 chat requests + 4 support sessions x 2 turns = 112 requests


def conversation_plan(backend) -> list[list[tuple[str, list[dict], str]]]:
    """Per client, its turns as (model, messages, the answer computed in-process beforehand): each client
    holds one multi-turn conversation and changes adapter from turn to turn."""
    models = ("tiny", "a", "b")
    plan = []
    for client in range(CLIENTS):
        history, turns = [], []
        for turn in range(TURNS):
            model = models[(client + turn) % 3]
            history = history + [{"role": "user", "content": f"order {1000 + client}, turn {turn}: what colour?"}]
            answer = reference(backend, history, model)
            turns.append((model, history, answer))
            history = history + [{"role": "assistant", "content": answer}]
        plan.append(turns)
    return plan


def test_load_8_clients_mixed_adapters_and_sessions_nothing_crossed(server, backend):
    """The issue's bar: 8 concurrent clients, >= 100 requests, mixed adapters and sessions; every request
    answered, each answer its own adapter's greedy answer to its own conversation, each support session
    holding only its own turns."""
    from concurrent.futures import ThreadPoolExecutor

    plan = conversation_plan(backend)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)

    def support_turn(session: str, message: str) -> str:
        with httpx.stream("POST", server.url + "/v1/flows/support", json={"message": message, "session": session},
                          timeout=300) as response:
            assert response.status_code == 200
            return sse(response)[-1]["type"]

    def run(index: int) -> list[tuple[str, str]]:
        got = []
        for turn, (model, messages, expected) in enumerate(plan[index]):
            if turn % 2:
                stream = client.chat.completions.create(model=model, messages=messages, stream=True)
                text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            else:
                text = client.chat.completions.create(model=model, messages=messages).choices[0].message.content
            got.append((text, expected))
            if index < SESSIONS and turn in (3, 9):
                assert support_turn(f"load-{index}", f"client {index} says turn {turn}") == "done"
        return got

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [pair for client_results in pool.map(run, range(CLIENTS)) for pair in client_results]
    seconds = time.perf_counter() - started
    assert len(results) + 2 * SESSIONS >= 100
    crossed = [(got, want) for got, want in results if got != want]
    assert not crossed, f"{len(crossed)} of {len(results)} answers differ from their own adapter's greedy answer"
    for index in range(SESSIONS):
        history = httpx.get(f"{server.url}/v1/flows/support/sessions/load-{index}").json()["history"]
        assert [t["content"] for t in history if t["role"] == "user"] == [
            f"client {index} says turn 3", f"client {index} says turn 9"]
    metrics = httpx.get(server.url + "/metrics").text
    batched = [line for line in metrics.splitlines() if line.startswith('mmagent_batch_rows_bucket{le="1.0"}')]
    total = [line for line in metrics.splitlines() if line.startswith("mmagent_batch_rows_count")]
    print(f"load: {len(results) + 2 * SESSIONS} requests from {CLIENTS} clients in {seconds:.1f} s; {batched} {total}")
    assert float(batched[0].split()[-1]) < float(total[0].split()[-1])  # some batches held more than one row


def test_concurrent_requests_with_and_without_images_in_one_batch(server, backend, cat_photo):
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    image = Image.open(cat_photo).convert("RGB")
    url = data_url(image)
    cases = []
    for i, model in enumerate(["a", "tiny", "b", "a", "tiny", "b"]):
        text = f"Describe picture {i}"
        if i % 2:
            cases.append((model, [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}],
                          [{"type": "image", "image": image}, {"type": "text", "text": text}]))
        else:
            cases.append((model, text, text))
    expected = [reference(backend, [{"role": "user", "content": hf}], model) for model, _, hf in cases]
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    ask = lambda case: client.chat.completions.create(  # noqa: E731
        model=case[0], messages=[{"role": "user", "content": case[1]}]).choices[0].message.content
    with ThreadPoolExecutor(len(cases)) as pool:
        assert list(pool.map(ask, cases)) == expected


# ---- the command and the extra ------------------------------------------------------------------------------
@pytest.mark.slow  # ~20 s: a second process imports torch and loads the model
def test_mmagent_serve_command_serves_until_stopped(tiny_llava_dir, tiny_adapters, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from mmagent.serve.runner import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMAGENT_")}
    env.update({"MMAGENT_SERVE_API_KEY": "k", "MMAGENT_PATHS_DATA": str(tmp_path)})
    code = "import sys; from mmagent.cli import main; sys.exit(main())"
    process = subprocess.Popen([sys.executable, "-c", code, "serve", "--model", str(tiny_llava_dir), "--port", str(port),
                                "--adapter-path", f"a={tiny_adapters['a']}", "--served-name", "tiny",
                                "--set", "model.max_new_tokens=4"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start in 120 s"
            time.sleep(0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        assert [m.id for m in client.models.list()] == ["tiny", "a"]
        assert client.chat.completions.create(model="a", messages=HELLO).usage.completion_tokens == 4
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert "mmagent serve on http://127.0.0.1" in stderr and "Traceback" not in stderr


def test_a_missing_serve_extra_names_it(config, backend, monkeypatch):
    import sys

    from mmagent.errors import MissingExtraError
    from mmagent.serve.app import create_app

    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'mmagent\[serve\]'"):
        create_app(config, backend=backend)


def test_a_grammar_crosses_to_the_server_as_structured_outputs(server, backend, config):
    from mmagent.model import load_backend

    remote = load_backend(tiny_config(config.model.id, **{"model.id": f"openai+{server.url}/v1"}))
    grammar = 'start: "yes" | "no" | "order " /[0-9]{2}/'
    answer = remote.complete(HELLO, adapter="b", grammar=grammar)
    assert answer == backend.complete(HELLO, adapter="b", grammar=grammar)
    assert answer in ("yes", "no") or answer.startswith("order ")


def test_a_client_that_leaves_mid_stream_stops_its_row(server):
    def tokens_of_b() -> float:
        line = next((x for x in httpx.get(server.url + "/metrics").text.splitlines()
                     if x.startswith('mmagent_generated_tokens_total{adapter="b"}')), "x 0")
        return float(line.split()[-1])

    before = tokens_of_b()
    body = {"model": "b", "messages": HELLO, "stream": True, "max_tokens": 1000}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")  # the first chunk arrived; now hang up
    deadline = time.monotonic() + 30
    while tokens_of_b() == before:  # the row's tokens are counted when it ends
        assert time.monotonic() < deadline, "the abandoned row never ended"
        time.sleep(0.05)
    assert tokens_of_b() - before < 1000


def test_support_flow_on_the_remote_backend_as_on_the_local_one(server, backend, config, tmp_path):
    """Its plan step is grammar-constrained: the grammar crosses the wire, so the turn goes the same way."""
    from mmagent.flows.base import get_flow
    from mmagent.flows.support import SupportRequest
    from mmagent.model import load_backend

    local_config = tiny_config(config.model.id, **{"paths.data": str(tmp_path / "local")})
    remote_config = tiny_config(config.model.id, **{"model.id": f"openai+{server.url}/v1",
                                                    "paths.data": str(tmp_path / "remote")})
    turn = lambda: SupportRequest("Where is order 1001?", "remote-1")  # noqa: E731
    local = get_flow("support", local_config, backend)
    remote = get_flow("support", remote_config, load_backend(remote_config))
    try:
        events = lambda flow: [{k: v for k, v in e.to_dict().items() if k != "id"} for e in flow.run(turn())]  # noqa: E731
        there, here = events(remote), events(local)
        assert there == here and there[-1]["type"] == "done"
    finally:
        local.close()
        remote.close()


def test_doctor_checks_a_remote_model_instead_of_crashing(server):
    from mmagent.config import load_config
    from mmagent.doctor import diagnose

    def row(url: str):
        config = load_config(overrides={"model.id": f"openai+{url}/v1"}, env={})
        return next(a for a in diagnose(config).artifacts if a.name.startswith("model: openai+"))

    up = row(server.url)
    assert up.status == "ok" and "OpenAI-compatible server" in up.detail
    down = row("http://127.0.0.1:9")  # nothing listens on the discard port
    assert down.status == "missing" and "not reachable" in down.detail and "mmagent serve" in down.detail


def test_the_remote_backend_sends_the_configs_decoding_defaults(server, config):
    """A remote engine left to its own defaults samples (vLLM: temperature 1) up to its context length; the
    config's length and greedy decoding must travel with every request, as they apply locally."""
    from conftest import tiny_config

    from mmagent.model import load_backend

    url = f"openai+{server.url}/v1"
    load_backend(tiny_config(config.model.id, **{"model.id": url, "model.max_new_tokens": 12}))  # another config first
    remote = load_backend(tiny_config(config.model.id, **{"model.id": url, "model.max_new_tokens": 3}))
    body = remote._body([{"role": "user", "content": "hi"}], remote.base_name, None, {})
    assert body["max_tokens"] == 3 and body["temperature"] == 0.0
    assert remote._body([{"role": "user", "content": "hi"}], remote.base_name, None,
                        {"max_new_tokens": 7})["max_tokens"] == 7  # a request's own value wins



# ---- one resident model per set of weights; per-config decoding defaults -----------------------------------
def test_configs_that_differ_in_decoding_defaults_share_the_weights_not_the_defaults(config):
    from mmagent.model import load_backend

    short = load_backend(tiny_config(config.model.id, **{"adapters.a": config.adapters["a"], "model.max_new_tokens": 3}))
    long = load_backend(tiny_config(config.model.id, **{"adapters.a": config.adapters["a"], "model.max_new_tokens": 7}))
    assert short is not long and short.model is long.model and short.adapters is long.adapters  # loaded once
    few, more = short.generate_ids(HELLO, adapter="a"), long.generate_ids(HELLO, adapter="a")
    assert len(few) == 3 and len(more) == 7 and more[:3] == few  # each view decodes with its own length
    assert load_backend(tiny_config(config.model.id, **{"adapters.a": config.adapters["a"],
                                                        "model.max_new_tokens": 3})) is short


# ---- the remote backend implements the whole protocol (or says what needs a local model) ------------------
def test_the_remote_backend_counts_tokens_and_knows_the_context_length_from_the_server(server, backend, config, cat_photo):
    from mmagent.errors import RemoteUnsupported
    from mmagent.model import load_backend

    remote = load_backend(tiny_config(config.model.id, **{"model.id": f"openai+{server.url}/v1"}))
    text = "Refunds are paid within 14 days, said the help centre."
    assert remote.count_tokens(text) == backend.count_tokens(text) > 5
    assert remote.token_spans(text) == backend.token_spans(text)
    info, local = remote.info(), backend.info()
    assert info.context_length == local.context_length is not None
    assert info.reads_image_text == local.reads_image_text and info.adapters == ("a", "b")
    for call in (lambda: remote.prompt(HELLO), lambda: remote.image_text(str(cat_photo)), lambda: remote.decode_rows([])):
        with pytest.raises(RemoteUnsupported, match="needs the model in this process"):
            call()
    assert httpx.post(server.url + "/tokenize", json={"model": "c", "prompt": "x"}).status_code == 404


def test_summarize_flow_on_the_remote_backend_as_on_the_local_one(server, backend, config):
    """Context length, token counts and chunk borders all come over the wire: a map-reduce summary (a window
    small enough to need two map calls) is the same text remote and local."""
    from mmagent.flows.base import answer_of, get_flow
    from mmagent.flows.summarize import SummarizeRequest
    from mmagent.model import load_backend

    text = " ".join(f"Ticket {n} was opened on Monday by Dana about a broken lamp and closed by Sam." for n in range(40))
    settings = {"flows.context_tokens": 420, "model.max_new_tokens": 8, "paths.data": config.paths.data}
    local_config = tiny_config(config.model.id, **settings)
    remote_config = tiny_config(config.model.id, **{**settings, "model.id": f"openai+{server.url}/v1"})
    request = lambda: SummarizeRequest(text=text, words=5, adapter="a")  # noqa: E731
    local_flow = get_flow("summarize", local_config, backend)
    remote_flow = get_flow("summarize", remote_config, load_backend(remote_config))
    assert local_flow.count(text) > local_flow.budget(5)  # it must map first
    here = answer_of(local_flow.run(request()))
    there = answer_of(remote_flow.run(request()))
    assert there.answer == here.answer and there.answer


# ---- a remote model's adapters are its server's: eval --adapter and the UI's list ------------------------
def test_eval_on_a_remote_model_takes_the_servers_adapters(server, config, tmp_path):
    import os
    import subprocess
    import sys

    url = f"openai+{server.url}/v1"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MMAGENT_")}, "COLUMNS": "300"}

    def run(out: str, *args: str) -> subprocess.CompletedProcess:
        cli = "import sys; from mmagent.cli import main; sys.exit(main(sys.argv[1:]))"
        return subprocess.run([sys.executable, "-c", cli, "eval", "run", "--suite", "squad_mini", "--limit", "2",
                               "--out", str(tmp_path / out), "--json", *args],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)

    unknown = run("c", "--model", url, "--adapter", "c")
    assert unknown.returncode != 0 and "serves: a, b" in unknown.stderr + unknown.stdout
    there = run("remote", "--model", url, "--adapter", "b")  # b is not under adapters: here, only on the server
    assert there.returncode == 0, there.stderr
    here = run("local", "--model", config.model.id, "--adapter-path", f"b={config.adapters['b']}", "--adapter", "b")
    assert here.returncode == 0, here.stderr
    results = lambda out: json.loads((tmp_path / out / "results.json").read_text())  # noqa: E731
    assert results("remote")["count"] == 2 and results("remote")["sections"] == results("local")["sections"]
    manifest = json.loads((tmp_path / "remote" / "manifest.json").read_text())
    assert manifest["adapter"] == "b" and manifest["adapter_sha256"] is None  # its bytes are on the server


def test_the_ui_lists_the_servers_adapters_for_a_remote_model(server, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from mmagent.ui.resources import adapter_names

    monkeypatch.chdir(tmp_path)
    for key in [k for k in __import__("os").environ if k.startswith("MMAGENT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MMAGENT_MODEL_ID", f"openai+{server.url}/v1")
    monkeypatch.setenv("MMAGENT_PATHS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MMAGENT_MEMORY_PATH", str(tmp_path / "memory"))
    assert adapter_names() == ["a", "b"]
    app_file = __import__("pathlib").Path(__file__).resolve().parents[1] / "ui" / "app.py"
    at = AppTest.from_file(str(app_file), default_timeout=120).run()
    assert not at.exception, at.exception
    [picker] = [box for box in at.sidebar.selectbox if box.key and box.key.startswith("adapter_")]
    assert picker.options[1:] == ["a", "b"]

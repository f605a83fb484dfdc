"""The default student: the workspace's agent, run against an OpenAI-compatible chat endpoint.

The chat request is rebuilt from the workspace files on every call, so an edit applied a moment ago
is what the gate measures (the reference cached tool descriptions for the life of the process, §11.10).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import tomllib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from distill_es.adapters.retry import MalformedResponse, RetryPolicy, WaitObserver, call_with_retries
from distill_es.config.settings import NetworkSettings, StudentSettings
from distill_es.domain.errors import EndpointUnavailable, InvalidEdit, RequestRefused, WorkspaceError
from distill_es.domain.layout import CONFIG_FILE, DESCRIPTIONS_FILE, few_shot_path, prompt_path
from distill_es.ports import BenchmarkTask, ResultObserver, StudentResult
from distill_es.workspace.files import read_inside

# Standard chat-completions parameters go at the top level; the extra sampling knobs vLLM, Ollama and
# llama.cpp accept go in `extra_body`. Other agent keys (max_turns, class, tools) are not sent.
CHAT_PARAMS = frozenset(
    {"temperature", "top_p", "max_tokens", "max_completion_tokens", "presence_penalty", "frequency_penalty"}
    | {"stop", "seed"}
)
EXTRA_BODY_PARAMS = frozenset({"top_k", "min_p", "repetition_penalty", "repeat_penalty", "num_ctx"})
_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)


def _read(home: Path, relative: str) -> str | None:
    """A workspace file's text, read only inside the workspace (as edits are written)."""
    try:
        return read_inside(home, relative)
    except InvalidEdit as exc:  # a symlink or name pointing out of the workspace
        raise WorkspaceError(f"{home}: refusing to read {relative}: {exc}") from None


def _read_toml(home: Path, relative: str) -> dict[str, Any]:
    text = _read(home, relative)
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkspaceError(f"{home / relative}: not valid TOML ({exc})") from None


def _table(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    for key in keys:
        value = data.get(key)
        if not isinstance(value, dict):
            return {}
        data = value
    return data


def _few_shot(home: Path, relative: str) -> list[dict[str, str]]:
    text = _read(home, relative)
    if text is None:
        return []
    path = home / relative
    try:
        pairs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkspaceError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(pairs, list):
        raise WorkspaceError(f"{path}: expected a list of {{user, assistant}} objects")
    messages: list[dict[str, str]] = []
    for i, pair in enumerate(pairs):
        if not (
            isinstance(pair, dict)
            and isinstance(pair.get("user"), str)
            and isinstance(pair.get("assistant"), str)
        ):
            raise WorkspaceError(f"{path}: item {i} is not an object with string 'user' and 'assistant'")
        messages += [
            {"role": "user", "content": pair["user"]},
            {"role": "assistant", "content": pair["assistant"]},
        ]
    return messages


def _tools_section(home: Path, tools: list[str]) -> str:
    if not tools:
        return ""
    descriptions = _read_toml(home, DESCRIPTIONS_FILE)
    lines = []
    for name in tools:
        description = _table(descriptions, name).get("description")
        lines.append(f"- {name}: {description.strip()}" if isinstance(description, str) else f"- {name}")
    return "Tools available:\n" + "\n".join(lines)


def pick_model(config: dict[str, Any], task: BenchmarkTask, settings: StudentSettings) -> str:
    """settings.model, else the routed model for the task's query class, else the default model."""
    if settings.model:
        return settings.model
    routed = _table(config, "routing", "policy_map").get(task.query_class or "")
    if isinstance(routed, str) and routed:
        return routed
    default = _table(config, "intelligence").get("default_model")
    if isinstance(default, str) and default:
        return default
    raise WorkspaceError(
        "no student model: set [intelligence] default_model in config.toml "
        "or [student] model in distill_es.toml"
    )


@dataclass(frozen=True)
class AgentView:
    """What the student's requests take from the workspace: read once per batch, not once per task."""

    config: dict[str, Any]
    agent: dict[str, Any]
    preamble: list[dict[str, str]]  # the system prompt (with tools) and the few-shot exchanges


def read_agent(home: str | Path) -> AgentView:
    home = Path(home)
    config = _read_toml(home, CONFIG_FILE)
    agent_name = _table(config, "agent").get("default")
    agent_name = agent_name if isinstance(agent_name, str) and agent_name else "default"
    agent = _table(config, "agent", agent_name)
    try:
        prompt_file, few_shot_file = prompt_path(agent_name), few_shot_path(agent_name)
    except InvalidEdit as exc:
        raise WorkspaceError(f"{home / CONFIG_FILE}: [agent] default: {exc}") from None
    system = (_read(home, prompt_file) or "").strip()
    tools = [t for t in agent.get("tools", []) if isinstance(t, str)]
    system = "\n\n".join(part for part in (system, _tools_section(home, tools)) if part)
    preamble: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    preamble += _few_shot(home, few_shot_file)
    return AgentView(config, agent, preamble)


def chat_request(view: AgentView, task: BenchmarkTask, settings: StudentSettings) -> dict[str, Any]:
    """The chat-completions request for `task`. Parameters: `[models."<model>"]` first, then
    `[agent.<agent>]` on top (the agent is the more specific configuration of how this model is used)."""
    model = pick_model(view.config, task, settings)
    messages = [*view.preamble, {"role": "user", "content": task.query}]
    request: dict[str, Any] = {"model": model, "messages": messages}
    extra: dict[str, Any] = {}
    for source in (_table(view.config, "models", model), view.agent):
        for key, value in source.items():
            if key in CHAT_PARAMS:
                request[key] = value
            elif key in EXTRA_BODY_PARAMS:
                extra[key] = value
    if extra:
        request["extra_body"] = extra
    return request


def build_chat_request(home: str | Path, task: BenchmarkTask, settings: StudentSettings) -> dict[str, Any]:
    """The chat-completions request the student would send for `task`, from the workspace as it is now."""
    return chat_request(read_agent(home), task, settings)


def _answer(response: Any) -> tuple[str, int]:
    """(the first choice's text, total tokens) of a chat completion. A body that is not one (no
    choices, not an object) is `MalformedResponse`: the server is broken, not the student wrong."""
    try:
        choices = response["choices"]
        if not choices:
            raise MalformedResponse("the chat completion has no choices")
        usage = response.get("usage") or {}
        return str(choices[0]["message"].get("content") or ""), int(usage.get("total_tokens") or 0)
    except (TypeError, KeyError, IndexError, AttributeError, ValueError) as exc:
        if isinstance(exc, MalformedResponse):
            raise
        raise MalformedResponse(f"malformed chat completion: {exc!r}") from None


class OpenAIStudent:
    """`StudentRunner` over the official openai SDK, with our own retries (`adapters.retry`): connection
    errors, timeouts, 408/409/429/5xx and malformed bodies are retried `settings.max_retries` times with
    backoff, then raise `EndpointUnavailable` — a dead student is an interruption, never a score. Only a
    refusal of the one request (400/413/422, e.g. a context too long for this task) becomes
    `StudentResult.error`, which the scorer scores 0.0.

    A workspace that cannot be read (corrupt TOML, no model configured) raises `WorkspaceError`: that is
    not the student failing a task, and scoring it as 0.0 would blame the wrong party. The key comes from
    the env var named by `settings.api_key_env`; unset or unnamed, a placeholder (local servers ignore it).
    """

    def __init__(
        self,
        home: str | Path,
        settings: StudentSettings | None = None,
        *,
        network: NetworkSettings | None = None,
        on_wait: WaitObserver | None = None,
    ) -> None:
        self.home = Path(home)
        self.settings = settings or StudentSettings()
        self.policy = RetryPolicy.from_settings(network or NetworkSettings(), self.settings.max_retries)
        self.on_wait = on_wait
        key = os.environ.get(self.settings.api_key_env, "") if self.settings.api_key_env else ""
        self.client = openai.OpenAI(
            base_url=self.settings.base_url,
            api_key=key or "not-needed",  # the SDK insists on a key
            timeout=self.settings.timeout_seconds,
            max_retries=0,  # ours: bounded waits, reported (adapters.retry)
        )

    def run(self, task: BenchmarkTask) -> StudentResult:
        return self._send(task, build_chat_request(self.home, task, self.settings))

    def probe(self, model: str) -> StudentResult:
        """One token from `model` through the usual retry path (`distill-es doctor`): does the endpoint
        answer, and does it know the model? Raises `EndpointUnavailable` when it does not answer."""
        task = BenchmarkTask(task_id="doctor-probe", query="Reply with OK.", reference_answer="OK")
        messages = [{"role": "user", "content": task.query}]
        return self._send(task, {"model": model, "messages": messages, "max_tokens": 1})

    def _post(self, body: dict[str, Any]) -> tuple[str, int]:
        # The request is plain JSON already: post it through the client (its timeouts and error
        # mapping) without the SDK's per-call parameter transform or its response models, which
        # together were half of its CPU per request; the fields we read are checked in `_answer`.
        return _answer(self.client.post("/chat/completions", body=body, cast_to=dict))

    def _send(
        self, task: BenchmarkTask, request: dict[str, Any], should_stop: Callable[[], bool] | None = None
    ) -> StudentResult:
        started = time.monotonic()
        body = {k: v for k, v in request.items() if k != "extra_body"} | request.get("extra_body", {})
        try:
            content, tokens = call_with_retries(
                lambda: self._post(body),
                role="student",
                endpoint=self.settings.base_url,
                policy=self.policy,
                on_wait=self.on_wait,
                should_stop=should_stop,
            )
        except RequestRefused as exc:
            return self._failed(task, request, started, str(exc))
        return StudentResult(
            task_id=task.task_id,
            output=_THINK.sub("", content, count=1),  # reasoning models: keep the answer only
            model=request["model"],
            latency_seconds=time.monotonic() - started,
            tokens_used=tokens,
        )

    @staticmethod
    def _failed(task: BenchmarkTask, request: dict[str, Any], started: float, error: str) -> StudentResult:
        return StudentResult(
            task_id=task.task_id,
            model=request["model"],
            latency_seconds=time.monotonic() - started,
            error=error,
        )

    def run_many(
        self, tasks: Sequence[BenchmarkTask], on_result: ResultObserver | None = None
    ) -> list[StudentResult]:
        if not tasks:
            return []
        view = read_agent(self.home)  # one tree per batch: the engine never edits while scoring
        requests = [chat_request(view, task, self.settings) for task in tasks]

        # One dead endpoint is enough: the other tasks stop retrying, and the batch raises the first
        # failure (the one that went through its retries), not whichever task comes first in order.
        first: list[EndpointUnavailable] = []
        lock = threading.Lock()

        def one(index: int) -> StudentResult:
            if first:
                raise _Abandoned
            try:
                result = self._send(tasks[index], requests[index], should_stop=lambda: bool(first))
            except EndpointUnavailable as exc:
                with lock:
                    first.append(exc)
                raise
            if on_result is not None:
                on_result(index, result)
            return result

        workers = min(self.settings.concurrency, len(tasks))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="student") as pool:
            futures = [pool.submit(one, index) for index in range(len(tasks))]
            wait(futures)
        if first:
            raise first[0]
        return [f.result() for f in futures]  # in the order of `tasks`


class _Abandoned(Exception):
    """A task not sent because another task of the batch found the endpoint down."""

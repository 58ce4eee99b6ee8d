"""Test tiers: unit tests run with subprocess disabled; integration tests carry a marker
(nvcc, tools, docker, server, network, gpu, browser) and may run real tools."""

from __future__ import annotations

import subprocess

import pytest

from support.gitrepos import repos  # noqa: F401  (fixture: a superproject pinning a submodule, for git sources)

INTEGRATION_MARKERS = {"nvcc", "tools", "docker", "server", "network", "gpu", "browser"}


@pytest.fixture(autouse=True)
def _no_subprocess_in_unit_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if INTEGRATION_MARKERS & {m.name for m in request.node.iter_markers()}:
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"unit test touched subprocess: {args[:1]!r}; mark it as an integration test")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(subprocess, "run", refuse)

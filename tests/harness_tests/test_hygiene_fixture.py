"""The autouse hygiene fixture end to end: an inner pytest run (a subprocess, so this test passes)
whose deliberately leaky tests must be reported as errors, and whose tidy ones must pass."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]

INNER_TESTS = """
import asyncio
import subprocess

import pytest


async def test_leaks_a_task():
    async def lingering_worker():
        await asyncio.sleep(100)

    asyncio.create_task(lingering_worker())


def test_leaks_a_process():
    subprocess.Popen(["sleep", "37"])


@pytest.mark.asyncio(loop_scope="module")
async def test_leaks_a_task_on_a_module_loop():
    async def module_loop_worker():
        await asyncio.sleep(100)

    asyncio.create_task(module_loop_worker())


@pytest.fixture
async def background():
    task = asyncio.create_task(asyncio.sleep(100))
    yield
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_fixture_that_cleans_up_its_task(background):
    await asyncio.sleep(0)


async def test_a_task_cancelled_but_not_awaited():
    task = asyncio.create_task(asyncio.sleep(100))
    await asyncio.sleep(0)
    task.cancel()


def test_a_process_waited_for():
    subprocess.run(["true"], check=True)
"""


def test_the_autouse_fixture_fails_leaky_tests_and_passes_tidy_ones(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest('pytest_plugins = ["tests.harness.hygiene"]\n')
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=120)

    result.assert_outcomes(passed=6, errors=3)
    output = result.stdout.str()
    assert "ERROR at teardown of test_leaks_a_task _" in output
    assert "test_leaks_a_task.<locals>.lingering_worker at " in output
    assert "ERROR at teardown of test_leaks_a_task_on_a_module_loop _" in output
    assert "test_leaks_a_task_on_a_module_loop.<locals>.module_loop_worker at " in output
    assert "ERROR at teardown of test_leaks_a_process _" in output
    assert "child processes still running after the test (killed now):" in output
    assert ": sleep 37" in output

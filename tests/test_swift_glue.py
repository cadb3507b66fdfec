"""The iOS glue (sample_apps/ios: the Swift package TinySAMKit) against the Python reference pipeline.

Builds the package and its XCTest tests with the Swift toolchain on PATH (Swift for Linux has Foundation
and XCTest, which is all TinySAMKit uses) and runs them on the golden vectors the `golden_dir` fixture
writes in the same run: every Swift test must run and pass. Only the app target (SwiftUI, CoreML) needs
a Mac; see docs/ios.md.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sample_apps" / "ios"
TESTS = PACKAGE / "Tests" / "TinySAMKitTests"
GOLDEN_ENV = "TINYSAM_GOLDEN"
# One compile job: the CI machines have two cores, and the package builds in about ten seconds anyway.
BUILD = ["build", "--build-tests", "-j", "1", "-Xswiftc", "-warnings-as-errors"]


def _swift() -> str:
    swift = shutil.which("swift")
    if swift is None:
        pytest.fail("swift is not on PATH: install the Swift toolchain for Linux (swift.org) to build "
                    "sample_apps/ios; these machines carry it in /opt/swift/usr/bin")
    return swift


def _run(arguments: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([_swift(), *arguments], cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=900)


def _env_without_golden() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != GOLDEN_ENV}


def _executed(output: str) -> tuple[int, int]:
    """(tests, failures) from XCTest's last 'Executed N tests, with F failures' line."""
    found = re.findall(r"Executed (\d+) tests?, with (\d+) failures?", output)
    assert found, f"no XCTest summary in the output:\n{output[-5000:]}"
    return int(found[-1][0]), int(found[-1][1])


def _declared_tests() -> int:
    return sum(len(re.findall(r"^\s*func test\w*\(\)", path.read_text(), re.M)) for path in TESTS.glob("*.swift"))


@pytest.fixture(scope="module")
def built_package() -> Path:
    """`swift build` of TinySAMKit and its tests, warnings as errors (as kotlinc -Werror for the Kotlin glue)."""
    result = _run(BUILD, _env_without_golden())
    assert result.returncode == 0, f"swift build failed:\n{result.stdout[-20000:]}\n{result.stderr[-5000:]}"
    return PACKAGE


def test_swift_glue_matches_python(built_package, golden_dir):
    result = _run(["test", "--skip-build"], {**_env_without_golden(), GOLDEN_ENV: str(golden_dir)})
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"swift test failed:\n{output[-20000:]}"
    # Every declared test ran (a test XCTest did not discover would otherwise pass unnoticed).
    assert _executed(output) == (_declared_tests(), 0), output[-5000:]


def test_missing_golden_folder_is_a_test_failure(built_package, tmp_path):
    """Without the golden folder the tests fail with a message saying what to do; the runner survives."""
    unset, empty = _env_without_golden(), {**_env_without_golden(), GOLDEN_ENV: str(tmp_path)}
    for env, message in ((unset, f"set {GOLDEN_ENV}=DIR"), (empty, f"{tmp_path} has no index.txt")):
        result = _run(["test", "--skip-build", "--filter", "GoldenIndexTests"], env)
        output = result.stdout + result.stderr
        assert result.returncode == 1, f"expected a test failure (exit 1), got {result.returncode}:\n{output[-5000:]}"
        assert _executed(output) == (1, 1), output[-5000:]
        assert message in output, output[-5000:]

"""The Android app's pure-Kotlin glue (sample_apps/android/core) against the Python reference pipeline.

Writes the golden vectors, compiles the core module and its JUnit 4 tests with kotlinc (Debian's
kotlin 1.3 and junit4; `make kotlin-deps` installs them) and runs them: every golden case must pass
(resized pixels and encoder input bit-identical, masks bit-identical, coordinates within 1e-4).
"""

import shutil
import subprocess
from pathlib import Path

import pytest

from tinysam_mobile.golden import read_tensors

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "sample_apps" / "android" / "core"
JAVA_LIBS = Path("/usr/share/java")
TEST_CLASSPATH = ["junit4.jar", "hamcrest-core.jar", "kotlin-stdlib.jar"]
TEST_CLASS = "org.tinysam.core.GlueGoldenTest"


def _require_toolchain() -> None:
    missing = [name for name in ("kotlinc", "java") if shutil.which(name) is None]
    missing += [jar for jar in TEST_CLASSPATH if not (JAVA_LIBS / jar).is_file()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run `make kotlin-deps` (apt-get install kotlin junit4)")


@pytest.fixture(scope="module")
def glue_jar(tmp_path_factory) -> Path:
    """The core sources and tests compiled once (kotlinc takes ~15 s), at Kotlin 1.3 language level."""
    _require_toolchain()
    jar = tmp_path_factory.mktemp("kotlin") / "glue.jar"
    command = ["kotlinc", "-language-version", "1.3", "-api-version", "1.3", "-jvm-target", "1.8",
               "-Werror", "-cp", str(JAVA_LIBS / "junit4.jar"),
               str(CORE / "src" / "main" / "kotlin"), str(CORE / "src" / "test" / "kotlin"), "-d", str(jar)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"kotlinc failed:\n{result.stdout}\n{result.stderr}"
    return jar


def test_golden_files_round_trip(golden_dir):
    """The writer's format reads back as what the Kotlin/Swift readers expect: magic, names, shapes."""
    index = (golden_dir / "index.txt").read_text().split("\n")
    rows = [line.split(" ") for line in index if line]
    assert {kind for kind, _ in rows} == {"preprocess", "predict", "prompt_error", "everything", "image_error",
                                          "image_read"}
    assert ["predict", "predict_landscape_box_1024.bin"] in rows
    tensors = read_tensors(golden_dir / "predict_landscape_box_1024.bin")
    assert tensors["decoder_labels"].tolist() == [[2, 3]]  # exactly the box corners: nothing padded
    assert tensors["masks"].shape == (3, 300, 451) and tensors["low_res_logits"].shape == (1, 3, 256, 256)
    assert "points" not in tensors  # a prompt given as None has no tensor
    assert read_tensors(golden_dir / "predict_empty_points_no_box_1024.bin")["points"].shape == (0, 2)


def test_kotlin_glue_matches_python(glue_jar, golden_dir):
    classpath = ":".join([str(glue_jar)] + [str(JAVA_LIBS / jar) for jar in TEST_CLASSPATH])
    result = subprocess.run(["java", f"-Dtinysam.golden={golden_dir}", "-cp", classpath,
                             "org.junit.runner.JUnitCore", TEST_CLASS],
                            capture_output=True, text=True, timeout=600)
    cases = sum(1 for line in (golden_dir / "index.txt").read_text().splitlines() if line)
    assert result.returncode == 0, f"JUnit failed:\n{result.stdout[-20000:]}\n{result.stderr[-5000:]}"
    assert f"OK ({cases} tests)" in result.stdout, result.stdout[-2000:]

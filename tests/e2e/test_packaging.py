"""What ``pip install gridcore`` puts on a user's machine: one top-level package, the licence,
the typing marker, and the files the docs and ``gridcore init`` point at."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_gridcore_alone_with_its_data(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
            "--quiet", "--wheel-dir", str(tmp_path), str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("gridcore-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    # No generic top-level package (such as "shells") lands in site-packages.
    assert top == {"gridcore"}
    for expected in (
        "gridcore/py.typed",
        "gridcore/shells/py.typed",
        "gridcore/shells/cli.py",
        "gridcore/configs/grid.toml",
        "gridcore/configs/prove_my_bot.py",
    ):
        assert expected in names, expected
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    shipped = zipfile.ZipFile(wheel).read("gridcore/configs/prove_my_bot.py").decode()
    assert shipped == (REPO / "examples" / "prove_my_bot.py").read_text(encoding="utf-8")

"""The Podman stack test (containers/stack-test.sh) and what containers/README.md says of it.

The stack itself runs in CI as its own step (`.ci/run`, "podman stack"): it builds images and
takes minutes. `test_stack_passes_under_podman` runs the same script from pytest, only when
asked for with `-m podman` (the default run deselects nothing, so it skips without podman and
without WOPR_PODMAN_STACK=1, saying which).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "containers" / "stack-test.sh"
BASE_SCRIPT = ROOT / "containers" / "base-image.sh"
README = ROOT / "containers" / "README.md"
CI = ROOT / ".ci" / "run"


def _commands(text: str) -> str:
    """Continuation lines joined and whitespace collapsed, so a command compares as one line."""
    return re.sub(r"[ \t]+", " ", text.replace("\\\n", " "))


def readme_stack_commands() -> list[str]:
    """Every command line in the code blocks of the README's stack-test section."""
    section = README.read_text().split("## The stack test (Podman)", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    lines = _commands("".join(blocks)).splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_every_command_the_readme_shows_is_one_the_stack_test_runs():
    script = _commands(SCRIPT.read_text() + BASE_SCRIPT.read_text() + CI.read_text())
    commands = readme_stack_commands()

    assert len(commands) >= 10
    missing = [command for command in commands if command not in script]
    assert missing == []


def test_ci_runs_the_stack_test_and_installs_what_the_readme_says():
    ci = CI.read_text()
    install, run = readme_stack_commands()[:2]

    assert install == "apt-get install -y podman runc debootstrap"
    assert re.search(rf"^\s*{re.escape(install)} \|\| true$", ci, flags=re.M)
    assert run == "containers/stack-test.sh"
    assert re.search(r"^\s*containers/stack-test\.sh\b", ci, flags=re.M)


def test_stack_script_uses_runc_the_lower_limits_and_host_network_builds():
    text = SCRIPT.read_text()

    assert 'podman() { command podman --runtime runc "$@"; }' in text
    assert "LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)" in text
    for build in re.findall(r"podman build [^\n]*", text):
        assert "--network host" in build and '"${LIMITS[@]}"' in build


def test_stack_scripts_pass_shellcheck():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (.ci/run installs it: apt-get install shellcheck)")

    result = subprocess.run(
        ["shellcheck", "--severity=style", str(SCRIPT), str(BASE_SCRIPT)],
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_serve_fakecloud_takes_the_beacons_option_the_stack_passes():
    """The stack's fake clouds run `serve_fakecloud --beacons 2`; the command read the option
    without declaring it (a KeyError at start)."""
    from operations.management.commands.serve_fakecloud import Command

    parser = Command().create_parser("manage.py", "serve_fakecloud")

    assert vars(parser.parse_args(["--beacons", "2"]))["beacons"] == 2.0
    assert vars(parser.parse_args([]))["beacons"] >= 0  # fake Beacons call back by default
    assert "--beacons 2" in SCRIPT.read_text()


@pytest.mark.podman
def test_stack_passes_under_podman():
    if not shutil.which("podman"):
        pytest.skip("podman is not installed (apt-get install podman runc debootstrap)")
    if os.environ.get("WOPR_PODMAN_STACK") != "1":
        pytest.skip("set WOPR_PODMAN_STACK=1 to run the stack (CI runs it as its own step)")
    result = subprocess.run([str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr[-6000:]
    assert "all checks passed" in result.stderr

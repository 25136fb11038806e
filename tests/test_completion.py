"""camp completion (issue 19): the scripts, and dataset and remote names completing in a real bash."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from helpers import requires

BIN = os.path.dirname(sys.executable)


def env_for(campaign):
    return dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"], CAMP_REPO=str(campaign))


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o nosort -F _camp_completion camp"),
                                           ("zsh", "#compdef camp"), ("fish", "complete --no-files --command camp")])
def test_completion_prints_the_script_for_each_shell(camp, shell, marker):
    out = camp("completion", shell).output
    assert marker in out and f"_CAMP_COMPLETE={shell}_" in out.replace("_CAMP_COMPLETE=\"", "_CAMP_COMPLETE=")


def test_an_unknown_shell_is_a_usage_error(camp):
    r = camp("completion", "tcsh", ok=False)
    assert r.exit_code == 2 and "'tcsh' is not one of 'bash', 'zsh', 'fish'" in r.stderr


@requires(shutil.which("bash") is not None, "bash")
def test_dataset_and_remote_names_complete_in_bash(campaign, camp, data, tmp_path):
    camp("--repo", campaign, "add", "heat.bp", "pressure.bp", "mesh.h5", cwd=data)
    camp("--repo", campaign, "remote", "add", "origin", tmp_path / "share")
    camp("--repo", campaign, "remote", "add", "offsite", tmp_path / "share2")

    def complete(*words):
        script = ('source <(camp completion bash)\n'
                  f'COMP_WORDS=({" ".join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n'
                  '_camp_completion camp\nprintf "%s\\n" "${COMPREPLY[@]}"\n')
        r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env_for(campaign), cwd=data)
        assert r.returncode == 0, r.stderr
        return sorted(r.stdout.split())

    assert complete("camp", "whereis", "p") == ["pressure.bp"]
    assert complete("camp", "show", "--dataset", "") == ["heat.bp", "mesh.h5", "pressure.bp"]
    assert complete("camp", "restore", "--staged", "m") == ["mesh.h5"]
    assert complete("camp", "push", "o") == ["offsite", "origin"]
    assert complete("camp", "remote", "remove", "of") == ["offsite"]
    assert "status" in complete("camp", "stat")

"""Count how many times each camp command opens the repository (run by hand, for the notes).

    python scripts/count_opens.py            # this checkout
    PYTHONPATH=/other/checkout python scripts/count_opens.py

Every open builds a ``CampaignRepo``; the count is of ``CampaignRepo.__init__`` calls
while one command runs in-process (click's CliRunner) against a fresh campaign with a
local-path remote and a campaign store (so push and pull build archives).
"""

from __future__ import annotations

import os
import sys
import tempfile

from click.testing import CliRunner

from campaignvcs.cli import cli
from campaignvcs.repo import CampaignRepo

COUNT = [0]
_init = CampaignRepo.__init__


def _counting(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
    COUNT[0] += 1
    _init(self, *args, **kwargs)


def main() -> None:
    """Run the commands and print one line each: command, opens."""
    CampaignRepo.__init__ = _counting  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        home, data, remote, store = (os.path.join(tmp, n) for n in ("home", "data", "remote", "store"))
        for d in (home, data, remote, store):
            os.makedirs(d)
        os.makedirs(os.path.join(home, ".config", "hpc-campaign"))
        with open(os.path.join(home, ".config", "hpc-campaign", "config.yaml"), "w") as f:
            f.write(f"Campaign:\n  hostname: laptop\n  campaignstorepath: {store}\n")
        for i in range(3):
            with open(os.path.join(data, f"n{i}.txt"), "w") as f:
                f.write(f"note {i}\n")
        env = {"HOME": home, "CAMP_AUTHOR_NAME": "t", "CAMP_AUTHOR_EMAIL": "t@x"}
        a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
        steps = [
            ("init", ["init", a, "--name", "proj", "--host", "laptop"]),
            ("add", ["--repo", a, "add", os.path.join(data, "n0.txt")]),
            ("status", ["--repo", a, "status"]),
            ("commit", ["--repo", a, "commit", "-m", "one"]),
            ("add -m", ["--repo", a, "add", "-m", "two", os.path.join(data, "n1.txt")]),
            ("log", ["--repo", a, "log"]),
            ("build", ["--repo", a, "build"]),
            ("remote add", ["--repo", a, "remote", "add", "origin", remote]),
            ("push", ["--repo", a, "push"]),
            ("clone", ["clone", os.path.join(remote, "proj.camp"), b]),
            ("add -m (b)", ["--repo", b, "add", "-m", "three", os.path.join(data, "n2.txt")]),
            ("push (b)", ["--repo", b, "push"]),
            ("fetch", ["--repo", a, "fetch"]),
            ("pull", ["--repo", a, "pull"]),
        ]
        runner = CliRunner()
        for what, args in steps:
            COUNT[0] = 0
            result = runner.invoke(cli, args, env=env, catch_exceptions=False)
            if result.exit_code != 0:
                sys.exit(f"{what} failed: {result.output}")
            print(f"{what:12s} {COUNT[0]}")


if __name__ == "__main__":
    main()

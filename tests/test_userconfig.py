"""camp config get / set / list (issue 19): files that hpc-campaign and ADIOS2 still read."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import assert_one_line_error, require_module

READ_T = ("import adios2, sys\n"
          "with adios2.FileReader(sys.argv[1]) as r:\n"
          "    print(r.read('heat.bp/T', step_selection=[0, 1])[:3].tolist())\n")


def test_set_get_list_and_a_file_hpc_campaign_reads(camp, clean_env, tmp_path):
    cfg = clean_env / ".config" / "hpc-campaign" / "config.yaml"
    assert camp("config", "list").output == f"# {cfg} (no settings)\n"
    assert camp("config", "get", "hostname", ok=False).exit_code == 1  # unset: silent, like git config
    camp("config", "set", "hostname", "frontier")
    camp("config", "set", "campaignstorepath", str(tmp_path / "store"))
    r = camp("config", "set", "cachepath", str(tmp_path / "cache"))
    assert r.output == f"cachepath = {tmp_path / 'cache'}  ({cfg})\n"
    assert camp("config", "get", "hostname").output == "frontier\n"
    assert camp("config", "list").output.splitlines()[1:] == [
        "hostname = frontier", f"campaignstorepath = {tmp_path / 'store'}", f"cachepath = {tmp_path / 'cache'}"]
    config = require_module("hpc_campaign.config", "hpc-campaign (pip install .[test])").Config()
    assert (config.host_name, config.campaign_store_path, config.cache_path) == (
        "frontier", str(tmp_path / "store"), str(tmp_path / "cache"))


def test_set_changes_one_line_and_keeps_the_rest(camp, clean_env):
    cfg = clean_env / ".config" / "hpc-campaign" / "config.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("# my settings\nCampaign:\n  hostname: laptop   # this box\n  verbose: 1\nOther:\n  x: 1\n")
    camp("config", "set", "hostname", "frontier")
    camp("config", "set", "cachepath", "/tmp/my cache: here")
    assert cfg.read_text() == ("# my settings\nCampaign:\n  hostname: frontier   # this box\n  verbose: 1\n"
                               "  cachepath: '/tmp/my cache: here'\nOther:\n  x: 1\n")
    assert camp("config", "get", "cachepath").output == "/tmp/my cache: here\n"
    assert_one_line_error(camp("config", "set", "colour", "x", ok=False), "'colour' is not one of", status=2)
    assert_one_line_error(camp("config", "set", "hostname", "a/b", ok=False), "invalid host name")
    cfg.write_text("Campaign: [not, a, mapping]\n")
    assert_one_line_error(camp("config", "list", ok=False), "expected a 'Campaign:' mapping")


def test_adios2_reads_local_data_by_the_hostname_camp_config_wrote(camp, clean_env, tmp_path, data):
    camp("config", "set", "hostname", "frontier")
    camp("config", "set", "campaignstorepath", str(tmp_path / "store"))
    camp("config", "set", "cachepath", str(tmp_path / "cache"))
    camp("init", tmp_path / "c", "--name", "proj/heat")  # the host comes from config.yaml
    camp("--repo", tmp_path / "c", "add", "heat.bp", "-m", "one", cwd=data)
    aca = tmp_path / "heat.aca"
    camp("--repo", tmp_path / "c", "build", "-o", aca, "--exclude-kind", "HDF5")
    # No hosts.yaml: ADIOS2 reads frontier's replica as local only if it read hostname from config.yaml.
    r = subprocess.run([sys.executable, "-c", READ_T, str(aca)], capture_output=True, text=True,
                       env=dict(os.environ, HOME=str(clean_env)), timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[1.0, 2.0, 3.0]"

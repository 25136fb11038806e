#!/usr/bin/env bash
# Debian packages the tests use as real parts: git (stock git reads campaigns), openssh-server
# (a real sshd for the connector tests), util-linux (setpriv: root without its permission
# bypass), tar, slurmctld + slurmd + slurm-client + munge (a real Slurm cluster). Also sshd's privilege-separation folder /run/sshd, which the system makes at
# boot but a container may lack.
#
# `make test` never runs this (it changes nothing on the system); .ci/run does, as root,
# before `make test`. Run it yourself as root for a local run with every part: without it,
# the tests that need a missing part are skipped locally and say which part.
set -euo pipefail
need=()
command -v git >/dev/null 2>&1 || need+=(git)
{ [ -x /usr/sbin/sshd ] || command -v sshd >/dev/null 2>&1; } && command -v ssh-keygen >/dev/null 2>&1 \
  || need+=(openssh-server openssh-client)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v tar >/dev/null 2>&1 || need+=(tar)
# A single-node Slurm for tests/test_slurm.py (started by the test session itself, without
# systemd: scripts/slurm-up.sh); the packages' "could not start" messages are expected.
{ [ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && command -v sbatch >/dev/null 2>&1 \
  && [ -x /usr/sbin/munged ]; } || need+=(slurmctld slurmd slurm-client munge)
# camp web's browser tests: headless Chromium driven by selenium (tests/test_web_browser.py)
{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || need+=(chromium chromium-driver)
# The full ADIOS2 build of tests/fixtures/adios2 (tests/test_connect_e2e.py: camp connect end to
# end) needs libsodium and serial HDF5 1.10 at run time; the tests run sshd, camp connect and the
# reader in a private network namespace (unshare/nsenter from util-linux, ip from iproute2).
[ -e /usr/lib/x86_64-linux-gnu/libsodium.so.23 ] || ldconfig -p 2>/dev/null | grep -q 'libsodium\.so\.23 ' \
  || need+=(libsodium23)
ldconfig -p 2>/dev/null | grep -q 'libhdf5_serial\.so\.103 ' || need+=(libhdf5-103-1)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps.sh: missing ${need[*]}; run this as root on Debian/Ubuntu to install them" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "$(id -u)" = 0 ] && [ ! -d /run/sshd ]; then
  mkdir -m 0755 /run/sshd
fi

#!/usr/bin/env bash
# The tutorial (docs/tutorial.md), runnable: Ana records a run on "frontier", builds and pushes it;
# Bo clones it on "laptop" and reads it through ADIOS2; Ana records a second run, Bo pulls.
# Both people live on this one machine here: each has their own HOME (config.yaml names their host).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${TUTORIAL_WORK:-$here/work-tutorial}"
rm -rf "$work"
mkdir -p "$work"
export CAMP_AUTHOR_NAME="Ana Scientist" CAMP_AUTHOR_EMAIL="ana@example.org"

as_ana() { HOME="$work/ana" "$@"; }
as_bo() { HOME="$work/bo" CAMP_AUTHOR_NAME="Bo Collaborator" CAMP_AUTHOR_EMAIL="bo@example.org" "$@"; }
for who in ana bo; do
  mkdir -p "$work/$who/.config/hpc-campaign"
done
host_of() { [ "$1" = ana ] && echo frontier || echo laptop; }
for who in ana bo; do
  cat > "$work/$who/.config/hpc-campaign/config.yaml" <<YAML
Campaign:
  hostname: $(host_of "$who")
  campaignstorepath: $work/$who/store
  cachepath: $work/$who/cache
YAML
done

echo "== Ana, on frontier: a run's output"
python "$here/make_data.py" "$work/lustre"
cd "$work/lustre/run1"
ls

echo "== Ana: camp init, add, commit"
as_ana camp init "$work/ana/heat" --name proj/heat
export CAMP_REPO="$work/ana/heat"
as_ana camp add heat.bp pressure.bp mesh.h5
as_ana camp add --thumbnail 64 64 plot.png
as_ana camp add --store notes.txt
as_ana camp commit -m "Run 1: heat and pressure fields, mesh, plot, notes"
as_ana camp log

echo "== Ana: build the archive into her campaign store, push to the shared folder"
as_ana camp build
as_ana camp remote add origin "$work/share"
as_ana camp push
unset CAMP_REPO

echo "== Bo, on laptop: clone (the archive is built into his store)"
as_bo camp clone "$work/share" "$work/bo/heat"
cd "$work/bo/heat"
as_bo camp whereis heat.bp
# The pip wheel of ADIOS2 has no HDF5 engine: build an archive without the HDF5 dataset to read here.
as_bo camp build -o "$work/bo/heat-readable.aca" --exclude-kind HDF5
# The data is on frontier. On a real laptop Bo would give frontier an ssh entry in hosts.yaml and
# run 'camp connect'; in this tutorial both live on one machine, so frontier's files are local:
echo "frontier: local" > "$work/bo/.config/hpc-campaign/hosts.yaml"
as_bo python "$here/read_back.py" "$work/bo/heat-readable.aca" heat.bp/T

echo "== Ana: a second run, committed in one step, pushed"
python "$here/make_data.py" "$work/lustre2" >/dev/null
mkdir -p "$work/lustre/run2"
mv "$work/lustre2/run1/heat.bp" "$work/lustre/run2/heat.bp"
cd "$work/lustre"
as_ana camp --repo "$work/ana/heat" add run2/heat.bp -m "Run 2: heat field"
as_ana camp --repo "$work/ana/heat" push

echo "== Bo: fetch, status, pull"
cd "$work/bo/heat"
as_bo camp fetch
as_bo camp status
as_bo camp pull
as_bo camp log -n 2
as_bo camp diff HEAD~1 HEAD

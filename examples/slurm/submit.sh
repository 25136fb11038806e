#!/bin/bash
# submit.sh - ingest a campaign walk with a Slurm array, then one commit.
#
#   examples/slurm/submit.sh CAMPAIGN FILE_LIST [TASKS] [camp add options...]
#
# Submits ingest-array.sbatch as an array of TASKS tasks (default 16), then a one-task job
# that runs `camp commit` once every task has ended (--dependency=afterany: a failed task
# does not hold back what the others recorded; re-run it with sbatch --array=I and commit
# again). Prints the two job ids. CAMP: the camp command (default: camp on PATH).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$#" -lt 2 ]; then
    echo "usage: submit.sh CAMPAIGN FILE_LIST [TASKS] [camp add options...]" >&2
    exit 2
fi
campaign=$1
list=$2
tasks=${3:-16}
shift $(( $# >= 3 ? 3 : 2 ))
array=$(sbatch --parsable --array="1-$tasks" "$here/ingest-array.sbatch" "$campaign" "$list" "$@")
array=${array%%;*}
commit=$(sbatch --parsable --dependency="afterany:$array" --job-name=camp-commit \
    --output="camp-commit-%j.out" \
    --wrap "\"${CAMP:-camp}\" --repo \"$campaign\" commit -m \"Ingest $(basename "$list") (array job $array, $tasks tasks)\"")
commit=${commit%%;*}
echo "array job $array, commit job $commit"

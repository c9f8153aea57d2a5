#!/bin/sh
# `make install-check`: install the provider the way docs/install.md says, then run one DAG with it.
#   1. build the provider's and the emulator's wheels into dist/ of a fresh directory;
#   2. run the "install-check: venv" block of docs/install.md as it stands there (a fresh virtual env, pip, the
#      wheels), with AIRFLOW_VERSION and CONSTRAINTS as its step 2 sets them, except that CONSTRAINTS is the
#      repository's own pins (requirements/dev.lock): CI cannot fetch Airflow's constraints URL;
#   3. from that env only: start ft-emulator (from its own wheel) on a free port, take the AIRFLOW_CONN_* lines
#      it prints, and run the cleanup example DAG with `airflow dags test` in a throwaway AIRFLOW_HOME (SQLite);
#      the DAG must succeed and the emulator's stale jobs must be cancelled.
# Usage (from the repository root, as the Makefile does): sh scripts/install_check.sh BIN
#   BIN: bin directory of the dev env (python with build)
set -eu
bin=$1
root=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/ft-install-check.XXXXXX")
emulator_pid=
finish() {
    if [ -n "$emulator_pid" ]; then
        kill -INT "$emulator_pid" 2>/dev/null || true
        wait "$emulator_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap finish EXIT
started=$(date +%s)

echo "== build the wheels"
for project in . emulator; do
    "$bin/python" -m build --no-isolation --wheel --outdir "$work/dist" "$project" >"$work/build.log" 2>&1 || {
        cat "$work/build.log"; exit 1; }
done
ls "$work/dist"

echo "== docs/install.md, block 'install-check: venv', as it stands"
sed -n '/^<!-- install-check: venv/,/^<!-- \/install-check -->/p' docs/install.md | sed '/^<!--/d; /^```/d' \
    >"$work/install.sh"
grep -q "pip install" "$work/install.sh" || { echo "docs/install.md has no 'install-check: venv' block"; exit 1; }
cat "$work/install.sh"
airflow_version=$(sed -n 's/^apache-airflow==\([^ ;]*\).*/\1/p' requirements/dev.lock)
(cd "$work" && AIRFLOW_VERSION=$airflow_version CONSTRAINTS="$root/requirements/dev.lock" \
    bash -eu install.sh >"$work/install.log" 2>&1) || { tail -40 "$work/install.log"; exit 1; }
echo "installed in $(( $(date +%s) - started )) s since the start"

# Everything below runs outside the checkout, from the fresh env only.
cd "$work"
venv="$work/airflow-venv/bin"
PATH="$venv:$PATH"
export PATH

echo "== the fresh env imports the wheels"
"$venv/python" -c "import airflow, airflow_provider_ft as p, airflow_provider_ft_emulator as e
print('Airflow', airflow.__version__, '|', p.__file__, '|', e.__file__)" | tee "$work/where.txt"
test "$(grep -o "$work/airflow-venv/" "$work/where.txt" | wc -l)" -eq 2 || {
    echo "the provider or the emulator was not imported from the fresh env"; exit 1; }

echo "== ft-emulator from its wheel, on a free port"
"$venv/ft-emulator" --port 0 --seed demo >"$work/emulator.out" 2>"$work/emulator.err" &
emulator_pid=$!
for _ in $(seq 1 60); do
    grep -q "^Press Ctrl-C to stop.$" "$work/emulator.out" && break
    sleep 0.5
done
grep -q "^Press Ctrl-C to stop.$" "$work/emulator.out" || { cat "$work/emulator.out" "$work/emulator.err"; exit 1; }
cat "$work/emulator.out"
sed -n 's/^  export /export /p' "$work/emulator.out" >"$work/connections.sh"
. "$work/connections.sh"

cat >"$work/cancelled.py" <<'EOF'
"""The cancelled jobs of the two APIs the cleanup DAG covers, as their listings say: `save` them, or `compare` with
the saved ones (the DAG must have cancelled some of the demo's stale jobs, on both)."""
import json
import os
import sys

import requests


def cancelled() -> dict[str, list[str]]:
    found = {}
    for vendor, path, word in (("DASHSCOPE", "fine-tunes", "CANCELED"), ("OPENAI", "fine_tuning/jobs", "cancelled")):
        connection = json.loads(os.environ[f"AIRFLOW_CONN_{vendor}_DEFAULT"])
        headers = {"Authorization": f"Bearer {connection['password']}"}
        answer = requests.get(f"{connection['host']}/{path}", headers=headers, timeout=10).json()
        jobs = answer["output"]["jobs"] if vendor == "DASHSCOPE" else answer["data"]
        found[vendor] = sorted(job.get("job_id") or job["id"] for job in jobs if job["status"] == word)
    return found


if sys.argv[1] == "save":
    json.dump(cancelled(), open(sys.argv[2], "w"))
else:
    before, after = json.load(open(sys.argv[2])), cancelled()
    for vendor, ids in after.items():
        newly = set(ids) - set(before[vendor])
        print(f"{vendor.lower()}: {len(newly)} jobs cancelled by the DAG")
        if not newly:
            sys.exit(f"the DAG cancelled no {vendor.lower()} job")
EOF
"$venv/python" "$work/cancelled.py" save "$work/before.json"

echo "== airflow dags test ft_cleanup_stale_jobs (AIRFLOW_HOME: a throwaway one, SQLite)"
AIRFLOW_HOME="$work/airflow-home"
AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW_HOME AIRFLOW__CORE__LOAD_EXAMPLES
mkdir -p "$AIRFLOW_HOME/dags"
cp "$root/example_dags/ft_cleanup_stale_jobs.py" "$AIRFLOW_HOME/dags/"
airflow db migrate >"$work/migrate.log" 2>&1 || { tail -40 "$work/migrate.log"; exit 1; }
airflow dags test ft_cleanup_stale_jobs >"$work/dags-test.log" 2>&1 || { tail -60 "$work/dags-test.log"; exit 1; }
"$venv/python" "$work/cancelled.py" compare "$work/before.json"
echo "install-check passed in $(( $(date +%s) - started )) s"

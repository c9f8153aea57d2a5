#!/bin/sh
# `make dist-check`: build the sdist and the wheel, check them, install the wheel into a fresh env with the pinned
# Airflow of requirements/dev.lock, and ask that Airflow whether it sees the provider and every connection type.
# Usage (from the repository root, as the Makefile does): sh scripts/dist_check.sh BIN PYTHON
#   BIN: bin directory of the dev env (python with build, twine and uv)   PYTHON: interpreter for the fresh env
set -eu
bin=$1
python=$2
root=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/ft-dist-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== version"
version=$("$bin/python" -c "import airflow_provider_ft; print(airflow_provider_ft.__version__)")
echo "airflow_provider_ft/__init__.py: $version"
grep -q "^## $version\b" CHANGELOG.md || { echo "CHANGELOG.md has no entry '## $version'"; exit 1; }

echo "== build (sdist, then the wheel from the sdist)"
# No isolation: the build backend (hatchling) is the one pinned in requirements/dev.lock.
"$bin/python" -m build --no-isolation --outdir "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
ls -l "$work/dist"

echo "== build the emulator's own distribution (airflow-provider-ft-emulator)"
"$bin/python" -m build --no-isolation --outdir "$work/emulator-dist" emulator >"$work/build-emulator.log" 2>&1 || {
    cat "$work/build-emulator.log"; exit 1; }
ls -l "$work/emulator-dist"

echo "== twine check"
"$bin/twine" check --strict "$work"/dist/* "$work"/emulator-dist/*
for artifact in "airflow_provider_ft-$version-py3-none-any.whl" "airflow_provider_ft-$version.tar.gz"; do
    test -f "$work/dist/$artifact" || { echo "expected $artifact (version $version)"; exit 1; }
done

echo "== wheel contents"
"$bin/python" - "$work"/dist/*.whl <<'EOF'
import sys
import zipfile

names = zipfile.ZipFile(sys.argv[1]).namelist()
problems = []
if "airflow_provider_ft/py.typed" not in names:
    problems.append("py.typed is missing")
for required in ("airflow_provider_ft/get_provider_info.py", "airflow_provider_ft/hooks/fine_tuning.py"):
    if required not in names:
        problems.append(f"{required} is missing")
stray = [name for name in names if not name.startswith(("airflow_provider_ft/", "airflow_provider_ft-"))]
if stray:
    problems.append(f"files outside the package: {stray[:5]}")
emulator = [name for name in names if "emulator" in name]
if emulator:
    problems.append(f"emulator code in the provider's wheel: {emulator[:5]}")
entry_points = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
if not entry_points:
    problems.append("no entry_points.txt")
print(f"{len(names)} files; py.typed, provider info and entry points present; no tests, no emulator" if not problems else "")
if problems:
    sys.exit("wheel: " + "; ".join(problems))
EOF
"$bin/python" - "$work"/emulator-dist/*.whl <<'EOF'
import sys
import zipfile

wheel = zipfile.ZipFile(sys.argv[1])
names = wheel.namelist()
entry_points = next(wheel.read(name).decode() for name in names if name.endswith(".dist-info/entry_points.txt"))
problems = [f"{required} is missing" for required in ("airflow_provider_ft_emulator/py.typed",) if required not in names]
problems += [f"no {section}" for section in ("[pytest11]", "[console_scripts]") if section not in entry_points]
problems += [f"provider code in the emulator's wheel: {name}" for name in names if name.startswith("airflow_provider_ft/")]
print(f"emulator wheel: {len(names)} files; its pytest plugin and ft-emulator registered" if not problems else "")
if problems:
    sys.exit("emulator wheel: " + "; ".join(problems))
EOF

echo "== install the wheel into a fresh env (Airflow and the rest pinned by requirements/dev.lock)"
"$bin/uv" venv --quiet --python "$python" "$work/venv"
"$bin/uv" pip install --quiet --python "$work/venv/bin/python" --constraint "$root/requirements/dev.lock" "$work"/dist/*.whl

# Everything below runs outside the checkout, so that the package can only come from the installed wheel.
cd "$work"
export AIRFLOW_HOME="$work/airflow-home"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
venv="$work/venv/bin"

echo "== the package comes from the wheel"
"$venv/python" -c "import airflow_provider_ft, airflow; print(airflow_provider_ft.__file__, '| Airflow', airflow.__version__)" \
    | tee "$work/where.txt"
grep -q "$work/venv/" "$work/where.txt" || { echo "airflow_provider_ft was not imported from the installed wheel"; exit 1; }

echo "== airflow providers list"
"$venv/airflow" providers list -o plain >"$work/providers.txt" 2>"$work/providers.err" || { cat "$work/providers.err"; exit 1; }
grep -E "^airflow-provider-ft[[:space:]].*[[:space:]]$version[[:space:]]*$" "$work/providers.txt" || {
    cat "$work/providers.txt" "$work/providers.err"; echo "airflow providers list does not show airflow-provider-ft"; exit 1; }

echo "== airflow providers hooks (connection types)"
"$venv/airflow" providers hooks -o json >"$work/hooks.json" 2>"$work/hooks.err" || { cat "$work/hooks.err"; exit 1; }
"$venv/python" - "$work/hooks.json" <<'EOF'
import json
import sys

from airflow_provider_ft.get_provider_info import get_provider_info

# Every connection type the installed wheel declares, with its hook class (most are made on first use).
expected = {entry["connection-type"]: entry["hook-class-name"] for entry in get_provider_info()["connection-types"]}
hooks = {row.get("connection_type"): row for row in json.load(open(sys.argv[1]))}
missing = []
for conn_type, hook_class in expected.items():
    row = hooks.get(conn_type)
    if row is None or row.get("class") != hook_class or row.get("package_name") != "airflow-provider-ft":
        missing.append(f"{conn_type} -> {hook_class} (got {row})")
    else:
        print(f"{conn_type:20} {hook_class}")
if missing:
    sys.exit("airflow providers hooks lacks: " + "; ".join(missing))
EOF

echo "dist-check passed"

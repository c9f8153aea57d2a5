#!/bin/sh
# Build or refresh .venv-bench, the benchmarks' own env: requirements/bench.lock (dev.lock's pins plus the
# bench-only providers) and this package and the emulator, editable and without dependencies, as `make install` does.
# Usage (from the repository root, as the Makefile does): sh benchmarks/venv.sh UV PYTHON
set -eu
uv=$1
python=$2
venv=.venv-bench
stamp=$venv/.installed
if [ ! -x "$venv/bin/python" ]; then
    "$uv" venv --quiet --python "$python" "$venv"
fi
if [ ! -f "$stamp" ] || [ requirements/bench.lock -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ emulator/pyproject.toml -nt "$stamp" ]; then
    "$uv" pip sync --quiet --compile-bytecode --python "$venv/bin/python" requirements/bench.lock
    "$uv" pip install --quiet --python "$venv/bin/python" --no-deps --no-build-isolation -e . -e emulator
    touch "$stamp"
fi

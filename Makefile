# The two commands of the README: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP_RUN := $(VENV)/.installed-runtime
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: run test install install-dev lint format migrate demo check schema bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_RUN): requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(STAMP_DEV): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(STAMP_RUN)

install: $(STAMP_RUN)
install-dev: $(STAMP_DEV)

run: $(STAMP_RUN)
	$(PY) -m config.embedded -- $(PY) manage.py run_embedded

test: $(STAMP_DEV)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DJANGO_ENV=test $(BIN)/mypy accounts core config subscribers sequences automation ui realtime

format: $(STAMP_DEV)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: $(STAMP_RUN)
	$(PY) manage.py migrate

demo: $(STAMP_RUN)
	$(PY) manage.py load_demo_data

check: $(STAMP_DEV)
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run
	DJANGO_ENV=test $(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

schema: $(STAMP_RUN)
	$(PY) manage.py spectacular --file var/schema.yml

# Benchmarks on PostgreSQL (database es_bench, created if missing), Redis (127.0.0.1:6379 db 9, emptied) and
# Celery workers; not part of `make test`. One of them: make bench BENCH_ARGS="endtoend --messages 20000".
# Larger runs: make bench BENCH_ARGS="--enrollments 200000 --messages 20000". Results: docs/benchmarks.md.
bench: $(STAMP_DEV)
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var/db.sqlite3* var/redis var/run var/staticfiles

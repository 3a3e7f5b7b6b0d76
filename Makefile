# Postern — the project's commands. Node.js 24 comes from the npm registry's `node` package
# (node_modules/.bin/node), so a machine with an older system Node needs nothing else.
NODE := node_modules/.bin/node
STAMP := node_modules/.install-stamp

.PHONY: run test bench check-config demo clean

$(STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@$(NODE) --version
	@touch $@

## run: start the gateway on embedded defaults (SMTP 127.0.0.1:2525, a development backend sink on 127.0.0.1:10025, metrics 127.0.0.1:9465)
run: $(STAMP)
	POSTERN_LISTEN=$${POSTERN_LISTEN:-127.0.0.1:2525} POSTERN_DOMAINS=$${POSTERN_DOMAINS:-example.test} \
	POSTERN_LOG_PRETTY=$${POSTERN_LOG_PRETTY:-true} $(NODE) src/main.ts serve --dev-backend

## test: type-check, lint and run every test
test: $(STAMP)
	npm test

## bench: throughput/latency/CPU figures (not part of the tests)
bench: $(STAMP)
	$(NODE) test/bench/bench.ts

check-config: $(STAMP)
	$(NODE) src/main.ts check-config

clean:
	rm -rf node_modules

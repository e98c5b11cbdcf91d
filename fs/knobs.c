/* SPDX-License-Identifier: MIT */
/*
 * knobs.c - the test-only knobs of the environment (fs layer, for the daemon's main.c):
 * a store that fails after N commits, and pauses at the moments the crash tests kill
 * the daemon in.  Only a build with -Dfault_injection=true obeys them; any other build
 * says it ignores them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "knobs.h"
#include "log.h"

#if STATEHOUSE_FAULT_INJECTION
static int parse_fault(const char *spec, long *after, int *code)
{
	const char *a = strstr(spec, "after="), *c = strstr(spec, "code=");

	if (!a || !c)
		return -EINVAL;
	*after = strtol(a + 6, NULL, 10);
	if (!strncmp(c + 5, "eio", 3))
		*code = -EIO;
	else if (!strncmp(c + 5, "full", 4))
		*code = -ENOSPC;
	else
		return -EINVAL;
	return 0;
}

/* STATEHOUSE_FAULT=after=N,code=eio|full (doc/decisions.md 15): the store fails on
 * purpose, for the tests of storage errors. */
static int set_fault_from_env(struct txn_engine *eng)
{
	const char *spec = getenv("STATEHOUSE_FAULT");
	long after;
	int code;

	if (!spec)
		return 0;
	if (parse_fault(spec, &after, &code)) {
		log_err("cannot parse STATEHOUSE_FAULT '%s' (after=N,code=eio|full)", spec);
		return -EINVAL;
	}
	log_warn("fault injection on: store fails with %s after %ld commits",
		 code == -EIO ? "EIO" : "ENOSPC", after);
	txn_engine_set_fault(eng, after, code);
	return 0;
}

/*
 * A pause knob NAME=N (0..600000 ms): set(eng, N) and say so (what: what pauses).
 * STATEHOUSE_PRUNE_PAUSE_MS (doc/decisions.md 34): each prune step that removes
 * something sleeps before it commits; STATEHOUSE_ANSWER_PAUSE_MS (35): a durable
 * transaction commit waits before it is answered.
 */
static int set_pause_from_env(struct txn_engine *eng, const char *name, const char *what,
			      void (*set)(struct txn_engine *, unsigned))
{
	const char *spec = getenv(name);
	char *end = NULL;
	unsigned long ms;

	if (!spec)
		return 0;
	ms = strtoul(spec, &end, 10);
	if (end == spec || *end || ms > 600000) {
		log_err("cannot parse %s '%s' (0..600000)", name, spec);
		return -EINVAL;
	}
	log_warn("fault injection on: %s %lu ms", what, ms);
	set(eng, (unsigned)ms);
	return 0;
}

int fs_test_knobs_from_env(struct txn_engine *eng)
{
	return set_fault_from_env(eng) ||
	       set_pause_from_env(eng, "STATEHOUSE_PRUNE_PAUSE_MS",
				  "each prune step pauses before its commit for",
				  txn_engine_set_prune_pause) ||
	       set_pause_from_env(eng, "STATEHOUSE_ANSWER_PAUSE_MS",
				  "each transaction commit pauses between durable and answered for",
				  txn_engine_set_answer_pause) ? -1 : 0;
}
#else
int fs_test_knobs_from_env(struct txn_engine *eng)
{
	static const char *const knobs[] = { "STATEHOUSE_FAULT", "STATEHOUSE_PRUNE_PAUSE_MS",
					     "STATEHOUSE_ANSWER_PAUSE_MS" };

	(void)eng;
	for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++)
		if (getenv(knobs[i]))
			log_warn("ignoring %s: this build has no fault injection "
				 "(meson -Dfault_injection=true)", knobs[i]);
	return 0;
}
#endif

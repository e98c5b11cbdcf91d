/* SPDX-License-Identifier: MIT */
/*
 * retain.c - retention (txn layer): pruning the log by the rules keep_versions and
 * keep_ns, in small steps run by the committer thread between its batches, then giving
 * the freed pages back to the file system; and statehoused --vacuum.
 *
 * A round, every RETAIN_ROUND_NS at most:
 *   IDLE --due--> PRUNE (store_prune_step() until no work is left)
 *        --> VACUUM (store_vacuum_step(), when pages are free and the store can shrink)
 *        --> CHECKPOINT (the file shrinks once the write-ahead log is folded in) --> IDLE
 * The committer runs the steps between its batches, on the pruner's own connection,
 * which only this thread uses: appends and steps never wait for each other's locks.
 * A step removes at most RETAIN_STEP_OPS operations (a few milliseconds), so a commit
 * waits for at most one short step.  While commits come (one within RETAIN_IDLE_NS)
 * the next step waits RETAIN_BUSY_GAP_NS and at least RETAIN_BUSY_SHARE times as long
 * as the last one took, so pruning takes a twentieth of the committer's time at most,
 * and vacuum and checkpoint wait for a pause; idle, steps follow one another until the
 * round's work is done.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "txn_i.h"

#define RETAIN_ROUND_NS (1000 * 1000000LL)     /* a round at most once a second */
#define RETAIN_IDLE_NS (50 * 1000000LL)        /* no commit for this long: idle */
#define RETAIN_BUSY_GAP_NS (20 * 1000000LL)    /* between steps while commits come, at
						* least, and RETAIN_BUSY_SHARE times the
						* last step's time */
#define RETAIN_BUSY_SHARE 19                   /* a twentieth of the committer's time */
#define RETAIN_STEP_OPS 128                    /* operations a step removes at most */
#define RETAIN_RETRY_NS (5000 * 1000000LL)     /* after a failed step */
#define RETAIN_LOG_NS (60 * 1000000000LL)      /* a summary in the log at most this often */
#define RETAIN_VACUUM_PAGES 64                 /* pages given back by one step */

enum { R_IDLE = 0, R_PRUNE, R_VACUUM, R_CHECKPOINT };

int txn_retain_open(struct txn_engine *eng)
{
	int err;

	if ((!eng->opt.keep_versions && !eng->opt.keep_ns) || eng->opt.inspect_only ||
	    eng->opt.salvage)
		return 0;
	err = store_pruner_open(eng->store, eng->datadir, &eng->pruner);
	if (err) {
		log_err("cannot start pruning the log of '%s': %s", eng->datadir, strerror(-err));
		return err;
	}
	eng->retain_phase = R_IDLE;
	eng->retain_next_ns = clock_now_ns(CLOCK_MONOTONIC);
	return 0;
}

void txn_retain_close(struct txn_engine *eng)
{
	store_pruner_close(eng->pruner);
	eng->pruner = NULL;
}

static bool commits_come(const struct txn_engine *eng, int64_t now)
{
	return eng->retain_commit_ns && now - eng->retain_commit_ns < RETAIN_IDLE_NS;
}

void txn_retain_commit_seen(struct txn_engine *eng)
{
	if (eng->pruner)
		eng->retain_commit_ns = clock_now_ns(CLOCK_MONOTONIC);
}

int64_t txn_retain_due_ns(struct txn_engine *eng)
{
	int64_t now = clock_now_ns(CLOCK_MONOTONIC), due;

	if (!eng->pruner)
		return 0;
	due = eng->retain_phase == R_IDLE ? eng->retain_next_ns : eng->retain_last_ns;
	if (!commits_come(eng, now))
		return due;
	/* Commits come: vacuum and checkpoint wait for a pause, prune steps for the gap. */
	if (eng->retain_phase == R_VACUUM || eng->retain_phase == R_CHECKPOINT)
		return eng->retain_commit_ns + RETAIN_IDLE_NS;
	{
		int64_t gap = RETAIN_BUSY_SHARE * eng->retain_step_ns;

		if (gap < RETAIN_BUSY_GAP_NS)
			gap = RETAIN_BUSY_GAP_NS;

		return due > eng->retain_last_ns + gap ? due : eng->retain_last_ns + gap;
	}
}

/* The end of a round: what it did goes to the log (a summary at most once a minute). */
static void round_end(struct txn_engine *eng, int64_t now, int64_t after_ns)
{
	eng->retain_phase = R_IDLE;
	eng->retain_next_ns = now + after_ns;
	eng->logged_ops += eng->round_ops;
	eng->logged_events += eng->round_events;
	if (eng->round_ops || eng->round_events)
		log_debug("prune: removed %" PRIu64 " operations and %" PRIu64
			  " events; the horizon is at commit %" PRId64,
			  eng->round_ops, eng->round_events, store_horizon(eng->store));
	eng->round_ops = eng->round_events = 0;
	if (eng->logged_ops + eng->logged_events &&
	    (!eng->retain_logged_ns || now - eng->retain_logged_ns >= RETAIN_LOG_NS)) {
		log_info("prune: removed %" PRIu64 " operations and %" PRIu64 " events from the "
			 "log; .at and the event streams begin at commit %" PRId64,
			 eng->logged_ops, eng->logged_events, store_horizon(eng->store));
		eng->logged_ops = eng->logged_events = 0;
		eng->retain_logged_ns = now;
	}
}

static void step_prune(struct txn_engine *eng, int64_t now, unsigned max_ops)
{
	const struct store_retention r = { eng->opt.keep_versions, eng->opt.keep_ns };
	struct store_prune_result res;
	int err = store_prune_step(eng->pruner, &r, clock_now_ns(CLOCK_REALTIME), max_ops, &res);

	log_debug("prune step of %u at most: %s, %" PRIu64 " operations and %" PRIu64
		  " events removed in %" PRId64 " us", max_ops, err ? strerror(-err) : "ok",
		  err ? 0 : res.ops, err ? 0 : res.events,
		  (clock_now_ns(CLOCK_MONOTONIC) - now) / 1000);

	if (err) {
		/* Nothing of the step stays; the next round tries again (said once). */
		if (err != -EAGAIN && err != eng->retain_err)
			log_warn("cannot prune the log: %s; trying again every %lld s",
				 strerror(-err), RETAIN_RETRY_NS / 1000000000LL);
		eng->retain_err = err;
		round_end(eng, now, RETAIN_RETRY_NS);
		return;
	}
	if (eng->retain_err && eng->retain_err != -EAGAIN)
		log_info("pruning the log again");
	eng->retain_err = 0;
	eng->n_pruned_ops += res.ops;
	eng->n_pruned_events += res.events;
	eng->round_ops += res.ops;
	eng->round_events += res.events;
	if (res.more)
		return;
	/* Nothing removed and nothing free: the round ends here. */
	if (!eng->round_ops && !eng->round_events && eng->free_known && !eng->free_bytes)
		round_end(eng, now, RETAIN_ROUND_NS);
	else
		eng->retain_phase = R_VACUUM;
}

static void step_vacuum(struct txn_engine *eng, int64_t now)
{
	struct store_vacuum_result res;
	int err = store_vacuum_step(eng->pruner, RETAIN_VACUUM_PAGES, &res);

	if (err) {
		if (err != -EAGAIN)
			log_warn("cannot give free pages of the log back: %s", strerror(-err));
		round_end(eng, now, RETAIN_RETRY_NS);
		return;
	}
	eng->free_bytes = res.free_bytes;
	eng->shrinks = res.shrinks;
	eng->free_known = true;
	if (!res.shrinks && res.free_bytes && !eng->warned_no_shrink) {
		eng->warned_no_shrink = true;
		log_warn("the store in '%s' was made before stores could shrink: the space pruned "
			 "(%" PRIu64 " bytes now) is reused, but the file keeps its size; stop the "
			 "daemon and run 'statehoused --vacuum %s' once", eng->datadir,
			 res.free_bytes, eng->datadir);
	}
	if (!res.more)
		eng->retain_phase = R_CHECKPOINT;
}

void txn_retain_step(struct txn_engine *eng)
{
	int64_t due = txn_retain_due_ns(eng), now = clock_now_ns(CLOCK_MONOTONIC);

	if (!due || now < due)
		return;
	eng->retain_last_ns = now;
	if (eng->retain_phase == R_IDLE)
		eng->retain_phase = R_PRUNE; /* a round begins */
	switch (eng->retain_phase) {
	case R_PRUNE:
		step_prune(eng, now, RETAIN_STEP_OPS);
		break;
	case R_VACUUM:
		step_vacuum(eng, now);
		break;
	case R_CHECKPOINT:
		/* A passive checkpoint never waits for a reader; one in the way leaves it
		 * to the next (SQLite checkpoints by itself as the log grows). */
		store_checkpoint(eng->pruner);
		round_end(eng, now, RETAIN_ROUND_NS);
		break;
	}
	eng->retain_step_ns = clock_now_ns(CLOCK_MONOTONIC) - now;
}

int64_t txn_engine_horizon(struct txn_engine *eng)
{
	return store_horizon(eng->store);
}

int txn_vacuum(const char *datadir, const char *store_uri)
{
	uint64_t before = 0, after = 0;
	int err = store_vacuum(store_uri, datadir, &before, &after);

	if (!err)
		log_info("vacuum: '%s' is compacted and can shrink after a prune: %" PRIu64
			 " bytes before, %" PRIu64 " after", datadir, before, after);
	return err;
}

#if STATEHOUSE_FAULT_INJECTION
void txn_engine_set_prune_pause(struct txn_engine *eng, unsigned ms)
{
	if (eng->pruner)
		store_set_prune_pause(eng->pruner, ms);
}
#endif

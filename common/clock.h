/* SPDX-License-Identifier: MIT */
/*
 * clock.h - one reading of a clock in nanoseconds (common layer).
 */
#ifndef STATEHOUSE_CLOCK_H
#define STATEHOUSE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_REALTIME for times shown to people and stored, CLOCK_MONOTONIC for deadlines. */
static inline int64_t clock_now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif

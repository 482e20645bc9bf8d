/* Unit tests for agent/scheduler.c's spread of first runs: i/n of the way
 * through the interval, on a grid of VP_SCHED_STEP_MS, so that targets in one
 * step share a wakeup and no step takes more than its share. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "agent/limits.h"
#include "agent/scheduler.h"

struct offset_case {
	size_t i, n;
	uint64_t interval_ms, want;
};

static const struct offset_case offset_cases[] = {
	{ 0, 1, 10000, 0 },
	{ 0, 0, 10000, 0 },          /* no targets: nothing to divide by */
	{ 1, 1000, 10000, 0 },       /* 10 ms: the first step */
	{ 9, 1000, 10000, 0 },
	{ 10, 1000, 10000, 100 },    /* the second step starts at target 10 */
	{ 999, 1000, 10000, 9900 },  /* the last step, inside the interval */
	{ 1, 6, 1000, 100 },         /* 166 ms */
	{ 5, 6, 1000, 800 },         /* 833 ms */
	{ 1, 2, 1000, 500 },
	{ 1, 3, 1000, 300 },         /* 333 ms */
	{ 2, 3, 60000, 40000 },
	{ 1, 20, 1000, 0 },          /* 50 ms: more targets than steps */
	{ 99999, 100000, 86400000, 86399100 },  /* the largest config and interval */
};

START_TEST(test_offset_table)
{
	const struct offset_case *c = &offset_cases[_i];

	ck_assert_uint_eq(vp_sched_first_offset(c->i, c->n, c->interval_ms), c->want);
}
END_TEST

/* For every target count and interval: inside the interval, on the grid, in
 * target order, and no step holds more than its share rounded up (the
 * "no burst at start" promise). */
START_TEST(test_offset_spread)
{
	static const size_t counts[] = { 1, 2, 7, 10, 99, 100, 101, 1000, 16000 };
	static const uint64_t intervals[] = { 1000, 5000, 10000, 60000 };

	for (size_t a = 0; a < sizeof(counts) / sizeof(counts[0]); a++) {
		for (size_t b = 0; b < sizeof(intervals) / sizeof(intervals[0]); b++) {
			size_t n = counts[a];
			uint64_t iv = intervals[b], steps = iv / VP_SCHED_STEP_MS;
			uint64_t share = (n + steps - 1) / steps, prev = 0, run = 0;

			for (size_t i = 0; i < n; i++) {
				uint64_t off = vp_sched_first_offset(i, n, iv);

				ck_assert_uint_lt(off, iv);
				ck_assert_uint_eq(off % VP_SCHED_STEP_MS, 0);
				ck_assert_uint_ge(off, prev);
				run = i > 0 && off == prev ? run + 1 : 1;
				ck_assert_msg(run <= share, "%zu targets, %llu ms: %llu in the step at %llu ms",
				              n, (unsigned long long)iv, (unsigned long long)run,
				              (unsigned long long)off);
				prev = off;
			}
		}
	}
}
END_TEST

static Suite *scheduler_suite(void)
{
	Suite *s = suite_create("scheduler");
	TCase *tc = tcase_create("first runs");

	tcase_add_loop_test(tc, test_offset_table, 0,
	                    (int)(sizeof(offset_cases) / sizeof(offset_cases[0])));
	tcase_add_test(tc, test_offset_spread);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(scheduler_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

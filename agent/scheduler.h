/* The daemon's schedule: every target on its own interval, first runs spread
 * over the interval, never two runs of one target at once. */
#ifndef VP_SCHEDULER_H
#define VP_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "agent/history.h"
#include "agent/runner.h"

struct vp_scheduler;

struct vp_sched_target {
	struct vp_scheduler *sched;       /* borrowed */
	const struct vp_target *target;   /* borrowed from the scheduler's config */
	struct vp_target_run run;
	uv_timer_t timer;
	uint64_t due_ms;                  /* loop time of the next (or current) run */
	struct vp_history history;
	struct vp_probe_result *last;     /* owned: the last run's results */
	size_t n_last;
	enum vp_verdict verdict;          /* the worst of the last run; valid when runs > 0 */
	int64_t changed_ms;               /* realtime of the last verdict change */
	uint64_t runs;
	uint64_t late_ms_max;             /* worst start lateness seen */
};

/* The first runs are spread over the interval on a grid of this step, so
 * that targets whose turns fall in one step start together and share the
 * loop's wakeups (and the kernel's warm caches) instead of each waking the
 * agent alone. A target's later runs stay on its step: due += interval. */
#define VP_SCHED_STEP_MS 100

/* When target i of n first runs, in ms after the schedule starts: i/n of the
 * way through its interval, rounded down to the grid. */
uint64_t vp_sched_first_offset(size_t i, size_t n, uint64_t interval_ms);

/* Called after every run of a target, with its results in st->last. */
typedef void (*vp_sched_cb)(struct vp_sched_target *st, void *arg);

/* NULL when out of memory. 'cfg' stays borrowed until vp_scheduler_free(). */
struct vp_scheduler *vp_scheduler_new(uv_loop_t *loop, const struct vp_config *cfg,
                                      vp_sched_cb cb, void *arg);

/* Starts the schedule. With 'previous', targets of the same name and URL
 * take over their history and last results from it. */
void vp_scheduler_start(struct vp_scheduler *s, struct vp_scheduler *previous);

/* Stops scheduling, drops runs in flight; 'closed' runs once every handle
 * is closed. */
void vp_scheduler_stop(struct vp_scheduler *s, void (*closed)(struct vp_scheduler *s, void *arg),
                       void *arg);

/* Frees a stopped scheduler. Accepts NULL; returns NULL. */
struct vp_scheduler *vp_scheduler_free(struct vp_scheduler *s);

size_t vp_scheduler_count(const struct vp_scheduler *s);
struct vp_sched_target *vp_scheduler_target(struct vp_scheduler *s, size_t i);
/* Whether every target has finished a run: the first round is done. */
bool vp_scheduler_ready(const struct vp_scheduler *s);
const struct vp_config *vp_scheduler_config(const struct vp_scheduler *s);

/* The worst verdict of a run's results (ok only when every one is ok). */
enum vp_verdict vp_results_verdict(const struct vp_probe_result *res, size_t n);

#endif

/* One run of one target: resolve its name when it has one, probe every
 * address (one bad backend must not hide behind a good one), and hand back
 * all the results together. `check` and `run` both probe through this. */
#ifndef VP_RUNNER_H
#define VP_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "agent/engine.h"
#include "config/config.h"

struct vp_runner;

struct vp_target_run {
	const struct vp_target *target;   /* borrowed */
	uint32_t timeout_ms;              /* the whole run's: dns + connect + protocol */
	void (*done)(struct vp_target_run *tr);  /* from the loop, once per start */
	void *data;                       /* the owner's */

	/* Valid from 'done' until the next start or vp_target_run_clear(). */
	struct vp_probe_result *results;  /* owned */
	size_t n_results;

	/* Internal. */
	struct vp_runner *runner;         /* borrowed */
	struct vp_probe_req *reqs;        /* owned */
	size_t pending;
	bool busy;
	uint64_t start_ns;
	uint64_t submit_ns;               /* when its probes went to the engine */
};

/* NULL when out of memory. */
struct vp_runner *vp_runner_new(uv_loop_t *loop, const struct vp_config *cfg);

/* Starts a run; 'tr' must not be busy, and stays borrowed until 'done'.
 * 'done' runs from the loop, except for a run that fails before any I/O
 * (no memory, no resolver), whose 'done' runs before this returns. */
void vp_runner_start(struct vp_runner *r, struct vp_target_run *tr);

/* Frees a finished run's results. */
void vp_target_run_clear(struct vp_target_run *tr);

/* Stops everything in flight (no 'done' callbacks), closes the handles;
 * 'closed' (may be NULL) runs with 'arg' once they are. */
void vp_runner_close(struct vp_runner *r, void (*closed)(void *arg), void *arg);

/* Frees a closed runner. Accepts NULL; returns NULL. */
struct vp_runner *vp_runner_free(struct vp_runner *r);

#endif

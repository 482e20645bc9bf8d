/* /metrics: the Prometheus text exposition of the probe state. Gauges are
 * read from the scheduler's last results at scrape time; counters and the
 * latency histogram are kept here, per target name, so that they survive a
 * SIGHUP that replaces the scheduler. */
#ifndef VP_METRICS_H
#define VP_METRICS_H

#include <stdint.h>

#include "agent/html.h"
#include "agent/scheduler.h"

struct vp_metrics;

/* Values that come from outside the probes (the reporter, when there is
 * one); zero without it. */
struct vp_metrics_extra {
	uint64_t reports_spooled_bytes;
	uint64_t reports_dropped_total;
};

/* Results lost on the way to the collector, counters since start (the
 * fields of struct vp_status_delivery that carry the same names). */
struct vp_metrics_losses {
	uint64_t set_aside;   /* refused with a status not retried, not sent again */
	uint64_t partial;     /* rejected by an OTLP partialSuccess */
	uint64_t corrupt;     /* spool frames that failed their checksum, skipped */
	uint64_t torn;        /* torn spool tails cut at recovery */
};

/* NULL when out of memory. */
struct vp_metrics *vp_metrics_new(void);
/* Accepts NULL; returns NULL. */
struct vp_metrics *vp_metrics_free(struct vp_metrics *m);

/* Counts a finished run: every result in st->last goes into the target's
 * vpcprobe_probes_total{verdict} and its duration histogram. Called from the
 * daemon's result callback, on the loop. A failed allocation loses this
 * run's counts and nothing else. */
void vp_metrics_observe(struct vp_metrics *m, const struct vp_sched_target *st);

/* Records the loss counters for the next renders. The status server calls
 * it each time it reads the delivery state (vp_status_delivery_of), which
 * /metrics does just before it renders; the counters only grow, so the last
 * values read are the newest. Accepts NULL 'm'. */
void vp_metrics_set_losses(struct vp_metrics *m, const struct vp_metrics_losses *l);

/* Appends the whole exposition for the targets of 's' (the current
 * scheduler) to 'b'. Returns 0 or the buffer's error. */
int vp_metrics_render(const struct vp_metrics *m, struct vp_scheduler *s,
                      const struct vp_metrics_extra *x, struct vp_buf *b);

/* Appends 's' escaped as a label value of the text format: backslash,
 * double quote and line feed become \\, \" and \n. */
int vp_prom_label(struct vp_buf *b, const char *s);

#endif

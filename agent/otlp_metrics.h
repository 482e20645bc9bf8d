/* The contract's metrics as OTLP/HTTP JSON (DESIGN.md "Collector delivery",
 * issue 5): with collector.format "otlp" the reporter sends, besides the
 * results as logs, an ExportMetricsServiceRequest on a fixed period.
 *
 * Metrics are a snapshot, not a queue: they do not go through the spool. The
 * counts kept here are cumulative from the moment a target's series was
 * first seen (its startTimeUnixNano), so a failed export loses nothing that
 * the next one does not carry. The same names as /metrics, the Prometheus
 * ones, which OTLP allows:
 *
 *   vpcprobe_probe_success            gauge, per target, kind, address, port
 *   vpcprobe_probe_duration_seconds   histogram, per target
 *   vpcprobe_probes_total             sum (cumulative, monotonic), per target, verdict
 *   vpcprobe_reports_spooled_bytes    gauge
 *   vpcprobe_reports_dropped_total    sum (cumulative, monotonic)
 *   vpcprobe_reports_rejected_total   sum, per reason: set_aside, partial
 *   vpcprobe_spool_frames_skipped_total  sum, per why: corrupt, torn
 *   vpcprobe_metrics_exports_failed_total  sum: metrics POSTs that failed
 *
 * The counts are the reporter's own rather than the status page's
 * (agent/metrics.c): the reporter lives in the core library, which does not
 * link the status endpoints. The histogram uses the same bounds as /metrics. */
#ifndef VP_OTLP_METRICS_H
#define VP_OTLP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "agent/limits.h"
#include "agent/reporter.h"
#include "agent/scheduler.h"
#include "agent/spool.h"

/* The export period is VP_REPORT_METRICS_MS, or OTEL_METRIC_EXPORT_INTERVAL
 * (milliseconds) within VP_REPORT_METRICS_MIN_MS..VP_REPORT_METRICS_MAX_MS;
 * a body is at most VP_REPORT_METRICS_BODY_MAX (agent/limits.h). */

struct vp_otlp_metrics;

/* What goes into one export besides the counts. */
struct vp_otlp_metrics_in {
	const struct vp_report_ctx *ctx;         /* borrowed: the resource */
	struct vp_scheduler *sched;              /* borrowed, may be NULL: the current one */
	const struct vp_delivery_stats *stats;   /* borrowed */
	uint64_t stats_start_ns;                 /* since when 'stats' counts */
	uint64_t partial;                        /* of stats->rejected, the records OTLP
	                                          * partialSuccess answers rejected
	                                          * (vp_reporter_partial_total()); the
	                                          * rest were set aside */
	uint64_t exports_failed;                 /* metrics POSTs that failed so far */
	uint64_t start_ns;                       /* the exporter's start */
	uint64_t now_ns;
};

/* NULL when out of memory. */
struct vp_otlp_metrics *vp_otlp_metrics_new(void);
/* Accepts NULL; returns NULL. */
struct vp_otlp_metrics *vp_otlp_metrics_free(struct vp_otlp_metrics *m);

/* Counts a finished run of st's target (every result in st->last). A
 * failed allocation loses this run's counts and nothing else. */
void vp_otlp_metrics_observe(struct vp_otlp_metrics *m, const struct vp_sched_target *st,
                             uint64_t now_ns);

/* The ExportMetricsServiceRequest for the targets of in->sched (every
 * series when it is NULL); series of targets in->sched no longer has are
 * dropped. Returns a new string (free()) and its length, or NULL when out
 * of memory or longer than VP_REPORT_METRICS_BODY_MAX. */
char *vp_otlp_metrics_body(struct vp_otlp_metrics *m, const struct vp_otlp_metrics_in *in,
                           size_t *len);

/* The metrics endpoint of an OTLP logs URL: the path's trailing "/v1/logs"
 * becomes "/v1/metrics" (a query stays). Returns 0, or -EINVAL when the
 * path does not end in /v1/logs (no endpoint to derive), -ENAMETOOLONG
 * when 'out' is too small. */
int vp_otlp_metrics_url(const char *logs_url, char *out, size_t outlen);

#endif

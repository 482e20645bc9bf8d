/* Delivery to the collector (DESIGN.md "Collector delivery", issue 5):
 * results go to the spool, batches go from the spool to the collector over
 * libcurl's multi interface on the agent's libuv loop, one batch in flight
 * at a time, in order, at least once. */
#ifndef VP_REPORTER_H
#define VP_REPORTER_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "agent/curl_uv.h"
#include "agent/metadata.h"
#include "agent/scheduler.h"
#include "agent/spool.h"
#include "config/config.h"

/* ---- libcurl on the libuv loop ----
 * struct vp_curlm and struct vp_http_xfer come from agent/curl_uv.h: one
 * multi handle per loop, shared by the reporter, the metadata reader and
 * the http probes. */

/* ---- bodies (reporter_body.c) ---- */

/* What every body of one reporter carries besides the records. */
struct vp_report_ctx {
	const char *agent;                   /* borrowed */
	enum vp_collector_format format;
	const struct vp_instance *instance;  /* borrowed, may be NULL */
};

/* The POST body for a batch: for json {"agent", "batch", "instance"?,
 * "results": [record...]}, for otlp an ExportLogsServiceRequest in the
 * OTLP/HTTP JSON encoding. A record that is not a JSON object (cannot
 * happen past the CRC) is left out. Returns a new string (free()) and its
 * length, or NULL when out of memory. */
char *vp_report_body(const struct vp_report_ctx *ctx, const struct vp_spool_batch *b,
                     size_t *len);

/* The OTLP Resource of every body: service, host and, on Compute Engine,
 * cloud and gcp.gce attributes. A new reference (NULL when out of memory). */
json_t *vp_report_resource(const struct vp_report_ctx *ctx);

/* The OTLP severity of a verdict: 9 (INFO) for ok; 13 (WARN) when the
 * service answered but not well (reset, protocol_error) or the agent could
 * not probe (local_error); 17 (ERROR) when it could not be reached. */
int vp_report_severity(const char *verdict);

/* Nanoseconds since the epoch of a record's "time" (2026-11-24T10:00:00.123Z);
 * 0 when it does not parse. */
uint64_t vp_report_time_ns(const char *iso);

/* How many log records an OTLP answer's partialSuccess rejects (0: none,
 * or no partialSuccess), its errorMessage into 'msg'. 'answer' may be cut
 * short (the reporter reads VP_REPORT_ANSWER_MAX bytes); then the count is
 * still found when it came before the cut. The _key form reads another
 * count: "rejectedDataPoints" of a metrics answer. */
uint64_t vp_report_otlp_rejected(const char *answer, size_t len, char *msg, size_t msglen);
uint64_t vp_report_otlp_rejected_key(const char *answer, size_t len, const char *key, char *msg,
                                     size_t msglen);

/* ---- the reporter (reporter.c) ---- */

struct vp_reporter;

/* Opens the spool under cfg->state_dir, reads the token file, starts the
 * metadata reader when on Compute Engine (or agent.metadata_url is set).
 * 'stats' is borrowed for the reporter's life. With format otlp it also
 * exports the metrics (agent/otlp_metrics.h) every VP_REPORT_METRICS_MS, or
 * every $OTEL_METRIC_EXPORT_INTERVAL ms, to the URL with /v1/metrics for
 * /v1/logs; 'sched' (borrowed for the reporter's life, may be NULL) is where
 * the caller keeps its current scheduler, read at each export. The
 * reporter copies what it needs from 'cfg'. Returns 0 or -errno with a message in 'err' naming the
 * file or directory and the errno (the caller logs it). */
int vp_reporter_new(uv_loop_t *loop, const struct vp_config *cfg,
                    struct vp_delivery_stats *stats, struct vp_scheduler *const *sched,
                    struct vp_reporter **ret, char *err, size_t errlen);

/* Whether 'cfg' has the collector settings 'r' runs with (also the token
 * file's content and the agent name): then a reload keeps 'r'. */
bool vp_reporter_same(const struct vp_reporter *r, const struct vp_config *cfg);

/* Of the records counted in vp_delivery_stats.rejected, how many OTLP
 * partialSuccess answers rejected (the rest were set aside after a 4xx).
 * The split is kept here, for the process's life, rather than in the spool's
 * stats, so that /metrics can tell the two apart across reloads. */
uint64_t vp_reporter_partial_total(void);

/* Spools the results of one run of one target (st->last). */
void vp_reporter_add_run(struct vp_reporter *r, const struct vp_sched_target *st);

/* Spools one record that is not a target's run: a listener check's result
 * or a beacon's arrival (kind "listener" or "beacon", issue 3), in the same
 * batches as the probe results. 'rec' is borrowed; NULL counts as dropped.
 * 'what' names it in the log if the spool cannot keep it. */
void vp_reporter_add_record(struct vp_reporter *r, const json_t *rec, const char *what);

/* Stops. With 'flush', the spool is synced and one last batch (and with
 * otlp one last metrics export) gets up to VP_REPORT_STOP_MS to go; without, a batch in flight is abandoned (it is
 * still in the spool). The reporter frees itself once its handles are
 * closed; 'r' must not be used after this call. Accepts NULL. */
void vp_reporter_close(struct vp_reporter *r, bool flush);

#endif

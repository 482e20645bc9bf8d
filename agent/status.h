/* The status endpoints (agent.status_listen): the page for the on-call
 * engineer, /api/v1/status, /metrics, /target/NAME, /api/v1/listeners,
 * /healthz and /-/ready. libmicrohttpd runs without a thread of its own:
 * its epoll descriptor is watched by a uv_poll_t and its timeout is a
 * uv_timer_t on the daemon's loop, so every request is served between two
 * probe callbacks and no second thread ever reads probe state. */
#ifndef VP_STATUS_H
#define VP_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "agent/limits.h"
#include "agent/listen_checks.h"
#include "agent/metadata.h"
#include "agent/scheduler.h"
#include "config/config.h"

struct vp_status;
struct vp_status_fw;

/* The collector's side of the header and of /metrics. Until a reporter
 * fills it in, the page says "no collector" (or that delivery state is not
 * known) and the report metrics are 0. */
struct vp_status_delivery {
	bool known;                       /* a reporter filled this in */
	bool ok;                          /* its last batch was acknowledged */
	uint64_t spooled_bytes;
	uint64_t dropped_total;
	/* Results lost on the way, counted since start: refused by the
	 * collector with a status that is not retried (agent/reporter.c) and
	 * set aside, rejected by an OTLP partialSuccess; spool damage skipped:
	 * frames that failed their checksum, torn tails cut at recovery. */
	uint64_t set_aside_total;
	uint64_t partial_total;
	uint64_t corrupt_total;
	uint64_t torn_total;
	char last_error[VP_DETAIL_MAX];   /* "" when none */
};

/* Where the server reads the daemon's state. Called on the loop, at each
 * request: nothing is cached, so a SIGHUP's new scheduler shows at once. */
struct vp_status_source {
	/* The scheduler in charge now. Never NULL. */
	struct vp_scheduler *(*scheduler)(void *arg);
	/* May be NULL: there is no reporter. */
	void (*delivery)(void *arg, struct vp_status_delivery *out);
	/* May be NULL, or return NULL: no listener checks and no beacons
	 * (issue 3). Their last results and arrivals go on the page. */
	const struct vp_listen_checks *(*checks)(void *arg);
	/* May be NULL, or return NULL: where the agent runs is not known.
	 * Fields fill in as the metadata server answers. */
	const struct vp_instance *(*instance)(void *arg);
	/* May be NULL, or return NULL: no agent.gcloud_exports. The firewall
	 * lines of the last load of the exports (agent/status_fw.h). */
	const struct vp_status_fw *(*firewall)(void *arg);
	void *arg;                        /* borrowed: the callbacks' */
};

/* Refuses a status_listen off loopback without status_token_file: -EPERM
 * with a sentence naming both keys in 'err'; -EINVAL for an unparsable
 * address. 0 when the agent may start. Pure. */
int vp_status_check_config(const struct vp_config *cfg, char *err, size_t errlen);

/* Reads the token file, binds status_listen and starts serving on 'loop',
 * before it returns (READY=1 may follow). 0, or -errno with a message that
 * names the file or the address in 'err'; '*ret' is set only on success.
 * 'cfg' is read only during the call: status_listen and status_token_file
 * are taken at start, and a reload does not rebind. */
int vp_status_start(uv_loop_t *loop, const struct vp_config *cfg,
                    const struct vp_status_source *src, struct vp_status **ret,
                    char *err, size_t errlen);

/* The daemon's result hook: counts the run for /metrics. Accepts NULL. */
void vp_status_observe(struct vp_status *s, const struct vp_sched_target *st);

/* Stops serving; open connections are closed. The handles close on later
 * loop turns. Accepts NULL; a second call does nothing. */
void vp_status_stop(struct vp_status *s);

/* Frees a stopped server (or one whose loop has ended). Accepts NULL;
 * returns NULL. */
struct vp_status *vp_status_free(struct vp_status *s);

#endif

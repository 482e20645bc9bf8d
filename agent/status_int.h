/* Inside the status server: shared by agent/status*.c and by the unit
 * tests of its pure parts (routing, authentication, the loop watch, the
 * view of a target and its next steps). */
#ifndef VP_STATUS_INT_H
#define VP_STATUS_INT_H

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "agent/html.h"
#include "agent/metrics.h"
#include "agent/status.h"
#include "agent/status_fw.h"
#include "probes/listeners.h"

#define VP_STATUS_SHA256_LEN 32

struct MHD_Daemon;
struct MHD_Response;

enum vp_route {
	VP_ROUTE_PAGE,
	VP_ROUTE_TARGET,
	VP_ROUTE_STATUS,
	VP_ROUTE_LISTENERS,
	VP_ROUTE_METRICS,
	VP_ROUTE_HEALTHZ,
	VP_ROUTE_READY,
	VP_ROUTE_MAX,
	VP_ROUTE_INVALID = -EINVAL,
};

/* An answer kept for VP_STATUS_CACHE_MS (see status.c). */
struct vp_status_cached {
	struct MHD_Response *resp;        /* one reference owned, NULL when none */
	uint64_t at_ms;                   /* uv_now() when it was built */
};

struct vp_status {
	uv_loop_t *loop;                  /* borrowed */
	struct vp_status_source src;
	struct MHD_Daemon *mhd;           /* owned; NULL once stopped */
	uv_poll_t poll;                   /* MHD's epoll descriptor */
	uv_timer_t mhd_timer;             /* MHD_get_timeout() */
	uv_timer_t heartbeat;             /* proves that the loop turns */
	uint64_t beat_ms;                 /* uv_hrtime() in ms at the last beat */
	int64_t started_ms;               /* realtime at start, for the uptime */
	bool has_token;
	unsigned char token_sha[VP_STATUS_SHA256_LEN]; /* SHA-256 of the token */
	char csp[512];                    /* Content-Security-Policy of every answer */
	bool collector;                   /* the config names a collector */
	size_t inflight;                  /* bytes of answers queued, not yet sent */
	struct vp_status_cached cache[VP_ROUTE_MAX]; /* by route: '/', the JSON, /metrics */
	struct vp_metrics *metrics;       /* owned */
	struct vp_listen_table listen;    /* owned: the last read, for /api/v1/listeners */
	uint64_t listen_at;               /* uv_now() of that read */
	int listen_err;                   /* its result */
	bool listen_valid;
	int closing;                      /* handles still closing */
	bool stopped;
};

/* ---- routing, token, loop watch (status_http.c) ---- */

/* Routes a request: 200 with '*ret' set (and '*rest' pointing at NAME for
 * /target/NAME), 404 for a path that is not served, 405 for a method other
 * than GET and HEAD on a path that is. */
unsigned vp_status_route(const char *method, const char *path, enum vp_route *ret,
                         const char **rest);

/* Whether an Authorization header carries the token: "Bearer TOKEN", or
 * "Basic" with TOKEN as the password (any user). Compared in constant time
 * through the SHA-256 of both. NULL or malformed headers are refused. */
bool vp_status_auth_ok(const char *authorization, const unsigned char want[VP_STATUS_SHA256_LEN]);
void vp_status_sha256(const void *data, size_t len, unsigned char out[VP_STATUS_SHA256_LEN]);

/* Whether the loop has stalled: its last heartbeat is older than
 * VP_STATUS_STALL_MS at 'now_ms'. */
bool vp_status_loop_stalled(uint64_t beat_ms, uint64_t now_ms);

/* ---- one target as the page shows it (status_view.c) ---- */

enum vp_status_state {
	VP_STATE_FAILING,
	VP_STATE_PENDING,                 /* no run finished yet */
	VP_STATE_OK,
	VP_STATE_MAX,
};

struct vp_status_view {
	const struct vp_sched_target *st;     /* borrowed */
	enum vp_status_state state;
	const struct vp_probe_result *worst;  /* borrowed from st->last; NULL before a run */
	double latency_ms;                    /* the last run's slowest address, < 0 none */
	int64_t last_ms;                      /* realtime of the last run, 0 none */
	char since[64];                       /* "failing for 12 min", "" when pending */
	struct vp_spark_bucket spark[VP_SPARK_BUCKETS];
	size_t n_steps;
	char steps[VP_STATUS_STEPS_MAX][VP_STATUS_STEP_MAX]; /* commands to type next */
	/* The firewall line (status_fw.h), set by vp_status_view_fw(). */
	const struct vp_status_fw *fw_set;    /* borrowed, NULL: no exports */
	const struct vp_status_fw_line *fw;   /* borrowed, NULL: no line */
};

void vp_status_view_of(const struct vp_sched_target *st, int64_t now_ms, struct vp_status_view *v);
/* Adds the target's firewall line from the source's last load (status_fw.c). */
void vp_status_view_fw(struct vp_status *s, struct vp_status_view *v);

/* Commands for the next step after result 'r' of target 't', filled in with
 * its address, port and connector_range, and with the VPC network's name
 * when 'network' (the metadata server's) is a valid one; NULL or "": the
 * commands say NETWORK. Returns how many (<= max). Pure. */
size_t vp_status_next_steps(const struct vp_target *t, const struct vp_probe_result *r,
                            const char *network, char (*steps)[VP_STATUS_STEP_MAX], size_t max);

/* The badge of a verdict: "✕", "REFUSED"; pending for VP_VERDICT_INVALID. */
const char *vp_status_badge_icon(enum vp_verdict v);
const char *vp_status_badge_text(enum vp_verdict v);

/* The scheduler's targets in page order, failing first, then pending, then
 * ok, in config order within each. A new array of vp_scheduler_count() (the
 * caller frees it), NULL when out of memory or empty. */
size_t *vp_status_order(struct vp_scheduler *s);

/* Targets per verdict (index VP_VERDICT_MAX: pending). */
void vp_status_counts(struct vp_scheduler *s, size_t counts[VP_VERDICT_MAX + 1]);

int64_t vp_status_realtime_ms(void);

/* ---- listener checks and beacons (status_checks.c, issue 3) ---- */

/* Arrivals of one beacon shown on the page and in /api/v1/status, newest
 * first; the beacon keeps VP_BEACON_ARRIVALS_MAX. Here rather than in
 * agent/limits.h, which another module owns: it bounds only this view. */
#define VP_STATUS_ARRIVALS_SHOWN 20

/* One configured beacon as the page shows it: a copy of its counters and
 * pointers to its newest arrivals, valid until the next loop turn. */
struct vp_status_beacon_view {
	char listen[VP_NAME_MAX];             /* "0.0.0.0:18080" */
	bool running;                         /* false: it could not start (see the log) */
	char expect[VP_DETAIL_MAX];           /* expect_from as written, "" when none */
	struct vp_beacon_stats stats;         /* zero when not running */
	size_t n_shown;
	const struct vp_beacon_arrival *shown[VP_STATUS_ARRIVALS_SHOWN]; /* borrowed, newest first */
};

/* The view of beacon 'b' (NULL: configured as 'listen' but not running). */
void vp_status_beacon_view_of(const struct vp_beacon_server *b, const char *listen,
                              struct vp_status_beacon_view *v);

/* "failing", "pending", "ok": a listener result's state, as a target's. */
const char *vp_status_listen_state(const struct vp_listen_result *r);

/* The page's listener table of results r[0..n) and one beacon's section.
 * Every string is HTML-escaped. */
void vp_status_listen_html(struct vp_buf *b, const struct vp_listen_result *r, size_t n,
                           int64_t now_ms);
void vp_status_beacon_html(struct vp_buf *b, const struct vp_status_beacon_view *v);

/* The same as JSON (new references; NULL when out of memory). */
json_t *vp_status_listen_json(const struct vp_listen_result *r, size_t n, int64_t now_ms);
json_t *vp_status_beacon_json(const struct vp_status_beacon_view *v);

/* The beacons of 'lc' (NULL: none) with the configured listen addresses of
 * 'cfg' for those not running, one at a time: for i in 0..n. */
size_t vp_status_beacon_count(const struct vp_listen_checks *lc);
void vp_status_beacon_view_at(const struct vp_listen_checks *lc, const struct vp_config *cfg,
                              size_t i, struct vp_status_beacon_view *v);

/* "instance diag-vm-1 \u00b7 zone europe-west1-b \u00b7 ...": what is known of
 * where the agent runs, "" when nothing is (or 'in' is NULL). */
void vp_status_where_text(const struct vp_instance *in, char *buf, size_t len);

/* ---- the bodies ---- */

/* status_page.c: '/' and '/target/NAME' (-ENOENT: no such target). */
int vp_status_page(struct vp_status *s, struct vp_buf *b);
int vp_status_target_page(struct vp_status *s, const char *name, struct vp_buf *b);
/* status_api.c: '/api/v1/status' and '/api/v1/listeners'. */
int vp_status_json(struct vp_status *s, struct vp_buf *b);
/* 'port' as the query gave it, NULL for every socket. -EINVAL: not a port;
 * other -errno: the table could not be read. */
int vp_status_listeners_json(struct vp_status *s, const char *port, struct vp_buf *b);
void vp_status_delivery_of(struct vp_status *s, struct vp_status_delivery *out);
/* "no collector", "collector ok", "collector failing: ...": the header's words. */
void vp_status_delivery_text(const struct vp_status *s, const struct vp_status_delivery *d,
                             char *buf, size_t len);

/* status_assets.c: the page's one style sheet and one script. The CSP
 * admits exactly these, by their SHA-256. */
extern const char vp_status_css[];
extern const char vp_status_js[];

#endif

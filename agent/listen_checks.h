/* The daemon's checks of what listens on this host (issue 3): the
 * configuration's `listeners`, read from the listener table on one timer
 * every defaults.interval_s and logged when their verdict changes, and its
 * `beacons`, started with the daemon and restarted on SIGHUP only when
 * their settings changed. The status page reads both through the
 * accessors below. */
#ifndef VP_LISTEN_CHECKS_H
#define VP_LISTEN_CHECKS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "agent/limits.h"
#include "config/config.h"
#include "probes/beacon.h"
#include "probes/listeners.h"
#include "probes/verdict.h"

#define VP_LISTEN_FINDING_OVERFLOW "listen queue overflowing"

/* One listener check's last result: kind "listener". */
struct vp_listen_result {
	uint16_t port;
	uint64_t runs;                    /* readings so far; 0: not read yet, the rest is zero */
	enum vp_listen_scope scope;
	/* ok (all_interfaces, specific_address with an IPv4 address),
	 * localhost_only (loopback_bind), refused (not_listening,
	 * bound_other_address), local_error (table_unreadable). */
	enum vp_verdict verdict;
	const char *reason;               /* static string */
	const char *finding;              /* VP_LISTEN_FINDING_OVERFLOW or NULL */
	char addresses[VP_DETAIL_MAX / 2]; /* "127.0.0.1 and ::1"; "" when nothing listens */
	int pid;                          /* the owner, 0 when unknown */
	char process[VP_LISTEN_COMM_MAX]; /* its name, control bytes replaced by '?' */
	uint32_t queue_cur;               /* of the socket that speaks for the port */
	uint32_t queue_max;
	bool queue_max_known;
	const char *source;               /* "netlink" or "proc"; static */
	char detail[VP_DETAIL_MAX];
	char hint[VP_HINT_MAX];           /* "" when there is nothing to do */
	struct timespec wall;             /* when it was read */
	int64_t changed_ms;               /* realtime ms of the last change of verdict, reason or finding */
};

/* The result for one port's view of a listener table (everything but
 * runs, source, wall and changed_ms). Pure. */
void vp_listen_result_of(const struct vp_listen_port *p, struct vp_listen_result *out);

/* The result as a record for the collector, kind "listener" (README,
 * "Collector delivery"): time, agent, target ("listener:PORT", so that a
 * collector that groups by target keeps each port apart), kind, port, verdict, reason, scope,
 * addresses, owner, queue, finding, source, detail, hint. A new object;
 * NULL when out of memory or when the port was not read yet. Pure. */
json_t *vp_listen_result_record(const char *agent, const struct vp_listen_result *r);

/* A beacon's arrival as a record, kind "beacon", target "beacon:LISTEN":
 * what `vpcprobe beacon --json` prints and what `run` reports. 'listen' is the beacon's address,
 * 'expect' its expect_from as text (for the sentences). A new object; NULL
 * when out of memory. Pure. */
json_t *vp_beacon_arrival_record(const char *agent, const char *listen, const char *expect,
                                 const struct vp_beacon_arrival *a);

struct vp_listen_checks;

/* Called after every reading of every listener check, with its new result
 * (valid during the call). */
typedef void (*vp_listen_result_cb)(const struct vp_listen_result *r, void *arg);

/* NULL when out of memory. 'on_arrival' (may be NULL) gets every arrival
 * at every beacon, with 'arg'. */
struct vp_listen_checks *vp_listen_checks_new(uv_loop_t *loop, vp_beacon_arrival_cb on_arrival,
                                              void *arg);

/* Sets the hook for the listener checks' results ('cb' may be NULL: none),
 * called with the 'arg' of vp_listen_checks_new(). */
void vp_listen_checks_on_result(struct vp_listen_checks *lc, vp_listen_result_cb cb);

/* Takes up 'cfg' (read during the call only): the listener checks of its
 * ports (a port that stays keeps its result), read now and then every
 * cfg->interval_s; its beacons, where one with the same listen address,
 * expect_from and agent name keeps running, and the others are closed and
 * started anew. A beacon that cannot start is logged and left out. Returns
 * 0, or the first beacon's -errno (the rest are started all the same). */
int vp_listen_checks_apply(struct vp_listen_checks *lc, const struct vp_config *cfg);

/* Stops the timer and closes the beacons; the handles close on later loop
 * turns. Accepts NULL; a second call does nothing. */
void vp_listen_checks_stop(struct vp_listen_checks *lc);

/* Frees a stopped set once its loop has run the closes. Accepts NULL;
 * returns NULL. */
struct vp_listen_checks *vp_listen_checks_free(struct vp_listen_checks *lc);

/* The listener checks, in the configuration's order. */
size_t vp_listen_checks_count(const struct vp_listen_checks *lc);
const struct vp_listen_result *vp_listen_checks_result(const struct vp_listen_checks *lc, size_t i);

/* The running beacons (their arrivals: vp_beacon_server_arrival()). NULL
 * past the end and for a configured beacon that could not start. */
size_t vp_listen_checks_beacon_count(const struct vp_listen_checks *lc);
struct vp_beacon_server *vp_listen_checks_beacon(const struct vp_listen_checks *lc, size_t i);

#endif

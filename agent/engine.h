/* The probe engine: one libuv loop, a FIFO of probe requests and at most
 * 'max_in_flight' connect probes at once, each with its own deadline. */
#ifndef VP_ENGINE_H
#define VP_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <uv.h>

#include "config/url.h"
#include "probes/classify.h"
#include "probes/tls.h"

struct vp_proto;
struct vp_target;

/* One probe to run. Owned by the caller; the engine borrows it from
 * vp_engine_submit() until the result callback returns. */
struct vp_probe_req {
	struct sockaddr_storage addr;  /* AF_INET or AF_INET6, port set */
	uint32_t timeout_ms;
	enum vp_kind kind;
	const struct vp_proto *proto;  /* borrowed; NULL: the kind's own (vp_proto_for) */
	const struct vp_target *target; /* borrowed, may be NULL: the protocol's settings */
	void *data;                    /* the caller's, untouched */
	struct vp_probe_req *next;     /* the engine's queue link */
};

struct vp_probe_result {
	struct vp_verdict_out v;       /* detail and hint only once 'explained' */
	bool explained;
	struct vp_connect_obs obs;     /* obs.address points into 'address' */
	char address[46];
	uint16_t port;
	double dns_ms;                 /* < 0 when no name was looked up (set by the runner) */
	double connect_ms;             /* < 0 when the handshake did not complete */
	double protocol_ms;            /* < 0 when no protocol spoke; without tls_ms */
	/* TLS (probes/tls.h), 'tls' to be read only with tls.asked. A result
	 * that the runner makes without a probe (a DNS failure, no memory) has
	 * 'tls' zeroed (tls.asked false), tls_ms -1 and cert_days_left
	 * VP_CERT_DAYS_UNKNOWN: no handshake began and no certificate was seen. */
	struct vp_tls_info tls;        /* tls.asked: TLS was asked for */
	double tls_ms;                 /* the handshake, until it ended; < 0 when none began */
	int cert_days_left;            /* the server's certificate, or VP_CERT_DAYS_UNKNOWN */
	double total_ms;
	uint64_t start_ns;             /* monotonic (uv_hrtime) */
	uint64_t deadline_ns;
	uint64_t end_ns;
	struct timespec wall;          /* CLOCK_REALTIME at the verdict */
};

/* Writes res->v.detail and res->v.hint if they are not there yet. The engine
 * leaves them out: a benchmark or a caller that wants only the verdict does
 * not pay for two sentences per probe. */
void vp_probe_result_explain(struct vp_probe_result *res);

typedef void (*vp_engine_result_cb)(struct vp_probe_req *req,
                                    const struct vp_probe_result *res, void *arg);

/* 'max_in_flight' is lowered to what RLIMIT_NOFILE leaves after
 * VP_FD_RESERVE descriptors. Returns NULL when out of memory. */
struct vp_engine *vp_engine_new(uv_loop_t *loop, uint32_t max_in_flight,
                                vp_engine_result_cb cb, void *arg);

/* Queues 'req'; it starts as soon as a slot is free. The callback runs once
 * per request, from the loop, never from inside this call. */
void vp_engine_submit(struct vp_engine *e, struct vp_probe_req *req);

uint32_t vp_engine_max_in_flight(const struct vp_engine *e);
size_t vp_engine_in_flight(const struct vp_engine *e);
size_t vp_engine_queued(const struct vp_engine *e);

/* Stops every probe in flight and drops the queue without result callbacks;
 * the handles close on later loop turns. 'closed' (may be NULL) runs with
 * the engine's 'arg' once the last one has. Every engine must be closed
 * before vp_engine_free(). */
void vp_engine_close(struct vp_engine *e, void (*closed)(void *arg));

/* Frees an engine with nothing in flight. Accepts NULL; returns NULL. */
struct vp_engine *vp_engine_free(struct vp_engine *e);

#endif

/* The pure classifier: what a connect attempt observed in, a verdict, a
 * reason, a detail sentence and a hint out. It never touches a socket, the
 * loop or the clock, so every row of its table is a unit test. */
#ifndef VP_CLASSIFY_H
#define VP_CLASSIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "config/url.h"
#include "probes/verdict.h"

enum vp_connect_event {
	VP_CONNECT_DONE,       /* the handshake completed */
	VP_CONNECT_SETUP_FAILED, /* socket(), setsockopt() or connect() failed at once */
	VP_CONNECT_FAILED,     /* the kernel reported a failure later */
	VP_CONNECT_DEADLINE,   /* our deadline passed first */
};

/* What one TCP connect attempt observed. */
struct vp_connect_obs {
	enum vp_connect_event event;
	int err;               /* positive errno for SETUP_FAILED / FAILED, else 0 */
	const char *op;        /* SETUP_FAILED: the call that failed ("socket", "connect") */

	/* From the socket's error queue (IP_RECVERR / IPV6_RECVERR). */
	int icmp_family;       /* 0 when no ICMP error was queued, else AF_INET / AF_INET6 */
	uint8_t icmp_type;
	uint8_t icmp_code;
	char icmp_from[46];    /* the router or host that sent it, may be "" */

	/* Context for the sentences. */
	enum vp_kind kind;
	const char *address;   /* borrowed: the probed address as text */
	uint16_t port;
	uint32_t timeout_ms;
};

struct vp_verdict_out {
	enum vp_verdict verdict;
	enum vp_reason reason;
	char reason_text[48];          /* VP_REASON_PROTOCOL: the protocol's own reason name */
	int err;                       /* positive errno that the record names, 0 for none */
	char detail[VP_DETAIL_MAX];    /* one sentence: what was seen */
	char hint[VP_HINT_MAX];        /* the likely cause in Cloud Run / VPC terms and the next step */
};

void vp_classify_connect(const struct vp_connect_obs *obs, struct vp_verdict_out *out);

/* The verdict, reason and errno only, without the sentences: formatting them
 * is most of a probe's user-space cost, and only a record needs them. */
void vp_classify_connect_verdict(const struct vp_connect_obs *obs, struct vp_verdict_out *out);

/* Writes out->detail and out->hint for the verdict and reason already in
 * 'out' (probes/explain.c). Called by vp_classify_connect(). */
void vp_explain_connect(const struct vp_connect_obs *obs, struct vp_verdict_out *out);

/* The reason's name: reason_text for VP_REASON_PROTOCOL, else vp_reason_name(). */
const char *vp_verdict_reason(const struct vp_verdict_out *v);

/* "ECONNREFUSED" for ECONNREFUSED; NULL for 0. */
const char *vp_errno_name(int err);

#endif

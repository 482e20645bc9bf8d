/* Remote evidence for a refusal (issue 3). From a diagnostic VM the
 * target's sockets are not visible; the vpcprobe agent on the target's host
 * can see them. When a probe of a target with agent_url is refused, the
 * runner asks that agent GET /api/v1/listeners?port=N (agent/status_api.c
 * answers it) and turns `refused` into `localhost_only` (loopback_bind) or
 * `refused` / bound_other_address with the peer's table as evidence, or
 * says that the peer confirms nothing listens.
 *
 * The reading of the peer's answer and the verdict it gives are pure, so
 * every case is a row of tests/test_peer.c; vp_peer_ask() is the transfer
 * on the loop's shared libcurl multi (agent/curl_uv.h). */
#ifndef VP_PEER_H
#define VP_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "agent/limits.h"
#include "probes/classify.h"
#include "probes/listeners.h"

/* The bounds on an ask and its answer (VP_PEER_BODY_MAX, ...) are in
 * agent/limits.h with the others. */
#define VP_PEER_WHY_MAX 160          /* why the peer could not be asked */

/* The peer's table for one port, as its answer gave it. */
struct vp_peer_answer {
	uint16_t port;
	enum vp_listen_scope scope;       /* as the peer named it */
	bool truncated;                   /* the peer's table was cut short */
	size_t n;
	struct vp_listen_sock socks[VP_PEER_SOCKETS_MAX]; /* comm: printable ASCII only */
};

/* What came of one ask. */
struct vp_peer_reply {
	int status;                       /* 0: 'answer' holds the table; -errno: see 'why' */
	char why[VP_PEER_WHY_MAX];        /* "HTTP 401 (...)", "no answer within 1000 ms", ... */
	struct vp_peer_answer answer;
};

/* Reads the peer's answer to GET /api/v1/listeners?port='port': its HTTP
 * status 'code', its body, and whether a token was sent. 200 with a
 * listener table of exactly that port: status 0. Anything else: a negative
 * status and one phrase in rep->why naming what was wrong (a 401 and
 * whether the token was sent or is wrong, the peer's own {"error": ...},
 * the JSON path of a malformed answer). Never trusts the body: bounded,
 * strictly typed, process names masked to printable ASCII. */
void vp_peer_read_reply(long code, const char *body, size_t len, uint16_t port, bool had_token,
                        struct vp_peer_reply *rep);

/* A refusal of 'addr' ('addr_text' as the record shows it, port
 * a->port) explained by the peer's table 'a' from the agent at
 * 'agent_url': bound to loopback only gives localhost_only / loopback_bind;
 * bound to other addresses only, refused / bound_other_address; nothing
 * listening, refused with the peer's confirmation; a socket that takes
 * 'addr', refused, the reset coming from something in between. Rewrites
 * out->detail and out->hint; 'out' must be a refusal. */
void vp_peer_refine(const struct vp_peer_answer *a, const struct sockaddr *addr,
                    const char *addr_text, const char *agent_url, struct vp_verdict_out *out);

/* The peer could not be asked: the verdict stays, and the detail says why. */
void vp_peer_unasked(const char *addr_text, uint16_t port, const char *agent_url, const char *why,
                     struct vp_verdict_out *out);

struct vp_curlm;
struct vp_peer_req;

typedef void (*vp_peer_cb)(const struct vp_peer_reply *rep, void *arg);

/* Asks the agent at 'base_url' (agent_url: no path) for its sockets on
 * 'port', with "Authorization: Bearer 'token'" when 'token' is not NULL
 * (borrowed for the call only), never through a proxy, never following a
 * redirect, within 'timeout_ms' (connect included). 'done' runs once, from
 * the loop, with the reply; the request frees itself after it returns.
 * Returns 0 or -errno (then 'done' never runs). */
int vp_peer_ask(struct vp_curlm *cm, const char *base_url, const char *token, uint16_t port,
                uint32_t timeout_ms, vp_peer_cb done, void *arg, struct vp_peer_req **ret);

/* Stops an ask in flight without calling 'done', and frees it. */
void vp_peer_cancel(struct vp_peer_req *q);

#endif

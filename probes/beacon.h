/* The beacon (issue 3): a TCP listener on the target VM that answers any HTTP
 * request with 200 and records every connection that arrives, with its
 * source, so that "nothing arrives", "arrives from the connector's range"
 * and "arrives from somewhere else" can be told apart.
 *
 * A beacon faces whoever can reach the port, so it is built for hostile
 * clients: it reads at most VP_BEACON_REQUEST_MAX bytes of a request, never
 * puts a byte of what it read into its answer, gives every connection a
 * deadline, and holds at most a fixed number of connections at once.
 *
 * The request scanner, the CIDR match, the answer and the sentences are
 * pure, so every case is a row of tests/test_beacon.c. */
#ifndef VP_BEACON_H
#define VP_BEACON_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <uv.h>

#include "agent/limits.h"
#include "config/url.h"

/* ---- pure parts ------------------------------------------------------------ */

/* Whether 'sa' (AF_INET or AF_INET6) lies in 'c'. An IPv4-mapped IPv6
 * source (::ffff:a.b.c.d, what a dual-stack [::] listener sees of an IPv4
 * client) matches IPv4 networks, and an IPv4 source matches IPv6 networks
 * under ::ffff:0:0/96, so the family a listener happens to have decides
 * nothing. */
bool vp_cidr_contains(const struct vp_cidr *c, const struct sockaddr *sa);

enum vp_beacon_match {
	VP_BEACON_UNCHECKED,   /* the beacon has no expect_from */
	VP_BEACON_INSIDE,      /* the source is in one of expect_from */
	VP_BEACON_OUTSIDE,     /* in none of them */
	VP_BEACON_MATCH_MAX,
};

/* The first of cidrs[0..n) that contains 'sa': its index into '*which'
 * (-1 when none, or n == 0). */
enum vp_beacon_match vp_beacon_match(const struct vp_cidr *cidrs, size_t n,
                                     const struct sockaddr *sa, int *which);

/* "unchecked", "inside", "outside". */
const char *vp_beacon_match_name(enum vp_beacon_match m);

/* Where a request stands after its first 'len' bytes. */
enum vp_beacon_req {
	VP_BEACON_REQ_MORE,      /* no end of headers yet, under the cap: read on */
	VP_BEACON_REQ_COMPLETE,  /* request line and headers, up to an empty line */
	VP_BEACON_REQ_TOO_LONG,  /* 'cap' bytes without the end of the headers */
	VP_BEACON_REQ_GARBAGE,   /* not HTTP/1: a NUL or control byte, a bad request line */
};

/* Where the scan of one request stands; zero it (or vp_beacon_scan_init)
 * before the first byte. The scan is resumable, so that a client sending
 * one byte at a time costs one look at each byte, not one per read. */
struct vp_beacon_scanner {
	size_t pos;                   /* bytes looked at */
	size_t line;                  /* where the current line starts */
	size_t method_len;            /* bytes of the method so far, before its SP */
	bool in_request_line;         /* past leading empty lines, request line not ended */
	bool request_line_done;
	enum vp_beacon_req state;
};

void vp_beacon_scan_init(struct vp_beacon_scanner *s);

/* Scans buf[0..len), where buf holds every byte of the request so far (the
 * same prefix as at the last call) and len <= cap. Only the bytes up to the
 * end of the headers count; a body is never waited for. The end of the
 * headers is an empty line ending in CRLF, or in a bare LF as in
 * `printf 'GET / HTTP/1.0\n\n' | nc`. Empty lines before the request line
 * are skipped (RFC 9112, 2.2). The request line must be METHOD SP TARGET SP
 * HTTP/D.D with a token method; a NUL, a control byte other than HT, or a
 * CR without LF is GARBAGE at once. Once not MORE, the answer stays. Pure. */
enum vp_beacon_req vp_beacon_scan(struct vp_beacon_scanner *s, const uint8_t *buf, size_t len,
                                  size_t cap);

/* One connection that reached a beacon. */
struct vp_beacon_arrival {
	uint64_t seq;                 /* 1 for the beacon's first arrival */
	struct timespec wall;         /* CLOCK_REALTIME at accept() */
	int family;                   /* AF_INET, also for an IPv4-mapped source */
	char source[INET6_ADDRSTRLEN]; /* "198.18.5.10", "fd00::1"; from getpeername() */
	uint16_t source_port;
	enum vp_beacon_match match;
	char cidr[64];                /* the expect_from network that matched, "" when none */
	bool over_cap;                /* closed at once: the beacon held its maximum */
};

/* "198.18.5.10:40000", "[fd00::1]:40000". */
void vp_beacon_source_text(const struct vp_beacon_arrival *a, char *buf, size_t len);

/* The answer to a request in state 'st' (COMPLETE: 200, TOO_LONG: 431,
 * GARBAGE or a request cut short by EOF, passed as MORE: 400) with a one
 * line body "vpcprobe beacon on AGENT: your connection from SRC:PORT
 * arrived". Nothing of the request goes in: only 'agent' (bytes outside
 * printable ASCII become '?') and the arrival's numeric source. Returns the
 * length written into 'buf' (not NUL-terminated), or -ENOSPC. */
int vp_beacon_response(enum vp_beacon_req st, const char *agent, const struct vp_beacon_arrival *a,
                       char *buf, size_t len);

/* The arrival as one sentence ("connection from 198.18.6.10:40000, outside
 * expect_from (198.18.5.0/28)") and what it means for the path from Cloud
 * Run (the README's Beacon section), for logs and result records. 'expect'
 * is the expect_from list as text (vp_beacon_server_expect_text). */
void vp_beacon_explain(const struct vp_beacon_arrival *a, const char *listen, const char *expect,
                       char *detail, size_t dlen, char *hint, size_t hlen);

/* ---- the listener ---------------------------------------------------------- */

struct vp_beacon_server;

/* Called for every arrival, right after accept(), also for one closed at
 * once over the cap. 'a' is valid during the call (a copy stays in the
 * ring). The server's counters already include it. */
typedef void (*vp_beacon_arrival_cb)(struct vp_beacon_server *b, const struct vp_beacon_arrival *a,
                                     void *arg);

struct vp_beacon_opts {
	const char *listen;           /* borrowed during start: "ADDR:PORT" */
	const struct vp_cidr *expect_from; /* borrowed during start: copied */
	size_t n_expect_from;
	const char *agent;            /* borrowed during start: copied, the name in the answer */
	uint32_t max_conns;           /* 0: VP_BEACON_CONN_DEFAULT */
	uint32_t timeout_ms;          /* per connection; 0: VP_BEACON_TIMEOUT_MS */
	vp_beacon_arrival_cb on_arrival; /* may be NULL */
	void *arg;                    /* the callback's */
};

struct vp_beacon_stats {
	uint64_t arrivals;            /* connections accepted, over the cap included */
	uint64_t inside;              /* from inside expect_from */
	uint64_t outside;             /* from outside it */
	uint64_t answered;            /* answered 200 */
	uint64_t bad_requests;        /* answered 400 or 431 */
	uint64_t timed_out;           /* closed at the deadline, no whole request */
	uint64_t over_cap;            /* accepted and closed at once: the cap was reached */
	uint64_t accept_errors;       /* accept() failed (EMFILE and the like) */
	uint64_t logs_suppressed;     /* arrivals vp_beacon_server_log_gate() kept quiet */
	size_t active;                /* connections held now */
	size_t active_max;            /* the most held at once */
};

/* Binds o->listen and listens on 'loop'. 0, or -errno with a message naming
 * the address and the failed call in 'err'; '*ret' is set only on success. */
int vp_beacon_server_start(uv_loop_t *loop, const struct vp_beacon_opts *o,
                           struct vp_beacon_server **ret, char *err, size_t errlen);

/* Stops listening and closes every connection. The server frees itself
 * once its last handle is closed, then runs 'closed' (may be NULL) with
 * 'arg'. No arrival callback runs after this. Accepts NULL. */
void vp_beacon_server_close(struct vp_beacon_server *b, void (*closed)(void *arg), void *arg);

/* Whether 'b' runs with these settings: then a reload keeps it. */
bool vp_beacon_server_same(const struct vp_beacon_server *b, const char *listen,
                           const struct vp_cidr *expect_from, size_t n, const char *agent);

const char *vp_beacon_server_listen(const struct vp_beacon_server *b);
/* The expect_from networks as written, comma-separated ("" when none). */
void vp_beacon_server_expect_text(const struct vp_beacon_server *b, char *buf, size_t len);
void vp_beacon_server_stats(const struct vp_beacon_server *b, struct vp_beacon_stats *ret);

/* The ring of the last VP_BEACON_ARRIVALS_MAX arrivals, for the status
 * page: i = 0 is the oldest kept, count - 1 the newest; NULL past the end.
 * A pointer is valid until the next loop turn. */
size_t vp_beacon_server_arrival_count(const struct vp_beacon_server *b);
const struct vp_beacon_arrival *vp_beacon_server_arrival(const struct vp_beacon_server *b, size_t i);

/* For logging every arrival without letting a flood flood the log: true
 * for at most VP_BEACON_LOG_PER_S calls per second of loop time, with the
 * number kept quiet since the last true in '*skipped'. */
bool vp_beacon_server_log_gate(struct vp_beacon_server *b, uint64_t *skipped);

#endif

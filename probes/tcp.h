/* The TCP connect probe: one socket, one deadline timer, one outcome. */
#ifndef VP_TCP_H
#define VP_TCP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "probes/classify.h"

struct vp_tcp_probe;
typedef void (*vp_tcp_done_cb)(struct vp_tcp_probe *p);
struct vp_proto;
struct vp_target;
struct vp_tls;

struct vp_tcp_probe {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_connect_t connect_req;
	int pending_close;         /* handles whose close_cb has not run yet */
	bool tcp_open;             /* 'tcp' was initialised and must be closed */
	bool decided;              /* 'obs' holds the outcome */
	uint64_t start_ns;         /* uv_hrtime() before socket() */
	uint64_t deadline_ns;
	uint64_t connected_ns;     /* 0 unless the handshake completed */
	uint64_t end_ns;
	struct vp_connect_obs obs;

	/* The protocol phase (probes/proto.h); all zero for a plain connect. */
	const struct vp_proto *proto;  /* borrowed, NULL: decide at the handshake */
	void *proto_state;         /* owned by 'proto' */
	const struct vp_target *target; /* borrowed, may be NULL: user, password, tls settings */
	bool proto_connects;       /* 'proto' connects the socket itself (vp_proto_connects) */
	uint8_t *rbuf;             /* owned: bytes read, not yet consumed */
	size_t rlen;
	size_t rcap;               /* grows to VP_REPLY_MAX at most */
	size_t rtotal;             /* bytes read in all */
	bool proto_decided;        /* 'proto_out' holds the verdict */
	struct vp_verdict_out *proto_out; /* owned, allocated when the protocol decides */
	/* Owned, NULL without TLS (probes/tls.h): once active, the bytes read
	 * and sent go through it, and rbuf holds plaintext only. Freed after
	 * 'done', which reads it for the result. */
	struct vp_tls *tls;

	vp_tcp_done_cb done;       /* runs after the last close callback */
	/* When set, called instead of closing at once: the owner calls
	 * vp_tcp_probe_close() later, e.g. from a uv_check handle. Closing a
	 * handle inside an I/O callback makes libuv scan the whole batch of
	 * epoll events for its descriptor (uv__platform_invalidate_fd). */
	void (*close_later)(struct vp_tcp_probe *p);
	struct vp_tcp_probe *next_close; /* the owner's list of probes to close */
	void *data;                /* the owner's */
};

/* Starts a connect to 'sa' (AF_INET or AF_INET6), then runs p->proto, if
 * set, over the connection. Never fails: every outcome,
 * including a socket() or connect() error, ends in 'done', which runs once
 * from a later loop turn after both handles are closed. 'p' must stay valid
 * until then. obs.kind/address/port/timeout_ms are filled by the caller. */
void vp_tcp_probe_start(uv_loop_t *loop, struct vp_tcp_probe *p, const struct sockaddr *sa,
                        uint32_t timeout_ms, vp_tcp_done_cb done);

/* Whether 'proto' connects and talks on the socket itself, through a dup()
 * of it, instead of through the probe (probes/proto.c). The probe then opens
 * the socket (IP_RECVERR set) and calls proto->start at once; it neither
 * connects nor reads, and the protocol reports a failed connect with
 * vp_tcp_connect_failed(). The http probe works so: libcurl 7.88 cannot
 * take a socket that is already connected (it calls connect() on it even
 * when told CURL_SOCKOPT_ALREADY_CONNECTED, curl issue #10626, fixed in
 * 8.0), so it connects the probe's own socket. */
bool vp_proto_connects(const struct vp_proto *proto);

/* For a protocol that connects: its connect failed with 'err' (a positive
 * errno). With 'op' NULL it failed on the wire and is classified exactly
 * like the probe's own connect, ICMP error queue included; with 'op' (the
 * call that failed) the agent could not try. Ends the probe. */
void vp_tcp_connect_failed(struct vp_tcp_probe *p, int err, const char *op);

/* For probes/tls.c: writes 'len' bytes (copied) to the socket as they are,
 * where vp_tcp_send() would encrypt them. Returns 0 or -errno. */
int vp_tcp_send_raw(struct vp_tcp_probe *p, const void *buf, size_t len);

/* For probes/tls.c: appends 'len' bytes of plaintext to the read buffer and
 * runs the protocol on them, as a read of those bytes would, the 64 KiB
 * bound included. Stops early once the probe has decided. */
void vp_tcp_deliver(struct vp_tcp_probe *p, const uint8_t *buf, size_t len);

/* Closes a finished probe's handles (see close_later). */
void vp_tcp_probe_close(struct vp_tcp_probe *p);

/* Ends the probe at its deadline, as its own timer would, when 'now_ns'
 * (uv_hrtime()) is at or past p->deadline_ns and the probe has not decided;
 * otherwise does nothing. For an owner that watches deadlines with a finer
 * clock than libuv's millisecond timers (the engine's timerfd): the probe's
 * timer stays armed as the backstop. */
void vp_tcp_probe_expire(struct vp_tcp_probe *p, uint64_t now_ns);

/* Ends the probe early (as a deadline); 'done' still runs. */
void vp_tcp_probe_cancel(struct vp_tcp_probe *p);

/* The verdict of a finished probe: the protocol's when it decided, else the
 * classifier's reading of the connect. Returns whether 'out' already holds
 * its detail and hint (the protocol's do; the connect's are written by
 * vp_explain_connect() when wanted). */
bool vp_tcp_probe_verdict(const struct vp_tcp_probe *p, struct vp_verdict_out *out);

#endif

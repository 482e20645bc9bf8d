/* The protocol phase of a probe: after the TCP handshake, a protocol module
 * (postgres, redis, ...) writes its request and reads the reply through the
 * probe, and decides the verdict. Modules never touch the socket or the
 * loop; they see bytes in a bounded buffer. */
#ifndef VP_PROTO_H
#define VP_PROTO_H

#include <stddef.h>

#include "config/url.h"
#include "probes/tcp.h"

struct vp_proto {
	const char *name;
	/* The handshake completed: send the first request with vp_tcp_send().
	 * Returns 0, or -errno to end the probe as the agent's local_error. */
	int (*start)(struct vp_tcp_probe *p);
	/* Bytes arrived: p->rbuf[0..p->rlen). Consume what was parsed with
	 * vp_tcp_consume(); call vp_tcp_decide() once the answer is known. If
	 * neither happens the probe waits for more, up to VP_REPLY_MAX bytes. */
	void (*on_data)(struct vp_tcp_probe *p);
	/* Frees p->proto_state. May be NULL. */
	void (*done)(struct vp_tcp_probe *p);
};

/* The protocol module for a kind, or NULL when the kind is probed at the TCP
 * level only. */
const struct vp_proto *vp_proto_for(enum vp_kind kind);

/* Queues 'len' bytes (copied) for the peer. Returns 0 or -errno. */
int vp_tcp_send(struct vp_tcp_probe *p, const void *buf, size_t len);
/* Drops the first 'n' bytes of the read buffer. */
void vp_tcp_consume(struct vp_tcp_probe *p, size_t n);
/* The protocol's verdict; ends the probe. Only the first call counts. */
void vp_tcp_decide(struct vp_tcp_probe *p, const struct vp_verdict_out *v);

#endif

/* The TCP connect probe.
 *
 * One socket and one timer per probe. Every exit goes through decide(),
 * which records the outcome once and closes both handles; 'done' runs from
 * the last close callback, so the owner may reuse the probe from there. */
#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>

#include "agent/limits.h"
#include "probes/proto.h"
#include "probes/tcp.h"
#include "probes/tls.h"

#define NS_PER_MS 1000000ULL

static void on_close(uv_handle_t *h)
{
	struct vp_tcp_probe *p = h->data;

	struct vp_verdict_out *v;
	struct vp_tls *tls;

	if (--p->pending_close > 0)
		return;
	if (p->proto && p->proto->done)
		p->proto->done(p);
	free(p->rbuf);
	p->rbuf = NULL;
	p->rlen = p->rcap = 0;
	/* 'done' reads the verdict and the TLS outcome, and may start the next
	 * probe in 'p'. */
	v = p->proto_out;
	tls = p->tls;
	p->done(p);
	free(v);
	vp_tls_free(tls);
}

/* Reads the ICMP error that the kernel queued for this socket, if any
 * (IP_RECVERR / IPV6_RECVERR, see ip(7) and ipv6(7)). Only errors that came
 * from the network (ICMP or ICMPv6) are kept; locally made ones are not
 * evidence about the path. */
static void read_icmp_error(struct vp_tcp_probe *p)
{
	char payload[64];
	char control[512];
	struct sockaddr_storage from;
	struct iovec iov = { .iov_base = payload, .iov_len = sizeof(payload) };
	struct msghdr msg = {
		.msg_name = &from, .msg_namelen = sizeof(from),
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control, .msg_controllen = sizeof(control),
	};
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)&p->tcp, &fd) < 0)
		return;
	if (recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
		return; /* nothing queued: the errno alone decides */

	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		const struct sock_extended_err *ee;
		const struct sockaddr *off;
		bool v4 = c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR;
		bool v6 = c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR;

		if (!v4 && !v6)
			continue;
		ee = (const struct sock_extended_err *)CMSG_DATA(c);
		if (ee->ee_origin != SO_EE_ORIGIN_ICMP && ee->ee_origin != SO_EE_ORIGIN_ICMP6)
			continue;
		p->obs.icmp_family = ee->ee_origin == SO_EE_ORIGIN_ICMP ? AF_INET : AF_INET6;
		p->obs.icmp_type = ee->ee_type;
		p->obs.icmp_code = ee->ee_code;
		off = SO_EE_OFFENDER(ee);
		if (off->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)off)->sin_addr,
			          p->obs.icmp_from, sizeof(p->obs.icmp_from));
		else if (off->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)off)->sin6_addr,
			          p->obs.icmp_from, sizeof(p->obs.icmp_from));
		return;
	}
}

/* Closes both handles; 'done' runs from the last close callback. */
void vp_tcp_probe_close(struct vp_tcp_probe *p)
{
	p->pending_close++;
	uv_close((uv_handle_t *)&p->timer, on_close);
	if (p->tcp_open) {
		/* Closing cancels a pending connect or write: their callbacks see
		 * UV_ECANCELED before on_close runs. */
		p->pending_close++;
		uv_close((uv_handle_t *)&p->tcp, on_close);
	}
}

/* The outcome is known: stop the clock, and close now or let the owner
 * close from a better place (see vp_tcp_probe.close_later). */
static void finish(struct vp_tcp_probe *p)
{
	p->end_ns = uv_hrtime();
	uv_timer_stop(&p->timer);
	if (p->close_later)
		p->close_later(p);
	else
		vp_tcp_probe_close(p);
}

/* The outcome of the connect itself. */
static void decide(struct vp_tcp_probe *p, enum vp_connect_event ev, int err, const char *op)
{
	if (p->decided)
		return;
	p->decided = true;
	p->obs.event = ev;
	p->obs.err = err;
	p->obs.op = op;
	if (ev == VP_CONNECT_FAILED)
		read_icmp_error(p);
	finish(p);
}

void vp_tcp_decide(struct vp_tcp_probe *p, const struct vp_verdict_out *v)
{
	if (p->decided)
		return;
	p->decided = true;
	/* Allocated only here: a plain connect probe never carries a verdict
	 * buffer, which keeps 16,000 probes in flight small. */
	p->proto_out = malloc(sizeof(*p->proto_out));
	if (!p->proto_out) {
		p->obs.event = VP_CONNECT_SETUP_FAILED;
		p->obs.err = ENOMEM;
		p->obs.op = "malloc";
		finish(p);
		return;
	}
	p->proto_decided = true;
	*p->proto_out = *v;
	/* Every failure carries a hint; a protocol that has no better one gets
	 * this. */
	if (v->verdict != VP_VERDICT_OK && !v->hint[0])
		snprintf(p->proto_out->hint, sizeof(p->proto_out->hint),
		         "The %s service answered, but not as expected: check that the port belongs to "
		         "the service you expect, and its logs.", p->proto->name);
	finish(p);
}

/* The protocol phase ended without the protocol deciding. */
static void decide_phase(struct vp_tcp_probe *p, enum vp_verdict verdict, enum vp_reason reason,
                         int err, const char *what)
{
	struct vp_verdict_out v = { .verdict = verdict, .reason = reason, .err = err };

	/* TLS hook: during a TLS handshake this is the handshake's failure. */
	if (vp_tls_active(p->tls) && vp_tls_phase_end(p, &v)) {
		vp_tcp_decide(p, &v);
		return;
	}
	snprintf(v.detail, sizeof(v.detail), "%s after the handshake, %zu bytes read", what, p->rtotal);
	if (verdict == VP_VERDICT_RESET || verdict == VP_VERDICT_TIMEOUT)
		snprintf(v.hint, sizeof(v.hint),
		         "The port accepts connections but the %s service did not answer: it may be "
		         "another service on this port, overloaded, or limiting connections "
		         "(max_connections, maxclients); check its logs on the target.", p->proto->name);
	else
		snprintf(v.hint, sizeof(v.hint),
		         "The reply is not %s's: check that the port belongs to the service you expect.",
		         p->proto->name);
	vp_tcp_decide(p, &v);
}

/* Grows the read buffer to hold 'more' bytes past rlen, up to VP_REPLY_MAX;
 * returns the room there is (0 when full, or when out of memory). */
static size_t room(struct vp_tcp_probe *p, size_t more)
{
	size_t want = p->rlen + more;

	if (want > VP_REPLY_MAX)
		want = VP_REPLY_MAX;
	if (want > p->rcap) {
		uint8_t *n = realloc(p->rbuf, want);
		if (n) {
			p->rbuf = n;
			p->rcap = want;
		}
	}
	return p->rcap - p->rlen;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct vp_tcp_probe *p = h->data;
	size_t n = room(p, VP_REPLY_CHUNK);   /* before rbuf is read: it may move */

	(void)suggested;
	/* A zero-length buffer makes libuv report UV_ENOBUFS to on_read. */
	*buf = uv_buf_init((char *)p->rbuf + p->rlen, (unsigned)n);
}

/* 'n' bytes of reply were added at rbuf[rlen]: the protocol reads them. */
static void got_bytes(struct vp_tcp_probe *p, size_t n)
{
	p->rlen += n;
	p->rtotal += n;
	p->proto->on_data(p);
	if (!p->decided && p->rlen >= VP_REPLY_MAX)
		decide_phase(p, VP_VERDICT_PROTOCOL_ERROR, VP_REASON_UNEXPECTED_REPLY, 0,
		             "reply larger than the 64 KiB bound");
}

void vp_tcp_deliver(struct vp_tcp_probe *p, const uint8_t *buf, size_t len)
{
	while (len > 0 && !p->decided) {
		size_t n = room(p, len);

		if (n == 0) {
			/* Never full here: got_bytes() decides at the bound. */
			decide(p, VP_CONNECT_SETUP_FAILED, ENOMEM, "read");
			return;
		}
		if (n > len)
			n = len;
		memcpy(p->rbuf + p->rlen, buf, n);
		got_bytes(p, n);
		buf += n;
		len -= n;
	}
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct vp_tcp_probe *p = s->data;

	(void)buf;
	if (p->decided)
		return;
	if (nread > 0 && vp_tls_active(p->tls)) {
		/* TLS hook: the bytes are ciphertext; the plaintext they carry
		 * comes back through vp_tcp_deliver(). */
		vp_tls_on_read(p, (size_t)nread);
	} else if (nread > 0) {
		got_bytes(p, (size_t)nread);
	} else if (nread == UV_EOF) {
		decide_phase(p, VP_VERDICT_RESET, VP_REASON_CLOSED_BEFORE_REPLY, 0,
		             "the peer closed the connection");
	} else if (nread == UV_ENOBUFS) {
		decide(p, VP_CONNECT_SETUP_FAILED, ENOMEM, "read");
	} else if (nread < 0) {
		decide_phase(p, VP_VERDICT_RESET, VP_REASON_RESET_BEFORE_REPLY, (int)-nread,
		             "the peer reset the connection");
	}
}

static void start_proto(struct vp_tcp_probe *p)
{
	int r = uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);

	if (r == 0)
		r = p->proto->start(p);
	if (r < 0)
		decide(p, VP_CONNECT_SETUP_FAILED, -r, "read");
}

struct send_req {
	uv_write_t req;
	size_t len;
	char data[];
};

static void on_written(uv_write_t *req, int status)
{
	struct vp_tcp_probe *p = req->handle->data;

	free(req);
	if (status < 0 && status != UV_ECANCELED && !p->decided)
		decide_phase(p, VP_VERDICT_RESET, VP_REASON_RESET_BEFORE_REPLY, -status,
		             "sending the request failed");
}

int vp_tcp_send(struct vp_tcp_probe *p, const void *buf, size_t len)
{
	/* TLS hook: the protocol's bytes are encrypted first. */
	if (vp_tls_active(p->tls))
		return vp_tls_send(p, buf, len);
	return vp_tcp_send_raw(p, buf, len);
}

int vp_tcp_send_raw(struct vp_tcp_probe *p, const void *buf, size_t len)
{
	struct send_req *w;
	uv_buf_t b;
	int r;

	if (len > VP_SEND_MAX)
		return -EMSGSIZE;
	w = malloc(sizeof(*w) + len);
	if (!w)
		return -ENOMEM;
	memcpy(w->data, buf, len);
	w->len = len;
	b = uv_buf_init(w->data, (unsigned)len);
	r = uv_write(&w->req, (uv_stream_t *)&p->tcp, &b, 1, on_written);
	if (r < 0)
		free(w);
	return r;
}

void vp_tcp_consume(struct vp_tcp_probe *p, size_t n)
{
	if (n >= p->rlen) {
		p->rlen = 0;
		return;
	}
	memmove(p->rbuf, p->rbuf + n, p->rlen - n);
	p->rlen -= n;
}

static void on_connect(uv_connect_t *req, int status)
{
	struct vp_tcp_probe *p = req->data;

	if (status == UV_ECANCELED)
		return; /* we closed the socket after deciding */
	if (status == 0) {
		p->connected_ns = uv_hrtime();
		if (p->proto)
			start_proto(p);
		else
			decide(p, VP_CONNECT_DONE, 0, NULL);
	} else {
		decide(p, VP_CONNECT_FAILED, -status, "connect");
	}
}

/* Milliseconds of loop time from now until the first loop millisecond at
 * or after 'deadline_ns'. */
static uint64_t deadline_delay_ms(uv_loop_t *loop, uint64_t deadline_ns)
{
	uint64_t due_ms = (deadline_ns + NS_PER_MS - 1) / NS_PER_MS;
	uint64_t now_ms = uv_now(loop);

	return due_ms > now_ms ? due_ms - now_ms : 0;
}

/* Whether a socket that a protocol connects has completed its handshake:
 * getpeername() says ENOTCONN while the SYN is out (SYN_SENT) or after a
 * failure (CLOSE). */
static bool peer_connected(struct vp_tcp_probe *p)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	uv_os_fd_t fd;

	return uv_fileno((uv_handle_t *)&p->tcp, &fd) == 0 &&
	       getpeername(fd, (struct sockaddr *)&peer, &len) == 0;
}

/* The deadline has passed at 'now': the verdict is what the probe saw by
 * then. */
static void expire(struct vp_tcp_probe *p, uint64_t now)
{
	/* The protocol tells the exact time, if it knows it, before 'done'. */
	if (!p->connected_ns && p->proto_connects && p->tcp_open && peer_connected(p))
		p->connected_ns = now;
	if (p->connected_ns)
		decide_phase(p, VP_VERDICT_TIMEOUT, VP_REASON_REPLY_TIMEOUT, ETIMEDOUT,
		             "no complete reply before the deadline");
	else
		decide(p, VP_CONNECT_DEADLINE, ETIMEDOUT, NULL);
}

static void on_deadline(uv_timer_t *t)
{
	struct vp_tcp_probe *p = t->data;
	uint64_t now = uv_hrtime();

	/* The loop's clock is in whole milliseconds and may come from the coarse
	 * monotonic clock, so it can run up to a tick behind uv_hrtime(): a
	 * timer it fires may still be early. A verdict before its deadline is
	 * wrong, so wait out the rest. */
	if (now < p->deadline_ns) {
		uint64_t rest = (p->deadline_ns - now + NS_PER_MS - 1) / NS_PER_MS;

		uv_timer_start(t, on_deadline, rest, 0);
		return;
	}
	expire(p, now);
}

void vp_tcp_probe_expire(struct vp_tcp_probe *p, uint64_t now_ns)
{
	if (!p->decided && now_ns >= p->deadline_ns)
		expire(p, now_ns);
}

static int set_recverr(struct vp_tcp_probe *p, int family)
{
	uv_os_fd_t fd;
	int one = 1;
	int r;

	r = uv_fileno((uv_handle_t *)&p->tcp, &fd);
	if (r < 0)
		return -r;
	if (family == AF_INET6)
		r = setsockopt(fd, SOL_IPV6, IPV6_RECVERR, &one, sizeof(one));
	else
		r = setsockopt(fd, SOL_IP, IP_RECVERR, &one, sizeof(one));
	return r < 0 ? errno : 0;
}

void vp_tcp_probe_start(uv_loop_t *loop, struct vp_tcp_probe *p, const struct sockaddr *sa,
                        uint32_t timeout_ms, vp_tcp_done_cb done)
{
	int r;

	p->done = done;
	p->pending_close = 0;
	p->tcp_open = false;
	p->decided = false;
	p->connected_ns = 0;
	p->proto_state = NULL;
	p->tls = NULL;
	p->rbuf = NULL;
	p->rlen = p->rcap = p->rtotal = 0;
	p->proto_decided = false;
	p->proto_out = NULL;
	p->proto_connects = p->proto && vp_proto_connects(p->proto);
	p->obs.icmp_family = 0;
	p->obs.icmp_from[0] = '\0';

	uv_timer_init(loop, &p->timer); /* cannot fail */
	p->timer.data = p;
	/* The loop's cached time may be stale by everything this turn has done
	 * so far; refresh it, then aim the timer at the first loop millisecond
	 * at or after the deadline. When the loop clock is uv_hrtime()'s
	 * clock truncated to milliseconds, that timer never fires early and
	 * is late by less than a millisecond; when libuv uses the coarse clock
	 * instead, on_deadline() waits out any rest. */
	uv_update_time(loop);
	p->start_ns = uv_hrtime();
	p->deadline_ns = p->start_ns + (uint64_t)timeout_ms * NS_PER_MS;
	uv_timer_start(&p->timer, on_deadline, deadline_delay_ms(loop, p->deadline_ns), 0);

	r = uv_tcp_init_ex(loop, &p->tcp, sa->sa_family);
	if (r < 0) {
		/* libuv leaves a handle whose socket() failed uninitialised. */
		decide(p, VP_CONNECT_SETUP_FAILED, -r, "socket");
		return;
	}
	p->tcp_open = true;
	p->tcp.data = p;

	r = set_recverr(p, sa->sa_family);
	if (r) {
		decide(p, VP_CONNECT_SETUP_FAILED, r, "setsockopt");
		return;
	}
	if (p->proto_connects) {
		r = p->proto->start(p);
		if (r < 0)
			decide(p, VP_CONNECT_SETUP_FAILED, -r, p->proto->name);
		return;
	}
	p->connect_req.data = p;
	r = uv_tcp_connect(&p->connect_req, &p->tcp, sa, on_connect);
	if (r < 0)
		decide(p, VP_CONNECT_SETUP_FAILED, -r, "connect");
}

void vp_tcp_connect_failed(struct vp_tcp_probe *p, int err, const char *op)
{
	decide(p, op ? VP_CONNECT_SETUP_FAILED : VP_CONNECT_FAILED, err, op ? op : "connect");
}

void vp_tcp_probe_cancel(struct vp_tcp_probe *p)
{
	decide(p, VP_CONNECT_DEADLINE, ECANCELED, NULL);
}

bool vp_tcp_probe_verdict(const struct vp_tcp_probe *p, struct vp_verdict_out *out)
{
	if (p->proto_decided) {
		*out = *p->proto_out;
		return true;
	}
	vp_classify_connect_verdict(&p->obs, out);
	return false;
}

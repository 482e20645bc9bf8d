/* The beacon: the pure parts first (CIDR match, request scan, answer,
 * sentences), then the listener on the loop. See probes/beacon.h. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probes/beacon.h"

/* ---- CIDR match ------------------------------------------------------------ */

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* The source as 16 bytes of IPv6 (IPv4 mapped) and, when it is IPv4 or
 * IPv4-mapped, as 4 bytes of IPv4. */
static bool source_bytes(const struct sockaddr *sa, uint8_t v6[16], uint8_t v4[4], bool *has_v4)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		memcpy(v4, &s4->sin_addr, 4);
		memcpy(v6, v4mapped_prefix, 12);
		memcpy(v6 + 12, v4, 4);
		*has_v4 = true;
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		memcpy(v6, &s6->sin6_addr, 16);
		*has_v4 = !memcmp(v6, v4mapped_prefix, 12);
		if (*has_v4)
			memcpy(v4, v6 + 12, 4);
		return true;
	}
	return false;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned whole = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, whole))
		return false;
	if (rest == 0)
		return true;
	return ((a[whole] ^ b[whole]) & (uint8_t)(0xff00u >> rest)) == 0;
}

bool vp_cidr_contains(const struct vp_cidr *c, const struct sockaddr *sa)
{
	uint8_t v6[16], v4[4];
	bool has_v4 = false;

	if (!source_bytes(sa, v6, v4, &has_v4))
		return false;
	if (c->family == AF_INET)
		return has_v4 && c->prefix <= 32 && prefix_equal(c->addr, v4, c->prefix);
	if (c->family == AF_INET6)
		return c->prefix <= 128 && prefix_equal(c->addr, v6, c->prefix);
	return false;
}

enum vp_beacon_match vp_beacon_match(const struct vp_cidr *cidrs, size_t n,
                                     const struct sockaddr *sa, int *which)
{
	*which = -1;
	if (n == 0)
		return VP_BEACON_UNCHECKED;
	for (size_t i = 0; i < n; i++) {
		if (vp_cidr_contains(&cidrs[i], sa)) {
			*which = (int)i;
			return VP_BEACON_INSIDE;
		}
	}
	return VP_BEACON_OUTSIDE;
}

const char *vp_beacon_match_name(enum vp_beacon_match m)
{
	static const char *const names[VP_BEACON_MATCH_MAX] = {
		[VP_BEACON_UNCHECKED] = "unchecked",
		[VP_BEACON_INSIDE] = "inside",
		[VP_BEACON_OUTSIDE] = "outside",
	};

	return m < VP_BEACON_MATCH_MAX ? names[m] : "invalid";
}

/* ---- the request ----------------------------------------------------------- */

void vp_beacon_scan_init(struct vp_beacon_scanner *s)
{
	memset(s, 0, sizeof(*s));
	s->state = VP_BEACON_REQ_MORE;
}

/* RFC 9110, 5.6.2: tchar. */
static bool is_tchar(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The request line buf[from..to), without its CR or LF: METHOD SP TARGET
 * SP HTTP/D.D. The method was checked byte by byte already. */
static bool request_line_ok(const uint8_t *buf, size_t from, size_t to)
{
	const uint8_t *line = buf + from, *v;
	size_t n = to - from, sp1 = 0, ver;

	while (sp1 < n && line[sp1] != ' ')
		sp1++;
	ver = n;
	while (ver > sp1 && line[ver - 1] != ' ')
		ver--;                          /* line[ver - 1] is the last SP */
	if (sp1 == 0 || ver <= sp1 + 2)
		return false;                   /* no method, target or version */
	v = line + ver;
	return n - ver == 8 && !memcmp(v, "HTTP/", 5) && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
	       v[7] >= '0' && v[7] <= '9';
}

/* One byte of the request at 'i'; returns the state after it. */
static enum vp_beacon_req scan_byte(struct vp_beacon_scanner *s, const uint8_t *buf, size_t i,
                                    size_t len)
{
	uint8_t c = buf[i];

	if (c == '\r') {
		if (i + 1 < len && buf[i + 1] != '\n')
			return VP_BEACON_REQ_GARBAGE;   /* a bare CR */
		return VP_BEACON_REQ_MORE;          /* the LF ends the line */
	}
	if (c == '\n') {
		size_t start = s->line;
		size_t end = i > start && buf[i - 1] == '\r' ? i - 1 : i;

		s->line = i + 1;
		if (!s->in_request_line && !s->request_line_done)
			return VP_BEACON_REQ_MORE;      /* an empty line before the request */
		if (s->in_request_line) {
			s->in_request_line = false;
			s->request_line_done = true;
			return request_line_ok(buf, start, end) ? VP_BEACON_REQ_MORE : VP_BEACON_REQ_GARBAGE;
		}
		return end == start ? VP_BEACON_REQ_COMPLETE : VP_BEACON_REQ_MORE;
	}
	if ((c < 0x20 && c != '\t') || c == 0x7f)
		return VP_BEACON_REQ_GARBAGE;
	if (!s->request_line_done && !s->in_request_line) {
		s->in_request_line = true;
		s->method_len = 0;
	}
	if (s->in_request_line && s->method_len != SIZE_MAX) {
		if (c == ' ')
			s->method_len = SIZE_MAX;       /* the method ended */
		else if (!is_tchar(c) || ++s->method_len > VP_BEACON_METHOD_MAX)
			return VP_BEACON_REQ_GARBAGE;
	}
	return VP_BEACON_REQ_MORE;
}

enum vp_beacon_req vp_beacon_scan(struct vp_beacon_scanner *s, const uint8_t *buf, size_t len,
                                  size_t cap)
{
	if (len > cap)
		len = cap;
	while (s->state == VP_BEACON_REQ_MORE && s->pos < len) {
		/* A CR is decided by the byte after it: wait for that byte. */
		if (buf[s->pos] == '\r' && s->pos + 1 == len)
			break;
		s->state = scan_byte(s, buf, s->pos, len);
		s->pos++;
	}
	if (s->state == VP_BEACON_REQ_MORE && len >= cap)
		s->state = VP_BEACON_REQ_TOO_LONG;
	return s->state;
}

/* ---- the answer and the sentences ------------------------------------------ */

void vp_beacon_source_text(const struct vp_beacon_arrival *a, char *buf, size_t len)
{
	if (a->family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", a->source, (unsigned)a->source_port);
	else
		snprintf(buf, len, "%s:%u", a->source, (unsigned)a->source_port);
}

/* Printable ASCII only: the agent's name goes into an HTTP body that a
 * terminal may show (curl prints it as it is). */
static void ascii_safe(char *dst, size_t len, const char *src)
{
	size_t o = 0;

	for (; src && *src && o + 1 < len; src++)
		dst[o++] = *src >= 0x20 && *src < 0x7f ? *src : '?';
	dst[o] = '\0';
}

int vp_beacon_response(enum vp_beacon_req st, const char *agent, const struct vp_beacon_arrival *a,
                       char *buf, size_t len)
{
	char name[VP_NAME_MAX], src[INET6_ADDRSTRLEN + 8], body[VP_NAME_MAX + 160];
	const char *status = "200 OK", *note = "";
	int nb, n;

	if (st == VP_BEACON_REQ_TOO_LONG) {
		status = "431 Request Header Fields Too Large";
		note = ", but its request was longer than the beacon reads";
	} else if (st != VP_BEACON_REQ_COMPLETE) {
		status = "400 Bad Request";
		note = ", but what it sent is not an HTTP request";
	}
	ascii_safe(name, sizeof(name), agent);
	vp_beacon_source_text(a, src, sizeof(src));
	nb = snprintf(body, sizeof(body), "vpcprobe beacon on %s: your connection from %s arrived%s\n",
	              name, src, note);
	if (nb < 0 || (size_t)nb >= sizeof(body))
		return -ENOSPC;
	n = snprintf(buf, len, "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
	             "Content-Length: %d\r\nConnection: close\r\nCache-Control: no-store\r\n"
	             "X-Content-Type-Options: nosniff\r\n\r\n%s", status, nb, body);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}

void vp_beacon_explain(const struct vp_beacon_arrival *a, const char *listen, const char *expect,
                       char *detail, size_t dlen, char *hint, size_t hlen)
{
	char src[INET6_ADDRSTRLEN + 8];
	const char *cap = a->over_cap ? "; closed at once: the beacon held its most connections" : "";

	vp_beacon_source_text(a, src, sizeof(src));
	if (a->match == VP_BEACON_INSIDE) {
		snprintf(detail, dlen, "connection from %s arrived at %s, inside expect_from (%s)%s", src,
		         listen, a->cidr, cap);
		snprintf(hint, hlen, "Traffic from the expected range reaches this VM: no firewall rule or "
		         "route drops it. If the service on this port refuses Cloud Run, its bind address "
		         "(`vpcprobe listeners PORT`) or the service itself is at fault.");
	} else if (a->match == VP_BEACON_OUTSIDE) {
		snprintf(detail, dlen, "connection from %s arrived at %s, outside expect_from (%s)%s", src,
		         listen, expect ? expect : "", cap);
		snprintf(hint, hlen, "Traffic reaches this VM, but not from the range you expected: Cloud "
		         "Run's egress (--vpc-egress, the connector or the Direct VPC egress subnet) or a "
		         "NAT on the path is not what you think. Firewall rules must admit %s's range.",
		         a->source);
	} else {
		snprintf(detail, dlen, "connection from %s arrived at %s%s", src, listen, cap);
		snprintf(hint, hlen, "Traffic from %s reaches this VM: no firewall rule or route drops it. "
		         "Give expect_from (the connector's /28) to tell whether it came through the "
		         "connector.", a->source);
	}
}

/* ---- the listener ---------------------------------------------------------- */

/* One held connection. Freed after both handles' close callbacks. */
struct conn {
	uv_tcp_t tcp;                     /* data: this */
	uv_timer_t timer;                 /* the deadline; data: this */
	uv_write_t wreq;
	uv_shutdown_t sreq;
	struct vp_beacon_server *b;       /* borrowed */
	struct conn *prev, *next;         /* b->conns */
	int pending_close;                /* handles whose close_cb has not run */
	bool closing;
	bool answered;
	size_t len;                       /* bytes in 'in' */
	struct vp_beacon_scanner scan;
	struct vp_beacon_arrival arrival; /* its source, for the answer */
	char out[VP_BEACON_RESPONSE_MAX];
	uint8_t in[VP_BEACON_REQUEST_MAX];
};

/* A handle for a connection over the cap: accepted, then closed at once. */
struct reject {
	uv_tcp_t tcp;                     /* data: this */
	struct vp_beacon_server *b;       /* borrowed */
	bool busy;                        /* closing */
};

struct vp_beacon_server {
	uv_loop_t *loop;                  /* borrowed */
	uv_tcp_t listener;                /* data: this */
	bool listener_open;               /* its close_cb has not run */
	char *listen;                     /* owned */
	char *agent;                      /* owned */
	struct vp_cidr *expect;           /* owned array, NULL when n_expect == 0 */
	size_t n_expect;
	uint32_t max_conns;
	uint32_t timeout_ms;
	vp_beacon_arrival_cb on_arrival;
	void *arg;                        /* the callback's */
	struct conn *conns;               /* owned list of held connections */
	struct reject rejects[VP_BEACON_REJECT_SLOTS];
	size_t rejects_busy;
	/* No handle was free for a connection that libuv accepted: it keeps
	 * it and stops polling the listener until the next uv_accept(). */
	bool accept_waiting;
	struct vp_beacon_arrival *ring;   /* owned: VP_BEACON_ARRIVALS_MAX entries */
	size_t ring_start, ring_n;
	struct vp_beacon_stats st;
	uint64_t log_second;
	uint32_t log_n;
	uint64_t log_skipped;
	bool closing;
	void (*closed)(void *arg);
	void *closed_arg;
};

static void accept_one(struct vp_beacon_server *b);

static void server_free(struct vp_beacon_server *b)
{
	free(b->ring);
	free(b->expect);
	free(b->agent);
	free(b->listen);
	free(b);
}

static void maybe_free(struct vp_beacon_server *b)
{
	void (*closed)(void *arg) = b->closed;
	void *arg = b->closed_arg;

	if (!b->closing || b->listener_open || b->conns || b->rejects_busy)
		return;
	server_free(b);
	if (closed)
		closed(arg);
}

/* A handle came free: take the connection libuv holds for us, if any. */
static void resume(struct vp_beacon_server *b)
{
	if (b->accept_waiting && !b->closing) {
		b->accept_waiting = false;
		accept_one(b);
	}
}

/* The source as the arrival shows it: an IPv4-mapped one as IPv4. */
static void fill_source(struct vp_beacon_server *b, const struct sockaddr_storage *ss,
                        struct vp_beacon_arrival *a)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
	bool v6 = ss->ss_family == AF_INET6;
	bool mapped = v6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr);
	int which;

	a->match = vp_beacon_match(b->expect, b->n_expect, (const struct sockaddr *)ss, &which);
	if (which >= 0)
		snprintf(a->cidr, sizeof(a->cidr), "%s", b->expect[which].text);
	a->family = v6 && !mapped ? AF_INET6 : AF_INET;
	a->source_port = ntohs(v6 ? s6->sin6_port : s4->sin_port);
	/* Sized for either: cannot fail. */
	(void)inet_ntop(a->family, mapped ? (const void *)&s6->sin6_addr.s6_addr[12] :
	                v6 ? (const void *)&s6->sin6_addr : (const void *)&s4->sin_addr,
	                a->source, sizeof(a->source));
}

/* Counts the arrival on 'tcp', keeps it in the ring and tells the owner. */
static void record_arrival(struct vp_beacon_server *b, uv_tcp_t *tcp, bool over_cap,
                           struct vp_beacon_arrival *ret)
{
	struct vp_beacon_arrival a = { .over_cap = over_cap };
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);

	a.seq = ++b->st.arrivals;
	clock_gettime(CLOCK_REALTIME, &a.wall);
	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &sslen) == 0) {
		fill_source(b, &ss, &a);
	} else {
		/* Reset by the client before accept() took it: it arrived, from
		 * an address the kernel no longer tells. */
		snprintf(a.source, sizeof(a.source), "unknown");
		a.match = b->n_expect ? VP_BEACON_OUTSIDE : VP_BEACON_UNCHECKED;
	}
	b->st.inside += a.match == VP_BEACON_INSIDE;
	b->st.outside += a.match == VP_BEACON_OUTSIDE;
	b->ring[(b->ring_start + b->ring_n) % VP_BEACON_ARRIVALS_MAX] = a;
	if (b->ring_n < VP_BEACON_ARRIVALS_MAX)
		b->ring_n++;
	else
		b->ring_start = (b->ring_start + 1) % VP_BEACON_ARRIVALS_MAX;
	if (ret)
		*ret = a;
	if (b->on_arrival && !b->closing)
		b->on_arrival(b, &a, b->arg);
}

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct vp_beacon_server *b = c->b;

	if (--c->pending_close > 0)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		b->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	b->st.active--;
	free(c);
	resume(b);
	maybe_free(b);
}

static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	c->pending_close = 2;
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
	uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_deadline(uv_timer_t *t)
{
	struct conn *c = t->data;

	/* A half-open client, or one too slow to send a small request; or an
	 * answered one that does not take the FIN. */
	if (!c->answered)
		c->b->st.timed_out++;
	conn_close(c);
}

static void on_shut(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;

	(void)status;   /* closed either way */
	conn_close(c);
}

static void on_written(uv_write_t *req, int status)
{
	struct conn *c = req->data;

	if (c->closing)
		return;
	c->sreq.data = c;
	if (status < 0 || uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shut) < 0)
		conn_close(c);
}

/* Answers and closes: what was read is never looked at again. */
static void answer(struct conn *c, enum vp_beacon_req st)
{
	uv_buf_t buf;
	int n;

	(void)uv_read_stop((uv_stream_t *)&c->tcp); /* returns 0 */
	c->answered = true;
	if (st == VP_BEACON_REQ_COMPLETE)
		c->b->st.answered++;
	else
		c->b->st.bad_requests++;
	n = vp_beacon_response(st, c->b->agent, &c->arrival, c->out, sizeof(c->out));
	if (n < 0) {
		conn_close(c);
		return;
	}
	buf = uv_buf_init(c->out, (unsigned)n);
	c->wreq.data = c;
	if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0)
		conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct conn *c = h->data;

	(void)hint;
	/* Never more than the request cap, whatever libuv suggests. */
	buf->base = (char *)c->in + c->len;
	buf->len = sizeof(c->in) - c->len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	enum vp_beacon_req st;

	(void)buf;
	if (nread == 0 || c->closing)
		return;
	if (nread == UV_EOF && c->len > 0) {
		answer(c, VP_BEACON_REQ_MORE);   /* cut short: 400 */
		return;
	}
	if (nread < 0) {
		conn_close(c);
		return;
	}
	c->len += (size_t)nread;
	st = vp_beacon_scan(&c->scan, c->in, c->len, sizeof(c->in));
	if (st != VP_BEACON_REQ_MORE)
		answer(c, st);
}

/* Holds the connection libuv has ready in 'c', with its deadline. */
static void take_conn(struct vp_beacon_server *b, struct conn *c)
{
	c->b = b;
	vp_beacon_scan_init(&c->scan);
	uv_tcp_init(b->loop, &c->tcp);       /* cannot fail without a socket */
	uv_timer_init(b->loop, &c->timer);   /* cannot fail */
	c->tcp.data = c;
	c->timer.data = c;
	c->next = b->conns;
	if (b->conns)
		b->conns->prev = c;
	b->conns = c;
	if (++b->st.active > b->st.active_max)
		b->st.active_max = b->st.active;
	if (uv_accept((uv_stream_t *)&b->listener, (uv_stream_t *)&c->tcp) < 0) {
		b->st.accept_errors++;
		conn_close(c);
		return;
	}
	record_arrival(b, &c->tcp, false, &c->arrival);
	if (c->closing)
		return;   /* the arrival callback closed the beacon */
	if (uv_timer_start(&c->timer, on_deadline, b->timeout_ms, 0) < 0 ||
	    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
		conn_close(c);
}

static void on_reject_closed(uv_handle_t *h)
{
	struct reject *rj = h->data;
	struct vp_beacon_server *b = rj->b;

	rj->busy = false;
	b->rejects_busy--;
	resume(b);
	maybe_free(b);
}

/* Over the cap (or out of memory): accept, count, close at once. */
static void reject_one(struct vp_beacon_server *b)
{
	struct reject *rj = NULL;

	for (size_t i = 0; i < VP_BEACON_REJECT_SLOTS && !rj; i++)
		if (!b->rejects[i].busy)
			rj = &b->rejects[i];
	if (!rj) {
		b->accept_waiting = true;   /* a close callback takes it up */
		return;
	}
	rj->b = b;
	rj->busy = true;
	b->rejects_busy++;
	uv_tcp_init(b->loop, &rj->tcp);
	rj->tcp.data = rj;
	if (uv_accept((uv_stream_t *)&b->listener, (uv_stream_t *)&rj->tcp) == 0) {
		b->st.over_cap++;
		record_arrival(b, &rj->tcp, true, NULL);
	} else {
		b->st.accept_errors++;
	}
	uv_close((uv_handle_t *)&rj->tcp, on_reject_closed);
}

static void accept_one(struct vp_beacon_server *b)
{
	struct conn *c = NULL;

	if (b->st.active < b->max_conns)
		c = calloc(1, sizeof(*c));
	if (c)
		take_conn(b, c);
	else
		reject_one(b);
}

static void on_connection(uv_stream_t *s, int status)
{
	struct vp_beacon_server *b = s->data;

	if (status < 0) {
		b->st.accept_errors++;   /* libuv goes on listening */
		return;
	}
	if (!b->closing)
		accept_one(b);
}

/* The listening socket, made here rather than by uv_tcp_bind() so that
 * every failure is synchronous and names its call: libuv defers a bind
 * error to uv_listen() and leaves a handle that must be closed. */
static int open_listener(const char *listen_text, int *ret_fd, char *err, size_t errlen)
{
	struct vp_addrport ap;
	struct sockaddr_storage ss = { 0 };
	socklen_t sslen;
	char msg[VP_ERR_MAX];
	const char *op = "socket";
	int fd, r, one = 1;

	if (vp_addrport_parse(listen_text, 0, &ap, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "beacon listen: %s", msg);
		return -EINVAL;
	}
	if (ap.family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, ap.addr, 16);
		s6->sin6_port = htons(ap.port);
		sslen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, ap.addr, 4);
		s4->sin_port = htons(ap.port);
		sslen = sizeof(*s4);
	}
	fd = socket(ap.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		op = "bind";
		/* As every server: a restart binds again while old connections
		 * of the port sit in TIME_WAIT. */
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* cannot fail here */
		if (bind(fd, (struct sockaddr *)&ss, sslen) == 0) {
			op = "listen";
			if (listen(fd, VP_BEACON_BACKLOG) == 0) {
				*ret_fd = fd;
				return 0;
			}
		}
	}
	r = -errno;
	snprintf(err, errlen, "beacon %s: %s: %s", listen_text, op, strerror(-r));
	if (fd >= 0)
		(void)close(fd); /* nothing to report: it never listened */
	return r;
}

/* Copies what the server keeps of 'o'. 0 or -ENOMEM. */
static int copy_opts(struct vp_beacon_server *b, const struct vp_beacon_opts *o)
{
	b->listen = strdup(o->listen);
	b->agent = strdup(o->agent ? o->agent : "");
	b->ring = calloc(VP_BEACON_ARRIVALS_MAX, sizeof(*b->ring));
	if (o->n_expect_from) {
		b->expect = calloc(o->n_expect_from, sizeof(*b->expect));
		if (b->expect)
			memcpy(b->expect, o->expect_from, o->n_expect_from * sizeof(*b->expect));
	}
	b->n_expect = o->n_expect_from;
	b->max_conns = o->max_conns ? o->max_conns : VP_BEACON_CONN_DEFAULT;
	b->timeout_ms = o->timeout_ms ? o->timeout_ms : VP_BEACON_TIMEOUT_MS;
	b->on_arrival = o->on_arrival;
	b->arg = o->arg;
	if (!b->listen || !b->agent || !b->ring || (o->n_expect_from && !b->expect))
		return -ENOMEM;
	return 0;
}

int vp_beacon_server_start(uv_loop_t *loop, const struct vp_beacon_opts *o,
                           struct vp_beacon_server **ret, char *err, size_t errlen)
{
	struct vp_beacon_server *b = calloc(1, sizeof(*b));
	int fd = -1, r = -ENOMEM;

	if (!b || copy_opts(b, o) < 0) {
		snprintf(err, errlen, "beacon %s: out of memory", o->listen);
		goto fail;
	}
	r = open_listener(o->listen, &fd, err, errlen);
	if (r < 0)
		goto fail;
	b->loop = loop;
	uv_tcp_init(loop, &b->listener);   /* cannot fail without a socket */
	b->listener.data = b;
	b->listener_open = true;
	r = uv_tcp_open(&b->listener, fd);
	if (r < 0)
		(void)close(fd); /* the handle did not take it; it never listened for us */
	else
		r = uv_listen((uv_stream_t *)&b->listener, VP_BEACON_BACKLOG, on_connection);
	if (r < 0) {
		snprintf(err, errlen, "beacon %s: libuv: %s", o->listen, uv_strerror(r));
		vp_beacon_server_close(b, NULL, NULL); /* frees it on a later loop turn */
		return r;
	}
	*ret = b;
	return 0;
fail:
	if (b)
		server_free(b);
	return r;
}

static void on_listener_closed(uv_handle_t *h)
{
	struct vp_beacon_server *b = h->data;

	b->listener_open = false;
	maybe_free(b);
}

void vp_beacon_server_close(struct vp_beacon_server *b, void (*closed)(void *arg), void *arg)
{
	if (!b || b->closing)
		return;
	b->closing = true;
	b->closed = closed;
	b->closed_arg = arg;
	/* The listening descriptor is closed now, not in the callback: a
	 * reload may bind the same address right after this. */
	uv_close((uv_handle_t *)&b->listener, on_listener_closed);
	for (struct conn *c = b->conns; c; c = c->next)
		conn_close(c);
}

bool vp_beacon_server_same(const struct vp_beacon_server *b, const char *listen,
                           const struct vp_cidr *expect_from, size_t n, const char *agent)
{
	if (strcmp(b->listen, listen) || strcmp(b->agent, agent ? agent : "") || b->n_expect != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (b->expect[i].family != expect_from[i].family ||
		    b->expect[i].prefix != expect_from[i].prefix ||
		    memcmp(b->expect[i].addr, expect_from[i].addr, sizeof(b->expect[i].addr)))
			return false;
	return true;
}

const char *vp_beacon_server_listen(const struct vp_beacon_server *b)
{
	return b->listen;
}

void vp_beacon_server_expect_text(const struct vp_beacon_server *b, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < b->n_expect && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", b->expect[i].text);
}

void vp_beacon_server_stats(const struct vp_beacon_server *b, struct vp_beacon_stats *ret)
{
	*ret = b->st;
}

size_t vp_beacon_server_arrival_count(const struct vp_beacon_server *b)
{
	return b->ring_n;
}

const struct vp_beacon_arrival *vp_beacon_server_arrival(const struct vp_beacon_server *b, size_t i)
{
	if (i >= b->ring_n)
		return NULL;
	return &b->ring[(b->ring_start + i) % VP_BEACON_ARRIVALS_MAX];
}

bool vp_beacon_server_log_gate(struct vp_beacon_server *b, uint64_t *skipped)
{
	uint64_t second = uv_now(b->loop) / 1000;

	if (second != b->log_second) {
		b->log_second = second;
		b->log_n = 0;
	}
	if (b->log_n >= VP_BEACON_LOG_PER_S) {
		b->log_skipped++;
		b->st.logs_suppressed++;
		return false;
	}
	b->log_n++;
	*skipped = b->log_skipped;
	b->log_skipped = 0;
	return true;
}

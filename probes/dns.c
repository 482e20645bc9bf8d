/* Name resolution on the probe loop: c-ares asks, libuv waits.
 *
 * c-ares tells us which sockets it wants watched (ARES_OPT_SOCK_STATE_CB);
 * each gets a uv_poll_t, and one uv_timer_t follows ares_timeout(). Every
 * lookup has its own uv_timer_t: first its deadline, then the way its answer
 * reaches the caller on a later loop turn. c-ares cannot cancel one query, so
 * a lookup whose deadline passed is answered at once and its late c-ares
 * callback only frees it. A lookup is freed when both c-ares and its timer
 * are done with it. */
#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "probes/dns.h"

struct dns_sock {
	struct vp_dns *d;          /* borrowed: the resolver */
	struct dns_sock *next;     /* in d->socks while c-ares uses the socket */
	ares_socket_t fd;          /* borrowed: c-ares opens and closes it */
	uv_poll_t poll;
};

struct lookup {
	struct vp_dns *d;          /* borrowed: the resolver */
	uv_timer_t timer;          /* the deadline, then the delivery */
	vp_dns_cb cb;
	void *arg;                 /* borrowed: the caller's */
	char name[VP_HOST_MAX];    /* for the detail sentence, maybe truncated */
	uint32_t timeout_ms;
	uint64_t start_ns;
	bool has_answer;           /* 'ans' is final */
	bool delivered;            /* 'cb' ran or runs now; 'timer' is closing */
	bool ares_done;            /* c-ares called back: it holds no pointer to us */
	bool timer_closed;
	struct vp_dns_answer ans;
};

struct owed {                  /* a callback owed without memory for a lookup */
	vp_dns_cb cb;
	void *arg;                 /* borrowed: the caller's */
};

struct vp_dns {
	uv_loop_t *loop;           /* borrowed */
	ares_channel channel;      /* owned; NULL once destroyed */
	uv_timer_t timer;          /* ares_timeout() */
	uv_timer_t defer;          /* answers 'owed' */
	struct dns_sock *socks;    /* owned list */
	struct owed owed[VP_DNS_NOMEM_QUEUE];
	size_t n_owed;
	int handles;               /* uv handles whose close_cb has not run */
	bool closing;
	bool closed_done;          /* 'closed' ran */
	void (*closed)(void *arg);
	void *closed_arg;          /* borrowed: the caller's */
};

static void maybe_closed(struct vp_dns *d)
{
	if (!d->closing || d->handles > 0 || d->closed_done)
		return;
	d->closed_done = true;
	if (d->closed)
		d->closed(d->closed_arg);   /* may free 'd': nothing may follow */
}

static void on_handle_closed(uv_handle_t *h)
{
	struct vp_dns *d = h->data;

	d->handles--;
	maybe_closed(d);
}

/* ---- c-ares sockets and timer on the loop ---- */

static void rearm_timer(struct vp_dns *d);

static void on_ares_timer(uv_timer_t *t)
{
	struct vp_dns *d = t->data;

	if (!d->channel)
		return;
	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm_timer(d);   /* the timer is inactive now: this reads the true timeout */
}

/* Follows ares_timeout(), which walks every query in c-ares 1.18: asked
 * after each lookup and each answer that would cost O(n) per event. No new
 * timeout is nearer than VP_DNS_TRY_MS, so a timer due sooner stays; an
 * early wake-up only re-reads the true one. */
static void rearm_timer(struct vp_dns *d)
{
	struct timeval tv;
	uint64_t ms;

	if (d->channel && uv_is_active((uv_handle_t *)&d->timer) &&
	    uv_timer_get_due_in(&d->timer) <= VP_DNS_TRY_MS)
		return;
	if (!d->channel || !ares_timeout(d->channel, NULL, &tv)) {
		uv_timer_stop(&d->timer);
		return;
	}
	ms = (uint64_t)tv.tv_sec * 1000 + ((uint64_t)tv.tv_usec + 999) / 1000;
	uv_timer_start(&d->timer, on_ares_timer, ms, 0);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	struct dns_sock *s = p->data;
	struct vp_dns *d = s->d;
	ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

	if (!d->channel)
		return;
	/* On a poll error let c-ares read and write: it finds the socket's
	 * error itself and moves the query to the next try. */
	if (status < 0 || (events & UV_READABLE))
		rfd = s->fd;
	if (status < 0 || (events & UV_WRITABLE))
		wfd = s->fd;
	ares_process_fd(d->channel, rfd, wfd);   /* may close 's' */
	rearm_timer(d);
}

static void on_sock_closed(uv_handle_t *h)
{
	struct dns_sock *s = h->data;
	struct vp_dns *d = s->d;

	free(s);
	d->handles--;
	maybe_closed(d);
}

static void sock_close(struct vp_dns *d, struct dns_sock *s)
{
	struct dns_sock **pp = &d->socks;

	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
	uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* c-ares opens, watches and closes its sockets through this. The poll
 * handle is closed before c-ares closes the descriptor, as libuv requires. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct vp_dns *d = data;
	struct dns_sock *s = d->socks;
	int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);

	while (s && s->fd != fd)
		s = s->next;
	if (!events) {
		if (s)
			sock_close(d, s);
		return;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		/* Without a watcher the query still ends: c-ares times it out
		 * from on_ares_timer, and the lookup's deadline comes first. */
		if (!s)
			return;
		if (uv_poll_init_socket(d->loop, &s->poll, fd) < 0) {
			free(s);
			return;
		}
		s->d = d;
		s->fd = fd;
		s->poll.data = s;
		s->next = d->socks;
		d->socks = s;
		d->handles++;
	}
	(void)uv_poll_start(&s->poll, events, on_poll);   /* fails only for a closing handle */
}

/* ---- answers ---- */

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr *b)
{
	if (a->ss_family != b->sa_family)
		return false;
	if (b->sa_family == AF_INET)
		return !memcmp(&((const struct sockaddr_in *)a)->sin_addr,
		               &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr));
	return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
	               &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}

/* Appends the addresses of 'family', each once, port 0. */
static void add_family(struct vp_dns_answer *ans, const struct ares_addrinfo_node *n, int family)
{
	size_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);

	for (; n && ans->n_addrs < VP_DNS_MAX_ADDRS; n = n->ai_next) {
		struct sockaddr_storage *ss = &ans->addrs[ans->n_addrs];
		bool seen = false;

		if (n->ai_family != family || !n->ai_addr || n->ai_addrlen < len)
			continue;
		for (size_t i = 0; i < ans->n_addrs && !seen; i++)
			seen = same_addr(&ans->addrs[i], n->ai_addr);
		if (seen)
			continue;
		memset(ss, 0, sizeof(*ss));
		memcpy(ss, n->ai_addr, len);
		if (family == AF_INET)
			((struct sockaddr_in *)ss)->sin_port = 0;
		else
			((struct sockaddr_in6 *)ss)->sin6_port = 0;
		ans->n_addrs++;
	}
}

/* A failure that took 'ms': the deadline's, or c-ares' own when all its
 * tries timed out first. */
static void set_failure(struct lookup *l, int ares_status, uint32_t ms)
{
	l->ans.status = vp_dns_classify(ares_status, l->name, ms, &l->ans.reason, l->ans.detail,
	                                sizeof(l->ans.detail));
}

static void on_lookup_closed(uv_handle_t *h)
{
	struct lookup *l = h->data;
	struct vp_dns *d = l->d;

	l->timer_closed = true;
	if (l->ares_done)
		free(l);
	d->handles--;
	maybe_closed(d);
}

/* The deadline, or the turn after the answer came: the caller hears now. */
static void on_lookup_timer(uv_timer_t *t)
{
	struct lookup *l = t->data;

	if (!l->has_answer) {
		l->ans.ms = (double)(uv_hrtime() - l->start_ns) / 1e6;
		set_failure(l, ARES_ETIMEOUT, l->timeout_ms);
		l->has_answer = true;
	}
	l->delivered = true;
	uv_close((uv_handle_t *)&l->timer, on_lookup_closed);
	/* 'l' lives until on_lookup_closed, after this callback. */
	l->cb(&l->ans, l->arg);
}

/* Runs from ares_process_fd(), ares_cancel(), ares_destroy() or, for a name
 * that fails at once, from inside ares_getaddrinfo(): it only records. */
static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct lookup *l = arg;

	(void)timeouts;
	l->ares_done = true;
	if (!l->has_answer) {
		l->ans.ms = (double)(uv_hrtime() - l->start_ns) / 1e6;
		if (status == ARES_SUCCESS && res) {
			add_family(&l->ans, res->nodes, AF_INET);
			add_family(&l->ans, res->nodes, AF_INET6);
		}
		if (l->ans.n_addrs == 0)
			set_failure(l, status == ARES_SUCCESS ? ARES_ENODATA : status,
			            (uint32_t)(l->ans.ms + 0.5));
		l->has_answer = true;
		uv_timer_start(&l->timer, on_lookup_timer, 0, 0);
	}
	ares_freeaddrinfo(res);
	if (l->timer_closed)
		free(l);   /* the deadline answered long ago */
}

/* ---- the owed callbacks, when not even a lookup could be allocated ---- */

static void on_defer(uv_timer_t *t)
{
	struct vp_dns *d = t->data;
	struct vp_dns_answer ans;

	memset(&ans, 0, sizeof(ans));
	ans.status = -ENOMEM;
	ans.reason = VP_REASON_DNS_OTHER;
	snprintf(ans.detail, sizeof(ans.detail), "the agent ran out of memory for this lookup");
	/* A callback may owe more; those wait for the next turn. */
	for (size_t n = d->n_owed; n > 0; n--) {
		struct owed o = d->owed[0];

		memmove(&d->owed[0], &d->owed[1], (d->n_owed - 1) * sizeof(d->owed[0]));
		d->n_owed--;
		o.cb(&ans, o.arg);
	}
	if (d->closing && d->n_owed == 0 && !uv_is_closing((uv_handle_t *)&d->defer))
		uv_close((uv_handle_t *)&d->defer, on_handle_closed);
}

static void owe(struct vp_dns *d, vp_dns_cb cb, void *arg)
{
	/* A callback that can be neither queued nor run would break the
	 * contract silently; a full queue of them means the heap is gone. */
	if (d->n_owed == VP_DNS_NOMEM_QUEUE || uv_timer_start(&d->defer, on_defer, 0, 0) < 0)
		abort();
	d->owed[d->n_owed++] = (struct owed){ cb, arg };
}

void vp_dns_resolve(struct vp_dns *d, const char *name, uint32_t timeout_ms, vp_dns_cb cb,
                    void *arg)
{
	struct ares_addrinfo_hints hints = {
		.ai_family = AF_UNSPEC,
		/* No RFC 6724 sort: it connect()s a UDP socket to every address,
		 * and we order the answer ourselves, IPv4 first. */
		.ai_flags = ARES_AI_NOSORT,
	};
	struct lookup *l;

	/* After 'closed' the caller may free 'd': a lookup now is a bug. */
	if (d->closed_done)
		abort();
	l = calloc(1, sizeof(*l));
	if (!l) {
		owe(d, cb, arg);
		return;
	}
	l->d = d;
	l->cb = cb;
	l->arg = arg;
	l->timeout_ms = timeout_ms;
	/* The loop's clock may be a whole callback old; the deadline is
	 * counted from now, as 'ms' is. */
	uv_update_time(d->loop);
	l->start_ns = uv_hrtime();
	snprintf(l->name, sizeof(l->name), "%s", name);
	(void)uv_timer_init(d->loop, &l->timer);   /* cannot fail */
	l->timer.data = l;
	d->handles++;
	uv_timer_start(&l->timer, on_lookup_timer, timeout_ms, 0);
	if (!d->channel) {
		l->ares_done = true;
		set_failure(l, ARES_EDESTRUCTION, 0);
		l->has_answer = true;
		uv_timer_start(&l->timer, on_lookup_timer, 0, 0);
		return;
	}
	ares_getaddrinfo(d->channel, name, NULL, &hints, on_addrinfo, l);
	rearm_timer(d);
}

/* ---- the resolver ---- */

/* "ADDR", "ADDR:PORT", "[v6]", "[v6]:PORT" or a bare IPv6 address. */
static int parse_server(const char *s, struct ares_addr_port_node *n)
{
	char host[INET6_ADDRSTRLEN];
	const char *start = s, *port = NULL, *end = s + strlen(s);
	const char *colon = strchr(s, ':');
	bool bracket = s[0] == '[';
	unsigned long p = 0;
	char *pend;

	if (bracket) {
		start = s + 1;
		end = strchr(start, ']');
		if (!end || (end[1] && end[1] != ':'))
			return -EINVAL;
		if (end[1] == ':')
			port = end + 2;
	} else if (colon && !strchr(colon + 1, ':')) {
		end = colon;      /* one colon: IPv4 and a port */
		port = colon + 1;
	}
	if (end == start || (size_t)(end - start) >= sizeof(host))
		return -EINVAL;
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	memset(n, 0, sizeof(*n));
	if (!bracket && inet_pton(AF_INET, host, &n->addr.addr4) == 1)
		n->family = AF_INET;
	else if (inet_pton(AF_INET6, host, &n->addr.addr6) == 1)
		n->family = AF_INET6;
	else
		return -EINVAL;
	if (port) {
		if (*port < '0' || *port > '9')
			return -EINVAL;
		p = strtoul(port, &pend, 10);
		if (*pend)
			return -EINVAL;
		if (p < 1 || p > 65535)
			return -ERANGE;
	}
	n->udp_port = n->tcp_port = (int)p;   /* 0: c-ares' default, 53 */
	return 0;
}

static int set_servers(ares_channel ch, char *const *servers, size_t n, char *err,
                       size_t errlen)
{
	struct ares_addr_port_node nodes[VP_CONFIG_MAX_DNS_SERVERS];
	int r;

	if (n > VP_CONFIG_MAX_DNS_SERVERS) {
		snprintf(err, errlen, "dns servers: %zu given, at most %d", n,
		         VP_CONFIG_MAX_DNS_SERVERS);
		return -E2BIG;
	}
	for (size_t i = 0; i < n; i++) {
		r = -EINVAL;
		if (strlen(servers[i]) < VP_DNS_SERVER_MAX)
			r = parse_server(servers[i], &nodes[i]);
		if (r < 0) {
			snprintf(err, errlen, "dns server '%.*s': %s", VP_DNS_SERVER_MAX, servers[i],
			         r == -ERANGE ? "port not in 1..65535"
			                      : "expected ADDR, ADDR:PORT or [IPv6]:PORT");
			return r;
		}
		nodes[i].next = i + 1 < n ? &nodes[i + 1] : NULL;
	}
	r = ares_set_servers_ports(ch, nodes);
	if (r != ARES_SUCCESS) {
		snprintf(err, errlen, "dns servers: c-ares: %s", ares_strerror(r));
		return r == ARES_ENOMEM ? -ENOMEM : -EINVAL;
	}
	return 0;
}

static int init_channel(struct vp_dns *d, size_t n_servers, char *err, size_t errlen)
{
	struct ares_options o = {
		.sock_state_cb = on_sock_state,
		.sock_state_cb_data = d,
		/* c-ares 1.18 retries a SERVFAIL or REFUSED answer on the next
		 * server and, when none is left, reports ECONNREFUSED: the rcode,
		 * the very thing a probe is after, would be lost. */
		.flags = ARES_FLAG_NOCHECKRESP,
		.timeout = VP_DNS_TRY_MS,
		.tries = VP_DNS_TRIES,
		.ndomains = 0,
		.lookups = (char *)"b",
	};
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
	int r;

	/* Given servers are asked exactly the configured name: no search list
	 * and no /etc/hosts, which describe this VM, not those servers. */
	if (n_servers > 0)
		mask |= ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS;
	r = ares_init_options(&d->channel, &o, mask);
	if (r != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: c-ares init: %s", ares_strerror(r));
		d->channel = NULL;
		return r == ARES_ENOMEM ? -ENOMEM : -EIO;
	}
	return 0;
}

struct vp_dns *vp_dns_new(uv_loop_t *loop, char *const *servers, size_t n_servers,
                          char *err, size_t errlen)
{
	struct vp_dns *d = calloc(1, sizeof(*d));
	int r;

	if (!d) {
		snprintf(err, errlen, "dns: out of memory");
		return NULL;
	}
	/* c-ares counts its own init/cleanup pairs; each resolver holds one. */
	r = ares_library_init(ARES_LIB_INIT_ALL);
	if (r != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: c-ares library init: %s", ares_strerror(r));
		free(d);
		return NULL;
	}
	d->loop = loop;
	if (init_channel(d, n_servers, err, errlen) < 0)
		goto fail;
	if (n_servers > 0 && set_servers(d->channel, servers, n_servers, err, errlen) < 0)
		goto fail;
	/* Nothing fails past here, so no half-made resolver has handles:
	 * uv_timer_init() cannot fail. */
	(void)uv_timer_init(loop, &d->timer);
	(void)uv_timer_init(loop, &d->defer);
	d->timer.data = d;
	d->defer.data = d;
	d->handles = 2;
	return d;

fail:
	if (d->channel)
		ares_destroy(d->channel);
	ares_library_cleanup();
	free(d);
	return NULL;
}

void vp_dns_close(struct vp_dns *d, void (*closed)(void *arg), void *arg)
{
	if (d->closing)
		return;
	d->closing = true;
	d->closed = closed;
	d->closed_arg = arg;
	/* Every pending query calls on_addrinfo now (ECANCELLED), which hands
	 * its answer to the lookup's timer; ares_destroy() closes the sockets
	 * through on_sock_state. No user callback runs inside c-ares: they all
	 * come from timers, so this may be called from one of them. */
	ares_cancel(d->channel);
	ares_destroy(d->channel);
	d->channel = NULL;
	while (d->socks)
		sock_close(d, d->socks);
	uv_close((uv_handle_t *)&d->timer, on_handle_closed);
	/* Owed callbacks still run from 'defer'; on_defer closes it after. */
	if (d->n_owed == 0)
		uv_close((uv_handle_t *)&d->defer, on_handle_closed);
}

struct vp_dns *vp_dns_free(struct vp_dns *d)
{
	if (!d)
		return NULL;
	/* Freeing an open resolver would leave its handles in the loop. */
	if (!d->closed_done)
		abort();
	free(d);
	ares_library_cleanup();
	return NULL;
}

/* ---- the pure part: c-ares status to reason and sentences ---- */

struct status_row {
	int status;                /* ARES_E... */
	enum vp_reason reason;
	int err;                   /* the answer's -errno-like status */
	const char *pre, *post;    /* the detail is pre 'name' post */
	bool with_ms;              /* post is followed by " within N ms" */
};

static const struct status_row status_rows[] = {
	{ ARES_ENOTFOUND, VP_REASON_NXDOMAIN, -ENOENT, "name", "does not exist (NXDOMAIN)", false },
	{ ARES_ENODATA, VP_REASON_NO_ADDRESS, -ENODATA, "name",
	  "exists but has no A or AAAA record (NODATA)", false },
	{ ARES_ESERVFAIL, VP_REASON_SERVFAIL, -EAGAIN, "the DNS server failed to answer for",
	  "(SERVFAIL)", false },
	{ ARES_ETIMEOUT, VP_REASON_DNS_TIMEOUT, -ETIMEDOUT, "no answer from the DNS server for",
	  "", true },
	{ ARES_EREFUSED, VP_REASON_DNS_REFUSED, -EACCES, "the DNS server refused to answer for",
	  "(REFUSED)", false },
	/* c-ares 1.18 also ends so when no try could even be sent. */
	{ ARES_ECONNREFUSED, VP_REASON_DNS_OTHER, -ECONNREFUSED,
	  "no DNS server could be reached for", "(no route to it, or its DNS port refused the query)",
	  false },
	{ ARES_ENOTIMP, VP_REASON_DNS_OTHER, -EOPNOTSUPP, "the DNS server does not implement the "
	  "query for", "(NOTIMP)", false },
	{ ARES_EFORMERR, VP_REASON_DNS_OTHER, -EPROTO, "the DNS server could not read the query for",
	  "(FORMERR)", false },
	{ ARES_EBADRESP, VP_REASON_DNS_OTHER, -EPROTO, "the DNS server sent a malformed reply for",
	  "", false },
	{ ARES_EOF, VP_REASON_DNS_OTHER, -ECONNRESET, "the DNS server closed the connection for",
	  "", false },
	{ ARES_EBADNAME, VP_REASON_DNS_OTHER, -EINVAL, "name", "is not a valid DNS name", false },
	{ ARES_EBADSTR, VP_REASON_DNS_OTHER, -EINVAL, "name", "is not a valid DNS name", false },
	{ ARES_EBADQUERY, VP_REASON_DNS_OTHER, -EINVAL, "name", "cannot be asked for", false },
	{ ARES_ECANCELLED, VP_REASON_DNS_OTHER, -ECANCELED, "the lookup of",
	  "was cancelled: the resolver is closing", false },
	{ ARES_EDESTRUCTION, VP_REASON_DNS_OTHER, -ECANCELED, "the lookup of",
	  "was cancelled: the resolver is closing", false },
	{ ARES_ENOMEM, VP_REASON_DNS_OTHER, -ENOMEM, "the agent ran out of memory looking up", "",
	  false },
	{ ARES_EFILE, VP_REASON_DNS_OTHER, -EIO, "the resolver configuration could not be read to "
	  "look up", "", false },
};

int vp_dns_classify(int ares_status, const char *name, uint32_t timeout_ms,
                    enum vp_reason *reason, char *detail, size_t len)
{
	const struct status_row *row = NULL;
	int n;

	for (size_t i = 0; i < sizeof(status_rows) / sizeof(status_rows[0]) && !row; i++)
		if (status_rows[i].status == ares_status)
			row = &status_rows[i];
	if (!row) {
		*reason = VP_REASON_DNS_OTHER;
		snprintf(detail, len, "the lookup of '%s' failed: %s (c-ares status %d)", name,
		         ares_strerror(ares_status), ares_status);
		return -EIO;
	}
	*reason = row->reason;
	n = snprintf(detail, len, "%s '%s'%s%s", row->pre, name, row->post[0] ? " " : "", row->post);
	if (row->with_ms && n >= 0 && (size_t)n < len)
		snprintf(detail + n, len - (size_t)n, " within %" PRIu32 " ms", timeout_ms);
	return row->err;
}

/* Whether 'name' is a Compute Engine internal DNS name (*.internal). */
static bool is_internal(const char *name)
{
	static const char suffix[] = ".internal";
	size_t n = strlen(name), k = sizeof(suffix) - 1;

	if (n > 0 && name[n - 1] == '.')
		n--;
	return n > k && strncasecmp(name + n - k, suffix, k) == 0;
}

/* The hint is pre 'name' post; a row with 'internal' only fits *.internal. */
struct hint_row {
	enum vp_reason reason;
	bool internal;
	const char *pre, *post;
};

static const struct hint_row hint_rows[] = {
	{ VP_REASON_NXDOMAIN, true, "",
	  " is a *.internal name, and those resolve only inside the VPC network (the metadata "
	  "server's internal DNS): check the VM name, zone and project in it, and that the agent "
	  "runs in that network. From Cloud Run with --vpc-egress=private-ranges-only, DNS goes "
	  "through Google's resolver, so *.internal names do not resolve: use all-traffic egress." },
	{ VP_REASON_NXDOMAIN, false, "The resolver does not know ",
	  ". If it lives in a Cloud DNS private zone, that zone is not visible from this VPC "
	  "network: bind the private zone to the network (gcloud dns managed-zones update ZONE "
	  "--networks=NETWORK). From Cloud Run with --vpc-egress=private-ranges-only, DNS goes "
	  "through Google's resolver and private names of peered zones may not resolve." },
	{ VP_REASON_SERVFAIL, false, "The DNS server failed instead of answering for ",
	  ". For a Cloud DNS forwarding or peering zone, its target (the on-premises DNS, or the "
	  "peered network's zone) is unreachable or broken from this VPC network: check the zone's "
	  "targets, then ask another server with `vpcprobe check --dns-server ADDR`." },
	{ VP_REASON_DNS_TIMEOUT, false, "No DNS answer in time for ",
	  ": the server in agent.dns_servers or /etc/resolv.conf is not reachable from here (a "
	  "firewall dropping port 53, a wrong address) or answers slower than half of timeout_ms. "
	  "Inside the VPC network the metadata server 169.254.169.254 answers DNS (try `vpcprobe "
	  "check --dns-server 169.254.169.254`); from Cloud Run, names resolve in the VPC only with "
	  "all-traffic egress." },
	{ VP_REASON_NO_ADDRESS, false, "",
	  " exists but has no A or AAAA record: its zone holds only other records for it (TXT, MX, "
	  "or a CNAME whose target has no address here). Check the record set in the Cloud DNS "
	  "private zone: gcloud dns record-sets list --zone=ZONE." },
	{ VP_REASON_DNS_REFUSED, false, "The DNS server refused to answer for ",
	  ": it does not serve this client or this zone (an ACL, or a resolver that answers only "
	  "its own networks). Point agent.dns_servers at a resolver inside this VPC network: the "
	  "metadata server or a Cloud DNS inbound forwarding address." },
	{ VP_REASON_DNS_OTHER, false, "The lookup of ",
	  " failed in an unusual way (see the detail): check that agent.dns_servers, or "
	  "/etc/resolv.conf, names a DNS server that this VM reaches on port 53, UDP and TCP." },
};

void vp_dns_hint(enum vp_reason r, const char *name, char *buf, size_t len)
{
	if (len == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(hint_rows) / sizeof(hint_rows[0]); i++) {
		const struct hint_row *h = &hint_rows[i];

		if (h->reason != r || (h->internal && !is_internal(name)))
			continue;
		snprintf(buf, len, "%s'%s'%s", h->pre, name, h->post);
		return;
	}
}

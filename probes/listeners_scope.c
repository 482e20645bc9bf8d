/* The scope of a port and what a refusal means given this host's listeners
 * (issue 3). Pure but for vp_addr_is_local() and vp_local_addrs_has(),
 * which ask getifaddrs(). */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <string.h>

#include "probes/listeners.h"

static const char *const scope_names[VP_SCOPE_MAX] = {
	[VP_SCOPE_NOT_LISTENING] = "not_listening",
	[VP_SCOPE_LOOPBACK_ONLY] = "loopback_only",
	[VP_SCOPE_SPECIFIC_ADDRESS] = "specific_address",
	[VP_SCOPE_ALL_INTERFACES] = "all_interfaces",
};

const char *vp_listen_scope_name(enum vp_listen_scope s)
{
	return s < 0 || s >= VP_SCOPE_MAX ? "invalid" : scope_names[s];
}

/* The IPv4 address of a socket or of an IPv4-mapped IPv6 address. */
static bool v4_of(int family, const void *addr, struct in_addr *ret)
{
	const struct in6_addr *a6 = addr;

	if (family == AF_INET) {
		memcpy(ret, addr, sizeof(*ret));
		return true;
	}
	if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(a6)) {
		memcpy(ret, &a6->s6_addr[12], sizeof(*ret));
		return true;
	}
	return false;
}

static bool addr_is_loopback(int family, const void *addr)
{
	struct in_addr a;

	if (v4_of(family, addr, &a))
		return (ntohl(a.s_addr) >> 24) == 127;
	return family == AF_INET6 && IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)addr);
}

/* Whether the socket accepts every IPv4 destination. */
static bool takes_all_v4(const struct vp_listen_sock *s)
{
	struct in_addr a;

	if (v4_of(s->family, &s->addr, &a))
		return a.s_addr == INADDR_ANY;
	return IN6_IS_ADDR_UNSPECIFIED(&s->addr.v6) && s->v6only != VP_V6ONLY_ON;
}

enum vp_listen_scope vp_listen_scope_of(const struct vp_listen_sock *socks, size_t n)
{
	bool loopback = true;

	if (n == 0)
		return VP_SCOPE_NOT_LISTENING;
	for (size_t i = 0; i < n; i++) {
		if (takes_all_v4(&socks[i]))
			return VP_SCOPE_ALL_INTERFACES;
		loopback = loopback && addr_is_loopback(socks[i].family, &socks[i].addr);
	}
	return loopback ? VP_SCOPE_LOOPBACK_ONLY : VP_SCOPE_SPECIFIC_ADDRESS;
}

bool vp_listen_sock_overflowing(const struct vp_listen_sock *s)
{
	/* The kernel drops SYNs once sk_ack_backlog > sk_max_ack_backlog, so a
	 * queue at its maximum is full, and one more is already overflowing. */
	return s->queue_max_known && s->queue_cur > 0 && s->queue_cur >= s->queue_max;
}

void vp_listen_port_get(const struct vp_listen_table *t, uint16_t port, struct vp_listen_port *ret)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {  /* the first socket with this port or a higher one */
		size_t mid = lo + (hi - lo) / 2;
		if (t->socks[mid].port < port)
			lo = mid + 1;
		else
			hi = mid;
	}
	memset(ret, 0, sizeof(*ret));
	ret->port = port;
	ret->socks = lo < t->n && t->socks[lo].port == port ? &t->socks[lo] : NULL;
	while (ret->socks && lo + ret->n < t->n && t->socks[lo + ret->n].port == port)
		ret->n++;
	ret->scope = vp_listen_scope_of(ret->socks, ret->n);
	for (size_t i = 0; i < ret->n; i++)
		ret->overflowing = ret->overflowing || vp_listen_sock_overflowing(&ret->socks[i]);
}

bool vp_listen_sock_covers(const struct vp_listen_sock *s, const struct sockaddr *sa)
{
	const void *a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
	                                         : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	struct in_addr want, have;

	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return false;
	if (v4_of(sa->sa_family, a, &want)) {
		if (takes_all_v4(s))
			return true;
		return v4_of(s->family, &s->addr, &have) && have.s_addr == want.s_addr;
	}
	if (s->family != AF_INET6)
		return false;
	return IN6_IS_ADDR_UNSPECIFIED(&s->addr.v6) || !memcmp(&s->addr.v6, a, sizeof(s->addr.v6));
}

void vp_listen_addr_text(const struct vp_listen_sock *s, char *buf, size_t len)
{
	if (!inet_ntop(s->family, &s->addr, buf, (socklen_t)len) && len)
		buf[0] = '\0';
}

/* The address inside a sockaddr as a socket of the table, for comparisons. */
static bool sock_from_sa(const struct sockaddr *sa, struct vp_listen_sock *s)
{
	memset(s, 0, sizeof(*s));
	s->family = sa->sa_family;
	s->v6only = VP_V6ONLY_ON;
	if (sa->sa_family == AF_INET)
		s->addr.v4 = ((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		s->addr.v6 = ((const struct sockaddr_in6 *)sa)->sin6_addr;
	else
		return false;
	return true;
}

static bool is_wildcard(const struct vp_listen_sock *s)
{
	struct in_addr a;

	if (v4_of(s->family, &s->addr, &a))
		return a.s_addr == INADDR_ANY;
	return IN6_IS_ADDR_UNSPECIFIED(&s->addr.v6);
}

bool vp_addr_is_local_in(const struct sockaddr *sa, const struct ifaddrs *list)
{
	struct vp_listen_sock probed, have;

	if (!sock_from_sa(sa, &probed))
		return false;
	/* All of 127.0.0.0/8 is this host's, though lo shows only 127.0.0.1. */
	if (addr_is_loopback(probed.family, &probed.addr))
		return true;
	for (const struct ifaddrs *i = list; i; i = i->ifa_next) {
		/* An interface address "covers" the probed one when they are equal;
		 * as a wildcard is no interface's address, it is skipped. */
		if (i->ifa_addr && sock_from_sa(i->ifa_addr, &have) && !is_wildcard(&have) &&
		    vp_listen_sock_covers(&have, sa))
			return true;
	}
	return false;
}

bool vp_addr_is_local(const struct sockaddr *sa)
{
	struct ifaddrs *list = NULL;
	bool local;

	if (getifaddrs(&list) < 0)
		list = NULL;  /* then only loopback counts as local */
	local = vp_addr_is_local_in(sa, list);
	if (list)
		freeifaddrs(list);
	return local;
}

void vp_local_addrs_init(struct vp_local_addrs *c)
{
	memset(c, 0, sizeof(*c));
}

void vp_local_addrs_done(struct vp_local_addrs *c)
{
	if (c->list)
		freeifaddrs(c->list);
	vp_local_addrs_init(c);
}

bool vp_local_addrs_has(struct vp_local_addrs *c, const struct sockaddr *sa, uint64_t now_ms)
{
	/* Loopback needs no list: a probe of 127.0.0.1 costs no dump. */
	if (vp_addr_is_local_in(sa, NULL))
		return true;
	if (!c->read || now_ms - c->read_ms > VP_LOCAL_ADDRS_TTL_MS) {
		if (c->list)
			freeifaddrs(c->list);
		c->list = NULL;
		if (getifaddrs(&c->list) < 0)
			c->list = NULL;  /* then only loopback counts as local, until the next reading */
		c->read = true;
		c->read_ms = now_ms;
		c->reads++;
	}
	return vp_addr_is_local_in(sa, c->list);
}

/* "127.0.0.1", "127.0.0.1 and ::1", "a, b and c": the port's distinct
 * addresses (SO_REUSEPORT gives several sockets one address; the table is
 * sorted, so repeats are adjacent). */
static void join_addresses(const struct vp_listen_port *p, char *buf, size_t len)
{
	size_t distinct = 0, k = 0, o = 0;
	char a[INET6_ADDRSTRLEN];

	for (size_t i = 0; i < p->n; i++)
		distinct += i == 0 || memcmp(&p->socks[i].addr, &p->socks[i - 1].addr, sizeof(p->socks[i].addr)) ||
		            p->socks[i].family != p->socks[i - 1].family;
	buf[0] = '\0';
	for (size_t i = 0; i < p->n && o < len; i++) {
		if (i > 0 && p->socks[i].family == p->socks[i - 1].family &&
		    !memcmp(&p->socks[i].addr, &p->socks[i - 1].addr, sizeof(p->socks[i].addr)))
			continue;
		vp_listen_addr_text(&p->socks[i], a, sizeof(a));
		k++;
		o += (size_t)snprintf(buf + o, len - o, "%s%s", k == 1 ? "" : k == distinct ? " and " : ", ", a);
	}
}

/* " (pid 4242 python3)" for the first socket whose owner is known, else "". */
static void owner_text(const struct vp_listen_port *p, char *buf, size_t len)
{
	buf[0] = '\0';
	for (size_t i = 0; i < p->n; i++) {
		if (p->socks[i].pid > 0) {
			snprintf(buf, len, " (pid %d %s)", p->socks[i].pid, p->socks[i].comm);
			return;
		}
	}
}

static bool has_v6only_wildcard(const struct vp_listen_port *p)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->socks[i].family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&p->socks[i].addr.v6) &&
		    p->socks[i].v6only == VP_V6ONLY_ON)
			return true;
	return false;
}

static void explain_loopback(const struct vp_listen_port *p, const char *probed, const char *addrs,
                             const char *owner, struct vp_verdict_out *out)
{
	out->verdict = VP_VERDICT_LOCALHOST_ONLY;
	out->reason = VP_REASON_LOOPBACK_BIND;
	snprintf(out->detail, sizeof(out->detail), "port %u listens on %s only%s; bind it to 0.0.0.0 "
	         "or to the VM's internal address", (unsigned)p->port, addrs, owner);
	snprintf(out->hint, sizeof(out->hint),
	         "Cloud Run reaches this VM on its internal address (%s) through the Serverless VPC "
	         "Access connector, and a service bound to loopback refuses every connection that does "
	         "not come from the VM itself. Bind it to 0.0.0.0 (or to %s) in its configuration "
	         "(--host, bind, listen_addresses), restart it, and check with `ss -ltnp 'sport = :%u'`.",
	         probed, probed, (unsigned)p->port);
}

static void explain_other(const struct vp_listen_port *p, const char *probed, const char *addrs,
                          const char *owner, struct vp_verdict_out *out)
{
	out->verdict = VP_VERDICT_REFUSED;
	out->reason = VP_REASON_BOUND_OTHER_ADDRESS;
	snprintf(out->detail, sizeof(out->detail), "port %u listens on %s only%s, not on %s%s",
	         (unsigned)p->port, addrs, owner, probed,
	         has_v6only_wildcard(p) ? " ([::] has IPV6_V6ONLY set and takes no IPv4)" : "");
	snprintf(out->hint, sizeof(out->hint),
	         "The service is bound to another address of this host than %s, the one that was "
	         "probed and that Cloud Run's traffic through the connector arrives on: bind it to "
	         "0.0.0.0 (or to %s), or point the target at an address the service listens on; check "
	         "with `ss -ltnp 'sport = :%u'`.", probed, probed, (unsigned)p->port);
}

int vp_listen_refine_refused(const struct vp_listen_table *t, const struct sockaddr *addr,
                             uint16_t port, struct vp_verdict_out *out)
{
	char probed[INET6_ADDRSTRLEN], addrs[VP_DETAIL_MAX / 2], owner[VP_LISTEN_COMM_MAX + 32];
	struct vp_listen_sock me;
	struct vp_listen_port p;

	if (out->verdict != VP_VERDICT_REFUSED || !sock_from_sa(addr, &me))
		return 0;
	vp_listen_port_get(t, port, &p);
	if (p.n == 0)
		return 0;   /* nothing listens: the refusal says it all */
	for (size_t i = 0; i < p.n; i++)
		if (vp_listen_sock_covers(&p.socks[i], addr))
			return 0;   /* a listener takes it: the RST came from elsewhere */
	vp_listen_addr_text(&me, probed, sizeof(probed));
	join_addresses(&p, addrs, sizeof(addrs));
	owner_text(&p, owner, sizeof(owner));
	if (p.scope == VP_SCOPE_LOOPBACK_ONLY && !addr_is_loopback(me.family, &me.addr))
		explain_loopback(&p, probed, addrs, owner, out);
	else
		explain_other(&p, probed, addrs, owner, out);
	return 1;
}

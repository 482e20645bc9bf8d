/* Listener checks and beacons of the daemon. See agent/listen_checks.h. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/listen_checks.h"
#include "agent/log.h"
#include "agent/record.h"

struct vp_listen_checks {
	uv_loop_t *loop;                  /* borrowed */
	uv_timer_t timer;                 /* reads the table every interval */
	struct vp_listen_table table;     /* owned: the last reading */
	struct vp_listen_result *results; /* owned array */
	size_t n_results;
	struct vp_beacon_server **beacons; /* owned array; the servers free themselves on close */
	size_t n_beacons;
	vp_beacon_arrival_cb on_arrival;
	vp_listen_result_cb on_result;    /* may be NULL */
	void *arg;                        /* the callbacks' */
	bool stopped;
};

/* ---- one port's result ----------------------------------------------------- */

/* The socket that speaks for a port: the first whose queue overflows, else
 * the first with a known owner, else the first. */
static const struct vp_listen_sock *port_rep(const struct vp_listen_port *p)
{
	const struct vp_listen_sock *rep = p->n ? &p->socks[0] : NULL;

	for (size_t i = 0; i < p->n; i++) {
		if (vp_listen_sock_overflowing(&p->socks[i]))
			return &p->socks[i];
		if (rep->pid <= 0 && p->socks[i].pid > 0)
			rep = &p->socks[i];
	}
	return rep;
}

/* "127.0.0.1, ::1": the distinct addresses, in the table's order. */
static void join_addresses(const struct vp_listen_port *p, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN], prev[INET6_ADDRSTRLEN] = "";
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < p->n && o < len; i++) {
		vp_listen_addr_text(&p->socks[i], a, sizeof(a));
		if (!strcmp(a, prev))
			continue;
		memcpy(prev, a, sizeof(prev));
		o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", a);
	}
}

/* Whether some socket takes connections to a routable IPv4 address, as the
 * VM's internal address is. */
static bool has_routable_v4(const struct vp_listen_port *p)
{
	for (size_t i = 0; i < p->n; i++) {
		const struct vp_listen_sock *s = &p->socks[i];
		const uint8_t *b = s->family == AF_INET ? (const uint8_t *)&s->addr.v4 : NULL;

		if (s->family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s->addr.v6))
			b = &s->addr.v6.s6_addr[12];
		if (b && b[0] != 127)
			return true;
	}
	return false;
}

/* The process name as a log line may carry it. vp_term_safe() is the
 * terminal's and lives with the command line, not in the core library. */
static void safe_name(char *dst, size_t len, const char *src)
{
	size_t o = 0;

	for (; *src && o + 1 < len; src++)
		dst[o++] = (unsigned char)*src < 0x20 || *src == 0x7f ? '?' : *src;
	dst[o] = '\0';
}

static void explain_scope(const struct vp_listen_port *p, const char *owner, struct vp_listen_result *r)
{
	unsigned port = p->port;

	if (p->scope == VP_SCOPE_ALL_INTERFACES) {
		r->verdict = VP_VERDICT_OK;
		r->reason = "all_interfaces";
		snprintf(r->detail, sizeof(r->detail), "port %u listens on %s%s: every address of this "
		         "host takes connections", port, r->addresses, owner);
	} else if (p->scope == VP_SCOPE_LOOPBACK_ONLY) {
		r->verdict = VP_VERDICT_LOCALHOST_ONLY;
		r->reason = "loopback_bind";
		snprintf(r->detail, sizeof(r->detail), "port %u listens on %s only%s; bind it to 0.0.0.0 "
		         "or to the VM's internal address", port, r->addresses, owner);
		snprintf(r->hint, sizeof(r->hint), "Cloud Run reaches this VM on its internal address "
		         "through the Serverless VPC Access connector, and a service bound to loopback "
		         "refuses every connection that does not come from the VM itself. Bind it to "
		         "0.0.0.0 (or to the internal address) in its configuration (--host, bind, "
		         "listen_addresses), restart it, and check with `ss -ltnp 'sport = :%u'`.", port);
	} else if (p->scope == VP_SCOPE_SPECIFIC_ADDRESS && has_routable_v4(p)) {
		r->verdict = VP_VERDICT_OK;
		r->reason = "specific_address";
		snprintf(r->detail, sizeof(r->detail), "port %u listens on %s only%s: connections to "
		         "other addresses of this host are refused", port, r->addresses, owner);
		snprintf(r->hint, sizeof(r->hint), "Make sure Cloud Run's target is one of %s; to any "
		         "other address of this VM the connection is refused.", r->addresses);
	} else if (p->scope == VP_SCOPE_SPECIFIC_ADDRESS) {
		r->verdict = VP_VERDICT_REFUSED;
		r->reason = "bound_other_address";
		snprintf(r->detail, sizeof(r->detail), "port %u listens on %s only%s, on no routable "
		         "IPv4 address", port, r->addresses, owner);
		snprintf(r->hint, sizeof(r->hint), "The VM's internal address is IPv4, and connections "
		         "to it are refused ([::] with IPV6_V6ONLY takes no IPv4): bind the service to "
		         "0.0.0.0, or to [::] with IPV6_V6ONLY off; check with `ss -ltnp 'sport = :%u'`.",
		         port);
	} else {
		r->verdict = VP_VERDICT_REFUSED;
		r->reason = "not_listening";
		snprintf(r->detail, sizeof(r->detail), "nothing listens on port %u: connections are "
		         "refused (RST)", port);
		snprintf(r->hint, sizeof(r->hint), "Start the service, or check that it is configured "
		         "for port %u (`ss -ltnp`, `systemctl status`).", port);
	}
}

void vp_listen_result_of(const struct vp_listen_port *p, struct vp_listen_result *out)
{
	const struct vp_listen_sock *rep = port_rep(p);
	char owner[VP_LISTEN_COMM_MAX + 32] = "", scope_hint[VP_HINT_MAX];
	size_t dl;

	memset(out, 0, sizeof(*out));
	out->port = p->port;
	out->scope = p->scope;
	join_addresses(p, out->addresses, sizeof(out->addresses));
	if (rep && rep->pid > 0) {
		out->pid = rep->pid;
		safe_name(out->process, sizeof(out->process), rep->comm);
		snprintf(owner, sizeof(owner), " (pid %d %s)", out->pid, out->process);
	}
	if (rep) {
		out->queue_cur = rep->queue_cur;
		out->queue_max = rep->queue_max;
		out->queue_max_known = rep->queue_max_known;
	}
	explain_scope(p, owner, out);
	if (!p->overflowing)
		return;
	out->finding = VP_LISTEN_FINDING_OVERFLOW;
	dl = strlen(out->detail);
	snprintf(out->detail + dl, sizeof(out->detail) - dl, "; " VP_LISTEN_FINDING_OVERFLOW
	         " (%u waiting, backlog %u)", out->queue_cur, out->queue_max);
	memcpy(scope_hint, out->hint, sizeof(scope_hint));
	snprintf(out->hint, sizeof(out->hint), "The service does not accept() fast enough: its "
	         "accept queue is full, the kernel drops new SYNs, and clients time out. Look at the "
	         "service's load and worker count, and its listen() backlog.");
	dl = strlen(out->hint);
	if (scope_hint[0])
		snprintf(out->hint + dl, sizeof(out->hint) - dl, " %s", scope_hint); /* cut if need be */
}

/* ---- records ------------------------------------------------------------------ */

/* "a, b" as ["a", "b"]; [] for "". */
static json_t *address_list(const char *text)
{
	json_t *arr = json_array();
	const char *p = text;

	while (arr && *p) {
		size_t n = strcspn(p, ",");

		json_array_append_new(arr, json_stringn(p, n));
		p += n;
		p += strspn(p, ", ");
	}
	return arr;
}

json_t *vp_listen_result_record(const char *agent, const struct vp_listen_result *r)
{
	bool listening = r->addresses[0] != '\0';
	char when[40], target[32];

	if (r->runs == 0)
		return NULL;
	vp_format_time(&r->wall, when, sizeof(when));
	snprintf(target, sizeof(target), "listener:%u", (unsigned)r->port);
	return json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:o,s:o,s:o,s:{s:o,s:o},s:s?,s:s?,s:s,"
	                 "s:s}",
	                 "time", when, "agent", agent, "target", target, "kind", "listener",
	                 "port", (int)r->port,
	                 "verdict", vp_verdict_name(r->verdict), "reason", r->reason,
	                 "scope", vp_listen_scope_name(r->scope),
	                 "addresses", address_list(r->addresses),
	                 "pid", r->pid > 0 ? json_integer(r->pid) : json_null(),
	                 "process", r->pid > 0 ? json_string(r->process) : json_null(),
	                 "queue", "current", listening ? json_integer(r->queue_cur) : json_null(),
	                 "max", listening && r->queue_max_known ? json_integer(r->queue_max) :
	                 json_null(),
	                 "finding", r->finding, "source", r->source,
	                 "detail", r->detail, "hint", r->hint);
}

static const char *arrival_reason(const struct vp_beacon_arrival *a)
{
	if (a->match == VP_BEACON_INSIDE)
		return "inside_expect_from";
	return a->match == VP_BEACON_OUTSIDE ? "outside_expect_from" : "arrived";
}

json_t *vp_beacon_arrival_record(const char *agent, const char *listen, const char *expect,
                                 const struct vp_beacon_arrival *a)
{
	char when[40], detail[VP_DETAIL_MAX], hint[VP_HINT_MAX], target[VP_NAME_MAX + 8];

	vp_format_time(&a->wall, when, sizeof(when));
	vp_beacon_explain(a, listen, expect, detail, sizeof(detail), hint, sizeof(hint));
	snprintf(target, sizeof(target), "beacon:%s", listen);
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:o,s:s?,s:b,s:I,s:s,s:s,s:s,s:s}",
	                 "time", when, "agent", agent, "target", target, "kind", "beacon",
	                 "listen", listen,
	                 "source", a->source, "source_port", (int)a->source_port,
	                 "expected", a->match == VP_BEACON_UNCHECKED ? json_null() :
	                 json_boolean(a->match == VP_BEACON_INSIDE),
	                 "expect_from", a->cidr[0] ? a->cidr : NULL, "over_cap", a->over_cap,
	                 "seq", (json_int_t)a->seq, "verdict", "ok", "reason", arrival_reason(a),
	                 "detail", detail, "hint", hint);
}

/* ---- the timer --------------------------------------------------------------- */

static void unreadable(uint16_t port, int err, struct vp_listen_result *r)
{
	memset(r, 0, sizeof(*r));
	r->port = port;
	r->verdict = VP_VERDICT_LOCAL_ERROR;
	r->reason = "table_unreadable";
	snprintf(r->detail, sizeof(r->detail), "the listener table could not be read (netlink "
	         "sock_diag and /proc/net/tcp): %s", strerror(-err));
	snprintf(r->hint, sizeof(r->hint), "The agent itself cannot see this host's sockets: check "
	         "its sandbox (RestrictAddressFamilies= must allow AF_NETLINK, ProcSubset= must "
	         "show /proc/net).");
}

/* Keeps 'nr' as port's result, logging a change of verdict, reason or
 * finding once (a first reading only when it is not ok). */
static void update(struct vp_listen_result *old, struct vp_listen_result *nr)
{
	bool changed = old->runs == 0 || old->verdict != nr->verdict ||
	               strcmp(old->reason, nr->reason) || old->finding != nr->finding;

	nr->changed_ms = old->changed_ms;
	if (changed) {
		if (old->runs > 0 || nr->verdict != VP_VERDICT_OK || nr->finding)
			vp_log_info("listener port %u: %s%s%s%s -> %s (%s): %s", (unsigned)nr->port,
			            old->runs ? vp_verdict_name(old->verdict) : "start",
			            old->runs ? " (" : "", old->runs ? old->reason : "", old->runs ? ")" : "",
			            vp_verdict_name(nr->verdict), nr->reason, nr->detail);
		nr->changed_ms = (int64_t)nr->wall.tv_sec * 1000 + nr->wall.tv_nsec / 1000000;
	}
	vp_log_debug("listener port %u: %s (%s): %s", (unsigned)nr->port, vp_verdict_name(nr->verdict),
	             nr->reason, nr->detail);
	nr->runs = old->runs + 1;
	*old = *nr;
}

static void on_tick(uv_timer_t *t)
{
	struct vp_listen_checks *lc = t->data;
	struct vp_listen_result nr;
	struct vp_listen_port p;
	int r;

	/* A sock_diag dump and an owner scan of /proc: short and blocking, as
	 * the runner's reading for a refusal is, once an interval. */
	r = vp_listen_read(&lc->table, VP_LISTEN_SOURCE_AUTO);
	if (r == 0 && lc->table.netlink_err)
		vp_log_debug("listener table: netlink sock_diag: %s; read /proc/net/tcp instead",
		             strerror(-lc->table.netlink_err));
	for (size_t i = 0; i < lc->n_results; i++) {
		if (r == 0) {
			vp_listen_port_get(&lc->table, lc->results[i].port, &p);
			vp_listen_result_of(&p, &nr);
			nr.source = vp_listen_source_name(lc->table.source);
		} else {
			unreadable(lc->results[i].port, r, &nr);
		}
		clock_gettime(CLOCK_REALTIME, &nr.wall);
		update(&lc->results[i], &nr);
		if (lc->on_result)
			lc->on_result(&lc->results[i], lc->arg);
	}
}

/* The listener part of a configuration: results of ports that stay are
 * kept, the timer restarts with the interval. */
static int apply_listeners(struct vp_listen_checks *lc, const struct vp_config *cfg)
{
	struct vp_listen_result *res = NULL;
	uint64_t interval_ms = (uint64_t)cfg->interval_s * 1000;

	if (cfg->n_listeners) {
		res = calloc(cfg->n_listeners, sizeof(*res));
		if (!res)
			return -ENOMEM;
	}
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		res[i].port = cfg->listeners[i].port;
		for (size_t j = 0; j < lc->n_results; j++)
			if (lc->results[j].port == res[i].port)
				res[i] = lc->results[j];
	}
	free(lc->results);
	lc->results = res;
	lc->n_results = cfg->n_listeners;
	if (lc->n_results)
		(void)uv_timer_start(&lc->timer, on_tick, 0, interval_ms); /* only EINVAL without a callback */
	else
		(void)uv_timer_stop(&lc->timer); /* returns 0 */
	return 0;
}

/* ---- beacons ------------------------------------------------------------------ */

static void relay_arrival(struct vp_beacon_server *b, const struct vp_beacon_arrival *a, void *arg)
{
	struct vp_listen_checks *lc = arg;

	if (lc->on_arrival && !lc->stopped)
		lc->on_arrival(b, a, lc->arg);
}

static int start_beacon(struct vp_listen_checks *lc, const struct vp_config *cfg, size_t i,
                        struct vp_beacon_server **ret)
{
	const struct vp_beacon *bc = &cfg->beacons[i];
	const struct vp_beacon_opts o = {
		.listen = bc->listen, .expect_from = bc->expect_from,
		.n_expect_from = bc->n_expect_from, .agent = cfg->agent_name,
		.on_arrival = relay_arrival, .arg = lc,
	};
	char err[VP_ERR_MAX], expect[VP_DETAIL_MAX];
	int r;

	r = vp_beacon_server_start(lc->loop, &o, ret, err, sizeof(err));
	if (r < 0) {
		vp_log_err("beacons[%zu]: %s", i, err);
		return r;
	}
	vp_beacon_server_expect_text(*ret, expect, sizeof(expect));
	vp_log_info("beacon %s: listening%s%s", bc->listen, bc->n_expect_from ? ", expecting " : "",
	            expect);
	return 0;
}

/* The beacon part: a running beacon whose settings did not change stays
 * (with its arrivals and connections); the others close first, so that
 * one that changed only its expect_from can bind its address again. */
static int apply_beacons(struct vp_listen_checks *lc, const struct vp_config *cfg)
{
	struct vp_beacon_server **next = NULL;
	int r, first = 0;

	if (cfg->n_beacons) {
		next = calloc(cfg->n_beacons, sizeof(*next));
		if (!next)
			return -ENOMEM;
	}
	for (size_t j = 0; j < lc->n_beacons; j++) {
		for (size_t i = 0; i < cfg->n_beacons && lc->beacons[j]; i++) {
			const struct vp_beacon *bc = &cfg->beacons[i];

			if (!next[i] && vp_beacon_server_same(lc->beacons[j], bc->listen, bc->expect_from,
			                                      bc->n_expect_from, cfg->agent_name)) {
				next[i] = lc->beacons[j];
				lc->beacons[j] = NULL;
			}
		}
		if (lc->beacons[j])
			vp_log_info("beacon %s: closed", vp_beacon_server_listen(lc->beacons[j]));
		vp_beacon_server_close(lc->beacons[j], NULL, NULL); /* accepts NULL */
	}
	for (size_t i = 0; i < cfg->n_beacons; i++) {
		r = next[i] ? 0 : start_beacon(lc, cfg, i, &next[i]);
		if (r < 0 && first == 0)
			first = r;
	}
	free(lc->beacons);
	lc->beacons = next;
	lc->n_beacons = cfg->n_beacons;
	return first;
}

/* ---- the set ------------------------------------------------------------------ */

struct vp_listen_checks *vp_listen_checks_new(uv_loop_t *loop, vp_beacon_arrival_cb on_arrival,
                                              void *arg)
{
	struct vp_listen_checks *lc = calloc(1, sizeof(*lc));

	if (!lc)
		return NULL;
	lc->loop = loop;
	lc->on_arrival = on_arrival;
	lc->arg = arg;
	vp_listen_table_init(&lc->table);
	uv_timer_init(loop, &lc->timer);   /* cannot fail */
	lc->timer.data = lc;
	return lc;
}

int vp_listen_checks_apply(struct vp_listen_checks *lc, const struct vp_config *cfg)
{
	int r;

	if (lc->stopped)
		return -ESHUTDOWN;
	r = apply_listeners(lc, cfg);
	if (r < 0) {
		vp_log_err("listener checks: out of memory; keeping the previous ones");
		return r;
	}
	return apply_beacons(lc, cfg);
}

void vp_listen_checks_stop(struct vp_listen_checks *lc)
{
	if (!lc || lc->stopped)
		return;
	lc->stopped = true;
	uv_close((uv_handle_t *)&lc->timer, NULL);
	for (size_t i = 0; i < lc->n_beacons; i++) {
		vp_beacon_server_close(lc->beacons[i], NULL, NULL);
		lc->beacons[i] = NULL;
	}
}

struct vp_listen_checks *vp_listen_checks_free(struct vp_listen_checks *lc)
{
	if (!lc)
		return NULL;
	vp_listen_table_done(&lc->table);
	free(lc->results);
	free(lc->beacons);
	free(lc);
	return NULL;
}

void vp_listen_checks_on_result(struct vp_listen_checks *lc, vp_listen_result_cb cb)
{
	lc->on_result = cb;
}

size_t vp_listen_checks_count(const struct vp_listen_checks *lc)
{
	return lc ? lc->n_results : 0;
}

const struct vp_listen_result *vp_listen_checks_result(const struct vp_listen_checks *lc, size_t i)
{
	return lc && i < lc->n_results ? &lc->results[i] : NULL;
}

size_t vp_listen_checks_beacon_count(const struct vp_listen_checks *lc)
{
	return lc ? lc->n_beacons : 0;
}

struct vp_beacon_server *vp_listen_checks_beacon(const struct vp_listen_checks *lc, size_t i)
{
	return lc && i < lc->n_beacons ? lc->beacons[i] : NULL;
}

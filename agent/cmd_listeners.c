/* vpcprobe listeners: this host's listening TCP sockets, and for each asked
 * port whether it takes connections on every address or on loopback only. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cli.h"
#include "agent/term.h"
#include "probes/listeners.h"

#define SOURCE_ENV "VPCPROBE_LISTENERS_SOURCE"
#define FINDING_OVERFLOW "listen queue overflowing"
#define ADDRS_WIDTH_MAX 40
#define COLOUR_RESET "\033[0m"

static const char listeners_usage[] =
	"Usage: vpcprobe listeners [--json] [PORT...]\n"
	"\n"
	"Shows this host's listening TCP sockets (IPv4 and IPv6): the address and\n"
	"port, IPV6_V6ONLY, the owning process, and the accept queue (connections\n"
	"waiting for accept() against the backlog that listen() was given).\n"
	"\n"
	"With PORTs, one row per port with its scope:\n"
	"  all_interfaces    0.0.0.0, or [::] with IPV6_V6ONLY off, which takes IPv4\n"
	"                    too: the VM's internal address reaches it\n"
	"  loopback_only     only 127.0.0.0/8 and ::1: Cloud Run, coming through the\n"
	"                    Serverless VPC Access connector to the VM's internal\n"
	"                    address, is refused; bind the service to 0.0.0.0\n"
	"  specific_address  only the addresses listed; connections to any other\n"
	"                    address of the host are refused. [::] with IPV6_V6ONLY\n"
	"                    on takes every IPv6 address but no IPv4 one, so alone it\n"
	"                    is specific_address (\"::\")\n"
	"  not_listening     nothing listens: a connection is refused\n"
	"and the finding \"" FINDING_OVERFLOW "\" when an accept queue is full:\n"
	"the service does not accept() fast enough, the kernel drops new SYNs, and\n"
	"clients see timeouts.\n"
	"Without PORTs, every listening socket.\n"
	"\n"
	"The sockets are read through NETLINK_SOCK_DIAG, or from /proc/net/tcp and\n"
	"/proc/net/tcp6 when netlink is not allowed. /proc shows neither the backlog\n"
	"maximum nor IPV6_V6ONLY: there the maximum is null, no queue is reported as\n"
	"overflowing, and [::] is taken as also taking IPv4 (the Linux default,\n"
	"net.ipv6.bindv6only=0). Owners are found in /proc/PID/fd; processes of\n"
	"other users need root, and their pid is null otherwise.\n"
	"\n"
	"Options:\n"
	"      --json   print one JSON document instead of the table:\n"
	"               with PORTs {\"source\":\"netlink\"|\"proc\",\"ports\":[{\"port\",\n"
	"               \"scope\",\"addresses\":[...],\"sockets\":[...],\"finding\"}]},\n"
	"               without {\"source\":...,\"sockets\":[...]}; a socket is\n"
	"               {\"address\",\"port\",\"family\":\"ipv4\"|\"ipv6\",\"v6only\",\"pid\",\n"
	"               \"process\",\"queue\":{\"current\",\"max\"},\"finding\"}, null where\n"
	"               unknown; \"finding\" is null or \"" FINDING_OVERFLOW "\"\n"
	"  -h, --help   show this help\n"
	"\n"
	"Environment:\n"
	"  " SOURCE_ENV "=auto|netlink|proc\n"
	"               for testing: read only through that source (default auto:\n"
	"               netlink, else /proc)\n"
	"  NO_COLOR     no colour; the table is coloured only on a terminal\n"
	"\n"
	"Exit status: 0 success, 1 the sockets could not be read, 2 bad usage (a\n"
	"PORT not in 1..65535).\n";

static int parse_port(const char *s, uint16_t *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] < '0' || s[0] > '9' || v < 1 || v > 65535) {
		fprintf(stderr, "vpcprobe listeners: port '%s': expected a number in 1..65535\n", s);
		return -EINVAL;
	}
	*ret = (uint16_t)v;
	return 0;
}

static int source_from_env(enum vp_listen_source *ret)
{
	const char *v = getenv(SOURCE_ENV);

	*ret = VP_LISTEN_SOURCE_AUTO;
	if (!v || !v[0] || !strcmp(v, "auto"))
		return 0;
	if (!strcmp(v, "netlink")) {
		*ret = VP_LISTEN_SOURCE_NETLINK;
		return 0;
	}
	if (!strcmp(v, "proc")) {
		*ret = VP_LISTEN_SOURCE_PROC;
		return 0;
	}
	fprintf(stderr, "vpcprobe listeners: %s='%s': expected auto, netlink or proc\n", SOURCE_ENV, v);
	return -EINVAL;
}

/* ---- JSON ------------------------------------------------------------------ */

static json_t *sock_json(const struct vp_listen_sock *s)
{
	char a[INET6_ADDRSTRLEN];
	json_t *v6only = json_null();

	vp_listen_addr_text(s, a, sizeof(a));
	if (s->family == AF_INET6 && s->v6only != VP_V6ONLY_UNKNOWN)
		v6only = json_boolean(s->v6only == VP_V6ONLY_ON);
	return json_pack("{s:s, s:i, s:s, s:o, s:o, s:o, s:{s:I, s:o}, s:o}",
	                 "address", a, "port", (int)s->port,
	                 "family", s->family == AF_INET ? "ipv4" : "ipv6", "v6only", v6only,
	                 "pid", s->pid > 0 ? json_integer(s->pid) : json_null(),
	                 "process", s->pid > 0 ? json_string(s->comm) : json_null(),
	                 "queue", "current", (json_int_t)s->queue_cur,
	                 "max", s->queue_max_known ? json_integer(s->queue_max) : json_null(),
	                 "finding", vp_listen_sock_overflowing(s) ? json_string(FINDING_OVERFLOW) : json_null());
}

/* Appends every socket of socks[0..n) to 'arr'; -ENOMEM on failure. */
static int socks_json(json_t *arr, const struct vp_listen_sock *socks, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(arr, sock_json(&socks[i])) < 0)
			return -ENOMEM;
	return 0;
}

static json_t *port_json(const struct vp_listen_port *p)
{
	json_t *addrs = json_array(), *socks = json_array();
	char a[INET6_ADDRSTRLEN], prev[INET6_ADDRSTRLEN] = "";

	bool ok = addrs && socks;

	for (size_t i = 0; ok && i < p->n; i++) {
		vp_listen_addr_text(&p->socks[i], a, sizeof(a));
		if (strcmp(a, prev) && json_array_append_new(addrs, json_string(a)) < 0)
			ok = false;
		memcpy(prev, a, sizeof(prev));
	}
	if (!ok || socks_json(socks, p->socks, p->n) < 0) {
		json_decref(addrs);
		json_decref(socks);
		return NULL;
	}
	/* "o" steals the references, also when packing fails. */
	return json_pack("{s:i, s:s, s:o, s:o, s:o}", "port", (int)p->port,
	                 "scope", vp_listen_scope_name(p->scope), "addresses", addrs, "sockets", socks,
	                 "finding", p->overflowing ? json_string(FINDING_OVERFLOW) : json_null());
}

static int print_json(const struct vp_listen_table *t, const uint16_t *ports, size_t n_ports)
{
	json_t *doc = json_pack("{s:s}", "source", vp_listen_source_name(t->source));
	json_t *arr = json_array();
	char *text = NULL;
	int r = -ENOMEM;

	if (!doc || !arr)
		goto out;
	for (size_t i = 0; i < n_ports; i++) {
		struct vp_listen_port p;

		vp_listen_port_get(t, ports[i], &p);
		if (json_array_append_new(arr, port_json(&p)) < 0)
			goto out;
	}
	if (!n_ports && socks_json(arr, t->socks, t->n) < 0)
		goto out;
	if (json_object_set(doc, n_ports ? "ports" : "sockets", arr) < 0)
		goto out;
	text = json_dumps(doc, JSON_COMPACT);
	if (!text)
		goto out;
	printf("%s\n", text);
	r = 0;
out:
	if (r < 0)
		fputs("vpcprobe listeners: out of memory writing the JSON document\n", stderr);
	free(text);
	json_decref(arr);
	json_decref(doc);
	return r;
}

/* ---- the table ------------------------------------------------------------- */

static const char *scope_colour(enum vp_listen_scope s)
{
	switch (s) {
	case VP_SCOPE_ALL_INTERFACES:
		return "\033[32m";   /* green: reachable on every address */
	case VP_SCOPE_NOT_LISTENING:
		return "\033[31m";   /* red */
	default:
		return "\033[33m";   /* yellow: some addresses refuse */
	}
}

static void queue_text(const struct vp_listen_sock *s, char *buf, size_t len)
{
	if (!s)
		snprintf(buf, len, "-");
	else if (s->queue_max_known)
		snprintf(buf, len, "%u/%u", s->queue_cur, s->queue_max);
	else
		snprintf(buf, len, "%u/?", s->queue_cur);
}

static void owner_cols(const struct vp_listen_sock *s, char *pid, size_t plen, char *comm, size_t clen)
{
	snprintf(pid, plen, "-");
	snprintf(comm, clen, "-");
	if (s && s->pid > 0) {
		snprintf(pid, plen, "%d", s->pid);
		vp_term_safe(comm, clen, s->comm);
	}
}

/* "127.0.0.1,::(v6only)": the distinct addresses, with IPV6_V6ONLY of [::]. */
static void addrs_text(const struct vp_listen_port *p, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN], prev[INET6_ADDRSTRLEN] = "";
	size_t o = 0;

	snprintf(buf, len, "-");
	for (size_t i = 0; i < p->n && o < len; i++) {
		const struct vp_listen_sock *s = &p->socks[i];
		const char *mark = "";

		vp_listen_addr_text(s, a, sizeof(a));
		if (!strcmp(a, prev))
			continue;
		memcpy(prev, a, sizeof(prev));
		if (s->family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&s->addr.v6))
			mark = s->v6only == VP_V6ONLY_ON ? "(v6only)" : s->v6only == VP_V6ONLY_OFF ? "" : "(v6only?)";
		o += (size_t)snprintf(buf + o, len - o, "%s%s%s", o ? "," : "", a, mark);
	}
}

/* The socket that speaks for a port: the first with an owner, and the
 * fullest queue when one overflows. */
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

/* What a port's scope means for Cloud Run, below the table. */
static void port_note(FILE *f, const struct vp_listen_port *p, const char *addrs)
{
	const struct vp_listen_sock *rep = port_rep(p);

	if (p->scope == VP_SCOPE_LOOPBACK_ONLY)
		fprintf(f, "port %u: bound to loopback only (%s): connections to this VM's internal address "
		        "are refused; bind the service to 0.0.0.0 or to that address\n", (unsigned)p->port, addrs);
	else if (p->scope == VP_SCOPE_SPECIFIC_ADDRESS && strstr(addrs, "::(v6only)"))
		fprintf(f, "port %u: bound to %s only; [::] with IPV6_V6ONLY takes no IPv4, so connections "
		        "to this VM's internal IPv4 address are refused\n", (unsigned)p->port, addrs);
	else if (p->scope == VP_SCOPE_SPECIFIC_ADDRESS)
		fprintf(f, "port %u: bound to %s only: connections to any other address of this host are "
		        "refused\n", (unsigned)p->port, addrs);
	else if (p->scope == VP_SCOPE_NOT_LISTENING)
		fprintf(f, "port %u: nothing listens: connections are refused (RST)\n", (unsigned)p->port);
	if (p->overflowing)
		fprintf(f, "port %u: " FINDING_OVERFLOW " (%u waiting, backlog %u): the service does not "
		        "accept() fast enough; the kernel drops new SYNs and clients time out\n",
		        (unsigned)p->port, rep->queue_cur, rep->queue_max);
}

static void print_ports_table(FILE *f, const struct vp_listen_table *t, const uint16_t *ports, size_t n)
{
	bool colour = vp_term_colour(f);
	char addrs[256], pid[16], comm[VP_LISTEN_COMM_MAX], q[32];
	struct vp_listen_port p;
	int wa = (int)strlen("ADDRESSES");

	for (size_t i = 0; i < n; i++) {
		vp_listen_port_get(t, ports[i], &p);
		addrs_text(&p, addrs, sizeof(addrs));
		wa = (int)strlen(addrs) > wa ? (int)strlen(addrs) : wa;
	}
	wa = wa > ADDRS_WIDTH_MAX ? ADDRS_WIDTH_MAX : wa;
	fprintf(f, "%5s  %-16s  %-*s  %7s  %-15s  %11s  %s\n", "PORT", "SCOPE", wa, "ADDRESSES", "PID",
	        "PROCESS", "QUEUE", "FINDING");
	for (size_t i = 0; i < n; i++) {
		const struct vp_listen_sock *rep;

		vp_listen_port_get(t, ports[i], &p);
		rep = port_rep(&p);
		addrs_text(&p, addrs, sizeof(addrs));
		owner_cols(rep, pid, sizeof(pid), comm, sizeof(comm));
		queue_text(rep, q, sizeof(q));
		fprintf(f, "%5u  %s%-16s%s  %-*s  %7s  %-15s  %11s  %s%s%s\n", (unsigned)p.port,
		        colour ? scope_colour(p.scope) : "", vp_listen_scope_name(p.scope),
		        colour ? COLOUR_RESET : "", wa, addrs, pid, comm, q,
		        colour && p.overflowing ? "\033[31m" : "", p.overflowing ? FINDING_OVERFLOW : "-",
		        colour && p.overflowing ? COLOUR_RESET : "");
	}
	for (size_t i = 0; i < n; i++) {
		vp_listen_port_get(t, ports[i], &p);
		addrs_text(&p, addrs, sizeof(addrs));
		if (i == 0)
			fputc('\n', f);
		port_note(f, &p, addrs);
	}
}

static void print_all_table(FILE *f, const struct vp_listen_table *t)
{
	bool colour = vp_term_colour(f);
	char a[INET6_ADDRSTRLEN], pid[16], comm[VP_LISTEN_COMM_MAX], q[32];
	int wa = (int)strlen("ADDRESS");

	for (size_t i = 0; i < t->n; i++) {
		vp_listen_addr_text(&t->socks[i], a, sizeof(a));
		wa = (int)strlen(a) > wa ? (int)strlen(a) : wa;
	}
	fprintf(f, "%-*s  %5s  %-6s  %-6s  %7s  %-15s  %11s  %s\n", wa, "ADDRESS", "PORT", "FAMILY",
	        "V6ONLY", "PID", "PROCESS", "QUEUE", "FINDING");
	for (size_t i = 0; i < t->n; i++) {
		const struct vp_listen_sock *s = &t->socks[i];
		bool over = vp_listen_sock_overflowing(s);
		const char *v6 = s->family == AF_INET ? "-" : s->v6only == VP_V6ONLY_ON ? "yes"
		                 : s->v6only == VP_V6ONLY_OFF ? "no" : "?";

		vp_listen_addr_text(s, a, sizeof(a));
		owner_cols(s, pid, sizeof(pid), comm, sizeof(comm));
		queue_text(s, q, sizeof(q));
		fprintf(f, "%-*s  %5u  %-6s  %-6s  %7s  %-15s  %11s  %s%s%s\n", wa, a, (unsigned)s->port,
		        s->family == AF_INET ? "ipv4" : "ipv6", v6, pid, comm, q,
		        colour && over ? "\033[31m" : "", over ? FINDING_OVERFLOW : "-",
		        colour && over ? COLOUR_RESET : "");
	}
}

/* ---- the command ----------------------------------------------------------- */

static void print_notices(const struct vp_listen_table *t)
{
	if (t->netlink_err)
		fprintf(stderr, "vpcprobe listeners: netlink sock_diag: %s; read /proc/net/tcp and tcp6 "
		        "instead (no backlog maximum, no IPV6_V6ONLY)\n", strerror(-t->netlink_err));
	if (t->truncated)
		fprintf(stderr, "vpcprobe listeners: more than %d listening sockets; the rest are not "
		        "shown\n", VP_LISTEN_SOCKETS_MAX);
	if (t->owners_partial)
		fprintf(stderr, "vpcprobe listeners: the owner search stopped after %d descriptors; some "
		        "pids are missing\n", VP_LISTEN_SCAN_LINKS_MAX);
}

static int parse_args(int argc, char **argv, bool *json, uint16_t *ports, size_t *n_ports)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			*json = true;
			break;
		case 'h':
			fputs(listeners_usage, stdout);
			return 1;
		default:
			fputs("Try 'vpcprobe listeners --help'.\n", stderr);
			return -EINVAL;
		}
	}
	if (argc - optind > VP_LISTEN_PORTS_MAX) {
		fprintf(stderr, "vpcprobe listeners: %d ports given; at most %d\n", argc - optind,
		        VP_LISTEN_PORTS_MAX);
		return -EINVAL;
	}
	for (int i = optind; i < argc; i++)
		if (parse_port(argv[i], &ports[(*n_ports)++]) < 0)
			return -EINVAL;
	return 0;
}

int vp_cmd_listeners(int argc, char **argv)
{
	struct vp_listen_table t;
	enum vp_listen_source src;
	uint16_t *ports = calloc(VP_LISTEN_PORTS_MAX, sizeof(*ports)); /* owned */
	size_t n_ports = 0;
	bool json = false;
	int status = VP_EXIT_USAGE, r;

	vp_listen_table_init(&t);
	if (!ports) {
		fputs("vpcprobe listeners: out of memory\n", stderr);
		return VP_EXIT_NOT_OK;
	}
	r = parse_args(argc, argv, &json, ports, &n_ports);
	if (r != 0 || source_from_env(&src) < 0) {
		status = r > 0 ? VP_EXIT_OK : VP_EXIT_USAGE;
		goto out;
	}
	status = VP_EXIT_NOT_OK;
	r = vp_listen_read(&t, src);
	if (r < 0) {
		fprintf(stderr, "vpcprobe listeners: reading the listening sockets (%s): %s\n",
		        vp_listen_source_name(src == VP_LISTEN_SOURCE_AUTO ? t.source : src), strerror(-r));
		goto out;
	}
	print_notices(&t);
	if (json) {
		if (print_json(&t, ports, n_ports) < 0)
			goto out;
	} else {
		printf("source: %s\n", vp_listen_source_name(t.source));
		if (n_ports)
			print_ports_table(stdout, &t, ports, n_ports);
		else
			print_all_table(stdout, &t);
	}
	status = VP_EXIT_OK;
out:
	vp_listen_table_done(&t);
	free(ports);
	return status;
}

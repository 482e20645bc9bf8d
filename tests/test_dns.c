/* The DNS probe: the c-ares status table, the hints, the server list, and
 * live lookups against a dnsmasq that this test starts on 127.0.0.1.
 *
 * Network rule: every query goes to loopback, to the dnsmasq or to sockets
 * this test opened; no test asks the machine's resolver. Without a dnsmasq
 * binary the live part is skipped and the program exits 77 (meson: SKIP). */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ares.h>

#include "probes/dns.h"

/* ---- the status table ---- */

struct status_row {
	int ares_status;
	const char *reason;
	int status;
	const char *detail_has;
};

static const struct status_row status_rows[] = {
	{ ARES_ENOTFOUND, "nxdomain", -ENOENT, "name 'db.example.internal' does not exist (NXDOMAIN)" },
	{ ARES_ENODATA, "no_address", -ENODATA, "has no A or AAAA record (NODATA)" },
	{ ARES_ESERVFAIL, "servfail", -EAGAIN, "failed to answer for 'db.example.internal' (SERVFAIL)" },
	{ ARES_ETIMEOUT, "dns_timeout", -ETIMEDOUT, "for 'db.example.internal' within 1500 ms" },
	{ ARES_EREFUSED, "dns_refused", -EACCES, "refused to answer for 'db.example.internal' (REFUSED)" },
	{ ARES_ECONNREFUSED, "dns_other", -ECONNREFUSED, "no DNS server could be reached" },
	{ ARES_ENOTIMP, "dns_other", -EOPNOTSUPP, "(NOTIMP)" },
	{ ARES_EFORMERR, "dns_other", -EPROTO, "(FORMERR)" },
	{ ARES_EBADRESP, "dns_other", -EPROTO, "malformed reply" },
	{ ARES_EOF, "dns_other", -ECONNRESET, "closed the connection" },
	{ ARES_EBADNAME, "dns_other", -EINVAL, "is not a valid DNS name" },
	{ ARES_ECANCELLED, "dns_other", -ECANCELED, "cancelled" },
	{ ARES_EDESTRUCTION, "dns_other", -ECANCELED, "cancelled" },
	{ ARES_ENOMEM, "dns_other", -ENOMEM, "out of memory" },
	{ ARES_EFILE, "dns_other", -EIO, "configuration could not be read" },
	/* A status this table does not know keeps c-ares' own words. */
	{ 9999, "dns_other", -EIO, "(c-ares status 9999)" },
};

START_TEST(test_status_row)
{
	const struct status_row *row = &status_rows[_i];
	char detail[VP_DETAIL_MAX];
	enum vp_reason reason = VP_REASON_INVALID;
	int st;

	st = vp_dns_classify(row->ares_status, "db.example.internal", 1500, &reason, detail,
	                     sizeof(detail));
	ck_assert_msg(st == row->status, "row %d: status %d, expected %d", _i, st, row->status);
	ck_assert_str_eq(vp_reason_name(reason), row->reason);
	ck_assert_msg(strstr(detail, row->detail_has), "row %d: detail '%s' lacks '%s'", _i, detail,
	              row->detail_has);
}
END_TEST

/* A long name is cut at the buffer, never past it. */
START_TEST(test_status_truncates)
{
	char name[VP_HOST_MAX];
	char detail[40];
	enum vp_reason reason;

	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	memset(detail, 'X', sizeof(detail));
	ck_assert_int_eq(vp_dns_classify(ARES_ETIMEOUT, name, 10, &reason, detail, sizeof(detail)),
	                 -ETIMEDOUT);
	ck_assert_uint_eq(strlen(detail), sizeof(detail) - 1);
}
END_TEST

/* ---- the hints ---- */

struct hint_row {
	enum vp_reason reason;
	const char *name;
	const char *has;          /* NULL: the hint must be empty */
	const char *lacks;
};

static const struct hint_row hint_rows[] = {
	{ VP_REASON_NXDOMAIN, "orders-db.example.com", "private zone, that zone is not visible from "
	  "this VPC network", "*.internal" },
	{ VP_REASON_NXDOMAIN, "orders-db.example.com", "private-ranges-only, DNS goes through "
	  "Google's resolver and private names of peered zones may not resolve", NULL },
	{ VP_REASON_NXDOMAIN, "api-vm.europe-west1-b.c.proj.internal", "resolve only inside the VPC "
	  "network", "bind the private zone" },
	{ VP_REASON_NXDOMAIN, "API-VM.c.proj.INTERNAL.", "*.internal name", NULL },
	{ VP_REASON_NXDOMAIN, "internal", "The resolver does not know 'internal'", NULL },
	{ VP_REASON_SERVFAIL, "db.example.com", "forwarding or peering zone", NULL },
	{ VP_REASON_DNS_TIMEOUT, "db.example.com", "firewall dropping port 53", NULL },
	{ VP_REASON_DNS_TIMEOUT, "db.example.com", "slower than half of timeout_ms", NULL },
	{ VP_REASON_DNS_TIMEOUT, "db.example.com", "check --dns-server 169.254.169.254", NULL },
	{ VP_REASON_NO_ADDRESS, "db.example.com", "'db.example.com' exists but has no A or AAAA", NULL },
	{ VP_REASON_DNS_REFUSED, "db.example.com", "refused to answer for 'db.example.com'", NULL },
	{ VP_REASON_DNS_OTHER, "db.example.com", "agent.dns_servers", NULL },
	{ VP_REASON_RST_TO_SYN, "db.example.com", NULL, NULL },
	{ VP_REASON_INVALID, "db.example.com", NULL, NULL },
};

START_TEST(test_hint_row)
{
	const struct hint_row *row = &hint_rows[_i];
	char hint[VP_HINT_MAX];

	vp_dns_hint(row->reason, row->name, hint, sizeof(hint));
	if (!row->has) {
		ck_assert_str_eq(hint, "");
		return;
	}
	ck_assert_msg(strstr(hint, row->has), "row %d: hint '%s' lacks '%s'", _i, hint, row->has);
	ck_assert_msg(!row->lacks || !strstr(hint, row->lacks), "row %d: hint '%s' has '%s'", _i,
	              hint, row->lacks);
	/* Every hint fits VP_HINT_MAX whole, so that none is cut mid-sentence. */
	ck_assert_msg(strlen(hint) < sizeof(hint) - 1, "row %d: hint fills the buffer", _i);
}
END_TEST

START_TEST(test_reason_names)
{
	ck_assert_str_eq(vp_reason_name(VP_REASON_NXDOMAIN), "nxdomain");
	ck_assert_str_eq(vp_reason_name(VP_REASON_SERVFAIL), "servfail");
	ck_assert_str_eq(vp_reason_name(VP_REASON_DNS_TIMEOUT), "dns_timeout");
	ck_assert_str_eq(vp_reason_name(VP_REASON_NO_ADDRESS), "no_address");
	ck_assert_str_eq(vp_reason_name(VP_REASON_DNS_REFUSED), "dns_refused");
	ck_assert_str_eq(vp_reason_name(VP_REASON_DNS_OTHER), "dns_other");
	for (int r = 0; r < VP_REASON_MAX; r++)
		ck_assert_str_ne(vp_reason_name(r), "invalid");
}
END_TEST

/* ---- the server list (no traffic: a resolver is made and closed) ---- */

struct server_row {
	const char *server;
	const char *err_has;      /* NULL: accepted */
};

static const struct server_row server_rows[] = {
	{ "127.0.0.1", NULL },
	{ "127.0.0.1:5353", NULL },
	{ "::1", NULL },
	{ "[::1]", NULL },
	{ "[fd00:198:18::53]:5353", NULL },
	{ "127.0.0.1:0", "port not in 1..65535" },
	{ "127.0.0.1:65536", "port not in 1..65535" },
	{ "127.0.0.1:53x", "expected ADDR, ADDR:PORT or [IPv6]:PORT" },
	{ "127.0.0.1:99999999999999999999999", "port not in 1..65535" },
	{ "127.0.0.1:", "expected ADDR, ADDR:PORT or [IPv6]:PORT" },
	{ "127.0.0.1:-53", "expected ADDR" },
	{ "dns.example.com", "dns server 'dns.example.com': expected ADDR" },
	{ "[127.0.0.1]:53", "expected ADDR" },
	{ "[::1", "expected ADDR" },
	{ "[::1]x", "expected ADDR" },
	{ "1.2.3.4,5.6.7.8", "expected ADDR" },
	{ "", "expected ADDR" },
};

static void on_closed_flag(void *arg)
{
	*(int *)arg += 1;
}

START_TEST(test_server_row)
{
	const struct server_row *row = &server_rows[_i];
	char *servers[1] = { (char *)row->server };
	char err[VP_ERR_MAX] = "";
	uv_loop_t loop;
	struct vp_dns *d;
	int closed = 0;

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	d = vp_dns_new(&loop, servers, 1, err, sizeof(err));
	if (row->err_has) {
		ck_assert_ptr_null(d);
		ck_assert_msg(strstr(err, row->err_has), "row %d: error '%s' lacks '%s'", _i, err,
		              row->err_has);
	} else {
		ck_assert_msg(d != NULL, "row %d: %s", _i, err);
		vp_dns_close(d, on_closed_flag, &closed);
		ck_assert_int_eq(closed, 0);   /* handles close on the loop */
		ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
		ck_assert_int_eq(closed, 1);
		vp_dns_free(d);
	}
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_too_many_servers)
{
	char *servers[VP_CONFIG_MAX_DNS_SERVERS + 1];
	char err[VP_ERR_MAX] = "";
	uv_loop_t loop;

	for (size_t i = 0; i < VP_CONFIG_MAX_DNS_SERVERS + 1; i++)
		servers[i] = (char *)"127.0.0.1";
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_ptr_null(vp_dns_new(&loop, servers, VP_CONFIG_MAX_DNS_SERVERS + 1, err,
	                              sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "at most"));
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* ---- the live part: dnsmasq on 127.0.0.1 ---- */

static char dnsmasq_path[256];
static pid_t dnsmasq_pid = -1;
static pid_t servfail_pid = -1;
static int dnsmasq_port;
static int swallow_fd = -1;   /* bound, never read: queries to it get no answer */
static int swallow_port;
static int closed_port;       /* nothing listens: queries to it are refused */

static bool find_dnsmasq(void)
{
	static const char *const dirs[] = { "/usr/sbin", "/sbin", "/usr/bin", "/bin",
	                                    "/usr/local/sbin", "/usr/local/bin" };

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(dnsmasq_path, sizeof(dnsmasq_path), "%s/dnsmasq", dirs[i]);
		if (access(dnsmasq_path, X_OK) == 0)
			return true;
	}
	dnsmasq_path[0] = '\0';
	return false;
}

/* A socket on 127.0.0.1 with a port the kernel chose; returns the fd. */
static int bind_loopback(int type, int port, int *out_port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return -1;
	}
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*out_port = ntohs(sin.sin_port);
	return fd;
}

/* A port free for both UDP and TCP on 127.0.0.1 at this moment. */
static int free_port(void)
{
	for (int tries = 0; tries < 20; tries++) {
		int port, u = bind_loopback(SOCK_DGRAM, 0, &port), t;

		ck_assert_int_ge(u, 0);
		t = bind_loopback(SOCK_STREAM, port, &port);
		close(u);
		if (t >= 0) {
			close(t);
			return port;
		}
	}
	ck_abort_msg("no free loopback port");
	return -1;
}

/* Answers every query with SERVFAIL: the upstream that dnsmasq relays. */
static pid_t start_servfail(int *port)
{
	int fd = bind_loopback(SOCK_DGRAM, 0, port);
	pid_t pid;

	ck_assert_int_ge(fd, 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint8_t buf[512];
		struct sockaddr_storage from;

		/* check's own SIGTERM handler, inherited through fork(), would
		 * signal the whole process group: this child dies plainly. */
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;) {
			socklen_t fl = sizeof(from);
			ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);

			if (n < 12)
				continue;
			buf[2] |= 0x80;           /* QR: a response */
			buf[3] = 0x80 | 2;        /* RA, RCODE 2: SERVFAIL */
			(void)sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
		}
	}
	close(fd);
	return pid;
}

static pid_t start_dnsmasq(int port, int servfail_port)
{
	char a[24][96];
	char *argv[48];
	size_t n = 0;
	pid_t pid;

#define ARG(...) (snprintf(a[n], sizeof(a[n]), __VA_ARGS__), argv[n] = a[n], n++)
	ARG("dnsmasq");
	ARG("--no-daemon");
	ARG("--keep-in-foreground");
	ARG("--conf-file=/dev/null");
	ARG("--no-resolv");
	ARG("--no-hosts");
	ARG("--log-facility=-");
	ARG("--port=%d", port);
	ARG("--listen-address=127.0.0.1");
	ARG("--bind-interfaces");
	/* Names under test. are answered here or not at all (NXDOMAIN). */
	ARG("--local=/test/");
	ARG("--address=/one.test/198.18.0.10");
	ARG("--host-record=two.test,198.18.0.11");
	ARG("--host-record=two.test,198.18.0.12");
	ARG("--host-record=six.test,fd00:198:18::10");
	ARG("--host-record=both.test,fd00:198:18::13,198.18.0.13");
	ARG("--txt-record=txt.test,only text here");
	ARG("--server=/servfail.test/127.0.0.1#%d", servfail_port);
	ARG("--server=/silent.test/127.0.0.1#%d", swallow_port);
	argv[n] = NULL;
#undef ARG
	/* A name with more addresses than an answer keeps. */
	for (int i = 0; i < 20; i++) {
		static char many[20][64];

		snprintf(many[i], sizeof(many[i]), "--host-record=many.test,198.18.1.%d", i + 1);
		argv[n++] = many[i];
	}
	argv[n] = NULL;
	ck_assert_uint_lt(n, sizeof(argv) / sizeof(argv[0]));
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* Its startup lines are noise; errors still reach stderr. */
		if (devnull >= 0)
			dup2(devnull, STDOUT_FILENO);
		execv(dnsmasq_path, argv);
		_exit(127);
	}
	return pid;
}

/* A DNS query for 'name' type A. */
static size_t build_query(uint8_t *buf, size_t cap, const char *name)
{
	size_t n = 12;
	const char *p = name;

	memset(buf, 0, 12);
	buf[0] = 0x12, buf[1] = 0x34, buf[2] = 0x01;   /* id, RD */
	buf[5] = 1;                                      /* one question */
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		ck_assert_uint_lt(n + l + 6, cap);
		buf[n++] = (uint8_t)l;
		memcpy(buf + n, p, l);
		n += l;
		p += l + (dot ? 1 : 0);
	}
	buf[n++] = 0;
	buf[n++] = 0, buf[n++] = 1;   /* A */
	buf[n++] = 0, buf[n++] = 1;   /* IN */
	return n;
}

/* Readiness: dnsmasq answers one.test. Bounded tries, no fixed sleep. */
static bool dnsmasq_ready(pid_t pid, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	uint8_t q[64], r[512];
	size_t qlen = build_query(q, sizeof(q), "one.test");
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool ok = false;

	ck_assert_int_ge(fd, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int tries = 0; tries < 100 && !ok; tries++) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int status;

		if (waitpid(pid, &status, WNOHANG) == pid)
			break;   /* it died: the port was taken, or a bad option */
		(void)sendto(fd, q, qlen, 0, (struct sockaddr *)&sin, sizeof(sin));
		if (poll(&pfd, 1, 100) == 1 && recv(fd, r, sizeof(r), 0) >= 12 && (r[3] & 0x0f) == 0)
			ok = true;
	}
	close(fd);
	return ok;
}

static void live_setup(void)
{
	int sf_port;
	int fd;

	swallow_fd = bind_loopback(SOCK_DGRAM, 0, &swallow_port);
	ck_assert_int_ge(swallow_fd, 0);
	fd = bind_loopback(SOCK_DGRAM, 0, &closed_port);
	close(fd);
	servfail_pid = start_servfail(&sf_port);
	for (int tries = 0; tries < 5; tries++) {
		dnsmasq_port = free_port();
		dnsmasq_pid = start_dnsmasq(dnsmasq_port, sf_port);
		if (dnsmasq_ready(dnsmasq_pid, dnsmasq_port))
			return;
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, NULL, 0);
		dnsmasq_pid = -1;
	}
	ck_abort_msg("dnsmasq at %s did not answer on 127.0.0.1", dnsmasq_path);
}

static void stop(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGTERM);
		waitpid(*pid, NULL, 0);
	}
	*pid = -1;
}

static void live_teardown(void)
{
	stop(&dnsmasq_pid);
	stop(&servfail_pid);
	if (swallow_fd >= 0)
		close(swallow_fd);
	swallow_fd = -1;
}

/* ---- one lookup, driven to its end ---- */

enum srv { SRV_DNSMASQ, SRV_SWALLOW, SRV_CLOSED };

struct run {
	uv_loop_t loop;
	struct vp_dns *d;
	bool in_resolve;           /* a callback now would break the contract */
	int calls;
	int closed;
	int calls_at_close;        /* callbacks seen when 'closed' ran */
	bool close_in_cb;          /* the first callback closes the resolver */
	struct vp_dns_answer ans;
};

static void run_open(struct run *r, enum srv srv)
{
	char server[32];
	char *servers[1] = { server };
	char err[VP_ERR_MAX] = "";
	int port = srv == SRV_DNSMASQ ? dnsmasq_port : srv == SRV_SWALLOW ? swallow_port
	                                                                  : closed_port;

	memset(r, 0, sizeof(*r));
	snprintf(server, sizeof(server), "127.0.0.1:%d", port);
	ck_assert_int_eq(uv_loop_init(&r->loop), 0);
	r->loop.data = r;
	r->d = vp_dns_new(&r->loop, servers, 1, err, sizeof(err));
	ck_assert_msg(r->d != NULL, "vp_dns_new: %s", err);
}

static void on_run_closed(void *arg)
{
	struct run *r = arg;

	r->closed++;
	r->calls_at_close = r->calls;
}

static void on_answer(const struct vp_dns_answer *ans, void *arg)
{
	struct run *r = arg;

	ck_assert_msg(!r->in_resolve, "callback ran inside vp_dns_resolve");
	r->calls++;
	r->ans = *ans;
	if (r->close_in_cb && r->calls == 1)
		vp_dns_close(r->d, on_run_closed, r);
}

static void resolve(struct run *r, const char *name, uint32_t timeout_ms, vp_dns_cb cb,
                    void *arg)
{
	r->in_resolve = true;
	vp_dns_resolve(r->d, name, timeout_ms, cb, arg);
	r->in_resolve = false;
}

/* Ends every live test, once something has called vp_dns_close(): closed
 * once, after every callback, and nothing left in the loop. */
static void run_close(struct run *r)
{
	ck_assert_int_eq(uv_run(&r->loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(r->closed, 1);
	ck_assert_int_eq(r->calls_at_close, r->calls);
	vp_dns_free(r->d);
	ck_assert_int_eq(uv_loop_close(&r->loop), 0);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The answer's addresses as "v4,v4,v6", each family sorted for a stable
 * comparison; fails unless every IPv4 address comes before every IPv6. */
static void answer_text(const struct vp_dns_answer *ans, char *out, size_t len)
{
	char s[VP_DNS_MAX_ADDRS][INET6_ADDRSTRLEN];
	size_t n4 = 0;

	for (size_t i = 0; i < ans->n_addrs; i++) {
		const struct sockaddr_storage *ss = &ans->addrs[i];

		if (ss->ss_family == AF_INET) {
			ck_assert_msg(n4 == i, "IPv4 address after IPv6");
			ck_assert_int_eq(((const struct sockaddr_in *)ss)->sin_port, 0);
			inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, s[i], sizeof(s[i]));
			n4++;
		} else {
			ck_assert_int_eq(ss->ss_family, AF_INET6);
			ck_assert_int_eq(((const struct sockaddr_in6 *)ss)->sin6_port, 0);
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, s[i],
			          sizeof(s[i]));
		}
	}
	qsort(s, n4, sizeof(s[0]), cmp_str);
	qsort(s + n4, ans->n_addrs - n4, sizeof(s[0]), cmp_str);
	out[0] = '\0';
	for (size_t i = 0; i < ans->n_addrs; i++) {
		strncat(out, i ? "," : "", len - strlen(out) - 1);
		strncat(out, s[i], len - strlen(out) - 1);
	}
}

struct live_row {
	const char *name;
	enum srv srv;
	uint32_t timeout_ms;
	int status;               /* 0: addresses; 1: any failure with a reason in 'expect' */
	const char *expect;       /* the addresses as answer_text() writes them, or the reason */
	const char *detail_has;
};

static const struct live_row live_rows[] = {
	{ "one.test", SRV_DNSMASQ, 2000, 0, "198.18.0.10", NULL },
	{ "one.test.", SRV_DNSMASQ, 2000, 0, "198.18.0.10", NULL },
	{ "two.test", SRV_DNSMASQ, 2000, 0, "198.18.0.11,198.18.0.12", NULL },
	{ "six.test", SRV_DNSMASQ, 2000, 0, "fd00:198:18::10", NULL },
	{ "both.test", SRV_DNSMASQ, 2000, 0, "198.18.0.13,fd00:198:18::13", NULL },
	{ "nowhere.test", SRV_DNSMASQ, 2000, -ENOENT, "nxdomain",
	  "name 'nowhere.test' does not exist (NXDOMAIN)" },
	{ "txt.test", SRV_DNSMASQ, 2000, -ENODATA, "no_address", "no A or AAAA record" },
	/* dnsmasq relays the SERVFAIL of the upstream this test runs. */
	{ "servfail.test", SRV_DNSMASQ, 2000, -EAGAIN, "servfail", "(SERVFAIL)" },
	/* dnsmasq has no upstream for names outside test.: it answers REFUSED. */
	{ "db.example", SRV_DNSMASQ, 2000, -EACCES, "dns_refused", "(REFUSED)" },
	/* dnsmasq forwards to a socket that never answers, and stays silent. */
	{ "silent.test", SRV_DNSMASQ, 300, -ETIMEDOUT, "dns_timeout", "within 300 ms" },
	/* The resolver itself asks a socket that never answers. */
	{ "one.test", SRV_SWALLOW, 300, -ETIMEDOUT, "dns_timeout", "within 300 ms" },
	/* Nothing listens: ICMP port unreachable on loopback. c-ares 1.18
	 * sends A and AAAA on one connected socket, and whichever try meets
	 * the ICMP error is refused while the other times out: the lookup
	 * ends either way, as a refusal or as c-ares' own timeout. */
	{ "one.test", SRV_CLOSED, 2000, 1, "dns_other|dns_timeout", NULL },
	/* c-ares refuses .onion names itself (RFC 7686), before any query. */
	{ "hidden.onion", SRV_DNSMASQ, 2000, -ENOENT, "nxdomain", "(NXDOMAIN)" },
	{ "bad..name.test", SRV_DNSMASQ, 2000, -EINVAL, "dns_other", "not a valid DNS name" },
};

START_TEST(test_live_row)
{
	const struct live_row *row = &live_rows[_i];
	char got[VP_DNS_MAX_ADDRS * INET6_ADDRSTRLEN];
	struct run r;
	uint64_t start = uv_hrtime();
	double elapsed_ms;

	run_open(&r, row->srv);
	resolve(&r, row->name, row->timeout_ms, on_answer, &r);
	ck_assert_int_eq(r.calls, 0);
	r.close_in_cb = true;
	ck_assert_int_ge(uv_run(&r.loop, UV_RUN_DEFAULT), 0);
	elapsed_ms = (double)(uv_hrtime() - start) / 1e6;
	ck_assert_int_eq(r.calls, 1);
	run_close(&r);
	if (row->status == 1) {   /* one of the reasons in 'expect' */
		ck_assert_int_lt(r.ans.status, 0);
		ck_assert_msg(strstr(row->expect, vp_reason_name(r.ans.reason)), "row %d: %s: %s", _i,
		              vp_reason_name(r.ans.reason), r.ans.detail);
		return;
	}
	ck_assert_msg(r.ans.status == row->status, "row %d %s: status %d (%s: %s), expected %d", _i,
	              row->name, r.ans.status, vp_reason_name(r.ans.reason), r.ans.detail,
	              row->status);
	ck_assert_msg(r.ans.ms >= 0 && r.ans.ms <= elapsed_ms + 1, "row %d: ms %.1f", _i, r.ans.ms);
	if (row->status == 0) {
		answer_text(&r.ans, got, sizeof(got));
		ck_assert_str_eq(got, row->expect);
		return;
	}
	ck_assert_uint_eq(r.ans.n_addrs, 0);
	ck_assert_str_eq(vp_reason_name(r.ans.reason), row->expect);
	ck_assert_msg(strstr(r.ans.detail, row->detail_has), "row %d: detail '%s' lacks '%s'", _i,
	              r.ans.detail, row->detail_has);
	if (r.ans.reason == VP_REASON_DNS_TIMEOUT)
		ck_assert_msg(r.ans.ms >= row->timeout_ms - 1 && elapsed_ms < row->timeout_ms + 1000,
		              "row %d: a %u ms deadline took %.1f ms", _i, row->timeout_ms, r.ans.ms);
}
END_TEST

/* More addresses than an answer holds: the first VP_DNS_MAX_ADDRS. */
START_TEST(test_live_many)
{
	struct run r;

	run_open(&r, SRV_DNSMASQ);
	resolve(&r, "many.test", 2000, on_answer, &r);
	r.close_in_cb = true;
	uv_run(&r.loop, UV_RUN_DEFAULT);
	run_close(&r);
	ck_assert_int_eq(r.ans.status, 0);
	ck_assert_uint_eq(r.ans.n_addrs, VP_DNS_MAX_ADDRS);
	for (size_t i = 0; i < r.ans.n_addrs; i++) {
		ck_assert_int_eq(r.ans.addrs[i].ss_family, AF_INET);
		for (size_t j = 0; j < i; j++)
			ck_assert(memcmp(&r.ans.addrs[i], &r.ans.addrs[j], sizeof(r.ans.addrs[i])) != 0);
	}
}
END_TEST

/* Closing cancels a pending lookup: its callback runs once, from the loop,
 * with a failure, before 'closed'. */
START_TEST(test_live_close_cancels)
{
	struct run r;

	run_open(&r, SRV_SWALLOW);
	resolve(&r, "one.test", 10000, on_answer, &r);
	vp_dns_close(r.d, on_run_closed, &r);
	ck_assert_int_eq(r.calls, 0);
	run_close(&r);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.ans.status, -ECANCELED);
	ck_assert_str_eq(vp_reason_name(r.ans.reason), "dns_other");
	ck_assert_ptr_nonnull(strstr(r.ans.detail, "cancelled"));
}
END_TEST

/* A lookup past its deadline is answered; c-ares keeps retrying it. Its
 * late c-ares callback must touch nothing (ASan watches). */
static void on_later(uv_timer_t *t)
{
	struct run *r = t->loop->data;

	uv_close((uv_handle_t *)t, NULL);
	vp_dns_close(r->d, on_run_closed, r);
}

START_TEST(test_live_abandoned)
{
	struct run r;
	uv_timer_t later;

	run_open(&r, SRV_SWALLOW);
	resolve(&r, "one.test", 50, on_answer, &r);
	resolve(&r, "two.test", 50, on_answer, &r);
	/* Past c-ares' first try (VP_DNS_TRY_MS), so it has sent again. */
	uv_timer_init(&r.loop, &later);
	uv_timer_start(&later, on_later, VP_DNS_TRY_MS + 200, 0);
	run_close(&r);
	ck_assert_int_eq(r.calls, 2);
	ck_assert_msg(r.ans.reason == VP_REASON_DNS_TIMEOUT, "%s: %s", vp_reason_name(r.ans.reason),
	              r.ans.detail);
}
END_TEST

/* Many lookups at once, answers and failures mixed, and a lookup started
 * from a callback: every callback exactly once. */
struct many {
	struct run *r;
	int idx;
	int calls;
	int status;
	char detail[VP_DETAIL_MAX];
};

static struct many lookups[40];

static void on_many(const struct vp_dns_answer *ans, void *arg)
{
	struct many *m = arg;

	ck_assert(!m->r->in_resolve);
	m->calls++;
	m->status = ans->status;
	memcpy(m->detail, ans->detail, sizeof(m->detail));
	m->r->calls++;
	if (m->idx == 0 && m->calls == 1)
		resolve(m->r, "six.test", 2000, on_many, &lookups[39]);
	if (m->r->calls == 40)
		vp_dns_close(m->r->d, on_run_closed, m->r);
}

START_TEST(test_live_concurrent)
{
	static const char *const names[] = { "one.test", "nowhere.test", "both.test", "txt.test" };
	static const int status[] = { 0, -ENOENT, 0, -ENODATA };
	struct run r;

	run_open(&r, SRV_DNSMASQ);
	memset(lookups, 0, sizeof(lookups));
	for (int i = 0; i < 40; i++)
		lookups[i] = (struct many){ .r = &r, .idx = i };
	for (int i = 0; i < 39; i++)
		resolve(&r, names[i % 4], 2000, on_many, &lookups[i]);
	run_close(&r);
	for (int i = 0; i < 40; i++) {
		ck_assert_int_eq(lookups[i].calls, 1);
		ck_assert_msg(lookups[i].status == (i == 39 ? 0 : status[i % 4]), "lookup %d: %s", i,
		              lookups[i].detail);
	}
}
END_TEST

/* A callback that closes the resolver while another lookup waits. */
START_TEST(test_live_close_in_callback)
{
	struct run r;
	struct run other_arg;

	run_open(&r, SRV_DNSMASQ);
	memset(&other_arg, 0, sizeof(other_arg));
	resolve(&r, "one.test", 2000, on_answer, &r);
	resolve(&r, "silent.test", 10000, on_answer, &other_arg);
	r.close_in_cb = true;
	run_close(&r);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.ans.status, 0);
	ck_assert_int_eq(other_arg.calls, 1);
	ck_assert_int_eq(other_arg.ans.status, -ECANCELED);
}
END_TEST

static Suite *dns_suite(bool live)
{
	Suite *s = suite_create("dns");
	TCase *tc = tcase_create("status");
	TCase *tl;

	tcase_add_loop_test(tc, test_status_row, 0, (int)(sizeof(status_rows) / sizeof(status_rows[0])));
	tcase_add_test(tc, test_status_truncates);
	tcase_add_loop_test(tc, test_hint_row, 0, (int)(sizeof(hint_rows) / sizeof(hint_rows[0])));
	tcase_add_test(tc, test_reason_names);
	tcase_add_loop_test(tc, test_server_row, 0, (int)(sizeof(server_rows) / sizeof(server_rows[0])));
	tcase_add_test(tc, test_too_many_servers);
	suite_add_tcase(s, tc);
	if (!live)
		return s;
	tl = tcase_create("live");
	tcase_add_unchecked_fixture(tl, live_setup, live_teardown);
	tcase_add_loop_test(tl, test_live_row, 0, (int)(sizeof(live_rows) / sizeof(live_rows[0])));
	tcase_add_test(tl, test_live_many);
	tcase_add_test(tl, test_live_close_cancels);
	tcase_add_test(tl, test_live_abandoned);
	tcase_add_test(tl, test_live_concurrent);
	tcase_add_test(tl, test_live_close_in_callback);
	suite_add_tcase(s, tl);
	return s;
}

int main(void)
{
	bool live = find_dnsmasq();
	SRunner *sr = srunner_create(dns_suite(live));
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed)
		return EXIT_FAILURE;
	if (!live) {
		fprintf(stderr, "test_dns: no dnsmasq binary: the live part is skipped "
		        "(apt-get install dnsmasq-base)\n");
		return 77;
	}
	return EXIT_SUCCESS;
}

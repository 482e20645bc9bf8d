/* vpbench: epoll-baseline's measurement, run through vpcprobe's probe engine
 * (agent/engine.h) on a libuv loop.
 *
 *   vpbench --addr ADDR --ports LO-HI --count N --in-flight K
 *           --timeout-ms T [--json]
 *
 * prints the same JSON line as epoll-baseline with "program":"vpcprobe-engine".
 *
 * Requests are submitted lazily so that memory stays flat however large N
 * is: at most min(N, 2K) request structs exist, all allocated at start in one
 * array. The engine borrows a request until its result callback returns, so
 * a callback never resubmits its own request: it puts it on a free list and
 * submits one that an earlier callback freed. That keeps 2K - 1 requests in
 * the engine (K in flight, the rest queued), enough that a slot freed by a
 * finished probe always has a queued request to start. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "agent/engine.h"
#include "probes/verdict.h"

struct opts {
	struct sockaddr_storage addr;
	uint16_t port_lo, port_hi;
	uint64_t count;
	uint32_t in_flight;
	uint32_t timeout_ms;
	bool json;
};

struct bench {
	const struct opts *o;
	struct vp_engine *engine;        /* owned */
	struct vp_probe_req *reqs;       /* owned, 'nreqs' of them */
	uint64_t nreqs;
	struct vp_probe_req *free_reqs;  /* linked through ->data; not in the engine */
	uint64_t submitted, done;
	uint16_t next_port;
	uint64_t ok, refused, timeout, other;
	int64_t *late_ns;                /* owned, 'count' entries, one per timeout */
	uint64_t t_first, t_last;
	char first_other[VP_DETAIL_MAX + 32]; /* explains "other" on stderr */
};

static void usage(void)
{
	fprintf(stderr, "usage: vpbench --addr ADDR --ports LO-HI --count N "
	        "--in-flight K --timeout-ms T [--json]\n");
	exit(2);
}

static uint64_t parse_u64(const char *name, const char *s, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "vpbench: %s: '%s' not in %" PRIu64 "..%" PRIu64 "\n",
		        name, s, min, max);
		exit(2);
	}
	return v;
}

static void parse_ports(const char *s, struct opts *o)
{
	char buf[32];
	char *dash;

	if (strlen(s) >= sizeof(buf))
		usage();
	memcpy(buf, s, strlen(s) + 1);
	dash = strchr(buf, '-');
	if (dash != NULL)
		*dash = '\0';
	o->port_lo = (uint16_t)parse_u64("--ports", buf, 1, 65535);
	o->port_hi = dash != NULL ? (uint16_t)parse_u64("--ports", dash + 1, 1, 65535) : o->port_lo;
	if (o->port_hi < o->port_lo) {
		fprintf(stderr, "vpbench: --ports: '%s': HI below LO\n", s);
		exit(2);
	}
}

static void parse_addr(const char *s, struct opts *o)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)&o->addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&o->addr;

	memset(&o->addr, 0, sizeof(o->addr));
	if (inet_pton(AF_INET, s, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
	} else if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
	} else {
		fprintf(stderr, "vpbench: --addr: '%s' is not an IPv4 or IPv6 address\n", s);
		exit(2);
	}
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	bool have_addr = false, have_ports = false;

	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--json") == 0) {
			o->json = true;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (strcmp(a, "--addr") == 0) {
			parse_addr(argv[++i], o);
			have_addr = true;
		} else if (strcmp(a, "--ports") == 0) {
			parse_ports(argv[++i], o);
			have_ports = true;
		} else if (strcmp(a, "--count") == 0) {
			o->count = parse_u64(a, argv[++i], 1, 100000000);
		} else if (strcmp(a, "--in-flight") == 0) {
			o->in_flight = (uint32_t)parse_u64(a, argv[++i], 1, 1000000);
		} else if (strcmp(a, "--timeout-ms") == 0) {
			o->timeout_ms = (uint32_t)parse_u64(a, argv[++i], 1, 600000);
		} else {
			usage();
		}
	}
	if (!have_addr || !have_ports || o->count == 0 || o->in_flight == 0 || o->timeout_ms == 0)
		usage();
}

/* Up to the hard limit, before vp_engine_new(): the engine sizes itself to
 * what RLIMIT_NOFILE leaves. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		perror("vpbench: setrlimit(RLIMIT_NOFILE), ignoring");
}

/* Fills 'req' with the next port and hands it to the engine. */
static void submit_next(struct bench *b, struct vp_probe_req *req)
{
	const struct opts *o = b->o;

	memset(req, 0, sizeof(*req));
	req->addr = o->addr;
	if (o->addr.ss_family == AF_INET)
		((struct sockaddr_in *)&req->addr)->sin_port = htons(b->next_port);
	else
		((struct sockaddr_in6 *)&req->addr)->sin6_port = htons(b->next_port);
	b->next_port = b->next_port == o->port_hi ? o->port_lo : (uint16_t)(b->next_port + 1);
	req->timeout_ms = o->timeout_ms;
	req->kind = VP_KIND_TCP;
	b->submitted++;
	vp_engine_submit(b->engine, req);
}

static void on_result(struct vp_probe_req *req, const struct vp_probe_result *res, void *arg)
{
	struct bench *b = arg;

	switch (res->v.verdict) {
	case VP_VERDICT_OK:
		b->ok++;
		break;
	case VP_VERDICT_REFUSED:
		b->refused++;
		break;
	case VP_VERDICT_TIMEOUT:
		/* Signed: a deadline that fired early is a negative lateness. */
		b->late_ns[b->timeout++] = (int64_t)res->end_ns - (int64_t)res->deadline_ns;
		break;
	default:
		if (b->other++ == 0)
			snprintf(b->first_other, sizeof(b->first_other), "%s: %s",
			         vp_verdict_name(res->v.verdict), res->v.detail);
		break;
	}
	b->done++;
	b->t_last = uv_hrtime();

	/* 'req' is still the engine's until we return: submit one that an
	 * earlier callback gave back, and give this one back for the next. */
	if (b->submitted < b->o->count && b->free_reqs != NULL) {
		struct vp_probe_req *next = b->free_reqs;

		b->free_reqs = next->data;
		submit_next(b, next);
	}
	req->data = b->free_reqs;
	b->free_reqs = req;
}

static int cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, c = *(const int64_t *)y;

	return (a > c) - (a < c);
}

/* Nearest rank on a sorted array. */
static double pct_ms(const int64_t *v, uint64_t n, double p)
{
	uint64_t r = (uint64_t)(p / 100.0 * (double)n + 0.999999999);

	if (r < 1)
		r = 1;
	if (r > n)
		r = n;
	return (double)v[r - 1] / 1e6;
}

static void report(const struct bench *b)
{
	const struct opts *o = b->o;
	struct rusage ru;
	double wall, user, sys;
	char late[256];

	(void)getrusage(RUSAGE_SELF, &ru); /* cannot fail for RUSAGE_SELF */
	wall = (double)(b->t_last - b->t_first) / 1e9;
	user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
	sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	if (b->timeout > 0) {
		qsort(b->late_ns, b->timeout, sizeof(*b->late_ns), cmp_i64);
		snprintf(late, sizeof(late), "{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f,\"min\":%.3f}",
		         pct_ms(b->late_ns, b->timeout, 50), pct_ms(b->late_ns, b->timeout, 99),
		         (double)b->late_ns[b->timeout - 1] / 1e6, (double)b->late_ns[0] / 1e6);
	} else {
		snprintf(late, sizeof(late), "null");
	}
	if (b->other > 0)
		fprintf(stderr, "vpbench: %" PRIu64 " probes ended otherwise, the first with %s\n",
		        b->other, b->first_other);
	printf(o->json ? "{\"program\":\"vpcprobe-engine\",\"probes\":%" PRIu64 ",\"wall_s\":%.6f,"
	                 "\"probes_per_s\":%.1f,\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,"
	                 "\"cpu_s_per_1000\":%.5f,\"peak_rss_kb\":%ld,\"refused\":%" PRIu64 ","
	                 "\"ok\":%" PRIu64 ",\"timeout\":%" PRIu64 ",\"other\":%" PRIu64 ","
	                 "\"lateness_ms\":%s}\n"
	               : "program vpcprobe-engine\nprobes %" PRIu64 "\nwall_s %.6f\n"
	                 "probes_per_s %.1f\ncpu_user_s %.3f\ncpu_sys_s %.3f\n"
	                 "cpu_s_per_1000 %.5f\npeak_rss_kb %ld\nrefused %" PRIu64 "\n"
	                 "ok %" PRIu64 "\ntimeout %" PRIu64 "\nother %" PRIu64 "\n"
	                 "lateness_ms %s\n",
	       b->done, wall, wall > 0 ? (double)b->done / wall : 0.0, user, sys,
	       (user + sys) * 1000.0 / (double)b->done, ru.ru_maxrss, b->refused, b->ok,
	       b->timeout, b->other, late);
}

int main(int argc, char **argv)
{
	struct opts o;
	struct bench b = { 0 };
	uv_loop_t loop;
	int r;

	parse_args(argc, argv, &o);
	raise_nofile();
	b.o = &o;
	b.next_port = o.port_lo;
	b.nreqs = (uint64_t)o.in_flight * 2 < o.count ? (uint64_t)o.in_flight * 2 : o.count;
	b.reqs = calloc(b.nreqs, sizeof(*b.reqs));
	/* One entry per possible timeout; pages never written are never resident. */
	b.late_ns = malloc(o.count * sizeof(*b.late_ns));
	if (b.reqs == NULL || b.late_ns == NULL) {
		fprintf(stderr, "vpbench: out of memory\n");
		return 1;
	}
	r = uv_loop_init(&loop);
	if (r < 0) {
		fprintf(stderr, "vpbench: uv_loop_init: %s\n", uv_strerror(r));
		return 1;
	}
	b.engine = vp_engine_new(&loop, o.in_flight, on_result, &b);
	if (b.engine == NULL) {
		fprintf(stderr, "vpbench: vp_engine_new: out of memory\n");
		return 1;
	}
	if (vp_engine_max_in_flight(b.engine) < o.in_flight)
		fprintf(stderr, "vpbench: the engine lowered --in-flight %" PRIu32 " to %" PRIu32
		        " (RLIMIT_NOFILE)\n", o.in_flight, vp_engine_max_in_flight(b.engine));

	b.t_first = uv_hrtime();
	for (uint64_t i = 0; i < b.nreqs; i++)
		submit_next(&b, &b.reqs[i]);
	/* Returns once the last probe's handles are closed: the engine holds no
	 * handle of its own. */
	r = uv_run(&loop, UV_RUN_DEFAULT);
	if (b.done != o.count) {
		fprintf(stderr, "vpbench: the loop ended after %" PRIu64 " of %" PRIu64 " results\n",
		        b.done, o.count);
		return 1;
	}
	report(&b);

	vp_engine_close(b.engine, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);  /* the engine's own handles close */
	b.engine = vp_engine_free(b.engine);
	r = uv_loop_close(&loop);
	if (r != 0)
		fprintf(stderr, "vpbench: uv_loop_close: %s, ignoring\n", uv_strerror(r));
	free(b.late_ns);
	free(b.reqs);
	return 0;
}

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common.h"

static const char *prog_name = "bench";

static void usage(void)
{
	fprintf(stderr, "usage: %s --addr ADDR --ports LO-HI --count N "
	        "--in-flight K --timeout-ms T [--json] [--recverr]\n", prog_name);
	exit(2);
}

static uint64_t parse_u64(const char *name, const char *s, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "%s: %s: '%s' not in %" PRIu64 "..%" PRIu64 "\n",
		        prog_name, name, s, min, max);
		exit(2);
	}
	return v;
}

static void parse_ports(const char *s, struct bench_opts *o)
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
		fprintf(stderr, "%s: --ports: '%s': HI below LO\n", prog_name, s);
		exit(2);
	}
}

static void parse_addr(const char *s, struct bench_opts *o)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)&o->addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&o->addr;

	memset(&o->addr, 0, sizeof(o->addr));
	if (inet_pton(AF_INET, s, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		o->addrlen = sizeof(*in4);
	} else if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		o->addrlen = sizeof(*in6);
	} else {
		fprintf(stderr, "%s: --addr: '%s' is not an IPv4 or IPv6 address\n", prog_name, s);
		exit(2);
	}
}

void bench_parse_args(const char *prog, int argc, char **argv, struct bench_opts *o)
{
	bool have_addr = false, have_ports = false;

	prog_name = prog;
	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--json") == 0) {
			o->json = true;
			continue;
		}
		if (strcmp(a, "--recverr") == 0) {
			o->recverr = true;
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

void bench_raise_nofile(const char *prog)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		fprintf(stderr, "%s: setrlimit(RLIMIT_NOFILE): %s, ignoring\n", prog, strerror(errno));
}

static int cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

	return (a > b) - (a < b);
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

void bench_report(const char *program, const struct bench_opts *o, struct bench_counts *c)
{
	struct rusage ru;
	double wall, user, sys;
	char late[256];
	char recverr[64] = "";

	(void)getrusage(RUSAGE_SELF, &ru); /* cannot fail for RUSAGE_SELF */
	wall = (double)(c->t_last_ns - c->t_first_ns) / 1e9;
	user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
	sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	if (c->timeout > 0) {
		qsort(c->late_ns, c->timeout, sizeof(*c->late_ns), cmp_i64);
		snprintf(late, sizeof(late), "{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f,\"min\":%.3f}",
		         pct_ms(c->late_ns, c->timeout, 50), pct_ms(c->late_ns, c->timeout, 99),
		         (double)c->late_ns[c->timeout - 1] / 1e6, (double)c->late_ns[0] / 1e6);
	} else {
		snprintf(late, sizeof(late), "null");
	}
	if (o->recverr)
		snprintf(recverr, sizeof(recverr),
		         o->json ? ",\"recverr\":true,\"icmp_errors\":%" PRIu64
		                 : "recverr 1\nicmp_errors %" PRIu64 "\n", c->icmp);
	printf(o->json ? "{\"program\":\"%s\",\"probes\":%" PRIu64 ",\"wall_s\":%.6f,"
	                 "\"probes_per_s\":%.1f,\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,"
	                 "\"cpu_s_per_1000\":%.5f,\"peak_rss_kb\":%ld,\"refused\":%" PRIu64 ","
	                 "\"ok\":%" PRIu64 ",\"timeout\":%" PRIu64 ",\"other\":%" PRIu64 ","
	                 "\"lateness_ms\":%s%s}\n"
	               : "program %s\nprobes %" PRIu64 "\nwall_s %.6f\n"
	                 "probes_per_s %.1f\ncpu_user_s %.3f\ncpu_sys_s %.3f\n"
	                 "cpu_s_per_1000 %.5f\npeak_rss_kb %ld\nrefused %" PRIu64 "\n"
	                 "ok %" PRIu64 "\ntimeout %" PRIu64 "\nother %" PRIu64 "\n"
	                 "lateness_ms %s\n%s",
	       program, c->done, wall, wall > 0 ? (double)c->done / wall : 0.0, user, sys,
	       (user + sys) * 1000.0 / (double)c->done, ru.ru_maxrss, c->refused, c->ok,
	       c->timeout, c->other, late, recverr);
}

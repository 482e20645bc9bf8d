/* What epoll-baseline and vpbench share: the command line and the report,
 * so that both measure and print exactly alike. Plain libc. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct bench_opts {
	struct sockaddr_storage addr;  /* port 0 */
	socklen_t addrlen;
	uint16_t port_lo, port_hi;
	uint64_t count;
	uint32_t in_flight;
	uint32_t timeout_ms;
	bool json;
	bool recverr;  /* epoll-baseline: read the ICMP evidence as vpcprobe does */
};

/* What a run counted. */
struct bench_counts {
	uint64_t done, ok, refused, timeout, other;
	uint64_t icmp;         /* --recverr: failures whose error queue held an ICMP error */
	int64_t *late_ns;      /* 'timeout' entries: verdict time minus deadline */
	uint64_t t_first_ns, t_last_ns;
};

/* --addr ADDR --ports LO-HI --count N --in-flight K --timeout-ms T [--json]
 * [--recverr]; exits 2 with a message naming 'prog' on bad usage. */
void bench_parse_args(const char *prog, int argc, char **argv, struct bench_opts *o);

/* Soft RLIMIT_NOFILE up to the hard limit: 16,000 sockets in flight need it. */
void bench_raise_nofile(const char *prog);

/* Prints the run's line (JSON with o->json): rates, CPU from getrusage, peak
 * RSS, verdict counts and lateness percentiles, and with o->recverr
 * "recverr" and c->icmp. Sorts c->late_ns. */
void bench_report(const char *program, const struct bench_opts *o, struct bench_counts *c);

#endif

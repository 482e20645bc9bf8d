/* vpbench: epoll-baseline's measurement, run through vpcprobe's probe engine
 * (agent/engine.h) on a libuv loop.
 *
 *   vpbench --addr ADDR --ports LO-HI --count N --in-flight K
 *           --timeout-ms T [--json]
 *
 * prints the same JSON line as epoll-baseline with "program":"vpcprobe-engine".
 * It refuses epoll-baseline's --recverr: the engine always sets IP_RECVERR
 * and reads the error queue of a failed connect.
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
#include "common.h"
#include "probes/verdict.h"


struct bench {
	const struct bench_opts *o;
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


/* Fills 'req' with the next port and hands it to the engine. */
static void submit_next(struct bench *b, struct vp_probe_req *req)
{
	const struct bench_opts *o = b->o;

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
		if (b->other++ == 0) {
			struct vp_probe_result first = *res;

			vp_probe_result_explain(&first);
			snprintf(b->first_other, sizeof(b->first_other), "%s: %s",
			         vp_verdict_name(first.v.verdict), first.v.detail);
		}
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

static void report(struct bench *b)
{
	struct bench_counts c = {
		.done = b->done, .ok = b->ok, .refused = b->refused, .timeout = b->timeout,
		.other = b->other, .late_ns = b->late_ns, .t_first_ns = b->t_first, .t_last_ns = b->t_last,
	};

	if (b->other > 0)
		fprintf(stderr, "vpbench: %" PRIu64 " probes ended otherwise, the first with %s\n",
		        b->other, b->first_other);
	bench_report("vpcprobe-engine", b->o, &c);
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct bench b = { 0 };
	uv_loop_t loop;
	int r;

	bench_parse_args("vpbench", argc, argv, &o);
	if (o.recverr) {
		fprintf(stderr, "vpbench: --recverr is epoll-baseline's: vpcprobe's engine always "
		        "sets IP_RECVERR and reads the error queue\n");
		return 2;
	}
	bench_raise_nofile("vpbench");
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

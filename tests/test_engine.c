/* The probe engine on loopback: real sockets, real kernel answers, no root.
 * Every test ends by closing the loop, which fails if a handle leaked. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/engine.h"
#include "probes/proto.h"

#define MAX_REQS 64

struct ctx {
	uv_loop_t loop;
	struct vp_engine *engine;
	struct vp_probe_req reqs[MAX_REQS];
	struct vp_probe_result res[MAX_REQS];
	int n_results;
	size_t max_seen_in_flight;
	bool closed;
};

static void on_result(struct vp_probe_req *req, const struct vp_probe_result *res, void *arg)
{
	struct ctx *c = arg;
	size_t i = (size_t)(req - c->reqs);
	size_t f = vp_engine_in_flight(c->engine);

	ck_assert_uint_lt(i, MAX_REQS);
	c->res[i] = *res;
	vp_probe_result_explain(&c->res[i]);
	c->n_results++;
	if (f > c->max_seen_in_flight)
		c->max_seen_in_flight = f;
}

static void ctx_init(struct ctx *c, uint32_t max_in_flight)
{
	memset(c, 0, sizeof(*c));
	ck_assert_int_eq(uv_loop_init(&c->loop), 0);
	c->engine = vp_engine_new(&c->loop, max_in_flight, on_result, c);
	ck_assert_ptr_nonnull(c->engine);
}

static void ctx_done(struct ctx *c)
{
	if (!c->closed) {
		vp_engine_close(c->engine, NULL);
		ck_assert_int_eq(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
	}
	vp_engine_free(c->engine);
	ck_assert_int_eq(uv_loop_close(&c->loop), 0);
}

static void submit(struct ctx *c, int i, int family, uint16_t port, uint32_t timeout_ms)
{
	struct vp_probe_req *r = &c->reqs[i];

	memset(r, 0, sizeof(*r));
	if (family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&r->addr;
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		in6->sin6_port = htons(port);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&r->addr;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		in->sin_port = htons(port);
	}
	r->timeout_ms = timeout_ms;
	r->kind = VP_KIND_TCP;
	vp_engine_submit(c->engine, r);
}

static void submit_proto(struct ctx *c, int i, uint16_t port, uint32_t timeout_ms,
                         const struct vp_proto *proto)
{
	struct vp_probe_req *r = &c->reqs[i];
	struct sockaddr_in *in = (struct sockaddr_in *)&r->addr;

	memset(r, 0, sizeof(*r));
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	in->sin_port = htons(port);
	r->timeout_ms = timeout_ms;
	r->kind = VP_KIND_TCP;
	r->proto = proto;
	vp_engine_submit(c->engine, r);
}

/* A listening socket on loopback; its port in '*port'. 'backlog' < 0: bound,
 * not listening, and closed again, so that the port refuses. */
static int loopback_socket(int family, int backlog, uint16_t *port)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = sizeof(ss);
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	else
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&ss, family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	         sizeof(struct sockaddr_in)) < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
	              ((struct sockaddr_in *)&ss)->sin_port);
	if (backlog < 0) {
		close(fd);
		return 0;
	}
	if (listen(fd, backlog) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static const int families[] = { AF_INET, AF_INET6 };

/* A listener answers: ok, reason connected, connect time measured. A port
 * with nothing on it answers RST: refused, rst_to_syn. */
START_TEST(test_ok_and_refused)
{
	int family = families[_i];
	struct ctx c;
	uint16_t open_port, closed_port;
	int lfd = loopback_socket(family, 16, &open_port);

	if (lfd < 0 && family == AF_INET6)
		return; /* no ::1 on this host: nothing to test */
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(loopback_socket(family, -1, &closed_port), 0);

	ctx_init(&c, 0);
	submit(&c, 0, family, open_port, 2000);
	submit(&c, 1, family, closed_port, 2000);
	ck_assert_int_eq(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(c.n_results, 2);

	ck_assert_int_eq(c.res[0].v.verdict, VP_VERDICT_OK);
	ck_assert_int_eq(c.res[0].v.reason, VP_REASON_CONNECTED);
	ck_assert(c.res[0].connect_ms >= 0);
	ck_assert_str_eq(c.res[0].address, family == AF_INET6 ? "::1" : "127.0.0.1");
	ck_assert_uint_eq(c.res[0].port, open_port);

	ck_assert_int_eq(c.res[1].v.verdict, VP_VERDICT_REFUSED);
	ck_assert_int_eq(c.res[1].v.reason, VP_REASON_RST_TO_SYN);
	ck_assert_int_eq(c.res[1].v.err, ECONNREFUSED);
	ck_assert(c.res[1].connect_ms < 0);
	ck_assert_int_eq(c.res[1].obs.icmp_family, 0);
	ctx_done(&c);
	close(lfd);
}
END_TEST

/* A listener whose accept queue is full drops further SYNs: a timeout
 * on loopback, without root or a firewall. No verdict may come before its
 * deadline, measured on the precise monotonic clock. */
START_TEST(test_deadline_never_early)
{
	struct ctx c;
	uint16_t port;
	int lfd = loopback_socket(AF_INET, 0, &port);
	int timeouts = 0;

	ck_assert_int_ge(lfd, 0);
	ctx_init(&c, 0);
	for (int i = 0; i < 16; i++)
		submit(&c, i, AF_INET, port, 150);
	ck_assert_int_eq(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(c.n_results, 16);
	for (int i = 0; i < 16; i++) {
		if (c.res[i].v.verdict != VP_VERDICT_TIMEOUT)
			continue;
		timeouts++;
		ck_assert_int_eq(c.res[i].v.reason, VP_REASON_SYN_NO_ANSWER);
		ck_assert_int_eq(c.res[i].v.err, ETIMEDOUT);
		ck_assert_msg(c.res[i].end_ns >= c.res[i].deadline_ns, "probe %d decided %.3f ms early",
		              i, (double)(c.res[i].deadline_ns - c.res[i].end_ns) / 1e6);
		ck_assert(c.res[i].total_ms >= 150.0);
		ck_assert(c.res[i].connect_ms < 0);
	}
	ck_assert_int_gt(timeouts, 0);
	ctx_done(&c);
	close(lfd);
}
END_TEST

/* Deadlines submitted out of order (the engine keeps them in a heap for its
 * timerfd): every timeout ends at or after its own deadline, and they end
 * in the order of their deadlines, not of their submission. The full
 * accept queue drops the SYNs, as above. */
START_TEST(test_deadlines_out_of_order)
{
	static const uint32_t timeouts_ms[] = { 400, 100, 300, 100, 200, 500, 150, 250 };
	enum { N = sizeof(timeouts_ms) / sizeof(timeouts_ms[0]) };
	struct ctx c;
	uint16_t port;
	int lfd = loopback_socket(AF_INET, 0, &port);
	int order[N], n = 0;

	ck_assert_int_ge(lfd, 0);
	ctx_init(&c, 0);
	for (int i = 0; i < N; i++)
		submit(&c, i, AF_INET, port, timeouts_ms[i]);
	ck_assert_int_eq(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(c.n_results, N);
	for (int i = 0; i < N; i++) {
		if (c.res[i].v.verdict != VP_VERDICT_TIMEOUT)
			continue;  /* the queue took it after all: not a timeout */
		ck_assert_msg(c.res[i].end_ns >= c.res[i].deadline_ns, "probe %d decided %.3f ms early",
		              i, (double)(c.res[i].deadline_ns - c.res[i].end_ns) / 1e6);
		ck_assert_uint_eq(c.res[i].deadline_ns - c.res[i].start_ns,
		                  (uint64_t)timeouts_ms[i] * 1000000u);
		order[n++] = i;
	}
	ck_assert_int_ge(n, N - 2);
	/* Sorted by end time, the deadlines must be sorted too. */
	for (int a = 1; a < n; a++)
		for (int b = a; b > 0 && c.res[order[b]].end_ns < c.res[order[b - 1]].end_ns; b--) {
			int t = order[b];

			order[b] = order[b - 1];
			order[b - 1] = t;
		}
	for (int a = 1; a < n; a++)
		ck_assert_msg(c.res[order[a]].deadline_ns >= c.res[order[a - 1]].deadline_ns,
		              "probe %d (%u ms) ended before probe %d (%u ms)", order[a - 1],
		              timeouts_ms[order[a - 1]], order[a], timeouts_ms[order[a]]);
	ctx_done(&c);
	close(lfd);
}
END_TEST

/* Never more than max_in_flight at once, and every request gets its result. */
START_TEST(test_cap)
{
	struct ctx c;
	uint16_t port;
	int lfd = loopback_socket(AF_INET, 64, &port);

	ck_assert_int_ge(lfd, 0);
	ctx_init(&c, 3);
	ck_assert_uint_eq(vp_engine_max_in_flight(c.engine), 3);
	for (int i = 0; i < 40; i++)
		submit(&c, i, AF_INET, port, 2000);
	ck_assert_uint_eq(vp_engine_in_flight(c.engine), 3);
	ck_assert_uint_eq(vp_engine_queued(c.engine), 37);
	ck_assert_int_eq(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(c.n_results, 40);
	ck_assert_uint_le(c.max_seen_in_flight, 3);
	for (int i = 0; i < 40; i++)
		ck_assert_int_eq(c.res[i].v.verdict, VP_VERDICT_OK);
	ck_assert_uint_eq(vp_engine_in_flight(c.engine), 0);
	ck_assert_uint_eq(vp_engine_queued(c.engine), 0);
	ctx_done(&c);
	close(lfd);
}
END_TEST

/* Out of descriptors: local_error fd_exhausted, never blamed on the target,
 * and the engine recovers as soon as descriptors are free again. */
START_TEST(test_fd_exhausted_then_recovers)
{
	struct ctx c;
	uint16_t port;
	int lfd = loopback_socket(AF_INET, 16, &port);
	static int hog[65536];
	int n_hog = 0;
	struct rlimit rl = { 256, 256 };

	ck_assert_int_ge(lfd, 0);
	/* A low limit keeps the hog small; the engine still believes it may run 4. */
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	ctx_init(&c, 4);
	while (n_hog < 65536) {
		int fd = dup(lfd);
		if (fd < 0)
			break;
		hog[n_hog++] = fd;
	}
	ck_assert_int_eq(errno, EMFILE);
	submit(&c, 0, AF_INET, port, 1000);
	submit(&c, 1, AF_INET, port, 1000);
	ck_assert_int_eq(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(c.res[i].v.verdict, VP_VERDICT_LOCAL_ERROR);
		ck_assert_int_eq(c.res[i].v.reason, VP_REASON_FD_EXHAUSTED);
		ck_assert_int_eq(c.res[i].v.err, EMFILE);
		ck_assert_ptr_nonnull(strstr(c.res[i].v.detail, "socket: Too many open files"));
	}
	while (n_hog > 0)
		close(hog[--n_hog]);
	submit(&c, 2, AF_INET, port, 1000);
	ck_assert_int_eq(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(c.res[2].v.verdict, VP_VERDICT_OK);
	ctx_done(&c);
	close(lfd);
}
END_TEST

static void on_closed_mark(void *arg)
{
	struct ctx *c = arg;

	c->closed = true;
}

/* Closing with probes in flight and queued: no result callbacks, every
 * handle closed, and the loop closes cleanly. */
START_TEST(test_close_in_flight)
{
	struct ctx c;
	uint16_t port;
	int lfd = loopback_socket(AF_INET, 0, &port);
	int before;

	ck_assert_int_ge(lfd, 0);
	ctx_init(&c, 4);
	for (int i = 0; i < 10; i++)
		submit(&c, i, AF_INET, port, 60000);

	ck_assert_int_eq(uv_run(&c.loop, UV_RUN_NOWAIT), 1);
	/* The first connection fits the backlog and may complete already. */
	before = c.n_results;
	ck_assert_uint_gt(vp_engine_in_flight(c.engine) + vp_engine_queued(c.engine), 0);
	vp_engine_close(c.engine, on_closed_mark);
	ck_assert_int_eq(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
	ck_assert(c.closed);
	ck_assert_int_eq(c.n_results, before);
	ck_assert_uint_eq(vp_engine_in_flight(c.engine), 0);
	ck_assert_uint_eq(vp_engine_queued(c.engine), 0);
	ctx_done(&c);
	close(lfd);
}
END_TEST

/* The protocol phase, against a server on the same loop that misbehaves in
 * each of the ways a real target can. */
enum serve { SERVE_PONG, SERVE_CLOSE, SERVE_RESET, SERVE_GARBAGE, SERVE_SILENT, SERVE_FLOOD };

struct server {
	uv_tcp_t listener;
	enum serve mode;
	uv_tcp_t *clients[8];
	int n_clients;
};

static char flood[70 * 1024];

static void free_handle(uv_handle_t *h)
{
	free(h);
}

static void on_server_write(uv_write_t *w, int status)
{
	(void)status; /* the probe may have closed first: that is the point */
	free(w);
}

static void serve_bytes(uv_tcp_t *c, const char *buf, size_t len)
{
	uv_write_t *w = malloc(sizeof(*w));
	uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);

	ck_assert_ptr_nonnull(w);
	ck_assert_int_eq(uv_write(w, (uv_stream_t *)c, &b, 1, on_server_write), 0);
}

static void on_server_conn(uv_stream_t *l, int status)
{
	struct server *sv = l->data;
	uv_tcp_t *c = malloc(sizeof(*c));

	ck_assert_int_eq(status, 0);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(uv_tcp_init(l->loop, c), 0);
	ck_assert_int_eq(uv_accept(l, (uv_stream_t *)c), 0);
	switch (sv->mode) {
	case SERVE_PONG:
		serve_bytes(c, "+PONG\r\n", 7);
		break;
	case SERVE_CLOSE:
		uv_close((uv_handle_t *)c, free_handle);
		return;
	case SERVE_RESET:
		ck_assert_int_eq(uv_tcp_close_reset(c, free_handle), 0);
		return;
	case SERVE_GARBAGE:
		serve_bytes(c, "HTTP/1.1 400 Bad Request\r\n", 26);
		break;
	case SERVE_SILENT:
		break;
	case SERVE_FLOOD:
		memset(flood, 'A', sizeof(flood));
		serve_bytes(c, flood, sizeof(flood));
		break;
	}
	ck_assert_int_lt(sv->n_clients, 8);
	sv->clients[sv->n_clients++] = c;
}

/* A toy line protocol: "PING" out, "+PONG" back is ok. */
static int ping_start(struct vp_tcp_probe *p)
{
	return vp_tcp_send(p, "PING\r\n", 6);
}

static void ping_data(struct vp_tcp_probe *p)
{
	struct vp_verdict_out v = { 0 };
	const uint8_t *nl = memchr(p->rbuf, '\n', p->rlen);

	if (!nl)
		return;
	if (p->rlen >= 5 && !memcmp(p->rbuf, "+PONG", 5)) {
		v.verdict = VP_VERDICT_OK;
		v.reason = VP_REASON_PROTOCOL;
		strcpy(v.reason_text, "pong");
	} else {
		v.verdict = VP_VERDICT_PROTOCOL_ERROR;
		v.reason = VP_REASON_UNEXPECTED_REPLY;
	}
	vp_tcp_consume(p, (size_t)(nl - p->rbuf) + 1);
	vp_tcp_decide(p, &v);
}

static const struct vp_proto ping_proto = { "ping", ping_start, ping_data, NULL };

struct proto_row {
	enum serve mode;
	enum vp_verdict verdict;
	const char *reason;
};

static const struct proto_row proto_rows[] = {
	{ SERVE_PONG, VP_VERDICT_OK, "pong" },
	{ SERVE_CLOSE, VP_VERDICT_RESET, "closed_before_reply" },
	{ SERVE_RESET, VP_VERDICT_RESET, "reset_before_reply" },
	{ SERVE_GARBAGE, VP_VERDICT_PROTOCOL_ERROR, "unexpected_reply" },
	{ SERVE_SILENT, VP_VERDICT_TIMEOUT, "reply_timeout" },
	{ SERVE_FLOOD, VP_VERDICT_PROTOCOL_ERROR, "unexpected_reply" },
};

START_TEST(test_protocol_phase)
{
	const struct proto_row *row = &proto_rows[_i];
	struct server sv = { .mode = row->mode };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_storage bound;
	int len = sizeof(bound);
	struct ctx c;

	ctx_init(&c, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(uv_tcp_init(&c.loop, &sv.listener), 0);
	sv.listener.data = &sv;
	ck_assert_int_eq(uv_tcp_bind(&sv.listener, (struct sockaddr *)&sin, 0), 0);
	ck_assert_int_eq(uv_listen((uv_stream_t *)&sv.listener, 8, on_server_conn), 0);
	ck_assert_int_eq(uv_tcp_getsockname(&sv.listener, (struct sockaddr *)&bound, &len), 0);

	submit_proto(&c, 0, ntohs(((struct sockaddr_in *)&bound)->sin_port), 300, &ping_proto);
	while (c.n_results == 0)
		uv_run(&c.loop, UV_RUN_ONCE);

	ck_assert_msg(c.res[0].v.verdict == row->verdict, "row %d: %s, expected %s (%s)", _i,
	              vp_verdict_name(c.res[0].v.verdict), vp_verdict_name(row->verdict),
	              c.res[0].v.detail);
	ck_assert_str_eq(vp_verdict_reason(&c.res[0].v), row->reason);
	/* A reset can beat the connect callback: then no phase was timed. */
	if (row->mode != SERVE_RESET) {
		ck_assert(c.res[0].connect_ms >= 0);
		ck_assert(c.res[0].protocol_ms >= 0);
	}
	if (row->verdict != VP_VERDICT_OK)
		ck_assert(c.res[0].v.hint[0]);
	if (row->mode == SERVE_SILENT)
		ck_assert(c.res[0].end_ns >= c.res[0].deadline_ns);

	for (int i = 0; i < sv.n_clients; i++)
		uv_close((uv_handle_t *)sv.clients[i], free_handle);
	uv_close((uv_handle_t *)&sv.listener, NULL);
	ck_assert_int_eq(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
	ctx_done(&c);
}
END_TEST

static Suite *engine_suite(void)
{
	Suite *s = suite_create("engine");
	TCase *tc = tcase_create("loopback");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_ok_and_refused, 0, 2);
	tcase_add_test(tc, test_deadline_never_early);
	tcase_add_test(tc, test_deadlines_out_of_order);
	tcase_add_test(tc, test_cap);
	tcase_add_test(tc, test_fd_exhausted_then_recovers);
	tcase_add_test(tc, test_close_in_flight);
	tcase_add_loop_test(tc, test_protocol_phase, 0, (int)(sizeof(proto_rows) / sizeof(proto_rows[0])));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(engine_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* The probe engine: a FIFO of requests and a fixed set of probe slots.
 *
 * Slots are handed out from a high-water mark first and a free list after,
 * so an engine sized for 16,000 probes touches only the memory that the
 * probes in flight actually use. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "agent/engine.h"
#include "agent/limits.h"
#include "probes/proto.h"
#include "probes/tcp.h"

struct slot {
	struct vp_tcp_probe probe;
	struct vp_engine *engine;      /* borrowed */
	struct vp_probe_req *req;      /* borrowed from the submitter, NULL when free */
	struct slot *next_free;
	char address[46];
	uint16_t port;
};

struct vp_engine {
	uv_loop_t *loop;               /* borrowed */
	vp_engine_result_cb cb;
	void *arg;                     /* borrowed: the callback's */
	uint32_t max;
	struct slot *slots;            /* owned: 'max' of them */
	uint32_t used;                 /* slots[0..used) have been handed out at least once */
	struct slot *free_list;
	size_t in_flight;
	struct vp_probe_req *head;     /* the queue; requests are borrowed */
	struct vp_probe_req *tail;
	size_t queued;
	uv_check_t checker;            /* each turn: close finished probes, renew the budget */
	uv_idle_t starter;             /* active while the queue waits for the next turn */
	struct vp_tcp_probe *to_close; /* finished probes, closed from 'checker' */
	uint32_t started_this_turn;
	bool closing;
	int closing_handles;           /* checker and starter, while closing */
	void (*closed)(void *arg);       /* called with 'arg' */
};

static uint32_t fd_budget(uint32_t wanted)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return wanted;
	if (rl.rlim_cur <= VP_FD_RESERVE)
		return 1;
	if (rl.rlim_cur - VP_FD_RESERVE < wanted)
		return (uint32_t)(rl.rlim_cur - VP_FD_RESERVE);
	return wanted;
}

static void pump(struct vp_engine *e);

/* Closes the probes that finished since the last call. */
static void close_finished(struct vp_engine *e)
{
	while (e->to_close) {
		struct vp_tcp_probe *p = e->to_close;

		e->to_close = p->next_close;
		vp_tcp_probe_close(p);
	}
	uv_unref((uv_handle_t *)&e->checker);
}

static void on_check(uv_check_t *h)
{
	struct vp_engine *e = h->data;

	e->started_this_turn = 0;
	close_finished(e);
}

static void on_starter(uv_idle_t *h);

static void close_later(struct vp_tcp_probe *p)
{
	struct slot *s = p->data;
	struct vp_engine *e = s->engine;

	p->next_close = e->to_close;
	e->to_close = p;
	uv_ref((uv_handle_t *)&e->checker);
	/* A probe can finish outside the poll phase (a failed socket() from a
	 * close callback); the idle handle keeps the next poll from blocking
	 * before the checker has closed it. */
	uv_idle_start(&e->starter, on_starter);
}

/* Runs at the start of a turn while probes wait to be closed or started. */
static void on_starter(uv_idle_t *h)
{
	struct vp_engine *e = h->data;

	close_finished(e);
	uv_idle_stop(h);
	pump(e);   /* restarts the idle handle when the budget runs out again */
}

struct vp_engine *vp_engine_new(uv_loop_t *loop, uint32_t max_in_flight,
                                vp_engine_result_cb cb, void *arg)
{
	struct vp_engine *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->loop = loop;
	e->cb = cb;
	e->arg = arg;
	e->max = fd_budget(max_in_flight ? max_in_flight : VP_IN_FLIGHT_DEFAULT);
	e->slots = calloc(e->max, sizeof(*e->slots));
	if (!e->slots) {
		free(e);
		return NULL;
	}
	uv_check_init(loop, &e->checker);
	uv_idle_init(loop, &e->starter);
	e->checker.data = e;
	e->starter.data = e;
	/* The checker runs every turn without keeping the loop alive; it is
	 * referenced only while probes wait in 'to_close'. */
	uv_check_start(&e->checker, on_check);
	uv_unref((uv_handle_t *)&e->checker);
	return e;
}

static struct slot *slot_get(struct vp_engine *e)
{
	struct slot *s = e->free_list;

	if (s) {
		e->free_list = s->next_free;
		return s;
	}
	if (e->used < e->max)
		return &e->slots[e->used++];
	return NULL;
}

static void slot_put(struct vp_engine *e, struct slot *s)
{
	s->req = NULL;
	s->next_free = e->free_list;
	e->free_list = s;
}

static void fill_result(const struct slot *s, struct vp_probe_result *res)
{
	const struct vp_tcp_probe *p = &s->probe;

	memset(res, 0, sizeof(*res));
	res->obs = p->obs;
	memcpy(res->address, s->address, sizeof(res->address));
	res->obs.address = res->address;
	res->port = s->port;
	res->explained = vp_tcp_probe_verdict(p, &res->v);
	res->start_ns = p->start_ns;
	res->deadline_ns = p->deadline_ns;
	res->end_ns = p->end_ns;
	res->dns_ms = -1.0;
	res->connect_ms = p->connected_ns ? (double)(p->connected_ns - p->start_ns) / 1e6 : -1.0;
	res->protocol_ms = p->proto && p->connected_ns && p->proto_decided ?
	                   (double)(p->end_ns - p->connected_ns) / 1e6 : -1.0;
	/* The phases add up: the TLS handshake is not the protocol's time. */
	vp_tls_report(p->tls, p->end_ns, &res->tls, &res->tls_ms, &res->cert_days_left);
	if (res->protocol_ms >= 0 && res->tls_ms > 0)
		res->protocol_ms = res->protocol_ms > res->tls_ms ? res->protocol_ms - res->tls_ms : 0;
	res->total_ms = (double)(p->end_ns - p->start_ns) / 1e6;
	clock_gettime(CLOCK_REALTIME, &res->wall);
}

static void maybe_closed(struct vp_engine *e);

static void on_probe_done(struct vp_tcp_probe *p)
{
	struct slot *s = p->data;
	struct vp_engine *e = s->engine;
	struct vp_probe_req *req = s->req;
	struct vp_probe_result res;

	if (!e->closing)
		fill_result(s, &res);
	slot_put(e, s);
	e->in_flight--;
	if (e->closing) {
		maybe_closed(e);
		return;
	}
	e->cb(req, &res, e->arg);
	pump(e);
}

static void start(struct vp_engine *e, struct slot *s, struct vp_probe_req *req)
{
	const struct sockaddr *sa = (const struct sockaddr *)&req->addr;

	s->engine = e;
	s->req = req;
	s->probe.data = s;
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, s->address, sizeof(s->address));
		s->port = ntohs(in6->sin6_port);
	} else {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, s->address, sizeof(s->address));
		s->port = ntohs(in->sin_port);
	}
	memset(&s->probe.obs, 0, sizeof(s->probe.obs));
	s->probe.obs.kind = req->kind;
	s->probe.obs.address = s->address;
	s->probe.obs.port = s->port;
	s->probe.obs.timeout_ms = req->timeout_ms;
	s->probe.proto = req->proto ? req->proto : vp_proto_for(req->kind);
	s->probe.target = req->target;
	s->probe.close_later = close_later;
	e->in_flight++;
	vp_tcp_probe_start(e->loop, &s->probe, sa, req->timeout_ms, on_probe_done);
}

static void pump(struct vp_engine *e)
{
	while (!e->closing && e->head) {
		struct slot *s;
		struct vp_probe_req *req;

		if (e->started_this_turn >= VP_START_BATCH) {
			uv_idle_start(&e->starter, on_starter);
			return;
		}
		s = slot_get(e);
		if (!s)
			return;
		e->started_this_turn++;
		req = e->head;
		e->head = req->next;
		if (!e->head)
			e->tail = NULL;
		e->queued--;
		req->next = NULL;
		start(e, s, req);
	}
}

void vp_engine_submit(struct vp_engine *e, struct vp_probe_req *req)
{
	req->next = NULL;
	if (e->tail)
		e->tail->next = req;
	else
		e->head = req;
	e->tail = req;
	e->queued++;
	pump(e);
}

void vp_probe_result_explain(struct vp_probe_result *res)
{
	if (res->explained)
		return;
	res->obs.address = res->address;
	vp_explain_connect(&res->obs, &res->v);
	res->explained = true;
}

uint32_t vp_engine_max_in_flight(const struct vp_engine *e)
{
	return e->max;
}

size_t vp_engine_in_flight(const struct vp_engine *e)
{
	return e->in_flight;
}

size_t vp_engine_queued(const struct vp_engine *e)
{
	return e->queued;
}

static void maybe_closed(struct vp_engine *e)
{
	if (e->in_flight == 0 && e->closing_handles == 0 && e->closed) {
		void (*closed)(void *arg) = e->closed;

		e->closed = NULL;
		closed(e->arg);
	}
}

static void on_handle_closed(uv_handle_t *h)
{
	struct vp_engine *e = h->data;

	e->closing_handles--;
	maybe_closed(e);
}

void vp_engine_close(struct vp_engine *e, void (*closed)(void *arg))
{
	e->closing = true;
	e->closed = closed;
	e->head = e->tail = NULL;
	e->queued = 0;
	for (uint32_t i = 0; i < e->used; i++)
		if (e->slots[i].req)
			vp_tcp_probe_cancel(&e->slots[i].probe);
	/* Probes that finished but wait for the checker close now. */
	close_finished(e);
	e->closing_handles = 2;
	uv_close((uv_handle_t *)&e->checker, on_handle_closed);
	uv_close((uv_handle_t *)&e->starter, on_handle_closed);
}

struct vp_engine *vp_engine_free(struct vp_engine *e)
{
	if (!e)
		return NULL;
	free(e->slots);
	free(e);
	return NULL;
}

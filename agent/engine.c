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
	bool closing;
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
	vp_tcp_probe_verdict(p, &res->v);
	res->start_ns = p->start_ns;
	res->deadline_ns = p->deadline_ns;
	res->end_ns = p->end_ns;
	res->dns_ms = -1.0;
	res->connect_ms = p->connected_ns ? (double)(p->connected_ns - p->start_ns) / 1e6 : -1.0;
	res->protocol_ms = p->proto && p->connected_ns && p->proto_decided ?
	                   (double)(p->end_ns - p->connected_ns) / 1e6 : -1.0;
	res->total_ms = (double)(p->end_ns - p->start_ns) / 1e6;
	clock_gettime(CLOCK_REALTIME, &res->wall);
}

static void pump(struct vp_engine *e);

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
		if (e->in_flight == 0 && e->closed)
			e->closed(e->arg);
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
	e->in_flight++;
	vp_tcp_probe_start(e->loop, &s->probe, sa, req->timeout_ms, on_probe_done);
}

static void pump(struct vp_engine *e)
{
	while (!e->closing && e->head) {
		struct slot *s = slot_get(e);
		struct vp_probe_req *req;

		if (!s)
			return;
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

void vp_engine_close(struct vp_engine *e, void (*closed)(void *arg))
{
	e->closing = true;
	e->closed = closed;
	e->head = e->tail = NULL;
	e->queued = 0;
	if (e->in_flight == 0) {
		if (closed)
			closed(e->arg);
		return;
	}
	for (uint32_t i = 0; i < e->used; i++)
		if (e->slots[i].req)
			vp_tcp_probe_cancel(&e->slots[i].probe);
}

struct vp_engine *vp_engine_free(struct vp_engine *e)
{
	if (!e)
		return NULL;
	free(e->slots);
	free(e);
	return NULL;
}

/* The probe engine: a FIFO of requests and a fixed set of probe slots.
 *
 * Slots are handed out from a high-water mark first and a free list after,
 * so an engine sized for 16,000 probes touches only the memory that the
 * probes in flight actually use.
 *
 * Deadlines: libuv's timers count whole milliseconds of a loop time that is
 * truncated when it is read, and epoll_wait() sleeps whole milliseconds from
 * the call, so a probe's own timer ends it up to about 2 ms after its
 * deadline. The engine therefore also keeps the probes in flight in order
 * of deadline and one timerfd (CLOCK_MONOTONIC, uv_hrtime()'s clock) armed
 * at the earliest, absolute, to the nanosecond; it expires what is due.
 * The order: a FIFO takes every deadline that is not earlier than its last
 * (all of them when the probes share one timeout: start times only grow),
 * in O(1) both ways; a heap takes the others (a shorter timeout, what a
 * name's lookup left of a run). The earliest is the FIFO's head or the
 * heap's top.
 * The probes' timers stay armed as the backstop (and are all there is when
 * no timerfd could be made). The timerfd is re-armed only for an earlier
 * deadline, so a probe that ends early costs at most one spurious wakeup. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

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
	struct slot *dl_prev, *dl_next; /* in the deadline FIFO, when in_fifo */
	bool in_fifo;
	uint32_t heap_idx;             /* in the deadline heap, or NOT_IN_HEAP */
};

#define NOT_IN_HEAP UINT32_MAX

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
	struct slot *fifo_head, *fifo_tail; /* deadlines in order, see above */
	struct slot **heap;            /* owned: the out-of-order ones, 'max' places */
	uint32_t n_heap;
	int tfd;                       /* the deadline timerfd, -1: none (probe timers only) */
	uv_poll_t tpoll;               /* watches 'tfd', referenced while a deadline waits */
	uint64_t armed_ns;             /* the timerfd's expiry, 0: disarmed */
	bool closing;
	int closing_handles;           /* checker, starter and tpoll, while closing */
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

/* ---- deadlines: the FIFO and the heap ---- */

static bool earlier(const struct slot *a, const struct slot *b)
{
	return a->probe.deadline_ns < b->probe.deadline_ns;
}

static void heap_set(struct vp_engine *e, uint32_t i, struct slot *s)
{
	e->heap[i] = s;
	s->heap_idx = i;
}

static void sift_up(struct vp_engine *e, uint32_t i)
{
	struct slot *s = e->heap[i];

	while (i > 0 && earlier(s, e->heap[(i - 1) / 2])) {
		heap_set(e, i, e->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(e, i, s);
}

static void sift_down(struct vp_engine *e, uint32_t i)
{
	struct slot *s = e->heap[i];

	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= e->n_heap)
			break;
		if (c + 1 < e->n_heap && earlier(e->heap[c + 1], e->heap[c]))
			c++;
		if (!earlier(e->heap[c], s))
			break;
		heap_set(e, i, e->heap[c]);
		i = c;
	}
	heap_set(e, i, s);
}

static void heap_remove(struct vp_engine *e, struct slot *s)
{
	uint32_t i = s->heap_idx;
	struct slot *last = e->heap[--e->n_heap];

	s->heap_idx = NOT_IN_HEAP;
	if (i == e->n_heap)
		return;
	heap_set(e, i, last);
	sift_down(e, i);
	sift_up(e, last->heap_idx);
}

static void deadline_add(struct vp_engine *e, struct slot *s)
{
	struct slot *t = e->fifo_tail;

	if (t && earlier(s, t)) {
		heap_set(e, e->n_heap++, s);
		sift_up(e, s->heap_idx);
		return;
	}
	s->dl_prev = t;
	s->dl_next = NULL;
	if (t)
		t->dl_next = s;
	else
		e->fifo_head = s;
	e->fifo_tail = s;
	s->in_fifo = true;
}

static void deadline_remove(struct vp_engine *e, struct slot *s)
{
	if (s->heap_idx != NOT_IN_HEAP) {
		heap_remove(e, s);
		return;
	}
	if (!s->in_fifo)
		return;
	if (s->dl_prev)
		s->dl_prev->dl_next = s->dl_next;
	else
		e->fifo_head = s->dl_next;
	if (s->dl_next)
		s->dl_next->dl_prev = s->dl_prev;
	else
		e->fifo_tail = s->dl_prev;
	s->in_fifo = false;
}

static struct slot *deadline_first(const struct vp_engine *e)
{
	struct slot *f = e->fifo_head;
	struct slot *h = e->n_heap ? e->heap[0] : NULL;

	if (!f || !h)
		return f ? f : h;
	return earlier(h, f) ? h : f;
}

/* Aims the timerfd at the earliest deadline unless an earlier expiry is
 * armed already: that one fires, finds nothing due and comes back here. */
static void arm(struct vp_engine *e)
{
	struct itimerspec its = { 0 };
	struct slot *first = deadline_first(e);
	uint64_t d;

	if (!first) {
		uv_unref((uv_handle_t *)&e->tpoll);
		return;
	}
	uv_ref((uv_handle_t *)&e->tpoll);
	d = first->probe.deadline_ns;
	if (e->armed_ns != 0 && e->armed_ns <= d)
		return;
	its.it_value.tv_sec = (time_t)(d / 1000000000u);
	its.it_value.tv_nsec = (long)(d % 1000000000u);
	/* Cannot fail for a valid descriptor and time; if it did, the probes'
	 * own timers still end them. */
	if (timerfd_settime(e->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		e->armed_ns = d;
}

static void on_deadlines(uv_poll_t *h, int status, int events)
{
	struct vp_engine *e = h->data;
	uint64_t ticks, now;

	(void)status;
	(void)events;
	/* EAGAIN when a re-arm reset it: either way it is disarmed now. */
	(void)!read(e->tfd, &ticks, sizeof(ticks));
	e->armed_ns = 0;
	now = uv_hrtime();
	for (struct slot *s; (s = deadline_first(e)) && s->probe.deadline_ns <= now;) {
		deadline_remove(e, s);
		vp_tcp_probe_expire(&s->probe, now);
	}
	arm(e);
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
	e->tfd = -1;
	e->heap = malloc(e->max * sizeof(*e->heap));
	if (e->heap)
		e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (e->tfd >= 0 && uv_poll_init(loop, &e->tpoll, e->tfd) < 0) {
		close(e->tfd);
		e->tfd = -1;
	}
	if (e->tfd >= 0) {
		e->tpoll.data = e;
		uv_poll_start(&e->tpoll, UV_READABLE, on_deadlines);
		uv_unref((uv_handle_t *)&e->tpoll);
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
	if (s->in_fifo || s->heap_idx != NOT_IN_HEAP) {
		deadline_remove(e, s);
		if (!e->closing)
			arm(e);
	}
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
	s->heap_idx = NOT_IN_HEAP;
	s->in_fifo = false;
	e->in_flight++;
	vp_tcp_probe_start(e->loop, &s->probe, sa, req->timeout_ms, on_probe_done);
	if (e->tfd >= 0 && !s->probe.decided) {
		deadline_add(e, s);
		arm(e);
	}
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

/* The descriptor goes only once libuv has stopped watching it. */
static void on_tpoll_closed(uv_handle_t *h)
{
	struct vp_engine *e = h->data;

	close(e->tfd);
	e->tfd = -1;
	on_handle_closed(h);
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
	if (e->tfd >= 0) {
		e->closing_handles++;
		uv_close((uv_handle_t *)&e->tpoll, on_tpoll_closed);
	}
}

struct vp_engine *vp_engine_free(struct vp_engine *e)
{
	if (!e)
		return NULL;
	free(e->heap);
	free(e->slots);
	free(e);
	return NULL;
}

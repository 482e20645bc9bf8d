/* libcurl's multi socket interface on the libuv loop (curl_uv.h).
 *
 * The shape is curl's own multi-uv example, as agent/reporter_curl.c had
 * it; what this adds is sharing. A loop has one 'struct multi', found in a
 * short list by its loop; every vp_curlm_new() is a counted reference to
 * it. Closing follows libuv: a socket's uv_poll_t is stopped when curl says
 * CURL_POLL_REMOVE (before curl closes the descriptor) and freed from its
 * close callback, and the multi handle goes only once the last reference
 * has been closed, which is always from a close callback and so never from
 * inside curl_multi_info_read()'s loop. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "agent/curl_uv.h"

struct multi;

struct curl_sock {
	uv_poll_t poll;
	curl_socket_t fd;
	bool closing;                 /* curl said CURL_POLL_REMOVE */
	struct multi *m;              /* borrowed */
	struct curl_sock *next;       /* the list of open ones */
};

struct multi {
	uv_loop_t *loop;              /* borrowed */
	CURLM *multi;                 /* owned; NULL once closing */
	uv_timer_t timer;
	struct curl_sock *socks;      /* owned, polls not yet closing */
	int refs;                     /* references not yet closed */
	int open;                     /* handles not yet closed: socks and the timer */
	void (*closed)(void *arg);    /* the last reference's */
	void *closed_arg;             /* borrowed */
	struct multi *next;           /* 'live' */
};

struct vp_curlm {
	struct multi *m;              /* a counted reference */
	/* Never started: closing it is how vp_curlm_close() gets to a later
	 * loop turn for its 'closed'. */
	uv_idle_t closer;
	void (*closed)(void *arg);
	void *closed_arg;             /* borrowed */
};

/* The multis of the loops in this process, one per loop, until their last
 * reference goes. Loops and their callbacks run on one thread. */
static struct multi *live;

static void handle_closed(struct multi *m)
{
	if (--m->open > 0)
		return;
	if (m->closed)
		m->closed(m->closed_arg);
	free(m);
	curl_global_cleanup();
}

static void on_sock_closed(uv_handle_t *h)
{
	struct curl_sock *cs = h->data;
	struct multi *m = cs->m;

	free(cs);
	handle_closed(m);
}

static void sock_close(struct multi *m, struct curl_sock *cs)
{
	for (struct curl_sock **p = &m->socks; *p; p = &(*p)->next) {
		if (*p == cs) {
			*p = cs->next;
			break;
		}
	}
	cs->closing = true;
	uv_poll_stop(&cs->poll);
	uv_close((uv_handle_t *)&cs->poll, on_sock_closed);
}

/* Every finished transfer goes back to its owner, out of the multi. */
static void check_done(struct multi *m)
{
	struct vp_http_xfer *x;
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
		CURL *easy = msg->easy_handle;
		CURLcode rc = msg->data.result;

		if (msg->msg != CURLMSG_DONE)
			continue;
		x = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(m->multi, easy);
		if (x)
			x->done(x, rc);
	}
}

/* libuv reports EPOLLERR (a RST, an ICMP error) as a failed poll and stops
 * it. curl told CURL_CSELECT_ERR fails the transfer with "select/poll
 * returned error" and no errno; told that the socket is ready, it reads or
 * writes and names the error itself (ECONNRESET, EHOSTUNREACH). Only when
 * that did not end its use of the socket does it get the error flag. */
static void on_poll_error(struct multi *m, struct curl_sock *cs)
{
	int running;

	curl_multi_socket_action(m->multi, cs->fd, CURL_CSELECT_IN | CURL_CSELECT_OUT, &running);
	if (!cs->closing)
		curl_multi_socket_action(m->multi, cs->fd, CURL_CSELECT_ERR, &running);
	check_done(m);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct curl_sock *cs = h->data;
	struct multi *m = cs->m;
	int flags = 0;
	int running;

	if (status < 0) {
		on_poll_error(m, cs);
		return;
	}
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(m->multi, cs->fd, flags, &running);
	check_done(m);
}

static void on_timeout(uv_timer_t *t)
{
	struct multi *m = t->data;
	int running;

	curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(m);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct multi *m = userp;
	struct curl_sock *cs = socketp;
	int events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (cs) {
			if (m->multi)
				curl_multi_assign(m->multi, s, NULL);
			sock_close(m, cs);
		}
		return 0;
	}
	if (!cs) {
		cs = calloc(1, sizeof(*cs));
		if (!cs)
			return -1;
		if (uv_poll_init_socket(m->loop, &cs->poll, s) < 0) {
			free(cs);
			return -1;
		}
		cs->poll.data = cs;
		cs->fd = s;
		cs->m = m;
		cs->next = m->socks;
		m->socks = cs;
		m->open++;
		curl_multi_assign(m->multi, s, cs);
	}
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	/* Fails only for a descriptor epoll refuses; curl then sees no event
	 * and its own timeouts end the transfer. */
	(void)uv_poll_start(&cs->poll, events, on_poll);
	return 0;
}

/* curl asks not to call it back from inside this callback: a 0 ms timer
 * runs it on the next loop turn. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct multi *m = userp;

	(void)multi;
	if (timeout_ms < 0)
		uv_timer_stop(&m->timer);
	else
		uv_timer_start(&m->timer, on_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

static struct multi *multi_new(uv_loop_t *loop)
{
	struct multi *m;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return NULL;
	m = calloc(1, sizeof(*m));
	if (m)
		m->multi = curl_multi_init();
	if (!m || !m->multi) {
		free(m);
		curl_global_cleanup();
		return NULL;
	}
	m->loop = loop;
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
	/* Connections kept for reuse: the collector's and the metadata
	 * server's. The probes forbid reuse (each probe is a fresh connect),
	 * so theirs never wait here. */
	curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, 4L);
	uv_timer_init(loop, &m->timer);
	m->timer.data = m;
	m->open = 1;
	m->next = live;
	live = m;
	return m;
}

struct vp_curlm *vp_curlm_new(uv_loop_t *loop)
{
	struct vp_curlm *cm = calloc(1, sizeof(*cm));
	struct multi *m = live;

	if (!cm)
		return NULL;
	while (m && m->loop != loop)
		m = m->next;
	if (!m)
		m = multi_new(loop);
	if (!m) {
		free(cm);
		return NULL;
	}
	m->refs++;
	cm->m = m;
	uv_idle_init(loop, &cm->closer); /* cannot fail */
	cm->closer.data = cm;
	return cm;
}

int vp_curlm_add(struct vp_curlm *cm, struct vp_http_xfer *x)
{
	CURLMcode mc;

	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (char *)x);
	mc = curl_multi_add_handle(cm->m->multi, x->easy);
	if (mc == CURLM_OK)
		return 0;
	return mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
}

void vp_curlm_remove(struct vp_curlm *cm, struct vp_http_xfer *x)
{
	/* CURLM_OK too for a handle that check_done() took out already. */
	(void)curl_multi_remove_handle(cm->m->multi, x->easy);
}

static void on_timer_closed(uv_handle_t *h)
{
	handle_closed(h->data);
}

/* curl_multi_cleanup() closes the cached connections and says
 * CURL_POLL_REMOVE for each; a poll it did not mention is closed after. */
static void finish_close(struct multi *m)
{
	for (struct multi **p = &live; *p; p = &(*p)->next) {
		if (*p == m) {
			*p = m->next;
			break;
		}
	}
	curl_multi_cleanup(m->multi);
	m->multi = NULL;
	while (m->socks)
		sock_close(m, m->socks);
	uv_timer_stop(&m->timer);
	uv_close((uv_handle_t *)&m->timer, on_timer_closed);
}

static void on_ref_closed(uv_handle_t *h)
{
	struct vp_curlm *cm = h->data;
	struct multi *m = cm->m;
	void (*closed)(void *arg) = cm->closed;
	void *arg = cm->closed_arg;

	free(cm);
	if (--m->refs > 0) {
		if (closed)
			closed(arg);
		return;
	}
	m->closed = closed;
	m->closed_arg = arg;
	finish_close(m);
}

void vp_curlm_close(struct vp_curlm *cm, void (*closed)(void *arg), void *arg)
{
	cm->closed = closed;
	cm->closed_arg = arg;
	uv_close((uv_handle_t *)&cm->closer, on_ref_closed);
}

/* libcurl's multi socket interface on the libuv loop (reporter.h). The
 * shape is curl's own multi-uv example; what it adds is closing: a socket's
 * uv_poll_t is stopped when curl says CURL_POLL_REMOVE (before curl closes
 * the descriptor) and freed from its close callback, and the multi handle
 * goes only once no callback can reach it. */
#include <errno.h>
#include <stdlib.h>

#include "agent/log.h"
#include "agent/reporter.h"

struct curl_sock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct vp_curlm *cm;          /* borrowed */
	struct curl_sock *next;       /* the list of open ones */
};

struct vp_curlm {
	uv_loop_t *loop;              /* borrowed */
	CURLM *multi;                 /* owned */
	uv_timer_t timer;
	struct curl_sock *socks;      /* owned, polls not yet closing */
	int open;                     /* handles not yet closed: socks and the timer */
	int dispatching;              /* inside check_done(): closing waits */
	bool close_asked;
	void (*closed)(void *arg);
	void *closed_arg;             /* borrowed */
};

static void finish_close(struct vp_curlm *cm);

static void handle_closed(struct vp_curlm *cm)
{
	if (--cm->open == 0 && cm->close_asked) {
		if (cm->closed)
			cm->closed(cm->closed_arg);
		free(cm);
	}
}

static void on_sock_closed(uv_handle_t *h)
{
	struct curl_sock *cs = h->data;
	struct vp_curlm *cm = cs->cm;

	free(cs);
	handle_closed(cm);
}

static void sock_close(struct vp_curlm *cm, struct curl_sock *cs)
{
	for (struct curl_sock **p = &cm->socks; *p; p = &(*p)->next) {
		if (*p == cs) {
			*p = cs->next;
			break;
		}
	}
	uv_poll_stop(&cs->poll);
	uv_close((uv_handle_t *)&cs->poll, on_sock_closed);
}

/* Every finished transfer goes back to its owner. An owner may add
 * transfers or ask to close from 'done'; the close waits until the loop
 * over curl_multi_info_read() is over. */
static void check_done(struct vp_curlm *cm)
{
	struct vp_http_xfer *x;
	CURLMsg *msg;
	int left;

	cm->dispatching++;
	while (!cm->close_asked && (msg = curl_multi_info_read(cm->multi, &left)) != NULL) {
		CURL *easy = msg->easy_handle;
		CURLcode rc = msg->data.result;

		if (msg->msg != CURLMSG_DONE)
			continue;
		x = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(cm->multi, easy);
		if (x)
			x->done(x, rc);
	}
	if (--cm->dispatching == 0 && cm->close_asked && cm->multi)
		finish_close(cm);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct curl_sock *cs = h->data;
	struct vp_curlm *cm = cs->cm;
	int flags = 0;
	int running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(cm->multi, cs->fd, flags, &running);
	check_done(cm);
}

static void on_timeout(uv_timer_t *t)
{
	struct vp_curlm *cm = t->data;
	int running;

	curl_multi_socket_action(cm->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(cm);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct vp_curlm *cm = userp;
	struct curl_sock *cs = socketp;
	int events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (cs) {
			curl_multi_assign(cm->multi, s, NULL);
			sock_close(cm, cs);
		}
		return 0;
	}
	if (!cs) {
		cs = calloc(1, sizeof(*cs));
		if (!cs)
			return -1;
		if (uv_poll_init_socket(cm->loop, &cs->poll, s) < 0) {
			free(cs);
			return -1;
		}
		cs->poll.data = cs;
		cs->fd = s;
		cs->cm = cm;
		cs->next = cm->socks;
		cm->socks = cs;
		cm->open++;
		curl_multi_assign(cm->multi, s, cs);
	}
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&cs->poll, events, on_poll);
	return 0;
}

/* curl asks not to call it back from inside this callback: a 0 ms timer
 * runs it on the next loop turn. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct vp_curlm *cm = userp;

	(void)multi;
	if (timeout_ms < 0)
		uv_timer_stop(&cm->timer);
	else
		uv_timer_start(&cm->timer, on_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

struct vp_curlm *vp_curlm_new(uv_loop_t *loop)
{
	struct vp_curlm *cm = calloc(1, sizeof(*cm));

	if (!cm)
		return NULL;
	cm->loop = loop;
	cm->multi = curl_multi_init();
	if (!cm->multi) {
		free(cm);
		return NULL;
	}
	curl_multi_setopt(cm->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(cm->multi, CURLMOPT_SOCKETDATA, cm);
	curl_multi_setopt(cm->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(cm->multi, CURLMOPT_TIMERDATA, cm);
	/* The collector and the metadata server: a few connections at most. */
	curl_multi_setopt(cm->multi, CURLMOPT_MAXCONNECTS, 4L);
	uv_timer_init(loop, &cm->timer);
	cm->timer.data = cm;
	cm->open = 1;
	return cm;
}

int vp_curlm_add(struct vp_curlm *cm, struct vp_http_xfer *x)
{
	CURLMcode mc;

	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (char *)x);
	mc = curl_multi_add_handle(cm->multi, x->easy);
	if (mc == CURLM_OK)
		return 0;
	return mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
}

void vp_curlm_remove(struct vp_curlm *cm, struct vp_http_xfer *x)
{
	curl_multi_remove_handle(cm->multi, x->easy);
}

static void on_timer_closed(uv_handle_t *h)
{
	handle_closed(h->data);
}

/* curl_multi_cleanup() closes the cached connections and says
 * CURL_POLL_REMOVE for each; a poll it did not mention is closed after. */
static void finish_close(struct vp_curlm *cm)
{
	curl_multi_cleanup(cm->multi);
	cm->multi = NULL;
	while (cm->socks)
		sock_close(cm, cm->socks);
	uv_timer_stop(&cm->timer);
	uv_close((uv_handle_t *)&cm->timer, on_timer_closed);
}

void vp_curlm_close(struct vp_curlm *cm, void (*closed)(void *arg), void *arg)
{
	cm->close_asked = true;
	cm->closed = closed;
	cm->closed_arg = arg;
	if (cm->dispatching == 0)
		finish_close(cm);
}

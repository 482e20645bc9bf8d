/* The status server (see status.h): libmicrohttpd driven from the libuv
 * loop, routing, authentication and the headers every answer carries. What
 * the answers say is built in status_page.c and status_api.c. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/log.h"
#include "agent/status_int.h"

#define MHD_TIMER_MAX_MS 60000   /* re-ask MHD at least this often */
#define MHD_FD_REST_MS 250       /* out of descriptors: the poll rests this long */

/* ---- the token and the CSP ---- */

static int read_token(struct vp_status *s, const char *path, char *err, size_t errlen)
{
	char buf[VP_STATUS_TOKEN_MAX + 3];  /* the token, CR LF, and one byte to see more */
	struct stat st;
	ssize_t n = -1;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0 || (n = read(fd, buf, sizeof(buf))) < 0) {
		r = -errno;
		snprintf(err, errlen, "agent.status_token_file '%s': %s", path, strerror(errno));
		goto out;
	}
	if (n == (ssize_t)sizeof(buf))
		n = VP_STATUS_TOKEN_MAX + 1;      /* too long, whatever follows */
	while (n > 0 && strchr(" \t\r\n", buf[n - 1]) != NULL)
		n--;
	for (ssize_t i = 0; i < n && r == 0; i++)
		if ((unsigned char)buf[i] <= ' ' || buf[i] == 0x7f)
			r = -EINVAL;
	if (r < 0 || n == 0 || n > VP_STATUS_TOKEN_MAX) {
		r = -EINVAL;
		snprintf(err, errlen, "agent.status_token_file '%s': expected one token of 1..%d "
		         "printable bytes without spaces", path, VP_STATUS_TOKEN_MAX);
		goto out;
	}
	if (st.st_mode & S_IROTH)
		vp_log_warning("agent.status_token_file '%s' is readable by every user; "
		               "chmod o-r it", path);
	vp_status_sha256(buf, (size_t)n, s->token_sha);
	s->has_token = true;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	if (fd >= 0)
		(void)close(fd); /* read-only */
	return r;
}

/* The policy admits the page's one style sheet and one script by hash, so
 * markup that slipped through escaping could still run nothing. */
static void make_csp(struct vp_status *s)
{
	unsigned char h[VP_STATUS_SHA256_LEN];
	char css[64], js[64];

	vp_status_sha256(vp_status_css, strlen(vp_status_css), h);
	EVP_EncodeBlock((unsigned char *)css, h, sizeof(h));
	vp_status_sha256(vp_status_js, strlen(vp_status_js), h);
	EVP_EncodeBlock((unsigned char *)js, h, sizeof(h));
	snprintf(s->csp, sizeof(s->csp), "default-src 'none'; script-src 'sha256-%s'; "
	         "style-src 'sha256-%s'; img-src data:; connect-src 'self'; base-uri 'none'; "
	         "form-action 'none'; frame-ancestors 'none'", js, css);
}

/* ---- answers ---- */

struct reply {
	unsigned code;
	const char *type;            /* Content-Type */
	struct vp_buf body;
	int cache;                   /* the route whose answer may be kept, or -1 */
};

static void reply_text(struct reply *rep, unsigned code, const char *text)
{
	rep->code = code;
	rep->type = "text/plain; charset=utf-8";
	rep->cache = -1;
	vp_buf_done(&rep->body);
	vp_buf_init(&rep->body, VP_STATUS_BODY_MAX);
	vp_buf_puts(&rep->body, text);
}

static void add_headers(const struct vp_status *s, struct MHD_Response *resp, const struct reply *rep)
{
	/* A failed header leaves a working answer with one header less. */
	(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rep->type);
	(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	(void)MHD_add_response_header(resp, "Content-Security-Policy", s->csp);
	(void)MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	(void)MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	(void)MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	if (rep->code == MHD_HTTP_METHOD_NOT_ALLOWED)
		(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	if (rep->code == MHD_HTTP_SERVICE_UNAVAILABLE)
		(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	if (rep->code == MHD_HTTP_UNAUTHORIZED)
		(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		                              "Basic realm=\"vpcprobe\", charset=\"UTF-8\"");
}

/* What an answer holds of the in-flight budget until MHD has sent it. */
struct held {
	size_t bytes;
};

static void hold(struct vp_status *s, void **req_cls, size_t len)
{
	struct held *h = len > 0 ? malloc(sizeof(*h)) : NULL;

	if (h == NULL)
		return;   /* uncounted: one answer, bounded by its own limit */
	h->bytes = len;
	s->inflight += len;
	*req_cls = h;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct vp_status *s = cls;
	struct held *h = *req_cls;

	(void)c;
	(void)toe;
	if (h != NULL && *req_cls != (void *)s) {
		s->inflight -= h->bytes;
		free(h);
	}
	*req_cls = NULL;
}

static enum MHD_Result send_reply(struct vp_status *s, struct MHD_Connection *c, struct reply *rep,
                                  void **req_cls)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	size_t len = 0;
	char *data;

	if (rep->body.err) {
		vp_log_warning("status: answer not built: %s; sending 500", strerror(-rep->body.err));
		reply_text(rep, MHD_HTTP_INTERNAL_SERVER_ERROR,
		           rep->body.err == -ENOBUFS ? "answer too large\n" : "out of memory\n");
	}
	data = vp_buf_steal(&rep->body, &len);
	if (data != NULL)
		resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	else
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (resp == NULL) {
		free(data);
		return MHD_NO;   /* MHD closes the connection */
	}
	add_headers(s, resp, rep);
	ret = MHD_queue_response(c, rep->code, resp);
	if (rep->cache >= 0 && rep->code == MHD_HTTP_OK) {
		/* Kept: the reference from create is now the cache's, and
		 * one copy serves every reader, so it is not held per reader. */
		struct vp_status_cached *k = &s->cache[rep->cache];

		if (k->resp != NULL)
			MHD_destroy_response(k->resp);
		k->resp = resp;
		k->at_ms = uv_now(s->loop);
		return ret;
	}
	MHD_destroy_response(resp);
	if (ret == MHD_YES)
		hold(s, req_cls, len);
	return ret;
}

static void reply_health(struct vp_status *s, struct reply *rep)
{
	uint64_t now = uv_hrtime() / 1000000;
	char msg[96];

	if (!vp_status_loop_stalled(s->beat_ms, now)) {
		reply_text(rep, MHD_HTTP_OK, "ok\n");
		return;
	}
	snprintf(msg, sizeof(msg), "the probe loop stalled: no heartbeat for %llu ms\n",
	         (unsigned long long)(now - s->beat_ms));
	reply_text(rep, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
}

static void reply_ready(struct vp_status *s, struct reply *rep)
{
	struct vp_scheduler *sched = s->src.scheduler(s->src.arg);
	size_t n = vp_scheduler_count(sched), done = 0;
	char msg[128];

	if (vp_scheduler_ready(sched)) {
		reply_text(rep, MHD_HTTP_OK, "ready\n");
		return;
	}
	for (size_t i = 0; i < n; i++)
		done += vp_scheduler_target(sched, i)->runs > 0;
	snprintf(msg, sizeof(msg), "not ready: %zu of %zu targets probed once\n", done, n);
	reply_text(rep, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
}

static void reply_metrics(struct vp_status *s, struct reply *rep)
{
	struct vp_status_delivery d;
	struct vp_metrics_extra x = { 0 };

	vp_status_delivery_of(s, &d);
	x.reports_spooled_bytes = d.spooled_bytes;
	x.reports_dropped_total = d.dropped_total;
	rep->code = MHD_HTTP_OK;
	rep->cache = VP_ROUTE_METRICS;
	rep->type = "text/plain; version=0.0.4; charset=utf-8";
	/* A scrape cut short would lie: past its own limit it fails whole. */
	vp_buf_done(&rep->body);
	vp_buf_init(&rep->body, VP_STATUS_METRICS_MAX);
	(void)vp_metrics_render(s->metrics, s->src.scheduler(s->src.arg), &x, &rep->body);
}

static void reply_listeners(struct vp_status *s, struct MHD_Connection *c, struct reply *rep)
{
	const char *port = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "port");
	int r = vp_status_listeners_json(s, port, &rep->body);

	rep->code = MHD_HTTP_OK;
	rep->type = "application/json";
	if (r == -EINVAL || r == -EIO) {
		/* The body holds {"error": ...}. */
		rep->code = r == -EINVAL ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_SERVICE_UNAVAILABLE;
	}
}

static void reply_route(struct vp_status *s, struct MHD_Connection *c, enum vp_route route,
                        const char *rest, struct reply *rep)
{
	rep->code = MHD_HTTP_OK;
	switch (route) {
	case VP_ROUTE_PAGE:
		rep->cache = route;
		rep->type = "text/html; charset=utf-8";
		(void)vp_status_page(s, &rep->body);   /* the buffer keeps the error */
		return;
	case VP_ROUTE_TARGET:
		rep->type = "text/html; charset=utf-8";
		if (vp_status_target_page(s, rest, &rep->body) == -ENOENT)
			rep->code = MHD_HTTP_NOT_FOUND;
		return;
	case VP_ROUTE_STATUS:
		rep->cache = route;
		rep->type = "application/json";
		(void)vp_status_json(s, &rep->body);
		return;
	case VP_ROUTE_LISTENERS:
		reply_listeners(s, c, rep);
		return;
	case VP_ROUTE_METRICS:
		reply_metrics(s, rep);
		return;
	case VP_ROUTE_HEALTHZ:
		reply_health(s, rep);
		return;
	default:
		reply_ready(s, rep);
		return;
	}
}

/* The page, the JSON and /metrics cost milliseconds per thousand targets,
 * on the probe loop: each is built at most once per VP_STATUS_CACHE_MS and
 * the same answer is sent to everyone who asks within that time. */
static bool cached(struct vp_status *s, struct MHD_Connection *c, enum vp_route route,
                   enum MHD_Result *ret)
{
	const struct vp_status_cached *k = &s->cache[route];

	if (k->resp == NULL || uv_now(s->loop) - k->at_ms >= VP_STATUS_CACHE_MS)
		return false;
	*ret = MHD_queue_response(c, MHD_HTTP_OK, k->resp);
	return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
	struct vp_status *s = cls;
	struct reply rep = { .cache = -1 };
	enum vp_route route = VP_ROUTE_INVALID;
	const char *rest = NULL;
	enum MHD_Result ret;
	unsigned code;

	(void)version;
	(void)upload_data;
	/* MHD calls twice at least: once with the headers, then once the body
	 * (none for GET) is in. An answer queued on the first call makes MHD
	 * close the connection; on the second it keeps it alive. So GET and
	 * HEAD wait for the second call (a body sent with them anyway is read
	 * and dropped), and every other method is answered at once, its body
	 * never read. */
	if (*req_cls == NULL && method != NULL &&
	    (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)) {
		*req_cls = s;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	vp_buf_init(&rep.body, VP_STATUS_BODY_MAX);
	/* Slow readers must not pile up answers in memory. */
	if (s->inflight >= VP_STATUS_INFLIGHT_MAX) {
		reply_text(&rep, MHD_HTTP_SERVICE_UNAVAILABLE,
		           "busy: too many answers are still being sent; retry\n");
		goto out;
	}
	if (s->has_token && !vp_status_auth_ok(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                       MHD_HTTP_HEADER_AUTHORIZATION), s->token_sha)) {
		reply_text(&rep, MHD_HTTP_UNAUTHORIZED, "the status token is required: "
		           "Authorization: Bearer TOKEN, or TOKEN as the basic-auth password\n");
		goto out;
	}
	code = vp_status_route(method, url, &route, &rest);
	if (code == MHD_HTTP_OK && cached(s, c, route, &ret))
		goto done;
	if (code == MHD_HTTP_NOT_FOUND)
		reply_text(&rep, code, "not found; see / for the page\n");
	else if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		reply_text(&rep, code, "only GET and HEAD\n");
	else
		reply_route(s, c, route, rest, &rep);
out:
	ret = send_reply(s, c, &rep, req_cls);
done:
	vp_buf_done(&rep.body);
	return ret;
}

/* ---- libmicrohttpd on the libuv loop ---- */

__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	(void)vsnprintf(line, sizeof(line), fmt, ap); /* a cut line is still useful */
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	/* Client misbehaviour lands here too: debug, or a flood fills the log. */
	vp_log_debug("status: libmicrohttpd: %s", line);
}

static void on_mhd_timer(uv_timer_t *t);
static void on_poll(uv_poll_t *p, int status, int events);

/* Whether the process is out of descriptors, asked with a dup of 'fd'. */
static bool out_of_descriptors(int fd)
{
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	if (d >= 0) {
		(void)close(d); /* a probe, never used */
		return false;
	}
	return errno == EMFILE || errno == ENFILE;
}

/* Lets MHD do what is due (accept, read, answer, time out idle clients),
 * then arms the timer for what it will need next. MHD_run() never blocks
 * with an external loop.
 *
 * Out of descriptors, MHD cannot accept and, with no connection of its own
 * to close, "tries busy waiting" (issue 9, tests/faults.py fds): the
 * listening socket stays readable and the poll would fire on every turn, a
 * core spent for nothing. The poll then rests and the timer asks again
 * every MHD_FD_REST_MS, until a dup works. */
static void pump(struct vp_status *s)
{
	MHD_UNSIGNED_LONG_LONG ms = 0;
	bool polling = uv_is_active((uv_handle_t *)&s->poll);
	bool rest;
	uv_os_fd_t fd;

	if (s->mhd == NULL || s->stopped)
		return;
	if (MHD_run(s->mhd) != MHD_YES)
		vp_log_debug("status: MHD_run failed, retrying at the next event");
	rest = uv_fileno((uv_handle_t *)&s->poll, &fd) == 0 && out_of_descriptors(fd);
	if (rest && polling)
		(void)uv_poll_stop(&s->poll); /* cannot fail */
	else if (!rest && !polling)
		(void)uv_poll_start(&s->poll, UV_READABLE, on_poll); /* an fd already polled */
	if (rest) {
		ms = MHD_FD_REST_MS;
	} else if (MHD_get_timeout(s->mhd, &ms) != MHD_YES) {
		uv_timer_stop(&s->mhd_timer);
		return;
	}
	uv_timer_start(&s->mhd_timer, on_mhd_timer, ms < MHD_TIMER_MAX_MS ? ms : MHD_TIMER_MAX_MS, 0);
}

static void on_mhd_timer(uv_timer_t *t)
{
	pump(t->data);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	(void)events;
	if (status < 0)
		vp_log_debug("status: poll: %s", uv_strerror(status));
	pump(p->data);
}

static void on_heartbeat(uv_timer_t *t)
{
	struct vp_status *s = t->data;

	s->beat_ms = uv_hrtime() / 1000000;
}

static int open_listener(const char *text, int *ret, char *err, size_t errlen)
{
	struct sockaddr_storage ss = { 0 };
	struct vp_addrport ap;
	socklen_t len;
	int fd, one = 1, sndbuf = VP_STATUS_SNDBUF;
	char msg[VP_ERR_MAX];

	if (vp_addrport_parse(text, 0, &ap, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "agent.status_listen: %s", msg);
		return -EINVAL;
	}
	if (ap.family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(ap.port);
		memcpy(&sin->sin_addr, ap.addr, 4);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(ap.port);
		memcpy(&sin6->sin6_addr, ap.addr, 16);
		len = sizeof(*sin6);
	}
	fd = socket(ap.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	/* Accepted sockets inherit the listener's send buffer. A capped one
	 * bounds what one send() of a megabyte answer writes in one loop turn,
	 * so the probes' timers wait for less (see agent/limits.h). A failed
	 * cap leaves the kernel's autotuning: a slower loop under a flood, not
	 * a broken page. */
	if (fd >= 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, SOMAXCONN) < 0) {
		int e = errno;

		snprintf(err, errlen, "agent.status_listen '%s': %s", text, strerror(e));
		if (fd >= 0)
			(void)close(fd); /* never served */
		return -e;
	}
	*ret = fd;
	return 0;
}

static int start_mhd(struct vp_status *s, int fd, char *err, size_t errlen)
{
	const union MHD_DaemonInfo *info;

	/* The logger first: MHD logs to stderr itself until it has one. */
	s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, s,
	                          MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
	                          MHD_OPTION_LISTEN_SOCKET, fd,
	                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)VP_STATUS_CONN_MAX,
	                          MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)VP_STATUS_CONN_PER_IP,
	                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)VP_STATUS_IDLE_S,
	                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)VP_STATUS_CONN_MEMORY,
	                          MHD_OPTION_STRICT_FOR_CLIENT, 1,
	                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
	                          MHD_OPTION_END);
	if (s->mhd == NULL) {
		/* Whether MHD closed the socket it was given depends on where it
		 * failed; nothing else can have the number yet. */
		if (fcntl(fd, F_GETFD) >= 0)
			(void)close(fd);
		snprintf(err, errlen, "agent.status_listen: libmicrohttpd did not start");
		return -EIO;
	}
	info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL) {
		snprintf(err, errlen, "agent.status_listen: libmicrohttpd has no epoll descriptor");
		return -EIO;
	}
	uv_poll_init(s->loop, &s->poll, info->epoll_fd);
	s->poll.data = s;
	return uv_poll_start(&s->poll, UV_READABLE, on_poll);
}

int vp_status_start(uv_loop_t *loop, const struct vp_config *cfg,
                    const struct vp_status_source *src, struct vp_status **ret,
                    char *err, size_t errlen)
{
	struct vp_status *s = calloc(1, sizeof(*s));
	int fd = -1, r = -ENOMEM;

	if (s == NULL || (s->metrics = vp_metrics_new()) == NULL) {
		snprintf(err, errlen, "status: out of memory");
		goto fail;
	}
	s->loop = loop;
	s->src = *src;
	s->collector = cfg->collector.url != NULL;
	s->started_ms = vp_status_realtime_ms();
	s->beat_ms = uv_hrtime() / 1000000;
	vp_listen_table_init(&s->listen);
	make_csp(s);
	uv_timer_init(loop, &s->mhd_timer);
	uv_timer_init(loop, &s->heartbeat);
	s->mhd_timer.data = s;
	s->heartbeat.data = s;
	r = cfg->status_token_file ? read_token(s, cfg->status_token_file, err, errlen) : 0;
	if (r == 0)
		r = open_listener(cfg->status_listen, &fd, err, errlen);
	if (r == 0)
		r = start_mhd(s, fd, err, errlen);
	if (r < 0)
		goto fail;
	uv_timer_start(&s->heartbeat, on_heartbeat, VP_STATUS_HEARTBEAT_MS, VP_STATUS_HEARTBEAT_MS);
	pump(s);
	*ret = s;
	return 0;
fail:
	if (s != NULL && s->loop != NULL) {
		/* Close what was opened, then let the loop finish closing it. */
		vp_status_stop(s);
		while (s->closing > 0)
			uv_run(loop, UV_RUN_NOWAIT);
	}
	vp_status_free(s);
	return r;
}

void vp_status_observe(struct vp_status *s, const struct vp_sched_target *st)
{
	if (s != NULL)
		vp_metrics_observe(s->metrics, st);
}

static void on_closed(uv_handle_t *h)
{
	struct vp_status *s = h->data;

	/* MHD closes its epoll descriptor: only once libuv has let go of it. */
	if (--s->closing == 0 && s->mhd != NULL) {
		MHD_stop_daemon(s->mhd);
		s->mhd = NULL;
	}
}

void vp_status_stop(struct vp_status *s)
{
	uv_handle_t *hs[3];
	size_t n = 0;

	if (s == NULL || s->stopped)
		return;
	s->stopped = true;
	hs[n++] = (uv_handle_t *)&s->mhd_timer;
	hs[n++] = (uv_handle_t *)&s->heartbeat;
	if (s->poll.type == UV_POLL)
		hs[n++] = (uv_handle_t *)&s->poll;
	for (size_t i = 0; i < n; i++) {
		hs[i]->data = s;
		s->closing++;
		uv_close(hs[i], on_closed);
	}
}

struct vp_status *vp_status_free(struct vp_status *s)
{
	if (s == NULL)
		return NULL;
	if (s->mhd != NULL)
		MHD_stop_daemon(s->mhd);   /* the loop ended before the handles closed */
	for (int i = 0; i < VP_ROUTE_MAX; i++)
		if (s->cache[i].resp != NULL)
			MHD_destroy_response(s->cache[i].resp);
	vp_listen_table_done(&s->listen);
	vp_metrics_free(s->metrics);
	free(s);
	return NULL;
}

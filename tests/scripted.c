/*
 * tests/scripted.c — a one-client loopback server that a unit test scripts.
 * See scripted.h.
 */
#include "scripted.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static void written(uv_write_t *w, int status)
{
	(void)status; /* the probe may have closed first */
	free(w);
}

void scripted_send(struct scripted *s, const void *buf, size_t len)
{
	uv_write_t *w = malloc(sizeof(*w) + len);
	uv_buf_t b;

	ck_assert_ptr_nonnull(w);
	memcpy(w + 1, buf, len);
	b = uv_buf_init((char *)(w + 1), (unsigned)len);
	ck_assert_int_eq(uv_write(w, (uv_stream_t *)&s->client, &b, 1, written), 0);
}

void scripted_send_str(struct scripted *s, const char *str)
{
	scripted_send(s, str, strlen(str));
}

void scripted_consume(struct scripted *s, size_t n)
{
	ck_assert_uint_le(n, s->inlen);
	memmove(s->in, s->in + n, s->inlen - n);
	s->inlen -= n;
}

void scripted_close_client(struct scripted *s)
{
	if (s->has_client)
		uv_close((uv_handle_t *)&s->client, NULL);
	s->has_client = false;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct scripted *s = h->data;

	(void)suggested;
	*buf = uv_buf_init((char *)s->in + s->inlen, (unsigned)(sizeof(s->in) - s->inlen));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct scripted *s = st->data;

	(void)buf;
	if (nread <= 0 || !s->has_client)
		return;
	s->inlen += (size_t)nread;
	ck_assert_msg(s->inlen < sizeof(s->in), "the probe sent more than %zu bytes", sizeof(s->in));
	if (s->on_read != NULL)
		s->on_read(s);
}

static void on_connection(uv_stream_t *l, int status)
{
	struct scripted *s = l->data;

	ck_assert_int_eq(status, 0);
	ck_assert_msg(!s->has_client, "a second connection: the probe retried");
	ck_assert_int_eq(uv_tcp_init(l->loop, &s->client), 0);
	s->client.data = s;
	ck_assert_int_eq(uv_accept(l, (uv_stream_t *)&s->client), 0);
	s->has_client = true;
	if (s->on_connect != NULL)
		s->on_connect(s);
	if (s->has_client)
		ck_assert_int_eq(uv_read_start((uv_stream_t *)&s->client, on_alloc, on_read), 0);
}

uint16_t scripted_listen(uv_loop_t *loop, struct scripted *s)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_storage bound;
	int len = sizeof(bound);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(uv_tcp_init(loop, &s->listener), 0);
	s->listener.data = s;
	ck_assert_int_eq(uv_tcp_bind(&s->listener, (struct sockaddr *)&sin, 0), 0);
	ck_assert_int_eq(uv_listen((uv_stream_t *)&s->listener, 4, on_connection), 0);
	ck_assert_int_eq(uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len), 0);
	return ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

static void on_result(struct vp_probe_req *req, const struct vp_probe_result *res, void *arg)
{
	struct scripted_run *r = arg;

	(void)req;
	r->res = *res;
	r->done = true;
}

void scripted_run_init(struct scripted_run *r)
{
	memset(r, 0, sizeof(*r));
	ck_assert_int_eq(uv_loop_init(&r->loop), 0);
	r->engine = vp_engine_new(&r->loop, 0, on_result, r);
	ck_assert_ptr_nonnull(r->engine);
}

void scripted_run_probe(struct scripted_run *r, struct vp_probe_req *req, uint16_t port)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&req->addr;

	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	in->sin_port = htons(port);
	r->done = false;
	vp_engine_submit(r->engine, req);
	while (!r->done)
		uv_run(&r->loop, UV_RUN_ONCE);
}

void scripted_run_end(struct scripted_run *r, struct scripted *s)
{
	scripted_close_client(s);
	uv_close((uv_handle_t *)&s->listener, NULL);
	vp_engine_close(r->engine, NULL);
	ck_assert_int_eq(uv_run(&r->loop, UV_RUN_DEFAULT), 0);
	vp_engine_free(r->engine);
	ck_assert_int_eq(uv_loop_close(&r->loop), 0);
}

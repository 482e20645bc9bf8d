/*
 * tests/scripted.h — a one-client loopback server that a unit test scripts,
 * and the engine run that probes it.
 *
 *     struct scripted s = { .on_read = my_read, .data = row };
 *     struct scripted_run r;
 *
 *     scripted_run_init(&r);
 *     req.timeout_ms = 2000;
 *     scripted_run_probe(&r, &req, scripted_listen(&r.loop, &s));
 *     ... assert on r.res ...
 *     scripted_run_end(&r, &s);
 *
 * Bytes from the probe are appended to s.in; on_read then consumes what it
 * understood with scripted_consume(). Everything runs on the test's loop and
 * every handle is closed by scripted_run_end(), which asserts that the loop
 * closes cleanly: a probe that leaks a handle fails its test.
 */
#ifndef VP_TESTS_SCRIPTED_H
#define VP_TESTS_SCRIPTED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "agent/engine.h"

#define SCRIPTED_IN_MAX (20 * 1024)   /* a TLS record and then some */

struct scripted {
	uv_tcp_t listener;
	uv_tcp_t client;
	bool has_client;
	/* Called once the client is accepted, before reading starts. */
	void (*on_connect)(struct scripted *s);
	/* Called after bytes were appended to in[]. */
	void (*on_read)(struct scripted *s);
	void *data;                       /* the test's own */
	uint8_t in[SCRIPTED_IN_MAX];
	size_t inlen;
};

/* Listens on 127.0.0.1, an ephemeral port; returns the port. */
uint16_t scripted_listen(uv_loop_t *loop, struct scripted *s);
/* Queues a copy of buf to the client. */
void scripted_send(struct scripted *s, const void *buf, size_t len);
void scripted_send_str(struct scripted *s, const char *str);
/* Drops the first n bytes of in[]. */
void scripted_consume(struct scripted *s, size_t n);
/* Closes the client connection (a FIN), if there is one. */
void scripted_close_client(struct scripted *s);

struct scripted_run {
	uv_loop_t loop;
	struct vp_engine *engine;
	struct vp_probe_result res;
	bool done;
};

void scripted_run_init(struct scripted_run *r);
/* Probes 127.0.0.1:port with req and runs the loop until the result. */
void scripted_run_probe(struct scripted_run *r, struct vp_probe_req *req, uint16_t port);
/* Closes the server's handles and the engine; asserts the loop closes. */
void scripted_run_end(struct scripted_run *r, struct scripted *s);

#endif

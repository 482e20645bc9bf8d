/* Probing targets once: see probe_once.h. */
#include <errno.h>
#include <stdio.h>

#include "agent/probe_once.h"

int vp_target_from_url(struct vp_target *t, char *url, uint32_t timeout_ms, uint32_t interval_s,
                       char *err, size_t errlen)
{
	if (vp_url_parse(url, &t->url, err, errlen) < 0)
		return -EINVAL;
	t->name = url;     /* borrowed from the caller (argv): never freed */
	t->url_text = url;
	t->timeout_ms = timeout_ms;
	t->interval_s = interval_s;
	return 0;
}

static void on_run_done(struct vp_target_run *tr)
{
	size_t *n_done = tr->data;

	(*n_done)++;
}

int vp_probe_once(const struct vp_config *cfg, struct vp_target_run *runs, size_t n,
                  const char *who)
{
	uv_loop_t loop;
	struct vp_runner *runner;
	size_t n_done = 0;
	int r;

	r = uv_loop_init(&loop);
	if (r < 0) {
		fprintf(stderr, "%s: uv_loop_init: %s\n", who, uv_strerror(r));
		return r;
	}
	runner = vp_runner_new(&loop, cfg);
	if (!runner) {
		fprintf(stderr, "%s: out of memory for the probe engine\n", who);
		uv_loop_close(&loop);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		runs[i].done = on_run_done;
		runs[i].data = &n_done;
		vp_runner_start(runner, &runs[i]);
	}
	while (n_done < n && uv_run(&loop, UV_RUN_ONCE))
		;
	/* Every run is done; close the resolver and engine handles. */
	vp_runner_close(runner, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	vp_runner_free(runner);
	r = uv_loop_close(&loop);
	if (r < 0)
		fprintf(stderr, "%s: uv_loop_close: %s, ignoring\n", who, uv_strerror(r));
	return 0;
}

#include <stdlib.h>
#include <string.h>

#include "agent/limits.h"
#include "agent/log.h"
#include "agent/scheduler.h"

struct vp_scheduler {
	uv_loop_t *loop;                  /* borrowed */
	const struct vp_config *cfg;      /* borrowed */
	struct vp_runner *runner;         /* owned */
	struct vp_sched_target *targets;  /* owned, one per cfg target */
	size_t n;
	size_t n_ready;                   /* targets with at least one run */
	vp_sched_cb cb;
	void *arg;                        /* borrowed: cb's */
	bool started;                     /* the timers are initialised */
	bool stopping;
	int closing;                      /* handles and parts still closing */
	void (*closed)(struct vp_scheduler *s, void *arg);
	void *closed_arg;
};

enum vp_verdict vp_results_verdict(const struct vp_probe_result *res, size_t n)
{
	if (n == 0)
		return VP_VERDICT_LOCAL_ERROR;
	for (size_t i = 0; i < n; i++)
		if (res[i].v.verdict != VP_VERDICT_OK)
			return res[i].v.verdict;
	return VP_VERDICT_OK;
}

static int64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_due(uv_timer_t *t);

uint64_t vp_sched_first_offset(size_t i, size_t n, uint64_t interval_ms)
{
	uint64_t off = n ? interval_ms * i / n : 0;

	return off - off % VP_SCHED_STEP_MS;
}

static void arm(struct vp_sched_target *st)
{
	uint64_t now = uv_now(st->sched->loop);

	uv_timer_start(&st->timer, on_due, st->due_ms > now ? st->due_ms - now : 0, 0);
}

static void record(struct vp_sched_target *st)
{
	struct vp_target_run *tr = &st->run;
	struct vp_history_entry e = { .time_ms = realtime_ms() };
	enum vp_verdict v = vp_results_verdict(tr->results, tr->n_results);
	struct vp_probe_result *copy = NULL;

	for (size_t i = 0; i < tr->n_results; i++) {
		if (tr->results[i].v.verdict == VP_VERDICT_OK)
			e.n_ok++;
		if (tr->results[i].total_ms > e.total_ms)
			e.total_ms = (float)tr->results[i].total_ms;
	}
	e.verdict = (uint8_t)v;
	e.n_addresses = (uint8_t)(tr->n_results > 255 ? 255 : tr->n_results);
	vp_history_add(&st->history, &e);

	if (tr->n_results)
		copy = malloc(tr->n_results * sizeof(*copy));
	if (copy || !tr->n_results) {
		if (tr->n_results)
			memcpy(copy, tr->results, tr->n_results * sizeof(*copy));
		for (size_t i = 0; i < tr->n_results; i++)
			copy[i].obs.address = copy[i].address;
		free(st->last);
		st->last = copy;
		st->n_last = tr->n_results;
	}
	if (st->runs == 0 || v != st->verdict) {
		if (st->runs > 0 || v != VP_VERDICT_OK)
			vp_log_info("target '%s': %s -> %s%s%s", st->target->name,
			            st->runs ? vp_verdict_name(st->verdict) : "start", vp_verdict_name(v),
			            tr->n_results ? ": " : "", tr->n_results ? tr->results[0].v.detail : "");
		st->changed_ms = e.time_ms;
		st->verdict = v;
	}
	if (st->runs++ == 0)
		st->sched->n_ready++;
}

static void on_run_done(struct vp_target_run *tr)
{
	struct vp_sched_target *st = tr->data;
	struct vp_scheduler *s = st->sched;
	uint64_t interval_ms = (uint64_t)st->target->interval_s * 1000;
	uint64_t now = uv_now(s->loop);

	record(st);
	vp_target_run_clear(tr);
	if (s->cb)
		s->cb(st, s->arg);
	if (s->stopping)
		return;
	/* Fixed rate: the next slot after this run's. A run never outlasts
	 * its interval (timeout <= interval), but a stalled loop can; then
	 * skip to the next slot rather than run twice in a row. */
	st->due_ms += interval_ms;
	if (st->due_ms < now)
		st->due_ms = now + interval_ms - (now - st->due_ms) % interval_ms;
	arm(st);
}

static void on_due(uv_timer_t *t)
{
	struct vp_sched_target *st = t->data;
	uint64_t now = uv_now(st->sched->loop);

	if (now > st->due_ms && now - st->due_ms > st->late_ms_max)
		st->late_ms_max = now - st->due_ms;
	st->run.timeout_ms = st->target->timeout_ms;
	vp_runner_start(st->sched->runner, &st->run);
}

struct vp_scheduler *vp_scheduler_new(uv_loop_t *loop, const struct vp_config *cfg,
                                      vp_sched_cb cb, void *arg)
{
	struct vp_scheduler *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->loop = loop;
	s->cfg = cfg;
	s->cb = cb;
	s->arg = arg;
	s->n = cfg->n_targets;
	s->targets = calloc(s->n ? s->n : 1, sizeof(*s->targets));
	s->runner = vp_runner_new(loop, cfg);
	if (!s->targets || !s->runner)
		goto fail;
	for (size_t i = 0; i < s->n; i++) {
		struct vp_sched_target *st = &s->targets[i];

		st->sched = s;
		st->target = &cfg->targets[i];
		st->run.target = st->target;
		st->run.done = on_run_done;
		st->run.data = st;
		if (vp_history_init(&st->history, st->target->interval_s) < 0)
			goto fail;
	}
	return s;
fail:
	for (size_t i = 0; s->targets && i < s->n; i++)
		vp_history_done(&s->targets[i].history);
	free(s->targets);
	if (s->runner) {
		/* Nothing ran: closing has no handles to wait for. */
		vp_runner_close(s->runner, NULL, NULL);
		vp_runner_free(s->runner);
	}
	free(s);
	return NULL;
}

static struct vp_sched_target *find_previous(struct vp_scheduler *prev, const struct vp_target *t)
{
	for (size_t i = 0; prev && i < prev->n; i++) {
		const struct vp_target *o = prev->targets[i].target;

		if (!strcmp(o->name, t->name) && !strcmp(o->url_text, t->url_text))
			return &prev->targets[i];
	}
	return NULL;
}

void vp_scheduler_start(struct vp_scheduler *s, struct vp_scheduler *previous)
{
	uint64_t now;

	/* The loop's cached time is from before the config was loaded and the
	 * listeners bound: the first step would start late by all of that. */
	uv_update_time(s->loop);
	now = uv_now(s->loop);

	s->started = true;
	for (size_t i = 0; i < s->n; i++) {
		struct vp_sched_target *st = &s->targets[i];
		struct vp_sched_target *old = find_previous(previous, st->target);
		uint64_t interval_ms = (uint64_t)st->target->interval_s * 1000;

		uv_timer_init(s->loop, &st->timer);
		st->timer.data = st;
		if (old) {
			vp_history_move(&st->history, &old->history);
			st->last = old->last;
			st->n_last = old->n_last;
			old->last = NULL;
			old->n_last = 0;
			st->verdict = old->verdict;
			st->changed_ms = old->changed_ms;
			st->runs = old->runs;
			if (st->runs)
				s->n_ready++;
		}
		/* Spread the first runs over the interval, on the grid. */
		st->due_ms = now + vp_sched_first_offset(i, s->n, interval_ms);
		arm(st);
	}
}

static void part_closed(struct vp_scheduler *s)
{
	if (--s->closing == 0 && s->closed)
		s->closed(s, s->closed_arg);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct vp_sched_target *st = h->data;

	part_closed(st->sched);
}

static void on_runner_closed(void *arg)
{
	part_closed(arg);
}

void vp_scheduler_stop(struct vp_scheduler *s, void (*closed)(struct vp_scheduler *s, void *arg),
                       void *arg)
{
	s->stopping = true;
	s->closed = closed;
	s->closed_arg = arg;
	s->closing = 1;
	for (size_t i = 0; s->started && i < s->n; i++) {
		s->closing++;
		uv_close((uv_handle_t *)&s->targets[i].timer, on_timer_closed);
	}
	s->closing++;
	vp_runner_close(s->runner, on_runner_closed, s);
	part_closed(s);
}

struct vp_scheduler *vp_scheduler_free(struct vp_scheduler *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n; i++) {
		vp_target_run_clear(&s->targets[i].run);
		vp_history_done(&s->targets[i].history);
		free(s->targets[i].last);
	}
	free(s->targets);
	vp_runner_free(s->runner);
	free(s);
	return NULL;
}

size_t vp_scheduler_count(const struct vp_scheduler *s)
{
	return s->n;
}

struct vp_sched_target *vp_scheduler_target(struct vp_scheduler *s, size_t i)
{
	return i < s->n ? &s->targets[i] : NULL;
}

bool vp_scheduler_ready(const struct vp_scheduler *s)
{
	return s->n_ready >= s->n;
}

const struct vp_config *vp_scheduler_config(const struct vp_scheduler *s)
{
	return s->cfg;
}

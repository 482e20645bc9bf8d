/* /api/v1/status and /api/v1/listeners: the page's state as JSON (the
 * schema is in README.md, "Status endpoints"). Every string goes through
 * jansson, which escapes it; the document is written one target at a time
 * into a bounded buffer, so that 100,000 targets never make one big tree. */
#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/record.h"
#include "agent/status_int.h"
#include "vp_build.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10))

static const char *const state_names[VP_STATE_MAX] = {
	[VP_STATE_FAILING] = "failing",
	[VP_STATE_PENDING] = "pending",
	[VP_STATE_OK] = "ok",
};

static int dump_cb(const char *buf, size_t size, void *data)
{
	return vp_buf_add(data, buf, size) < 0 ? -1 : 0;
}

/* Appends 'v' (stolen) to 'b'. */
static void put(struct vp_buf *b, json_t *v)
{
	if (v == NULL) {
		b->err = b->err ? b->err : -ENOMEM;
		return;
	}
	(void)json_dump_callback(v, dump_cb, b, DUMP_FLAGS); /* the buffer keeps the error */
	json_decref(v);
}

/* ,"key":value */
static void put_kv(struct vp_buf *b, const char *key, json_t *v)
{
	vp_buf_puts(b, ",");
	put(b, json_string(key));
	vp_buf_puts(b, ":");
	put(b, v);
}

/* Milliseconds to three decimals, as in the records. */
static json_t *ms_or_null(double ms)
{
	return ms < 0 ? json_null() : json_real(round(ms * 1000.0) / 1000.0);
}

static json_t *time_or_null(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
	char when[40];

	if (ms <= 0)
		return json_null();
	vp_format_time(&ts, when, sizeof(when));
	return json_string(when);
}

/* ,"sparkline":{...} written by hand: 180 numbers per target through
 * jansson cost more than the rest of the document. Numbers only. */
static void put_spark(struct vp_buf *b, const struct vp_spark_bucket *sp)
{
	vp_buf_printf(b, ",\"sparkline\":{\"bucket_s\":%d,\"ms\":[",
	              VP_HISTORY_SECONDS / VP_SPARK_BUCKETS);
	for (int i = 0; i < VP_SPARK_BUCKETS; i++) {
		if (sp[i].max_ms > 0)
			vp_buf_printf(b, "%s%.3f", i ? "," : "", sp[i].max_ms);
		else
			vp_buf_puts(b, i ? ",null" : "null");
	}
	vp_buf_puts(b, "],\"fail\":[");
	for (int i = 0; i < VP_SPARK_BUCKETS; i++)
		vp_buf_printf(b, "%s%u", i ? "," : "", (unsigned)sp[i].n_fail);
	vp_buf_puts(b, "],\"runs\":[");
	for (int i = 0; i < VP_SPARK_BUCKETS; i++)
		vp_buf_printf(b, "%s%u", i ? "," : "", (unsigned)sp[i].n);
	vp_buf_puts(b, "]}");
}

static json_t *addresses_json(const struct vp_sched_target *st)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < st->n_last; i++) {
		const struct vp_probe_result *r = &st->last[i];

		json_array_append_new(arr, json_pack("{s:s,s:i,s:s,s:s,s:o,s:o}",
		                      "address", r->address, "port", (int)r->port,
		                      "verdict", vp_verdict_name(r->v.verdict),
		                      "reason", vp_verdict_reason(&r->v),
		                      "connect_ms", ms_or_null(r->connect_ms),
		                      "total_ms", ms_or_null(r->total_ms)));
	}
	return arr;
}

static json_t *target_json(const struct vp_status_view *v)
{
	const struct vp_sched_target *st = v->st;
	const struct vp_target *t = st->target;
	const struct vp_probe_result *w = v->worst;
	json_t *steps = json_array();

	for (size_t i = 0; steps && i < v->n_steps; i++)
		json_array_append_new(steps, json_string(v->steps[i]));
	return json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:s?,s:s?,s:s?,s:s?,s:s?,s:o,s:o,s:s,s:o,"
	                 "s:o,s:I,s:o,s:s?,s:o}",
	                 "name", t->name, "url", t->url_text, "kind", vp_kind_name(t->url.kind),
	                 "host", t->url.host, "port", (int)t->url.port,
	                 "state", state_names[v->state],
	                 "verdict", st->runs ? vp_verdict_name(st->verdict) : NULL,
	                 "reason", w ? vp_verdict_reason(&w->v) : NULL,
	                 "detail", w ? w->v.detail : NULL,
	                 "hint", w && w->v.hint[0] ? w->v.hint : NULL,
	                 "connector_range", t->connector_range.family ? t->connector_range.text : NULL,
	                 "next_steps", steps,
	                 "since", time_or_null(st->runs ? st->changed_ms : 0),
	                 "since_text", v->since,
	                 "latency_ms", ms_or_null(v->latency_ms),
	                 "last_probe", time_or_null(v->last_ms),
	                 "runs", (json_int_t)st->runs,
	                 "addresses", addresses_json(st),
	                 "badge", st->runs ? vp_status_badge_text(st->verdict) : NULL,
	                 "firewall", vp_status_fw_json(v->fw_set, v->fw));
}

void vp_status_delivery_of(struct vp_status *s, struct vp_status_delivery *out)
{
	memset(out, 0, sizeof(*out));
	if (s->src.delivery != NULL)
		s->src.delivery(s->src.arg, out);
	vp_metrics_set_losses(s->metrics, &(struct vp_metrics_losses){
		.set_aside = out->set_aside_total, .partial = out->partial_total,
		.corrupt = out->corrupt_total, .torn = out->torn_total });
}

/* ", N what" into 'buf' when N > 0; the length written. */
static size_t lost_text(char *buf, size_t len, uint64_t n, const char *what)
{
	int w;

	if (n == 0)
		return 0;
	w = snprintf(buf, len, ", %llu %s", (unsigned long long)n, what);
	return w < 0 ? 0 : (size_t)w < len ? (size_t)w : len - 1;
}

void vp_status_delivery_text(const struct vp_status *s, const struct vp_status_delivery *d,
                             char *buf, size_t len)
{
	char dropped[48 + 4 * 48] = "";
	size_t n;

	if (d->dropped_total > 0)
		snprintf(dropped, sizeof(dropped), ", %llu dropped", (unsigned long long)d->dropped_total);
	n = strlen(dropped);
	/* Results lost other ways: named only when there are some. */
	n += lost_text(dropped + n, sizeof(dropped) - n, d->set_aside_total, "set aside");
	n += lost_text(dropped + n, sizeof(dropped) - n, d->partial_total,
	               "rejected by partialSuccess");
	n += lost_text(dropped + n, sizeof(dropped) - n, d->corrupt_total, "corrupt spool frames skipped");
	(void)lost_text(dropped + n, sizeof(dropped) - n, d->torn_total, "torn spool tails cut");
	if (!s->collector)
		snprintf(buf, len, "no collector");
	else if (!d->known)
		snprintf(buf, len, "collector configured; delivery state not available");
	else if (d->ok)
		snprintf(buf, len, "collector ok, %llu bytes spooled%s",
		         (unsigned long long)d->spooled_bytes, dropped);
	else if (d->last_error[0] == '\0')
		snprintf(buf, len, "collector: no batch acknowledged yet, %llu bytes spooled%s",
		         (unsigned long long)d->spooled_bytes, dropped);
	else
		snprintf(buf, len, "collector failing: %s; %llu bytes spooled%s", d->last_error,
		         (unsigned long long)d->spooled_bytes, dropped);
}

static json_t *instance_json(struct vp_status *s)
{
	const struct vp_instance *in = s->src.instance ? s->src.instance(s->src.arg) : NULL;

	if (in == NULL || !vp_instance_known(in))
		return json_null();
	return json_pack("{s:s?,s:s?,s:s?,s:s?}", "name", in->name[0] ? in->name : NULL,
	                 "zone", in->zone[0] ? in->zone : NULL,
	                 "project", in->project[0] ? in->project : NULL,
	                 "network", in->network[0] ? in->network : NULL);
}

static json_t *head_json(struct vp_status *s, struct vp_scheduler *sched, int64_t now)
{
	const struct vp_config *cfg = vp_scheduler_config(sched);
	size_t counts[VP_VERDICT_MAX + 1];
	struct vp_status_delivery d;
	char text[VP_DETAIL_MAX + 320];
	json_t *c = json_object();

	vp_status_counts(sched, counts);
	for (int i = 0; c && i < VP_VERDICT_MAX; i++)
		json_object_set_new(c, vp_verdict_name(i), json_integer((json_int_t)counts[i]));
	if (c)
		json_object_set_new(c, "pending", json_integer((json_int_t)counts[VP_VERDICT_MAX]));
	vp_status_delivery_of(s, &d);
	vp_status_delivery_text(s, &d, text, sizeof(text));
	return json_pack("{s:{s:s,s:s,s:o,s:I,s:o,s:o},s:b,s:I,s:o,"
	                 "s:{s:s,s:b,s:I,s:I,s:{s:I,s:I},s:{s:I,s:I},s:s?}}",
	                 "agent", "name", cfg->agent_name, "version", VP_VERSION,
	                 "started", time_or_null(s->started_ms),
	                 "uptime_s", (json_int_t)((now - s->started_ms) / 1000),
	                 "now", time_or_null(now), "instance", instance_json(s),
	                 "ready", vp_scheduler_ready(sched),
	                 "targets_total", (json_int_t)vp_scheduler_count(sched),
	                 "counts", c,
	                 "delivery", "text", text, "known", d.known,
	                 "spooled_bytes", (json_int_t)d.spooled_bytes,
	                 "dropped_total", (json_int_t)d.dropped_total,
	                 "rejected", "set_aside", (json_int_t)d.set_aside_total,
	                 "partial", (json_int_t)d.partial_total,
	                 "spool_skipped", "corrupt", (json_int_t)d.corrupt_total,
	                 "torn", (json_int_t)d.torn_total,
	                 "last_error", d.last_error[0] ? d.last_error : NULL);
}

/* ,"listeners":[...],"beacons":[...]: before the targets, so that the
 * targets' size limit leaves them whole (both are bounded by the config). */
static void checks_json(struct vp_status *s, struct vp_scheduler *sched, struct vp_buf *b,
                        int64_t now)
{
	const struct vp_listen_checks *lc = s->src.checks ? s->src.checks(s->src.arg) : NULL;
	size_t nl = vp_listen_checks_count(lc), nb = vp_status_beacon_count(lc);
	struct vp_status_beacon_view v;

	put_kv(b, "listeners", vp_status_listen_json(vp_listen_checks_result(lc, 0), nl, now));
	vp_buf_puts(b, ",\"beacons\":[");
	for (size_t i = 0; i < nb; i++) {
		vp_status_beacon_view_at(lc, vp_scheduler_config(sched), i, &v);
		if (i > 0)
			vp_buf_puts(b, ",");
		put(b, vp_status_beacon_json(&v));
	}
	vp_buf_puts(b, "]");
}

int vp_status_json(struct vp_status *s, struct vp_buf *b)
{
	struct vp_scheduler *sched = s->src.scheduler(s->src.arg);
	size_t n = vp_scheduler_count(sched), shown = 0;
	size_t *order = vp_status_order(sched);
	int64_t now = vp_status_realtime_ms();
	struct vp_status_view v;
	size_t len;

	if (n > 0 && order == NULL)
		return b->err = -ENOMEM;
	put(b, head_json(s, sched, now));
	if (b->err == 0)
		b->data[--b->len] = '\0';   /* reopen the object: the targets follow */
	checks_json(s, sched, b, now);
	vp_buf_puts(b, ",\"targets\":[");
	for (; shown < n && b->len + VP_STATUS_ROW_RESERVE < b->max; shown++) {
		vp_status_view_of(vp_scheduler_target(sched, order[shown]), now, &v);
		vp_status_view_fw(s, &v);
		len = b->len;
		if (shown > 0)
			vp_buf_puts(b, ",");
		put(b, target_json(&v));
		if (b->err == 0) {
			b->data[--b->len] = '\0';   /* reopen the object for the sparkline */
			put_spark(b, v.spark);
			vp_buf_puts(b, "}");
		}
		if (b->err == -ENOBUFS) {
			/* This row did not fit: drop it and say so below. */
			b->err = 0;
			b->len = len;
			b->data[len] = '\0';
			break;
		}
	}
	vp_buf_puts(b, "]");
	put_kv(b, "targets_omitted", json_integer((json_int_t)(n - shown)));
	vp_buf_puts(b, "}\n");
	free(order);
	return b->err;
}

/* ---- /api/v1/listeners ---- */

static json_t *sock_json(const struct vp_listen_sock *k)
{
	char a[INET6_ADDRSTRLEN];
	json_t *v6only = json_null();

	vp_listen_addr_text(k, a, sizeof(a));
	if (k->family == AF_INET6 && k->v6only != VP_V6ONLY_UNKNOWN)
		v6only = json_boolean(k->v6only == VP_V6ONLY_ON);
	return json_pack("{s:s,s:i,s:s,s:o,s:o,s:o,s:{s:I,s:o},s:b}",
	                 "address", a, "port", (int)k->port,
	                 "family", k->family == AF_INET ? "ipv4" : "ipv6", "v6only", v6only,
	                 "pid", k->pid > 0 ? json_integer(k->pid) : json_null(),
	                 "process", k->pid > 0 ? json_string(k->comm) : json_null(),
	                 "queue", "current", (json_int_t)k->queue_cur,
	                 "max", k->queue_max_known ? json_integer(k->queue_max) : json_null(),
	                 "overflowing", vp_listen_sock_overflowing(k));
}

static json_t *socks_json(const struct vp_listen_sock *socks, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++)
		json_array_append_new(arr, sock_json(&socks[i]));
	return arr;
}

/* A decimal port, 1..65535, nothing else. */
static int parse_port(const char *s, uint16_t *ret)
{
	unsigned long v = 0;

	if (s == NULL || s[0] == '\0' || strlen(s) > 5)
		return -EINVAL;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v < 1 || v > 65535)
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

/* The table is read on the loop (one sock_diag dump, bounded by
 * VP_LISTEN_NL_TIMEOUT_MS) and kept for VP_STATUS_LISTEN_CACHE_MS, so that
 * a client asking in a loop cannot make the agent dump sockets nonstop. */
static int listen_table(struct vp_status *s)
{
	uint64_t now = uv_now(s->loop);

	if (!s->listen_valid || now - s->listen_at >= VP_STATUS_LISTEN_CACHE_MS) {
		s->listen_err = vp_listen_read(&s->listen, VP_LISTEN_SOURCE_AUTO);
		s->listen_at = now;
		s->listen_valid = true;
	}
	return s->listen_err;
}

int vp_status_listeners_json(struct vp_status *s, const char *port, struct vp_buf *b)
{
	struct vp_listen_port p;
	char msg[160];
	uint16_t n = 0;
	int r;

	if (port != NULL && parse_port(port, &n) < 0) {
		put(b, json_pack("{s:s}", "error", "port: expected a decimal port number, 1..65535"));
		vp_buf_puts(b, "\n");
		return b->err ? b->err : -EINVAL;
	}
	r = listen_table(s);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "this host's listener table could not be read: %s",
		         strerror(-r));
		put(b, json_pack("{s:s}", "error", msg));
		vp_buf_puts(b, "\n");
		return b->err ? b->err : -EIO;
	}
	vp_buf_printf(b, "{\"source\":\"%s\",\"truncated\":%s", vp_listen_source_name(s->listen.source),
	              s->listen.truncated ? "true" : "false");
	if (port == NULL) {
		put_kv(b, "sockets", socks_json(s->listen.socks, s->listen.n));
	} else {
		vp_listen_port_get(&s->listen, n, &p);
		put_kv(b, "ports", json_pack("[{s:i,s:s,s:o,s:b}]", "port", (int)n,
		       "scope", vp_listen_scope_name(p.scope), "sockets", socks_json(p.socks, p.n),
		       "overflowing", p.overflowing));
	}
	vp_buf_puts(b, "}\n");
	return b->err;
}

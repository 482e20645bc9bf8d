/* OTLP metrics (otlp_metrics.h). The encoding follows the OTLP/HTTP JSON
 * rules the logs use (reporter_body.c): lowerCamelCase keys; fixed64 and
 * sfixed64 fields (timeUnixNano, startTimeUnixNano, asInt, count,
 * bucketCounts) as decimal strings; enums (aggregationTemporality) as their
 * integer; attributes as KeyValue with an AnyValue. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/otlp_metrics.h"
#include "agent/record.h"
#include "config/config.h"
#include "vp_build.h"

/* The same bounds as the status page's /metrics (agent/metrics.c), so that
 * both views of one agent agree. */
static const double bucket_le[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
#define N_BUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))
#define TABLE_FIRST 64        /* slots of a new table, a power of two */
#define PRUNE_SLACK 64        /* names of vanished targets kept before a prune */
#define TEMPORALITY_CUMULATIVE 2 /* AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE */

struct series {
	char *name;                         /* owned; NULL: an empty slot */
	uint64_t start_ns;                  /* first seen: startTimeUnixNano */
	uint64_t probes[VP_VERDICT_MAX];
	uint64_t bucket[N_BUCKETS + 1];     /* not cumulative; the last is +Inf */
	double sum_s;
	uint64_t count;
	bool keep;                          /* a prune's mark */
};

struct vp_otlp_metrics {
	struct series *slots;               /* owned, 'cap' of them */
	size_t cap;                         /* a power of two */
	size_t used;
};

static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325u;   /* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3u;
	return h;
}

static struct series *slot_for(struct series *slots, size_t cap, const char *name)
{
	size_t i = (size_t)name_hash(name) & (cap - 1);

	while (slots[i].name && strcmp(slots[i].name, name) != 0)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

struct vp_otlp_metrics *vp_otlp_metrics_new(void)
{
	struct vp_otlp_metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->slots = calloc(TABLE_FIRST, sizeof(*m->slots));
	if (!m->slots) {
		free(m);
		return NULL;
	}
	m->cap = TABLE_FIRST;
	return m;
}

struct vp_otlp_metrics *vp_otlp_metrics_free(struct vp_otlp_metrics *m)
{
	if (!m)
		return NULL;
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].name);
	free(m->slots);
	free(m);
	return NULL;
}

/* Moves the series into a table of 'cap' slots; with 's', drops those of
 * targets 's' does not have (renamed or removed by a reload): the table is
 * bounded by the configuration, not by the number of reloads. */
static int rehash(struct vp_otlp_metrics *m, size_t cap, struct vp_scheduler *s)
{
	struct series *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; s && i < vp_scheduler_count(s); i++) {
		struct series *x = slot_for(m->slots, m->cap, vp_scheduler_target(s, i)->target->name);

		x->keep = x->name != NULL;
	}
	m->used = 0;
	for (size_t i = 0; i < m->cap; i++) {
		struct series *old = &m->slots[i];

		if (!old->name)
			continue;
		if (s && !old->keep) {
			free(old->name);
			continue;
		}
		old->keep = false;
		*slot_for(slots, cap, old->name) = *old;
		m->used++;
	}
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

static struct series *series_get(struct vp_otlp_metrics *m, const struct vp_sched_target *st,
                                 uint64_t now_ns)
{
	size_t n = vp_scheduler_count(st->sched);
	struct series *x = slot_for(m->slots, m->cap, st->target->name);

	if (x->name)
		return x;
	if (m->used >= n + PRUNE_SLACK && rehash(m, m->cap, st->sched) < 0)
		return NULL;
	/* Load factor at most one half: probe sequences stay short. */
	if ((m->used + 1) * 2 > m->cap && rehash(m, m->cap * 2, NULL) < 0)
		return NULL;
	x = slot_for(m->slots, m->cap, st->target->name);
	x->name = strdup(st->target->name);
	if (!x->name)
		return NULL;
	x->start_ns = now_ns;
	m->used++;
	return x;
}

void vp_otlp_metrics_observe(struct vp_otlp_metrics *m, const struct vp_sched_target *st,
                             uint64_t now_ns)
{
	struct series *x = m ? series_get(m, st, now_ns) : NULL;

	if (!x)
		return;
	for (size_t i = 0; i < st->n_last; i++) {
		const struct vp_probe_result *r = &st->last[i];
		double s = r->total_ms > 0 ? r->total_ms / 1000.0 : 0;
		size_t k = 0;

		if (r->v.verdict >= 0 && r->v.verdict < VP_VERDICT_MAX)
			x->probes[r->v.verdict]++;
		while (k < N_BUCKETS && s > bucket_le[k])
			k++;
		x->bucket[k]++;
		x->sum_s += s;
		x->count++;
	}
}

/* ---- the body ---- */

static json_t *u64_string(uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return json_string(buf);
}

static json_t *attr_str(const char *key, const char *value)
{
	return json_pack("{s:s,s:{s:s}}", "key", key, "value", "stringValue", value);
}

static json_t *attr_int(const char *key, uint64_t value)
{
	return json_pack("{s:s,s:{s:o}}", "key", key, "value", "intValue", u64_string(value));
}

/* A NumberDataPoint with an integer value; 'start_ns' 0: none (a gauge). */
static json_t *number_point(json_t *attrs, uint64_t start_ns, uint64_t now_ns, uint64_t v)
{
	json_t *p = json_pack("{s:o,s:o,s:o}", "attributes", attrs ? attrs : json_array(),
	                      "timeUnixNano", u64_string(now_ns), "asInt", u64_string(v));

	if (p && start_ns)
		json_object_set_new(p, "startTimeUnixNano", u64_string(start_ns));
	return p;
}

static json_t *metric(const char *name, const char *unit, const char *description,
                      const char *kind, json_t *points, bool monotonic)
{
	json_t *data = json_pack("{s:o}", "dataPoints", points);

	if (data && strcmp(kind, "gauge") != 0)
		json_object_set_new(data, "aggregationTemporality",
		                    json_integer(TEMPORALITY_CUMULATIVE));
	if (data && !strcmp(kind, "sum"))
		json_object_set_new(data, "isMonotonic", json_boolean(monotonic));
	return json_pack("{s:s,s:s,s:s,s:o}", "name", name, "unit", unit, "description",
	                 description, kind, data);
}

static bool seen_before(const struct vp_sched_target *st, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (st->last[j].port == st->last[i].port &&
		    !strcmp(st->last[j].address, st->last[i].address))
			return true;
	return false;
}

/* One point per address of the target's last run, as /metrics does. */
static void success_points(json_t *points, const struct vp_sched_target *st, uint64_t now_ns)
{
	for (size_t i = 0; st->runs > 0 && i < st->n_last; i++) {
		const struct vp_probe_result *r = &st->last[i];
		json_t *attrs;

		if (seen_before(st, i))
			continue;
		attrs = json_pack("[o,o,o,o]", attr_str("target", st->target->name),
		                  attr_str("kind", vp_kind_name(st->target->url.kind)),
		                  attr_str("address", r->address), attr_int("port", r->port));
		json_array_append_new(points, number_point(attrs, 0, now_ns,
		                                           r->v.verdict == VP_VERDICT_OK));
	}
}

static json_t *histogram_point(const struct series *x, uint64_t now_ns)
{
	json_t *counts = json_array();
	json_t *bounds = json_array();

	for (size_t k = 0; k <= N_BUCKETS; k++) {
		json_array_append_new(counts, u64_string(x->bucket[k]));
		if (k < N_BUCKETS)
			json_array_append_new(bounds, json_real(bucket_le[k]));
	}
	return json_pack("{s:[o],s:o,s:o,s:o,s:f,s:o,s:o}",
	                 "attributes", attr_str("target", x->name),
	                 "startTimeUnixNano", u64_string(x->start_ns),
	                 "timeUnixNano", u64_string(now_ns), "count", u64_string(x->count),
	                 "sum", x->sum_s, "bucketCounts", counts, "explicitBounds", bounds);
}

static void series_points(const struct series *x, json_t *hist, json_t *probes, uint64_t now_ns)
{
	json_array_append_new(hist, histogram_point(x, now_ns));
	for (int v = 0; v < VP_VERDICT_MAX; v++) {
		if (x->probes[v] == 0)
			continue;
		json_array_append_new(probes, number_point(json_pack("[o,o]",
		                      attr_str("target", x->name), attr_str("verdict",
		                      vp_verdict_name((enum vp_verdict)v))), x->start_ns, now_ns,
		                      x->probes[v]));
	}
}

/* The per-target metrics, in the scheduler's order (every series, in table
 * order, without one). */
static void target_points(struct vp_otlp_metrics *m, const struct vp_otlp_metrics_in *in,
                          json_t *success, json_t *hist, json_t *probes)
{
	struct vp_scheduler *s = in->sched;

	if (!s) {
		for (size_t i = 0; i < m->cap; i++)
			if (m->slots[i].name)
				series_points(&m->slots[i], hist, probes, in->now_ns);
		return;
	}
	/* Once a period: forget the series of targets gone with a reload. */
	if (m->used > vp_scheduler_count(s))
		(void)rehash(m, m->cap, s); /* out of memory: they stay until the next time */
	for (size_t t = 0; t < vp_scheduler_count(s); t++) {
		const struct vp_sched_target *st = vp_scheduler_target(s, t);
		const struct series *x = slot_for(m->slots, m->cap, st->target->name);

		success_points(success, st, in->now_ns);
		if (x->name)
			series_points(x, hist, probes, in->now_ns);
	}
}

static json_t *metrics_list(struct vp_otlp_metrics *m, const struct vp_otlp_metrics_in *in)
{
	json_t *success = json_array(), *hist = json_array(), *probes = json_array();
	uint64_t now = in->now_ns;

	target_points(m, in, success, hist, probes);
	return json_pack("[o,o,o,o,o,o]",
	                 metric("vpcprobe_probe_success", "1", "Whether the last probe of the "
	                        "target's address ended ok (1) or not (0).", "gauge", success, false),
	                 metric("vpcprobe_probe_duration_seconds", "s", "How long the scheduled "
	                        "probes took, from start to verdict.", "histogram", hist, false),
	                 metric("vpcprobe_probes_total", "{probe}", "Probes ended, by target and "
	                        "verdict, one per address probed.", "sum", probes, true),
	                 metric("vpcprobe_reports_spooled_bytes", "By", "Bytes of results spooled "
	                        "under state_dir, waiting for the collector.", "gauge",
	                        json_pack("[o]", number_point(NULL, 0, now,
	                                  in->stats->spooled_bytes)), false),
	                 metric("vpcprobe_reports_dropped_total", "{result}", "Results dropped "
	                        "unsent because the spool was full (oldest first).", "sum",
	                        json_pack("[o]", number_point(NULL, in->stats_start_ns, now,
	                                  in->stats->dropped)), true),
	                 metric("vpcprobe_metrics_exports_failed_total", "{request}", "Metrics "
	                        "exports the collector did not take; each period sends the whole "
	                        "state again.", "sum", json_pack("[o]", number_point(NULL,
	                        in->start_ns, now, in->exports_failed)), true));
}

char *vp_otlp_metrics_body(struct vp_otlp_metrics *m, const struct vp_otlp_metrics_in *in,
                           size_t *len)
{
	json_t *body = json_pack("{s:[{s:o,s:[{s:{s:s,s:s},s:o}]}]}", "resourceMetrics",
	                         "resource", vp_report_resource(in->ctx), "scopeMetrics",
	                         "scope", "name", "vpcprobe", "version", VP_VERSION,
	                         "metrics", metrics_list(m, in));
	char *text;

	/* json_pack steals the 'o' values even when it fails: nothing leaks. */
	if (!body)
		return NULL;
	text = json_dumps(body, VP_RECORD_DUMP_FLAGS);
	json_decref(body);
	if (text)
		*len = strlen(text);
	return text;
}

int vp_otlp_metrics_url(const char *logs_url, char *out, size_t outlen)
{
	static const char logs[] = "/v1/logs";
	const char *auth = strstr(logs_url, "://");
	const char *path_end;
	size_t head;
	int n;

	if (!auth)
		return -EINVAL;
	path_end = auth + 3 + strcspn(auth + 3, "?#");
	head = (size_t)(path_end - logs_url);
	if (head < sizeof(logs) - 1 || memcmp(path_end - (sizeof(logs) - 1), logs,
	                                      sizeof(logs) - 1) != 0)
		return -EINVAL;
	head -= sizeof(logs) - 1;
	if (head < (size_t)(auth + 3 - logs_url) + 1)
		return -EINVAL; /* "http:///v1/logs": no host */
	n = snprintf(out, outlen, "%.*s/v1/metrics%s", (int)head, logs_url, path_end);
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

/* OTLP metrics (otlp_metrics.h). The encoding follows the OTLP/HTTP JSON
 * rules the logs use (reporter_body.c): lowerCamelCase keys; fixed64 and
 * sfixed64 fields (timeUnixNano, startTimeUnixNano, asInt, count,
 * bucketCounts) as decimal strings; enums (aggregationTemporality) as their
 * integer; attributes as KeyValue with an AnyValue. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "agent/duration_buckets.h"
#include "agent/otlp_metrics.h"
#include "agent/record.h"
#include "config/config.h"
#include "vp_build.h"

/* The bounds the status page's /metrics (agent/metrics.c) uses too. */
static const double bucket_le[] = { VP_DURATION_BOUNDS_S };
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

/* ---- the body ----
 *
 * Written as text rather than built as a jansson tree: for 1,000 targets
 * the tree (some 75 nodes a target) took 12 MB at its peak for a body of
 * 0.7 MB, every period. The one object of unbounded shape, the resource,
 * still comes from jansson (vp_report_resource()). */

struct text {
	char *p;                            /* owned */
	size_t len, cap;
	bool failed;                        /* out of memory, or over the bound */
};

static bool reserve(struct text *t, size_t n)
{
	size_t cap = t->cap ? t->cap : 4096;
	char *p;

	if (t->failed)
		return false;
	if (t->len + n + 1 <= t->cap)
		return true;
	while (cap < t->len + n + 1 && cap <= VP_REPORT_METRICS_BODY_MAX)
		cap *= 2;
	p = cap <= VP_REPORT_METRICS_BODY_MAX ? realloc(t->p, cap) : NULL;
	if (!p) {
		t->failed = true;
		return false;
	}
	t->p = p;
	t->cap = cap;
	return true;
}

static void put_n(struct text *t, const char *s, size_t n)
{
	if (!reserve(t, n))
		return;
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void put(struct text *t, const char *s)
{
	put_n(t, s, strlen(s));
}

/* Formats straight into the text: a histogram point's head alone, with
 * three 20-digit integers and a sum of ten significant digits, is longer
 * than a small fixed buffer, and a cut there failed the whole export. */
__attribute__((format(printf, 2, 3)))
static void putf(struct text *t, const char *fmt, ...)
{
	size_t room = t->p ? t->cap - t->len : 0;
	va_list ap;
	int n;

	if (t->failed)
		return;
	va_start(ap, fmt);
	n = vsnprintf(room ? t->p + t->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		t->failed = true;
		return;
	}
	if ((size_t)n >= room) {
		/* It did not fit: make room and write it again. */
		if (!reserve(t, (size_t)n))
			return;
		va_start(ap, fmt);
		n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0 || (size_t)n >= t->cap - t->len) {
			t->failed = true;
			return;
		}
	}
	t->len += (size_t)n;
}

/* A JSON string. The names come from the configuration, which jansson
 * read: valid UTF-8, so only the quote, the backslash and control
 * characters need escaping. */
static void put_str(struct text *t, const char *s)
{
	const char *run = s;

	put(t, "\"");
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		put_n(t, run, (size_t)(s - run));
		if (c == '"' || c == '\\')
			putf(t, "\\%c", c);
		else
			putf(t, "\\u%04x", c);
		run = s + 1;
	}
	put_n(t, run, (size_t)(s - run));
	put(t, "\"");
}

static void put_attr_str(struct text *t, const char *sep, const char *key, const char *value)
{
	putf(t, "%s{\"key\":\"%s\",\"value\":{\"stringValue\":", sep, key);
	put_str(t, value);
	put(t, "}}");
}

/* A NumberDataPoint's times and integer value, after its attributes;
 * 'start_ns' 0: none (a gauge). */
static void put_number_end(struct text *t, uint64_t start_ns, uint64_t now_ns, uint64_t v)
{
	put(t, "],");
	if (start_ns)
		putf(t, "\"startTimeUnixNano\":\"%" PRIu64 "\",", start_ns);
	putf(t, "\"timeUnixNano\":\"%" PRIu64 "\",\"asInt\":\"%" PRIu64 "\"}", now_ns, v);
}

/* The metric's head up to its data points' '['. */
static void put_metric_head(struct text *t, bool first, const char *name, const char *unit,
                            const char *description, const char *kind)
{
	putf(t, "%s{\"name\":\"%s\",\"unit\":\"%s\",\"description\":", first ? "" : ",", name, unit);
	put_str(t, description);
	putf(t, ",\"%s\":{\"dataPoints\":[", kind);
}

static void put_metric_tail(struct text *t, const char *kind)
{
	put(t, "]");
	if (strcmp(kind, "gauge") != 0)
		putf(t, ",\"aggregationTemporality\":%d", TEMPORALITY_CUMULATIVE);
	if (!strcmp(kind, "sum"))
		put(t, ",\"isMonotonic\":true");
	put(t, "}}");
}

/* A metric of one point without attributes. */
static void put_single(struct text *t, const char *name, const char *unit,
                       const char *description, const char *kind, uint64_t start_ns,
                       uint64_t now_ns, uint64_t v)
{
	put_metric_head(t, false, name, unit, description, kind);
	put(t, "{\"attributes\":[");
	put_number_end(t, start_ns, now_ns, v);
	put_metric_tail(t, kind);
}

/* A sum of two points that differ in one attribute, both always there (0
 * when nothing was counted) so that a rate or an alert never sees a series
 * appear out of nothing. */
static void put_pair(struct text *t, const char *name, const char *unit, const char *description,
                     const char *key, const char *a, uint64_t va, const char *b, uint64_t vb,
                     uint64_t start_ns, uint64_t now_ns)
{
	put_metric_head(t, false, name, unit, description, "sum");
	put(t, "{\"attributes\":[");
	put_attr_str(t, "", key, a);
	put_number_end(t, start_ns, now_ns, va);
	put(t, ",{\"attributes\":[");
	put_attr_str(t, "", key, b);
	put_number_end(t, start_ns, now_ns, vb);
	put_metric_tail(t, "sum");
}

/* What the collector never got, with the same names, attributes and
 * meaning as /metrics (agent/metrics.c, render_losses). stats->rejected
 * counts both refusals; the reporter keeps the partialSuccess share. */
static void put_losses(struct text *t, const struct vp_otlp_metrics_in *in)
{
	const struct vp_delivery_stats *d = in->stats;
	/* Never below zero, should the two counts ever disagree. */
	uint64_t aside = d->rejected > in->partial ? d->rejected - in->partial : 0;

	put_pair(t, "vpcprobe_reports_rejected_total", "{result}", "Results the collector "
	         "refused: reason=\"set_aside\" for batches answered with a status not to be "
	         "retried (json: a 4xx but 408 and 429; otlp: a 4xx or 5xx but 429, 502, 503 and "
	         "504), set aside and not sent again; reason=\"partial\" for log records an OTLP "
	         "partialSuccess rejected.", "reason", "set_aside", aside, "partial", in->partial,
	         in->stats_start_ns, in->now_ns);
	put_pair(t, "vpcprobe_spool_frames_skipped_total", "{frame}", "Spool damage skipped when "
	         "the spool was read, its results lost: why=\"corrupt\" counts frames that failed "
	         "their checksum, why=\"torn\" counts torn tails (a partial last frame) cut at "
	         "start.", "why", "corrupt", d->corrupt, "torn", d->torn, in->stats_start_ns,
	         in->now_ns);
}

static bool seen_before(const struct vp_sched_target *st, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (st->last[j].port == st->last[i].port &&
		    !strcmp(st->last[j].address, st->last[i].address))
			return true;
	return false;
}

/* One point per address of every target's last run, as /metrics has. */
static void put_success(struct text *t, struct vp_scheduler *s, uint64_t now_ns)
{
	bool first = true;

	put_metric_head(t, true, "vpcprobe_probe_success", "1", "Whether the last probe of the "
	                "target's address ended ok (1) or not (0).", "gauge");
	for (size_t k = 0; s && k < vp_scheduler_count(s); k++) {
		const struct vp_sched_target *st = vp_scheduler_target(s, k);

		for (size_t i = 0; st->runs > 0 && i < st->n_last; i++) {
			const struct vp_probe_result *r = &st->last[i];

			if (seen_before(st, i))
				continue;
			put(t, first ? "{\"attributes\":[" : ",{\"attributes\":[");
			first = false;
			put_attr_str(t, "", "target", st->target->name);
			put_attr_str(t, ",", "kind", vp_kind_name(st->target->url.kind));
			put_attr_str(t, ",", "address", r->address);
			putf(t, ",{\"key\":\"port\",\"value\":{\"intValue\":\"%u\"}}", (unsigned)r->port);
			put_number_end(t, 0, now_ns, r->v.verdict == VP_VERDICT_OK);
		}
	}
	put_metric_tail(t, "gauge");
}

static void put_histogram(struct text *t, const struct series *const *list, size_t n,
                          uint64_t now_ns)
{
	put_metric_head(t, false, "vpcprobe_probe_duration_seconds", "s", "How long the scheduled "
	                "probes took, from start to verdict.", "histogram");
	for (size_t i = 0; i < n; i++) {
		const struct series *x = list[i];

		put(t, i ? ",{\"attributes\":[" : "{\"attributes\":[");
		put_attr_str(t, "", "target", x->name);
		putf(t, "],\"startTimeUnixNano\":\"%" PRIu64 "\",\"timeUnixNano\":\"%" PRIu64 "\","
		     "\"count\":\"%" PRIu64 "\",\"sum\":%.10g,\"bucketCounts\":[", x->start_ns, now_ns,
		     x->count, x->sum_s);
		for (size_t k = 0; k <= N_BUCKETS; k++)
			putf(t, "%s\"%" PRIu64 "\"", k ? "," : "", x->bucket[k]);
		put(t, "],\"explicitBounds\":[");
		for (size_t k = 0; k < N_BUCKETS; k++)
			putf(t, "%s%g", k ? "," : "", bucket_le[k]);
		put(t, "]}");
	}
	put_metric_tail(t, "histogram");
}

static void put_probes(struct text *t, const struct series *const *list, size_t n,
                       uint64_t now_ns)
{
	bool first = true;

	put_metric_head(t, false, "vpcprobe_probes_total", "{probe}", "Probes ended, by target "
	                "and verdict, one per address probed.", "sum");
	for (size_t i = 0; i < n; i++) {
		for (int v = 0; v < VP_VERDICT_MAX; v++) {
			if (list[i]->probes[v] == 0)
				continue;
			put(t, first ? "{\"attributes\":[" : ",{\"attributes\":[");
			first = false;
			put_attr_str(t, "", "target", list[i]->name);
			put_attr_str(t, ",", "verdict", vp_verdict_name((enum vp_verdict)v));
			put_number_end(t, list[i]->start_ns, now_ns, list[i]->probes[v]);
		}
	}
	put_metric_tail(t, "sum");
}

/* The series to export: those of the targets of 's' in its order, or,
 * without a scheduler, all in table order. Once a period, the series of
 * targets gone with a reload are forgotten first. Returns how many, or
 * -ENOMEM. */
static ssize_t series_list(struct vp_otlp_metrics *m, struct vp_scheduler *s,
                           const struct series ***ret)
{
	const struct series **list;
	size_t n = 0;

	if (s && m->used > vp_scheduler_count(s))
		(void)rehash(m, m->cap, s); /* out of memory: they stay until the next time */
	list = malloc((m->used ? m->used : 1) * sizeof(*list));
	if (!list)
		return -ENOMEM;
	if (!s) {
		for (size_t i = 0; i < m->cap; i++)
			if (m->slots[i].name)
				list[n++] = &m->slots[i];
	}
	for (size_t k = 0; s && k < vp_scheduler_count(s) && n < m->used; k++) {
		const struct series *x = slot_for(m->slots, m->cap, vp_scheduler_target(s, k)->target->name);

		if (x->name)
			list[n++] = x;
	}
	*ret = list;
	return (ssize_t)n;
}

char *vp_otlp_metrics_body(struct vp_otlp_metrics *m, const struct vp_otlp_metrics_in *in,
                           size_t *len)
{
	json_t *res = vp_report_resource(in->ctx);
	char *res_text = res ? json_dumps(res, VP_RECORD_DUMP_FLAGS) : NULL;
	const struct series **list = NULL;
	ssize_t n = series_list(m, in->sched, &list);
	struct text t = { 0 };
	uint64_t now = in->now_ns;

	json_decref(res);
	if (!res_text || n < 0)
		goto out;
	put(&t, "{\"resourceMetrics\":[{\"resource\":");
	put(&t, res_text);
	put(&t, ",\"scopeMetrics\":[{\"scope\":{\"name\":\"vpcprobe\",\"version\":");
	put_str(&t, VP_VERSION);
	put(&t, "},\"metrics\":[");
	put_success(&t, in->sched, now);
	put_histogram(&t, list, (size_t)n, now);
	put_probes(&t, list, (size_t)n, now);
	put_single(&t, "vpcprobe_reports_spooled_bytes", "By", "Bytes of results spooled under "
	           "state_dir, waiting for the collector.", "gauge", 0, now,
	           in->stats->spooled_bytes);
	put_single(&t, "vpcprobe_reports_dropped_total", "{result}", "Results dropped unsent "
	           "because the spool was full (oldest first).", "sum", in->stats_start_ns, now,
	           in->stats->dropped);
	put_losses(&t, in);
	put_single(&t, "vpcprobe_metrics_exports_failed_total", "{request}", "Metrics exports the "
	           "collector did not take; each period sends the whole state again.", "sum",
	           in->start_ns, now, in->exports_failed);
	put(&t, "]}]}]}");
out:
	free(res_text);
	free(list);
	if (t.failed || !t.p) {
		free(t.p);
		return NULL;
	}
	*len = t.len;
	return t.p;
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

/* /metrics (see metrics.h). The per-target counters live in an open
 * addressing hash table keyed by target name; the gauges are read from the
 * current scheduler when Prometheus scrapes. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "agent/duration_buckets.h"
#include "agent/metrics.h"
#include "config/config.h"
#include "vp_build.h"

/* The bounds the OTLP metrics (agent/otlp_metrics.c) use too. */
static const double bucket_le[] = { VP_DURATION_BOUNDS_S };
#define N_BUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))
#define TABLE_FIRST 64     /* slots of a new table, a power of two */
#define PRUNE_SLACK 64     /* names of vanished targets kept before a prune */

struct series {
	char *name;                         /* owned; NULL: an empty slot */
	uint64_t probes[VP_VERDICT_MAX];    /* vpcprobe_probes_total by verdict */
	uint64_t bucket[N_BUCKETS + 1];     /* not cumulative; the last is +Inf */
	double sum_s;
	uint64_t count;
	bool keep;                          /* a prune's mark */
};

struct vp_metrics {
	struct series *slots;               /* owned, 'cap' of them */
	size_t cap;                         /* a power of two */
	size_t used;
	struct vp_metrics_losses losses;    /* as last read from the delivery state */
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

	while (slots[i].name != NULL && strcmp(slots[i].name, name) != 0)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

struct vp_metrics *vp_metrics_new(void)
{
	struct vp_metrics *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->slots = calloc(TABLE_FIRST, sizeof(*m->slots));
	if (m->slots == NULL) {
		free(m);
		return NULL;
	}
	m->cap = TABLE_FIRST;
	return m;
}

struct vp_metrics *vp_metrics_free(struct vp_metrics *m)
{
	if (m == NULL)
		return NULL;
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].name);
	free(m->slots);
	free(m);
	return NULL;
}

/* Moves the series into a table of 'cap' slots; with 's', drops those of
 * targets 's' no longer has (renamed or removed by a reload), so that the
 * table is bounded by the configuration, not by the number of reloads. */
static int rehash(struct vp_metrics *m, size_t cap, struct vp_scheduler *s)
{
	struct series *slots = calloc(cap, sizeof(*slots));

	if (slots == NULL)
		return -ENOMEM;
	for (size_t i = 0; s != NULL && i < vp_scheduler_count(s); i++) {
		struct series *x = slot_for(m->slots, m->cap, vp_scheduler_target(s, i)->target->name);

		x->keep = x->name != NULL;
	}
	m->used = 0;
	for (size_t i = 0; i < m->cap; i++) {
		struct series *old = &m->slots[i];

		if (old->name == NULL)
			continue;
		if (s != NULL && !old->keep) {
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

static struct series *series_get(struct vp_metrics *m, const struct vp_sched_target *st)
{
	size_t n = vp_scheduler_count(st->sched);
	struct series *x = slot_for(m->slots, m->cap, st->target->name);

	if (x->name != NULL)
		return x;
	/* O(n), but only once per PRUNE_SLACK new names. */
	if (m->used >= n + PRUNE_SLACK && rehash(m, m->cap, st->sched) < 0)
		return NULL;
	/* Load factor at most one half: probe sequences stay short. */
	if ((m->used + 1) * 2 > m->cap && rehash(m, m->cap * 2, NULL) < 0)
		return NULL;
	x = slot_for(m->slots, m->cap, st->target->name);
	x->name = strdup(st->target->name);
	if (x->name == NULL)
		return NULL;
	m->used++;
	return x;
}

void vp_metrics_observe(struct vp_metrics *m, const struct vp_sched_target *st)
{
	struct series *x = m ? series_get(m, st) : NULL;

	if (x == NULL)
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

void vp_metrics_set_losses(struct vp_metrics *m, const struct vp_metrics_losses *l)
{
	if (m != NULL)
		m->losses = *l;
}

int vp_prom_label(struct vp_buf *b, const char *s)
{
	const char *run = s;

	for (; *s != '\0'; s++) {
		const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;

		if (esc == NULL)
			continue;
		vp_buf_add(b, run, (size_t)(s - run));
		vp_buf_puts(b, esc);
		run = s + 1;
	}
	vp_buf_add(b, run, (size_t)(s - run));
	return b->err;
}

static void head(struct vp_buf *b, const char *name, const char *type, const char *help)
{
	vp_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{target="..."   (the caller closes the braces) */
static void open_series(struct vp_buf *b, const char *name, const char *target)
{
	vp_buf_printf(b, "%s{target=\"", name);
	vp_prom_label(b, target);
	vp_buf_puts(b, "\"");
}

#define LAST_RESULTS "Values are the last results of scheduled probes, not probes run at scrape time."

static bool seen_before(const struct vp_sched_target *st, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (st->last[j].port == st->last[i].port &&
		    strcmp(st->last[j].address, st->last[i].address) == 0)
			return true;
	return false;
}

static void render_success(struct vp_scheduler *s, struct vp_buf *b)
{
	head(b, "vpcprobe_probe_success", "gauge", "Whether the last probe of the target's "
	     "address ended ok (1) or not (0). " LAST_RESULTS);
	for (size_t t = 0; t < vp_scheduler_count(s); t++) {
		const struct vp_sched_target *st = vp_scheduler_target(s, t);

		for (size_t i = 0; st->runs > 0 && i < st->n_last; i++) {
			if (seen_before(st, i))
				continue;  /* one series per address: a name may list one twice */
			open_series(b, "vpcprobe_probe_success", st->target->name);
			vp_buf_printf(b, ",kind=\"%s\",address=\"", vp_kind_name(st->target->url.kind));
			vp_prom_label(b, st->last[i].address);
			vp_buf_printf(b, "\",port=\"%u\"} %d\n", (unsigned)st->last[i].port,
			              st->last[i].v.verdict == VP_VERDICT_OK);
		}
	}
}

/* The probe records the certificate's remaining life in whole days (the
 * record's tls.cert_days_left, from ASN1_TIME_diff), so the gauge moves in
 * steps of a day: precise enough for an alert at 14 or 7 days, and it says
 * so in its HELP. One series per address: each may present its own. */
static void render_cert_expiry(struct vp_scheduler *s, struct vp_buf *b)
{
	head(b, "vpcprobe_tls_cert_expiry_seconds", "gauge", "Time until the server certificate's "
	     "notAfter, as the last probe that saw a certificate found it, in whole days times "
	     "86400; negative once expired. Only for results that carry a certificate. "
	     LAST_RESULTS);
	for (size_t t = 0; t < vp_scheduler_count(s); t++) {
		const struct vp_sched_target *st = vp_scheduler_target(s, t);

		for (size_t i = 0; st->runs > 0 && i < st->n_last; i++) {
			const struct vp_probe_result *r = &st->last[i];

			/* A result that never asked for TLS leaves the days zeroed. */
			if (!r->tls.asked || r->cert_days_left == VP_CERT_DAYS_UNKNOWN ||
			    seen_before(st, i))
				continue;
			open_series(b, "vpcprobe_tls_cert_expiry_seconds", st->target->name);
			vp_buf_puts(b, ",address=\"");
			vp_prom_label(b, r->address);
			vp_buf_printf(b, "\",port=\"%u\"} %lld\n", (unsigned)r->port,
			              (long long)r->cert_days_left * 86400);
		}
	}
}

static void render_last_time(struct vp_scheduler *s, struct vp_buf *b)
{
	head(b, "vpcprobe_probe_last_timestamp_seconds", "gauge", "When the target's last "
	     "scheduled probe ended, in seconds since the epoch. " LAST_RESULTS);
	for (size_t t = 0; t < vp_scheduler_count(s); t++) {
		const struct vp_sched_target *st = vp_scheduler_target(s, t);
		const struct vp_history_entry *e = vp_history_get(&st->history, 0);

		if (e == NULL)
			continue;
		open_series(b, "vpcprobe_probe_last_timestamp_seconds", st->target->name);
		vp_buf_printf(b, "} %" PRId64 ".%03d\n", e->time_ms / 1000, (int)(e->time_ms % 1000));
	}
}

static void render_counters(const struct vp_metrics *m, struct vp_scheduler *s, struct vp_buf *b)
{
	head(b, "vpcprobe_probes_total", "counter", "Probes ended, by target and verdict, one per "
	     "address probed. Counted as the scheduled probes end, not at scrape time.");
	for (size_t t = 0; t < vp_scheduler_count(s); t++) {
		const char *name = vp_scheduler_target(s, t)->target->name;
		const struct series *x = slot_for(m->slots, m->cap, name);

		for (int v = 0; x->name != NULL && v < VP_VERDICT_MAX; v++) {
			if (x->probes[v] == 0)
				continue;
			open_series(b, "vpcprobe_probes_total", name);
			vp_buf_printf(b, ",verdict=\"%s\"} %" PRIu64 "\n", vp_verdict_name(v), x->probes[v]);
		}
	}
}

static void render_histogram(const struct vp_metrics *m, struct vp_scheduler *s, struct vp_buf *b)
{
	head(b, "vpcprobe_probe_duration_seconds", "histogram", "How long the scheduled probes "
	     "took, from start to verdict (a timeout counts its whole deadline). " LAST_RESULTS);
	for (size_t t = 0; t < vp_scheduler_count(s); t++) {
		const char *name = vp_scheduler_target(s, t)->target->name;
		const struct series *x = slot_for(m->slots, m->cap, name);
		uint64_t cum = 0;

		if (x->name == NULL)
			continue;
		for (size_t k = 0; k <= N_BUCKETS; k++) {
			cum += x->bucket[k];
			open_series(b, "vpcprobe_probe_duration_seconds_bucket", name);
			if (k < N_BUCKETS)
				vp_buf_printf(b, ",le=\"%g\"} %" PRIu64 "\n", bucket_le[k], cum);
			else
				vp_buf_printf(b, ",le=\"+Inf\"} %" PRIu64 "\n", cum);
		}
		open_series(b, "vpcprobe_probe_duration_seconds_sum", name);
		vp_buf_printf(b, "} %.6f\n", x->sum_s);
		open_series(b, "vpcprobe_probe_duration_seconds_count", name);
		vp_buf_printf(b, "} %" PRIu64 "\n", x->count);
	}
}

/* What the collector never got, so that an alert can fire on it: until now
 * only the log said so. */
static void render_losses(const struct vp_metrics *m, struct vp_buf *b)
{
	const struct vp_metrics_losses *l = &m->losses;

	head(b, "vpcprobe_reports_rejected_total", "counter", "Results the collector refused: "
	     "reason=\"set_aside\" for batches answered with a status not to be retried (json: "
	     "a 4xx but 408 and 429; otlp: a 4xx or 5xx but 429, 502, 503 and 504), set aside and "
	     "not sent again; reason=\"partial\" for log records an OTLP partialSuccess rejected.");
	vp_buf_printf(b, "vpcprobe_reports_rejected_total{reason=\"set_aside\"} %" PRIu64 "\n"
	              "vpcprobe_reports_rejected_total{reason=\"partial\"} %" PRIu64 "\n",
	              l->set_aside, l->partial);
	head(b, "vpcprobe_spool_frames_skipped_total", "counter", "Spool damage skipped when the "
	     "spool was read, its results lost: why=\"corrupt\" counts frames that failed their "
	     "checksum, why=\"torn\" counts torn tails (a partial last frame) cut at start.");
	vp_buf_printf(b, "vpcprobe_spool_frames_skipped_total{why=\"corrupt\"} %" PRIu64 "\n"
	              "vpcprobe_spool_frames_skipped_total{why=\"torn\"} %" PRIu64 "\n",
	              l->corrupt, l->torn);
}

int vp_metrics_render(const struct vp_metrics *m, struct vp_scheduler *s,
                      const struct vp_metrics_extra *x, struct vp_buf *b)
{
	render_success(s, b);
	render_histogram(m, s, b);
	render_counters(m, s, b);
	render_last_time(s, b);
	render_cert_expiry(s, b);
	head(b, "vpcprobe_reports_spooled_bytes", "gauge",
	     "Bytes of results spooled under state_dir, waiting for the collector.");
	vp_buf_printf(b, "vpcprobe_reports_spooled_bytes %" PRIu64 "\n", x->reports_spooled_bytes);
	head(b, "vpcprobe_reports_dropped_total", "counter",
	     "Results dropped unsent because the spool was full (oldest first).");
	vp_buf_printf(b, "vpcprobe_reports_dropped_total %" PRIu64 "\n", x->reports_dropped_total);
	render_losses(m, b);
	head(b, "vpcprobe_build_info", "gauge", "The running vpcprobe's version; always 1.");
	vp_buf_puts(b, "vpcprobe_build_info{version=\"");
	vp_prom_label(b, VP_VERSION);
	vp_buf_puts(b, "\"} 1\n");
	return b->err;
}

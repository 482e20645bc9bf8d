/* The HTML of '/' and '/target/NAME'. Every string that is not a literal
 * here goes through vp_buf_html() (or vp_buf_urlenc() in a link): target
 * names and URLs come from the config, details and hints may quote what a
 * hostile server sent. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/record.h"
#include "agent/status_int.h"
#include "vp_build.h"

static void page_head(struct vp_buf *b, const char *title, bool refresh)
{
	vp_buf_puts(b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n");
	/* Only without scripts: with them, the script patches the page. */
	if (refresh)
		vp_buf_printf(b, "<noscript><meta http-equiv=\"refresh\" content=\"%d\"></noscript>\n",
		              VP_STATUS_REFRESH_S);
	vp_buf_puts(b, "<link rel=\"icon\" href=\"data:,\">\n<title>");
	vp_buf_html(b, title);
	vp_buf_puts(b, "</title>\n<style>");
	vp_buf_puts(b, vp_status_css);
	vp_buf_puts(b, "</style>\n</head>\n<body>\n");
}

static void badge_html(struct vp_buf *b, const struct vp_sched_target *st)
{
	enum vp_verdict v = st->runs > 0 ? st->verdict : VP_VERDICT_INVALID;
	const char *cls = st->runs == 0 ? "b-pend" : v == VP_VERDICT_OK ? "b-ok" : "b-bad";

	vp_buf_printf(b, "<span class=\"badge %s\"><span class=\"ic\" aria-hidden=\"true\">%s</span>"
	              "<span class=\"bt\">%s</span></span>\n", cls, vp_status_badge_icon(v),
	              vp_status_badge_text(v));
}

static const char *const state_class[VP_STATE_MAX] = {
	[VP_STATE_FAILING] = "failing",
	[VP_STATE_PENDING] = "pending",
	[VP_STATE_OK] = "ok",
};

/* The second half of a row: what was seen, the likely cause, what to type.
 * Present but hidden on rows that are not failing, for the script. */
static void row_why(struct vp_buf *b, const struct vp_status_view *v)
{
	const struct vp_probe_result *w = v->worst;
	bool failing = v->state == VP_STATE_FAILING;

	vp_buf_printf(b, "<div class=\"why\"%s><span class=\"reason\">", failing ? "" : " hidden");
	vp_buf_html(b, w ? vp_verdict_reason(&w->v) : "");
	vp_buf_puts(b, "</span><span class=\"detail\">");
	vp_buf_html(b, w ? w->v.detail : "");
	vp_buf_printf(b, "</span></div>\n<div class=\"hint\"%s>",
	              failing && w && w->v.hint[0] ? "" : " hidden");
	vp_buf_html(b, w ? w->v.hint : "");
	vp_buf_printf(b, "</div>\n<div class=\"next\"%s><span class=\"sub\">next step:</span>",
	              failing && v->n_steps > 0 ? "" : " hidden");
	for (size_t i = 0; i < v->n_steps; i++) {
		vp_buf_puts(b, "<code>");
		vp_buf_html(b, v->steps[i]);
		vp_buf_puts(b, "</code>");
	}
	vp_buf_puts(b, "</div>\n");
}

static void row_html(struct vp_buf *b, const struct vp_status_view *v)
{
	const struct vp_target *t = v->st->target;
	char lat[32];

	vp_fmt_ms(v->latency_ms, lat, sizeof(lat));
	vp_buf_printf(b, "<article class=\"t %s\" data-name=\"", state_class[v->state]);
	vp_buf_html(b, t->name);
	vp_buf_puts(b, "\">\n<div class=\"top\">\n");
	badge_html(b, v->st);
	vp_buf_puts(b, "<div class=\"id\"><a class=\"name\" href=\"/target/");
	vp_buf_urlenc(b, t->name);
	vp_buf_puts(b, "\">");
	vp_buf_html(b, t->name);
	vp_buf_puts(b, "</a> <span class=\"url\">");
	vp_buf_html(b, t->url_text);
	vp_buf_puts(b, "</span></div>\n<span class=\"since\">");
	vp_buf_html(b, v->state == VP_STATE_PENDING ? "not probed yet" : v->since);
	vp_buf_printf(b, "</span>\n<span class=\"lat\" title=\"the last run's slowest address\">"
	              "%s</span>\n", lat);
	vp_spark_svg(b, v->spark);
	vp_buf_puts(b, "\n</div>\n");
	row_why(b, v);
	vp_status_fw_html(b, v->fw);
	vp_buf_puts(b, "</article>\n");
}

static void counts_html(struct vp_buf *b, struct vp_scheduler *sched, size_t *ret_failing)
{
	size_t c[VP_VERDICT_MAX + 1], failing = 0;

	vp_status_counts(sched, c);
	for (int i = 0; i < VP_VERDICT_MAX; i++)
		failing += i != VP_VERDICT_OK ? c[i] : 0;
	vp_buf_printf(b, "<div class=\"counts\" id=\"counts\"><span class=\"cnt%s\">%zu failing</span>",
	              failing ? " bad" : "", failing);
	for (int i = 0; i < VP_VERDICT_MAX; i++)
		if (i != VP_VERDICT_OK && c[i] > 0)
			vp_buf_printf(b, "<span class=\"cnt\">%zu %s</span>", c[i], vp_verdict_name(i));
	if (c[VP_VERDICT_MAX] > 0)
		vp_buf_printf(b, "<span class=\"cnt\">%zu pending</span>", c[VP_VERDICT_MAX]);
	vp_buf_printf(b, "<span class=\"cnt good\">%zu ok</span></div>\n", c[VP_VERDICT_OK]);
	*ret_failing = failing;
}

static void header_html(struct vp_status *s, struct vp_scheduler *sched, struct vp_buf *b,
                        int64_t now)
{
	const struct vp_config *cfg = vp_scheduler_config(sched);
	struct vp_status_delivery d;
	char up[48], when[40], text[VP_DETAIL_MAX + 320], where[4 * (VP_METADATA_VALUE_MAX + 16)];
	struct timespec ts = { .tv_sec = now / 1000, .tv_nsec = (now % 1000) * 1000000 };
	size_t failing;

	vp_fmt_duration((uint64_t)(now - s->started_ms) / 1000, up, sizeof(up));
	vp_format_time(&ts, when, sizeof(when));
	vp_status_delivery_of(s, &d);
	vp_status_delivery_text(s, &d, text, sizeof(text));
	vp_buf_puts(b, "<header>\n<h1>vpcprobe \u00b7 <span class=\"agent\">");
	vp_buf_html(b, cfg->agent_name);
	vp_buf_puts(b, "</span></h1>\n");
	counts_html(b, sched, &failing);
	vp_buf_printf(b, "<div class=\"meta\">up <span id=\"uptime\">%s</span> \u00b7 %zu targets "
	              "\u00b7 as of <span id=\"now\">%s</span> \u00b7 refreshes every %d s</div>\n",
	              up, vp_scheduler_count(sched), when, VP_STATUS_REFRESH_S);
	vp_status_where_text(s->src.instance ? s->src.instance(s->src.arg) : NULL, where,
	                     sizeof(where));
	vp_buf_printf(b, "<div class=\"where\" id=\"where\"%s>", where[0] ? "" : " hidden");
	vp_buf_html(b, where);
	vp_buf_puts(b, "</div>\n");
	vp_buf_puts(b, "<div class=\"delivery\">delivery: <span id=\"delivery\">");
	vp_buf_html(b, text);
	vp_buf_puts(b, "</span></div>\n</header>\n<div class=\"stale\" id=\"stale\" hidden></div>\n");
}

static void page_title(struct vp_scheduler *sched, const char *agent, char *buf, size_t len)
{
	size_t c[VP_VERDICT_MAX + 1], failing = 0;

	vp_status_counts(sched, c);
	for (int i = 0; i < VP_VERDICT_MAX; i++)
		failing += i != VP_VERDICT_OK ? c[i] : 0;
	if (failing > 0)
		snprintf(buf, len, "\u2715 %zu failing \u00b7 vpcprobe %s", failing, agent);
	else
		snprintf(buf, len, "\u2713 all ok \u00b7 vpcprobe %s", agent);
}

/* The listener checks and the beacons of issue 3, when configured. */
static void checks_html(struct vp_status *s, struct vp_scheduler *sched, struct vp_buf *b,
                        int64_t now)
{
	const struct vp_listen_checks *lc = s->src.checks ? s->src.checks(s->src.arg) : NULL;
	size_t nl = vp_listen_checks_count(lc), nb = vp_status_beacon_count(lc);
	struct vp_status_beacon_view v;

	if (nl > 0)
		vp_status_listen_html(b, vp_listen_checks_result(lc, 0), nl, now);
	if (nb == 0)
		return;
	vp_buf_puts(b, "<section id=\"beacons\">\n<h2>Beacon arrivals</h2>\n");
	for (size_t i = 0; i < nb; i++) {
		vp_status_beacon_view_at(lc, vp_scheduler_config(sched), i, &v);
		vp_status_beacon_html(b, &v);
	}
	vp_buf_puts(b, "</section>\n");
}

int vp_status_page(struct vp_status *s, struct vp_buf *b)
{
	struct vp_scheduler *sched = s->src.scheduler(s->src.arg);
	size_t n = vp_scheduler_count(sched), shown = 0;
	size_t *order = vp_status_order(sched);
	int64_t now = vp_status_realtime_ms();
	char title[VP_NAME_MAX + 64];
	struct vp_status_view v;
	struct vp_buf checks;

	if (n > 0 && order == NULL)
		return b->err = -ENOMEM;
	page_title(sched, vp_scheduler_config(sched)->agent_name, title, sizeof(title));
	page_head(b, title, true);
	header_html(s, sched, b, now);
	/* The checks come after the targets but are built first, so that the
	 * rows leave room for them. */
	vp_buf_init(&checks, VP_STATUS_BODY_MAX / 4);
	checks_html(s, sched, &checks, now);
	if (checks.err != 0) {
		vp_buf_done(&checks);
		vp_buf_init(&checks, 256);
		vp_buf_puts(&checks, "<p class=\"sub\" id=\"checks-omitted\">The listener checks and "
		            "beacons are not shown: they would pass the page's size limit. "
		            "/api/v1/status has them.</p>\n");
	}
	vp_buf_puts(b, "<main id=\"targets\">\n");
	/* Past the size limit the rest of the rows are left out, and said so. */
	for (; shown < n && b->len + checks.len + VP_STATUS_ROW_RESERVE < b->max; shown++) {
		vp_status_view_of(vp_scheduler_target(sched, order[shown]), now, &v);
		vp_status_view_fw(s, &v);
		row_html(b, &v);
	}
	if (n == 0)
		vp_buf_puts(b, "<p>No targets in the configuration.</p>\n");
	vp_buf_puts(b, "</main>\n");
	vp_buf_add(b, checks.data ? checks.data : "", checks.len);
	vp_buf_done(&checks);
	if (shown < n)
		vp_buf_printf(b, "<p class=\"sub\" id=\"omitted\">%zu more targets are not shown: the "
		              "page would pass its size limit. /api/v1/status and /metrics have them "
		              "all.</p>\n", n - shown);
	vp_buf_printf(b, "<footer>machine-readable: <a href=\"/api/v1/status\">/api/v1/status</a>"
	              " \u00b7 <a href=\"/metrics\">/metrics</a> \u00b7 "
	              "<a href=\"/api/v1/listeners\">/api/v1/listeners</a> \u00b7 vpcprobe %s</footer>\n",
	              VP_VERSION);
	vp_buf_puts(b, "<script>");
	vp_buf_puts(b, vp_status_js);
	vp_buf_puts(b, "</script>\n</body></html>\n");
	free(order);
	return b->err;
}

static const struct vp_sched_target *find_target(struct vp_scheduler *s, const char *name)
{
	for (size_t i = 0; i < vp_scheduler_count(s); i++)
		if (strcmp(vp_scheduler_target(s, i)->target->name, name) == 0)
			return vp_scheduler_target(s, i);
	return NULL;
}

static void results_html(struct vp_buf *b, const struct vp_sched_target *st)
{
	char c[32], t[32];

	vp_buf_puts(b, "<h2>Last run, per address</h2>\n<table><tr><th>address</th><th>port</th>"
	            "<th>verdict</th><th>reason</th><th>connect</th><th>total</th><th>detail</th></tr>\n");
	for (size_t i = 0; i < st->n_last; i++) {
		const struct vp_probe_result *r = &st->last[i];

		vp_fmt_ms(r->connect_ms, c, sizeof(c));
		vp_fmt_ms(r->total_ms, t, sizeof(t));
		vp_buf_puts(b, "<tr><td>");
		vp_buf_html(b, r->address);
		vp_buf_printf(b, "</td><td>%u</td><td>%s</td><td>", (unsigned)r->port,
		              vp_verdict_name(r->v.verdict));
		vp_buf_html(b, vp_verdict_reason(&r->v));
		vp_buf_printf(b, "</td><td>%s</td><td>%s</td><td>", c, t);
		vp_buf_html(b, r->v.detail);
		vp_buf_puts(b, "</td></tr>\n");
	}
	vp_buf_puts(b, "</table>\n");
}

/* The raw records, as the collector gets them, escaped into a <pre>. */
static void records_html(struct vp_buf *b, const struct vp_config *cfg,
                         const struct vp_sched_target *st)
{
	const struct vp_target *t = st->target;
	struct vp_record_ctx ctx = { .agent = cfg->agent_name, .target = t->name,
	                             .host = t->url.host, .kind = t->url.kind };

	vp_buf_puts(b, "<h2>Raw last records</h2>\n<pre>");
	for (size_t i = 0; i < st->n_last; i++) {
		json_t *rec = vp_record_json(&ctx, &st->last[i]);
		char *text = rec ? json_dumps(rec, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) : NULL;

		if (text == NULL)
			b->err = b->err ? b->err : -ENOMEM;
		else
			vp_buf_html(b, text);
		vp_buf_puts(b, "\n");
		free(text);
		json_decref(rec);
	}
	if (st->n_last == 0)
		vp_buf_puts(b, "(no run has finished yet)");
	vp_buf_puts(b, "</pre>\n");
}

static void history_html(struct vp_buf *b, const struct vp_sched_target *st)
{
	const struct vp_history_entry *e;
	char when[40], ms[32];

	vp_buf_printf(b, "<h2>History, newest first (%zu runs kept, the last hour at least)</h2>\n"
	              "<table><tr><th>time (UTC)</th><th>verdict</th><th>addresses ok</th>"
	              "<th>slowest</th></tr>\n", st->history.len);
	for (size_t i = 0; (e = vp_history_get(&st->history, i)) != NULL; i++) {
		struct timespec ts = { .tv_sec = e->time_ms / 1000,
		                       .tv_nsec = (e->time_ms % 1000) * 1000000 };

		vp_format_time(&ts, when, sizeof(when));
		vp_fmt_ms(e->total_ms, ms, sizeof(ms));
		vp_buf_printf(b, "<tr><td>%s</td><td>%s %s</td><td>%u of %u</td><td>%s</td></tr>\n",
		              when, vp_status_badge_icon(e->verdict), vp_verdict_name(e->verdict),
		              e->n_ok, e->n_addresses, ms);
	}
	vp_buf_puts(b, "</table>\n");
}

int vp_status_target_page(struct vp_status *s, const char *name, struct vp_buf *b)
{
	struct vp_scheduler *sched = s->src.scheduler(s->src.arg);
	const struct vp_config *cfg = vp_scheduler_config(sched);
	const struct vp_sched_target *st = find_target(sched, name);
	char title[2 * VP_NAME_MAX + 32];
	struct vp_status_view v;

	snprintf(title, sizeof(title), "%s \u00b7 vpcprobe %s", name, cfg->agent_name);
	page_head(b, title, false);
	vp_buf_puts(b, "<header><h1><a href=\"/\">vpcprobe</a> \u00b7 <span class=\"agent\">");
	vp_buf_html(b, cfg->agent_name);
	vp_buf_puts(b, "</span></h1></header>\n<main>\n");
	if (st == NULL) {
		vp_buf_puts(b, "<p>No target is named <b>");
		vp_buf_html(b, name);
		vp_buf_puts(b, "</b>. <a href=\"/\">All targets</a>.</p>\n</main></body></html>\n");
		return b->err ? b->err : -ENOENT;
	}
	vp_status_view_of(st, vp_status_realtime_ms(), &v);
	vp_status_view_fw(s, &v);
	row_html(b, &v);
	results_html(b, st);
	records_html(b, cfg, st);
	history_html(b, st);
	vp_buf_puts(b, "</main>\n<footer><a href=\"/\">all targets</a></footer>\n</body></html>\n");
	return b->err;
}

/* The listener checks and the beacons (issue 3) on the page and in
 * /api/v1/status. The HTML and the JSON are built from plain values (a
 * listener result, a beacon view) so that tests/test_status.c can feed them
 * hostile text without a socket. Process names come from /proc and may hold
 * anything; addresses are numeric, escaped all the same. */
#include <stdio.h>
#include <string.h>

#include "agent/record.h"
#include "agent/status_int.h"

/* ---- plain values ---- */

const char *vp_status_listen_state(const struct vp_listen_result *r)
{
	if (r->runs == 0)
		return "pending";
	/* A full accept queue is a finding of its own, whatever the bind. */
	return r->verdict == VP_VERDICT_OK && r->finding == NULL ? "ok" : "failing";
}

static void since_text(const struct vp_listen_result *r, int64_t now_ms, char *buf, size_t len)
{
	if (r->runs == 0)
		snprintf(buf, len, "not read yet");
	else
		vp_fmt_since(strcmp(vp_status_listen_state(r), "ok") ? "failing for " : "ok for ",
		             r->changed_ms, now_ms, buf, len);
}

static void queue_text(const struct vp_listen_result *r, char *buf, size_t len)
{
	if (r->runs == 0 || r->addresses[0] == '\0')
		snprintf(buf, len, "-");
	else if (r->queue_max_known)
		snprintf(buf, len, "%u / %u", r->queue_cur, r->queue_max);
	else
		snprintf(buf, len, "%u / ?", r->queue_cur);
}

static void owner_text(const struct vp_listen_result *r, char *buf, size_t len)
{
	if (r->pid > 0)
		snprintf(buf, len, "%d %s", r->pid, r->process);
	else
		snprintf(buf, len, "-");
}

void vp_status_beacon_view_of(const struct vp_beacon_server *b, const char *listen,
                              struct vp_status_beacon_view *v)
{
	size_t n;

	memset(v, 0, sizeof(*v));
	snprintf(v->listen, sizeof(v->listen), "%s", b ? vp_beacon_server_listen(b) : listen);
	if (b == NULL)
		return;
	v->running = true;
	vp_beacon_server_expect_text(b, v->expect, sizeof(v->expect));
	vp_beacon_server_stats(b, &v->stats);
	n = vp_beacon_server_arrival_count(b);
	for (size_t i = 0; i < n && v->n_shown < VP_STATUS_ARRIVALS_SHOWN; i++)
		v->shown[v->n_shown++] = vp_beacon_server_arrival(b, n - 1 - i);
}

size_t vp_status_beacon_count(const struct vp_listen_checks *lc)
{
	return vp_listen_checks_beacon_count(lc);
}

void vp_status_beacon_view_at(const struct vp_listen_checks *lc, const struct vp_config *cfg,
                              size_t i, struct vp_status_beacon_view *v)
{
	/* The set keeps one slot per configured beacon, in the config's order,
	 * NULL for one that could not start. */
	const char *listen = cfg && i < cfg->n_beacons ? cfg->beacons[i].listen : "?";

	vp_status_beacon_view_of(vp_listen_checks_beacon(lc, i), listen, v);
}

static void counts_text(const struct vp_status_beacon_view *v, char *buf, size_t len)
{
	const struct vp_beacon_stats *s = &v->stats;
	char split[96] = "";
	int n;

	if (!v->running) {
		snprintf(buf, len, "not running: it could not start, the agent's log says why");
		return;
	}
	if (s->arrivals == 0) {
		snprintf(buf, len, "nothing has arrived yet");
		return;
	}
	if (v->expect[0] != '\0')
		snprintf(split, sizeof(split), ": %llu inside expect_from, %llu outside",
		         (unsigned long long)s->inside, (unsigned long long)s->outside);
	n = snprintf(buf, len, "%llu arrived%s \u00b7 %llu answered, %llu bad requests, "
	             "%llu timed out", (unsigned long long)s->arrivals, split,
	             (unsigned long long)s->answered, (unsigned long long)s->bad_requests,
	             (unsigned long long)s->timed_out);
	if (n > 0 && (size_t)n < len && s->over_cap > 0)
		snprintf(buf + n, len - (size_t)n, ", %llu closed over the connection cap",
		         (unsigned long long)s->over_cap);
}

void vp_status_where_text(const struct vp_instance *in, char *buf, size_t len)
{
	const char *names[] = { "instance", "zone", "project", "network" };
	const char *vals[4];
	size_t o = 0;
	int n;

	buf[0] = '\0';
	if (in == NULL)
		return;
	vals[0] = in->name;
	vals[1] = in->zone;
	vals[2] = in->project;
	vals[3] = in->network;
	for (size_t i = 0; i < 4 && o < len; i++) {
		if (vals[i][0] == '\0')
			continue;
		n = snprintf(buf + o, len - o, "%s%s %s", o ? " \u00b7 " : "", names[i], vals[i]);
		if (n < 0)
			return;
		o += (size_t)n;
	}
}

/* ---- HTML ---- */

static void td(struct vp_buf *b, const char *cls, const char *text)
{
	vp_buf_printf(b, "<td class=\"%s\">", cls);
	vp_buf_html(b, text);
	vp_buf_puts(b, "</td>");
}

static void listen_row(struct vp_buf *b, const struct vp_listen_result *r, int64_t now_ms)
{
	enum vp_verdict v = r->runs ? r->verdict : VP_VERDICT_INVALID;
	const char *state = vp_status_listen_state(r);
	char text[VP_DETAIL_MAX];

	vp_buf_printf(b, "<tr class=\"%s\" data-port=\"%u\"><td class=\"port\">%u</td>"
	              "<td class=\"verdict\"><span class=\"badge %s\"><span class=\"ic\" "
	              "aria-hidden=\"true\">%s</span><span class=\"bt\">%s</span></span> ",
	              state, (unsigned)r->port, (unsigned)r->port,
	              r->runs == 0 ? "b-pend" : v == VP_VERDICT_OK ? "b-ok" : "b-bad",
	              vp_status_badge_icon(v), vp_status_badge_text(v));
	vp_buf_puts(b, "<span class=\"reason\">");
	vp_buf_html(b, r->runs ? r->reason : "");
	vp_buf_puts(b, "</span></td>");
	td(b, "scope", r->runs ? vp_listen_scope_name(r->scope) : "");
	td(b, "addresses", r->addresses[0] ? r->addresses : "-");
	owner_text(r, text, sizeof(text));
	td(b, "owner", text);
	queue_text(r, text, sizeof(text));
	td(b, "queue", text);
	td(b, "finding", r->finding ? r->finding : "");
	since_text(r, now_ms, text, sizeof(text));
	td(b, "since", text);
	vp_buf_puts(b, "<td class=\"detail\">");
	vp_buf_html(b, r->detail);
	vp_buf_printf(b, "<div class=\"hint\"%s>", strcmp(state, "failing") || !r->hint[0] ?
	              " hidden" : "");
	vp_buf_html(b, r->hint);
	vp_buf_puts(b, "</div></td></tr>\n");
}

void vp_status_listen_html(struct vp_buf *b, const struct vp_listen_result *r, size_t n,
                           int64_t now_ms)
{
	vp_buf_puts(b, "<section id=\"listeners\">\n<h2>Listener checks</h2>\n"
	            "<table class=\"checks\"><thead><tr><th>port</th><th>verdict</th><th>scope</th>"
	            "<th>addresses</th><th>owner (pid name)</th><th>queue (now / max)</th>"
	            "<th>finding</th><th>since</th><th>detail</th></tr></thead>\n"
	            "<tbody id=\"listen-rows\">\n");
	for (size_t i = 0; i < n; i++)
		listen_row(b, &r[i], now_ms);
	vp_buf_puts(b, "</tbody></table>\n</section>\n");
}

static void arrival_row(struct vp_buf *b, const struct vp_beacon_arrival *a)
{
	char when[40], src[INET6_ADDRSTRLEN + 16];

	vp_format_time(&a->wall, when, sizeof(when));
	vp_beacon_source_text(a, src, sizeof(src));
	vp_buf_printf(b, "<tr class=\"%s\"><td>%llu</td>", vp_beacon_match_name(a->match),
	              (unsigned long long)a->seq);
	td(b, "time", when);
	td(b, "source", src);
	td(b, "match", vp_beacon_match_name(a->match));
	td(b, "network", a->cidr[0] ? a->cidr : "-");
	td(b, "note", a->over_cap ? "closed at once: over the connection cap" : "");
	vp_buf_puts(b, "</tr>\n");
}

void vp_status_beacon_html(struct vp_buf *b, const struct vp_status_beacon_view *v)
{
	char text[VP_DETAIL_MAX];

	vp_buf_puts(b, "<section class=\"beacon\" data-listen=\"");
	vp_buf_html(b, v->listen);
	vp_buf_puts(b, "\">\n<h3>beacon <code>");
	vp_buf_html(b, v->listen);
	vp_buf_puts(b, "</code> <span class=\"sub\">");
	if (v->expect[0] != '\0') {
		vp_buf_puts(b, "expect_from ");
		vp_buf_html(b, v->expect);
	} else {
		vp_buf_puts(b, "no expect_from: sources are not checked");
	}
	counts_text(v, text, sizeof(text));
	vp_buf_printf(b, "</span></h3>\n<p class=\"bcounts%s\">", v->running ? "" : " bad");
	vp_buf_html(b, text);
	vp_buf_printf(b, "</p>\n<table class=\"arrivals\"%s><thead><tr><th>#</th><th>time (UTC)</th>"
	              "<th>source</th><th>expect_from</th><th>network</th><th></th></tr></thead>\n"
	              "<tbody>\n", v->n_shown ? "" : " hidden");
	for (size_t i = 0; i < v->n_shown; i++)
		arrival_row(b, v->shown[i]);
	vp_buf_puts(b, "</tbody></table>\n</section>\n");
}

/* ---- JSON ---- */

static json_t *time_or_null(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
	char when[40];

	if (ms <= 0)
		return json_null();
	vp_format_time(&ts, when, sizeof(when));
	return json_string(when);
}

/* "a, b, c" as ["a", "b", "c"]; [] for "". */
static json_t *split_list(const char *text)
{
	json_t *arr = json_array();
	const char *p = text;

	while (arr != NULL && *p != '\0') {
		size_t n = strcspn(p, ",");

		json_array_append_new(arr, json_stringn(p, n));
		p += n;
		p += strspn(p, ", ");
	}
	return arr;
}

static json_t *listen_one(const struct vp_listen_result *r, int64_t now_ms)
{
	char since[64];
	bool read = r->runs > 0;
	int64_t wall = (int64_t)r->wall.tv_sec * 1000 + r->wall.tv_nsec / 1000000;

	since_text(r, now_ms, since, sizeof(since));
	return json_pack("{s:i,s:s,s:s?,s:s?,s:s?,s:s?,s:o,s:o,s:o,s:{s:o,s:o},s:s?,s:s?,s:s?,"
	                 "s:s?,s:o,s:o,s:s,s:I}",
	                 "port", (int)r->port, "state", vp_status_listen_state(r),
	                 "verdict", read ? vp_verdict_name(r->verdict) : NULL,
	                 "badge", read ? vp_status_badge_text(r->verdict) : NULL,
	                 "reason", read ? r->reason : NULL,
	                 "scope", read ? vp_listen_scope_name(r->scope) : NULL,
	                 "addresses", split_list(r->addresses),
	                 "pid", r->pid > 0 ? json_integer(r->pid) : json_null(),
	                 "process", r->pid > 0 ? json_string(r->process) : json_null(),
	                 "queue", "current", read && r->addresses[0] ? json_integer(r->queue_cur) :
	                 json_null(), "max", read && r->queue_max_known ? json_integer(r->queue_max) :
	                 json_null(),
	                 "finding", r->finding,
	                 "detail", read ? r->detail : NULL,
	                 "hint", read && r->hint[0] ? r->hint : NULL,
	                 "source", r->source,
	                 "last_read", time_or_null(read ? wall : 0),
	                 "since", time_or_null(read ? r->changed_ms : 0),
	                 "since_text", since, "runs", (json_int_t)r->runs);
}

json_t *vp_status_listen_json(const struct vp_listen_result *r, size_t n, int64_t now_ms)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr != NULL && i < n; i++) {
		json_t *one = listen_one(&r[i], now_ms);

		if (one == NULL || json_array_append_new(arr, one) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static json_t *arrival_json(const struct vp_beacon_arrival *a)
{
	char when[40];

	vp_format_time(&a->wall, when, sizeof(when));
	return json_pack("{s:I,s:s,s:s,s:i,s:s,s:s?,s:b}", "seq", (json_int_t)a->seq, "time", when,
	                 "source", a->source, "source_port", (int)a->source_port,
	                 "match", vp_beacon_match_name(a->match),
	                 "network", a->cidr[0] ? a->cidr : NULL, "over_cap", a->over_cap);
}

json_t *vp_status_beacon_json(const struct vp_status_beacon_view *v)
{
	const struct vp_beacon_stats *s = &v->stats;
	json_t *recent = json_array();
	char text[VP_DETAIL_MAX];

	for (size_t i = 0; recent != NULL && i < v->n_shown; i++) {
		json_t *one = arrival_json(v->shown[i]);

		if (one == NULL || json_array_append_new(recent, one) < 0) {
			json_decref(recent);
			return NULL;
		}
	}
	counts_text(v, text, sizeof(text));
	return json_pack("{s:s,s:b,s:o,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I},s:I,s:s,s:o}",
	                 "listen", v->listen, "running", v->running,
	                 "expect_from", split_list(v->expect),
	                 "counts", "arrivals", (json_int_t)s->arrivals,
	                 "inside", (json_int_t)s->inside, "outside", (json_int_t)s->outside,
	                 "answered", (json_int_t)s->answered,
	                 "bad_requests", (json_int_t)s->bad_requests,
	                 "timed_out", (json_int_t)s->timed_out, "over_cap", (json_int_t)s->over_cap,
	                 "accept_errors", (json_int_t)s->accept_errors,
	                 "active", (json_int_t)s->active, "counts_text", text,
	                 "recent", recent);
}

/* Text for the status endpoints (see html.h). Everything that reaches a page
 * from the configuration or from a probed server goes through
 * vp_buf_html(): target names come from the config, details and hints can
 * quote bytes a hostile server sent. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/html.h"
#include "probes/wire.h"

#define BUF_FIRST 4096                 /* the first allocation of a buffer */
#define SPARK_W 120                    /* the sparkline's size in CSS pixels */
#define SPARK_H 24
#define SPARK_STEP (SPARK_W / VP_SPARK_BUCKETS)

void vp_buf_init(struct vp_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void vp_buf_done(struct vp_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

char *vp_buf_steal(struct vp_buf *b, size_t *ret_len)
{
	char *s = b->err ? NULL : b->data;

	if (s == NULL) {
		vp_buf_done(b);
		return NULL;
	}
	if (ret_len != NULL)
		*ret_len = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return s;
}

/* Makes room for 'n' more bytes and the NUL. */
static int reserve(struct vp_buf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : BUF_FIRST;
	char *bigger;

	if (b->err)
		return b->err;
	if (n > b->max - b->len) {
		b->err = -ENOBUFS;
		return b->err;
	}
	if (b->len + n + 1 <= b->cap)
		return 0;
	while (cap < b->len + n + 1)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	bigger = realloc(b->data, cap);
	if (bigger == NULL) {
		b->err = -ENOMEM;
		return b->err;
	}
	b->data = bigger;
	b->cap = cap;
	return 0;
}

int vp_buf_add(struct vp_buf *b, const char *s, size_t n)
{
	int r = reserve(b, n);

	if (r < 0)
		return r;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int vp_buf_puts(struct vp_buf *b, const char *s)
{
	return vp_buf_add(b, s, strlen(s));
}

int vp_buf_printf(struct vp_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	int r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return b->err ? b->err : (b->err = -EINVAL);
	r = reserve(b, (size_t)n);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	(void)vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap); /* sized above */
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

static const char *entity(unsigned char c)
{
	switch (c) {
	case '&': return "&amp;";
	case '<': return "&lt;";
	case '>': return "&gt;";
	case '"': return "&quot;";
	case '\'': return "&#39;";
	default: return NULL;
	}
}

int vp_buf_html(struct vp_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	const unsigned char *run = p;   /* start of bytes copied as they are */

	while (*p != '\0') {
		size_t n = vp_utf8_len((const char *)p);
		const char *e = entity(*p);
		bool ctrl = *p < 0x20 && *p != '\t' && *p != '\n';

		ctrl = ctrl || *p == 0x7f || (n == 2 && p[0] == 0xc2 && p[1] < 0xa0);
		if (n > 0 && e == NULL && !ctrl) {
			p += n;
			continue;
		}
		vp_buf_add(b, (const char *)run, (size_t)(p - run));
		vp_buf_puts(b, e ? e : "\xef\xbf\xbd");
		p += n > 0 ? n : 1;
		run = p;
	}
	vp_buf_add(b, (const char *)run, (size_t)(p - run));
	return b->err;
}

int vp_buf_urlenc(struct vp_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		char esc[3] = { '%', hex[*p >> 4], hex[*p & 15] };

		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '~')
			vp_buf_add(b, (const char *)p, 1);
		else
			vp_buf_add(b, esc, 3);
	}
	return b->err;
}

void vp_fmt_duration(uint64_t s, char *buf, size_t len)
{
	if (s < 60)
		snprintf(buf, len, "%" PRIu64 " s", s);
	else if (s < 3600)
		snprintf(buf, len, "%" PRIu64 " min", s / 60);
	else if (s < 48 * 3600 && (s % 3600) / 60 != 0)
		snprintf(buf, len, "%" PRIu64 " h %" PRIu64 " min", s / 3600, (s % 3600) / 60);
	else if (s < 48 * 3600)
		snprintf(buf, len, "%" PRIu64 " h", s / 3600);
	else if ((s % 86400) / 3600 != 0)
		snprintf(buf, len, "%" PRIu64 " d %" PRIu64 " h", s / 86400, (s % 86400) / 3600);
	else
		snprintf(buf, len, "%" PRIu64 " d", s / 86400);
}

void vp_fmt_since(const char *prefix, int64_t changed_ms, int64_t now_ms, char *buf, size_t len)
{
	char d[48];

	vp_fmt_duration(now_ms > changed_ms ? (uint64_t)(now_ms - changed_ms) / 1000 : 0, d,
	                sizeof(d));
	snprintf(buf, len, "%s%s", prefix, d);
}

void vp_fmt_ms(double ms, char *buf, size_t len)
{
	if (ms < 0 || isnan(ms))
		snprintf(buf, len, "-");
	else if (ms < 10)
		snprintf(buf, len, "%.2f ms", ms);
	else if (ms < 100)
		snprintf(buf, len, "%.1f ms", ms);
	else
		snprintf(buf, len, "%.0f ms", ms);
}

void vp_spark_buckets(const struct vp_history *h, int64_t now_ms,
                      struct vp_spark_bucket out[VP_SPARK_BUCKETS])
{
	const int64_t width = VP_SPARK_WINDOW_MS / VP_SPARK_BUCKETS;
	const int64_t start = now_ms - VP_SPARK_WINDOW_MS;
	const struct vp_history_entry *e;

	memset(out, 0, sizeof(*out) * VP_SPARK_BUCKETS);
	/* Newest first: stop at the first entry older than the window. */
	for (size_t i = 0; (e = vp_history_get(h, i)) != NULL && e->time_ms >= start; i++) {
		int64_t k = (e->time_ms - start) / width;
		struct vp_spark_bucket *bk;

		if (k >= VP_SPARK_BUCKETS)
			k = VP_SPARK_BUCKETS - 1;  /* now, or a clock that stepped back */
		bk = &out[k];
		if (bk->n < UINT16_MAX)
			bk->n++;
		if (e->verdict != VP_VERDICT_OK) {
			if (bk->n_fail < UINT16_MAX)
				bk->n_fail++;
		} else if (e->total_ms > bk->max_ms) {
			bk->max_ms = e->total_ms;
		}
	}
}

static void spark_title(struct vp_buf *b, const struct vp_spark_bucket in[VP_SPARK_BUCKETS])
{
	unsigned ok = 0, failing = 0;
	float slowest = 0;
	char ms[32];

	for (int i = 0; i < VP_SPARK_BUCKETS; i++) {
		if (in[i].n_fail > 0)
			failing++;
		else if (in[i].n > 0)
			ok++;
		if (in[i].max_ms > slowest)
			slowest = in[i].max_ms;
	}
	vp_fmt_ms(slowest, ms, sizeof(ms));
	if (ok + failing == 0)
		vp_buf_puts(b, "<title>last hour: no probe yet</title>");
	else
		vp_buf_printf(b, "<title>last hour: %u min ok, %u min failing%s%s</title>", ok, failing,
		              slowest > 0 ? ", slowest ok " : "", slowest > 0 ? ms : "");
}

int vp_spark_svg(struct vp_buf *b, const struct vp_spark_bucket in[VP_SPARK_BUCKETS])
{
	double top = 0;
	bool pen = false;

	for (int i = 0; i < VP_SPARK_BUCKETS; i++)
		if (in[i].max_ms > top)
			top = in[i].max_ms;
	vp_buf_printf(b, "<svg class=\"spark\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
	              "role=\"img\">", SPARK_W, SPARK_H, SPARK_W, SPARK_H);
	spark_title(b, in);
	vp_buf_printf(b, "<line class=\"sb\" x1=\"0\" y1=\"%d.5\" x2=\"%d\" y2=\"%d.5\"/>",
	              SPARK_H - 1, SPARK_W, SPARK_H - 1);
	/* A failing minute is a bar from the top: full when every run failed,
	 * half when it flapped. Drawn first, so the latency line stays on top. */
	for (int i = 0; i < VP_SPARK_BUCKETS; i++)
		if (in[i].n_fail > 0)
			vp_buf_printf(b, "<rect class=\"sf\" x=\"%d\" y=\"0\" width=\"%d\" height=\"%d\"/>",
			              i * SPARK_STEP, SPARK_STEP,
			              in[i].n_fail == in[i].n ? SPARK_H : SPARK_H / 2);
	vp_buf_puts(b, "<path class=\"sl\" d=\"");
	for (int i = 0; i < VP_SPARK_BUCKETS; i++) {
		double y;

		if (in[i].max_ms <= 0) {
			pen = false;   /* a gap: no ok run in this minute */
			continue;
		}
		/* Log scale: 0.3 ms and 300 ms both stay visible. */
		y = (SPARK_H - 2) - (SPARK_H - 4) * log1p(in[i].max_ms) / log1p(top);
		/* "h0" after a move: a lone ok minute still shows as a dot. */
		vp_buf_printf(b, "%s%d %.1f%s", pen ? "L" : "M", i * SPARK_STEP + SPARK_STEP / 2, y,
		              pen ? "" : "h0");
		pen = true;
	}
	vp_buf_puts(b, "\"/></svg>");
	return b->err;
}

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/term.h"
#include "probes/verdict.h"

#define TARGET_WIDTH_MAX 40

void vp_term_safe(char *dst, size_t len, const char *src)
{
	size_t o = 0;

	if (len == 0)
		return;
	for (const unsigned char *s = (const unsigned char *)src; *s && o + 1 < len; s++) {
		unsigned char c = *s;

		if (c < 0x20 || c == 0x7f) {
			dst[o++] = '?';
		} else if (c == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f) {
			/* U+0080..U+009F, the C1 controls (CSI is U+009B). */
			dst[o++] = '?';
			s++;
		} else {
			dst[o++] = (char)c;
		}
	}
	dst[o] = '\0';
}

bool vp_term_colour(FILE *f)
{
	const char *no = getenv("NO_COLOR");
	const char *term = getenv("TERM");

	if (no && no[0])
		return false;
	if (term && !strcmp(term, "dumb"))
		return false;
	return isatty(fileno(f));
}

static const char *verdict_colour(enum vp_verdict v)
{
	switch (v) {
	case VP_VERDICT_OK:
		return "\033[32m";   /* green */
	case VP_VERDICT_LOCAL_ERROR:
		return "\033[35m";   /* magenta: the agent, not the target */
	case VP_VERDICT_TIMEOUT:
		return "\033[33m";   /* yellow */
	default:
		return "\033[31m";   /* red */
	}
}

static void ms_text(char *buf, size_t len, double ms)
{
	if (ms < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f ms", ms);
}

void vp_term_print(FILE *f, const struct vp_term_row *rows, size_t n)
{
	bool colour = vp_term_colour(f);
	int wt = (int)strlen("TARGET"), wa = (int)strlen("ADDRESS");
	char name[VP_NAME_MAX * 2];

	for (size_t i = 0; i < n; i++) {
		int l = (int)strlen(rows[i].target);
		int a = (int)strlen(rows[i].res->address);
		wt = l > wt ? (l > TARGET_WIDTH_MAX ? TARGET_WIDTH_MAX : l) : wt;
		wa = a > wa ? a : wa;
	}
	fprintf(f, "%-*s  %-*s  %5s  %-14s  %-20s  %10s  %10s\n", wt, "TARGET", wa, "ADDRESS", "PORT",
	        "VERDICT", "REASON", "CONNECT", "TOTAL");
	for (size_t i = 0; i < n; i++) {
		const struct vp_probe_result *r = rows[i].res;
		char c[32], t[32];

		vp_term_safe(name, sizeof(name), rows[i].target);
		ms_text(c, sizeof(c), r->connect_ms);
		ms_text(t, sizeof(t), r->total_ms);
		fprintf(f, "%-*.*s  %-*s  %5u  %s%-14s%s  %-20s  %10s  %10s\n", wt, TARGET_WIDTH_MAX, name,
		        wa, r->address, (unsigned)r->port, colour ? verdict_colour(r->v.verdict) : "",
		        vp_verdict_name(r->v.verdict), colour ? "\033[0m" : "",
		        vp_verdict_reason(&r->v), c, t);
	}
	for (size_t i = 0; i < n; i++) {
		const struct vp_probe_result *r = rows[i].res;
		char detail[VP_DETAIL_MAX], hint[VP_HINT_MAX];

		if (r->v.verdict == VP_VERDICT_OK)
			continue;
		vp_term_safe(name, sizeof(name), rows[i].target);
		vp_term_safe(detail, sizeof(detail), r->v.detail);
		vp_term_safe(hint, sizeof(hint), r->v.hint);
		fprintf(f, "\n%s (%s port %u): %s\n  hint: %s\n", name, r->address, (unsigned)r->port,
		        detail, hint);
	}
}

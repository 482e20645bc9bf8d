#include <math.h>
#include <stdio.h>

#include "agent/record.h"
#include "probes/verdict.h"

void vp_format_time(const struct timespec *ts, char *buf, size_t len)
{
	struct tm tm;
	char day[32];

	gmtime_r(&ts->tv_sec, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03ldZ", day, ts->tv_nsec / 1000000);
}

/* Milliseconds to three decimals, or null for a phase that did not happen. */
static json_t *ms(double v)
{
	if (v < 0)
		return json_null();
	return json_real(round(v * 1000.0) / 1000.0);
}

static json_t *icmp_json(const struct vp_connect_obs *obs)
{
	if (!obs->icmp_family)
		return NULL;
	return json_pack("{s:s,s:i,s:i,s:s?}", "family", obs->icmp_family == AF_INET6 ? "icmpv6" : "icmp",
	                 "type", (int)obs->icmp_type, "code", (int)obs->icmp_code,
	                 "from", obs->icmp_from[0] ? obs->icmp_from : NULL);
}

/* {"offered":..,"version":..,"cipher":..,"cert_days_left":..} when TLS was
 * asked for, else NULL: a record without TLS has no "tls" object. */
static json_t *tls_json(const struct vp_probe_result *res)
{
	const struct vp_tls_info *t = &res->tls;

	if (!t->asked)
		return NULL;
	return json_pack("{s:b,s:s?,s:s?,s:o}", "offered", t->offered,
	                 "version", t->version[0] ? t->version : NULL,
	                 "cipher", t->cipher[0] ? t->cipher : NULL, "cert_days_left",
	                 res->cert_days_left == VP_CERT_DAYS_UNKNOWN ? json_null() :
	                 json_integer(res->cert_days_left));
}

json_t *vp_record_json(const struct vp_record_ctx *ctx, const struct vp_probe_result *res)
{
	char when[40];
	const char *err = vp_errno_name(res->v.err);
	json_t *rec;
	json_t *icmp;
	json_t *tls;

	vp_format_time(&res->wall, when, sizeof(when));
	rec = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s?,s:i,s:s,s:s,s:s?,s:s,"
	                "s:{s:o,s:o,s:o,s:o,s:o},s:s}",
	                "time", when, "agent", ctx->agent, "target", ctx->target,
	                "kind", vp_kind_name(ctx->kind), "host", ctx->host,
	                "address", res->address[0] ? res->address : NULL, "port", (int)res->port,
	                "verdict", vp_verdict_name(res->v.verdict),
	                "reason", vp_verdict_reason(&res->v),
	                "errno", err, "detail", res->v.detail,
	                "timings_ms", "dns", ms(res->dns_ms), "connect", ms(res->connect_ms),
	                "tls", ms(res->tls.asked ? res->tls_ms : -1.0), "protocol",
	                ms(res->protocol_ms),
	                "total", ms(res->total_ms),
	                "hint", res->v.hint);
	if (!rec)
		return NULL;
	icmp = icmp_json(&res->obs);
	if (icmp)
		json_object_set_new(rec, "icmp", icmp);
	tls = tls_json(res);
	if (tls)
		json_object_set_new(rec, "tls", tls);
	if (ctx->url)
		json_object_set_new(rec, "url", json_string(ctx->url));
	return rec;
}

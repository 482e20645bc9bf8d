/* The bodies the reporter POSTs (reporter.h): the contract's json envelope,
 * or OTLP/HTTP with the JSON encoding. The OTLP rules that matter here come
 * from the proto3 JSON mapping the OTLP specification adopts: keys in
 * lowerCamelCase, 64-bit integers (timeUnixNano, intValue) as decimal
 * strings, enums (severityNumber) as their integer, and every attribute an
 * AnyValue ({"stringValue": ...}, {"intValue": "..."}, {"doubleValue": ...},
 * {"boolValue": ...}). */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/record.h"
#include "agent/reporter.h"
#include "probes/wire.h"
#include "vp_build.h"

#define SEV_INFO 9
#define SEV_WARN 13
#define SEV_ERROR 17

int vp_report_severity(const char *verdict)
{
	if (!verdict || !strcmp(verdict, "ok"))
		return SEV_INFO;
	if (!strcmp(verdict, "reset") || !strcmp(verdict, "protocol_error") ||
	    !strcmp(verdict, "local_error"))
		return SEV_WARN;
	return SEV_ERROR;
}

static const char *severity_text(int sev)
{
	return sev == SEV_INFO ? "INFO" : sev == SEV_WARN ? "WARN" : "ERROR";
}

uint64_t vp_report_time_ns(const char *iso)
{
	struct tm tm = { 0 };
	int ms = 0, used = 0;
	time_t t;

	if (!iso || sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon,
	                   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &used) != 7 ||
	    used != (int)strlen(iso) || ms < 0)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	t = timegm(&tm);
	if (t < 0)
		return 0;
	return (uint64_t)t * 1000000000u + (uint64_t)ms * 1000000u;
}

static json_t *u64_string(uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return json_string(buf);
}

static json_t *any_value(json_t *v);

static json_t *kv(const char *key, json_t *value)
{
	return json_pack("{s:s,s:o}", "key", key, "value", value);
}

/* NULL for JSON null: the attribute is left out, as OTLP has no null. */
static json_t *any_value(json_t *v)
{
	char buf[24];
	json_t *list;
	const char *key;
	json_t *e;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return json_pack("{s:O}", "stringValue", v);
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return json_pack("{s:s}", "intValue", buf);
	case JSON_REAL:
		return json_pack("{s:f}", "doubleValue", json_real_value(v));
	case JSON_TRUE:
	case JSON_FALSE:
		return json_pack("{s:b}", "boolValue", json_is_true(v));
	case JSON_ARRAY:
		list = json_array();
		json_array_foreach(v, i, e)
			json_array_append_new(list, any_value(e));
		return json_pack("{s:{s:o}}", "arrayValue", "values", list);
	case JSON_OBJECT:
		list = json_array();
		json_object_foreach(v, key, e) {
			json_t *av = any_value(e);

			if (av)
				json_array_append_new(list, kv(key, av));
		}
		return json_pack("{s:{s:o}}", "kvlistValue", "values", list);
	case JSON_NULL:
		break;
	}
	return NULL;
}

/* The record's fields as attributes; nested objects (timings_ms, icmp)
 * flattened to dotted keys ("timings_ms.connect"), which every backend can
 * index. "time" and "detail" are the log record's time and body. */
static void add_attrs(json_t *attrs, const char *prefix, json_t *obj)
{
	char name[128];
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		json_t *av;

		if (!prefix && (!strcmp(key, "time") || !strcmp(key, "detail")))
			continue;
		snprintf(name, sizeof(name), "%s%s%s", prefix ? prefix : "", prefix ? "." : "", key);
		if (json_is_object(v)) {
			add_attrs(attrs, name, v);
			continue;
		}
		av = any_value(v);
		if (av)
			json_array_append_new(attrs, kv(name, av));
	}
}

static json_t *log_record(json_t *rec, uint64_t seq, uint64_t batch, uint64_t now_ns)
{
	const char *detail = json_string_value(json_object_get(rec, "detail"));
	int sev = vp_report_severity(json_string_value(json_object_get(rec, "verdict")));
	uint64_t t = vp_report_time_ns(json_string_value(json_object_get(rec, "time")));
	json_t *attrs = json_array();
	char num[24];

	add_attrs(attrs, NULL, rec);
	snprintf(num, sizeof(num), "%" PRIu64, seq);
	json_array_append_new(attrs, kv("vpcprobe.seq", json_pack("{s:s}", "intValue", num)));
	snprintf(num, sizeof(num), "%" PRIu64, batch);
	json_array_append_new(attrs, kv("vpcprobe.batch", json_pack("{s:s}", "intValue", num)));
	return json_pack("{s:o,s:o,s:i,s:s,s:{s:s},s:o}",
	                 "timeUnixNano", u64_string(t ? t : now_ns),
	                 "observedTimeUnixNano", u64_string(now_ns),
	                 "severityNumber", sev, "severityText", severity_text(sev),
	                 "body", "stringValue", detail ? detail : "",
	                 "attributes", attrs);
}

static void add_str_attr(json_t *attrs, const char *key, const char *value)
{
	if (value && value[0])
		json_array_append_new(attrs, kv(key, json_pack("{s:s}", "stringValue", value)));
}

/* Resource attributes from the OpenTelemetry semantic conventions (service,
 * host, cloud, gcp.gce); the network has no convention and gets its own. */
json_t *vp_report_resource(const struct vp_report_ctx *ctx)
{
	const struct vp_instance *in = ctx->instance;
	json_t *attrs = json_array();
	char region[VP_METADATA_VALUE_MAX + 1];
	char *dash;

	add_str_attr(attrs, "service.name", "vpcprobe");
	add_str_attr(attrs, "service.version", VP_VERSION);
	add_str_attr(attrs, "host.name", ctx->agent);
	if (in && vp_instance_known(in)) {
		add_str_attr(attrs, "cloud.provider", "gcp");
		add_str_attr(attrs, "cloud.platform", "gcp_compute_engine");
		add_str_attr(attrs, "cloud.account.id", in->project);
		add_str_attr(attrs, "cloud.availability_zone", in->zone);
		/* europe-west1-b is in europe-west1. */
		snprintf(region, sizeof(region), "%s", in->zone);
		dash = strrchr(region, '-');
		if (dash) {
			*dash = '\0';
			add_str_attr(attrs, "cloud.region", region);
		}
		add_str_attr(attrs, "gcp.gce.instance.name", in->name);
		add_str_attr(attrs, "gcp.gce.network", in->network);
	}
	return json_pack("{s:o}", "attributes", attrs);
}

static json_t *otlp_body(const struct vp_report_ctx *ctx, const struct vp_spool_batch *b)
{
	struct timespec now;
	json_t *logs = json_array();
	uint64_t now_ns;

	clock_gettime(CLOCK_REALTIME, &now);
	now_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
	for (size_t i = 0; i < b->n; i++) {
		json_t *rec = json_loadb(b->recs[i].data, b->recs[i].len, 0, NULL);

		if (json_is_object(rec))
			json_array_append_new(logs, log_record(rec, b->recs[i].seq, b->id, now_ns));
		json_decref(rec);
	}
	return json_pack("{s:[{s:o,s:[{s:{s:s,s:s},s:o}]}]}", "resourceLogs",
	                 "resource", vp_report_resource(ctx), "scopeLogs", "scope", "name", "vpcprobe",
	                 "version", VP_VERSION, "logRecords", logs);
}

static json_t *instance_json(const struct vp_instance *in)
{
	json_t *o = json_object();

	if (in->name[0])
		json_object_set_new(o, "name", json_string(in->name));
	if (in->zone[0])
		json_object_set_new(o, "zone", json_string(in->zone));
	if (in->project[0])
		json_object_set_new(o, "project", json_string(in->project));
	if (in->network[0])
		json_object_set_new(o, "network", json_string(in->network));
	return o;
}

/* The json format's body: {"agent","batch","results":[...],"instance"}. The
 * results go in as the spool holds them, byte for byte: each is parsed only
 * to make sure it is one JSON object (a payload that is not, NUL bytes and
 * bad UTF-8 included, is left out), never dumped again, which is what took
 * the loop's time (and rounded the reals anew). */
static char *json_body(const struct vp_report_ctx *ctx, const struct vp_spool_batch *b,
                       size_t *len)
{
	static const char results[] = ",\"results\":[", instance[] = ",\"instance\":";
	json_t *head = json_pack("{s:s,s:I}", "agent", ctx->agent, "batch", (json_int_t)b->id);
	json_t *in = ctx->instance && vp_instance_known(ctx->instance) ?
	             instance_json(ctx->instance) : NULL;
	char *h = head ? json_dumps(head, VP_RECORD_DUMP_FLAGS) : NULL;
	char *it = in ? json_dumps(in, VP_RECORD_DUMP_FLAGS) : NULL;
	char *out = NULL, *p;
	size_t hl, total;
	bool first = true;

	json_decref(head);
	json_decref(in);
	if (!h || (in && !it))
		goto done;
	hl = strlen(h) - 1;  /* without its closing brace */
	total = hl + sizeof(results) + 1 + (it ? sizeof(instance) + strlen(it) : 0) + 2;
	for (size_t i = 0; i < b->n; i++)
		total += b->recs[i].len + 1;
	out = malloc(total);
	if (!out)
		goto done;
	p = out;
	memcpy(p, h, hl);
	p += hl;
	memcpy(p, results, sizeof(results) - 1);
	p += sizeof(results) - 1;
	for (size_t i = 0; i < b->n; i++) {
		const struct vp_spool_record *r = &b->recs[i];

		json_t *check = json_loadb(r->data, r->len, 0, NULL);
		bool object = json_is_object(check);

		json_decref(check);
		if (!object)
			continue;
		if (!first)
			*p++ = ',';
		memcpy(p, r->data, r->len);
		p += r->len;
		first = false;
	}
	*p++ = ']';
	if (it) {
		memcpy(p, instance, sizeof(instance) - 1);
		p += sizeof(instance) - 1;
		memcpy(p, it, strlen(it));
		p += strlen(it);
	}
	*p++ = '}';
	*p = '\0';
	*len = (size_t)(p - out);
done:
	free(h);
	free(it);
	return out;
}

char *vp_report_body(const struct vp_report_ctx *ctx, const struct vp_spool_batch *b,
                     size_t *len)
{
	json_t *body;
	char *text;

	if (ctx->format != VP_COLLECTOR_OTLP)
		return json_body(ctx, b, len);
	body = otlp_body(ctx, b);
	if (!body)
		return NULL;
	text = json_dumps(body, VP_RECORD_DUMP_FLAGS);
	json_decref(body);
	if (text)
		*len = strlen(text);
	return text;
}

/* A cut answer is no longer JSON; the count usually comes first, so look
 * for it as text then. */
static uint64_t rejected_in_text(const char *answer, size_t len, const char *name)
{
	char key[64];
	int klen = snprintf(key, sizeof(key), "\"%s\"", name);
	const char *p;
	const char *end = answer + len;
	uint64_t n = 0;

	if (klen < 0 || (size_t)klen >= sizeof(key))
		return 0;
	p = memmem(answer, len, key, (size_t)klen);
	if (!p)
		return 0;
	p += klen;
	while (p < end && (*p == ' ' || *p == ':' || *p == '"'))
		p++;
	while (p < end && *p >= '0' && *p <= '9' && n < UINT64_MAX / 10)
		n = n * 10 + (uint64_t)(*p++ - '0');
	return n;
}

uint64_t vp_report_otlp_rejected(const char *answer, size_t len, char *msg, size_t msglen)
{
	return vp_report_otlp_rejected_key(answer, len, "rejectedLogRecords", msg, msglen);
}

uint64_t vp_report_otlp_rejected_key(const char *answer, size_t len, const char *key, char *msg,
                                     size_t msglen)
{
	json_t *root = json_loadb(answer, len, 0, NULL);
	json_t *ps = json_object_get(root, "partialSuccess");
	json_t *v = json_object_get(ps, key);
	const char *m = json_string_value(json_object_get(ps, "errorMessage"));
	uint64_t n = 0;

	/* The collector's words go to the log: escaped, never raw. */
	if (msglen > 0)
		msg[0] = '\0';
	if (m)
		(void)vp_escape(m, strlen(m), msg, msglen);
	if (!root)
		n = rejected_in_text(answer, len, key);
	else if (json_is_string(v))
		n = strtoull(json_string_value(v), NULL, 10);
	else if (json_is_integer(v) && json_integer_value(v) > 0)
		n = (uint64_t)json_integer_value(v);
	json_decref(root);
	return n;
}

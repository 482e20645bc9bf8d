/* Readers of `gcloud logging read --format=json` (VPC Flow Logs and Firewall
 * Rules Logging entries) and of `vpcprobe check --json` output. See
 * gcloud.h.
 *
 * The entries' shapes, from Google's record format pages:
 *  - VPC Flow Logs (https://cloud.google.com/vpc/docs/about-flow-logs-records):
 *    jsonPayload.connection {src_ip, dest_ip, src_port, dest_port, protocol}
 *    and jsonPayload.reporter SRC or DEST (the side that reported the flow);
 *  - Firewall Rules Logging (https://cloud.google.com/firewall/docs/vpc-log-format):
 *    jsonPayload.connection as above, jsonPayload.disposition ALLOWED or
 *    DENIED, and jsonPayload.rule_details.reference
 *    "network:{network name}/firewall:{firewall_name}". */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/gcloud.h"
#include "agent/gcloud_json.h"

/* jsonPayload is a protobuf Struct, whose numbers are doubles: 5432 and
 * 5432.0 are the same port. Anything else is not. */
static int read_port(struct vp_gj *c, json_t *conn, const char *path, int *ret)
{
	char p[VP_GJ_PATH_MAX];
	json_t *v = json_object_get(conn, "dest_port");
	double d;

	vp_gj_key(p, path, "dest_port");
	*ret = -1;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v))
		return vp_gj_fail(c, p, "expected a number, got %s", vp_gj_type(v));
	d = json_number_value(v);
	if (d < 0 || d > 65535 || floor(d) != d)
		return vp_gj_fail(c, p, "%g is not a port number 0..65535", d);
	*ret = (int)d;
	return 1;
}

/* "network:NET/firewall:NAME" -> NAME; other references are kept whole. */
static int read_rule_ref(struct vp_gj *c, json_t *payload, const char *path, struct vp_gc_log *e)
{
	char p[VP_GJ_PATH_MAX], ref[VP_GCLOUD_STR_MAX];
	json_t *rd = NULL;
	const char *name;
	int r = vp_gj_get(c, payload, path, "rule_details", JSON_OBJECT, false, &rd);

	vp_gj_key(p, path, "rule_details");
	if (r > 0)
		r = vp_gj_str(c, rd, p, "reference", false, ref, sizeof(ref));
	if (r <= 0)
		return r;
	name = strstr(ref, "/firewall:");
	name = name ? name + strlen("/firewall:") : ref;
	if (strlen(name) >= sizeof(e->rule))
		return vp_gj_fail(c, p, "reference '%s' does not end in a rule name of at most %zu bytes",
		                  ref, sizeof(e->rule) - 1);
	memcpy(e->rule, name, strlen(name) + 1);
	return 1;
}

static int read_connection(struct vp_gj *c, json_t *payload, const char *path, struct vp_gc_log *e)
{
	char p[VP_GJ_PATH_MAX];
	json_t *conn = NULL;
	int r = vp_gj_get(c, payload, path, "connection", JSON_OBJECT, true, &conn);

	vp_gj_key(p, path, "connection");
	if (r >= 0)
		r = vp_gj_str(c, conn, p, "src_ip", true, e->src_ip, sizeof(e->src_ip));
	if (r >= 0)
		r = vp_gj_str(c, conn, p, "dest_ip", true, e->dest_ip, sizeof(e->dest_ip));
	if (r >= 0)
		r = read_port(c, conn, p, &e->dest_port);
	return r < 0 ? r : 0;
}

/* One LogEntry: 1 when it is a flow or firewall record, 0 when not. */
static int read_entry(struct vp_gj *c, json_t *entry, const char *path, struct vp_gc_log *e)
{
	char p[VP_GJ_PATH_MAX];
	json_t *payload = NULL;
	int r;

	if (!json_is_object(entry))
		return vp_gj_fail(c, path, "expected an object (a log entry), got %s", vp_gj_type(entry));
	r = vp_gj_get(c, entry, path, "jsonPayload", JSON_OBJECT, false, &payload);
	if (r <= 0)
		return r;
	vp_gj_key(p, path, "jsonPayload");
	if (json_object_get(payload, "disposition")) {
		e->kind = VP_GC_LOG_FIREWALL;
		r = vp_gj_str(c, payload, p, "disposition", true, e->disposition, sizeof(e->disposition));
		if (r >= 0)
			r = read_rule_ref(c, payload, p, e);
	} else if (json_object_get(payload, "reporter")) {
		e->kind = VP_GC_LOG_FLOW;
		r = vp_gj_str(c, payload, p, "reporter", true, e->reporter, sizeof(e->reporter));
	} else {
		return 0;
	}
	if (r >= 0)
		r = read_connection(c, payload, p, e);
	if (r >= 0)
		r = vp_gj_str(c, entry, path, "timestamp", false, e->timestamp, sizeof(e->timestamp));
	return r < 0 ? r : 1;
}

static int logs_json(struct vp_gj *c, json_t *root, struct vp_gc_logs *l)
{
	char p[VP_GJ_PATH_MAX];
	size_t n = json_is_array(root) ? json_array_size(root) : 0;

	if (!json_is_array(root))
		return vp_gj_fail(c, ".", "expected an array (the output of gcloud logging read), got %s",
		                  vp_gj_type(root));
	if (n > VP_GCLOUD_LOG_MAX) {
		l->n_unread = n - VP_GCLOUD_LOG_MAX;
		n = VP_GCLOUD_LOG_MAX;
	}
	l->v = calloc(n ? n : 1, sizeof(*l->v));
	if (!l->v)
		return vp_gj_fail(c, ".", "out of memory");
	for (size_t i = 0; i < n; i++) {
		int r;

		vp_gj_index(p, "", i);
		memset(&l->v[l->n], 0, sizeof(l->v[l->n]));
		r = read_entry(c, json_array_get(root, i), p, &l->v[l->n]);
		if (r < 0)
			return r;
		if (r > 0)
			l->n++;
		else
			l->n_other++;
	}
	return 0;
}

int vp_gc_read_logs(const char *path, struct vp_gc_logs *ret, char *err, size_t errlen)
{
	struct vp_gj c = { .file = path, .err = err, .errlen = errlen };
	struct vp_gc_logs l = { 0 };
	json_t *root = NULL;
	int r = vp_gj_load(&c, NULL, &root);

	if (r >= 0)
		r = logs_json(&c, root, &l);
	json_decref(root);
	if (r < 0) {
		vp_gc_logs_done(&l);
		return r;
	}
	*ret = l;
	return 0;
}

void vp_gc_logs_done(struct vp_gc_logs *l)
{
	free(l->v);
	*l = (struct vp_gc_logs){ 0 };
}

/* One record of check --json; 1 when it is about the target. */
static int read_record(struct vp_gj *c, json_t *rec, const char *url, const char *host,
                       uint16_t port, struct vp_gc_result *res)
{
	char rurl[VP_URL_MAX] = "", rhost[VP_HOST_MAX] = "";
	long long rport = 0;
	int r;

	if (!json_is_object(rec))
		return vp_gj_fail(c, ".", "expected an object (a result record), got %s", vp_gj_type(rec));
	r = vp_gj_str(c, rec, "", "url", false, rurl, sizeof(rurl));
	if (r >= 0)
		r = vp_gj_str(c, rec, "", "host", false, rhost, sizeof(rhost));
	if (r >= 0)
		r = vp_gj_str(c, rec, "", "address", false, res->address, sizeof(res->address));
	if (r >= 0)
		r = vp_gj_int(c, rec, "", "port", true, 0, 65535, &rport);
	if (r >= 0)
		r = vp_gj_str(c, rec, "", "verdict", true, res->verdict, sizeof(res->verdict));
	if (r >= 0)
		r = vp_gj_str(c, rec, "", "reason", false, res->reason, sizeof(res->reason));
	if (r >= 0)
		r = vp_gj_str(c, rec, "", "detail", false, res->detail, sizeof(res->detail));
	if (r < 0)
		return r;
	res->port = (uint16_t)rport;
	if (rurl[0])
		return !strcmp(rurl, url);
	return rport == port && (!strcmp(rhost, host) || !strcmp(res->address, host));
}

static bool blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

static int results_text(struct vp_gj *c, char *text, size_t len, const char *url,
                        const char *host, uint16_t port, struct vp_gc_results *out)
{
	char label[VP_PATH_MAX + 32];
	size_t line = 0;
	int r = 0;

	for (char *p = text; p < text + len && r >= 0;) {
		char *nl = memchr(p, '\n', (size_t)(text + len - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
		json_error_t jerr;
		json_t *rec;
		struct vp_gj lc = *c;

		line++;
		snprintf(label, sizeof(label), "%s: line %zu", c->file, line);
		lc.file = label;
		if (n > VP_GCLOUD_LINE_MAX)
			return vp_gj_fail(&lc, NULL, "longer than %d bytes", VP_GCLOUD_LINE_MAX);
		rec = blank(p, n) ? NULL : json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
		if (!rec && !blank(p, n))
			return vp_gj_fail(&lc, NULL, "column %d: %s", jerr.column, jerr.text);
		if (rec && out->n < VP_GCLOUD_RESULTS_MAX) {
			memset(&out->v[out->n], 0, sizeof(out->v[0]));
			r = read_record(&lc, rec, url, host, port, &out->v[out->n]);
			if (r > 0)
				out->n++;
		}
		json_decref(rec);
		p += n + 1;
	}
	return r < 0 ? r : 0;
}

int vp_gc_read_results(const char *path, const char *url, const char *host, uint16_t port,
                       struct vp_gc_results *ret, char *err, size_t errlen)
{
	struct vp_gj c = { .file = path, .err = err, .errlen = errlen };
	struct vp_gc_results res = { 0 };
	char *text = NULL;
	size_t len = 0;
	int r = vp_gj_read(&c, &text, &len);

	if (r >= 0) {
		res.v = calloc(VP_GCLOUD_RESULTS_MAX, sizeof(*res.v));
		r = res.v ? results_text(&c, text, len, url, host, port, &res) :
		            vp_gj_fail(&c, NULL, "out of memory");
	}
	free(text);
	if (r < 0) {
		vp_gc_results_done(&res);
		return r;
	}
	*ret = res;
	return 0;
}

void vp_gc_results_done(struct vp_gc_results *r)
{
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

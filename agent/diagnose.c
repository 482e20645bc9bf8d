/* `vpcprobe diagnose`: the driver, the shared context and the report as
 * JSON. The steps live in diagnose_vpc.c, diagnose_fw.c, diagnose_target.c. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/diagnose_int.h"
#include "probes/wire.h"

static const char *const step_names[VP_DIAG_STEP_MAX] = {
	[VP_DIAG_CONNECTOR_READY] = "connector_ready",
	[VP_DIAG_CONNECTOR_ATTACHED] = "connector_attached",
	[VP_DIAG_SAME_REGION] = "same_region",
	[VP_DIAG_EGRESS_SETTING] = "egress_setting",
	[VP_DIAG_FIREWALL] = "firewall_admits_connector",
	[VP_DIAG_TARGET_LISTENING] = "target_listening",
	[VP_DIAG_CLOUDSQL_PATH] = "cloudsql_private_path",
	[VP_DIAG_LOGS] = "logs_show_path",
	[VP_DIAG_CAPACITY] = "connector_capacity",
};

const char *vp_diag_step_name(enum vp_diag_step s)
{
	return (unsigned)s < VP_DIAG_STEP_MAX ? step_names[s] : "invalid";
}

const char *vp_diag_status_name(enum vp_diag_status s)
{
	switch (s) {
	case VP_DIAG_PASS:
		return "pass";
	case VP_DIAG_FAIL:
		return "fail";
	default:
		return "unknown";
	}
}

/* vsnprintf at 'o' of 'buf'; a cut text stays NUL-terminated. */
static void vput(char *buf, size_t len, size_t o, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
static void vput(char *buf, size_t len, size_t o, const char *fmt, va_list ap)
{
	if (o + 1 < len)
		vsnprintf(buf + o, len - o, fmt, ap);
}

void vp_diag_set(struct vp_diag_ctx *c, enum vp_diag_step s, enum vp_diag_status st,
                 const char *cause, const char *fmt, ...)
{
	struct vp_diag_step_out *o = &c->out->steps[s];
	va_list ap;

	o->status = st;
	o->cause = st == VP_DIAG_FAIL ? cause : NULL;
	o->fix[0] = '\0';
	va_start(ap, fmt);
	vput(o->evidence, sizeof(o->evidence), 0, fmt, ap);
	va_end(ap);
}

void vp_diag_more(struct vp_diag_ctx *c, enum vp_diag_step s, const char *fmt, ...)
{
	struct vp_diag_step_out *o = &c->out->steps[s];
	va_list ap;

	va_start(ap, fmt);
	vput(o->evidence, sizeof(o->evidence), strlen(o->evidence), fmt, ap);
	va_end(ap);
}

void vp_diag_fix(struct vp_diag_ctx *c, enum vp_diag_step s, const char *fmt, ...)
{
	struct vp_diag_step_out *o = &c->out->steps[s];
	va_list ap;

	va_start(ap, fmt);
	vput(o->fix, sizeof(o->fix), 0, fmt, ap);
	va_end(ap);
}

const char *vp_diag_region(const struct vp_diag_ctx *c)
{
	const struct vp_gc_service *s = c->in->service;

	if (s && s->region[0])
		return s->region;
	if (c->in->connector)
		return c->in->connector->region;
	if (s && s->connector_region[0])
		return s->connector_region;
	return "REGION";
}

const char *vp_diag_connector_name(const struct vp_diag_ctx *c)
{
	if (c->in->connector)
		return c->in->connector->name;
	if (c->in->service && c->in->service->connector_name[0])
		return c->in->service->connector_name;
	return "CONNECTOR";
}

const char *vp_diag_network(const struct vp_diag_ctx *c)
{
	if (c->nic)
		return vp_fw_network_name(c->nic->network);
	if (c->in->connector && c->in->connector->network[0])
		return vp_fw_network_name(c->in->connector->network);
	if (c->in->sql && c->in->sql->private_network[0])
		return vp_fw_network_name(c->in->sql->private_network);
	return "NETWORK";
}

/* RFC 1918 and RFC 6598, the internal ranges that Serverless VPC Access
 * documents, the Private Google Access VIPs that Cloud Run's networking
 * guide tells to route that way, and IPv6 unique local addresses. */
bool vp_diag_private_address(const char *addr)
{
	static const char *const nets[] = {
		"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
		"199.36.153.4/30", "199.36.153.8/30", "fc00::/7",
	};
	struct vp_cidr a, n;

	if (vp_fw_range_parse(addr, &a) < 0)
		return false;
	for (size_t i = 0; i < sizeof(nets) / sizeof(nets[0]); i++)
		if (vp_fw_range_parse(nets[i], &n) == 0 && vp_fw_range_contains(&n, &a))
			return true;
	return false;
}

static void derive_address(struct vp_diag_ctx *c)
{
	const struct vp_diag_input *in = c->in;

	if (in->url->host_type != VP_HOST_NAME) {
		snprintf(c->addr, sizeof(c->addr), "%s", in->url->host);
		return;
	}
	for (size_t i = 0; in->results && i < in->results->n; i++) {
		if (in->results->v[i].address[0]) {
			snprintf(c->addr, sizeof(c->addr), "%s", in->results->v[i].address);
			c->addr_from_probe = true;
			return;
		}
	}
}

/* Which export describes the target: the instance whose interface has its
 * address, or the Cloud SQL instance with it. A name that was not probed
 * has no address: the export given for it is taken to be its. */
static void derive_target(struct vp_diag_ctx *c)
{
	const struct vp_gc_instance *vm = c->in->instance;
	const struct vp_gc_sql *sql = c->in->sql;

	for (size_t i = 0; vm && i < vm->n_nics; i++) {
		if (c->addr[0] && !strcmp(vm->nics[i].ip, c->addr)) {
			c->nic = &vm->nics[i];
			c->is_vm = true;
		}
	}
	if (vm && !c->addr[0]) {
		c->nic = &vm->nics[0];
		c->is_vm = true;
	}
	for (size_t i = 0; sql && i < sql->n_ips; i++)
		if (!strcmp(sql->ips[i].ip, c->addr))
			c->is_sql = true;
	if (sql && !c->addr[0])
		c->is_sql = true;
}

/* The connector's two network tags (Serverless VPC Access "Network tags":
 * the universal vpc-connector and the unique vpc-connector-REGION-NAME), or
 * a Direct VPC egress interface's tags. */
static void derive_tags(struct vp_diag_ctx *c)
{
	const struct vp_gc_service *s = c->in->service;
	const struct vp_gc_connector *k = c->in->connector;
	const char *region = k ? k->region : (s && s->connector_region[0] ? s->connector_region :
	                                      (s ? s->region : ""));
	const char *name = k ? k->name : (s ? s->connector_name : "");

	if (name[0]) {
		c->tags[c->n_tags++] = "vpc-connector";
		if (region[0]) {
			snprintf(c->tag_region, sizeof(c->tag_region), "vpc-connector-%s-%s", region, name);
			c->tags[c->n_tags++] = c->tag_region;
		}
		return;
	}
	for (size_t i = 0; s && s->direct_vpc && i < s->n_dv_tags; i++)
		c->tags[c->n_tags++] = s->dv_tags[i];
}

int vp_diagnose(const struct vp_diag_input *in, struct vp_diag_report *out)
{
	struct vp_diag_ctx c = { .in = in, .out = out };
	int r;

	memset(out, 0, sizeof(*out));
	derive_address(&c);
	derive_target(&c);
	derive_tags(&c);
	vp_diag_connector_ready(&c);
	vp_diag_connector_attached(&c);
	vp_diag_same_region(&c);
	vp_diag_egress_setting(&c);
	r = vp_diag_firewall(&c);
	if (r < 0)
		return r;
	vp_diag_target_listening(&c);
	vp_diag_cloudsql_path(&c);
	vp_diag_logs(&c);
	vp_diag_capacity(&c);
	for (int i = 0; i < VP_DIAG_STEP_MAX && !out->cause; i++)
		if (out->steps[i].status == VP_DIAG_FAIL)
			out->cause = out->steps[i].cause;
	return 0;
}

/* A JSON string of 's' with every byte that is not valid UTF-8 as '?':
 * a cut evidence or a hostile argument must not lose the whole report. */
static json_t *jstr(const char *s)
{
	char *copy = strdup(s);
	json_t *j;

	if (!copy)
		return NULL;
	vp_utf8_clean(copy, false);
	j = json_string(copy);
	free(copy);
	return j;
}

json_t *vp_diag_json(const struct vp_diag_input *in, const struct vp_diag_report *r)
{
	json_t *steps = json_array();
	json_t *root = json_pack("{s:o,s:o,s:o}", "target", jstr(in->target), "steps", steps,
	                         "cause", r->cause ? json_string(r->cause) : json_null());

	if (!root)
		return NULL;
	for (int i = 0; i < VP_DIAG_STEP_MAX; i++) {
		const struct vp_diag_step_out *o = &r->steps[i];
		json_t *step = json_pack("{s:s,s:s,s:o,s:o}", "step", vp_diag_step_name(i),
		                         "status", vp_diag_status_name(o->status),
		                         "evidence", jstr(o->evidence),
		                         "fix", o->fix[0] ? jstr(o->fix) : json_null());

		if (!step || json_array_append_new(steps, step) < 0) {
			json_decref(root);
			return NULL;
		}
	}
	return root;
}

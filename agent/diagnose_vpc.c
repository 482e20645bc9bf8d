/* The steps about the path into the VPC: connector_ready,
 * connector_attached, same_region, egress_setting and connector_capacity. */
#include <stdio.h>
#include <string.h>

#include "agent/diagnose_int.h"

#define S_READY VP_DIAG_CONNECTOR_READY
#define S_ATTACHED VP_DIAG_CONNECTOR_ATTACHED
#define S_REGION VP_DIAG_SAME_REGION
#define S_EGRESS VP_DIAG_EGRESS_SETTING
#define S_CAPACITY VP_DIAG_CAPACITY

static bool direct_vpc_only(const struct vp_diag_ctx *c)
{
	const struct vp_gc_service *s = c->in->service;

	return s && s->direct_vpc && !s->connector[0];
}

/* "--range 10.8.0.0/28" or "--subnet NAME": how the connector was made. */
static void connector_placement(const struct vp_gc_connector *k, char *buf, size_t len)
{
	if (k->subnet[0])
		snprintf(buf, len, "--subnet %s", vp_fw_network_name(k->subnet));
	else
		snprintf(buf, len, "--network %s --range %s",
		         k->network[0] ? vp_fw_network_name(k->network) : "NETWORK",
		         k->has_range ? k->range.text : "UNUSED_28_RANGE");
}

void vp_diag_connector_ready(struct vp_diag_ctx *c)
{
	const struct vp_gc_connector *k = c->in->connector;
	char where[VP_GCLOUD_STR_MAX + 64];

	if (direct_vpc_only(c)) {
		vp_diag_set(c, S_READY, VP_DIAG_PASS, NULL,
		            "not applicable: the service uses Direct VPC egress, without a connector");
		return;
	}
	if (!k) {
		vp_diag_set(c, S_READY, VP_DIAG_UNKNOWN, NULL,
		            "no connector export (connector.json): gcloud compute networks vpc-access "
		            "connectors describe %s --region %s --format=json writes it",
		            vp_diag_connector_name(c), vp_diag_region(c));
		return;
	}
	if (!strcmp(k->state, "READY")) {
		vp_diag_set(c, S_READY, VP_DIAG_PASS, NULL, "connector '%s' in %s is READY", k->name,
		            k->region);
		return;
	}
	vp_diag_set(c, S_READY, VP_DIAG_FAIL, "connector_not_ready",
	            "connector '%s' in %s is %s, not READY: it carries no traffic", k->name, k->region,
	            k->state);
	connector_placement(k, where, sizeof(where));
	if (!strcmp(k->state, "CREATING") || !strcmp(k->state, "UPDATING"))
		vp_diag_fix(c, S_READY, "gcloud compute networks vpc-access connectors describe %s "
		            "--region %s --format='value(state)'  # wait until READY", k->name, k->region);
	else if (!strcmp(k->state, "DELETING"))
		vp_diag_fix(c, S_READY, "gcloud compute networks vpc-access connectors create %s "
		            "--region %s %s  # once the deletion is done", k->name, k->region, where);
	else
		vp_diag_fix(c, S_READY, "gcloud compute networks vpc-access connectors delete %s "
		            "--region %s --quiet && gcloud compute networks vpc-access connectors "
		            "create %s --region %s %s", k->name, k->region, k->name, k->region, where);
}

void vp_diag_connector_attached(struct vp_diag_ctx *c)
{
	const struct vp_gc_service *s = c->in->service;
	const struct vp_gc_connector *k = c->in->connector;

	if (!s) {
		vp_diag_set(c, S_ATTACHED, VP_DIAG_UNKNOWN, NULL,
		            "no service export (service.json): gcloud run services describe SERVICE "
		            "--region %s --format=json writes it", vp_diag_region(c));
		return;
	}
	if (direct_vpc_only(c)) {
		vp_diag_set(c, S_ATTACHED, VP_DIAG_PASS, NULL,
		            "service '%s' uses Direct VPC egress: network '%s', subnet '%s', %zu network tag(s)",
		            s->name, s->dv_network[0] ? vp_fw_network_name(s->dv_network) : "(its subnet's)",
		            s->dv_subnet[0] ? vp_fw_network_name(s->dv_subnet) : "(default)", s->n_dv_tags);
		return;
	}
	if (!s->connector[0]) {
		vp_diag_set(c, S_ATTACHED, VP_DIAG_FAIL, "connector_not_attached",
		            "service '%s' has no %s annotation and no Direct VPC egress: its traffic to "
		            "private addresses never enters the VPC", s->name, VP_GC_ANN_CONNECTOR);
		vp_diag_fix(c, S_ATTACHED, "gcloud run services update %s --region %s --vpc-connector %s "
		            "--vpc-egress private-ranges-only", s->name, vp_diag_region(c),
		            vp_diag_connector_name(c));
		return;
	}
	if (k && (strcmp(s->connector_name, k->name) ||
	          (s->connector_region[0] && strcmp(s->connector_region, k->region)))) {
		vp_diag_set(c, S_ATTACHED, VP_DIAG_FAIL, "connector_not_attached",
		            "service '%s' uses connector '%s', not '%s' (%s) that connector.json describes",
		            s->name, s->connector, k->name, k->region);
		vp_diag_fix(c, S_ATTACHED, "gcloud run services update %s --region %s --vpc-connector %s "
		            "  # or export '%s' instead: gcloud compute networks vpc-access connectors "
		            "describe %s --region %s --format=json > connector.json", s->name,
		            vp_diag_region(c), k->name, s->connector_name, s->connector_name,
		            vp_diag_region(c));
		return;
	}
	vp_diag_set(c, S_ATTACHED, VP_DIAG_PASS, NULL, "service '%s' sends through connector '%s'",
	            s->name, s->connector);
}

void vp_diag_same_region(struct vp_diag_ctx *c)
{
	const struct vp_gc_service *s = c->in->service;
	const struct vp_gc_connector *k = c->in->connector;
	const char *kregion = k ? k->region : (s ? s->connector_region : "");

	if (direct_vpc_only(c)) {
		vp_diag_set(c, S_REGION, VP_DIAG_PASS, NULL,
		            "not applicable: Direct VPC egress uses a subnet of the service's own region");
		return;
	}
	if (!s || !s->region[0] || !kregion[0]) {
		vp_diag_set(c, S_REGION, VP_DIAG_UNKNOWN, NULL, "%s",
		            !s ? "no service export (service.json): the service's region is unknown" :
		            !s->region[0] ? "service.json has no metadata.labels location" :
		                            "the connector's region is unknown (no connector.json, and "
		                            "the annotation names no location)");
		return;
	}
	if (!strcmp(s->region, kregion)) {
		vp_diag_set(c, S_REGION, VP_DIAG_PASS, NULL, "service '%s' and connector '%s' are both in %s",
		            s->name, vp_diag_connector_name(c), kregion);
		return;
	}
	vp_diag_set(c, S_REGION, VP_DIAG_FAIL, "region_mismatch",
	            "service '%s' runs in %s, connector '%s' is in %s: a service can use only a "
	            "connector of its own region", s->name, s->region, vp_diag_connector_name(c), kregion);
	vp_diag_fix(c, S_REGION, "gcloud compute networks vpc-access connectors create %s --region %s "
	            "--network %s --range UNUSED_28_RANGE && gcloud run services update %s --region %s "
	            "--vpc-connector %s", vp_diag_connector_name(c), s->region,
	            k && k->network[0] ? vp_fw_network_name(k->network) : vp_diag_network(c), s->name,
	            s->region, vp_diag_connector_name(c));
}

void vp_diag_egress_setting(struct vp_diag_ctx *c)
{
	const struct vp_gc_service *s = c->in->service;
	const char *setting = s && s->egress == VP_GC_EGRESS_PRIVATE ? "private-ranges-only" :
	                      "private-ranges-only (the default: no annotation)";

	if (!s) {
		vp_diag_set(c, S_EGRESS, VP_DIAG_UNKNOWN, NULL,
		            "no service export (service.json): the egress setting is unknown");
		return;
	}
	if (s->egress == VP_GC_EGRESS_ALL) {
		vp_diag_set(c, S_EGRESS, VP_DIAG_PASS, NULL,
		            "egress all-traffic: every destination goes through the VPC");
		return;
	}
	if (!c->addr[0]) {
		vp_diag_set(c, S_EGRESS, VP_DIAG_UNKNOWN, NULL,
		            "egress %s; '%s' is a name and no probe result gives its address", setting,
		            c->in->url->host);
		return;
	}
	if (vp_diag_private_address(c->addr)) {
		vp_diag_set(c, S_EGRESS, VP_DIAG_PASS, NULL,
		            "egress %s routes %s, an internal address, through the VPC", setting, c->addr);
		return;
	}
	vp_diag_set(c, S_EGRESS, VP_DIAG_FAIL, "egress_excludes_target",
	            "egress %s sends only internal addresses (RFC 1918, RFC 6598) through the VPC; "
	            "%s%s%s is not one, so its traffic leaves by the internet, not the connector",
	            setting, c->addr, c->addr_from_probe ? ", the address of " : "",
	            c->addr_from_probe ? c->in->url->host : "");
	vp_diag_fix(c, S_EGRESS, "gcloud run services update %s --region %s --vpc-egress all-traffic",
	            s->name, vp_diag_region(c));
}

/* The next size up, for a connector that runs out of throughput. */
static const char *bigger_machine(const char *type)
{
	if (!strcmp(type, "f1-micro"))
		return "e2-micro";
	return "e2-standard-4";
}

/* "machine type e2-micro, 2..3 instances": what the export says. */
static void connector_size(const struct vp_gc_connector *k, char *buf, size_t len)
{
	int o = snprintf(buf, len, "machine type %s",
	                 k->machine_type[0] ? k->machine_type : "e2-micro (the default)");

	if (o > 0 && (size_t)o < len && k->min_instances >= 0 && k->max_instances >= 0)
		o += snprintf(buf + o, len - (size_t)o, ", %lld..%lld instances", k->min_instances,
		              k->max_instances);
	if (o > 0 && (size_t)o < len && k->min_throughput >= 0 && k->max_throughput >= 0)
		snprintf(buf + o, len - (size_t)o, ", %lld..%lld Mbps", k->min_throughput,
		         k->max_throughput);
}

static bool probe_timed_out(const struct vp_diag_ctx *c)
{
	const struct vp_gc_results *r = c->in->results;

	for (size_t i = 0; r && i < r->n; i++)
		if (!strcmp(r->v[i].verdict, "timeout"))
			return true;
	return false;
}

void vp_diag_capacity(struct vp_diag_ctx *c)
{
	const struct vp_gc_connector *k = c->in->connector;
	char size[256];

	if (direct_vpc_only(c)) {
		vp_diag_set(c, S_CAPACITY, VP_DIAG_PASS, NULL,
		            "not applicable: Direct VPC egress has no connector instances");
		return;
	}
	if (!k) {
		vp_diag_set(c, S_CAPACITY, VP_DIAG_UNKNOWN, NULL,
		            "no connector export (connector.json): its size is unknown");
		return;
	}
	connector_size(k, size, sizeof(size));
	if (!c->in->results) {
		vp_diag_set(c, S_CAPACITY, VP_DIAG_UNKNOWN, NULL,
		            "connector '%s': %s; no probe result to judge saturation by", k->name, size);
		return;
	}
	for (int i = 0; i < S_CAPACITY; i++) {
		if (c->out->steps[i].status == VP_DIAG_FAIL) {
			vp_diag_set(c, S_CAPACITY, VP_DIAG_PASS, NULL, "connector '%s': %s; %s explained by "
			            "the failing step %s", k->name, size, probe_timed_out(c) ?
			            "the timeouts are" : "what failed is", vp_diag_step_name(i));
			return;
		}
	}
	if (!probe_timed_out(c) || c->out->steps[VP_DIAG_FIREWALL].status != VP_DIAG_PASS) {
		vp_diag_set(c, S_CAPACITY, VP_DIAG_PASS, NULL,
		            "connector '%s': %s; no sign of saturation (no timeout while the firewall "
		            "admits the connector)", k->name, size);
		return;
	}
	vp_diag_set(c, S_CAPACITY, VP_DIAG_FAIL, "connector_saturated",
	            "hint, not proof: the probe timed out although the firewall admits the connector; "
	            "connector '%s' (%s) may be saturated: look at its throughput and CPU in "
	            "Cloud Monitoring", k->name, size);
	vp_diag_fix(c, S_CAPACITY, "gcloud compute networks vpc-access connectors update %s --region %s "
	            "--machine-type %s --max-instances 10", k->name, k->region,
	            bigger_machine(k->machine_type));
}

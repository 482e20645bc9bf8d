/* The steps about the target itself: target_listening (the probe's verdict
 * and the listener table behind localhost_only) and cloudsql_private_path. */
#include <stdio.h>
#include <string.h>

#include "agent/diagnose_int.h"

#define S_LISTEN VP_DIAG_TARGET_LISTENING
#define S_SQL VP_DIAG_CLOUDSQL_PATH

/* The record that tells most: a loopback bind, then a refusal, then a
 * connection (the port listens), then whatever came. */
static const struct vp_gc_result *telling_record(const struct vp_gc_results *r)
{
	static const char *const order[] = {
		"localhost_only", "refused", "ok", "protocol_error", "reset", "tls_error",
	};

	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++)
		for (size_t i = 0; i < r->n; i++)
			if (!strcmp(r->v[i].verdict, order[k]))
				return &r->v[i];
	return r->n ? &r->v[0] : NULL;
}

/* "gcloud compute ssh VM --zone Z --command ..." or what to run on the host. */
static void ss_command(const struct vp_diag_ctx *c, char *buf, size_t len)
{
	const struct vp_gc_instance *vm = c->in->instance;

	if (c->is_vm)
		snprintf(buf, len, "gcloud compute ssh %s --zone %s --command \"sudo ss -ltnp 'sport = :%u'\"",
		         vm->name, vm->zone[0] ? vm->zone : "ZONE", c->in->url->port);
	else
		snprintf(buf, len, "sudo ss -ltnp 'sport = :%u'  # on the target host", c->in->url->port);
}

static const char *bind_advice(enum vp_kind kind)
{
	switch (kind) {
	case VP_KIND_POSTGRES:
		return "set listen_addresses = '*' in postgresql.conf (and a pg_hba.conf line for the "
		       "connector's range), then restart PostgreSQL";
	case VP_KIND_REDIS:
	case VP_KIND_REDISS:
		return "set bind 0.0.0.0 in redis.conf, then restart Redis";
	default:
		return "bind the service to 0.0.0.0 (or the VM's internal address), then restart it";
	}
}

void vp_diag_target_listening(struct vp_diag_ctx *c)
{
	const struct vp_gc_result *rec;
	char ss[VP_GCLOUD_STR_MAX * 2];

	if (!c->in->results) {
		vp_diag_set(c, S_LISTEN, VP_DIAG_UNKNOWN, NULL,
		            "not probed (--no-probe) and no probe results (--results) given");
		return;
	}
	rec = telling_record(c->in->results);
	if (!rec) {
		vp_diag_set(c, S_LISTEN, VP_DIAG_UNKNOWN, NULL, "%s has no record of %s",
		            c->in->results_from, c->in->target);
		return;
	}
	ss_command(c, ss, sizeof(ss));
	vp_diag_set(c, S_LISTEN, VP_DIAG_UNKNOWN, NULL, "%s: %s:%u %s (%s): %s", c->in->results_from,
	            rec->address[0] ? rec->address : c->in->url->host, rec->port, rec->verdict,
	            rec->reason, rec->detail);
	if (!strcmp(rec->verdict, "localhost_only")) {
		c->out->steps[S_LISTEN].status = VP_DIAG_FAIL;
		c->out->steps[S_LISTEN].cause = "localhost_bind";
		vp_diag_more(c, S_LISTEN, " (the listener table shows the port on loopback only)");
		vp_diag_fix(c, S_LISTEN, "%s  # then %s", ss, bind_advice(c->in->url->kind));
	} else if (!strcmp(rec->verdict, "refused")) {
		c->out->steps[S_LISTEN].status = VP_DIAG_FAIL;
		c->out->steps[S_LISTEN].cause = "not_listening";
		vp_diag_fix(c, S_LISTEN, "%s  # then start the service on port %u", ss, c->in->url->port);
	} else if (!strcmp(rec->verdict, "ok") || !strcmp(rec->verdict, "protocol_error") ||
	           !strcmp(rec->verdict, "reset") || !strcmp(rec->verdict, "tls_error")) {
		c->out->steps[S_LISTEN].status = VP_DIAG_PASS;
	} else if (!strcmp(rec->verdict, "timeout") || !strcmp(rec->verdict, "unreachable")) {
		vp_diag_more(c, S_LISTEN, "; the packets did not reach a listener, so whether one "
		             "listens is unknown");
	}
}

static const struct vp_gc_sql_ip *sql_ip(const struct vp_gc_sql *s, const char *type)
{
	for (size_t i = 0; i < s->n_ips; i++)
		if (!strcmp(s->ips[i].type, type))
			return &s->ips[i];
	return NULL;
}

static const struct vp_gc_peering *psa_peering(const struct vp_gc_peerings *p, const char *network)
{
	for (size_t i = 0; i < p->n; i++)
		if (vp_fw_same_network(p->v[i].network, network) &&
		    (!p->v[i].service[0] || strstr(p->v[i].service, "servicenetworking.googleapis.com")))
			return &p->v[i];
	return NULL;
}

static void psa_missing(struct vp_diag_ctx *c, const char *net, const char *ip)
{
	vp_diag_set(c, S_SQL, VP_DIAG_FAIL, "no_private_path",
	            "Cloud SQL '%s' has the private IP %s on network '%s', but that network has no "
	            "private services access connection (no servicenetworking peering in "
	            "peerings.json)", c->in->sql->name, ip, net);
	vp_diag_fix(c, S_SQL, "gcloud compute addresses create google-managed-services-%s --global "
	            "--purpose VPC_PEERING --prefix-length 16 --network %s && gcloud services "
	            "vpc-peerings connect --service servicenetworking.googleapis.com --ranges "
	            "google-managed-services-%s --network %s", net, net, net, net);
}

/* The private IP and network are known: is the network the connector's,
 * and is it peered with the service producer? */
static void sql_network(struct vp_diag_ctx *c, const struct vp_gc_sql_ip *priv)
{
	const struct vp_gc_sql *s = c->in->sql;
	const struct vp_gc_connector *k = c->in->connector;
	const char *net = vp_fw_network_name(s->private_network);
	const struct vp_gc_peering *pe;

	if (k && k->network[0] && !vp_fw_same_network(k->network, s->private_network)) {
		vp_diag_set(c, S_SQL, VP_DIAG_FAIL, "no_private_path",
		            "connector '%s' is on network '%s', Cloud SQL '%s' has its private IP %s on "
		            "network '%s'", k->name, vp_fw_network_name(k->network), s->name, priv->ip, net);
		vp_diag_fix(c, S_SQL, "gcloud compute networks vpc-access connectors create %s-%.20s "
		            "--region %s --network %s --range UNUSED_28_RANGE", k->name, net, k->region, net);
		return;
	}
	if (!c->in->peerings) {
		vp_diag_set(c, S_SQL, VP_DIAG_UNKNOWN, NULL, "Cloud SQL '%s' has the private IP %s on "
		            "network '%s'; without peerings.json its private services access connection "
		            "is unchecked", s->name, priv->ip, net);
		return;
	}
	pe = psa_peering(c->in->peerings, s->private_network);
	if (!pe) {
		psa_missing(c, net, priv->ip);
		return;
	}
	vp_diag_set(c, S_SQL, VP_DIAG_PASS, NULL, "Cloud SQL '%s' has the private IP %s on network "
	            "'%s', peered through private services access (peering '%s'%s%s)", s->name,
	            priv->ip, net, pe->peering[0] ? pe->peering : "unnamed",
	            pe->n_ranges ? ", range " : "", pe->n_ranges ? pe->ranges[0] : "");
}

void vp_diag_cloudsql_path(struct vp_diag_ctx *c)
{
	const struct vp_gc_sql *s = c->in->sql;
	const struct vp_gc_sql_ip *priv, *pub;

	if (!s) {
		vp_diag_set(c, S_SQL, c->is_vm ? VP_DIAG_PASS : VP_DIAG_UNKNOWN, NULL, "%s",
		            c->is_vm ? "not applicable: the target is a Compute Engine VM" :
		                       "no Cloud SQL export (sql-instance.json)");
		return;
	}
	priv = sql_ip(s, "PRIVATE");
	pub = sql_ip(s, "PRIMARY");
	if (!priv) {
		vp_diag_set(c, S_SQL, VP_DIAG_FAIL, "no_private_path",
		            "Cloud SQL '%s' has no PRIVATE address%s%s: through a connector only a "
		            "private IP is reachable", s->name, pub ? ", only the public " : "",
		            pub ? pub->ip : "");
		vp_diag_fix(c, S_SQL, "gcloud sql instances patch %s --network %s", s->name,
		            vp_diag_network(c));
		return;
	}
	if (c->addr[0] && pub && !strcmp(c->addr, pub->ip)) {
		vp_diag_set(c, S_SQL, VP_DIAG_FAIL, "no_private_path",
		            "%s is the public address of Cloud SQL '%s'; through the connector use its "
		            "private IP %s", c->addr, s->name, priv->ip);
		vp_diag_fix(c, S_SQL, "gcloud sql instances describe %s "
		            "--format='value(ipAddresses)'  # and connect to %s", s->name, priv->ip);
		return;
	}
	if (!s->private_network[0]) {
		vp_diag_set(c, S_SQL, VP_DIAG_UNKNOWN, NULL, "Cloud SQL '%s' has the private IP %s, but "
		            "sql-instance.json names no settings.ipConfiguration.privateNetwork", s->name,
		            priv->ip);
		return;
	}
	sql_network(c, priv);
}

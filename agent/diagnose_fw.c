/* The steps about the firewall: firewall_admits_connector (the evaluator of
 * agent/firewall.h over the exports) and logs_show_path (Flow Logs and
 * Firewall Rules Logging entries). */
#include <stdio.h>
#include <string.h>

#include "agent/diagnose_int.h"

#define S_FW VP_DIAG_FIREWALL
#define S_LOGS VP_DIAG_LOGS

static const struct vp_cidr *connector_range(const struct vp_diag_ctx *c)
{
	const struct vp_gc_connector *k = c->in->connector;

	return k && k->has_range ? &k->range : NULL;
}

/* "connector 'C' (10.8.0.0/28, tags vpc-connector, vpc-connector-R-C)". */
static void source_text(const struct vp_diag_ctx *c, char *buf, size_t len)
{
	const struct vp_cidr *range = connector_range(c);
	int o;

	if (c->in->connector && !c->in->connector->name[0] && range)
		/* The status page's question, from a target's connector_range
		 * without connector.json (status_fw_load.c): only the range. */
		o = snprintf(buf, len, "the range %s (from the agent's config", range->text);
	else if (c->in->connector || (c->in->service && c->in->service->connector[0]))
		o = snprintf(buf, len, "connector '%s' (%s", vp_diag_connector_name(c),
		             range ? range->text : "range unknown");
	else
		o = snprintf(buf, len, "the service's Direct VPC egress (subnet range unknown");
	for (size_t i = 0; i < c->n_tags && o > 0 && (size_t)o < len; i++)
		o += snprintf(buf + o, len - (size_t)o, "%s%s", i ? ", " : ", tags ", c->tags[i]);
	if (o > 0 && (size_t)o < len)
		snprintf(buf + o, len - (size_t)o, ")");
}

void vp_diag_allow_rule_fix(struct vp_diag_ctx *c, enum vp_diag_step s,
                            const struct vp_fw_rule *deny)
{
	const struct vp_cidr *range = connector_range(c);
	const struct vp_gc_instance *vm = c->in->instance;
	char src[VP_GCLOUD_STR_MAX], dst[VP_GCLOUD_STR_MAX + 32] = "", pre[VP_GCLOUD_STR_MAX] = "";
	unsigned prio = VP_FW_PRIORITY_DEFAULT;

	if (range)
		snprintf(src, sizeof(src), "--source-ranges %s", range->text);
	else if (c->n_tags)
		snprintf(src, sizeof(src), "--source-tags %s", c->tags[c->n_tags - 1]);
	else
		snprintf(src, sizeof(src), "--source-ranges CONNECTOR_RANGE");
	if (c->is_vm && vm->n_tags)
		snprintf(dst, sizeof(dst), " --target-tags %s", vm->tags[0]);
	else if (c->is_vm && vm->n_sas)
		snprintf(dst, sizeof(dst), " --target-service-accounts %s", vm->sas[0]);
	if (deny && deny->priority > 0) {
		prio = deny->priority - 1u;
	} else if (deny) {
		/* Nothing outranks priority 0; a deny wins the tie. */
		prio = 0;
		snprintf(pre, sizeof(pre), "gcloud compute firewall-rules update %s --priority 1 && ",
		         deny->name);
	}
	const char *name = vp_diag_connector_name(c);

	vp_diag_fix(c, s, "%sgcloud compute firewall-rules create allow-%.40s-tcp-%u --network %s "
	            "--direction INGRESS --action allow --rules tcp:%u %s%s --priority %u", pre,
	            name[0] ? name : "connector", c->in->url->port, vp_diag_network(c), c->in->url->port,
	            src, dst, prio);
}

/* Appends "'a' (...); 'b' (...)" for hits[from..n), at most VP_DIAG_RULES_SHOWN. */
static void list_rules(struct vp_diag_ctx *c, const char *lead, const struct vp_fw_hit *hits,
                       size_t from, size_t n)
{
	char one[512];

	if (from >= n)
		return;
	vp_diag_more(c, S_FW, "%s", lead);
	for (size_t i = from; i < n && i - from < VP_DIAG_RULES_SHOWN; i++) {
		vp_fw_rule_describe(&c->in->rules->rules[hits[i].rule], hits[i].how, one, sizeof(one));
		vp_diag_more(c, S_FW, "%s%s", i > from ? "; " : "", one);
	}
	if (n - from > VP_DIAG_RULES_SHOWN)
		vp_diag_more(c, S_FW, "; and %zu more", n - from - VP_DIAG_RULES_SHOWN);
	vp_diag_more(c, S_FW, ".");
}

static void firewall_verdict(struct vp_diag_ctx *c, const struct vp_fw_verdict *v, const char *who)
{
	const struct vp_fw_rule *first = v->n_hits ? &c->in->rules->rules[v->hits[0].rule] : NULL;
	char one[512];

	if (v->allowed) {
		vp_fw_rule_describe(first, v->hits[0].how, one, sizeof(one));
		vp_diag_set(c, S_FW, VP_DIAG_PASS, NULL, "rule %s admits %s.", one, who);
		list_rules(c, " Also matching, at a lower priority: ", v->hits, 1, v->n_hits);
	} else if (!connector_range(c) && v->n_maybe) {
		vp_diag_set(c, S_FW, VP_DIAG_UNKNOWN, NULL, "no rule admits %s by its tags, and the "
		            "connector's range is unknown, so rules by source range cannot be checked.", who);
		list_rules(c, " Unchecked: ", v->maybe, 0, v->n_maybe);
		return;
	} else if (!v->implied) {
		vp_fw_rule_describe(first, v->hits[0].how, one, sizeof(one));
		vp_diag_set(c, S_FW, VP_DIAG_FAIL, "firewall_denies", "rule %s denies %s.", one, who);
		list_rules(c, " It outranks: ", v->hits, 1, v->n_hits);
		vp_diag_allow_rule_fix(c, S_FW, first);
	} else {
		vp_diag_set(c, S_FW, VP_DIAG_FAIL, "firewall_denies",
		            "no ingress rule admits %s: the implied deny-ingress rule (priority 65535) "
		            "drops it silently, which a prober sees as a timeout.", who);
		list_rules(c, " An allow at priority 65535 loses the tie to it: ", v->hits, 0, v->n_hits);
		vp_diag_allow_rule_fix(c, S_FW, NULL);
	}
	list_rules(c, " Matching only part of the connector's range (per address, some connector "
	           "instances would pass, others not): ", v->maybe, 0, v->n_maybe);
	if (v->n_disabled)
		vp_diag_more(c, S_FW, " %zu disabled rule(s) ignored.", v->n_disabled);
}

/* The fix for a deny rule of a firewall policy: a rule just before it.
 * In a hierarchical policy it hands the connector's traffic to the
 * project's own rules (goto_next), as organisations delegate; in a network
 * policy it allows. Priorities are unique in a policy: a deny at 0 moves. */
static void policy_fix(struct vp_diag_ctx *c, struct vp_fw_pol_ref at)
{
	const struct vp_fw_policy *p = &c->in->policies->v[at.policy];
	const struct vp_fw_pol_rule *r = &p->rules[at.rule];
	const struct vp_cidr *range = connector_range(c);
	const char *src = range ? range->text : "CONNECTOR_RANGE";
	char scope[VP_GCLOUD_STR_MAX + 64], pre[VP_GCLOUD_STR_MAX + 160] = "";
	const char *cmd = p->type == VP_FW_POL_HIERARCHY ? "gcloud compute firewall-policies rules" :
	                  "gcloud compute network-firewall-policies rules";
	unsigned prio = r->priority ? r->priority - 1u : 0;

	if (p->type == VP_FW_POL_SYSTEM) {
		vp_diag_fix(c, S_FW, "gcloud compute network-firewall-policies get-effective-firewalls "
		            "--network=%s --region=%s --format=json  # a Google-managed system policy: "
		            "the service that made it must change it", vp_diag_network(c),
		            vp_diag_region(c));
		return;
	}
	if (p->type == VP_FW_POL_NETWORK)
		snprintf(scope, sizeof(scope), "--firewall-policy=%s --global-firewall-policy", p->name);
	else if (p->type == VP_FW_POL_NETWORK_REGIONAL)
		snprintf(scope, sizeof(scope), "--firewall-policy=%s --firewall-policy-region=%s",
		         p->name, vp_diag_region(c));
	else
		snprintf(scope, sizeof(scope), "--firewall-policy=%s", p->name);
	if (r->priority == 0)
		snprintf(pre, sizeof(pre), "%s update 0 %s --new-priority=1 && ", cmd, scope);
	vp_diag_fix(c, S_FW, "%s%s create %u %s --direction=INGRESS --action=%s --src-ip-ranges=%s "
	            "--layer4-configs=tcp:%u", pre, cmd, prio, scope,
	            p->type == VP_FW_POL_HIERARCHY ? "goto_next" : "allow", src, c->in->url->port);
}

/* Where in the order a policy decided, for the evidence. */
static const char *policy_place(const struct vp_fw_chain *ch, const struct vp_fw_policy *p)
{
	if (p->type == VP_FW_POL_HIERARCHY || p->type == VP_FW_POL_SYSTEM)
		return ", before any VPC firewall rule is consulted";
	if (ch->policies_first)
		return ", before the VPC firewall rules (networkFirewallPolicyEnforcementOrder "
		       "BEFORE_CLASSIC_FIREWALL)";
	return ", after no VPC firewall rule decided";
}

static void chain_unknown(struct vp_diag_ctx *c, const struct vp_fw_chain *ch, const char *who)
{
	char one[512];

	if (ch->unknown_order) {
		vp_diag_set(c, S_FW, VP_DIAG_UNKNOWN, NULL, "the network firewall policy and the VPC "
		            "firewall rules disagree about %s, and which comes first is unknown: "
		            "network.json (gcloud compute networks describe %s --format=json) gives "
		            "networkFirewallPolicyEnforcementOrder.", who, vp_diag_network(c));
		return;
	}
	vp_fw_pol_rule_describe(c->in->policies, ch->at, one, sizeof(one));
	vp_diag_set(c, S_FW, VP_DIAG_UNKNOWN, NULL, "rule %s may match %s, and comes first, but "
	            "this cannot be judged from the exports: it matches only part of the connector's "
	            "range, or by secure tags, address groups, FQDNs, geolocations or threat lists, "
	            "or hands the traffic to a security profile's inspection.", one, who);
}

/* The hierarchical and network policies with the VPC rules. */
static int evaluate_chain(struct vp_diag_ctx *c, const struct vp_fw_source *s,
                          const struct vp_fw_target *t, const char *who)
{
	const struct vp_fw_policies *pol = c->in->policies;
	struct vp_fw_chain ch;
	char one[512];
	int r = vp_fw_evaluate_chain(pol, c->in->fw_order, c->in->rules, s, t, VP_FW_PROTO_TCP,
	                             c->in->url->port, &ch);

	if (r < 0)
		return r;
	if (ch.by == VP_FW_DECIDED_VPC || ch.by == VP_FW_DECIDED_IMPLIED) {
		firewall_verdict(c, &ch.vpc, who);
		if (ch.by == VP_FW_DECIDED_IMPLIED)
			vp_diag_more(c, S_FW, " No rule of the %zu firewall policies decided either.",
			             pol->n);
	} else if (ch.by == VP_FW_DECIDED_POLICY) {
		vp_fw_pol_rule_describe(pol, ch.at, one, sizeof(one));
		if (ch.allowed) {
			vp_diag_set(c, S_FW, VP_DIAG_PASS, NULL, "rule %s admits %s%s.", one, who,
			            policy_place(&ch, &pol->v[ch.at.policy]));
		} else {
			vp_diag_set(c, S_FW, VP_DIAG_FAIL, "firewall_denies", "rule %s denies %s%s.", one,
			            who, policy_place(&ch, &pol->v[ch.at.policy]));
			policy_fix(c, ch.at);
		}
	} else {
		chain_unknown(c, &ch, who);
	}
	for (size_t i = 0; i < ch.n_passed; i++) {
		vp_fw_pol_rule_describe(pol, ch.passed[i], one, sizeof(one));
		vp_diag_more(c, S_FW, "%s%s", i ? "; " : " Handed on (goto_next) by rule ", one);
	}
	if (ch.n_passed)
		vp_diag_more(c, S_FW, ".");
	vp_fw_chain_done(&ch);
	return 0;
}

/* The ingress of the target VM, evaluated for the connector's traffic. */
static int evaluate(struct vp_diag_ctx *c)
{
	const struct vp_gc_instance *vm = c->in->instance;
	const char *ttags[VP_GCLOUD_TAGS_MAX], *tsas[VP_GCLOUD_SAS_MAX];
	struct vp_fw_source s = { .range = connector_range(c), .tags = c->tags, .n_tags = c->n_tags };
	struct vp_fw_target t = { .network = c->nic->network, .tags = ttags, .n_tags = vm->n_tags,
	                          .sas = tsas, .n_sas = vm->n_sas };
	char src[1024], who[1600];
	struct vp_fw_verdict v;
	int r;

	for (size_t i = 0; i < vm->n_tags; i++)
		ttags[i] = vm->tags[i];
	for (size_t i = 0; i < vm->n_sas; i++)
		tsas[i] = vm->sas[i];

	source_text(c, src, sizeof(src));
	snprintf(who, sizeof(who), "%s to tcp:%u on instance '%s' (network %s)", src,
	         c->in->url->port, vm->name, vp_fw_network_name(c->nic->network));
	if (c->in->policies && c->in->policies->n) {
		r = evaluate_chain(c, &s, &t, who);
		if (r < 0)
			return r;
	} else {
		r = vp_fw_evaluate(c->in->rules, &s, &t, VP_FW_PROTO_TCP, c->in->url->port, &v);
		if (r < 0)
			return r;
		firewall_verdict(c, &v, who);
		vp_fw_verdict_done(&v);
	}
	if (c->in->connector && c->in->connector->network[0] &&
	    !vp_fw_same_network(c->in->connector->network, c->nic->network))
		vp_diag_more(c, S_FW, " Note: the connector is on network '%s', the instance on '%s': "
		             "only a peering or Shared VPC joins them.",
		             vp_fw_network_name(c->in->connector->network),
		             vp_fw_network_name(c->nic->network));
	return 0;
}

int vp_diag_firewall(struct vp_diag_ctx *c)
{
	const struct vp_diag_input *in = c->in;

	if (c->is_sql && !c->is_vm) {
		vp_diag_set(c, S_FW, VP_DIAG_PASS, NULL,
		            "not applicable: the target is Cloud SQL instance '%s', whose private IP lives "
		            "in the service producer's network, where this VPC's firewall rules do not "
		            "apply", in->sql->name);
	} else if (!in->rules) {
		vp_diag_set(c, S_FW, VP_DIAG_UNKNOWN, NULL, "no firewall export (firewall-rules.json or "
		            "effective-firewalls.json): gcloud compute firewall-rules list --format=json "
		            "writes the first");
	} else if (!in->instance) {
		vp_diag_set(c, S_FW, VP_DIAG_UNKNOWN, NULL, "no instance export (instance.json): which VM "
		            "receives %s, with which tags and service accounts, is unknown",
		            c->addr[0] ? c->addr : in->url->host);
	} else if (!c->is_vm) {
		vp_diag_set(c, S_FW, VP_DIAG_UNKNOWN, NULL, "instance.json describes '%s' (%s), which "
		            "does not have the address %s", in->instance->name, in->instance->nics[0].ip,
		            c->addr);
	} else if (!connector_range(c) && c->n_tags == 0) {
		vp_diag_set(c, S_FW, VP_DIAG_UNKNOWN, NULL, "the source is unknown: no connector export "
		            "(connector.json) gives the connector's range, and no tags are known");
	} else {
		return evaluate(c);
	}
	return 0;
}

struct log_counts {
	size_t src, dest, allowed, denied, matched;
	const struct vp_gc_log *deny;     /* borrowed: the latest DENIED entry */
	const struct vp_gc_log *allow;    /* borrowed: an ALLOWED entry */
};

static void count_logs(const struct vp_diag_ctx *c, const struct vp_cidr *range,
                       struct log_counts *n)
{
	const struct vp_gc_logs *l = c->in->logs;

	for (size_t i = 0; i < l->n; i++) {
		const struct vp_gc_log *e = &l->v[i];
		struct vp_cidr src;

		if (vp_fw_range_parse(e->src_ip, &src) < 0 || !vp_fw_range_contains(range, &src) ||
		    strcmp(e->dest_ip, c->addr) || e->dest_port != c->in->url->port)
			continue;
		n->matched++;
		if (e->kind == VP_GC_LOG_FLOW) {
			n->src += !strcmp(e->reporter, "SRC");
			n->dest += !strcmp(e->reporter, "DEST");
		} else if (!strcmp(e->disposition, "DENIED")) {
			n->denied++;
			if (!n->deny || strcmp(e->timestamp, n->deny->timestamp) > 0)
				n->deny = e;
		} else if (!strcmp(e->disposition, "ALLOWED")) {
			n->allowed++;
			n->allow = e;
		}
	}
}

/* A deny rule of the logs, found in firewall-rules.json when given. */
static const struct vp_fw_rule *rule_named(const struct vp_diag_ctx *c, const char *name)
{
	for (size_t i = 0; c->in->rules && i < c->in->rules->n_rules; i++)
		if (!strcmp(c->in->rules->rules[i].name, name))
			return &c->in->rules->rules[i];
	return NULL;
}

static void logs_verdict(struct vp_diag_ctx *c, const struct log_counts *n, const char *what,
                         size_t ignored)
{
	if (n->denied) {
		vp_diag_set(c, S_LOGS, VP_DIAG_FAIL, "firewall_denies",
		            "Firewall Rules Logging: %zu connection(s) of %s DENIED, by rule '%s' "
		            "(latest %s)", n->denied, what, n->deny->rule[0] ? n->deny->rule : "(unnamed)",
		            n->deny->timestamp[0] ? n->deny->timestamp : "time unknown");
		vp_diag_allow_rule_fix(c, S_LOGS, rule_named(c, n->deny->rule));
	} else if (n->dest || n->allowed) {
		vp_diag_set(c, S_LOGS, VP_DIAG_PASS, NULL, "%s arrived: %zu flow(s) reported by the "
		            "target (DEST), %zu connection(s) ALLOWED%s%s", what, n->dest, n->allowed,
		            n->allow && n->allow->rule[0] ? " by rule " : "",
		            n->allow && n->allow->rule[0] ? n->allow->rule : "");
	} else if (n->src) {
		vp_diag_set(c, S_LOGS, VP_DIAG_UNKNOWN, NULL, "%zu flow(s) of %s reported by the sender "
		            "(SRC) only, none by the target (DEST): dropped on the way, or flow logs are "
		            "off on the target's subnet", n->src, what);
	} else {
		vp_diag_set(c, S_LOGS, VP_DIAG_UNKNOWN, NULL, "no flow or firewall log entry of %s", what);
	}
	vp_diag_more(c, S_LOGS, " (%zu other entries ignored%s)", ignored,
	             c->in->logs->n_unread ? "; the file has more entries than were read" : "");
}

void vp_diag_logs(struct vp_diag_ctx *c)
{
	const struct vp_cidr *range = connector_range(c);
	struct log_counts n = { 0 };
	char what[VP_HOST_MAX + 128];

	if (!c->in->logs) {
		vp_diag_set(c, S_LOGS, VP_DIAG_UNKNOWN, NULL, "no log export (logs.json): see README "
		            "(diagnose) for the gcloud logging read command");
		return;
	}
	if (!range || !c->addr[0]) {
		vp_diag_set(c, S_LOGS, VP_DIAG_UNKNOWN, NULL, "%s, so the connector's entries cannot "
		            "be told apart", !range ? "the connector's range is unknown" :
		            "the target's address is unknown");
		return;
	}
	count_logs(c, range, &n);
	snprintf(what, sizeof(what), "%s to %s:%u", range->text, c->addr, c->in->url->port);
	logs_verdict(c, &n, what, c->in->logs->n - n.matched + c->in->logs->n_other);
}

/* Hierarchical and network firewall policies in front of (or behind) the
 * VPC firewall rules: see firewall.h for the evaluation order and its
 * source. Pure: no I/O, no clock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "agent/firewall.h"

enum match {
	M_NO,
	M_YES,
	M_MAYBE,       /* part of the connector's range, or by what is not modelled */
};

static bool strs_has(const struct vp_fw_strs *list, const char *const *want, size_t n)
{
	for (size_t i = 0; i < list->n; i++)
		for (size_t j = 0; j < n; j++)
			if (!strcmp(list->v[i], want[j]))
				return true;
	return false;
}

static enum match target_match(const struct vp_fw_pol_rule *r, const struct vp_fw_target *dst)
{
	bool net = r->target_networks.n == 0;

	for (size_t i = 0; i < r->target_networks.n && !net; i++)
		net = vp_fw_same_network(r->target_networks.v[i], dst->network);
	if (!net)
		return M_NO;
	if (r->m.target_sas.n && !strs_has(&r->m.target_sas, dst->sas, dst->n_sas))
		return M_NO;
	/* Secure tags bound to the instance are not in any export read here. */
	return r->opaque_target ? M_MAYBE : M_YES;
}

static enum match source_match(const struct vp_fw_pol_rule *r, const struct vp_fw_source *src)
{
	enum match m = M_NO;

	/* A rule with no source at all (gcloud refuses to make one for
	 * ingress) is read as 0.0.0.0/0, like a VPC rule. */
	if (r->m.n_source_ranges == 0 && !r->opaque_source)
		return M_YES;
	for (size_t i = 0; i < r->m.n_source_ranges; i++) {
		const struct vp_cidr *c = &r->m.source_ranges[i];

		if (!src->range && c->family == AF_INET && c->prefix == 0)
			return M_YES;
		if (!src->range)
			m = M_MAYBE;
		else if (vp_fw_range_contains(c, src->range))
			return M_YES;
		else if (vp_fw_range_overlaps(c, src->range))
			m = M_MAYBE;
	}
	/* The kinds of source are OR'ed: what cannot be judged may match. */
	return r->opaque_source ? M_MAYBE : m;
}

static enum match rule_match(const struct vp_fw_pol_rule *r, const struct vp_fw_source *src,
                             const struct vp_fw_target *dst, int proto, uint16_t port)
{
	enum match t, s;

	if (r->m.disabled || r->m.direction != VP_FW_INGRESS ||
	    !vp_fw_proto_matches(&r->m, proto, port))
		return M_NO;
	t = target_match(r, dst);
	s = t == M_NO ? M_NO : source_match(r, src);
	if (s == M_NO)
		return M_NO;
	return t == M_YES && s == M_YES ? M_YES : M_MAYBE;
}

enum outcome {
	O_NEXT,        /* no decision here: the next level */
	O_ALLOW,
	O_DENY,
	O_UNKNOWN,
};

/* One policy: its rules by priority (the reader sorted them); the first
 * that matches acts. */
static enum outcome eval_policy(const struct vp_fw_policies *pol, size_t pi,
                                const struct vp_fw_source *src, const struct vp_fw_target *dst,
                                int proto, uint16_t port, struct vp_fw_chain *c)
{
	const struct vp_fw_policy *p = &pol->v[pi];

	for (size_t i = 0; i < p->n_rules; i++) {
		enum match m = rule_match(&p->rules[i], src, dst, proto, port);

		if (m == M_NO)
			continue;
		c->at = (struct vp_fw_pol_ref){ pi, i };
		if (m == M_MAYBE || p->rules[i].action == VP_FW_POL_INSPECT)
			return O_UNKNOWN;
		if (p->rules[i].action == VP_FW_POL_ALLOW)
			return O_ALLOW;
		if (p->rules[i].action == VP_FW_POL_DENY)
			return O_DENY;
		if (c->n_passed < VP_FW_PASSED_MAX)
			c->passed[c->n_passed++] = c->at;
		return O_NEXT;
	}
	return O_NEXT;
}

/* The policies of 'type', in the API's order. */
static enum outcome eval_type(const struct vp_fw_policies *pol, enum vp_fw_pol_type type,
                              const struct vp_fw_source *src, const struct vp_fw_target *dst,
                              int proto, uint16_t port, struct vp_fw_chain *c)
{
	for (size_t i = 0; i < pol->n; i++) {
		enum outcome o;

		if (pol->v[i].type != type)
			continue;
		o = eval_policy(pol, i, src, dst, proto, port, c);
		if (o != O_NEXT)
			return o;
	}
	return O_NEXT;
}

static int eval_vpc(const struct vp_fw_ruleset *rs, const struct vp_fw_source *src,
                    const struct vp_fw_target *dst, int proto, uint16_t port,
                    struct vp_fw_chain *c, enum outcome *o)
{
	int r = vp_fw_evaluate(rs, src, dst, proto, port, &c->vpc);

	if (r < 0)
		return r;
	c->vpc_consulted = true;
	*o = c->vpc.implied ? O_NEXT : c->vpc.allowed ? O_ALLOW : O_DENY;
	return 0;
}

static void set_outcome(struct vp_fw_chain *c, enum outcome o, enum vp_fw_decider policy_or_vpc)
{
	c->allowed = o == O_ALLOW;
	if (o == O_UNKNOWN)
		c->by = VP_FW_DECIDED_UNKNOWN;
	else if (o == O_NEXT)
		c->by = VP_FW_DECIDED_IMPLIED;
	else
		c->by = policy_or_vpc;
}

static int eval_order(const struct vp_fw_policies *pol, bool policies_first,
                      const struct vp_fw_ruleset *rs, const struct vp_fw_source *src,
                      const struct vp_fw_target *dst, int proto, uint16_t port,
                      struct vp_fw_chain *c)
{
	static const enum vp_fw_pol_type network_types[] = {
		VP_FW_POL_NETWORK, VP_FW_POL_NETWORK_REGIONAL,
	};
	enum outcome o = eval_type(pol, VP_FW_POL_HIERARCHY, src, dst, proto, port, c);
	int r;

	c->policies_first = policies_first;
	if (o == O_NEXT)
		o = eval_type(pol, VP_FW_POL_SYSTEM, src, dst, proto, port, c);
	if (o == O_NEXT && !policies_first) {
		r = eval_vpc(rs, src, dst, proto, port, c, &o);
		if (r < 0)
			return r;
		if (o != O_NEXT) {
			set_outcome(c, o, VP_FW_DECIDED_VPC);
			return 0;
		}
	}
	for (size_t i = 0; i < 2 && o == O_NEXT; i++)
		o = eval_type(pol, network_types[i], src, dst, proto, port, c);
	if (o == O_NEXT && policies_first) {
		r = eval_vpc(rs, src, dst, proto, port, c, &o);
		if (r < 0)
			return r;
		if (o != O_NEXT) {
			set_outcome(c, o, VP_FW_DECIDED_VPC);
			return 0;
		}
	}
	set_outcome(c, o, VP_FW_DECIDED_POLICY);
	return 0;
}

static bool has_network_policy(const struct vp_fw_policies *pol)
{
	for (size_t i = 0; i < pol->n; i++)
		if (pol->v[i].type == VP_FW_POL_NETWORK || pol->v[i].type == VP_FW_POL_NETWORK_REGIONAL)
			return true;
	return false;
}

int vp_fw_evaluate_chain(const struct vp_fw_policies *pol, enum vp_fw_order order,
                         const struct vp_fw_ruleset *rs, const struct vp_fw_source *src,
                         const struct vp_fw_target *dst, int proto, uint16_t port,
                         struct vp_fw_chain *out)
{
	struct vp_fw_chain a = { 0 }, b = { 0 };
	int r;

	r = eval_order(pol, order == VP_FW_ORDER_BEFORE_CLASSIC, rs, src, dst, proto, port, &a);
	/* Without network policies the order changes nothing. */
	if (r < 0 || order != VP_FW_ORDER_UNKNOWN || !has_network_policy(pol))
		goto out;
	r = eval_order(pol, true, rs, src, dst, proto, port, &b);
	if (r < 0)
		goto out;
	if (a.by == VP_FW_DECIDED_UNKNOWN || b.by == VP_FW_DECIDED_UNKNOWN ||
	    a.allowed != b.allowed) {
		if (a.by != VP_FW_DECIDED_UNKNOWN && b.by != VP_FW_DECIDED_UNKNOWN)
			a.unknown_order = true;
		else if (a.by != VP_FW_DECIDED_UNKNOWN)
			a.at = b.at;  /* the rule that could not be judged is b's */
		a.by = VP_FW_DECIDED_UNKNOWN;
		a.allowed = false;
	}
out:
	vp_fw_chain_done(&b);
	if (r < 0) {
		vp_fw_chain_done(&a);
		return r;
	}
	*out = a;
	return 0;
}

void vp_fw_chain_done(struct vp_fw_chain *c)
{
	vp_fw_verdict_done(&c->vpc);
	*c = (struct vp_fw_chain){ 0 };
}

const char *vp_fw_pol_type_name(enum vp_fw_pol_type t)
{
	switch (t) {
	case VP_FW_POL_HIERARCHY: return "hierarchical";
	case VP_FW_POL_SYSTEM: return "system";
	case VP_FW_POL_NETWORK: return "network";
	case VP_FW_POL_NETWORK_REGIONAL: return "regional network";
	}
	return "unknown";
}

void vp_fw_pol_rule_describe(const struct vp_fw_policies *pol, struct vp_fw_pol_ref at,
                             char *buf, size_t len)
{
	static const char *const actions[] = {
		[VP_FW_POL_ALLOW] = "allow", [VP_FW_POL_DENY] = "deny",
		[VP_FW_POL_GOTO_NEXT] = "goto_next", [VP_FW_POL_INSPECT] = "apply_security_profile_group",
	};
	const struct vp_fw_policy *p = &pol->v[at.policy];
	const struct vp_fw_pol_rule *r = &p->rules[at.rule];
	const char *proto = r->m.n_protos ? vp_fw_proto_name(r->m.protos[0].proto) : NULL;
	char ports[32] = "";

	if (len == 0)
		return;
	if (r->m.n_protos && r->m.protos[0].n_ports) {
		const struct vp_fw_ports *pp = &r->m.protos[0].ports[0];
		const char *more = r->m.protos[0].n_ports > 1 ? ",..." : "";

		if (pp->lo == pp->hi)
			snprintf(ports, sizeof(ports), ":%u%s", pp->lo, more);
		else
			snprintf(ports, sizeof(ports), ":%u-%u%s", pp->lo, pp->hi, more);
	}
	/* A line cut short is still evidence. */
	snprintf(buf, len, "%s%s%s (priority %u, %s %s%s%s, source %s%s) of %s policy '%s'",
	             r->unnamed ? "without a name" : "'", r->unnamed ? "" : r->m.name,
	             r->unnamed ? "" : "'", r->priority, actions[r->action], proto ? proto : "proto",
	             ports,
	             r->m.n_protos > 1 ? " and more" : "",
	             r->m.n_source_ranges ? r->m.source_ranges[0].text :
	             r->opaque_source ? "by secure tags, address groups or the like" : "0.0.0.0/0",
	             r->m.n_source_ranges > 1 ? ",..." : "", vp_fw_pol_type_name(p->type),
	             p->short_name ? p->short_name : p->name);
}

void vp_fw_policies_done(struct vp_fw_policies *p)
{
	for (size_t i = 0; i < p->n; i++) {
		struct vp_fw_policy *v = &p->v[i];

		for (size_t j = 0; j < v->n_rules; j++) {
			struct vp_fw_pol_rule *r = &v->rules[j];

			vp_fw_rule_done(&r->m);
			for (size_t k = 0; k < r->target_networks.n; k++)
				free(r->target_networks.v[k]);
			free(r->target_networks.v);
		}
		free(v->rules);
		free(v->name);
		free(v->short_name);
	}
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

/* The reader of `gcloud compute firewall-rules list --format=json`: an array
 * of Compute API Firewall resources. See gcloud.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/gcloud.h"
#include "agent/gcloud_json.h"

/* sourceRanges (srcIpRanges of a policy rule, 'key') into r->source_ranges. */
static int read_ranges(struct vp_gj *c, json_t *rule, const char *path, const char *key,
                       struct vp_fw_rule *r)
{
	char p[VP_GJ_PATH_MAX], pe[VP_GJ_PATH_MAX];
	char **v = NULL;
	size_t n = 0;
	int rc = vp_gj_strv(c, rule, path, key, &v, &n);

	if (rc <= 0)
		return rc;
	vp_gj_key(p, path, key);
	r->source_ranges = calloc(n ? n : 1, sizeof(*r->source_ranges));
	if (!r->source_ranges) {
		rc = vp_gj_fail(c, p, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		vp_gj_index(pe, p, i);
		if (vp_fw_range_parse(v[i], &r->source_ranges[i]) < 0) {
			rc = vp_gj_fail(c, pe, "'%s' is not an IP range (ADDRESS/PREFIX)", v[i]);
			goto out;
		}
	}
	r->n_source_ranges = n;
out:
	vp_gj_strv_free(v, n);
	return rc;
}

static int read_ports(struct vp_gj *c, json_t *entry, const char *path, struct vp_fw_proto *p)
{
	char pp[VP_GJ_PATH_MAX], pe[VP_GJ_PATH_MAX];
	char **v = NULL;
	size_t n = 0;
	int rc = vp_gj_strv(c, entry, path, "ports", &v, &n);

	if (rc <= 0)
		return rc;
	vp_gj_key(pp, path, "ports");
	if (n && p->proto == VP_FW_PROTO_ALL) {
		rc = vp_gj_fail(c, pp, "ports are given with IPProtocol \"all\"");
		goto out;
	}
	p->ports = calloc(n ? n : 1, sizeof(*p->ports));
	if (!p->ports) {
		rc = vp_gj_fail(c, pp, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		vp_gj_index(pe, pp, i);
		if (vp_fw_ports_parse(v[i], &p->ports[i]) < 0) {
			rc = vp_gj_fail(c, pe, "'%s' is neither a port nor a range PORT-PORT in 0..65535",
			                v[i]);
			goto out;
		}
	}
	p->n_ports = n;
out:
	vp_gj_strv_free(v, n);
	return rc;
}

/* allowed[] or denied[]: [{"IPProtocol": "tcp", "ports": ["5432"]}]; a
 * policy rule's layer4Configs[] spell it "ipProtocol" ('key'). */
static int read_protos(struct vp_gj *c, json_t *list, const char *path, const char *key,
                       struct vp_fw_rule *r)
{
	char pe[VP_GJ_PATH_MAX];
	char proto[VP_GCLOUD_NAME_MAX];
	int rc = 0;

	r->protos = calloc(json_array_size(list) ? json_array_size(list) : 1, sizeof(*r->protos));
	if (!r->protos)
		return vp_gj_fail(c, path, "out of memory");
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *e = json_array_get(list, i);
		struct vp_fw_proto *p = &r->protos[i];

		vp_gj_index(pe, path, i);
		if (!json_is_object(e))
			return vp_gj_fail(c, pe, "expected an object, got %s", vp_gj_type(e));
		rc = vp_gj_str(c, e, pe, key, true, proto, sizeof(proto));
		if (rc < 0)
			return rc;
		p->proto = vp_fw_proto_parse(proto);
		r->n_protos = i + 1;
		if (p->proto == -EINVAL)
			return vp_gj_fail(c, pe, "%s '%s' is neither all, a protocol name "
			                  "(tcp, udp, icmp, esp, ah, sctp, ipip) nor a number 0..255", key,
			                  proto);
		rc = read_ports(c, e, pe, p);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int read_action(struct vp_gj *c, json_t *rule, const char *path, struct vp_fw_rule *r)
{
	char pa[VP_GJ_PATH_MAX], pd[VP_GJ_PATH_MAX];
	json_t *allowed = NULL, *denied = NULL;
	int ra = vp_gj_array(c, rule, path, "allowed", false, VP_GCLOUD_LIST_MAX, &allowed);
	int rd = ra < 0 ? ra : vp_gj_array(c, rule, path, "denied", false, VP_GCLOUD_LIST_MAX, &denied);

	if (rd < 0)
		return rd;
	if (allowed && json_array_size(allowed) == 0)
		allowed = NULL;
	if (denied && json_array_size(denied) == 0)
		denied = NULL;
	if (!allowed == !denied)
		return vp_gj_fail(c, path, "expected exactly one of allowed and denied, got %s",
		                  allowed ? "both" : "neither");
	vp_gj_key(pa, path, "allowed");
	vp_gj_key(pd, path, "denied");
	r->action = allowed ? VP_FW_ALLOW : VP_FW_DENY;
	return read_protos(c, allowed ? allowed : denied, allowed ? pa : pd, "IPProtocol", r);
}

static int read_direction(struct vp_gj *c, json_t *rule, const char *path, struct vp_fw_rule *r)
{
	char dir[VP_GCLOUD_NAME_MAX] = "", p[VP_GJ_PATH_MAX];
	int rc = vp_gj_str(c, rule, path, "direction", false, dir, sizeof(dir));

	if (rc < 0)
		return rc;
	vp_gj_key(p, path, "direction");
	if (rc == 0 || !strcmp(dir, "INGRESS"))
		r->direction = VP_FW_INGRESS;
	else if (!strcmp(dir, "EGRESS"))
		r->direction = VP_FW_EGRESS;
	else
		return vp_gj_fail(c, p, "'%s' is neither INGRESS nor EGRESS", dir);
	return 0;
}

static int read_rule(struct vp_gj *c, json_t *rule, const char *path, struct vp_fw_rule *r)
{
	long long prio = VP_FW_PRIORITY_DEFAULT;
	int rc;

	if (!json_is_object(rule))
		return vp_gj_fail(c, path, "expected an object (a firewall rule), got %s",
		                  vp_gj_type(rule));
	rc = vp_gj_strdup(c, rule, path, "name", true, &r->name);
	if (rc >= 0)
		rc = vp_gj_strdup(c, rule, path, "network", true, &r->network);
	if (rc >= 0)
		rc = read_direction(c, rule, path, r);
	if (rc >= 0)
		rc = vp_gj_int(c, rule, path, "priority", false, 0, 65535, &prio);
	r->priority = (uint16_t)prio;
	if (rc >= 0)
		rc = vp_gj_bool(c, rule, path, "disabled", false, &r->disabled);
	if (rc >= 0)
		rc = read_ranges(c, rule, path, "sourceRanges", r);
	if (rc >= 0)
		rc = vp_gj_strv(c, rule, path, "sourceTags", &r->source_tags.v, &r->source_tags.n);
	if (rc >= 0)
		rc = vp_gj_strv(c, rule, path, "sourceServiceAccounts", &r->source_sas.v,
		                &r->source_sas.n);
	if (rc >= 0)
		rc = vp_gj_strv(c, rule, path, "targetTags", &r->target_tags.v, &r->target_tags.n);
	if (rc >= 0)
		rc = vp_gj_strv(c, rule, path, "targetServiceAccounts", &r->target_sas.v,
		                &r->target_sas.n);
	if (rc >= 0)
		rc = read_action(c, rule, path, r);
	return rc < 0 ? rc : 0;
}

/* The rules of 'root', an array at 'path' ("" for the top level). */
static int rules_json(struct vp_gj *c, json_t *root, const char *path, struct vp_fw_ruleset *rs)
{
	char p[VP_GJ_PATH_MAX];
	int r;

	if (!json_is_array(root))
		return vp_gj_fail(c, path[0] ? path : ".", "expected an array (the output of gcloud "
		                  "compute firewall-rules list), got %s", vp_gj_type(root));
	if (json_array_size(root) > VP_GCLOUD_RULES_MAX)
		return vp_gj_fail(c, path[0] ? path : ".", "%zu rules; at most %d are read",
		                  json_array_size(root), VP_GCLOUD_RULES_MAX);
	rs->rules = calloc(json_array_size(root) ? json_array_size(root) : 1, sizeof(*rs->rules));
	if (!rs->rules)
		return vp_gj_fail(c, path[0] ? path : ".", "out of memory");
	for (size_t i = 0; i < json_array_size(root); i++) {
		vp_gj_index(p, path, i);
		rs->n_rules = i + 1;
		r = read_rule(c, json_array_get(root, i), p, &rs->rules[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

int vp_gc_read_firewall_rules(const char *path, const char *text, struct vp_fw_ruleset *ret,
                              char *err, size_t errlen)
{
	struct vp_gj c = { .file = path, .err = err, .errlen = errlen };
	struct vp_fw_ruleset rs = { 0 };
	json_t *root = NULL;
	int r = vp_gj_load(&c, text, &root);

	if (r >= 0)
		r = rules_json(&c, root, "", &rs);
	json_decref(root);
	if (r < 0) {
		vp_fw_ruleset_done(&rs);
		return r;
	}
	*ret = rs;
	return 0;
}

/* ---- `gcloud compute networks get-effective-firewalls NETWORK --format=json` ----
 *
 * {"firewalls": [Firewall ...], "firewallPolicys": [{"name", "shortName",
 * "type", "rules": [FirewallPolicyRule ...]} ...]}: the VPC rules as
 * firewall-rules list prints them, and the hierarchical and network
 * policies that apply to the network, in the API's order. */

static const struct {
	const char *text;
	enum vp_fw_pol_type type;
} pol_types[] = {
	{ "HIERARCHY", VP_FW_POL_HIERARCHY },
	{ "SYSTEM_GLOBAL", VP_FW_POL_SYSTEM },
	{ "SYSTEM_REGIONAL", VP_FW_POL_SYSTEM },
	{ "NETWORK", VP_FW_POL_NETWORK },
	{ "NETWORK_REGIONAL", VP_FW_POL_NETWORK_REGIONAL },
};

static const struct {
	const char *text;
	enum vp_fw_pol_action action;
} pol_actions[] = {
	{ "allow", VP_FW_POL_ALLOW },
	{ "deny", VP_FW_POL_DENY },
	{ "goto_next", VP_FW_POL_GOTO_NEXT },
	{ "apply_security_profile_group", VP_FW_POL_INSPECT },
};

/* Sources of match{} that this model cannot judge (firewall.h). */
static const char *const opaque_sources[] = {
	"srcSecureTags", "srcAddressGroups", "srcFqdns", "srcRegionCodes",
	"srcThreatIntelligences", "srcNetworks",
};

/* Whether 'obj' has 'key' as a non-empty array, or as anything else that
 * is not null (srcNetworkScope is a string). */
static bool present(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return false;
	return !json_is_array(v) || json_array_size(v) > 0;
}

static int read_pol_action(struct vp_gj *c, json_t *rule, const char *path,
                           struct vp_fw_pol_rule *r)
{
	char text[VP_GCLOUD_NAME_MAX], p[VP_GJ_PATH_MAX];
	int rc = vp_gj_str(c, rule, path, "action", true, text, sizeof(text));

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < sizeof(pol_actions) / sizeof(pol_actions[0]); i++) {
		if (!strcmp(text, pol_actions[i].text)) {
			r->action = pol_actions[i].action;
			return 0;
		}
	}
	vp_gj_key(p, path, "action");
	return vp_gj_fail(c, p, "'%s' is none of allow, deny, goto_next, "
	                  "apply_security_profile_group", text);
}

/* match{}: srcIpRanges and layer4Configs; the rest only noted. */
static int read_pol_match(struct vp_gj *c, json_t *rule, const char *path,
                          struct vp_fw_pol_rule *r)
{
	char p[VP_GJ_PATH_MAX], pl[VP_GJ_PATH_MAX];
	json_t *match = NULL, *l4 = NULL;
	int rc = vp_gj_get(c, rule, path, "match", JSON_OBJECT, true, &match);

	if (rc < 0)
		return rc;
	vp_gj_key(p, path, "match");
	rc = read_ranges(c, match, p, "srcIpRanges", &r->m);
	if (rc >= 0)
		rc = vp_gj_array(c, match, p, "layer4Configs", true, VP_GCLOUD_LIST_MAX, &l4);
	if (rc < 0)
		return rc;
	vp_gj_key(pl, p, "layer4Configs");
	if (json_array_size(l4) == 0)
		return vp_gj_fail(c, pl, "expected at least one {\"ipProtocol\": ...}");
	rc = read_protos(c, l4, pl, "ipProtocol", &r->m);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < sizeof(opaque_sources) / sizeof(opaque_sources[0]); i++)
		r->opaque_source = r->opaque_source || present(match, opaque_sources[i]);
	/* srcNetworkScope narrows the sources (AND); what it admits is not
	 * known here either. */
	r->opaque_source = r->opaque_source || present(match, "srcNetworkScope");
	return 0;
}

static int read_pol_rule(struct vp_gj *c, json_t *rule, const char *path,
                         struct vp_fw_pol_rule *r)
{
	long long prio = 0;
	char name[32];
	int rc;

	if (!json_is_object(rule))
		return vp_gj_fail(c, path, "expected an object (a firewall policy rule), got %s",
		                  vp_gj_type(rule));
	rc = vp_gj_int(c, rule, path, "priority", true, 0, 2147483647LL, &prio);
	r->priority = (uint32_t)prio;
	if (rc >= 0)
		rc = vp_gj_strdup(c, rule, path, "ruleName", false, &r->m.name);
	if (rc >= 0 && r->m.name == NULL) {
		r->unnamed = true;
		snprintf(name, sizeof(name), "priority %u", r->priority);
		r->m.name = strdup(name);
		if (r->m.name == NULL)
			rc = vp_gj_fail(c, path, "out of memory");
	}
	if (rc >= 0)
		rc = read_pol_action(c, rule, path, r);
	if (rc >= 0)
		rc = read_direction(c, rule, path, &r->m);
	if (rc >= 0)
		rc = vp_gj_bool(c, rule, path, "disabled", false, &r->m.disabled);
	if (rc >= 0)
		rc = read_pol_match(c, rule, path, r);
	if (rc >= 0)
		rc = vp_gj_strv(c, rule, path, "targetResources", &r->target_networks.v,
		                &r->target_networks.n);
	if (rc >= 0)
		rc = vp_gj_strv(c, rule, path, "targetServiceAccounts", &r->m.target_sas.v,
		                &r->m.target_sas.n);
	r->opaque_target = present(rule, "targetSecureTags");
	return rc < 0 ? rc : 0;
}

static int pol_rule_cmp(const void *a, const void *b)
{
	const struct vp_fw_pol_rule *x = a, *y = b;

	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	return strcmp(x->m.name, y->m.name);
}

static int read_pol_type(struct vp_gj *c, json_t *pol, const char *path, struct vp_fw_policy *p)
{
	char text[VP_GCLOUD_NAME_MAX], tp[VP_GJ_PATH_MAX];
	int rc = vp_gj_str(c, pol, path, "type", true, text, sizeof(text));

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < sizeof(pol_types) / sizeof(pol_types[0]); i++) {
		if (!strcmp(text, pol_types[i].text)) {
			p->type = pol_types[i].type;
			return 0;
		}
	}
	vp_gj_key(tp, path, "type");
	return vp_gj_fail(c, tp, "'%s' is none of HIERARCHY, NETWORK, NETWORK_REGIONAL, "
	                  "SYSTEM_GLOBAL, SYSTEM_REGIONAL", text);
}

static int read_policy(struct vp_gj *c, json_t *pol, const char *path, struct vp_fw_policy *p)
{
	char rp[VP_GJ_PATH_MAX], pe[VP_GJ_PATH_MAX];
	json_t *rules = NULL;
	int rc;

	if (!json_is_object(pol))
		return vp_gj_fail(c, path, "expected an object (a firewall policy), got %s",
		                  vp_gj_type(pol));
	rc = vp_gj_strdup(c, pol, path, "name", true, &p->name);
	if (rc >= 0)
		rc = vp_gj_strdup(c, pol, path, "shortName", false, &p->short_name);
	if (rc >= 0 && p->short_name == NULL)
		rc = vp_gj_strdup(c, pol, path, "displayName", false, &p->short_name);
	if (rc >= 0)
		rc = read_pol_type(c, pol, path, p);
	if (rc >= 0)
		rc = vp_gj_array(c, pol, path, "rules", false, VP_GCLOUD_RULES_MAX, &rules);
	if (rc < 0)
		return rc;
	vp_gj_key(rp, path, "rules");
	p->rules = calloc(json_array_size(rules) ? json_array_size(rules) : 1, sizeof(*p->rules));
	if (!p->rules)
		return vp_gj_fail(c, rp, "out of memory");
	for (size_t i = 0; i < json_array_size(rules); i++) {
		vp_gj_index(pe, rp, i);
		p->n_rules = i + 1;
		rc = read_pol_rule(c, json_array_get(rules, i), pe, &p->rules[i]);
		if (rc < 0)
			return rc;
	}
	qsort(p->rules, p->n_rules, sizeof(*p->rules), pol_rule_cmp);
	return 0;
}

static int policies_json(struct vp_gj *c, json_t *root, struct vp_fw_policies *pols)
{
	char p[VP_GJ_PATH_MAX], pe[VP_GJ_PATH_MAX];
	json_t *list = NULL;
	int rc = vp_gj_array(c, root, "", "firewallPolicys", false, VP_GCLOUD_POLICIES_MAX, &list);

	if (rc <= 0)
		return rc;
	vp_gj_key(p, "", "firewallPolicys");
	pols->v = calloc(json_array_size(list) ? json_array_size(list) : 1, sizeof(*pols->v));
	if (!pols->v)
		return vp_gj_fail(c, p, "out of memory");
	for (size_t i = 0; i < json_array_size(list); i++) {
		vp_gj_index(pe, p, i);
		pols->n = i + 1;
		rc = read_policy(c, json_array_get(list, i), pe, &pols->v[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int vp_gc_read_effective_firewalls(const char *path, const char *text, struct vp_fw_ruleset *rules,
                                   struct vp_fw_policies *policies, char *err, size_t errlen)
{
	struct vp_gj c = { .file = path, .err = err, .errlen = errlen };
	struct vp_fw_ruleset rs = { 0 };
	struct vp_fw_policies pols = { 0 };
	json_t *root = NULL, *fw = NULL;
	int r = vp_gj_load(&c, text, &root);

	if (r >= 0 && !json_is_object(root))
		r = vp_gj_fail(&c, ".", "expected an object (the output of gcloud compute networks "
		               "get-effective-firewalls), got %s", vp_gj_type(root));
	if (r >= 0)
		r = vp_gj_get(&c, root, "", "firewalls", JSON_ARRAY, false, &fw);
	if (r > 0)
		r = rules_json(&c, fw, ".firewalls", &rs);
	if (r >= 0)
		r = policies_json(&c, root, &pols);
	json_decref(root);
	if (r < 0) {
		vp_fw_ruleset_done(&rs);
		vp_fw_policies_done(&pols);
		return r;
	}
	*rules = rs;
	*policies = pols;
	return 0;
}

/* `gcloud compute networks describe NETWORK --format=json`: only its
 * networkFirewallPolicyEnforcementOrder, AFTER_CLASSIC_FIREWALL when absent
 * (the API's default). */
int vp_gc_read_network(const char *path, const char *text, enum vp_fw_order *ret,
                       char *err, size_t errlen)
{
	struct vp_gj c = { .file = path, .err = err, .errlen = errlen };
	char order[VP_GCLOUD_NAME_MAX] = "";
	json_t *root = NULL;
	int r = vp_gj_load(&c, text, &root);

	if (r >= 0 && !json_is_object(root))
		r = vp_gj_fail(&c, ".", "expected an object (the output of gcloud compute networks "
		               "describe), got %s", vp_gj_type(root));
	if (r >= 0)
		r = vp_gj_str(&c, root, "", "networkFirewallPolicyEnforcementOrder", false, order,
		              sizeof(order));
	json_decref(root);
	if (r < 0)
		return r;
	if (r == 0 || !strcmp(order, "AFTER_CLASSIC_FIREWALL")) {
		*ret = VP_FW_ORDER_AFTER_CLASSIC;
	} else if (!strcmp(order, "BEFORE_CLASSIC_FIREWALL")) {
		*ret = VP_FW_ORDER_BEFORE_CLASSIC;
	} else {
		return vp_gj_fail(&c, ".networkFirewallPolicyEnforcementOrder", "'%s' is neither "
		                  "AFTER_CLASSIC_FIREWALL nor BEFORE_CLASSIC_FIREWALL", order);
	}
	return 0;
}

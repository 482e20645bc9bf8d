/* The reader of `gcloud compute firewall-rules list --format=json`: an array
 * of Compute API Firewall resources. See gcloud.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/gcloud.h"
#include "agent/gcloud_json.h"

static int read_ranges(struct vp_gj *c, json_t *rule, const char *path, struct vp_fw_rule *r)
{
	char p[VP_GJ_PATH_MAX], pe[VP_GJ_PATH_MAX];
	char **v = NULL;
	size_t n = 0;
	int rc = vp_gj_strv(c, rule, path, "sourceRanges", &v, &n);

	if (rc <= 0)
		return rc;
	vp_gj_key(p, path, "sourceRanges");
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

/* allowed[] or denied[]: [{"IPProtocol": "tcp", "ports": ["5432"]}]. */
static int read_protos(struct vp_gj *c, json_t *list, const char *path, struct vp_fw_rule *r)
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
		rc = vp_gj_str(c, e, pe, "IPProtocol", true, proto, sizeof(proto));
		if (rc < 0)
			return rc;
		p->proto = vp_fw_proto_parse(proto);
		r->n_protos = i + 1;
		if (p->proto == -EINVAL)
			return vp_gj_fail(c, pe, "IPProtocol '%s' is neither all, a protocol name "
			                  "(tcp, udp, icmp, esp, ah, sctp, ipip) nor a number 0..255", proto);
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
	return read_protos(c, allowed ? allowed : denied, allowed ? pa : pd, r);
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
		rc = read_ranges(c, rule, path, r);
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

static int rules_json(struct vp_gj *c, json_t *root, struct vp_fw_ruleset *rs)
{
	char p[VP_GJ_PATH_MAX];
	int r;

	if (!json_is_array(root))
		return vp_gj_fail(c, ".", "expected an array (the output of gcloud compute "
		                  "firewall-rules list), got %s", vp_gj_type(root));
	if (json_array_size(root) > VP_GCLOUD_RULES_MAX)
		return vp_gj_fail(c, ".", "%zu rules; at most %d are read", json_array_size(root),
		                  VP_GCLOUD_RULES_MAX);
	rs->rules = calloc(json_array_size(root) ? json_array_size(root) : 1, sizeof(*rs->rules));
	if (!rs->rules)
		return vp_gj_fail(c, ".", "out of memory");
	for (size_t i = 0; i < json_array_size(root); i++) {
		vp_gj_index(p, "", i);
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
		r = rules_json(&c, root, &rs);
	json_decref(root);
	if (r < 0) {
		vp_fw_ruleset_done(&rs);
		return r;
	}
	*ret = rs;
	return 0;
}

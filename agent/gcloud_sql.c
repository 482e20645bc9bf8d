/* Readers of `gcloud sql instances describe` and `gcloud services
 * vpc-peerings list` (--format=json). See gcloud.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/gcloud.h"
#include "agent/gcloud_json.h"

static int sql_ips(struct vp_gj *c, json_t *root, struct vp_gc_sql *s)
{
	char p[VP_GJ_PATH_MAX];
	json_t *arr = NULL;
	int r = vp_gj_array(c, root, "", "ipAddresses", false, VP_GCLOUD_IPS_MAX, &arr);

	for (size_t i = 0; r > 0 && i < json_array_size(arr); i++) {
		json_t *e = json_array_get(arr, i);

		vp_gj_index(p, ".ipAddresses", i);
		if (!json_is_object(e))
			return vp_gj_fail(c, p, "expected an object, got %s", vp_gj_type(e));
		r = vp_gj_str(c, e, p, "type", true, s->ips[i].type, sizeof(s->ips[i].type));
		if (r >= 0)
			r = vp_gj_str(c, e, p, "ipAddress", true, s->ips[i].ip, sizeof(s->ips[i].ip));
		s->n_ips = i + 1;
	}
	return r < 0 ? r : 0;
}

static int sql_json(struct vp_gj *c, json_t *root, struct vp_gc_sql *s)
{
	json_t *settings = NULL, *ipc = NULL;
	int r;

	if (!json_is_object(root))
		return vp_gj_fail(c, ".", "expected an object (the output of gcloud sql instances "
		                  "describe), got %s", vp_gj_type(root));
	r = vp_gj_str(c, root, "", "name", true, s->name, sizeof(s->name));
	if (r >= 0)
		r = vp_gj_str(c, root, "", "region", false, s->region, sizeof(s->region));
	if (r >= 0)
		r = vp_gj_str(c, root, "", "project", false, s->project, sizeof(s->project));
	if (r >= 0)
		r = sql_ips(c, root, s);
	if (r >= 0)
		r = vp_gj_get(c, root, "", "settings", JSON_OBJECT, false, &settings);
	if (r > 0)
		r = vp_gj_get(c, settings, ".settings", "ipConfiguration", JSON_OBJECT, false, &ipc);
	if (r > 0)
		r = vp_gj_str(c, ipc, ".settings.ipConfiguration", "privateNetwork", false,
		              s->private_network, sizeof(s->private_network));
	return r < 0 ? r : 0;
}

int vp_gc_read_sql(const char *path, const char *text, struct vp_gc_sql *ret,
                   char *err, size_t errlen)
{
	struct vp_gj c = { .file = path, .err = err, .errlen = errlen };
	struct vp_gc_sql s = { 0 };
	json_t *root = NULL;
	int r = vp_gj_load(&c, text, &root);

	if (r >= 0)
		r = sql_json(&c, root, &s);
	if (r >= 0)
		*ret = s;
	json_decref(root);
	return r;
}

static int peering_json(struct vp_gj *c, json_t *e, const char *p, struct vp_gc_peering *pe)
{
	int r;

	if (!json_is_object(e))
		return vp_gj_fail(c, p, "expected an object (a private connection), got %s",
		                  vp_gj_type(e));
	r = vp_gj_str(c, e, p, "network", true, pe->network, sizeof(pe->network));
	if (r >= 0)
		r = vp_gj_str(c, e, p, "peering", false, pe->peering, sizeof(pe->peering));
	if (r >= 0)
		r = vp_gj_str(c, e, p, "service", false, pe->service, sizeof(pe->service));
	if (r >= 0)
		r = vp_gj_str_rows(c, e, p, "reservedPeeringRanges", &pe->ranges[0][0],
		                   sizeof(pe->ranges[0]), VP_GCLOUD_RANGES_MAX, &pe->n_ranges);
	return r < 0 ? r : 0;
}

static int peerings_json(struct vp_gj *c, json_t *root, struct vp_gc_peerings *ps)
{
	char p[VP_GJ_PATH_MAX];
	int r;

	if (!json_is_array(root))
		return vp_gj_fail(c, ".", "expected an array (the output of gcloud services "
		                  "vpc-peerings list), got %s", vp_gj_type(root));
	if (json_array_size(root) > VP_GCLOUD_PEERINGS_MAX)
		return vp_gj_fail(c, ".", "%zu connections; at most %d are read",
		                  json_array_size(root), VP_GCLOUD_PEERINGS_MAX);
	ps->v = calloc(json_array_size(root) ? json_array_size(root) : 1, sizeof(*ps->v));
	if (!ps->v)
		return vp_gj_fail(c, ".", "out of memory");
	for (size_t i = 0; i < json_array_size(root); i++) {
		vp_gj_index(p, "", i);
		r = peering_json(c, json_array_get(root, i), p, &ps->v[i]);
		if (r < 0)
			return r;
		ps->n = i + 1;
	}
	return 0;
}

int vp_gc_read_peerings(const char *path, struct vp_gc_peerings *ret, char *err, size_t errlen)
{
	struct vp_gj c = { .file = path, .err = err, .errlen = errlen };
	struct vp_gc_peerings ps = { 0 };
	json_t *root = NULL;
	int r = vp_gj_load(&c, NULL, &root);

	if (r >= 0)
		r = peerings_json(&c, root, &ps);
	json_decref(root);
	if (r < 0) {
		vp_gc_peerings_done(&ps);
		return r;
	}
	*ret = ps;
	return 0;
}

void vp_gc_peerings_done(struct vp_gc_peerings *p)
{
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

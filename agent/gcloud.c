/* Readers of `gcloud run services describe`, `gcloud compute networks
 * vpc-access connectors describe` and `gcloud compute instances describe`
 * (--format=json). See gcloud.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/gcloud.h"
#include "agent/gcloud_json.h"

static const char *const input_files[VP_GC_IN_MAX] = {
	[VP_GC_IN_SERVICE] = "service.json",
	[VP_GC_IN_CONNECTOR] = "connector.json",
	[VP_GC_IN_RULES] = "firewall-rules.json",
	[VP_GC_IN_EFFECTIVE] = "effective-firewalls.json",
	[VP_GC_IN_NETWORK] = "network.json",
	[VP_GC_IN_INSTANCE] = "instance.json",
	[VP_GC_IN_SQL] = "sql-instance.json",
	[VP_GC_IN_PEERINGS] = "peerings.json",
	[VP_GC_IN_LOGS] = "logs.json",
	[VP_GC_IN_RESULTS] = "results.jsonl",
};

const char *vp_gc_input_file(enum vp_gc_input in)
{
	return in < 0 || in >= VP_GC_IN_MAX ? NULL : input_files[in];
}

/* The object member 'key' of 'obj' at 'path'; its own path into 'sub'. */
static int object_at(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
                     bool required, json_t **ret, char *sub)
{
	vp_gj_key(sub, path, key);
	return vp_gj_get(c, obj, path, key, JSON_OBJECT, required, ret);
}

static int root_object(struct vp_gj *c, json_t *root, const char *what)
{
	if (json_is_object(root))
		return 0;
	return vp_gj_fail(c, ".", "expected an object (the output of %s), got %s", what,
	                  vp_gj_type(root));
}

static void copy(char *dst, size_t len, const char *src, size_t n)
{
	if (n >= len)
		n = len - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

int vp_gc_connector_ref(const char *ref, char *project, char *region, char *name)
{
	const char *parts[6] = { 0 };
	size_t lens[6] = { 0 }, n = 0;
	const char *p = ref;

	project[0] = region[0] = name[0] = '\0';
	while (n < 6) {
		const char *slash = strchr(p, '/');

		parts[n] = p;
		lens[n] = slash ? (size_t)(slash - p) : strlen(p);
		n++;
		if (!slash)
			break;
		p = slash + 1;
	}
	for (size_t i = 0; i < n; i++)
		if (lens[i] == 0 || lens[i] >= VP_GCLOUD_NAME_MAX)
			return -EINVAL;
	if (n == 1 && !strchr(ref, '/')) {
		copy(name, VP_GCLOUD_NAME_MAX, parts[0], lens[0]);
		return 0;
	}
	if (n != 6 || strchr(parts[5], '/') || strncmp(parts[0], "projects/", 9) != 0 ||
	    strncmp(parts[2], "locations/", 10) != 0 || strncmp(parts[4], "connectors/", 11) != 0)
		return -EINVAL;
	copy(project, VP_GCLOUD_NAME_MAX, parts[1], lens[1]);
	copy(region, VP_GCLOUD_NAME_MAX, parts[3], lens[3]);
	copy(name, VP_GCLOUD_NAME_MAX, parts[5], lens[5]);
	return 0;
}

/* run.googleapis.com/network-interfaces: a JSON array in a string. */
static int read_interfaces(struct vp_gj *c, const char *text, const char *annpath,
                           struct vp_gc_service *s)
{
	char base[VP_GJ_PATH_MAX], p0[VP_GJ_PATH_MAX];
	json_error_t jerr;
	json_t *arr = json_loads(text, 0, &jerr);
	json_t *nic;
	int r;

	if (snprintf(base, sizeof(base), "(%s | fromjson)", annpath) >= (int)sizeof(base))
		base[sizeof(base) - 1] = '\0'; /* cut, it still names the annotation */
	if (!arr)
		return vp_gj_fail(c, annpath, "not JSON: column %d: %s", jerr.column, jerr.text);
	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		r = vp_gj_fail(c, base, "expected a non-empty array of interfaces, got %s",
		               vp_gj_type(arr));
		goto out;
	}
	nic = json_array_get(arr, 0);
	vp_gj_index(p0, base, 0);
	if (!json_is_object(nic)) {
		r = vp_gj_fail(c, p0, "expected an object, got %s", vp_gj_type(nic));
		goto out;
	}
	r = vp_gj_str(c, nic, p0, "network", false, s->dv_network, sizeof(s->dv_network));
	if (r >= 0)
		r = vp_gj_str(c, nic, p0, "subnetwork", false, s->dv_subnet, sizeof(s->dv_subnet));
	if (r >= 0)
		r = vp_gj_str_rows(c, nic, p0, "tags", &s->dv_tags[0][0], sizeof(s->dv_tags[0]),
		                   VP_GCLOUD_TAGS_MAX, &s->n_dv_tags);
	if (r >= 0 && !s->dv_network[0] && !s->dv_subnet[0])
		r = vp_gj_fail(c, p0, "names neither a network nor a subnetwork");
	s->direct_vpc = r >= 0;
out:
	json_decref(arr);
	return r < 0 ? r : 0;
}

static int read_annotations(struct vp_gj *c, const json_t *ann, const char *path,
                            struct vp_gc_service *s)
{
	char p[VP_GJ_PATH_MAX], egress[VP_GCLOUD_NAME_MAX] = "", ifaces[VP_GCLOUD_STR_MAX * 4] = "";
	char project[VP_GCLOUD_NAME_MAX];
	int r;

	r = vp_gj_str(c, ann, path, VP_GC_ANN_CONNECTOR, false, s->connector, sizeof(s->connector));
	if (r < 0)
		return r;
	vp_gj_key(p, path, VP_GC_ANN_CONNECTOR);
	if (r > 0 && vp_gc_connector_ref(s->connector, project, s->connector_region,
	                                 s->connector_name) < 0)
		return vp_gj_fail(c, p, "'%s' is neither a connector name nor "
		                  "projects/PROJECT/locations/REGION/connectors/NAME", s->connector);
	r = vp_gj_str(c, ann, path, VP_GC_ANN_EGRESS, false, egress, sizeof(egress));
	if (r < 0)
		return r;
	vp_gj_key(p, path, VP_GC_ANN_EGRESS);
	if (r == 0)
		s->egress = VP_GC_EGRESS_UNSET;
	else if (!strcmp(egress, "private-ranges-only"))
		s->egress = VP_GC_EGRESS_PRIVATE;
	else if (!strcmp(egress, "all-traffic") || !strcmp(egress, "all"))
		s->egress = VP_GC_EGRESS_ALL;
	else
		return vp_gj_fail(c, p, "'%s' is neither all-traffic nor private-ranges-only", egress);
	r = vp_gj_str(c, ann, path, VP_GC_ANN_INTERFACES, false, ifaces, sizeof(ifaces));
	if (r <= 0)
		return r;
	vp_gj_key(p, path, VP_GC_ANN_INTERFACES);
	return read_interfaces(c, ifaces, p, s);
}

static int service_json(struct vp_gj *c, json_t *root, struct vp_gc_service *s)
{
	char pm[VP_GJ_PATH_MAX], pl[VP_GJ_PATH_MAX], ps[VP_GJ_PATH_MAX], pt[VP_GJ_PATH_MAX];
	char ptm[VP_GJ_PATH_MAX], pa[VP_GJ_PATH_MAX];
	json_t *meta = NULL, *labels = NULL, *spec = NULL, *tmpl = NULL, *tmeta = NULL, *ann = NULL;
	int r;

	r = root_object(c, root, "gcloud run services describe");
	if (r >= 0)
		r = object_at(c, root, "", "metadata", true, &meta, pm);
	if (r >= 0)
		r = vp_gj_str(c, meta, pm, "name", true, s->name, sizeof(s->name));
	if (r >= 0)
		r = object_at(c, meta, pm, "labels", false, &labels, pl);
	if (r > 0)
		r = vp_gj_str(c, labels, pl, VP_GC_LABEL_LOCATION, false, s->region, sizeof(s->region));
	if (r >= 0)
		r = object_at(c, root, "", "spec", false, &spec, ps);
	if (r > 0)
		r = object_at(c, spec, ps, "template", false, &tmpl, pt);
	if (r > 0)
		r = object_at(c, tmpl, pt, "metadata", false, &tmeta, ptm);
	if (r > 0)
		r = object_at(c, tmeta, ptm, "annotations", false, &ann, pa);
	if (r > 0)
		r = read_annotations(c, ann, pa, s);
	return r < 0 ? r : 0;
}

int vp_gc_read_service(const char *path, const char *text, struct vp_gc_service *ret,
                       char *err, size_t errlen)
{
	struct vp_gj c = { .file = path, .err = err, .errlen = errlen };
	struct vp_gc_service *s = calloc(1, sizeof(*s));
	json_t *root = NULL;
	int r = s ? vp_gj_load(&c, text, &root) : -ENOMEM;

	if (r >= 0)
		r = service_json(&c, root, s);
	if (r >= 0)
		*ret = *s;
	json_decref(root);
	free(s);
	return r;
}

static int connector_numbers(struct vp_gj *c, json_t *root, struct vp_gc_connector *k)
{
	static const struct {
		const char *key;
		size_t off;
	} nums[] = {
		{ "minInstances", offsetof(struct vp_gc_connector, min_instances) },
		{ "maxInstances", offsetof(struct vp_gc_connector, max_instances) },
		{ "minThroughput", offsetof(struct vp_gc_connector, min_throughput) },
		{ "maxThroughput", offsetof(struct vp_gc_connector, max_throughput) },
	};

	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		long long *v = (long long *)(void *)((char *)k + nums[i].off);
		int r;

		*v = -1;
		r = vp_gj_int(c, root, "", nums[i].key, false, 0, 1000000, v);
		if (r < 0)
			return r;
	}
	return 0;
}

static int connector_json(struct vp_gj *c, json_t *root, struct vp_gc_connector *k)
{
	char full[VP_GCLOUD_STR_MAX], range[VP_GCLOUD_NAME_MAX] = "", msg[VP_ERR_MAX], ps[VP_GJ_PATH_MAX];
	json_t *subnet = NULL;
	int r;

	r = root_object(c, root, "gcloud compute networks vpc-access connectors describe");
	if (r >= 0)
		r = vp_gj_str(c, root, "", "name", true, full, sizeof(full));
	if (r >= 0 && (vp_gc_connector_ref(full, k->project, k->region, k->name) < 0 || !k->region[0]))
		r = vp_gj_fail(c, ".name", "'%s' is not projects/PROJECT/locations/REGION/connectors/NAME",
		               full);
	if (r >= 0)
		r = vp_gj_str(c, root, "", "state", true, k->state, sizeof(k->state));
	if (r >= 0)
		r = vp_gj_str(c, root, "", "network", false, k->network, sizeof(k->network));
	if (r >= 0)
		r = vp_gj_str(c, root, "", "ipCidrRange", false, range, sizeof(range));
	if (r > 0) {
		if (vp_cidr_parse(range, &k->range, msg, sizeof(msg)) < 0)
			return vp_gj_fail(c, ".ipCidrRange", "%s", msg);
		k->has_range = true;
	}
	if (r >= 0)
		r = object_at(c, root, "", "subnet", false, &subnet, ps);
	if (r > 0)
		r = vp_gj_str(c, subnet, ps, "name", false, k->subnet, sizeof(k->subnet));
	if (r >= 0)
		r = vp_gj_str(c, root, "", "machineType", false, k->machine_type, sizeof(k->machine_type));
	if (r >= 0)
		r = connector_numbers(c, root, k);
	return r < 0 ? r : 0;
}

int vp_gc_read_connector(const char *path, const char *text, struct vp_gc_connector *ret,
                         char *err, size_t errlen)
{
	struct vp_gj c = { .file = path, .err = err, .errlen = errlen };
	struct vp_gc_connector k = { 0 };
	json_t *root = NULL;
	int r = vp_gj_load(&c, text, &root);

	if (r >= 0)
		r = connector_json(&c, root, &k);
	if (r >= 0)
		*ret = k;
	json_decref(root);
	return r;
}

static int instance_nics(struct vp_gj *c, json_t *root, struct vp_gc_instance *in)
{
	char p[VP_GJ_PATH_MAX];
	json_t *arr = NULL;
	int r = vp_gj_array(c, root, "", "networkInterfaces", true, VP_GCLOUD_NICS_MAX, &arr);

	if (r >= 0 && json_array_size(arr) == 0)
		r = vp_gj_fail(c, ".networkInterfaces", "expected at least one interface");
	for (size_t i = 0; r >= 0 && i < json_array_size(arr); i++) {
		json_t *nic = json_array_get(arr, i);
		struct vp_gc_nic *n = &in->nics[i];

		vp_gj_index(p, ".networkInterfaces", i);
		if (!json_is_object(nic))
			return vp_gj_fail(c, p, "expected an object, got %s", vp_gj_type(nic));
		r = vp_gj_str(c, nic, p, "name", false, n->name, sizeof(n->name));
		if (r >= 0)
			r = vp_gj_str(c, nic, p, "network", true, n->network, sizeof(n->network));
		if (r >= 0)
			r = vp_gj_str(c, nic, p, "networkIP", false, n->ip, sizeof(n->ip));
		in->n_nics = i + 1;
	}
	return r < 0 ? r : 0;
}

static int instance_sas(struct vp_gj *c, json_t *root, struct vp_gc_instance *in)
{
	char p[VP_GJ_PATH_MAX];
	json_t *arr = NULL;
	int r = vp_gj_array(c, root, "", "serviceAccounts", false, VP_GCLOUD_SAS_MAX, &arr);

	for (size_t i = 0; r > 0 && i < json_array_size(arr); i++) {
		json_t *sa = json_array_get(arr, i);

		vp_gj_index(p, ".serviceAccounts", i);
		if (!json_is_object(sa))
			return vp_gj_fail(c, p, "expected an object, got %s", vp_gj_type(sa));
		r = vp_gj_str(c, sa, p, "email", true, in->sas[i], sizeof(in->sas[i]));
		in->n_sas = i + 1;
	}
	return r < 0 ? r : 0;
}

static int instance_json(struct vp_gj *c, json_t *root, struct vp_gc_instance *in)
{
	char zone[VP_GCLOUD_STR_MAX] = "", pt[VP_GJ_PATH_MAX];
	json_t *tags = NULL;
	int r;

	r = root_object(c, root, "gcloud compute instances describe");
	if (r >= 0)
		r = vp_gj_str(c, root, "", "name", true, in->name, sizeof(in->name));
	if (r >= 0)
		r = vp_gj_str(c, root, "", "zone", false, zone, sizeof(zone));
	if (r > 0)
		snprintf(in->zone, sizeof(in->zone), "%s", vp_fw_network_name(zone));
	if (r >= 0)
		r = instance_nics(c, root, in);
	if (r >= 0)
		r = object_at(c, root, "", "tags", false, &tags, pt);
	if (r > 0)
		r = vp_gj_str_rows(c, tags, pt, "items", &in->tags[0][0], sizeof(in->tags[0]),
		                   VP_GCLOUD_TAGS_MAX, &in->n_tags);
	if (r >= 0)
		r = instance_sas(c, root, in);
	return r < 0 ? r : 0;
}

int vp_gc_read_instance(const char *path, const char *text, struct vp_gc_instance *ret,
                        char *err, size_t errlen)
{
	struct vp_gj c = { .file = path, .err = err, .errlen = errlen };
	struct vp_gc_instance *in = calloc(1, sizeof(*in));
	json_t *root = NULL;
	int r = in ? vp_gj_load(&c, text, &root) : -ENOMEM;

	if (r >= 0)
		r = instance_json(&c, root, in);
	if (r >= 0)
		*ret = *in;
	json_decref(root);
	free(in);
	return r;
}

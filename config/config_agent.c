/* The config loader's sections of the agent itself (config_int.h):
 * "agent", "listeners", "beacons" and "collector". */
#include "config/config_int.h"

#include <stdio.h>
#include <string.h>

#define DNS_DEFAULT_PORT 53
#define SPOOL_MAX_MB_MAX 65536

/* ---- agent ---- */

static void parse_listen(struct loader *ld, const char *path, json_t *v, void *dst,
                         const struct field *f)
{
	struct vp_addrport ap;
	char msg[VP_ERR_MAX];

	if (!vp_cfg_expect_type(ld, path, v, JSON_STRING))
		return;
	if (vp_addrport_parse(json_string_value(v), 0, &ap, msg, sizeof(msg)) < 0) {
		vp_cfg_report(ld, path, "%s", msg);
		return;
	}
	vp_cfg_set_string(ld, path, (char **)((char *)dst + f->off), json_string_value(v));
}

static void load_dns_server(struct loader *ld, const char *path, json_t *e, void *elem,
                            const void *ctx)
{
	char msg[VP_ERR_MAX];
	struct vp_addrport ap;

	if (!vp_cfg_expect_type(ld, path, e, JSON_STRING))
		return;
	if (vp_addrport_parse(json_string_value(e), DNS_DEFAULT_PORT, &ap, msg, sizeof(msg)) < 0) {
		vp_cfg_report(ld, path, "%s", msg);
		return;
	}
	*(char **)elem = vp_cfg_dup_or_report(ld, path, json_string_value(e));
}

static void parse_dns_servers(struct loader *ld, const char *path, json_t *v, void *dst,
                              const struct field *f)
{
	struct vp_config *cfg = dst;

	cfg->dns_servers = vp_cfg_load_elements(ld, path, v, VP_CONFIG_MAX_DNS_SERVERS, sizeof(char *),
	                                        &cfg->n_dns_servers, load_dns_server, NULL);
}

/* The base address of the Compute Engine metadata server, for tests that
 * serve its paths themselves; null (the default) asks the real one, and
 * only on Compute Engine. */
static void parse_metadata_url(struct loader *ld, const char *path, json_t *v, void *dst,
                               const struct field *f)
{
	struct vp_config *cfg = dst;
	struct vp_url url;
	char msg[VP_ERR_MAX];
	const char *s;

	if (json_is_null(v))
		return;
	if (!vp_cfg_expect_type(ld, path, v, JSON_STRING))
		return;
	s = json_string_value(v);
	if (vp_url_parse(s, &url, msg, sizeof(msg)) < 0) {
		vp_cfg_report(ld, path, "%s", msg);
		return;
	}
	vp_url_free(&url);     /* only the scheme counts here */
	if (url.kind != VP_KIND_HTTP) {
		vp_cfg_report(ld, path, "'%.80s': the metadata server is reached over http://", s);
		return;
	}
	vp_cfg_set_string(ld, path, &cfg->metadata_url, s);
}

/* A directory, absolute: the daemon runs with / as its working directory
 * under systemd, and a relative path would name another place there. */
static void parse_gcloud_exports(struct loader *ld, const char *path, json_t *v, void *dst,
                                 const struct field *f)
{
	struct vp_config *cfg = dst;
	const char *s;

	(void)f;
	if (json_is_null(v))
		return;
	if (!vp_cfg_expect_type(ld, path, v, JSON_STRING) ||
	    !vp_cfg_check_string(ld, path, v, 1, sizeof(cfg->gcloud_exports) - 1))
		return;
	s = json_string_value(v);
	if (s[0] != '/') {
		vp_cfg_report(ld, path, "'%.80s' is not an absolute path; expected a directory such as "
		              "\"/var/lib/vpcprobe/exports\"", s);
		return;
	}
	snprintf(cfg->gcloud_exports, sizeof(cfg->gcloud_exports), "%s", s);
}

static const struct field agent_fields[] = {
	F_STR("name", struct vp_config, agent_name, 1, VP_NAME_MAX),
	F_CUSTOM("status_listen", struct vp_config, status_listen, parse_listen),
	F_STR_NULL("status_token_file", struct vp_config, status_token_file, 1, FILE_PATH_LEN_MAX),
	F_STR("state_dir", struct vp_config, state_dir, 1, FILE_PATH_LEN_MAX),
	F_CUSTOM("dns_servers", struct vp_config, dns_servers, parse_dns_servers),
	F_UINT("max_in_flight", struct vp_config, max_in_flight, 1, VP_IN_FLIGHT_MAX),
	F_CUSTOM("metadata_url", struct vp_config, metadata_url, parse_metadata_url),
	F_CUSTOM("gcloud_exports", struct vp_config, gcloud_exports, parse_gcloud_exports),
};

void vp_cfg_load_agent(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg)
{
	(void)vp_cfg_walk_object(ld, path, v, agent_fields, N_ELEMS(agent_fields), cfg);
}

/* ---- listeners and beacons ---- */

static const struct field listener_fields[] = {
	{ .key = "port", .type = FT_UINT, .required = true, .min = 1, .max = 65535,
	  .off = offsetof(struct vp_listener_check, port), .size = sizeof(uint16_t) },
};

void vp_cfg_load_listeners(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg)
{
	static const struct object_shape shape = { listener_fields, N_ELEMS(listener_fields) };

	cfg->listeners = vp_cfg_load_elements(ld, path, v, VP_CONFIG_MAX_LISTENERS,
	                                      sizeof(*cfg->listeners), &cfg->n_listeners,
	                                      vp_cfg_load_object, &shape);
}

static void load_cidr(struct loader *ld, const char *path, json_t *e, void *elem,
                      const void *ctx)
{
	char msg[VP_ERR_MAX];

	if (vp_cfg_expect_type(ld, path, e, JSON_STRING) &&
	    vp_cidr_parse(json_string_value(e), elem, msg, sizeof(msg)) < 0)
		vp_cfg_report(ld, path, "%s", msg);
}

static void parse_expect_from(struct loader *ld, const char *path, json_t *v, void *dst,
                              const struct field *f)
{
	struct vp_beacon *b = dst;

	b->expect_from = vp_cfg_load_elements(ld, path, v, VP_CONFIG_MAX_CIDRS, sizeof(*b->expect_from),
	                                      &b->n_expect_from, load_cidr, NULL);
}

static const struct field beacon_fields[] = {
	{ .key = "listen", .type = FT_CUSTOM, .required = true,
	  .off = offsetof(struct vp_beacon, listen), .parse = parse_listen },
	F_CUSTOM("expect_from", struct vp_beacon, expect_from, parse_expect_from),
};

void vp_cfg_load_beacons(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg)
{
	static const struct object_shape shape = { beacon_fields, N_ELEMS(beacon_fields) };

	cfg->beacons = vp_cfg_load_elements(ld, path, v, VP_CONFIG_MAX_BEACONS, sizeof(*cfg->beacons),
	                                    &cfg->n_beacons, vp_cfg_load_object, &shape);
}

/* ---- collector ---- */

static void parse_collector_url(struct loader *ld, const char *path, json_t *v, void *dst,
                                const struct field *f)
{
	struct vp_collector *c = dst;
	struct vp_url url;
	char msg[VP_ERR_MAX];
	const char *s;

	if (!vp_cfg_expect_type(ld, path, v, JSON_STRING))
		return;
	s = json_string_value(v);
	if (vp_url_parse(s, &url, msg, sizeof(msg)) < 0) {
		vp_cfg_report(ld, path, "%s", msg);
		return;
	}
	vp_url_free(&url);     /* only the scheme counts here */
	if (url.kind != VP_KIND_HTTP && url.kind != VP_KIND_HTTPS) {
		vp_cfg_report(ld, path, "'%.80s': the collector needs an http:// or https:// URL", s);
		return;
	}
	vp_cfg_set_string(ld, path, &c->url, s);
}

static void parse_format(struct loader *ld, const char *path, json_t *v, void *dst,
                         const struct field *f)
{
	struct vp_collector *c = dst;
	const char *s;

	if (!vp_cfg_expect_type(ld, path, v, JSON_STRING))
		return;
	s = json_string_value(v);
	if (strcmp(s, "json") == 0)
		c->format = VP_COLLECTOR_JSON;
	else if (strcmp(s, "otlp") == 0)
		c->format = VP_COLLECTOR_OTLP;
	else if (vp_cfg_check_string(ld, path, v, 0, 32))
		vp_cfg_report(ld, path, "'%s' is not a format; expected \"json\" or \"otlp\"", s);
}

static const struct field collector_fields[] = {
	{ .key = "url", .type = FT_CUSTOM, .required = true,
	  .off = offsetof(struct vp_collector, url), .parse = parse_collector_url },
	F_CUSTOM("format", struct vp_collector, format, parse_format),
	F_STR("token_file", struct vp_collector, token_file, 1, FILE_PATH_LEN_MAX),
	F_UINT("spool_max_mb", struct vp_collector, spool_max_mb, 1, SPOOL_MAX_MB_MAX),
	F_STR("ca_file", struct vp_collector, ca_file, 1, FILE_PATH_LEN_MAX),
	F_UINT("batch_max", struct vp_collector, batch_max, 1, VP_REPORT_BATCH_MAX),
	F_UINT("timeout_ms", struct vp_collector, timeout_ms, VP_REPORT_TIMEOUT_MS_MIN,
	       VP_REPORT_TIMEOUT_MS_MAX),
};

void vp_cfg_load_collector(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg)
{
	if (json_is_null(v))
		return;
	if (!json_is_object(v)) {
		vp_cfg_report(ld, path, "expected an object or null, got %s", vp_cfg_type_name(json_typeof(v)));
		return;
	}
	(void)vp_cfg_walk_object(ld, path, v, collector_fields, N_ELEMS(collector_fields),
	                         &cfg->collector);
}

/* The configuration: parsed once from JSON, validated, read-only afterwards. */
#ifndef VP_CONFIG_H
#define VP_CONFIG_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "config/url.h"

/* A postgres target's "tls", as libpq's sslmode names them. The default is
 * zero, so that a target made without the loader (a URL on the command
 * line, calloc'd) has it too. */
enum vp_tls_mode {
	VP_TLS_PREFER,         /* ask; plaintext when the server declines (the default) */
	VP_TLS_DISABLE,        /* never ask for TLS */
	VP_TLS_REQUIRE,        /* TLS or fail; the certificate is not verified */
	VP_TLS_VERIFY_FULL,    /* TLS with the chain and the host name verified */
	VP_TLS_MAX,
	VP_TLS_INVALID = -EINVAL,
};

/* An http(s) target's expect_status: the statuses that mean ok, as
 * inclusive ranges ("200-399", "200,204", "200-299,404"). n == 0 means the
 * default, 200-399, so that a target made without the loader has it too. */
struct vp_status_range {
	uint16_t lo;
	uint16_t hi;
};

struct vp_status_ranges {
	uint8_t n;
	struct vp_status_range r[VP_HTTP_EXPECT_MAX];
};

#define VP_PG_DEFAULT_USER "vpcprobe"
#define VP_PG_DEFAULT_DATABASE "postgres"

struct vp_target {
	char *name;            /* owned */
	char *url_text;        /* owned: the URL as written */
	struct vp_url url;
	uint32_t interval_s;   /* the target's own, or defaults.interval_s */
	uint32_t timeout_ms;   /* the target's own, or defaults.timeout_ms */
	char *password_file;   /* owned, NULL when not set */
	/* Owned secret: password_file's content, read when the config loads,
	 * less one trailing newline; NULL without password_file. NUL-terminated
	 * and free of NULs. Never printed; wiped by vp_config_free(). */
	char *password;
	size_t password_len;
	char *user;            /* owned, postgres only; NULL: VP_PG_DEFAULT_USER */
	char *database;        /* owned, postgres only; NULL: VP_PG_DEFAULT_DATABASE */
	char *username;        /* owned, redis only; NULL: AUTH with the password alone */
	enum vp_tls_mode tls;  /* postgres only; VP_TLS_PREFER unless set */
	struct vp_status_ranges expect_status; /* http(s) only */
	char *host_header;     /* owned, http(s) only; NULL: the URL's host (and port) */
	/* Owned, postgres, rediss and https: a PEM file of the CA certificates
	 * that sign the server's (Cloud SQL's server CA, Memorystore's CA),
	 * checked at load; NULL: the system's CA bundle. */
	char *ca_file;
	/* The Serverless VPC Access connector's range (or Direct VPC egress
	 * subnet) that must reach this target, for the status page's firewall
	 * commands; family 0 when not set. */
	struct vp_cidr connector_range;
	/* The vpcprobe agent on the target's host (issue 3): when a probe is
	 * refused, the runner asks it GET /api/v1/listeners?port=N. Owned,
	 * NULL when not set: "http://10.20.0.5:9464" as written, no path. */
	char *agent_url;
	char *agent_token_file; /* owned, NULL when not set (needs agent_url) */
	/* Owned secret: agent_token_file's content, less one trailing newline,
	 * sent as "Authorization: Bearer TOKEN"; printable bytes without
	 * spaces. NULL without agent_token_file. Wiped by vp_config_free(). */
	char *agent_token;
	size_t agent_token_len;
};

struct vp_listener_check {
	uint16_t port;
};

/* struct vp_cidr lives in config/url.h, next to its parser. */

struct vp_beacon {
	char *listen;          /* owned: "ADDR:PORT" as written */
	struct vp_cidr *expect_from;  /* owned array */
	size_t n_expect_from;
};

enum vp_collector_format {
	VP_COLLECTOR_JSON,
	VP_COLLECTOR_OTLP,
};

struct vp_collector {
	char *url;             /* owned, NULL when there is no collector */
	enum vp_collector_format format;
	char *token_file;      /* owned, may be NULL */
	uint32_t spool_max_mb;
	char *ca_file;         /* owned, NULL: the system's CA bundle */
	uint32_t batch_max;    /* results per batch */
	uint32_t timeout_ms;   /* one POST, connect included */
};

struct vp_config {
	char *source;          /* owned: the file's path, or "(embedded default)" */

	char *agent_name;      /* owned: agent.name, or the host name */
	char *status_listen;   /* owned: "127.0.0.1:9464" by default */
	char *status_token_file; /* owned, may be NULL */
	char *state_dir;       /* owned: "/var/lib/vpcprobe" by default */
	char **dns_servers;    /* owned array of owned strings */
	size_t n_dns_servers;
	uint32_t max_in_flight; /* agent.max_in_flight */
	char *metadata_url;    /* owned: agent.metadata_url, NULL: the metadata server (on GCE) */
	/* agent.gcloud_exports: a directory of gcloud's JSON exports (the
	 * file names of `vpcprobe diagnose --exports`), read at start and at
	 * SIGHUP for the page's firewall line; "" when not set. An array, not
	 * a pointer, so that vp_config_free() has nothing more to free. */
	char gcloud_exports[VP_PATH_MAX];

	uint32_t interval_s;   /* defaults.interval_s */
	uint32_t timeout_ms;   /* defaults.timeout_ms */

	struct vp_target *targets;  /* owned array */
	size_t n_targets;
	struct vp_listener_check *listeners;  /* owned array */
	size_t n_listeners;
	struct vp_beacon *beacons;  /* owned array */
	size_t n_beacons;
	struct vp_collector collector;
};

/* The configuration used when no file is given and /etc/vpcprobe/vpcprobe.json
 * does not exist: this host's 5432, 6379 and 8080. */
extern const char vp_config_default_json[];
#define VP_CONFIG_DEFAULT_PATH "/etc/vpcprobe/vpcprobe.json"
#define VP_CONFIG_EMBEDDED_NAME "(embedded default)"

/* Load and validate. On failure return -errno (-EINVAL for a bad config,
 * the open/read errno for an unreadable file) and write one message per line
 * into 'err', each naming the source, the JSON path (or line and column for a
 * syntax error) and what was expected, e.g.
 *   config '/etc/vpcprobe/vpcprobe.json': targets[3].timeout_ms: 0 not in 1..600000
 * '*ret' is set only on success. */
int vp_config_load_file(const char *path, struct vp_config **ret, char *err, size_t errlen);
int vp_config_load_string(const char *json, const char *source, struct vp_config **ret,
                          char *err, size_t errlen);

/* "disable", "prefer", "require", "verify-full"; "invalid" otherwise. */
const char *vp_tls_mode_name(enum vp_tls_mode mode);

/* Accepts NULL. Returns NULL. */
struct vp_config *vp_config_free(struct vp_config *cfg);

#endif

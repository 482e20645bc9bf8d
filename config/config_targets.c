/* The config loader's "defaults" and "targets" (config_int.h): each target
 * key's parser, the keys that apply to some kinds only, and the checks
 * across keys and targets. */
#include "config/config_int.h"
#include "config/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- defaults and targets ---- */

static const struct field defaults_fields[] = {
	F_UINT("interval_s", struct vp_config, interval_s, VP_INTERVAL_S_MIN, VP_INTERVAL_S_MAX),
	F_UINT("timeout_ms", struct vp_config, timeout_ms, VP_TIMEOUT_MS_MIN, VP_TIMEOUT_MS_MAX),
};

/* A probe must end before the next one of the same target starts, or
 * probes of a dead target would pile up. */
static void check_timeout(struct loader *ld, const char *path, uint32_t timeout_ms,
                          uint32_t interval_s)
{
	if ((uint64_t)timeout_ms <= (uint64_t)interval_s * 1000)
		return;
	vp_cfg_report(ld, path, "%u ms is longer than the interval of %u s; timeout_ms must be at "
	              "most interval_s*1000", timeout_ms, interval_s);
}

void vp_cfg_load_defaults(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg)
{
	unsigned before = ld->n_errors;
	char sub[JPATH_MAX];

	(void)vp_cfg_walk_object(ld, path, v, defaults_fields, N_ELEMS(defaults_fields), cfg);
	if (ld->n_errors == before) {
		vp_cfg_join_path(sub, sizeof(sub), path, "timeout_ms", 0);
		check_timeout(ld, sub, cfg->timeout_ms, cfg->interval_s);
	}
}

static void parse_url(struct loader *ld, const char *path, json_t *v, void *dst,
                      const struct field *f)
{
	struct vp_target *t = dst;
	struct vp_url url;
	char msg[VP_ERR_MAX];

	if (!vp_cfg_expect_type(ld, path, v, JSON_STRING))
		return;
	if (vp_url_parse(json_string_value(v), &url, msg, sizeof(msg)) < 0) {
		vp_cfg_report(ld, path, "%s", msg);
		return;
	}
	vp_url_free(&t->url);
	t->url = url;
	vp_cfg_set_string(ld, path, &t->url_text, json_string_value(v));
}

static void load_password(struct loader *ld, const char *path, struct vp_target *t)
{
	const char *file = t->password_file;
	int r = vp_secret_read(file, VP_PASSWORD_MAX, &t->password, &t->password_len);

	if (r == -EINVAL)
		vp_cfg_report(ld, path, "'%s' is not a regular file", file);
	else if (r == -EFBIG)
		vp_cfg_report(ld, path, "'%s' is more than %d bytes, the limit for a password", file,
		              VP_PASSWORD_MAX);
	else if (r == -ENODATA)
		vp_cfg_report(ld, path, "'%s' is empty; it must hold the password", file);
	else if (r == -EILSEQ)
		vp_cfg_report(ld, path, "'%s' holds a NUL byte, which no password can", file);
	else if (r == -ENOMEM)
		vp_cfg_report_oom(ld, path);
	else if (r < 0)
		vp_cfg_report(ld, path, "cannot read '%s': %s", file, strerror(-r));
}

static void parse_password_file(struct loader *ld, const char *path, json_t *v, void *dst,
                                const struct field *f)
{
	struct vp_target *t = dst;

	if (!vp_cfg_expect_type(ld, path, v, JSON_STRING) ||
	    !vp_cfg_check_string(ld, path, v, 1, FILE_PATH_LEN_MAX))
		return;
	vp_cfg_set_string(ld, path, &t->password_file, json_string_value(v));
	if (t->password_file != NULL)
		load_password(ld, path, t);
}

static const char *const tls_modes[] = {
	[VP_TLS_DISABLE] = "disable",
	[VP_TLS_PREFER] = "prefer",
	[VP_TLS_REQUIRE] = "require",
	[VP_TLS_VERIFY_FULL] = "verify-full",
};

const char *vp_tls_mode_name(enum vp_tls_mode mode)
{
	if (mode < 0 || mode >= VP_TLS_MAX)
		return "invalid";
	return tls_modes[mode];
}

static void parse_tls(struct loader *ld, const char *path, json_t *v, void *dst,
                      const struct field *f)
{
	struct vp_target *t = dst;
	const char *s;

	if (!vp_cfg_expect_type(ld, path, v, JSON_STRING) || !vp_cfg_check_string(ld, path, v, 0, 32))
		return;
	s = json_string_value(v);
	for (int m = 0; m < VP_TLS_MAX; m++) {
		if (strcmp(s, tls_modes[m]) == 0) {
			t->tls = (enum vp_tls_mode)m;
			return;
		}
	}
	vp_cfg_report(ld, path, "'%s' is not a tls mode; expected \"disable\", \"prefer\", \"require\" "
	              "or \"verify-full\"", s);
}

#define K_PG (1u << VP_KIND_POSTGRES)
#define K_REDIS ((1u << VP_KIND_REDIS) | (1u << VP_KIND_REDISS))
#define K_HTTP ((1u << VP_KIND_HTTP) | (1u << VP_KIND_HTTPS))
#define K_HTTPS (1u << VP_KIND_HTTPS)
#define K_REDISS (1u << VP_KIND_REDISS)

/* One status code of expect_status: three digits, 100..599. */
static int parse_status_code(const char **s, uint16_t *ret)
{
	unsigned v = 0;

	for (int i = 0; i < 3; i++, (*s)++) {
		if (**s < '0' || **s > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(**s - '0');
	}
	if (v < 100 || v > 599)
		return -ERANGE;
	*ret = (uint16_t)v;
	return 0;
}

/* expect_status: codes and inclusive ranges, comma-separated, no spaces:
 * "200-399", "200,204", "200-299,404". One form only, so that a reader of
 * any config knows what it means. */
static void parse_expect_status(struct loader *ld, const char *path, json_t *v, void *dst,
                                const struct field *f)
{
	struct vp_status_ranges *out = &((struct vp_target *)dst)->expect_status;
	struct vp_status_ranges rs = { .n = 0 };
	const char *text, *s;
	int r = 0;

	if (!vp_cfg_expect_type(ld, path, v, JSON_STRING) ||
	    !vp_cfg_check_string(ld, path, v, 1, VP_HTTP_EXPECT_TEXT_MAX))
		return;
	text = s = json_string_value(v);
	while (r == 0) {
		struct vp_status_range *range;

		if (rs.n == VP_HTTP_EXPECT_MAX) {
			vp_cfg_report(ld, path, "'%s': more than %d codes and ranges", text, VP_HTTP_EXPECT_MAX);
			return;
		}
		range = &rs.r[rs.n];
		r = parse_status_code(&s, &range->lo);
		range->hi = range->lo;
		if (r == 0 && *s == '-') {
			s++;
			r = parse_status_code(&s, &range->hi);
		}
		if (r == 0 && range->hi < range->lo) {
			vp_cfg_report(ld, path, "'%s': the range %u-%u is reversed", text, range->lo, range->hi);
			return;
		}
		rs.n++;
		if (r == 0 && *s != ',')
			break;
		s++;
	}
	if (r == -ERANGE)
		vp_cfg_report(ld, path, "'%s': a status code is 100..599", text);
	else if (r < 0 || *s != '\0')
		vp_cfg_report(ld, path, "'%s': expected status codes and ranges such as \"200-399\", "
		              "\"200,204\" or \"200-299,404\"", text);
	else
		*out = rs;
}

/* host_header goes into a request header as it is: a host name or address
 * and an optional port, nothing that could end the header or start another. */
static void parse_host_header(struct loader *ld, const char *path, json_t *v, void *dst,
                              const struct field *f)
{
	struct vp_target *t = dst;
	const char *s;

	if (!vp_cfg_expect_type(ld, path, v, JSON_STRING) ||
	    !vp_cfg_check_string(ld, path, v, 1, VP_HOST_MAX - 1))
		return;
	s = json_string_value(v);
	if (s[strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]")]) {
		vp_cfg_report(ld, path, "'%s': expected a host name and an optional port, as in "
		              "\"api.internal\" or \"api.internal:8080\"", s);
		return;
	}
	vp_cfg_set_string(ld, path, &t->host_header, s);
}

/* What a CA file holds: PEM certificates, and no private key, which has no
 * business there (a client key picked by mistake). Returns whether it is
 * fine; reports otherwise. */
static bool check_ca_content(struct loader *ld, const char *path, const char *file, int fd,
                             size_t size)
{
	char *buf = malloc(size + 1);
	size_t got = 0;
	ssize_t n;
	bool ok = false;

	if (buf == NULL) {
		vp_cfg_report_oom(ld, path);
		return false;
	}
	while (got < size && (n = read(fd, buf + got, size - got)) > 0)
		got += (size_t)n;
	if (memmem(buf, got, "PRIVATE KEY-----", 16) != NULL)
		vp_cfg_report(ld, path, "'%s' holds a private key; ca_file takes CA certificates only", file);
	else if (memmem(buf, got, "-----BEGIN CERTIFICATE-----", 27) == NULL)
		vp_cfg_report(ld, path, "'%s' holds no PEM certificate (-----BEGIN CERTIFICATE-----); expected "
		              "the server's CA", file);
	else
		ok = true;
	free(buf);
	return ok;
}

/* The CA bundle is read by every https, rediss and postgres TLS probe
 * (OpenSSL parses it then); what would fail all of them is a config error
 * now: a missing or unreadable file, not a regular one, too large, without
 * a certificate. */
static void parse_ca_file(struct loader *ld, const char *path, json_t *v, void *dst,
                          const struct field *f)
{
	struct vp_target *t = dst;
	struct stat st;
	const char *s;
	int fd = -1;

	if (!vp_cfg_expect_type(ld, path, v, JSON_STRING) ||
	    !vp_cfg_check_string(ld, path, v, 1, FILE_PATH_LEN_MAX))
		return;
	s = json_string_value(v);
	/* O_NONBLOCK: a FIFO must not hang the loader. */
	fd = open(s, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0) {
		vp_cfg_report(ld, path, "cannot read '%s': %s", s, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		vp_cfg_report(ld, path, "'%s' is not a regular file; expected PEM certificates", s);
		goto out;
	}
	if (st.st_size > VP_TLS_CA_FILE_MAX) {
		vp_cfg_report(ld, path, "'%s' is more than %d bytes, the limit for a CA file", s,
		              VP_TLS_CA_FILE_MAX);
		goto out;
	}
	if (check_ca_content(ld, path, s, fd, (size_t)st.st_size))
		vp_cfg_set_string(ld, path, &t->ca_file, s);
out:
	if (fd >= 0)
		close(fd);
}

/* A connector's range is an IPv4 /28, and Direct VPC egress sends from its
 * subnet, which is wider: anything narrower than /28, or IPv6, is a mistake
 * (Cloud Run reaches the VPC over IPv4). */
static void parse_connector_range(struct loader *ld, const char *path, json_t *v, void *dst,
                                  const struct field *f)
{
	struct vp_target *t = dst;
	struct vp_cidr c;
	char msg[VP_ERR_MAX];

	if (!vp_cfg_expect_type(ld, path, v, JSON_STRING) || !vp_cfg_check_string(ld, path, v, 1, 64))
		return;
	if (vp_cidr_parse(json_string_value(v), &c, msg, sizeof(msg)) < 0) {
		vp_cfg_report(ld, path, "%s", msg);
		return;
	}
	if (c.family != AF_INET || c.prefix > 28 || c.prefix < 8) {
		vp_cfg_report(ld, path, "'%s': expected the IPv4 range of a Serverless VPC Access connector "
		              "(a /28, such as 10.8.0.0/28) or of a Direct VPC egress subnet (/8../28)",
		              json_string_value(v));
		return;
	}
	t->connector_range = c;
}

/* agent_url: the base URL of the vpcprobe agent on the target's host, whose
 * status server answers /api/v1/listeners (issue 3). Credentials are
 * refused by vp_url_parse(); the token goes in agent_token_file. The host
 * must be an IP address: the ask is a libcurl transfer, and libcurl would
 * resolve a name with its own resolver, past agent.dns_servers and
 * probes/dns.c that every target's name goes through. An agent on the
 * target's host is reached on that host's internal address anyway. */
static void parse_agent_url(struct loader *ld, const char *path, json_t *v, void *dst,
                            const struct field *f)
{
	struct vp_target *t = dst;
	struct vp_url url;
	char msg[VP_ERR_MAX];
	const char *s;
	bool bare;

	if (!vp_cfg_expect_type(ld, path, v, JSON_STRING) ||
	    !vp_cfg_check_string(ld, path, v, 1, VP_URL_MAX))
		return;
	s = json_string_value(v);
	if (vp_url_parse(s, &url, msg, sizeof(msg)) < 0) {
		vp_cfg_report(ld, path, "%s", msg);
		return;
	}
	bare = url.path != NULL && strcmp(url.path, "/") == 0;
	vp_url_free(&url);
	if (url.kind != VP_KIND_HTTP && url.kind != VP_KIND_HTTPS) {
		vp_cfg_report(ld, path, "'%.80s': the peer agent's status server is reached over http:// "
		              "or https://", s);
		return;
	}
	if (url.host_type == VP_HOST_NAME) {
		vp_cfg_report(ld, path, "'%.80s': agent_url must name the target agent by IP address: "
		              "a host name would not be resolved through agent.dns_servers as the "
		              "targets' names are; write the internal address of the target's host, "
		              "such as \"http://10.20.0.5:9464\"", s);
		return;
	}
	/* The runner appends /api/v1/listeners?port=N itself, so nothing may
	 * follow the authority: no path, no query, no fragment. */
	if (!bare || strpbrk(s, "?#") != NULL) {
		vp_cfg_report(ld, path, "'%.80s': expected the agent's base URL without a path, such as "
		              "\"http://10.20.0.5:9464\"", s);
		return;
	}
	vp_cfg_set_string(ld, path, &t->agent_url, s);
}

/* The token goes into a request header as it is: like status_token_file on
 * the other side, one run of printable bytes without spaces. */
static void load_agent_token(struct loader *ld, const char *path, struct vp_target *t)
{
	const char *file = t->agent_token_file;
	int r = vp_secret_read(file, VP_STATUS_TOKEN_MAX, &t->agent_token, &t->agent_token_len);

	if (r == -EINVAL)
		vp_cfg_report(ld, path, "'%s' is not a regular file", file);
	else if (r == -EFBIG)
		vp_cfg_report(ld, path, "'%s' is more than %d bytes, the limit for a status token", file,
		              VP_STATUS_TOKEN_MAX);
	else if (r == -ENODATA)
		vp_cfg_report(ld, path, "'%s' is empty; it must hold the peer agent's status token", file);
	else if (r == -ENOMEM)
		vp_cfg_report_oom(ld, path);
	else if (r < 0 && r != -EILSEQ)
		vp_cfg_report(ld, path, "cannot read '%s': %s", file, strerror(-r));
	if (r == 0) {
		for (size_t i = 0; i < t->agent_token_len; i++) {
			unsigned char c = (unsigned char)t->agent_token[i];

			if (c > ' ' && c < 0x7f)
				continue;
			r = -EILSEQ;
			t->agent_token = vp_secret_free(t->agent_token, t->agent_token_len);
			t->agent_token_len = 0;
			break;
		}
	}
	if (r == -EILSEQ)
		vp_cfg_report(ld, path, "'%s' must hold one token of printable bytes without spaces, as "
		              "the peer's status_token_file does", file);
}

static void parse_agent_token_file(struct loader *ld, const char *path, json_t *v, void *dst,
                                   const struct field *f)
{
	struct vp_target *t = dst;

	if (!vp_cfg_expect_type(ld, path, v, JSON_STRING) ||
	    !vp_cfg_check_string(ld, path, v, 1, FILE_PATH_LEN_MAX))
		return;
	vp_cfg_set_string(ld, path, &t->agent_token_file, json_string_value(v));
	if (t->agent_token_file != NULL)
		load_agent_token(ld, path, t);
}

enum { TF_NAME, TF_URL, TF_INTERVAL, TF_TIMEOUT, TF_PASSWORD, TF_USER, TF_DATABASE,
       TF_USERNAME, TF_TLS, TF_CONNECTOR,
       TF_EXPECT_STATUS, TF_HOST_HEADER, TF_CA_FILE, TF_AGENT_URL, TF_AGENT_TOKEN };

static const struct field target_fields[] = {
	[TF_NAME] = { .key = "name", .type = FT_STR, .required = true, .min = 1,
	              .max = VP_NAME_MAX, .off = offsetof(struct vp_target, name) },
	[TF_URL] = { .key = "url", .type = FT_CUSTOM, .required = true,
	             .off = offsetof(struct vp_target, url_text), .parse = parse_url },
	[TF_INTERVAL] = F_UINT("interval_s", struct vp_target, interval_s,
	                       VP_INTERVAL_S_MIN, VP_INTERVAL_S_MAX),
	[TF_TIMEOUT] = F_UINT("timeout_ms", struct vp_target, timeout_ms,
	                      VP_TIMEOUT_MS_MIN, VP_TIMEOUT_MS_MAX),
	[TF_PASSWORD] = { .key = "password_file", .type = FT_CUSTOM, .kinds = K_PG | K_REDIS,
	                  .off = offsetof(struct vp_target, password_file),
	                  .parse = parse_password_file },
	[TF_USER] = { .key = "user", .type = FT_STR, .min = 1, .max = VP_PG_NAME_MAX,
	              .kinds = K_PG, .off = offsetof(struct vp_target, user) },
	[TF_DATABASE] = { .key = "database", .type = FT_STR, .min = 1, .max = VP_PG_NAME_MAX,
	                  .kinds = K_PG, .off = offsetof(struct vp_target, database) },
	[TF_USERNAME] = { .key = "username", .type = FT_STR, .min = 1, .max = VP_REDIS_USER_MAX,
	                  .kinds = K_REDIS, .off = offsetof(struct vp_target, username) },
	[TF_TLS] = { .key = "tls", .type = FT_CUSTOM, .kinds = K_PG,
	             .off = offsetof(struct vp_target, tls), .parse = parse_tls },
	[TF_CONNECTOR] = F_CUSTOM("connector_range", struct vp_target, connector_range,
	                          parse_connector_range),
	[TF_EXPECT_STATUS] = { .key = "expect_status", .type = FT_CUSTOM, .kinds = K_HTTP,
	                       .off = offsetof(struct vp_target, expect_status),
	                       .parse = parse_expect_status },
	[TF_HOST_HEADER] = { .key = "host_header", .type = FT_CUSTOM, .kinds = K_HTTP,
	                     .off = offsetof(struct vp_target, host_header),
	                     .parse = parse_host_header },
	[TF_CA_FILE] = { .key = "ca_file", .type = FT_CUSTOM, .kinds = K_PG | K_REDISS | K_HTTPS,
	                 .off = offsetof(struct vp_target, ca_file), .parse = parse_ca_file },
	[TF_AGENT_URL] = F_CUSTOM("agent_url", struct vp_target, agent_url, parse_agent_url),
	[TF_AGENT_TOKEN] = F_CUSTOM("agent_token_file", struct vp_target, agent_token_file,
	                            parse_agent_token_file),
};

/* A key that the target's kind does not use would be silently ignored; a
 * typo in the URL's scheme must not hide a password or a TLS setting. */
static void check_kinds(struct loader *ld, const char *path, const struct vp_target *t,
                        uint32_t seen)
{
	char sub[JPATH_MAX];
	char kinds[128];

	for (size_t i = 0; i < N_ELEMS(target_fields); i++) {
		uint32_t k = target_fields[i].kinds;
		size_t used = 0;

		if ((seen & (1u << i)) == 0 || k == 0 || (k & (1u << t->url.kind)) != 0)
			continue;
		kinds[0] = '\0';
		for (int j = 0; j < VP_KIND_MAX && used < sizeof(kinds); j++) {
			int w;

			if ((k & (1u << j)) == 0)
				continue;
			w = snprintf(kinds + used, sizeof(kinds) - used, "%s%s://", used ? ", " : "",
			             vp_kind_name((enum vp_kind)j));
			used += w > 0 ? (size_t)w : 0;
		}
		vp_cfg_join_path(sub, sizeof(sub), path, target_fields[i].key, 0);
		vp_cfg_report(ld, sub, "applies to %s targets only, not to %s://", kinds,
		              vp_kind_name(t->url.kind));
	}
}

static void load_target(struct loader *ld, const char *path, json_t *v, void *elem,
                        const void *ctx)
{
	const struct vp_config *cfg = ctx;
	struct vp_target *t = elem;
	unsigned before = ld->n_errors;
	char sub[JPATH_MAX];
	uint32_t seen;

	t->interval_s = cfg->interval_s;
	t->timeout_ms = cfg->timeout_ms;
	t->tls = VP_TLS_PREFER;
	seen = vp_cfg_walk_object(ld, path, v, target_fields, N_ELEMS(target_fields), t);
	if (t->url_text != NULL)
		check_kinds(ld, path, t, seen);
	/* A CA that no handshake would use is a mistake in the other key. */
	if ((seen & (1u << TF_CA_FILE)) != 0 && t->url.kind == VP_KIND_POSTGRES &&
	    t->tls == VP_TLS_DISABLE) {
		vp_cfg_join_path(sub, sizeof(sub), path, "ca_file", 0);
		vp_cfg_report(ld, sub, "needs TLS, and tls is \"disable\"");
	}
	/* A token with no agent to send it to is a mistake in the other key. */
	if ((seen & (1u << TF_AGENT_TOKEN)) != 0 && (seen & (1u << TF_AGENT_URL)) == 0) {
		vp_cfg_join_path(sub, sizeof(sub), path, "agent_token_file", 0);
		vp_cfg_report(ld, sub, "needs agent_url, the peer agent to send the token to");
	}
	/* Defaults were checked on their own; only an override can clash here. */
	if (ld->n_errors != before || (seen & ((1u << TF_INTERVAL) | (1u << TF_TIMEOUT))) == 0)
		return;
	vp_cfg_join_path(sub, sizeof(sub), path, "timeout_ms", 0);
	check_timeout(ld, sub, t->timeout_ms, t->interval_s);
}

static int cmp_target_name(const void *a, const void *b)
{
	const struct vp_target *x = *(const struct vp_target *const *)a;
	const struct vp_target *y = *(const struct vp_target *const *)b;
	int c = strcmp(x->name, y->name);

	/* Same array, so address order is index order: keeps the sort stable. */
	if (c != 0)
		return c;
	return x < y ? -1 : x > y;
}

/* Sorting rather than comparing every pair: 100,000 targets would make that
 * 5e9 comparisons. */
static void check_duplicate_names(struct loader *ld, const struct vp_config *cfg)
{
	const struct vp_target **by_name;
	char sub[JPATH_MAX];
	size_t n = 0;

	by_name = vp_cfg_alloc_array(ld, "targets", cfg->n_targets, sizeof(*by_name));
	if (by_name == NULL)
		return;
	for (size_t i = 0; i < cfg->n_targets; i++)
		if (cfg->targets[i].name != NULL)
			by_name[n++] = &cfg->targets[i];
	qsort(by_name, n, sizeof(*by_name), cmp_target_name);
	for (size_t i = 1, first = 0; i < n; i++) {
		if (strcmp(by_name[i]->name, by_name[first]->name) != 0) {
			first = i;
			continue;
		}
		snprintf(sub, sizeof(sub), "targets[%zu].name", (size_t)(by_name[i] - cfg->targets));
		vp_cfg_report(ld, sub, "'%s' is also the name of targets[%zu]; names must be unique",
		              by_name[i]->name, (size_t)(by_name[first] - cfg->targets));
	}
	free(by_name);
}

void vp_cfg_load_targets(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg)
{
	cfg->targets = vp_cfg_load_elements(ld, path, v, VP_CONFIG_MAX_TARGETS, sizeof(*cfg->targets),
	                                    &cfg->n_targets, load_target, cfg);
	if (cfg->targets != NULL)
		check_duplicate_names(ld, cfg);
}

/* The config loader: JSON text in (jansson), a validated struct vp_config out.
 *
 * Validation does not stop at the first problem. Every check reports into a
 * list of messages and carries on, so that `vpcprobe validate` shows all of
 * them at once instead of making the user fix one typo per run. The shape of
 * each JSON object is a table of fields; the table also gives the "known:"
 * list when a key is misspelt. */
#include "config/config.h"
#include "config/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define JPATH_MAX 256               /* "beacons[12].expect_from[200]" and the like */
#define KEY_SHOW_MAX 64             /* an unknown key is cut to this in messages */
#define FILE_PATH_LEN_MAX (PATH_MAX - 1)
#define DNS_DEFAULT_PORT 53
#define DEFAULT_STATUS_LISTEN "127.0.0.1:9464"
#define DEFAULT_STATE_DIR "/var/lib/vpcprobe"
#define SPOOL_MAX_MB_DEFAULT 64
#define SPOOL_MAX_MB_MAX 65536

struct loader {
	const char *source;   /* borrowed: the file name or label, for messages */
	char *err;            /* borrowed: the caller's buffer, may be NULL */
	size_t errlen;
	size_t used;          /* bytes written to 'err', without the NUL */
	unsigned n_errors;
	bool oom;
};

enum ftype {
	FT_STR,       /* char *, owned; min..max bytes */
	FT_STR_NULL,  /* the same, and JSON null leaves NULL */
	FT_UINT,      /* an integer in min..max, into a uint16_t or uint32_t */
	FT_CUSTOM,    /* 'parse' does it all */
};

struct field {
	const char *key;
	enum ftype type;
	bool required;
	uint32_t min;
	uint32_t max;
	size_t off;     /* where the value goes in the destination struct */
	size_t size;    /* FT_UINT: sizeof the destination */
	uint32_t kinds; /* targets: the kinds the key applies to (1u << kind), 0 for all */
	void (*parse)(struct loader *ld, const char *path, json_t *v, void *dst,
	              const struct field *f);
};

#define F_STR(k, st, m, lo, hi) \
	{ .key = k, .type = FT_STR, .min = lo, .max = hi, .off = offsetof(st, m) }
#define F_STR_NULL(k, st, m, lo, hi) \
	{ .key = k, .type = FT_STR_NULL, .min = lo, .max = hi, .off = offsetof(st, m) }
#define F_UINT(k, st, m, lo, hi) \
	{ .key = k, .type = FT_UINT, .min = lo, .max = hi, .off = offsetof(st, m), \
	  .size = sizeof(((st *)NULL)->m) }
#define F_CUSTOM(k, st, m, fn) \
	{ .key = k, .type = FT_CUSTOM, .off = offsetof(st, m), .parse = fn }
#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

__attribute__((format(printf, 3, 4)))
static void report(struct loader *ld, const char *path, const char *fmt, ...)
{
	char msg[VP_ERR_MAX];
	va_list ap;
	int n;

	ld->n_errors++;
	if (ld->n_errors > VP_CONFIG_MAX_ERRORS || ld->err == NULL || ld->used + 1 >= ld->errlen)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap); /* a cut message is still useful */
	va_end(ap);
	n = snprintf(ld->err + ld->used, ld->errlen - ld->used, "%sconfig '%s': %s%s%s",
	             ld->used > 0 ? "\n" : "", ld->source, path, path[0] != '\0' ? ": " : "", msg);
	if (n > 0)
		ld->used += (size_t)n < ld->errlen - ld->used ? (size_t)n : ld->errlen - ld->used - 1;
}

static void report_oom(struct loader *ld, const char *path)
{
	ld->oom = true;
	report(ld, path, "out of memory");
}

static char *dup_or_report(struct loader *ld, const char *path, const char *s)
{
	char *copy = strdup(s);

	if (copy == NULL)
		report_oom(ld, path);
	return copy;
}

static const char *type_name(json_type t)
{
	switch (t) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a real number";
	case JSON_TRUE: return "true";
	case JSON_FALSE: return "false";
	case JSON_NULL: return "null";
	}
	return "something else";
}

static bool expect_type(struct loader *ld, const char *path, const json_t *v, json_type t)
{
	if (json_typeof(v) == t)
		return true;
	report(ld, path, "expected %s, got %s", type_name(t), type_name(json_typeof(v)));
	return false;
}

/* Appends ".key" (or "[i]" when 'key' is NULL) to 'path'. Keys come from the
 * user's file, so they are cut short and control characters are masked. */
static void join_path(char *out, size_t outlen, const char *path, const char *key, size_t i)
{
	char shown[KEY_SHOW_MAX + 4];
	size_t n = 0;

	int w;

	if (key == NULL) {
		w = snprintf(out, outlen, "%s[%zu]", path, i);
	} else {
		for (; key[n] != '\0' && n < KEY_SHOW_MAX; n++)
			shown[n] = (unsigned char)key[n] < 0x20 || key[n] == 0x7f ? '?' : key[n];
		memcpy(shown + n, key[n] != '\0' ? "..." : "", key[n] != '\0' ? 4 : 1);
		w = snprintf(out, outlen, "%s%s%s", path, path[0] != '\0' ? "." : "", shown);
	}
	/* A path deeper than the buffer is cut short, and says so. */
	if (w >= 0 && (size_t)w >= outlen && outlen > 4)
		memcpy(out + outlen - 4, "...", 4);
}

/* Strings end up in file names, records, labels and the HTML page; none of
 * them has a use for C0 or C1 control characters (the latter as UTF-8). */
static bool check_string(struct loader *ld, const char *path, const json_t *v,
                         uint32_t min, uint32_t max)
{
	const unsigned char *s = (const unsigned char *)json_string_value(v);
	size_t len = json_string_length(v);

	if (len < min) {
		report(ld, path, "empty string; expected %u..%u bytes", min, max);
		return false;
	}
	if (len > max) {
		report(ld, path, "%zu bytes, longer than %u", len, max);
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] < 0x20 || s[i] == 0x7f || (s[i] == 0xc2 && s[i + 1] >= 0x80 && s[i + 1] < 0xa0)) {
			report(ld, path, "control character at byte %zu", i);
			return false;
		}
	}
	return true;
}

static bool get_uint(struct loader *ld, const char *path, const json_t *v,
                     uint32_t min, uint32_t max, uint32_t *ret)
{
	json_int_t x;

	if (!expect_type(ld, path, v, JSON_INTEGER))
		return false;
	x = json_integer_value(v);
	if (x < (json_int_t)min || x > (json_int_t)max) {
		report(ld, path, "%" JSON_INTEGER_FORMAT " not in %u..%u", x, min, max);
		return false;
	}
	*ret = (uint32_t)x;
	return true;
}

static void set_string(struct loader *ld, const char *path, char **slot, const char *s)
{
	char *copy = dup_or_report(ld, path, s);

	if (copy == NULL)
		return;
	free(*slot);
	*slot = copy;
}

static void parse_field(struct loader *ld, const char *path, const struct field *f,
                        json_t *v, void *dst)
{
	void *slot = (char *)dst + f->off;
	uint32_t x;

	switch (f->type) {
	case FT_STR_NULL:
		if (json_is_null(v)) {
			free(*(char **)slot);
			*(char **)slot = NULL;
		} else if (!json_is_string(v)) {
			report(ld, path, "expected a string or null, got %s",
			       type_name(json_typeof(v)));
		} else if (check_string(ld, path, v, f->min, f->max)) {
			set_string(ld, path, slot, json_string_value(v));
		}
		return;
	case FT_STR:
		if (expect_type(ld, path, v, JSON_STRING) && check_string(ld, path, v, f->min, f->max))
			set_string(ld, path, slot, json_string_value(v));
		return;
	case FT_UINT:
		if (!get_uint(ld, path, v, f->min, f->max, &x))
			return;
		if (f->size == sizeof(uint16_t))
			*(uint16_t *)slot = (uint16_t)x;
		else
			*(uint32_t *)slot = x;
		return;
	case FT_CUSTOM:
		f->parse(ld, path, v, dst, f);
		return;
	}
}

static void unknown_key(struct loader *ld, const char *path, const struct field *fields,
                        size_t n)
{
	char known[512];
	size_t used = 0;

	known[0] = '\0';
	for (size_t i = 0; i < n && used < sizeof(known); i++) {
		int w = snprintf(known + used, sizeof(known) - used, "%s%s", i > 0 ? ", " : "",
		                 fields[i].key);

		if (w > 0)
			used += (size_t)w;
	}
	report(ld, path, "unknown key (known: %s)", known);
}

/* Fills 'dst' from the JSON object 'obj' as 'fields' describe it. Returns a
 * bit mask of the fields the object has (tables have at most 32 fields). */
static uint32_t walk_object(struct loader *ld, const char *path, json_t *obj,
                            const struct field *fields, size_t n, void *dst)
{
	char sub[JPATH_MAX];
	const char *key;
	json_t *v;
	uint32_t seen = 0;
	size_t i;

	if (!expect_type(ld, path, obj, JSON_OBJECT))
		return 0;
	json_object_foreach(obj, key, v) {
		for (i = 0; i < n && strcmp(fields[i].key, key) != 0; i++)
			continue;
		join_path(sub, sizeof(sub), path, key, 0);
		if (i == n) {
			unknown_key(ld, sub, fields, n);
			continue;
		}
		seen |= 1u << i;
		parse_field(ld, sub, &fields[i], v, dst);
	}
	for (i = 0; i < n; i++) {
		if (fields[i].required && (seen & (1u << i)) == 0) {
			join_path(sub, sizeof(sub), path, fields[i].key, 0);
			report(ld, sub, "required key is missing");
		}
	}
	return seen;
}

/* Returns the array's size, or 0 after reporting a wrong type or too many
 * entries. Every array is bounded: the file size bounds them already, but a
 * named limit gives a message that says which array is at fault. */
static size_t array_size(struct loader *ld, const char *path, const json_t *v, size_t max)
{
	size_t n;

	if (!expect_type(ld, path, v, JSON_ARRAY))
		return 0;
	n = json_array_size(v);
	if (n > max) {
		report(ld, path, "%zu entries, more than the limit of %zu", n, max);
		return 0;
	}
	return n;
}

static void *alloc_array(struct loader *ld, const char *path, size_t n, size_t size)
{
	void *p = n > 0 ? calloc(n, size) : NULL;

	if (n > 0 && p == NULL)
		report_oom(ld, path);
	return p;
}

/* Loads a JSON array of at most 'max' entries into a new zeroed array of
 * 'size'-byte elements, calling 'each' on every entry with its path.
 * Returns the array (owned by the caller, NULL when empty or on error) and
 * its length in '*ret_n'. Bad entries are reported and left zeroed. */
static void *load_elements(struct loader *ld, const char *path, json_t *v, size_t max,
                           size_t size, size_t *ret_n,
                           void (*each)(struct loader *ld, const char *path, json_t *e,
                                        void *elem, const void *ctx),
                           const void *ctx)
{
	size_t n = array_size(ld, path, v, max);
	char *elems = alloc_array(ld, path, n, size);
	char sub[JPATH_MAX];
	json_t *e;
	size_t i;

	if (elems == NULL)
		return NULL;
	*ret_n = n;
	json_array_foreach(v, i, e) {
		join_path(sub, sizeof(sub), path, NULL, i);
		each(ld, sub, e, elems + i * size, ctx);
	}
	return elems;
}

/* The fields of the objects in an array, for load_elements(). */
struct object_shape {
	const struct field *fields;
	size_t n;
};

static void load_object(struct loader *ld, const char *path, json_t *e, void *elem,
                        const void *ctx)
{
	const struct object_shape *shape = ctx;

	(void)walk_object(ld, path, e, shape->fields, shape->n, elem);
}

/* ---- agent ---- */

static void parse_listen(struct loader *ld, const char *path, json_t *v, void *dst,
                         const struct field *f)
{
	struct vp_addrport ap;
	char msg[VP_ERR_MAX];

	if (!expect_type(ld, path, v, JSON_STRING))
		return;
	if (vp_addrport_parse(json_string_value(v), 0, &ap, msg, sizeof(msg)) < 0) {
		report(ld, path, "%s", msg);
		return;
	}
	set_string(ld, path, (char **)((char *)dst + f->off), json_string_value(v));
}

static void load_dns_server(struct loader *ld, const char *path, json_t *e, void *elem,
                            const void *ctx)
{
	char msg[VP_ERR_MAX];
	struct vp_addrport ap;

	if (!expect_type(ld, path, e, JSON_STRING))
		return;
	if (vp_addrport_parse(json_string_value(e), DNS_DEFAULT_PORT, &ap, msg, sizeof(msg)) < 0) {
		report(ld, path, "%s", msg);
		return;
	}
	*(char **)elem = dup_or_report(ld, path, json_string_value(e));
}

static void parse_dns_servers(struct loader *ld, const char *path, json_t *v, void *dst,
                              const struct field *f)
{
	struct vp_config *cfg = dst;

	cfg->dns_servers = load_elements(ld, path, v, VP_CONFIG_MAX_DNS_SERVERS, sizeof(char *),
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
	if (!expect_type(ld, path, v, JSON_STRING))
		return;
	s = json_string_value(v);
	if (vp_url_parse(s, &url, msg, sizeof(msg)) < 0) {
		report(ld, path, "%s", msg);
		return;
	}
	if (url.kind != VP_KIND_HTTP) {
		report(ld, path, "'%.80s': the metadata server is reached over http://", s);
		return;
	}
	set_string(ld, path, &cfg->metadata_url, s);
}

static const struct field agent_fields[] = {
	F_STR("name", struct vp_config, agent_name, 1, VP_NAME_MAX),
	F_CUSTOM("status_listen", struct vp_config, status_listen, parse_listen),
	F_STR_NULL("status_token_file", struct vp_config, status_token_file, 1, FILE_PATH_LEN_MAX),
	F_STR("state_dir", struct vp_config, state_dir, 1, FILE_PATH_LEN_MAX),
	F_CUSTOM("dns_servers", struct vp_config, dns_servers, parse_dns_servers),
	F_UINT("max_in_flight", struct vp_config, max_in_flight, 1, VP_IN_FLIGHT_MAX),
	F_CUSTOM("metadata_url", struct vp_config, metadata_url, parse_metadata_url),
};

static void load_agent(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg)
{
	(void)walk_object(ld, path, v, agent_fields, N_ELEMS(agent_fields), cfg);
}

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
	report(ld, path, "%u ms is longer than the interval of %u s; timeout_ms must be at "
	       "most interval_s*1000", timeout_ms, interval_s);
}

static void load_defaults(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg)
{
	unsigned before = ld->n_errors;
	char sub[JPATH_MAX];

	(void)walk_object(ld, path, v, defaults_fields, N_ELEMS(defaults_fields), cfg);
	if (ld->n_errors == before) {
		join_path(sub, sizeof(sub), path, "timeout_ms", 0);
		check_timeout(ld, sub, cfg->timeout_ms, cfg->interval_s);
	}
}

static void parse_url(struct loader *ld, const char *path, json_t *v, void *dst,
                      const struct field *f)
{
	struct vp_target *t = dst;
	char msg[VP_ERR_MAX];

	if (!expect_type(ld, path, v, JSON_STRING))
		return;
	if (vp_url_parse(json_string_value(v), &t->url, msg, sizeof(msg)) < 0) {
		report(ld, path, "%s", msg);
		return;
	}
	set_string(ld, path, &t->url_text, json_string_value(v));
}

static void load_password(struct loader *ld, const char *path, struct vp_target *t)
{
	const char *file = t->password_file;
	int r = vp_secret_read(file, VP_PASSWORD_MAX, &t->password, &t->password_len);

	if (r == -EINVAL)
		report(ld, path, "'%s' is not a regular file", file);
	else if (r == -EFBIG)
		report(ld, path, "'%s' is more than %d bytes, the limit for a password", file,
		       VP_PASSWORD_MAX);
	else if (r == -ENODATA)
		report(ld, path, "'%s' is empty; it must hold the password", file);
	else if (r == -EILSEQ)
		report(ld, path, "'%s' holds a NUL byte, which no password can", file);
	else if (r == -ENOMEM)
		report_oom(ld, path);
	else if (r < 0)
		report(ld, path, "cannot read '%s': %s", file, strerror(-r));
}

static void parse_password_file(struct loader *ld, const char *path, json_t *v, void *dst,
                                const struct field *f)
{
	struct vp_target *t = dst;

	if (!expect_type(ld, path, v, JSON_STRING) ||
	    !check_string(ld, path, v, 1, FILE_PATH_LEN_MAX))
		return;
	set_string(ld, path, &t->password_file, json_string_value(v));
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

	if (!expect_type(ld, path, v, JSON_STRING) || !check_string(ld, path, v, 0, 32))
		return;
	s = json_string_value(v);
	for (int m = 0; m < VP_TLS_MAX; m++) {
		if (strcmp(s, tls_modes[m]) == 0) {
			t->tls = (enum vp_tls_mode)m;
			return;
		}
	}
	report(ld, path, "'%s' is not a tls mode; expected \"disable\", \"prefer\", \"require\" "
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

	if (!expect_type(ld, path, v, JSON_STRING) ||
	    !check_string(ld, path, v, 1, VP_HTTP_EXPECT_TEXT_MAX))
		return;
	text = s = json_string_value(v);
	while (r == 0) {
		struct vp_status_range *range;

		if (rs.n == VP_HTTP_EXPECT_MAX) {
			report(ld, path, "'%s': more than %d codes and ranges", text, VP_HTTP_EXPECT_MAX);
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
			report(ld, path, "'%s': the range %u-%u is reversed", text, range->lo, range->hi);
			return;
		}
		rs.n++;
		if (r == 0 && *s != ',')
			break;
		s++;
	}
	if (r == -ERANGE)
		report(ld, path, "'%s': a status code is 100..599", text);
	else if (r < 0 || *s != '\0')
		report(ld, path, "'%s': expected status codes and ranges such as \"200-399\", "
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

	if (!expect_type(ld, path, v, JSON_STRING) || !check_string(ld, path, v, 1, VP_HOST_MAX - 1))
		return;
	s = json_string_value(v);
	if (s[strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]")]) {
		report(ld, path, "'%s': expected a host name and an optional port, as in "
		       "\"api.internal\" or \"api.internal:8080\"", s);
		return;
	}
	set_string(ld, path, &t->host_header, s);
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
		report_oom(ld, path);
		return false;
	}
	while (got < size && (n = read(fd, buf + got, size - got)) > 0)
		got += (size_t)n;
	if (memmem(buf, got, "PRIVATE KEY-----", 16) != NULL)
		report(ld, path, "'%s' holds a private key; ca_file takes CA certificates only", file);
	else if (memmem(buf, got, "-----BEGIN CERTIFICATE-----", 27) == NULL)
		report(ld, path, "'%s' holds no PEM certificate (-----BEGIN CERTIFICATE-----); expected "
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

	if (!expect_type(ld, path, v, JSON_STRING) ||
	    !check_string(ld, path, v, 1, FILE_PATH_LEN_MAX))
		return;
	s = json_string_value(v);
	/* O_NONBLOCK: a FIFO must not hang the loader. */
	fd = open(s, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0) {
		report(ld, path, "cannot read '%s': %s", s, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		report(ld, path, "'%s' is not a regular file; expected PEM certificates", s);
		goto out;
	}
	if (st.st_size > VP_TLS_CA_FILE_MAX) {
		report(ld, path, "'%s' is more than %d bytes, the limit for a CA file", s,
		       VP_TLS_CA_FILE_MAX);
		goto out;
	}
	if (check_ca_content(ld, path, s, fd, (size_t)st.st_size))
		set_string(ld, path, &t->ca_file, s);
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

	if (!expect_type(ld, path, v, JSON_STRING) || !check_string(ld, path, v, 1, 64))
		return;
	if (vp_cidr_parse(json_string_value(v), &c, msg, sizeof(msg)) < 0) {
		report(ld, path, "%s", msg);
		return;
	}
	if (c.family != AF_INET || c.prefix > 28 || c.prefix < 8) {
		report(ld, path, "'%s': expected the IPv4 range of a Serverless VPC Access connector "
		       "(a /28, such as 10.8.0.0/28) or of a Direct VPC egress subnet (/8../28)",
		       json_string_value(v));
		return;
	}
	t->connector_range = c;
}

/* agent_url: the base URL of the vpcprobe agent on the target's host, whose
 * status server answers /api/v1/listeners (issue 3). Credentials are
 * refused by vp_url_parse(); the token goes in agent_token_file. */
static void parse_agent_url(struct loader *ld, const char *path, json_t *v, void *dst,
                            const struct field *f)
{
	struct vp_target *t = dst;
	struct vp_url url;
	char msg[VP_ERR_MAX];
	const char *s;

	if (!expect_type(ld, path, v, JSON_STRING) || !check_string(ld, path, v, 1, VP_URL_MAX))
		return;
	s = json_string_value(v);
	if (vp_url_parse(s, &url, msg, sizeof(msg)) < 0) {
		report(ld, path, "%s", msg);
		return;
	}
	if (url.kind != VP_KIND_HTTP && url.kind != VP_KIND_HTTPS) {
		report(ld, path, "'%.80s': the peer agent's status server is reached over http:// "
		       "or https://", s);
		return;
	}
	/* The runner appends /api/v1/listeners?port=N itself. */
	if (strcmp(url.path, "/") != 0) {
		report(ld, path, "'%.80s': expected the agent's base URL without a path, such as "
		       "\"http://10.20.0.5:9464\"", s);
		return;
	}
	set_string(ld, path, &t->agent_url, s);
}

/* The token goes into a request header as it is: like status_token_file on
 * the other side, one run of printable bytes without spaces. */
static void load_agent_token(struct loader *ld, const char *path, struct vp_target *t)
{
	const char *file = t->agent_token_file;
	int r = vp_secret_read(file, VP_STATUS_TOKEN_MAX, &t->agent_token, &t->agent_token_len);

	if (r == -EINVAL)
		report(ld, path, "'%s' is not a regular file", file);
	else if (r == -EFBIG)
		report(ld, path, "'%s' is more than %d bytes, the limit for a status token", file,
		       VP_STATUS_TOKEN_MAX);
	else if (r == -ENODATA)
		report(ld, path, "'%s' is empty; it must hold the peer agent's status token", file);
	else if (r == -ENOMEM)
		report_oom(ld, path);
	else if (r < 0 && r != -EILSEQ)
		report(ld, path, "cannot read '%s': %s", file, strerror(-r));
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
		report(ld, path, "'%s' must hold one token of printable bytes without spaces, as "
		       "the peer's status_token_file does", file);
}

static void parse_agent_token_file(struct loader *ld, const char *path, json_t *v, void *dst,
                                   const struct field *f)
{
	struct vp_target *t = dst;

	if (!expect_type(ld, path, v, JSON_STRING) ||
	    !check_string(ld, path, v, 1, FILE_PATH_LEN_MAX))
		return;
	set_string(ld, path, &t->agent_token_file, json_string_value(v));
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
		join_path(sub, sizeof(sub), path, target_fields[i].key, 0);
		report(ld, sub, "applies to %s targets only, not to %s://", kinds,
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
	seen = walk_object(ld, path, v, target_fields, N_ELEMS(target_fields), t);
	if (t->url_text != NULL)
		check_kinds(ld, path, t, seen);
	/* A CA that no handshake would use is a mistake in the other key. */
	if ((seen & (1u << TF_CA_FILE)) != 0 && t->url.kind == VP_KIND_POSTGRES &&
	    t->tls == VP_TLS_DISABLE) {
		join_path(sub, sizeof(sub), path, "ca_file", 0);
		report(ld, sub, "needs TLS, and tls is \"disable\"");
	}
	/* A token with no agent to send it to is a mistake in the other key. */
	if ((seen & (1u << TF_AGENT_TOKEN)) != 0 && (seen & (1u << TF_AGENT_URL)) == 0) {
		join_path(sub, sizeof(sub), path, "agent_token_file", 0);
		report(ld, sub, "needs agent_url, the peer agent to send the token to");
	}
	/* Defaults were checked on their own; only an override can clash here. */
	if (ld->n_errors != before || (seen & ((1u << TF_INTERVAL) | (1u << TF_TIMEOUT))) == 0)
		return;
	join_path(sub, sizeof(sub), path, "timeout_ms", 0);
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

	by_name = alloc_array(ld, "targets", cfg->n_targets, sizeof(*by_name));
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
		report(ld, sub, "'%s' is also the name of targets[%zu]; names must be unique",
		       by_name[i]->name, (size_t)(by_name[first] - cfg->targets));
	}
	free(by_name);
}

static void load_targets(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg)
{
	cfg->targets = load_elements(ld, path, v, VP_CONFIG_MAX_TARGETS, sizeof(*cfg->targets),
	                             &cfg->n_targets, load_target, cfg);
	if (cfg->targets != NULL)
		check_duplicate_names(ld, cfg);
}

/* ---- listeners and beacons ---- */

static const struct field listener_fields[] = {
	{ .key = "port", .type = FT_UINT, .required = true, .min = 1, .max = 65535,
	  .off = offsetof(struct vp_listener_check, port), .size = sizeof(uint16_t) },
};

static void load_listeners(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg)
{
	static const struct object_shape shape = { listener_fields, N_ELEMS(listener_fields) };

	cfg->listeners = load_elements(ld, path, v, VP_CONFIG_MAX_LISTENERS,
	                               sizeof(*cfg->listeners), &cfg->n_listeners, load_object,
	                               &shape);
}

static void load_cidr(struct loader *ld, const char *path, json_t *e, void *elem,
                      const void *ctx)
{
	char msg[VP_ERR_MAX];

	if (expect_type(ld, path, e, JSON_STRING) &&
	    vp_cidr_parse(json_string_value(e), elem, msg, sizeof(msg)) < 0)
		report(ld, path, "%s", msg);
}

static void parse_expect_from(struct loader *ld, const char *path, json_t *v, void *dst,
                              const struct field *f)
{
	struct vp_beacon *b = dst;

	b->expect_from = load_elements(ld, path, v, VP_CONFIG_MAX_CIDRS, sizeof(*b->expect_from),
	                               &b->n_expect_from, load_cidr, NULL);
}

static const struct field beacon_fields[] = {
	{ .key = "listen", .type = FT_CUSTOM, .required = true,
	  .off = offsetof(struct vp_beacon, listen), .parse = parse_listen },
	F_CUSTOM("expect_from", struct vp_beacon, expect_from, parse_expect_from),
};

static void load_beacons(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg)
{
	static const struct object_shape shape = { beacon_fields, N_ELEMS(beacon_fields) };

	cfg->beacons = load_elements(ld, path, v, VP_CONFIG_MAX_BEACONS, sizeof(*cfg->beacons),
	                             &cfg->n_beacons, load_object, &shape);
}

/* ---- collector ---- */

static void parse_collector_url(struct loader *ld, const char *path, json_t *v, void *dst,
                                const struct field *f)
{
	struct vp_collector *c = dst;
	struct vp_url url;
	char msg[VP_ERR_MAX];
	const char *s;

	if (!expect_type(ld, path, v, JSON_STRING))
		return;
	s = json_string_value(v);
	if (vp_url_parse(s, &url, msg, sizeof(msg)) < 0) {
		report(ld, path, "%s", msg);
		return;
	}
	if (url.kind != VP_KIND_HTTP && url.kind != VP_KIND_HTTPS) {
		report(ld, path, "'%.80s': the collector needs an http:// or https:// URL", s);
		return;
	}
	set_string(ld, path, &c->url, s);
}

static void parse_format(struct loader *ld, const char *path, json_t *v, void *dst,
                         const struct field *f)
{
	struct vp_collector *c = dst;
	const char *s;

	if (!expect_type(ld, path, v, JSON_STRING))
		return;
	s = json_string_value(v);
	if (strcmp(s, "json") == 0)
		c->format = VP_COLLECTOR_JSON;
	else if (strcmp(s, "otlp") == 0)
		c->format = VP_COLLECTOR_OTLP;
	else if (check_string(ld, path, v, 0, 32))
		report(ld, path, "'%s' is not a format; expected \"json\" or \"otlp\"", s);
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

static void load_collector(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg)
{
	if (json_is_null(v))
		return;
	if (!json_is_object(v)) {
		report(ld, path, "expected an object or null, got %s", type_name(json_typeof(v)));
		return;
	}
	(void)walk_object(ld, path, v, collector_fields, N_ELEMS(collector_fields),
	                  &cfg->collector);
}

/* ---- the document ---- */

struct section {
	const char *key;
	void (*load)(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg);
};

/* In the order they are loaded: targets inherit from defaults, whatever the
 * order of the keys in the file. */
static const struct section sections[] = {
	{ "agent", load_agent },
	{ "defaults", load_defaults },
	{ "targets", load_targets },
	{ "listeners", load_listeners },
	{ "beacons", load_beacons },
	{ "collector", load_collector },
};

static void load_root(struct loader *ld, json_t *root, struct vp_config *cfg)
{
	char sub[JPATH_MAX];
	const char *key;
	json_t *v;
	size_t i;

	if (!json_is_object(root)) {
		report(ld, "", "expected an object at the top level, got %s",
		       type_name(json_typeof(root)));
		return;
	}
	json_object_foreach(root, key, v) {
		for (i = 0; i < N_ELEMS(sections) && strcmp(sections[i].key, key) != 0; i++)
			continue;
		if (i < N_ELEMS(sections))
			continue;
		join_path(sub, sizeof(sub), "", key, 0);
		report(ld, sub, "unknown key (known: agent, defaults, targets, listeners, "
		       "beacons, collector)");
	}
	for (i = 0; i < N_ELEMS(sections); i++) {
		v = json_object_get(root, sections[i].key);
		if (v != NULL)
			sections[i].load(ld, sections[i].key, v, cfg);
	}
}

/* The agent's name when the file gives none. gethostname() does not promise
 * a terminating NUL when it truncates, hence the explicit one. */
static int host_name(char **ret)
{
	char buf[VP_NAME_MAX + 1];

	if (gethostname(buf, sizeof(buf)) < 0 || buf[0] == '\0')
		snprintf(buf, sizeof(buf), "localhost");
	buf[sizeof(buf) - 1] = '\0';
	*ret = strdup(buf);
	return *ret != NULL ? 0 : -ENOMEM;
}

static struct vp_config *config_new(const char *source)
{
	struct vp_config *cfg = calloc(1, sizeof(*cfg));

	if (cfg == NULL)
		return NULL;
	cfg->source = strdup(source);
	cfg->status_listen = strdup(DEFAULT_STATUS_LISTEN);
	cfg->state_dir = strdup(DEFAULT_STATE_DIR);
	cfg->max_in_flight = VP_IN_FLIGHT_DEFAULT;
	cfg->interval_s = VP_INTERVAL_S_DEFAULT;
	cfg->timeout_ms = VP_TIMEOUT_MS_DEFAULT;
	cfg->collector.format = VP_COLLECTOR_JSON;
	cfg->collector.spool_max_mb = SPOOL_MAX_MB_DEFAULT;
	cfg->collector.batch_max = VP_REPORT_BATCH_DEFAULT;
	cfg->collector.timeout_ms = VP_REPORT_TIMEOUT_MS_DEFAULT;
	if (host_name(&cfg->agent_name) < 0 || cfg->source == NULL ||
	    cfg->status_listen == NULL || cfg->state_dir == NULL)
		return vp_config_free(cfg);
	return cfg;
}

static int syntax_error(struct loader *ld, const json_error_t *jerr)
{
	switch (json_error_code(jerr)) {
	case json_error_out_of_memory:
		report_oom(ld, "");
		return -ENOMEM;
	case json_error_duplicate_key:
		report(ld, "", "line %d, column %d: %s; each key may appear only once per object",
		       jerr->line, jerr->column, jerr->text);
		return -EINVAL;
	default:
		report(ld, "", "line %d, column %d: syntax error: %s", jerr->line, jerr->column,
		       jerr->text);
		return -EINVAL;
	}
}

static int load_buffer(struct loader *ld, const char *buf, size_t len, struct vp_config **ret)
{
	struct vp_config *cfg = NULL;
	json_error_t jerr;
	json_t *root;
	int r = 0;

	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		r = syntax_error(ld, &jerr);
		goto out;
	}
	cfg = config_new(ld->source);
	if (cfg == NULL) {
		report_oom(ld, "");
		r = -ENOMEM;
		goto out;
	}
	load_root(ld, root, cfg);
	if (ld->oom)
		r = -ENOMEM;
	else if (ld->n_errors > 0)
		r = -EINVAL;
	if (r == 0) {
		*ret = cfg;
		cfg = NULL;
	}
out:
	if (ld->n_errors > VP_CONFIG_MAX_ERRORS) {
		unsigned more = ld->n_errors - VP_CONFIG_MAX_ERRORS;

		ld->n_errors = 0; /* lets this last line through */
		report(ld, "", "%u more error%s not shown", more, more == 1 ? "" : "s");
	}
	vp_config_free(cfg);
	json_decref(root);
	return r;
}

static struct loader loader_init(const char *source, char *err, size_t errlen)
{
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	return (struct loader){ .source = source, .err = err, .errlen = errlen };
}

int vp_config_load_string(const char *json, const char *source, struct vp_config **ret,
                          char *err, size_t errlen)
{
	struct loader ld = loader_init(source != NULL ? source : "(string)", err, errlen);
	size_t len;

	if (json == NULL || ret == NULL) {
		report(&ld, "", "no configuration given");
		return -EINVAL;
	}
	len = strnlen(json, (size_t)VP_CONFIG_MAX_BYTES + 1);
	if (len > VP_CONFIG_MAX_BYTES) {
		report(&ld, "", "more than %d bytes, the limit for a configuration",
		       VP_CONFIG_MAX_BYTES);
		return -EFBIG;
	}
	return load_buffer(&ld, json, len, ret);
}

/* Reads all of 'fd' into a new buffer, refusing more than the limit. The
 * size from fstat() is only a first guess: the file may grow, or be a pipe. */
static int read_all(int fd, size_t guess, char **ret, size_t *ret_len)
{
	size_t cap = guess > 0 && guess <= VP_CONFIG_MAX_BYTES ? guess + 1 : 4096;
	size_t len = 0;
	char *buf = malloc(cap);
	char *bigger;
	ssize_t n;
	int r = 0;

	while (buf != NULL) {
		if (len == cap) {
			if (cap > VP_CONFIG_MAX_BYTES) {
				r = -EFBIG;
				goto fail;
			}
			cap = cap * 2 > (size_t)VP_CONFIG_MAX_BYTES + 1 ?
			      (size_t)VP_CONFIG_MAX_BYTES + 1 : cap * 2;
			bigger = realloc(buf, cap);
			if (bigger == NULL)
				break;
			buf = bigger;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto fail;
		}
		if (n == 0) {
			*ret = buf;
			*ret_len = len;
			return 0;
		}
		len += (size_t)n;
	}
	r = -ENOMEM;
fail:
	free(buf);
	return r;
}

int vp_config_load_file(const char *path, struct vp_config **ret, char *err, size_t errlen)
{
	struct loader ld = loader_init(path != NULL ? path : "(null)", err, errlen);
	char *buf = NULL; /* owned */
	size_t len = 0;
	struct stat st;
	int fd = -1;
	int r;

	if (path == NULL || ret == NULL) {
		report(&ld, "", "no file given");
		return -EINVAL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		report(&ld, "", "cannot open: %s", strerror(-r));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		r = -EISDIR;
		report(&ld, "", "cannot read: %s", strerror(-r));
		goto out;
	}
	if (st.st_size > VP_CONFIG_MAX_BYTES) {
		r = -EFBIG;
		report(&ld, "", "file is %jd bytes, more than the limit of %d",
		       (intmax_t)st.st_size, VP_CONFIG_MAX_BYTES);
		goto out;
	}
	r = read_all(fd, S_ISREG(st.st_mode) ? (size_t)st.st_size : 0, &buf, &len);
	if (r == -EFBIG)
		report(&ld, "", "file is more than %d bytes, the limit", VP_CONFIG_MAX_BYTES);
	else if (r < 0)
		report(&ld, "", "cannot read: %s", strerror(-r));
	else
		r = load_buffer(&ld, buf, len, ret);
out:
	if (fd >= 0)
		(void)close(fd); /* read-only: nothing to lose if close fails */
	free(buf);
	return r;
}

struct vp_config *vp_config_free(struct vp_config *cfg)
{
	if (cfg == NULL)
		return NULL;
	free(cfg->source);
	free(cfg->agent_name);
	free(cfg->status_listen);
	free(cfg->status_token_file);
	free(cfg->state_dir);
	for (size_t i = 0; i < cfg->n_dns_servers; i++)
		free(cfg->dns_servers[i]);
	free(cfg->dns_servers);
	for (size_t i = 0; i < cfg->n_targets; i++) {
		free(cfg->targets[i].name);
		free(cfg->targets[i].url_text);
		free(cfg->targets[i].password_file);
		vp_secret_free(cfg->targets[i].password, cfg->targets[i].password_len);
		free(cfg->targets[i].user);
		free(cfg->targets[i].database);
		free(cfg->targets[i].username);
		free(cfg->targets[i].host_header);
		free(cfg->targets[i].ca_file);
		free(cfg->targets[i].agent_url);
		free(cfg->targets[i].agent_token_file);
		vp_secret_free(cfg->targets[i].agent_token, cfg->targets[i].agent_token_len);
	}
	free(cfg->targets);
	free(cfg->listeners);
	for (size_t i = 0; i < cfg->n_beacons; i++) {
		free(cfg->beacons[i].listen);
		free(cfg->beacons[i].expect_from);
	}
	free(cfg->beacons);
	free(cfg->collector.url);
	free(cfg->collector.token_file);
	free(cfg->collector.ca_file);
	free(cfg->metadata_url);
	free(cfg);
	return NULL;
}

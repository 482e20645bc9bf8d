/* The config loader: JSON text in (jansson), a validated struct vp_config out.
 *
 * Validation does not stop at the first problem. Every check reports into a
 * list of messages and carries on, so that `vpcprobe validate` shows all of
 * them at once instead of making the user fix one typo per run. The shape of
 * each JSON object is a table of fields; the table also gives the "known:"
 * list when a key is misspelt. */
#include "config/config_int.h"
#include "config/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_SHOW_MAX 64             /* an unknown key is cut to this in messages */
#define DEFAULT_STATUS_LISTEN "127.0.0.1:9464"
#define DEFAULT_STATE_DIR "/var/lib/vpcprobe"
#define SPOOL_MAX_MB_DEFAULT 64

__attribute__((format(printf, 3, 4)))
void vp_cfg_report(struct loader *ld, const char *path, const char *fmt, ...)
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

void vp_cfg_report_oom(struct loader *ld, const char *path)
{
	ld->oom = true;
	vp_cfg_report(ld, path, "out of memory");
}

char *vp_cfg_dup_or_report(struct loader *ld, const char *path, const char *s)
{
	char *copy = strdup(s);

	if (copy == NULL)
		vp_cfg_report_oom(ld, path);
	return copy;
}

const char *vp_cfg_type_name(json_type t)
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

bool vp_cfg_expect_type(struct loader *ld, const char *path, const json_t *v, json_type t)
{
	if (json_typeof(v) == t)
		return true;
	vp_cfg_report(ld, path, "expected %s, got %s", vp_cfg_type_name(t),
	              vp_cfg_type_name(json_typeof(v)));
	return false;
}

/* Appends ".key" (or "[i]" when 'key' is NULL) to 'path'. Keys come from the
 * user's file, so they are cut short and control characters are masked. */
void vp_cfg_join_path(char *out, size_t outlen, const char *path, const char *key, size_t i)
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
bool vp_cfg_check_string(struct loader *ld, const char *path, const json_t *v,
                         uint32_t min, uint32_t max)
{
	const unsigned char *s = (const unsigned char *)json_string_value(v);
	size_t len = json_string_length(v);

	if (len < min) {
		vp_cfg_report(ld, path, "empty string; expected %u..%u bytes", min, max);
		return false;
	}
	if (len > max) {
		vp_cfg_report(ld, path, "%zu bytes, longer than %u", len, max);
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] < 0x20 || s[i] == 0x7f || (s[i] == 0xc2 && s[i + 1] >= 0x80 && s[i + 1] < 0xa0)) {
			vp_cfg_report(ld, path, "control character at byte %zu", i);
			return false;
		}
	}
	return true;
}

bool vp_cfg_get_uint(struct loader *ld, const char *path, const json_t *v,
                     uint32_t min, uint32_t max, uint32_t *ret)
{
	json_int_t x;

	if (!vp_cfg_expect_type(ld, path, v, JSON_INTEGER))
		return false;
	x = json_integer_value(v);
	if (x < (json_int_t)min || x > (json_int_t)max) {
		vp_cfg_report(ld, path, "%" JSON_INTEGER_FORMAT " not in %u..%u", x, min, max);
		return false;
	}
	*ret = (uint32_t)x;
	return true;
}

void vp_cfg_set_string(struct loader *ld, const char *path, char **slot, const char *s)
{
	char *copy = vp_cfg_dup_or_report(ld, path, s);

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
			vp_cfg_report(ld, path, "expected a string or null, got %s",
			              vp_cfg_type_name(json_typeof(v)));
		} else if (vp_cfg_check_string(ld, path, v, f->min, f->max)) {
			vp_cfg_set_string(ld, path, slot, json_string_value(v));
		}
		return;
	case FT_STR:
		if (vp_cfg_expect_type(ld, path, v, JSON_STRING) &&
		    vp_cfg_check_string(ld, path, v, f->min, f->max))
			vp_cfg_set_string(ld, path, slot, json_string_value(v));
		return;
	case FT_UINT:
		if (!vp_cfg_get_uint(ld, path, v, f->min, f->max, &x))
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
	vp_cfg_report(ld, path, "unknown key (known: %s)", known);
}

/* Fills 'dst' from the JSON object 'obj' as 'fields' describe it. Returns a
 * bit mask of the fields the object has (tables have at most 32 fields). */
uint32_t vp_cfg_walk_object(struct loader *ld, const char *path, json_t *obj,
                            const struct field *fields, size_t n, void *dst)
{
	char sub[JPATH_MAX];
	const char *key;
	json_t *v;
	uint32_t seen = 0;
	size_t i;

	if (!vp_cfg_expect_type(ld, path, obj, JSON_OBJECT))
		return 0;
	json_object_foreach(obj, key, v) {
		for (i = 0; i < n && strcmp(fields[i].key, key) != 0; i++)
			continue;
		vp_cfg_join_path(sub, sizeof(sub), path, key, 0);
		if (i == n) {
			unknown_key(ld, sub, fields, n);
			continue;
		}
		seen |= 1u << i;
		parse_field(ld, sub, &fields[i], v, dst);
	}
	for (i = 0; i < n; i++) {
		if (fields[i].required && (seen & (1u << i)) == 0) {
			vp_cfg_join_path(sub, sizeof(sub), path, fields[i].key, 0);
			vp_cfg_report(ld, sub, "required key is missing");
		}
	}
	return seen;
}

/* Returns the array's size, or 0 after reporting a wrong type or too many
 * entries. Every array is bounded: the file size bounds them already, but a
 * named limit gives a message that says which array is at fault. */
size_t vp_cfg_array_size(struct loader *ld, const char *path, const json_t *v, size_t max)
{
	size_t n;

	if (!vp_cfg_expect_type(ld, path, v, JSON_ARRAY))
		return 0;
	n = json_array_size(v);
	if (n > max) {
		vp_cfg_report(ld, path, "%zu entries, more than the limit of %zu", n, max);
		return 0;
	}
	return n;
}

void *vp_cfg_alloc_array(struct loader *ld, const char *path, size_t n, size_t size)
{
	void *p = n > 0 ? calloc(n, size) : NULL;

	if (n > 0 && p == NULL)
		vp_cfg_report_oom(ld, path);
	return p;
}

/* Loads a JSON array of at most 'max' entries into a new zeroed array of
 * 'size'-byte elements, calling 'each' on every entry with its path.
 * Returns the array (owned by the caller, NULL when empty or on error) and
 * its length in '*ret_n'. Bad entries are reported and left zeroed. */
void *vp_cfg_load_elements(struct loader *ld, const char *path, json_t *v, size_t max,
                           size_t size, size_t *ret_n,
                           void (*each)(struct loader *ld, const char *path, json_t *e,
                                        void *elem, const void *ctx),
                           const void *ctx)
{
	size_t n = vp_cfg_array_size(ld, path, v, max);
	char *elems = vp_cfg_alloc_array(ld, path, n, size);
	char sub[JPATH_MAX];
	json_t *e;
	size_t i;

	if (elems == NULL)
		return NULL;
	*ret_n = n;
	json_array_foreach(v, i, e) {
		vp_cfg_join_path(sub, sizeof(sub), path, NULL, i);
		each(ld, sub, e, elems + i * size, ctx);
	}
	return elems;
}

void vp_cfg_load_object(struct loader *ld, const char *path, json_t *e, void *elem,
                        const void *ctx)
{
	const struct object_shape *shape = ctx;

	(void)vp_cfg_walk_object(ld, path, e, shape->fields, shape->n, elem);
}

/* ---- the document ---- */

struct section {
	const char *key;
	void (*load)(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg);
};

/* In the order they are loaded: targets inherit from defaults, whatever the
 * order of the keys in the file. */
static const struct section sections[] = {
	{ "agent", vp_cfg_load_agent },
	{ "defaults", vp_cfg_load_defaults },
	{ "targets", vp_cfg_load_targets },
	{ "listeners", vp_cfg_load_listeners },
	{ "beacons", vp_cfg_load_beacons },
	{ "collector", vp_cfg_load_collector },
};

static void load_root(struct loader *ld, json_t *root, struct vp_config *cfg)
{
	char sub[JPATH_MAX];
	const char *key;
	json_t *v;
	size_t i;

	if (!json_is_object(root)) {
		vp_cfg_report(ld, "", "expected an object at the top level, got %s",
		              vp_cfg_type_name(json_typeof(root)));
		return;
	}
	json_object_foreach(root, key, v) {
		for (i = 0; i < N_ELEMS(sections) && strcmp(sections[i].key, key) != 0; i++)
			continue;
		if (i < N_ELEMS(sections))
			continue;
		vp_cfg_join_path(sub, sizeof(sub), "", key, 0);
		vp_cfg_report(ld, sub, "unknown key (known: agent, defaults, targets, listeners, "
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
		vp_cfg_report_oom(ld, "");
		return -ENOMEM;
	case json_error_duplicate_key:
		vp_cfg_report(ld, "", "line %d, column %d: %s; each key may appear only once per object",
		              jerr->line, jerr->column, jerr->text);
		return -EINVAL;
	default:
		vp_cfg_report(ld, "", "line %d, column %d: syntax error: %s", jerr->line, jerr->column,
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
		vp_cfg_report_oom(ld, "");
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
		vp_cfg_report(ld, "", "%u more error%s not shown", more, more == 1 ? "" : "s");
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
		vp_cfg_report(&ld, "", "no configuration given");
		return -EINVAL;
	}
	len = strnlen(json, (size_t)VP_CONFIG_MAX_BYTES + 1);
	if (len > VP_CONFIG_MAX_BYTES) {
		vp_cfg_report(&ld, "", "more than %d bytes, the limit for a configuration",
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
		vp_cfg_report(&ld, "", "no file given");
		return -EINVAL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		vp_cfg_report(&ld, "", "cannot open: %s", strerror(-r));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		r = -EISDIR;
		vp_cfg_report(&ld, "", "cannot read: %s", strerror(-r));
		goto out;
	}
	if (st.st_size > VP_CONFIG_MAX_BYTES) {
		r = -EFBIG;
		vp_cfg_report(&ld, "", "file is %jd bytes, more than the limit of %d",
		              (intmax_t)st.st_size, VP_CONFIG_MAX_BYTES);
		goto out;
	}
	r = read_all(fd, S_ISREG(st.st_mode) ? (size_t)st.st_size : 0, &buf, &len);
	if (r == -EFBIG)
		vp_cfg_report(&ld, "", "file is more than %d bytes, the limit", VP_CONFIG_MAX_BYTES);
	else if (r < 0)
		vp_cfg_report(&ld, "", "cannot read: %s", strerror(-r));
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
		vp_url_free(&cfg->targets[i].url);
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

/* Strict, typed reading of gcloud's JSON: see gcloud_json.h. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/gcloud_json.h"
#include "agent/limits.h"

int vp_gj_fail(struct vp_gj *c, const char *path, const char *fmt, ...)
{
	char msg[VP_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->errlen)
		snprintf(c->err, c->errlen, "%s: %s%s%s", c->file, path ? path : "",
		         path && path[0] ? ": " : "", msg);
	return -EINVAL;
}

const char *vp_gj_type(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number with a fraction";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

static const char *type_name(json_type t)
{
	switch (t) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "a value";
	}
}

static bool plain_key(const char *key)
{
	if (!isalpha((unsigned char)key[0]) && key[0] != '_')
		return false;
	for (const char *p = key; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return false;
	return true;
}

void vp_gj_key(char *dst, const char *path, const char *key)
{
	if (plain_key(key))
		snprintf(dst, VP_GJ_PATH_MAX, "%s.%s", path, key);
	else
		snprintf(dst, VP_GJ_PATH_MAX, "%s[\"%s\"]", path, key);
}

void vp_gj_index(char *dst, const char *path, size_t i)
{
	if (snprintf(dst, VP_GJ_PATH_MAX, "%s[%zu]", path, i) >= VP_GJ_PATH_MAX)
		(void)0; /* a path only names a place in messages: cut is fine */
}

int vp_gj_read_fd(struct vp_gj *c, int fd, char **ret, size_t *len)
{
	size_t cap = 64 * 1024, n = 0;
	char *buf = malloc(cap);
	int r = 0;

	if (!buf) {
		r = -ENOMEM;
		vp_gj_fail(c, NULL, "out of memory reading it");
		goto out;
	}
	for (;;) {
		ssize_t got;

		if (n == cap) {
			/* One byte past the bound tells a file of exactly the
			 * bound from a larger one. */
			size_t want = cap * 2 > (size_t)VP_GCLOUD_FILE_MAX + 1 ?
			              (size_t)VP_GCLOUD_FILE_MAX + 1 : cap * 2;
			char *bigger = n > (size_t)VP_GCLOUD_FILE_MAX ? NULL : realloc(buf, want);

			if (n > (size_t)VP_GCLOUD_FILE_MAX) {
				r = -EFBIG;
				vp_gj_fail(c, NULL, "larger than %d MiB; export less",
				           VP_GCLOUD_FILE_MAX / (1024 * 1024));
				goto out;
			}
			if (!bigger) {
				r = -ENOMEM;
				vp_gj_fail(c, NULL, "out of memory reading it");
				goto out;
			}
			buf = bigger;
			cap = want;
		}
		got = read(fd, buf + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = -errno;
			vp_gj_fail(c, NULL, "read: %s", strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	/* The loop grows the buffer before it reads, so the end has room. */
	buf[n] = '\0';
	*ret = buf;
	*len = n;
	buf = NULL;
out:
	free(buf);
	return r;
}

int vp_gj_read(struct vp_gj *c, char **ret, size_t *len)
{
	/* Opened by name and blocking: a FIFO waits for its writer, as a
	 * command line's <(gcloud ...) needs. */
	int fd = open(c->file, O_RDONLY | O_CLOEXEC);
	int r;

	if (fd < 0) {
		r = -errno;
		vp_gj_fail(c, NULL, "%s", strerror(-r));
		return r;
	}
	r = vp_gj_read_fd(c, fd, ret, len);
	(void)close(fd); /* read-only: nothing to lose */
	return r;
}

int vp_gj_load(struct vp_gj *c, const char *text, json_t **ret)
{
	json_error_t jerr;
	char *buf = NULL;
	size_t len = 0;
	json_t *root;
	int r;

	if (text) {
		len = strlen(text);
	} else {
		r = vp_gj_read(c, &buf, &len);
		if (r < 0)
			return r;
		text = buf;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(buf);
	if (!root)
		return vp_gj_fail(c, NULL, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
	*ret = root;
	return 0;
}

int vp_gj_get(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
              json_type type, bool required, json_t **ret)
{
	char p[VP_GJ_PATH_MAX];
	json_t *v = json_object_get(obj, key);
	bool is_bool = type == JSON_TRUE || type == JSON_FALSE;

	vp_gj_key(p, path, key);
	if (!v || json_is_null(v)) {
		if (required)
			return vp_gj_fail(c, p, "missing; expected %s", type_name(type));
		return 0;
	}
	if (is_bool ? !json_is_boolean(v) : json_typeof(v) != type)
		return vp_gj_fail(c, p, "expected %s, got %s", type_name(type), vp_gj_type(v));
	*ret = v;
	return 1;
}

int vp_gj_str(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
              bool required, char *dst, size_t len)
{
	char p[VP_GJ_PATH_MAX];
	json_t *v = NULL;
	int r = vp_gj_get(c, obj, path, key, JSON_STRING, required, &v);

	if (r <= 0)
		return r;
	if (json_string_length(v) >= len || strlen(json_string_value(v)) != json_string_length(v)) {
		vp_gj_key(p, path, key);
		return vp_gj_fail(c, p, "expected a string of at most %zu bytes without NUL", len - 1);
	}
	memcpy(dst, json_string_value(v), json_string_length(v) + 1);
	return 1;
}

int vp_gj_strdup(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
                 bool required, char **ret)
{
	char buf[VP_GCLOUD_STR_MAX];
	int r = vp_gj_str(c, obj, path, key, required, buf, sizeof(buf));

	if (r <= 0)
		return r;
	*ret = strdup(buf);
	if (!*ret)
		return vp_gj_fail(c, path, "out of memory");
	return 1;
}

int vp_gj_int(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
              bool required, long long min, long long max, long long *ret)
{
	char p[VP_GJ_PATH_MAX];
	json_t *v = NULL;
	int r = vp_gj_get(c, obj, path, key, JSON_INTEGER, required, &v);

	if (r <= 0)
		return r;
	if (json_integer_value(v) < min || json_integer_value(v) > max) {
		vp_gj_key(p, path, key);
		return vp_gj_fail(c, p, "%lld not in %lld..%lld", (long long)json_integer_value(v), min, max);
	}
	*ret = json_integer_value(v);
	return 1;
}

int vp_gj_bool(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
               bool required, bool *ret)
{
	json_t *v = NULL;
	int r = vp_gj_get(c, obj, path, key, JSON_TRUE, required, &v);

	if (r <= 0)
		return r;
	*ret = json_is_true(v);
	return 1;
}

int vp_gj_array(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
                bool required, size_t max, json_t **ret)
{
	char p[VP_GJ_PATH_MAX];
	json_t *v = NULL;
	int r = vp_gj_get(c, obj, path, key, JSON_ARRAY, required, &v);

	if (r <= 0)
		return r;
	if (json_array_size(v) > max) {
		vp_gj_key(p, path, key);
		return vp_gj_fail(c, p, "%zu elements; at most %zu are read", json_array_size(v), max);
	}
	*ret = v;
	return 1;
}

/* Element 'i' of 'arr' (at 'path') as a string of fewer than 'len' bytes. */
static int elem_str(struct vp_gj *c, const json_t *arr, const char *path, size_t i, size_t len,
                    const char **ret)
{
	char p[VP_GJ_PATH_MAX];
	json_t *e = json_array_get(arr, i);

	vp_gj_index(p, path, i);
	if (!json_is_string(e))
		return vp_gj_fail(c, p, "expected a string, got %s", vp_gj_type(e));
	if (json_string_length(e) >= len || strlen(json_string_value(e)) != json_string_length(e))
		return vp_gj_fail(c, p, "expected a string of at most %zu bytes without NUL", len - 1);
	*ret = json_string_value(e);
	return 0;
}

int vp_gj_str_rows(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
                   char *rows, size_t width, size_t max, size_t *n)
{
	char p[VP_GJ_PATH_MAX];
	json_t *arr = NULL;
	const char *s = NULL;
	int r = vp_gj_array(c, obj, path, key, false, max, &arr);

	if (r <= 0)
		return r;
	vp_gj_key(p, path, key);
	for (size_t i = 0; i < json_array_size(arr); i++) {
		r = elem_str(c, arr, p, i, width, &s);
		if (r < 0)
			return r;
		snprintf(rows + i * width, width, "%s", s);
	}
	*n = json_array_size(arr);
	return 1;
}

void vp_gj_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int vp_gj_strv(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
               char ***ret, size_t *n)
{
	char p[VP_GJ_PATH_MAX];
	json_t *arr = NULL;
	char **v;
	const char *s = NULL;
	size_t i;
	int r = vp_gj_array(c, obj, path, key, false, VP_GCLOUD_LIST_MAX, &arr);

	if (r <= 0)
		return r;
	vp_gj_key(p, path, key);
	v = calloc(json_array_size(arr) + 1, sizeof(*v));
	if (!v)
		return vp_gj_fail(c, p, "out of memory");
	for (i = 0; i < json_array_size(arr); i++) {
		r = elem_str(c, arr, p, i, VP_GCLOUD_STR_MAX, &s);
		if (r < 0)
			goto fail;
		v[i] = strdup(s);
		if (!v[i]) {
			r = vp_gj_fail(c, p, "out of memory");
			goto fail;
		}
	}
	*ret = v;
	*n = i;
	return 1;
fail:
	vp_gj_strv_free(v, i);
	return r;
}

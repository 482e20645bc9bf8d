/* The config loader's parts (config.c, config_agent.c, config_targets.c):
 * the loader that collects messages, the table that describes a JSON
 * object, and the helpers every section's loader uses. Private to config/. */
#ifndef VP_CONFIG_INT_H
#define VP_CONFIG_INT_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#define JPATH_MAX 256               /* "beacons[12].expect_from[200]" and the like */
#define FILE_PATH_LEN_MAX (PATH_MAX - 1)

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

/* The fields of the objects in an array, for vp_cfg_load_elements(). */
struct object_shape {
	const struct field *fields;
	size_t n;
};

/* Adds one message "config 'SOURCE': PATH: ..." to the loader's list. */
__attribute__((format(printf, 3, 4)))
void vp_cfg_report(struct loader *ld, const char *path, const char *fmt, ...);
void vp_cfg_report_oom(struct loader *ld, const char *path);
/* strdup(), or NULL after reporting. */
char *vp_cfg_dup_or_report(struct loader *ld, const char *path, const char *s);
/* "an object", "a string", ... */
const char *vp_cfg_type_name(json_type t);
/* Whether 'v' has type 't'; reports otherwise. */
bool vp_cfg_expect_type(struct loader *ld, const char *path, const json_t *v, json_type t);
/* PATH.KEY, or PATH[I] when 'key' is NULL, into 'out'. */
void vp_cfg_join_path(char *out, size_t outlen, const char *path, const char *key, size_t i);
/* Whether a string has min..max bytes and no control character; reports otherwise. */
bool vp_cfg_check_string(struct loader *ld, const char *path, const json_t *v,
                         uint32_t min, uint32_t max);
bool vp_cfg_get_uint(struct loader *ld, const char *path, const json_t *v,
                     uint32_t min, uint32_t max, uint32_t *ret);
/* Replaces '*slot' with a copy of 's'. */
void vp_cfg_set_string(struct loader *ld, const char *path, char **slot, const char *s);
/* Fills 'dst' from the object 'obj' as 'fields' describe it; the mask of
 * the fields it has. */
uint32_t vp_cfg_walk_object(struct loader *ld, const char *path, json_t *obj,
                            const struct field *fields, size_t n, void *dst);
size_t vp_cfg_array_size(struct loader *ld, const char *path, const json_t *v, size_t max);
void *vp_cfg_alloc_array(struct loader *ld, const char *path, size_t n, size_t size);
/* A JSON array of at most 'max' entries into a new array of 'size'-byte
 * elements, 'each' called on every entry. */
void *vp_cfg_load_elements(struct loader *ld, const char *path, json_t *v, size_t max,
                           size_t size, size_t *ret_n,
                           void (*each)(struct loader *ld, const char *path, json_t *e,
                                        void *elem, const void *ctx),
                           const void *ctx);
/* An 'each' for vp_cfg_load_elements(): 'ctx' is a struct object_shape. */
void vp_cfg_load_object(struct loader *ld, const char *path, json_t *e, void *elem,
                        const void *ctx);

/* The sections of the document (config_agent.c, config_targets.c). */
void vp_cfg_load_agent(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg);
void vp_cfg_load_defaults(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg);
void vp_cfg_load_targets(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg);
void vp_cfg_load_listeners(struct loader *ld, const char *path, json_t *v,
                           struct vp_config *cfg);
void vp_cfg_load_beacons(struct loader *ld, const char *path, json_t *v, struct vp_config *cfg);
void vp_cfg_load_collector(struct loader *ld, const char *path, json_t *v,
                           struct vp_config *cfg);

#endif

/* Strict, typed reading of the JSON that gcloud prints, for agent/gcloud*.c
 * only. Every failure writes one sentence naming the file and the JSON path
 * in jq's notation, e.g.
 *   firewall-rules.json: [3].allowed[0].ports[1]: expected a string, got an integer
 * and returns -EINVAL. An absent member, or a null one, is "absent". */
#ifndef VP_GCLOUD_JSON_H
#define VP_GCLOUD_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define VP_GJ_PATH_MAX 256

struct vp_gj {
	const char *file;      /* borrowed: the file as the user named it */
	char *err;             /* borrowed: the caller's message buffer */
	size_t errlen;
};

/* Reads c->file whole (at most VP_GCLOUD_FILE_MAX bytes) into an owned
 * buffer, NUL-terminated (the NUL not counted in '*len'). It opens the file
 * by name, blocking: whatever it is, a FIFO too. Returns 0 or -errno. */
int vp_gj_read(struct vp_gj *c, char **ret, size_t *len);
/* The same from the descriptor 'fd', open already (and left open), to its
 * end; c->file only names it. For a caller that checks what it opened
 * before it reads, as the agent does (agent/status_fw_load.c). */
int vp_gj_read_fd(struct vp_gj *c, int fd, char **ret, size_t *len);

/* Parses 'text' when not NULL, else reads c->file (at most
 * VP_GCLOUD_FILE_MAX bytes). An array or an object; -errno on failure. */
int vp_gj_load(struct vp_gj *c, const char *text, json_t **ret);

int vp_gj_fail(struct vp_gj *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* "a string", "an integer", ... */
const char *vp_gj_type(const json_t *v);

/* 'path' followed by the member 'key' (".key" or "[\"some/key\"]"), or by
 * the element 'i' ("[i]"). Cut to VP_GJ_PATH_MAX - 1 bytes. */
void vp_gj_key(char *dst, const char *path, const char *key);
void vp_gj_index(char *dst, const char *path, size_t i);

/* The member 'key' of 'obj' (at 'path'), of 'type'. Returns 1 with '*ret'
 * set, 0 when absent and not 'required', or -EINVAL. */
int vp_gj_get(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
              json_type type, bool required, json_t **ret);

/* A string member copied into 'dst' (< 'len' bytes, or -EINVAL). */
int vp_gj_str(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
              bool required, char *dst, size_t len);
/* A string member duplicated; '*ret' owned by the caller. */
int vp_gj_strdup(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
                 bool required, char **ret);
/* An integer member in min..max. */
int vp_gj_int(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
              bool required, long long min, long long max, long long *ret);
int vp_gj_bool(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
               bool required, bool *ret);
/* An array member of at most 'max' elements. */
int vp_gj_array(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
                bool required, size_t max, json_t **ret);
/* An array of strings into rows of 'width' bytes: at most 'max' rows. */
int vp_gj_str_rows(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
                   char *rows, size_t width, size_t max, size_t *n);
/* An array of strings duplicated into an owned array of owned strings. */
int vp_gj_strv(struct vp_gj *c, const json_t *obj, const char *path, const char *key,
               char ***ret, size_t *n);
void vp_gj_strv_free(char **v, size_t n);

#endif

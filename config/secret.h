/* Secrets read from files: passwords now, tokens later (status_token_file,
 * collector.token_file). Bounded, regular files only, wiped after use, and
 * no error ever says anything about the content but its size. */
#ifndef VP_SECRET_H
#define VP_SECRET_H

#include <stddef.h>

/* Reads the file at 'path' into a new NUL-terminated '*ret' of '*ret_len'
 * bytes, less one trailing newline ("\n" or "\r\n"). Returns 0, or:
 *   -errno from open/fstat/read (-EISDIR for a directory),
 *   -EINVAL   not a regular file (a FIFO would hang the reader),
 *   -EFBIG    more than 'max' bytes (at most 8192),
 *   -ENODATA  empty,
 *   -EILSEQ   holds a NUL byte,
 *   -ENOMEM.
 * '*ret' and '*ret_len' are set only on success; wipe with vp_secret_free(). */
int vp_secret_read(const char *path, size_t max, char **ret, size_t *ret_len);

/* Wipes and frees. Accepts NULL; returns NULL. */
char *vp_secret_free(char *s, size_t len);

#endif

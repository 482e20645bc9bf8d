/* Reading a secret from a file, for the config loader. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/secret.h"

#define SECRET_READ_MAX 8192   /* the largest 'max' a caller may pass */

/* Reads at most 'cap' bytes; a return of 'cap' means there may be more. */
static ssize_t read_up_to(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;

	while (len < cap) {
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	return (ssize_t)len;
}

static int take(const char *buf, size_t len, size_t max, char **ret, size_t *ret_len)
{
	char *s;

	if (len > 0 && buf[len - 1] == '\n')
		len -= len > 1 && buf[len - 2] == '\r' ? 2 : 1;
	if (len > max)
		return -EFBIG;
	if (len == 0)
		return -ENODATA;
	if (memchr(buf, '\0', len) != NULL)
		return -EILSEQ;
	s = malloc(len + 1);
	if (s == NULL)
		return -ENOMEM;
	memcpy(s, buf, len);
	s[len] = '\0';
	*ret = s;
	*ret_len = len;
	return 0;
}

int vp_secret_read(const char *path, size_t max, char **ret, size_t *ret_len)
{
	char buf[SECRET_READ_MAX + 3]; /* the limit, a CRLF, and one byte to see more */
	size_t cap = (max < SECRET_READ_MAX ? max : SECRET_READ_MAX) + 3;
	struct stat st;
	ssize_t n = 0;
	int r = 0;
	/* O_NONBLOCK: opening a FIFO for reading must not wait for a writer. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	n = read_up_to(fd, buf, cap);
	if (n < 0) {
		r = (int)n;
		goto out;
	}
	r = take(buf, (size_t)n, max < SECRET_READ_MAX ? max : SECRET_READ_MAX, ret, ret_len);
out:
	if (fd >= 0)
		(void)close(fd); /* read-only: nothing to lose */
	explicit_bzero(buf, (size_t)(n > 0 ? n : 0));
	return r;
}

char *vp_secret_free(char *s, size_t len)
{
	if (s == NULL)
		return NULL;
	explicit_bzero(s, len);
	free(s);
	return NULL;
}

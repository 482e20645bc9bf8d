/* The address parsers (config/url.h): target URLs, ADDR:PORT and CIDR
 * blocks. The first byte picks vp_addrport_parse()'s default port; the
 * rest is the text, given to all three. */
#include <sys/socket.h>

#include "config/url.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	vp_fuzz_quiet();
	return 0;
}

static void check_url(const char *text)
{
	struct vp_url u, before;
	char err[VP_ERR_MAX];

	memset(&u, 0xa5, sizeof(u));
	before = u;
	if (vp_url_parse(text, &u, err, sizeof(err)) < 0) {
		VP_FUZZ_CHECK(memcmp(&u, &before, sizeof(u)) == 0); /* left untouched */
		VP_FUZZ_CHECK(vp_fuzz_terminated(err, sizeof(err)) && err[0] != '\0');
		return;
	}
	VP_FUZZ_CHECK(u.kind >= 0 && u.kind < VP_KIND_MAX);
	VP_FUZZ_CHECK(u.host_type == VP_HOST_NAME || u.host_type == VP_HOST_IPV4 ||
	              u.host_type == VP_HOST_IPV6);
	VP_FUZZ_CHECK(vp_fuzz_terminated(u.host, sizeof(u.host)) && u.host[0] != '\0');
	/* Only http(s) owns a path, "/" at least and shorter than VP_PATH_MAX. */
	if (u.kind == VP_KIND_HTTP || u.kind == VP_KIND_HTTPS)
		VP_FUZZ_CHECK(u.path != NULL && u.path[0] == '/' && strlen(u.path) < VP_PATH_MAX);
	else
		VP_FUZZ_CHECK(u.path == NULL);
	/* Both go into requests (the path into an HTTP request line) and
	 * details: printable, without a space that would split the line. */
	VP_FUZZ_CHECK(vp_fuzz_printable(u.host) && strchr(u.host, ' ') == NULL);
	VP_FUZZ_CHECK(u.path == NULL || (vp_fuzz_printable(u.path) && strchr(u.path, ' ') == NULL));
	VP_FUZZ_CHECK(u.port != 0);
	vp_url_free(&u);
}

static void check_addrport(const char *text, uint16_t default_port)
{
	struct vp_addrport a, before;
	char err[VP_ERR_MAX];

	memset(&a, 0xa5, sizeof(a));
	before = a;
	if (vp_addrport_parse(text, default_port, &a, err, sizeof(err)) < 0) {
		VP_FUZZ_CHECK(memcmp(&a, &before, sizeof(a)) == 0);
		VP_FUZZ_CHECK(vp_fuzz_terminated(err, sizeof(err)) && err[0] != '\0');
		return;
	}
	VP_FUZZ_CHECK(a.family == AF_INET || a.family == AF_INET6);
}

static void check_cidr(const char *text)
{
	struct vp_cidr c, before, again;
	char err[VP_ERR_MAX];
	size_t bytes;

	memset(&c, 0xa5, sizeof(c));
	before = c;
	if (vp_cidr_parse(text, &c, err, sizeof(err)) < 0) {
		VP_FUZZ_CHECK(memcmp(&c, &before, sizeof(c)) == 0);
		VP_FUZZ_CHECK(vp_fuzz_terminated(err, sizeof(err)) && err[0] != '\0');
		return;
	}
	VP_FUZZ_CHECK(c.family == AF_INET || c.family == AF_INET6);
	bytes = c.family == AF_INET ? 4 : 16;
	VP_FUZZ_CHECK(c.prefix <= bytes * 8);
	/* Host bits below the prefix are zero (a set one is refused). */
	for (size_t bit = c.prefix; bit < bytes * 8; bit++)
		VP_FUZZ_CHECK((c.addr[bit / 8] & (0x80 >> (bit % 8))) == 0);
	VP_FUZZ_CHECK(vp_fuzz_terminated(c.text, sizeof(c.text)));
	/* What was kept as written parses to the same network. */
	VP_FUZZ_CHECK(vp_cidr_parse(c.text, &again, err, sizeof(err)) == 0);
	VP_FUZZ_CHECK(again.family == c.family && again.prefix == c.prefix &&
	              memcmp(again.addr, c.addr, bytes) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint16_t default_port;
	char *text;

	if (size == 0)
		return 0;
	default_port = data[0] & 1 ? 9464 : 0;
	text = vp_fuzz_str(data + 1, size - 1);
	if (text == NULL)
		return 0;
	check_url(text);
	check_addrport(text, default_port);
	check_cidr(text);
	free(text);
	return 0;
}

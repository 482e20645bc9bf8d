/* The status server's pure parts: the routing table, the token check and
 * the loop watch, and the refusal of a status page open to the network
 * without a token. No socket, no loop: tests/test_status.c runs each as a
 * table. */
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "agent/status_int.h"

struct route_row {
	const char *path;
	bool prefix;                 /* the path only starts the request's */
	enum vp_route route;
};

static const struct route_row routes[] = {
	{ "/", false, VP_ROUTE_PAGE },
	{ "/target/", true, VP_ROUTE_TARGET },
	{ "/api/v1/status", false, VP_ROUTE_STATUS },
	{ "/api/v1/listeners", false, VP_ROUTE_LISTENERS },
	{ "/metrics", false, VP_ROUTE_METRICS },
	{ "/healthz", false, VP_ROUTE_HEALTHZ },
	{ "/-/healthy", false, VP_ROUTE_HEALTHZ },
	{ "/-/ready", false, VP_ROUTE_READY },
};

unsigned vp_status_route(const char *method, const char *path, enum vp_route *ret,
                         const char **rest)
{
	const struct route_row *row = NULL;

	for (size_t i = 0; path != NULL && i < sizeof(routes) / sizeof(routes[0]); i++) {
		size_t n = strlen(routes[i].path);

		if (routes[i].prefix ? strncmp(path, routes[i].path, n) == 0 && path[n] != '\0' :
		    strcmp(path, routes[i].path) == 0) {
			row = &routes[i];
			break;
		}
	}
	if (row == NULL)
		return MHD_HTTP_NOT_FOUND;
	if (method == NULL || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0))
		return MHD_HTTP_METHOD_NOT_ALLOWED;
	*ret = row->route;
	*rest = row->prefix ? path + strlen(row->path) : NULL;
	return MHD_HTTP_OK;
}

void vp_status_sha256(const void *data, size_t len, unsigned char out[VP_STATUS_SHA256_LEN])
{
	unsigned int n = VP_STATUS_SHA256_LEN;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1)
		memset(out, 0, VP_STATUS_SHA256_LEN); /* matches no token: the hash of one is not 0 */
}

/* The password of "Basic base64(user:password)", into 'out'. */
static bool basic_password(const char *b64, char *out, size_t outlen, size_t *ret_len)
{
	size_t n = strlen(b64);
	unsigned char raw[VP_STATUS_AUTH_MAX];
	const unsigned char *colon;
	bool ok = false;
	int len;

	while (n > 0 && b64[n - 1] == ' ')
		n--;
	if (n == 0 || n % 4 != 0 || n / 4 * 3 > sizeof(raw))
		return false;
	len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
	if (len < 0)
		goto out;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	len -= (b64[n - 1] == '=') + (b64[n - 2] == '=');
	colon = memchr(raw, ':', (size_t)len);
	if (colon == NULL || (size_t)(raw + len - colon - 1) >= outlen)
		goto out;
	*ret_len = (size_t)(raw + len - colon - 1);
	memcpy(out, colon + 1, *ret_len);
	ok = true;
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	return ok;
}

bool vp_status_auth_ok(const char *authorization, const unsigned char want[VP_STATUS_SHA256_LEN])
{
	unsigned char got[VP_STATUS_SHA256_LEN];
	char secret[VP_STATUS_AUTH_MAX];
	const char *p = authorization;
	size_t len = 0;
	bool ok = false;

	if (p == NULL || strnlen(p, VP_STATUS_AUTH_MAX) >= VP_STATUS_AUTH_MAX)
		return false;
	if (strncasecmp(p, "Bearer ", 7) == 0) {
		for (p += 7; *p == ' '; p++)
			continue;
		len = strlen(p);
		while (len > 0 && p[len - 1] == ' ')
			len--;
		memcpy(secret, p, len);
		ok = len > 0;
	} else if (strncasecmp(p, "Basic ", 6) == 0) {
		for (p += 6; *p == ' '; p++)
			continue;
		ok = basic_password(p, secret, sizeof(secret), &len) && len > 0;
	}
	if (ok) {
		vp_status_sha256(secret, len, got);
		ok = CRYPTO_memcmp(got, want, VP_STATUS_SHA256_LEN) == 0;
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	return ok;
}

bool vp_status_loop_stalled(uint64_t beat_ms, uint64_t now_ms)
{
	return now_ms > beat_ms && now_ms - beat_ms > VP_STATUS_STALL_MS;
}

static bool is_loopback(const struct vp_addrport *ap)
{
	static const uint8_t v6_loopback[16] = { [15] = 1 };
	static const uint8_t v4_mapped[12] = { [10] = 0xff, [11] = 0xff };

	if (ap->family == AF_INET)
		return ap->addr[0] == 127;
	if (memcmp(ap->addr, v6_loopback, 16) == 0)
		return true;
	return memcmp(ap->addr, v4_mapped, 12) == 0 && ap->addr[12] == 127;
}

int vp_status_check_config(const struct vp_config *cfg, char *err, size_t errlen)
{
	struct vp_addrport ap;
	char msg[VP_ERR_MAX];

	if (vp_addrport_parse(cfg->status_listen, 0, &ap, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "config '%s': agent.status_listen: %s", cfg->source, msg);
		return -EINVAL;
	}
	if (is_loopback(&ap) || cfg->status_token_file != NULL)
		return 0;
	snprintf(err, errlen, "config '%s': agent.status_listen '%s' is not a loopback address, "
	         "and agent.status_token_file is not set: the status page would be open to the "
	         "network; set agent.status_token_file, or listen on 127.0.0.1", cfg->source,
	         cfg->status_listen);
	return -EPERM;
}


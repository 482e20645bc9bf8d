/* Target URLs, ADDR:PORT pairs and CIDR blocks as users write them.
 *
 * Every parser here fills a local copy and hands it over only on success, so
 * a caller's '*ret' is never half-written. Messages are one sentence that
 * quotes the input and says what is wrong with it, except where quoting would
 * echo a password or a control character to a terminal. */
#include "config/url.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define SHOW_MAX 80          /* longer input is cut short in messages */
#define LABEL_MAX 63         /* RFC 1035 section 2.3.4 */
#define NAME_MAX_LEN 253     /* RFC 1035 name in text form, no final dot */
#define ADDRPORT_MAX 64      /* "[" INET6_ADDRSTRLEN "]:65535" fits */

struct scheme {
	const char *name;
	enum vp_kind kind;
};

/* "postgresql" is accepted as well because libpq takes both spellings and
 * users paste connection strings from it. */
static const struct scheme schemes[] = {
	{ "tcp", VP_KIND_TCP },
	{ "postgres", VP_KIND_POSTGRES },
	{ "postgresql", VP_KIND_POSTGRES },
	{ "redis", VP_KIND_REDIS },
	{ "rediss", VP_KIND_REDISS },
	{ "http", VP_KIND_HTTP },
	{ "https", VP_KIND_HTTPS },
};

static const char *const kind_names[VP_KIND_MAX] = {
	[VP_KIND_TCP] = "tcp",
	[VP_KIND_POSTGRES] = "postgres",
	[VP_KIND_REDIS] = "redis",
	[VP_KIND_REDISS] = "rediss",
	[VP_KIND_HTTP] = "http",
	[VP_KIND_HTTPS] = "https",
};

static const uint16_t default_ports[VP_KIND_MAX] = {
	[VP_KIND_TCP] = 0,
	[VP_KIND_POSTGRES] = 5432,
	[VP_KIND_REDIS] = 6379,
	[VP_KIND_REDISS] = 6378,
	[VP_KIND_HTTP] = 80,
	[VP_KIND_HTTPS] = 443,
};

const char *vp_kind_name(enum vp_kind kind)
{
	if (kind < 0 || kind >= VP_KIND_MAX)
		return "invalid";
	return kind_names[kind];
}

uint16_t vp_kind_default_port(enum vp_kind kind)
{
	if (kind < 0 || kind >= VP_KIND_MAX)
		return 0;
	return default_ports[kind];
}

static bool is_http(enum vp_kind kind)
{
	return kind == VP_KIND_HTTP || kind == VP_KIND_HTTPS;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_name_char(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c == '-' || c == '_';
}

/* Writes one message into 'msg' and returns -EINVAL, so that a check can
 * end in 'return msgf(...)'. */
__attribute__((format(printf, 3, 4)))
static int msgf(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	if (msg == NULL || msglen == 0)
		return -EINVAL;
	va_start(ap, fmt);
	(void)vsnprintf(msg, msglen, fmt, ap); /* a cut message is still a message */
	va_end(ap);
	return -EINVAL;
}

/* "'INPUT': MSG", with INPUT cut to SHOW_MAX bytes. */
static int quote_error(const char *text, const char *msg, char *err, size_t errlen)
{
	size_t len = strlen(text);
	int show = len > SHOW_MAX ? SHOW_MAX : (int)len;

	return msgf(err, errlen, "'%.*s%s': %s", show, text, len > SHOW_MAX ? "..." : "", msg);
}

/* Control characters and raw non-ASCII bytes are never valid in a URL or an
 * address (RFC 3986 section 2 wants them percent-encoded), and echoing them
 * back could garble a terminal, so they are reported by offset only. */
static int check_bytes(const char *what, const char *text, size_t max, char *err, size_t errlen)
{
	size_t len = strnlen(text, max);

	if (len == 0)
		return msgf(err, errlen, "empty %s", what);
	if (len >= max)
		return msgf(err, errlen, "%s is longer than %zu bytes", what, max - 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c <= 0x20 || c >= 0x7f)
			return msgf(err, errlen, "%s has a space, control character or "
			            "non-ASCII byte at offset %zu; percent-encode it", what, i);
	}
	return 0;
}

/* A port is 1..65535 in decimal digits; no sign, no spaces, no hex. */
static int parse_port(const char *s, size_t len, uint16_t *ret, char *msg, size_t msglen)
{
	char buf[8];
	char *end = NULL;
	unsigned long v;

	if (len == 0)
		return msgf(msg, msglen, "empty port after ':'");
	for (size_t i = 0; i < len; i++)
		if (!is_digit(s[i]))
			return msgf(msg, msglen, "port '%.*s' is not a decimal number",
			            len > 20 ? 20 : (int)len, s);
	if (len >= sizeof(buf))
		return msgf(msg, msglen, "port %.*s not in 1..65535", len > 20 ? 20 : (int)len, s);
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	v = strtoul(buf, &end, 10);
	if (errno != 0 || end != buf + len)
		return msgf(msg, msglen, "port '%s' is not a decimal number", buf);
	if (v < 1 || v > 65535)
		return msgf(msg, msglen, "port %lu not in 1..65535", v);
	*ret = (uint16_t)v;
	return 0;
}

/* An IPv6 address from between brackets, without them. Zones ("%eth0") are
 * refused: they only make sense for link-local addresses, which no target
 * in a VPC has, and getaddrinfo would silently pick an interface. */
static int parse_ipv6(const char *s, size_t len, uint8_t addr[16], char *buf, size_t buflen,
                      char *msg, size_t msglen)
{
	const char *zone = memchr(s, '%', len);

	if (zone != NULL)
		return msgf(msg, msglen, "IPv6 zone '%.*s' is not supported; use the address "
		            "without a zone", (int)(len - (size_t)(zone - s)), zone);
	if (len == 0 || len >= INET6_ADDRSTRLEN || len >= buflen)
		return msgf(msg, msglen, "'[%.*s]' is not an IPv6 address", len > 64 ? 64 : (int)len, s);
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET6, buf, addr) != 1)
		return msgf(msg, msglen, "'[%s]' is not an IPv6 address", buf);
	return 0;
}

static bool looks_like_ipv4(const char *s, size_t len)
{
	bool digit = false;

	for (size_t i = 0; i < len; i++) {
		if (!is_digit(s[i]) && s[i] != '.')
			return false;
		digit = digit || is_digit(s[i]);
	}
	return digit;
}

/* RFC 1035 section 2.3.1, relaxed as RFC 1123 section 2.1 allows (labels may
 * start with a digit), plus '_' because SRV-style and cloud-internal names
 * use it. One final dot (a fully qualified name) is allowed. */
static int check_dns_name(const char *s, size_t len, char *msg, size_t msglen)
{
	size_t n = len > 0 && s[len - 1] == '.' ? len - 1 : len;
	size_t start = 0;

	if (n > NAME_MAX_LEN)
		return msgf(msg, msglen, "host name is %zu bytes, longer than %d", n, NAME_MAX_LEN);
	for (size_t i = 0; i <= n; i++) {
		size_t llen = i - start;

		if (i < n && s[i] != '.') {
			if (!is_name_char(s[i]))
				return msgf(msg, msglen, "host name has '%c'; only letters, digits, "
				            "'-', '_' and '.' are allowed", s[i]);
			continue;
		}
		if (llen == 0)
			return msgf(msg, msglen, "host name '%.*s' has an empty label", (int)len, s);
		if (llen > LABEL_MAX)
			return msgf(msg, msglen, "host name label '%.*s...' is %zu bytes, longer "
			            "than %d", 20, s + start, llen, LABEL_MAX);
		if (s[start] == '-' || s[i - 1] == '-')
			return msgf(msg, msglen, "host name label '%.*s' starts or ends with '-'",
			            (int)llen, s + start);
		start = i + 1;
	}
	return 0;
}

/* A host without brackets: an IPv4 dotted quad, or a DNS name. Anything made
 * only of digits and dots must be a dotted quad: "10.1.2" or "167772161"
 * would otherwise reach getaddrinfo, which reads them the old BSD way. */
static int parse_plain_host(const char *s, size_t len, struct vp_url *u, char *msg, size_t msglen)
{
	uint8_t addr[4];
	int r;

	if (len == 0)
		return msgf(msg, msglen, "missing host");
	if (len >= sizeof(u->host))
		return msgf(msg, msglen, "host name is %zu bytes, longer than %d", len, NAME_MAX_LEN);
	memcpy(u->host, s, len);
	u->host[len] = '\0';
	if (looks_like_ipv4(s, len)) {
		if (inet_pton(AF_INET, u->host, addr) != 1)
			return msgf(msg, msglen, "'%s' is not an IPv4 address", u->host);
		u->host_type = VP_HOST_IPV4;
		return 0;
	}
	r = check_dns_name(s, len, msg, msglen);
	if (r < 0)
		return r;
	u->host_type = VP_HOST_NAME;
	return 0;
}

/* HOST[:PORT], where HOST may be [IPv6]. Leaves u->port 0 when absent. */
static int parse_authority(const char *a, size_t len, struct vp_url *u, char *msg, size_t msglen)
{
	const char *end = a + len;
	const char *colon;
	uint8_t addr[16];
	int r;

	if (len > 0 && a[0] == '[') {
		const char *close = memchr(a, ']', len);

		if (close == NULL)
			return msgf(msg, msglen, "'[' without a matching ']'");
		r = parse_ipv6(a + 1, (size_t)(close - a - 1), addr, u->host, sizeof(u->host),
		               msg, msglen);
		if (r < 0)
			return r;
		u->host_type = VP_HOST_IPV6;
		if (close + 1 == end)
			return 0;
		if (close[1] != ':')
			return msgf(msg, msglen, "unexpected '%c' after ']'; expected ':PORT'", close[1]);
		return parse_port(close + 2, (size_t)(end - close - 2), &u->port, msg, msglen);
	}
	colon = memchr(a, ':', len);
	if (colon != NULL && memchr(colon + 1, ':', (size_t)(end - colon - 1)) != NULL)
		return msgf(msg, msglen, "an IPv6 address needs brackets, as in tcp://[::1]:5432");
	r = parse_plain_host(a, colon != NULL ? (size_t)(colon - a) : len, u, msg, msglen);
	if (r < 0 || colon == NULL)
		return r;
	return parse_port(colon + 1, (size_t)(end - colon - 1), &u->port, msg, msglen);
}

/* What follows the authority. A fragment is dropped: RFC 9110 section 4.2.4
 * says it is never sent, so it cannot change what the probe does, and
 * refusing a URL pasted from a browser would only annoy. */
static int parse_path(const char *rest, struct vp_url *u, char *msg, size_t msglen)
{
	size_t len = strcspn(rest, "#");
	size_t slash = rest[0] == '?' ? 1 : 0;

	if (!is_http(u->kind)) {
		if (rest[0] == '\0' || strcmp(rest, "/") == 0)
			return 0;
		return msgf(msg, msglen, "%s:// takes no path, only HOST[:PORT]; remove '%.*s'",
		            vp_kind_name(u->kind), len > 40 ? 40 : (int)len, rest);
	}
	if (len == 0)
		slash = 1;     /* "/" */
	if (len + slash >= VP_PATH_MAX)
		return msgf(msg, msglen, "path is %zu bytes, longer than %d", len + slash,
		            VP_PATH_MAX - 1);
	u->path = malloc(len + slash + 1);
	if (u->path == NULL)
		return -ENOMEM;
	if (slash)
		u->path[0] = '/';
	memcpy(u->path + slash, rest, len);
	u->path[slash + len] = '\0';
	return 0;
}

void vp_url_free(struct vp_url *u)
{
	if (u == NULL)
		return;
	free(u->path);
	u->path = NULL;
}

static int parse_scheme(const char *text, enum vp_kind *ret, const char **rest,
                        char *msg, size_t msglen)
{
	const char *sep = strstr(text, "://");
	size_t len;

	if (sep == NULL)
		return msgf(msg, msglen, "missing '://' after the scheme, as in tcp://HOST:PORT");
	len = (size_t)(sep - text);
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strlen(schemes[i].name) == len && strncasecmp(text, schemes[i].name, len) == 0) {
			*ret = schemes[i].kind;
			*rest = sep + 3;
			return 0;
		}
	}
	return msgf(msg, msglen, "unknown scheme '%.*s' (known: tcp, postgres, redis, rediss, "
	            "http, https)", len > 20 ? 20 : (int)len, text);
}

/* Credentials would end up in logs, records and the status page, which the
 * design forbids; the password belongs in a file named by password_file. The
 * URL is shown with the userinfo blanked out. Outside http(s) no '@' can be
 * valid anywhere, so a '/' inside a password cannot hide it there. */
static int find_userinfo(const char *text, enum vp_kind kind, const char *auth, size_t alen,
                         char *err, size_t errlen)
{
	const char *at = NULL;
	const char *scan_end = is_http(kind) ? auth + alen : auth + strlen(auth);

	for (const char *p = auth; p < scan_end; p++)
		if (*p == '@')
			at = p;
	if (at == NULL)
		return 0;
	return msgf(err, errlen, "'%.*s://***@%.*s': credentials are not accepted in URLs; "
	            "put the password in a file and name it with password_file",
	            (int)(strstr(text, "://") - text), text, SHOW_MAX, at + 1);
}

int vp_url_parse(const char *text, struct vp_url *ret, char *err, size_t errlen)
{
	struct vp_url u = { .kind = VP_KIND_INVALID };
	char msg[VP_ERR_MAX] = "";
	const char *auth = NULL;
	size_t alen;
	int r;

	if (text == NULL)
		return msgf(err, errlen, "missing URL");
	r = check_bytes("URL", text, VP_URL_MAX, err, errlen);
	if (r < 0)
		return r;
	r = parse_scheme(text, &u.kind, &auth, msg, sizeof(msg));
	if (r < 0)
		goto fail;
	alen = strcspn(auth, "/?#");
	r = find_userinfo(text, u.kind, auth, alen, err, errlen);
	if (r < 0)
		return r;
	r = parse_authority(auth, alen, &u, msg, sizeof(msg));
	if (r < 0)
		goto fail;
	if (u.port == 0)
		u.port = vp_kind_default_port(u.kind);
	if (u.port == 0) {
		r = msgf(msg, sizeof(msg), "%s:// needs a port, as in %s://HOST:PORT",
		         vp_kind_name(u.kind), vp_kind_name(u.kind));
		goto fail;
	}
	r = parse_path(auth + alen, &u, msg, sizeof(msg));
	if (r == -ENOMEM) {
		(void)msgf(err, errlen, "out of memory for the URL's path");
		return -ENOMEM;
	}
	if (r < 0)
		goto fail;
	*ret = u;
	return 0;
fail:
	return quote_error(text, msg, err, errlen);
}

static int parse_ipv4_or_bare_ipv6(const char *s, size_t len, uint16_t default_port,
                                   struct vp_addrport *a, char *msg, size_t msglen)
{
	char buf[ADDRPORT_MAX];
	const char *colon = memchr(s, ':', len);

	memcpy(buf, s, len);
	buf[len] = '\0';
	if (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon - s) - 1) != NULL) {
		if (default_port == 0 || inet_pton(AF_INET6, buf, a->addr) != 1)
			return msgf(msg, msglen, "an IPv6 address needs brackets, as in [::1]:9464");
		a->family = AF_INET6;
		a->port = default_port;
		return 0;
	}
	buf[colon != NULL ? (size_t)(colon - s) : len] = '\0';
	if (inet_pton(AF_INET, buf, a->addr) != 1)
		return msgf(msg, msglen, "'%s' is not an IP address; write an IPv4 address or a "
		            "bracketed IPv6 address, as in 127.0.0.1:9464 or [::1]:9464", buf);
	a->family = AF_INET;
	if (colon != NULL)
		return parse_port(colon + 1, len - (size_t)(colon - s) - 1, &a->port, msg, msglen);
	if (default_port == 0)
		return msgf(msg, msglen, "no port; write ADDR:PORT, as in 127.0.0.1:9464");
	a->port = default_port;
	return 0;
}

int vp_addrport_parse(const char *text, uint16_t default_port, struct vp_addrport *ret,
                      char *err, size_t errlen)
{
	struct vp_addrport a = { 0 };
	char msg[VP_ERR_MAX] = "";
	char host[ADDRPORT_MAX];
	size_t len;
	int r;

	if (text == NULL)
		return msgf(err, errlen, "missing address");
	r = check_bytes("address", text, ADDRPORT_MAX, err, errlen);
	if (r < 0)
		return r;
	len = strlen(text);
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		r = close == NULL ? msgf(msg, sizeof(msg), "'[' without a matching ']'") :
		    parse_ipv6(text + 1, (size_t)(close - text - 1), a.addr, host, sizeof(host),
		               msg, sizeof(msg));
		if (r < 0)
			goto fail;
		a.family = AF_INET6;
		a.port = default_port;
		if (close[1] != '\0' && close[1] != ':')
			r = msgf(msg, sizeof(msg), "unexpected '%c' after ']'; expected ':PORT'", close[1]);
		else if (close[1] == ':')
			r = parse_port(close + 2, strlen(close + 2), &a.port, msg, sizeof(msg));
		else if (default_port == 0)
			r = msgf(msg, sizeof(msg), "no port; write [ADDR]:PORT, as in [::1]:9464");
	} else {
		r = parse_ipv4_or_bare_ipv6(text, len, default_port, &a, msg, sizeof(msg));
	}
	if (r < 0)
		goto fail;
	*ret = a;
	return 0;
fail:
	return quote_error(text, msg, err, errlen);
}

/* The prefix after '/': decimal, 0..max. */
static int parse_prefix(const char *s, unsigned max, uint8_t *ret, char *msg, size_t msglen)
{
	char *end = NULL;
	unsigned long v;

	if (s[0] == '\0')
		return msgf(msg, msglen, "empty prefix length after '/'");
	for (const char *p = s; *p != '\0'; p++)
		if (!is_digit(*p))
			return msgf(msg, msglen, "prefix length '%s' is not a decimal number", s);
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return msgf(msg, msglen, "prefix length /%s not in 0..%u", s, max);
	*ret = (uint8_t)v;
	return 0;
}

/* Zeroes the host bits of 'c' in 'net'; returns whether any were set. */
static bool mask_host_bits(const struct vp_cidr *c, uint8_t net[16])
{
	size_t nbytes = c->family == AF_INET ? 4 : 16;
	bool set = false;

	for (size_t i = 0; i < nbytes; i++) {
		unsigned keep = c->prefix >= (i + 1) * 8 ? 8 :
		                c->prefix <= i * 8 ? 0 : c->prefix - i * 8;
		uint8_t mask = (uint8_t)(0xff00u >> keep);

		net[i] = c->addr[i] & mask;
		set = set || net[i] != c->addr[i];
	}
	return set;
}

int vp_cidr_parse(const char *text, struct vp_cidr *ret, char *err, size_t errlen)
{
	struct vp_cidr c = { 0 };
	char msg[VP_ERR_MAX] = "";
	char net_text[INET6_ADDRSTRLEN];
	uint8_t net[16] = { 0 };
	char *slash;
	int r;

	if (text == NULL)
		return msgf(err, errlen, "missing CIDR");
	r = check_bytes("CIDR", text, sizeof(c.text), err, errlen);
	if (r < 0)
		return r;
	snprintf(c.text, sizeof(c.text), "%s", text);
	slash = strchr(c.text, '/');
	if (slash != NULL)
		*slash = '\0';
	c.family = strchr(c.text, ':') != NULL ? AF_INET6 : AF_INET;
	if (inet_pton(c.family, c.text, c.addr) != 1) {
		r = msgf(msg, sizeof(msg), "'%s' is not an IPv4 or IPv6 address", c.text);
		goto fail;
	}
	c.prefix = c.family == AF_INET ? 32 : 128;
	if (slash != NULL) {
		r = parse_prefix(slash + 1, c.prefix, &c.prefix, msg, sizeof(msg));
		if (r < 0)
			goto fail;
	}
	if (mask_host_bits(&c, net)) {
		(void)inet_ntop(c.family, net, net_text, sizeof(net_text)); /* cannot fail: sized */
		r = msgf(msg, sizeof(msg), "host bits are set below /%u; the network is %s/%u",
		         c.prefix, net_text, c.prefix);
		goto fail;
	}
	snprintf(c.text, sizeof(c.text), "%s", text);
	*ret = c;
	return 0;
fail:
	return quote_error(text, msg, err, errlen);
}

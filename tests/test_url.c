/* Unit tests for config/url.c: target URLs, ADDR:PORT pairs and CIDR blocks.
 * Each table row is one input and what the parser must make of it; a bug fix
 * adds a row. */
#include <arpa/inet.h>
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config/url.h"

/* Long inputs, built by the preprocessor so that the rows stay static. */
#define L10 "abcdefghij"
#define L61 L10 L10 L10 L10 L10 L10 "a"
#define L63 L61 "bc"
#define L64 L63 "d"
#define L100 L10 L10 L10 L10 L10 L10 L10 L10 L10 L10
#define L1000 L100 L100 L100 L100 L100 L100 L100 L100 L100 L100
#define NAME253 L63 "." L63 "." L63 "." L61
#define PATH1023 "/" L1000 L10 L10 "12"

struct url_case {
	const char *input;
	bool ok;
	enum vp_kind kind;
	const char *host;
	enum vp_host_type host_type;
	uint16_t port;
	const char *path;
	const char *error;     /* a substring of the message */
	const char *forbidden; /* must not appear in the message: a secret */
};

#define OK(in, k, h, ht, p, pa) { in, true, VP_KIND_##k, h, VP_HOST_##ht, p, pa, NULL, NULL }
#define BAD(in, e) { in, false, VP_KIND_INVALID, NULL, VP_HOST_NAME, 0, NULL, e, NULL }
#define SECRET(in, e, s) { in, false, VP_KIND_INVALID, NULL, VP_HOST_NAME, 0, NULL, e, s }

static const struct url_case url_cases[] = {
	/* every scheme, explicit and default ports */
	OK("tcp://10.0.0.1:5432", TCP, "10.0.0.1", IPV4, 5432, ""),
	OK("tcp://127.0.0.1:1/", TCP, "127.0.0.1", IPV4, 1, ""),
	OK("TCP://127.0.0.1:65535", TCP, "127.0.0.1", IPV4, 65535, ""),
	OK("postgres://10.20.0.3", POSTGRES, "10.20.0.3", IPV4, 5432, ""),
	OK("postgres://10.20.0.3:6432", POSTGRES, "10.20.0.3", IPV4, 6432, ""),
	OK("postgresql://db.internal/", POSTGRES, "db.internal", NAME, 5432, ""),
	OK("Postgres://db.internal", POSTGRES, "db.internal", NAME, 5432, ""),
	OK("redis://10.20.0.4", REDIS, "10.20.0.4", IPV4, 6379, ""),
	OK("redis://10.20.0.4:6380", REDIS, "10.20.0.4", IPV4, 6380, ""),
	OK("rediss://cache.internal", REDISS, "cache.internal", NAME, 6378, ""),
	OK("rediss://cache.internal:6390", REDISS, "cache.internal", NAME, 6390, ""),
	OK("http://127.0.0.1", HTTP, "127.0.0.1", IPV4, 80, "/"),
	OK("http://api-vm.internal:8080/healthz", HTTP, "api-vm.internal", NAME, 8080, "/healthz"),
	OK("HTTP://h/a/b?c=d&e", HTTP, "h", NAME, 80, "/a/b?c=d&e"),
	OK("http://h?x=1", HTTP, "h", NAME, 80, "/?x=1"),
	OK("https://h", HTTPS, "h", NAME, 443, "/"),
	OK("https://h:8443/x#frag", HTTPS, "h", NAME, 8443, "/x"),
	OK("https://h#frag", HTTPS, "h", NAME, 443, "/"),
	OK("http://h:80" PATH1023, HTTP, "h", NAME, 80, PATH1023),
	/* IPv6 in brackets */
	OK("tcp://[::1]:5432", TCP, "::1", IPV6, 5432, ""),
	OK("redis://[fd00:198:18::1]", REDIS, "fd00:198:18::1", IPV6, 6379, ""),
	OK("http://[fd00:198:18::2]:8080/x", HTTP, "fd00:198:18::2", IPV6, 8080, "/x"),
	OK("https://[::ffff:127.0.0.1]/", HTTPS, "::ffff:127.0.0.1", IPV6, 443, "/"),
	/* host names */
	OK("tcp://my_host.svc-1.internal.:80", TCP, "my_host.svc-1.internal.", NAME, 80, ""),
	OK("tcp://" L63 ":1", TCP, L63, NAME, 1, ""),
	OK("tcp://" NAME253 ":1", TCP, NAME253, NAME, 1, ""),
	OK("tcp://9lives.internal:7", TCP, "9lives.internal", NAME, 7, ""),
	OK("tcp://h:0080", TCP, "h", NAME, 80, ""),
	/* ports */
	BAD("tcp://10.0.0.1", "'tcp://10.0.0.1': tcp:// needs a port, as in tcp://HOST:PORT"),
	BAD("tcp://[::1]", "tcp:// needs a port"),
	BAD("tcp://h:0", "'tcp://h:0': port 0 not in 1..65535"),
	BAD("tcp://h:65536", "port 65536 not in 1..65535"),
	BAD("tcp://h:70000", "port 70000 not in 1..65535"),
	BAD("tcp://h:99999999999999999999", "port 99999999999999999999 not in 1..65535"),
	BAD("tcp://h:80a", "port '80a' is not a decimal number"),
	BAD("tcp://h:-1", "port '-1' is not a decimal number"),
	BAD("tcp://h:+80", "port '+80' is not a decimal number"),
	BAD("tcp://h:0x50", "port '0x50' is not a decimal number"),
	BAD("tcp://h:", "empty port after ':'"),
	BAD("http://h:/", "empty port after ':'"),
	BAD("tcp://[::1]:", "empty port after ':'"),
	BAD("tcp://[::1]:65536", "port 65536 not in 1..65535"),
	/* credentials: refused, and never echoed */
	SECRET("redis://user:hunter2@10.0.0.1:6379", "credentials are not accepted in URLs; put "
	       "the password in a file and name it with password_file", "hunter2"),
	SECRET("postgres://app:hunter2@db", "'postgres://***@db': credentials", "hunter2"),
	SECRET("http://u:hunter2@h/x", "'http://***@h/x': credentials", "hunter2"),
	SECRET("redis://:hun/ter2@h", "credentials are not accepted", "hun/ter2"),
	SECRET("tcp://hunter2@h:1", "credentials are not accepted", "hunter2"),
	OK("http://h/users/@me", HTTP, "h", NAME, 80, "/users/@me"),
	/* bad host names and addresses */
	BAD("tcp://-bad.internal:1", "label '-bad' starts or ends with '-'"),
	BAD("tcp://bad-.internal:1", "label 'bad-' starts or ends with '-'"),
	BAD("tcp://a..b:1", "host name 'a..b' has an empty label"),
	BAD("tcp://.a:1", "has an empty label"),
	BAD("tcp://.:1", "has an empty label"),
	BAD("tcp://ex!ample:1", "host name has '!'"),
	BAD("tcp://ex%41mple:1", "host name has '%'"),
	BAD("tcp://" L64 ":1", "is 64 bytes, longer than 63"),
	BAD("tcp://" NAME253 "b:1", "host name is 254 bytes, longer than 253"),
	BAD("tcp://" L100 "." L100 "." L100 ":1", "host name is 302 bytes, longer than 253"),
	BAD("tcp://10.0.0.256:1", "'10.0.0.256' is not an IPv4 address"),
	BAD("tcp://10.1.2:1", "'10.1.2' is not an IPv4 address"),
	BAD("tcp://167772161:1", "'167772161' is not an IPv4 address"),
	BAD("tcp://010.0.0.1:1", "'010.0.0.1' is not an IPv4 address"),
	BAD("tcp://[::1:5432", "'[' without a matching ']'"),
	BAD("tcp://[::g]:1", "'[::g]' is not an IPv6 address"),
	BAD("tcp://[]:1", "'[]' is not an IPv6 address"),
	BAD("tcp://[10.0.0.1]:1", "'[10.0.0.1]' is not an IPv6 address"),
	BAD("tcp://[fe80::1%eth0]:1", "IPv6 zone '%eth0' is not supported"),
	BAD("tcp://[::1]x:1", "unexpected 'x' after ']'"),
	BAD("tcp://::1:5432", "an IPv6 address needs brackets, as in tcp://[::1]:5432"),
	BAD("tcp://:5432", "missing host"),
	BAD("http://", "missing host"),
	BAD("http:///x", "missing host"),
	/* schemes */
	BAD("ftp://h:21", "'ftp://h:21': unknown scheme 'ftp' (known: tcp, postgres, redis, rediss, "
	    "http, https)"),
	BAD("mysql://db:3306", "unknown scheme 'mysql'"),
	BAD("://h:1", "unknown scheme ''"),
	BAD("10.0.0.1:5432", "'10.0.0.1:5432': missing '://' after the scheme"),
	BAD("tcp:/h:1", "missing '://'"),
	BAD("localhost", "missing '://'"),
	/* text as a whole */
	BAD("", "empty URL"),
	BAD("tcp://h :1", "URL has a space, control character or non-ASCII byte at offset 7"),
	BAD("tcp://h\t:1", "at offset 7"),
	BAD("http://h/a\nb", "at offset 10"),
	BAD("tcp://h\xc3\xa9:1", "non-ASCII byte at offset 7"),
	BAD("http://h/" L1000 L1000 L10 L10 L10 "abcdefghi", "URL is longer than 2047 bytes"),
	BAD("http://h" PATH1023 "x", "path is 1024 bytes, longer than 1023"),
	/* paths outside http */
	BAD("postgres://h/mydb", "postgres:// takes no path, only HOST[:PORT]; remove '/mydb'"),
	BAD("redis://h?db=1", "redis:// takes no path"),
	BAD("tcp://h:1//", "tcp:// takes no path"),
	BAD("rediss://h#x", "rediss:// takes no path"),
};

#define N_URL_CASES (int)(sizeof(url_cases) / sizeof(url_cases[0]))

START_TEST(test_url_table)
{
	const struct url_case *c = &url_cases[_i];
	struct vp_url u;
	char err[VP_ERR_MAX] = "";
	int r;

	memset(&u, 0x5a, sizeof(u));
	r = vp_url_parse(c->input, &u, err, sizeof(err));
	if (!c->ok) {
		ck_assert_msg(r == -EINVAL, "row %d '%s': expected -EINVAL, got %d", _i, c->input, r);
		ck_assert_msg(strstr(err, c->error) != NULL, "row %d: message '%s' lacks '%s'",
		              _i, err, c->error);
		ck_assert_msg(c->forbidden == NULL || strstr(err, c->forbidden) == NULL,
		              "row %d: message '%s' shows the secret", _i, err);
		ck_assert_msg(u.port == 0x5a5a, "row %d: *ret was written on failure", _i);
		ck_assert_msg(strchr(err, '\n') == NULL, "row %d: message is not one line", _i);
		return;
	}
	ck_assert_msg(r == 0, "row %d '%s': %s", _i, c->input, err);
	ck_assert_int_eq(u.kind, c->kind);
	ck_assert_str_eq(u.host, c->host);
	ck_assert_int_eq(u.host_type, c->host_type);
	ck_assert_uint_eq(u.port, c->port);
	/* Only http(s) URLs own a path; the others leave it NULL. */
	ck_assert_msg((u.path != NULL) == (u.kind == VP_KIND_HTTP || u.kind == VP_KIND_HTTPS),
	              "row %d: path %s for %s", _i, u.path ? "set" : "NULL", vp_kind_name(u.kind));
	ck_assert_str_eq(u.path ? u.path : "", c->path);
	vp_url_free(&u);
	ck_assert_ptr_null(u.path);
}
END_TEST

struct kind_case {
	enum vp_kind kind;
	const char *name;
	uint16_t port;
};

static const struct kind_case kind_cases[] = {
	{ VP_KIND_TCP, "tcp", 0 },
	{ VP_KIND_POSTGRES, "postgres", 5432 },
	{ VP_KIND_REDIS, "redis", 6379 },
	{ VP_KIND_REDISS, "rediss", 6378 },
	{ VP_KIND_HTTP, "http", 80 },
	{ VP_KIND_HTTPS, "https", 443 },
	{ VP_KIND_MAX, "invalid", 0 },
	{ VP_KIND_INVALID, "invalid", 0 },
	{ (enum vp_kind)1000, "invalid", 0 },
};

START_TEST(test_kind_table)
{
	const struct kind_case *c = &kind_cases[_i];

	ck_assert_str_eq(vp_kind_name(c->kind), c->name);
	ck_assert_uint_eq(vp_kind_default_port(c->kind), c->port);
}
END_TEST

struct addrport_case {
	const char *input;
	uint16_t default_port;
	bool ok;
	int family;
	const char *addr;     /* as inet_ntop writes it */
	uint16_t port;
	const char *error;
};

static const struct addrport_case addrport_cases[] = {
	{ "127.0.0.1:9464", 0, true, AF_INET, "127.0.0.1", 9464, NULL },
	{ "0.0.0.0:18080", 0, true, AF_INET, "0.0.0.0", 18080, NULL },
	{ "[::1]:9464", 0, true, AF_INET6, "::1", 9464, NULL },
	{ "[::]:1", 0, true, AF_INET6, "::", 1, NULL },
	{ "127.0.0.1", 53, true, AF_INET, "127.0.0.1", 53, NULL },
	{ "127.0.0.1:5353", 53, true, AF_INET, "127.0.0.1", 5353, NULL },
	{ "[fd00:198:18::53]", 53, true, AF_INET6, "fd00:198:18::53", 53, NULL },
	{ "[fd00:198:18::53]:5353", 53, true, AF_INET6, "fd00:198:18::53", 5353, NULL },
	{ "fd00:198:18::53", 53, true, AF_INET6, "fd00:198:18::53", 53, NULL },
	{ "127.0.0.1", 0, false, 0, NULL, 0, "'127.0.0.1': no port; write ADDR:PORT" },
	{ "[::1]", 0, false, 0, NULL, 0, "'[::1]': no port; write [ADDR]:PORT" },
	{ "::1", 0, false, 0, NULL, 0, "an IPv6 address needs brackets, as in [::1]:9464" },
	/* Without brackets a port cannot be told from the last group. */
	{ "fd00::1:9464", 53, true, AF_INET6, "fd00::1:9464", 53, NULL },
	{ "1.2.3.4:5:6", 53, false, 0, NULL, 0, "an IPv6 address needs brackets" },
	{ "localhost:9464", 0, false, 0, NULL, 0, "'localhost' is not an IP address; write an IPv4 "
	  "address or a bracketed IPv6 address" },
	{ "127.0.0.1:0", 0, false, 0, NULL, 0, "port 0 not in 1..65535" },
	{ "127.0.0.1:65536", 0, false, 0, NULL, 0, "port 65536 not in 1..65535" },
	{ "127.0.0.1:http", 0, false, 0, NULL, 0, "port 'http' is not a decimal number" },
	{ "127.0.0.1:", 0, false, 0, NULL, 0, "empty port after ':'" },
	{ "", 0, false, 0, NULL, 0, "empty address" },
	{ "127.0.0.1 :1", 0, false, 0, NULL, 0, "address has a space" },
	{ "[::1", 0, false, 0, NULL, 0, "'[' without a matching ']'" },
	{ "[::1]9464", 0, false, 0, NULL, 0, "unexpected '9' after ']'" },
	{ "[10.0.0.1]:1", 0, false, 0, NULL, 0, "'[10.0.0.1]' is not an IPv6 address" },
	{ "[fe80::1%eth0]:1", 0, false, 0, NULL, 0, "IPv6 zone '%eth0' is not supported" },
	{ L64, 0, false, 0, NULL, 0, "address is longer than 63 bytes" },
};

START_TEST(test_addrport_table)
{
	const struct addrport_case *c = &addrport_cases[_i];
	struct vp_addrport a;
	char err[VP_ERR_MAX] = "";
	char text[INET6_ADDRSTRLEN];
	int r;

	memset(&a, 0x5a, sizeof(a));
	r = vp_addrport_parse(c->input, c->default_port, &a, err, sizeof(err));
	if (!c->ok) {
		ck_assert_msg(r == -EINVAL, "row %d '%s': expected -EINVAL, got %d", _i, c->input, r);
		ck_assert_msg(strstr(err, c->error) != NULL, "row %d: message '%s' lacks '%s'",
		              _i, err, c->error);
		ck_assert_msg(a.port == 0x5a5a, "row %d: *ret was written on failure", _i);
		return;
	}
	ck_assert_msg(r == 0, "row %d '%s': %s", _i, c->input, err);
	ck_assert_int_eq(a.family, c->family);
	ck_assert_ptr_nonnull(inet_ntop(a.family, a.addr, text, sizeof(text)));
	ck_assert_str_eq(text, c->addr);
	ck_assert_uint_eq(a.port, c->port);
}
END_TEST

struct cidr_case {
	const char *input;
	bool ok;
	int family;
	const char *net;      /* the address, as inet_ntop writes it */
	unsigned prefix;
	const char *error;
};

static const struct cidr_case cidr_cases[] = {
	{ "10.8.0.0/28", true, AF_INET, "10.8.0.0", 28, NULL },
	{ "198.18.0.0/15", true, AF_INET, "198.18.0.0", 15, NULL },
	{ "0.0.0.0/0", true, AF_INET, "0.0.0.0", 0, NULL },
	{ "10.8.0.5/32", true, AF_INET, "10.8.0.5", 32, NULL },
	{ "10.8.0.5", true, AF_INET, "10.8.0.5", 32, NULL },
	{ "fd00:198:18::/48", true, AF_INET6, "fd00:198:18::", 48, NULL },
	{ "fd00:198:18:ff00::/56", true, AF_INET6, "fd00:198:18:ff00::", 56, NULL },
	{ "::/0", true, AF_INET6, "::", 0, NULL },
	{ "::1", true, AF_INET6, "::1", 128, NULL },
	{ "10.8.0.1/28", false, 0, NULL, 0, "'10.8.0.1/28': host bits are set below /28; the "
	  "network is 10.8.0.0/28" },
	{ "10.8.0.16/27", false, 0, NULL, 0, "the network is 10.8.0.0/27" },
	{ "1.0.0.0/0", false, 0, NULL, 0, "the network is 0.0.0.0/0" },
	{ "fd00:198:18::1/48", false, 0, NULL, 0, "the network is fd00:198:18::/48" },
	{ "fd00:198:18:ff80::/56", false, 0, NULL, 0, "the network is fd00:198:18:ff00::/56" },
	{ "10.8.0.0/33", false, 0, NULL, 0, "prefix length /33 not in 0..32" },
	{ "10.8.0.0/100000000000000000000", false, 0, NULL, 0, "not in 0..32" },
	{ "fd00::/129", false, 0, NULL, 0, "prefix length /129 not in 0..128" },
	{ "10.8.0.0/", false, 0, NULL, 0, "empty prefix length after '/'" },
	{ "10.8.0.0/2a", false, 0, NULL, 0, "prefix length '2a' is not a decimal number" },
	{ "10.8.0.0/-1", false, 0, NULL, 0, "prefix length '-1' is not a decimal number" },
	{ "10.8.0.0/24/1", false, 0, NULL, 0, "is not a decimal number" },
	{ "10.8.0/24", false, 0, NULL, 0, "'10.8.0' is not an IPv4 or IPv6 address" },
	{ "host.internal/24", false, 0, NULL, 0, "'host.internal' is not an IPv4 or IPv6 address" },
	{ "[::1]/128", false, 0, NULL, 0, "is not an IPv4 or IPv6 address" },
	{ "", false, 0, NULL, 0, "empty CIDR" },
	{ "10.8.0.0 /28", false, 0, NULL, 0, "CIDR has a space" },
	{ L64, false, 0, NULL, 0, "CIDR is longer than 63 bytes" },
};

START_TEST(test_cidr_table)
{
	const struct cidr_case *c = &cidr_cases[_i];
	struct vp_cidr cidr;
	char err[VP_ERR_MAX] = "";
	char text[INET6_ADDRSTRLEN];
	int r;

	memset(&cidr, 0x5a, sizeof(cidr));
	r = vp_cidr_parse(c->input, &cidr, err, sizeof(err));
	if (!c->ok) {
		ck_assert_msg(r == -EINVAL, "row %d '%s': expected -EINVAL, got %d", _i, c->input, r);
		ck_assert_msg(strstr(err, c->error) != NULL, "row %d: message '%s' lacks '%s'",
		              _i, err, c->error);
		ck_assert_msg(cidr.prefix == 0x5a, "row %d: *ret was written on failure", _i);
		return;
	}
	ck_assert_msg(r == 0, "row %d '%s': %s", _i, c->input, err);
	ck_assert_int_eq(cidr.family, c->family);
	ck_assert_ptr_nonnull(inet_ntop(cidr.family, cidr.addr, text, sizeof(text)));
	ck_assert_str_eq(text, c->net);
	ck_assert_uint_eq(cidr.prefix, c->prefix);
	ck_assert_str_eq(cidr.text, c->input);
}
END_TEST

/* Callers may pass no buffer, or one too small for the message. */
struct errbuf_case {
	size_t errlen;
	bool null_buffer;
};

static const struct errbuf_case errbuf_cases[] = {
	{ 0, true }, { 0, false }, { 1, false }, { 8, false },
};

START_TEST(test_small_error_buffer)
{
	const struct errbuf_case *c = &errbuf_cases[_i];
	char err[16];
	struct vp_url u;
	struct vp_addrport a;
	struct vp_cidr cidr;
	char *buf = c->null_buffer ? NULL : err;

	memset(err, 'x', sizeof(err));
	ck_assert_int_eq(vp_url_parse("tcp://h", &u, buf, c->errlen), -EINVAL);
	ck_assert_int_eq(vp_url_parse(NULL, &u, buf, c->errlen), -EINVAL);
	ck_assert_int_eq(vp_addrport_parse("x", 0, &a, buf, c->errlen), -EINVAL);
	ck_assert_int_eq(vp_cidr_parse("x", &cidr, buf, c->errlen), -EINVAL);
	if (c->errlen > 0)
		ck_assert_uint_lt(strlen(err), c->errlen);
	else
		ck_assert_int_eq(err[0], 'x');
}
END_TEST

static Suite *url_suite(void)
{
	Suite *s = suite_create("url");
	TCase *tc = tcase_create("parse");

	tcase_add_loop_test(tc, test_url_table, 0, N_URL_CASES);
	tcase_add_loop_test(tc, test_kind_table, 0,
	                    (int)(sizeof(kind_cases) / sizeof(kind_cases[0])));
	tcase_add_loop_test(tc, test_addrport_table, 0,
	                    (int)(sizeof(addrport_cases) / sizeof(addrport_cases[0])));
	tcase_add_loop_test(tc, test_cidr_table, 0,
	                    (int)(sizeof(cidr_cases) / sizeof(cidr_cases[0])));
	tcase_add_loop_test(tc, test_small_error_buffer, 0,
	                    (int)(sizeof(errbuf_cases) / sizeof(errbuf_cases[0])));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(url_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

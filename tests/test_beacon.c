/* The beacon row by row: networks and sources in, inside or outside out;
 * request bytes in, complete / too long / garbage out (also one byte at a
 * time); the answer, which never carries a byte of the request. Then the
 * listener on loopback: arrivals, the answer, the cap and the deadline,
 * ending with uv_loop_close() == 0 (issue 3). */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/listen_checks.h"
#include "probes/beacon.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* A sockaddr for "198.18.5.10" or "fd00::1". */
static void sa_of(const char *text, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, text, &s4->sin_addr), 1);
	}
}

/* ---- CIDR match ------------------------------------------------------------ */

static const struct cidr_row {
	const char *cidr;
	const char *source;
	bool inside;
} cidr_rows[] = {
	{ "198.18.5.0/28", "198.18.5.10", true },
	{ "198.18.5.0/28", "198.18.5.0", true },
	{ "198.18.5.0/28", "198.18.5.15", true },
	{ "198.18.5.0/28", "198.18.5.16", false },
	{ "198.18.5.0/28", "198.18.6.10", false },
	{ "198.18.5.0/28", "198.18.4.255", false },
	/* A dual-stack [::] listener sees IPv4 clients as IPv4-mapped IPv6. */
	{ "198.18.5.0/28", "::ffff:198.18.5.10", true },
	{ "198.18.5.0/28", "::ffff:198.18.6.10", false },
	{ "127.0.0.0/8", "::ffff:127.0.0.1", true },
	/* ... but an IPv6 address with the same low bytes is not IPv4. */
	{ "198.18.5.0/28", "::198.18.5.10", false },
	{ "198.18.5.0/28", "fd00:198:18::1", false },
	/* Prefixes off a byte boundary. */
	{ "198.18.5.8/29", "198.18.5.15", true },
	{ "198.18.5.8/29", "198.18.5.7", false },
	{ "198.18.5.8/29", "198.18.5.16", false },
	{ "198.18.0.0/15", "198.19.1.1", true },
	{ "198.18.0.0/15", "198.20.0.1", false },
	{ "198.18.0.0/15", "198.17.255.255", false },
	/* A bare address is one host. */
	{ "198.18.5.10", "198.18.5.10", true },
	{ "198.18.5.10", "198.18.5.11", false },
	{ "0.0.0.0/0", "198.19.255.1", true },
	{ "0.0.0.0/0", "::ffff:198.19.255.1", true },
	{ "0.0.0.0/0", "fd00::1", false },
	/* IPv6. */
	{ "fd00:198:18::/48", "fd00:198:18:5::1", true },
	{ "fd00:198:18::/48", "fd00:198:19::1", false },
	{ "fd00:198:18::/48", "198.18.5.10", false },
	{ "fd00:198:18:4::/63", "fd00:198:18:5::1", true },
	{ "fd00:198:18:4::/63", "fd00:198:18:6::1", false },
	{ "fd00:198:18:4::/63", "fd00:198:18:3::1", false },
	{ "fd00::1", "fd00::1", true },
	{ "fd00::1", "fd00::2", false },
	{ "::1/128", "::1", true },
	{ "::1/128", "127.0.0.1", false },
	/* An IPv4 source matches the IPv4-mapped IPv6 networks. */
	{ "::ffff:198.18.5.0/120", "198.18.5.10", true },
	{ "::ffff:198.18.5.0/120", "::ffff:198.18.5.10", true },
	{ "::ffff:198.18.5.0/120", "198.18.6.10", false },
	{ "::/0", "fd00::1", true },
	{ "::/0", "198.18.5.10", true },
};

START_TEST(test_cidr_row)
{
	const struct cidr_row *r = &cidr_rows[_i];
	struct sockaddr_storage ss;
	struct vp_cidr c;
	char err[256];

	ck_assert_msg(vp_cidr_parse(r->cidr, &c, err, sizeof(err)) == 0, "%s: %s", r->cidr, err);
	sa_of(r->source, &ss);
	ck_assert_msg(vp_cidr_contains(&c, (struct sockaddr *)&ss) == r->inside, "%s in %s: expected %s",
	              r->source, r->cidr, r->inside ? "inside" : "outside");
}
END_TEST

static const struct match_row {
	size_t n;                 /* of the two networks below */
	const char *source;
	enum vp_beacon_match match;
	int which;
} match_rows[] = {
	{ 2, "198.18.5.10", VP_BEACON_INSIDE, 0 },
	{ 2, "::ffff:198.18.5.10", VP_BEACON_INSIDE, 0 },
	{ 2, "fd00:198:18::10", VP_BEACON_INSIDE, 1 },
	{ 2, "198.18.6.10", VP_BEACON_OUTSIDE, -1 },
	{ 1, "fd00:198:18::10", VP_BEACON_OUTSIDE, -1 },
	{ 0, "198.18.6.10", VP_BEACON_UNCHECKED, -1 },
};

START_TEST(test_match_row)
{
	const struct match_row *r = &match_rows[_i];
	struct vp_cidr c[2];
	struct sockaddr_storage ss;
	char err[256];
	int which = 42;

	ck_assert_int_eq(vp_cidr_parse("198.18.5.0/28", &c[0], err, sizeof(err)), 0);
	ck_assert_int_eq(vp_cidr_parse("fd00:198:18::/48", &c[1], err, sizeof(err)), 0);
	sa_of(r->source, &ss);
	ck_assert_int_eq(vp_beacon_match(c, r->n, (struct sockaddr *)&ss, &which), r->match);
	ck_assert_int_eq(which, r->which);
}
END_TEST

/* ---- the request ----------------------------------------------------------- */

#define CAP VP_BEACON_REQUEST_MAX
#define RQ "GET / HTTP/1.1\r\n"

static const struct scan_row {
	const char *head;
	size_t head_len;          /* 0: strlen(head); else exact, NULs included */
	size_t pad;               /* 'a' bytes after head */
	const char *tail;
	size_t cap;
	enum vp_beacon_req want;
} scan_rows[] = {
	/* Complete requests. */
	{ RQ "Host: beacon\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n", 0, 0, "", CAP, VP_BEACON_REQ_COMPLETE },
	{ RQ "\r\n", 0, 0, "", CAP, VP_BEACON_REQ_COMPLETE },
	{ "GET / HTTP/1.0\n\n", 0, 0, "", CAP, VP_BEACON_REQ_COMPLETE },
	{ "GET / HTTP/1.0\nHost: x\n\n", 0, 0, "", CAP, VP_BEACON_REQ_COMPLETE },
	{ "\r\n\r\n" RQ "\r\n", 0, 0, "", CAP, VP_BEACON_REQ_COMPLETE },
	{ "OPTIONS * HTTP/1.1\r\n\r\n", 0, 0, "", CAP, VP_BEACON_REQ_COMPLETE },
	{ "POST /x?y=1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 0, 0, "", CAP, VP_BEACON_REQ_COMPLETE },
	/* A body, even a hostile one, is not read: the headers ended. */
	{ RQ "\r\n\x00\x1b[2J", 21, 0, "", CAP, VP_BEACON_REQ_COMPLETE },
	{ RQ "Host: caf\xc3\xa9\r\n\r\n", 0, 0, "", CAP, VP_BEACON_REQ_COMPLETE },
	{ RQ "X-Tab:\tvalue\r\n\r\n", 0, 0, "", CAP, VP_BEACON_REQ_COMPLETE },
	{ "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, 0, "", CAP, VP_BEACON_REQ_COMPLETE },
	/* Ends exactly at the cap. */
	{ RQ "X-Pad: ", 0, CAP - 27, "\r\n\r\n", CAP, VP_BEACON_REQ_COMPLETE },
	/* Not yet. */
	{ "", 0, 0, "", CAP, VP_BEACON_REQ_MORE },
	{ "GET /", 0, 0, "", CAP, VP_BEACON_REQ_MORE },
	{ RQ, 0, 0, "", CAP, VP_BEACON_REQ_MORE },
	{ RQ "Host: x\r\n", 0, 0, "", CAP, VP_BEACON_REQ_MORE },
	{ RQ "Host: x\r\n\r", 0, 0, "", CAP, VP_BEACON_REQ_MORE },
	{ "\r\n\r\n\r\n", 0, 0, "", CAP, VP_BEACON_REQ_MORE },
	/* No end of the headers within the cap. */
	{ RQ "X-Pad: ", 0, 3000, "\r\n\r\n", CAP, VP_BEACON_REQ_TOO_LONG },
	{ RQ "X-Pad: ", 0, CAP - 26, "\r\n\r\n", CAP, VP_BEACON_REQ_TOO_LONG },
	{ "GET /", 0, CAP, "", CAP, VP_BEACON_REQ_TOO_LONG },
	{ RQ "\r\n", 0, 0, "", 10, VP_BEACON_REQ_TOO_LONG },
	/* Garbage. */
	{ "\x00\x00\x00\x00", 4, 0, "", CAP, VP_BEACON_REQ_GARBAGE },
	{ "GET / HTTP/1.1\r\nHost: a\x00" "b\r\n\r\n", 27, 0, "", CAP, VP_BEACON_REQ_GARBAGE },
	{ "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11, 0, "", CAP, VP_BEACON_REQ_GARBAGE },
	{ "SSH-2.0-OpenSSH_9.2p1\r\n", 0, 0, "", CAP, VP_BEACON_REQ_GARBAGE },
	{ RQ "Host: \x1b[31mred\r\n\r\n", 0, 0, "", CAP, VP_BEACON_REQ_GARBAGE },
	{ "GET / HTTP/1.1\rX", 0, 0, "", CAP, VP_BEACON_REQ_GARBAGE },
	{ "GET\t/ HTTP/1.1\r\n\r\n", 0, 0, "", CAP, VP_BEACON_REQ_GARBAGE },
	{ "GET / FTP/1.0\r\n\r\n", 0, 0, "", CAP, VP_BEACON_REQ_GARBAGE },
	{ "GET / HTTP/1.10\r\n\r\n", 0, 0, "", CAP, VP_BEACON_REQ_GARBAGE },
	{ "GET HTTP/1.1\r\n\r\n", 0, 0, "", CAP, VP_BEACON_REQ_GARBAGE },
	{ "GET  HTTP/1.1\r\n\r\n", 0, 0, "", CAP, VP_BEACON_REQ_GARBAGE },
	{ " GET / HTTP/1.1\r\n\r\n", 0, 0, "", CAP, VP_BEACON_REQ_GARBAGE },
	{ "GET /\r\n\r\n", 0, 0, "", CAP, VP_BEACON_REQ_GARBAGE },
	{ "G(T / HTTP/1.1\r\n\r\n", 0, 0, "", CAP, VP_BEACON_REQ_GARBAGE },
	{ "\x7f", 0, 0, "", CAP, VP_BEACON_REQ_GARBAGE },
	{ "<script>alert(1)</script>", 0, 0, "", CAP, VP_BEACON_REQ_GARBAGE },
	/* A method longer than any: garbage before the cap. */
	{ "", 0, VP_BEACON_METHOD_MAX + 1, "", CAP, VP_BEACON_REQ_GARBAGE },
	{ "", 0, VP_BEACON_METHOD_MAX, " / HTTP/1.1\r\n\r\n", CAP, VP_BEACON_REQ_COMPLETE },
};

/* The row's bytes into a new buffer; its length into '*len'. */
static uint8_t *row_bytes(const struct scan_row *r, size_t *len)
{
	size_t hl = r->head_len ? r->head_len : strlen(r->head), tl = strlen(r->tail);
	uint8_t *b = malloc(hl + r->pad + tl + 1);

	ck_assert_ptr_nonnull(b);
	memcpy(b, r->head, hl);
	memset(b + hl, 'a', r->pad);
	memcpy(b + hl + r->pad, r->tail, tl);
	*len = hl + r->pad + tl;
	return b;
}

START_TEST(test_scan_row)
{
	const struct scan_row *r = &scan_rows[_i];
	struct vp_beacon_scanner s;
	size_t len, upto;
	uint8_t *b = row_bytes(r, &len);
	enum vp_beacon_req got = VP_BEACON_REQ_MORE;

	/* At once, as a reader that got everything (up to the cap) sees it. */
	upto = len < r->cap ? len : r->cap;
	vp_beacon_scan_init(&s);
	ck_assert_msg(vp_beacon_scan(&s, b, upto, r->cap) == r->want, "row %d at once", _i);
	/* One byte at a time: the same answer, and the same from its first byte on. */
	vp_beacon_scan_init(&s);
	for (size_t i = 1; i <= upto && got == VP_BEACON_REQ_MORE; i++)
		got = vp_beacon_scan(&s, b, i, r->cap);
	ck_assert_msg(got == r->want, "row %d byte by byte: %d, expected %d", _i, got, r->want);
	ck_assert_int_eq(vp_beacon_scan(&s, b, upto, r->cap), r->want);
	free(b);
}
END_TEST

/* ---- the answer ------------------------------------------------------------ */

static void arrival_of(const char *src, uint16_t port, struct vp_beacon_arrival *a)
{
	memset(a, 0, sizeof(*a));
	a->family = strchr(src, ':') ? AF_INET6 : AF_INET;
	snprintf(a->source, sizeof(a->source), "%s", src);
	a->source_port = port;
}

static const struct answer_row {
	enum vp_beacon_req st;
	const char *agent;
	const char *source;
	const char *status;       /* the status line */
	const char *body;         /* the whole body */
} answer_rows[] = {
	{ VP_BEACON_REQ_COMPLETE, "diag-vm-1", "198.18.5.10", "HTTP/1.1 200 OK\r\n",
	  "vpcprobe beacon on diag-vm-1: your connection from 198.18.5.10:40000 arrived\n" },
	{ VP_BEACON_REQ_COMPLETE, "api-vm", "fd00:198:18::10", "HTTP/1.1 200 OK\r\n",
	  "vpcprobe beacon on api-vm: your connection from [fd00:198:18::10]:40000 arrived\n" },
	{ VP_BEACON_REQ_TOO_LONG, "vm", "198.18.6.10", "HTTP/1.1 431 Request Header Fields Too Large\r\n",
	  "vpcprobe beacon on vm: your connection from 198.18.6.10:40000 arrived, but its request was "
	  "longer than the beacon reads\n" },
	{ VP_BEACON_REQ_GARBAGE, "vm", "198.18.6.10", "HTTP/1.1 400 Bad Request\r\n",
	  "vpcprobe beacon on vm: your connection from 198.18.6.10:40000 arrived, but what it sent is "
	  "not an HTTP request\n" },
	{ VP_BEACON_REQ_MORE, "vm", "198.18.6.10", "HTTP/1.1 400 Bad Request\r\n", NULL },
	/* A name with a header injection and a terminal escape stays one body line. */
	{ VP_BEACON_REQ_COMPLETE, "vm\r\nSet-Cookie: a=b\x1b[2J", "198.18.5.10", "HTTP/1.1 200 OK\r\n",
	  "vpcprobe beacon on vm??Set-Cookie: a=b?[2J: your connection from 198.18.5.10:40000 arrived\n" },
	{ VP_BEACON_REQ_COMPLETE, "", "198.18.5.10", "HTTP/1.1 200 OK\r\n",
	  "vpcprobe beacon on : your connection from 198.18.5.10:40000 arrived\n" },
};

/* Every byte printable ASCII but the CRLFs of the head and the body's LF;
 * one blank line; Content-Length equal to the body. Returns the body. */
static const char *check_shape(const char *resp, int n)
{
	const char *body = strstr(resp, "\r\n\r\n");
	const char *cl = strstr(resp, "\r\nContent-Length: ");

	ck_assert_int_eq((int)strlen(resp), n);
	for (int i = 0; i < n; i++)
		ck_assert_msg((resp[i] >= 0x20 && resp[i] < 0x7f) || resp[i] == '\r' || resp[i] == '\n',
		              "byte %d is 0x%02x", i, (unsigned char)resp[i]);
	ck_assert_ptr_nonnull(body);
	ck_assert_ptr_nonnull(cl);
	ck_assert(cl < body);
	body += 4;
	ck_assert_ptr_null(strchr(body, '\r'));
	ck_assert_int_eq(strtol(cl + 18, NULL, 10), (long)strlen(body));
	ck_assert_ptr_eq(strchr(body, '\n'), resp + n - 1);
	return body;
}

START_TEST(test_answer_row)
{
	const struct answer_row *r = &answer_rows[_i];
	struct vp_beacon_arrival a;
	char resp[VP_BEACON_RESPONSE_MAX + 1];
	int n;

	arrival_of(r->source, 40000, &a);
	n = vp_beacon_response(r->st, r->agent, &a, resp, sizeof(resp) - 1);
	ck_assert_int_gt(n, 0);
	resp[n] = '\0';
	ck_assert_msg(!strncmp(resp, r->status, strlen(r->status)), "got %s", resp);
	if (r->body)
		ck_assert_str_eq(check_shape(resp, n), r->body);
	else
		check_shape(resp, n);
}
END_TEST

/* Whatever a client sends, the answer is built from the agent's name and
 * the numeric source only: a marker in the request never comes back. */
static const char *const hostile[] = {
	"GET /ECHOME HTTP/1.1\r\nHost: ECHOME\r\n\r\n",
	"GET / HTTP/1.1\r\nX-ECHOME: <script>alert(1)</script>\r\n\r\n",
	"ECHOME\x1b]0;pwned\x07\r\n\r\n",
	"GET /%0d%0aSet-Cookie:ECHOME HTTP/1.1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: \302\23331mECHOME\r\n\r\n",   /* C1 CSI */
};

START_TEST(test_no_echo)
{
	struct vp_beacon_scanner s;
	struct vp_beacon_arrival a;
	const uint8_t *req = (const uint8_t *)hostile[_i];
	char resp[VP_BEACON_RESPONSE_MAX + 1];
	enum vp_beacon_req st;
	int n;

	vp_beacon_scan_init(&s);
	st = vp_beacon_scan(&s, req, strlen(hostile[_i]), CAP);
	arrival_of("198.18.6.10", 1, &a);
	n = vp_beacon_response(st, "vm", &a, resp, sizeof(resp) - 1);
	ck_assert_int_gt(n, 0);
	resp[n] = '\0';
	check_shape(resp, n);
	ck_assert_ptr_null(strstr(resp, "ECHOME"));
	ck_assert_ptr_null(strstr(resp, "script"));
	ck_assert_ptr_null(strstr(resp, "Set-Cookie"));
}
END_TEST

START_TEST(test_answer_bounds)
{
	char name[VP_NAME_MAX * 2], resp[VP_BEACON_RESPONSE_MAX], small[64];
	struct vp_beacon_arrival a;
	int n;

	/* The longest source and a name past VP_NAME_MAX fit the answer's cap. */
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	arrival_of("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535, &a);
	n = vp_beacon_response(VP_BEACON_REQ_TOO_LONG, name, &a, resp, sizeof(resp));
	ck_assert_int_gt(n, 0);
	ck_assert_int_lt(n, (int)sizeof(resp));
	ck_assert_int_eq(vp_beacon_response(VP_BEACON_REQ_COMPLETE, "vm", &a, small, sizeof(small)),
	                 -ENOSPC);
}
END_TEST

static const struct explain_row {
	enum vp_beacon_match match;
	const char *cidr;
	const char *detail;
	const char *hint_has;
} explain_rows[] = {
	{ VP_BEACON_INSIDE, "198.18.5.0/28", "connection from 198.18.5.10:40000 arrived at "
	  "198.18.5.1:18080, inside expect_from (198.18.5.0/28)", "bind address" },
	{ VP_BEACON_OUTSIDE, "", "connection from 198.18.5.10:40000 arrived at 198.18.5.1:18080, "
	  "outside expect_from (198.18.5.0/28, fd00:198:18::/48)", "egress" },
	{ VP_BEACON_UNCHECKED, "", "connection from 198.18.5.10:40000 arrived at 198.18.5.1:18080",
	  "expect_from" },
};

START_TEST(test_explain_row)
{
	const struct explain_row *r = &explain_rows[_i];
	struct vp_beacon_arrival a;
	char detail[VP_DETAIL_MAX], hint[VP_HINT_MAX];

	arrival_of("198.18.5.10", 40000, &a);
	a.match = r->match;
	snprintf(a.cidr, sizeof(a.cidr), "%s", r->cidr);
	vp_beacon_explain(&a, "198.18.5.1:18080", "198.18.5.0/28, fd00:198:18::/48", detail,
	                  sizeof(detail), hint, sizeof(hint));
	ck_assert_str_eq(detail, r->detail);
	ck_assert_ptr_nonnull(strstr(hint, r->hint_has));
}
END_TEST

/* ---- the listener on loopback ---------------------------------------------- */

struct live {
	uv_loop_t loop;
	uv_timer_t guard;         /* fails the test instead of hanging it */
	struct vp_beacon_server *b;
	int arrivals;
	bool closed;
};

static void on_live_arrival(struct vp_beacon_server *b, const struct vp_beacon_arrival *a, void *arg)
{
	struct live *l = arg;

	(void)b;
	ck_assert_str_eq(a->source, "127.0.0.1");
	ck_assert_int_eq(a->match, VP_BEACON_INSIDE);
	ck_assert_str_eq(a->cidr, "127.0.0.0/8");
	l->arrivals++;
}

static void on_guard(uv_timer_t *t)
{
	(void)t;
	ck_abort_msg("the loop did not get there within the guard's bound");
}

static void on_live_closed(void *arg)
{
	((struct live *)arg)->closed = true;
}

/* A free loopback port: bound, then closed. */
static uint16_t free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static void live_start(struct live *l, uint16_t port, uint32_t max_conns, uint32_t timeout_ms)
{
	struct vp_cidr lo;
	char addr[32], err[VP_ERR_MAX];
	struct vp_beacon_opts o = {
		.listen = addr, .expect_from = &lo, .n_expect_from = 1, .agent = "test-vm",
		.max_conns = max_conns, .timeout_ms = timeout_ms, .on_arrival = on_live_arrival, .arg = l,
	};

	memset(l, 0, sizeof(*l));
	ck_assert_int_eq(vp_cidr_parse("127.0.0.0/8", &lo, err, sizeof(err)), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)port);
	ck_assert_int_eq(uv_loop_init(&l->loop), 0);
	ck_assert_int_eq(uv_timer_init(&l->loop, &l->guard), 0);
	ck_assert_int_eq(uv_timer_start(&l->guard, on_guard, 30000, 0), 0);
	uv_unref((uv_handle_t *)&l->guard);
	ck_assert_msg(vp_beacon_server_start(&l->loop, &o, &l->b, err, sizeof(err)) == 0, "%s", err);
}

static void live_done(struct live *l)
{
	vp_beacon_server_close(l->b, on_live_closed, l);
	uv_close((uv_handle_t *)&l->guard, NULL);
	ck_assert_int_eq(uv_run(&l->loop, UV_RUN_DEFAULT), 0);
	ck_assert(l->closed);
	ck_assert_int_eq(uv_loop_close(&l->loop), 0);
}

static int client(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
	                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

/* Runs the loop until 'cond' holds of the beacon's counters, st_. */
#define RUN_UNTIL(l, cond)                                                     \
	do {                                                                       \
		struct vp_beacon_stats st_;                                            \
		for (;;) {                                                             \
			vp_beacon_server_stats((l)->b, &st_);                              \
			if (cond)                                                          \
				break;                                                         \
			uv_run(&(l)->loop, UV_RUN_ONCE);                                   \
		}                                                                      \
	} while (0)

/* Everything the peer sends until it closes. */
static size_t read_all(int fd, char *buf, size_t len)
{
	size_t o = 0;
	ssize_t n;

	while (o + 1 < len && (n = read(fd, buf + o, len - o - 1)) > 0)
		o += (size_t)n;
	buf[o] = '\0';
	return o;
}

START_TEST(test_live_answer)
{
	static const char req[] = "GET /ECHOME HTTP/1.1\r\nHost: x\r\n\r\n";
	struct live l;
	char resp[1024];
	uint16_t port = free_port();
	int fd;

	live_start(&l, port, 0, 0);
	fd = client(port);
	ck_assert_int_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
	RUN_UNTIL(&l, st_.answered >= 1);
	RUN_UNTIL(&l, st_.active == 0);   /* the beacon closed it: answer and FIN */
	read_all(fd, resp, sizeof(resp));
	ck_assert_ptr_nonnull(strstr(resp, "HTTP/1.1 200 OK\r\n"));
	ck_assert_ptr_nonnull(strstr(resp, "vpcprobe beacon on test-vm: your connection from 127.0.0.1:"));
	ck_assert_ptr_null(strstr(resp, "ECHOME"));
	close(fd);
	ck_assert_int_eq(l.arrivals, 1);
	ck_assert_uint_eq(vp_beacon_server_arrival_count(l.b), 1);
	ck_assert_uint_eq(vp_beacon_server_arrival(l.b, 0)->seq, 1);
	ck_assert_ptr_null(vp_beacon_server_arrival(l.b, 1));
	live_done(&l);
}
END_TEST

/* Over the cap: accepted, recorded, closed at once. Then the half-open
 * ones reach their deadline, and the beacon answers again. */
START_TEST(test_live_cap_and_deadline)
{
	static const char req[] = "GET / HTTP/1.0\n\n";
	struct vp_beacon_stats st;
	struct live l;
	char resp[1024];
	uint16_t port = free_port();
	int fd[4];

	live_start(&l, port, 2, 100);
	for (int i = 0; i < 3; i++)
		fd[i] = client(port);
	RUN_UNTIL(&l, st_.arrivals >= 3);
	vp_beacon_server_stats(l.b, &st);
	ck_assert_uint_eq(st.over_cap, 1);
	ck_assert_uint_eq(st.active_max, 2);
	ck_assert(vp_beacon_server_arrival(l.b, 2)->over_cap);
	ck_assert_uint_eq(read_all(fd[2], resp, sizeof(resp)), 0);   /* closed without a word */
	RUN_UNTIL(&l, st_.timed_out >= 2 && st_.active == 0);   /* their memory is back too */
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(read_all(fd[i], resp, sizeof(resp)), 0);
	fd[3] = client(port);
	ck_assert_int_eq(write(fd[3], req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
	RUN_UNTIL(&l, st_.answered >= 1);
	RUN_UNTIL(&l, st_.arrivals >= 4);
	read_all(fd[3], resp, sizeof(resp));
	ck_assert_ptr_nonnull(strstr(resp, "HTTP/1.1 200 OK\r\n"));
	for (int i = 0; i < 4; i++)
		close(fd[i]);
	vp_beacon_server_stats(l.b, &st);
	ck_assert_uint_eq(st.arrivals, 4);
	ck_assert_uint_eq(st.inside, 4);
	ck_assert_uint_eq(st.accept_errors, 0);
	live_done(&l);
}
END_TEST

/* NULs and more than the cap: 400 and 431, and the beacon stops reading. */
START_TEST(test_live_garbage)
{
	struct live l;
	char resp[1024], big[CAP + 512];
	uint16_t port = free_port();
	int fd[2];

	live_start(&l, port, 0, 0);
	fd[0] = client(port);
	ck_assert_int_eq(write(fd[0], "\0\0\0\0", 4), 4);
	memcpy(big, RQ, strlen(RQ));
	memset(big + strlen(RQ), 'a', sizeof(big) - strlen(RQ));
	fd[1] = client(port);
	ck_assert_int_eq(write(fd[1], big, sizeof(big)), (ssize_t)sizeof(big));
	RUN_UNTIL(&l, st_.bad_requests >= 2);
	read_all(fd[0], resp, sizeof(resp));
	ck_assert_ptr_nonnull(strstr(resp, "HTTP/1.1 400 Bad Request\r\n"));
	/* fd[1] may see a reset instead: its unread bytes stay in the beacon's
	 * socket. The beacon is what is under test here. */
	for (int i = 0; i < 2; i++)
		close(fd[i]);
	live_done(&l);
}
END_TEST

START_TEST(test_bind_error)
{
	struct vp_beacon_opts o = { .listen = "127.0.0.1", .agent = "vm" };
	struct vp_beacon_server *b = NULL;
	char err[VP_ERR_MAX];
	uv_loop_t loop;
	int fd;
	uint16_t port = free_port();
	char addr[32];
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
	                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(vp_beacon_server_start(&loop, &o, &b, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "no port"));
	/* The port is taken: the message names the address and the call. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)port);
	o.listen = addr;
	ck_assert_int_eq(vp_beacon_server_start(&loop, &o, &b, err, sizeof(err)), -EADDRINUSE);
	ck_assert_ptr_nonnull(strstr(err, "bind"));
	ck_assert_ptr_nonnull(strstr(err, addr));
	ck_assert_ptr_null(b);
	close(fd);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* ---- records for the collector (kind beacon and listener) ---- */

struct record_row {
	enum vp_beacon_match match;
	const char *cidr;
	const char *reason;
	int expected;                 /* -1: null */
};

static const struct record_row record_rows[] = {
	{ VP_BEACON_INSIDE, "198.18.5.0/28", "inside_expect_from", 1 },
	{ VP_BEACON_OUTSIDE, "", "outside_expect_from", 0 },
	{ VP_BEACON_UNCHECKED, "", "arrived", -1 },
};

START_TEST(test_arrival_record)
{
	const struct record_row *row = &record_rows[_i];
	struct vp_beacon_arrival a = { .seq = 7, .family = AF_INET, .source_port = 40000,
	                               .match = row->match };
	json_t *rec, *exp;

	a.wall.tv_sec = 1795000000;
	snprintf(a.source, sizeof(a.source), "198.18.5.10");
	snprintf(a.cidr, sizeof(a.cidr), "%s", row->cidr);
	rec = vp_beacon_arrival_record("vm \"1\"", "0.0.0.0:18080", "198.18.5.0/28", &a);
	ck_assert_ptr_nonnull(rec);
	ck_assert_str_eq(json_string_value(json_object_get(rec, "kind")), "beacon");
	ck_assert_str_eq(json_string_value(json_object_get(rec, "target")), "beacon:0.0.0.0:18080");
	ck_assert_str_eq(json_string_value(json_object_get(rec, "agent")), "vm \"1\"");
	ck_assert_str_eq(json_string_value(json_object_get(rec, "time")), "2026-11-18T11:06:40.000Z");
	ck_assert_str_eq(json_string_value(json_object_get(rec, "listen")), "0.0.0.0:18080");
	ck_assert_str_eq(json_string_value(json_object_get(rec, "source")), "198.18.5.10");
	ck_assert_int_eq(json_integer_value(json_object_get(rec, "source_port")), 40000);
	ck_assert_int_eq(json_integer_value(json_object_get(rec, "seq")), 7);
	ck_assert_str_eq(json_string_value(json_object_get(rec, "verdict")), "ok");
	ck_assert_str_eq(json_string_value(json_object_get(rec, "reason")), row->reason);
	exp = json_object_get(rec, "expected");
	if (row->expected < 0)
		ck_assert(json_is_null(exp));
	else
		ck_assert(json_is_boolean(exp) && json_boolean_value(exp) == row->expected);
	if (row->cidr[0])
		ck_assert_str_eq(json_string_value(json_object_get(rec, "expect_from")), row->cidr);
	else
		ck_assert(json_is_null(json_object_get(rec, "expect_from")));
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(rec, "detail")),
	                             "198.18.5.10:40000"));
	json_decref(rec);
}
END_TEST

START_TEST(test_listener_record)
{
	struct vp_listen_result r;
	json_t *rec;

	memset(&r, 0, sizeof(r));
	r.port = 8080;
	ck_assert_ptr_null(vp_listen_result_record("vm", &r));   /* not read yet: no record */
	r.runs = 3;
	r.scope = VP_SCOPE_LOOPBACK_ONLY;
	r.verdict = VP_VERDICT_LOCALHOST_ONLY;
	r.reason = "loopback_bind";
	snprintf(r.addresses, sizeof(r.addresses), "127.0.0.1, ::1");
	r.pid = 4242;
	snprintf(r.process, sizeof(r.process), "python3");
	r.queue_max = 128;
	r.queue_max_known = true;
	r.source = "netlink";
	snprintf(r.detail, sizeof(r.detail), "port 8080 listens on 127.0.0.1, ::1 only");
	r.wall.tv_sec = 1795000000;
	rec = vp_listen_result_record("vm", &r);
	ck_assert_ptr_nonnull(rec);
	ck_assert_str_eq(json_string_value(json_object_get(rec, "kind")), "listener");
	ck_assert_str_eq(json_string_value(json_object_get(rec, "target")), "listener:8080");
	ck_assert_int_eq(json_integer_value(json_object_get(rec, "port")), 8080);
	ck_assert_str_eq(json_string_value(json_object_get(rec, "verdict")), "localhost_only");
	ck_assert_str_eq(json_string_value(json_object_get(rec, "reason")), "loopback_bind");
	ck_assert_str_eq(json_string_value(json_object_get(rec, "scope")), "loopback_only");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(rec, "addresses"), 1)), "::1");
	ck_assert_int_eq(json_integer_value(json_object_get(rec, "pid")), 4242);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(rec, "queue"), "max")), 128);
	ck_assert(json_is_null(json_object_get(rec, "finding")));
	ck_assert_str_eq(json_string_value(json_object_get(rec, "time")), "2026-11-18T11:06:40.000Z");
	json_decref(rec);
	/* Nothing listens: no owner, no queue. */
	memset(r.addresses, 0, sizeof(r.addresses));
	r.pid = 0;
	r.scope = VP_SCOPE_NOT_LISTENING;
	r.verdict = VP_VERDICT_REFUSED;
	r.reason = "not_listening";
	rec = vp_listen_result_record("vm", &r);
	ck_assert_uint_eq(json_array_size(json_object_get(rec, "addresses")), 0);
	ck_assert(json_is_null(json_object_get(rec, "pid")));
	ck_assert(json_is_null(json_object_get(json_object_get(rec, "queue"), "current")));
	ck_assert(json_is_null(json_object_get(json_object_get(rec, "queue"), "max")));
	json_decref(rec);
}
END_TEST

static Suite *beacon_suite(void)
{
	Suite *s = suite_create("beacon");
	TCase *tm = tcase_create("match");
	TCase *tr = tcase_create("request");
	TCase *tl = tcase_create("live");
	TCase *tc = tcase_create("records");

	tcase_add_loop_test(tm, test_cidr_row, 0, N(cidr_rows));
	tcase_add_loop_test(tm, test_match_row, 0, N(match_rows));
	suite_add_tcase(s, tm);
	tcase_add_loop_test(tr, test_scan_row, 0, N(scan_rows));
	tcase_add_loop_test(tr, test_answer_row, 0, N(answer_rows));
	tcase_add_loop_test(tr, test_no_echo, 0, N(hostile));
	tcase_add_test(tr, test_answer_bounds);
	tcase_add_loop_test(tr, test_explain_row, 0, N(explain_rows));
	suite_add_tcase(s, tr);
	tcase_add_test(tl, test_live_answer);
	tcase_add_test(tl, test_live_cap_and_deadline);
	tcase_add_test(tl, test_live_garbage);
	tcase_add_test(tl, test_bind_error);
	suite_add_tcase(s, tl);
	tcase_add_loop_test(tc, test_arrival_record, 0, N(record_rows));
	tcase_add_test(tc, test_listener_record);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(beacon_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Unit tests for probes/resp.c (pure: bytes in, reply out) and for
 * probes/redis.c against a scripted Redis on loopback, on the probe's own
 * loop. Hostile input throughout: absurd lengths, bare CR or LF, embedded
 * NULs, invalid UTF-8. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/engine.h"
#include "config/config.h"
#include "probes/resp.h"
#include "scripted.h"

#define N_ELEMS(a) (int)(sizeof(a) / sizeof((a)[0]))
#define B(s) (const uint8_t *)(s), sizeof(s) - 1

static void assert_printable(const char *s, int row)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		ck_assert_msg(*p >= 0x20 && *p < 0x7f, "row %d: byte 0x%02x in '%s'", row, *p, s);
}

/* ---- resp.c ---- */

START_TEST(test_command)
{
	const char *argv[] = { "AUTH", "probe", "pa\r\nss\0" };
	const size_t lens[] = { 4, 5, 7 };
	static const char expect[] = "*3\r\n$4\r\nAUTH\r\n$5\r\nprobe\r\n$7\r\npa\r\nss\0\r\n";
	uint8_t buf[128];

	ck_assert_int_eq(vp_resp_command(buf, sizeof(buf), 3, argv, lens), (int)sizeof(expect) - 1);
	ck_assert_mem_eq(buf, expect, sizeof(expect) - 1);
	ck_assert_int_eq(vp_resp_command(buf, sizeof(expect) - 2, 3, argv, lens), -ENOSPC);
	ck_assert_int_eq(vp_resp_command(buf, 3, 3, argv, lens), -ENOSPC);
	ck_assert_int_eq(vp_resp_command(buf, sizeof(buf), 1, argv + 0, lens + 0), 14);
}
END_TEST

struct parse_case {
	const uint8_t *in;
	size_t len;
	int r;
	char type;
	const char *text;        /* NULL: not checked */
	size_t text_len;
	long long count;
};

static const struct parse_case parse_cases[] = {
	{ B("+PONG\r\n"), 7, '+', "PONG", 4, 0 },
	{ B("+PONG\r\n+OK\r\n"), 7, '+', "PONG", 4, 0 },
	{ B("+PONG\r"), 0, 0, NULL, 0, 0 },
	{ B("+PONG"), 0, 0, NULL, 0, 0 },
	{ B(""), 0, 0, NULL, 0, 0 },
	{ B("+"), 0, 0, NULL, 0, 0 },
	{ B("+\r\n"), 3, '+', "", 0, 0 },
	{ B("-ERR x\r\n"), 8, '-', "ERR x", 5, 0 },
	{ B(":1000\r\n"), 7, ':', "1000", 4, 0 },
	{ B("+\0\xff\xfe\r\n"), 6, '+', "\0\xff\xfe", 3, 0 },     /* NUL, invalid UTF-8 */
	{ B("$4\r\nPONG\r\n"), 10, '$', "PONG", 4, 4 },
	{ B("$4\r\nPO\r\n\r\n"), 10, '$', "PO\r\n", 4, 4 },       /* bulk is binary */
	{ B("$0\r\n\r\n"), 6, '$', "", 0, 0 },
	{ B("$4\r\nPON"), 0, 0, NULL, 0, 0 },
	{ B("$4\r\nPONG\r"), 0, 0, NULL, 0, 0 },
	{ B("$4\r\nPONGxx"), -EBADMSG, 0, NULL, 0, 0 },
	{ B("$-1\r\n"), 5, '$', NULL, 0, -1 },
	{ B("$-2\r\n"), -EBADMSG, 0, NULL, 0, 0 },
	{ B("$-0\r\n"), -EBADMSG, 0, NULL, 0, 0 },
	{ B("$01\r\nx\r\n"), -EBADMSG, 0, NULL, 0, 0 },
	{ B("$\r\n"), -EBADMSG, 0, NULL, 0, 0 },
	{ B("$ 4\r\n"), -EBADMSG, 0, NULL, 0, 0 },
	{ B("$+4\r\n"), -EBADMSG, 0, NULL, 0, 0 },
	{ B("$99999999999\r\n"), -EBADMSG, 0, NULL, 0, 0 },
	{ B("$18446744073709551617\r\n"), -EBADMSG, 0, NULL, 0, 0 },
	{ B("$65536\r\n"), -EBADMSG, 0, NULL, 0, 0 },       /* larger than the read buffer */
	{ B("$65472\r\n"), 0, 0, NULL, 0, 0 },              /* VP_RESP_BULK_MAX: waits */
	{ B("*2\r\n$1\r\na\r\n"), 4, '*', NULL, 0, 2 },
	{ B("*-1\r\n"), 5, '*', NULL, 0, -1 },
	{ B("*9999999\r\n"), -EBADMSG, 0, NULL, 0, 0 },
	{ B("%1\r\n"), -EBADMSG, 0, NULL, 0, 0 },            /* RESP3: never asked for */
	{ B("_\r\n"), -EBADMSG, 0, NULL, 0, 0 },
	{ B("HTTP/1.1 400 Bad Request\r\n"), -EBADMSG, 0, NULL, 0, 0 },
	{ B("\0\0\0\x08"), -EBADMSG, 0, NULL, 0, 0 },
	{ B("+PONG\n"), -EBADMSG, 0, NULL, 0, 0 },            /* bare LF */
	{ B("+PO\rNG\r\n"), -EBADMSG, 0, NULL, 0, 0 },        /* bare CR */
	{ B("-ERR\nx\r\n"), -EBADMSG, 0, NULL, 0, 0 },
};

START_TEST(test_parse)
{
	const struct parse_case *c = &parse_cases[_i];
	struct vp_resp_reply r = { 0 };

	ck_assert_msg(vp_resp_parse(c->in, c->len, &r) == c->r, "row %d: got %d", _i,
	              vp_resp_parse(c->in, c->len, &r));
	if (c->r <= 0)
		return;
	ck_assert_int_eq(r.type, c->type);
	ck_assert_int_eq(r.count, c->count);
	ck_assert_uint_eq(r.len, c->text_len);
	if (c->text != NULL)
		ck_assert_mem_eq(r.text, c->text, c->text_len);
}
END_TEST

/* Lines at and past VP_RESP_LINE_MAX, with and without their CRLF. */
START_TEST(test_parse_long_line)
{
	static uint8_t buf[VP_RESP_LINE_MAX + 16];
	struct vp_resp_reply r;

	memset(buf, 'a', sizeof(buf));
	buf[0] = '-';
	memcpy(buf + 1 + VP_RESP_LINE_MAX, "\r\n", 2);
	ck_assert_int_eq(vp_resp_parse(buf, VP_RESP_LINE_MAX + 3, &r), VP_RESP_LINE_MAX + 3);
	ck_assert_uint_eq(r.len, VP_RESP_LINE_MAX);
	memset(buf, 'a', sizeof(buf));
	buf[0] = '-';
	memcpy(buf + 2 + VP_RESP_LINE_MAX, "\r\n", 2);
	ck_assert_int_eq(vp_resp_parse(buf, VP_RESP_LINE_MAX + 4, &r), -EBADMSG);
	ck_assert_int_eq(vp_resp_parse(buf, VP_RESP_LINE_MAX + 1, &r), 0);
	ck_assert_int_eq(vp_resp_parse(buf, VP_RESP_LINE_MAX + 2, &r), -EBADMSG);
}
END_TEST

struct reason_case {
	const uint8_t *line;
	size_t len;
	const char *reason;
	const char *hint;        /* a substring */
};

static const struct reason_case reason_cases[] = {
	{ B("NOAUTH Authentication required."), "auth_required",
	  "gcloud redis instances get-auth-string" },
	{ B("WRONGPASS invalid username-password pair or user is disabled."), "auth_failed",
	  "rotated" },
	{ B("ERR invalid password"), "auth_failed", "requirepass" },
	{ B("DENIED Redis is running in protected mode because protected mode is enabled"),
	  "protected_mode", "protected mode" },
	{ B("LOADING Redis is loading the dataset in memory"), "loading", "loading" },
	{ B("LOADING"), "loading", "loading" },
	{ B("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
	  "masterdown", "primary" },
	{ B("ERR max number of clients reached"), "max_clients", "maxclients" },
	{ B("BUSY Redis is busy running a script."), "busy", "Redis answered with an error" },
	{ B("MISCONF Redis is configured to save RDB snapshots"), "misconf", "error" },
	{ B("ERR unknown command 'PING'"), "err", "error" },
	{ B("NOAUTHX something"), "noauthx", "error" },          /* a word, not a prefix */
	{ B("WRONGTYPE Operation"), "wrongtype", "error" },
	{ B(""), "redis_error", "error" },
	{ B(" leading space"), "redis_error", "error" },
	{ B("\xc3\x9cnicode\xff x"), "__nicode_", "error" },
	{ B("ERR-1\x1b[2J"), "err_____j", "error" },
	{ B("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	  "error" },  /* cut to VP_PROTO_REASON_MAX */
};

START_TEST(test_error_reason)
{
	const struct reason_case *c = &reason_cases[_i];
	struct vp_verdict_out v = { 0 };

	vp_resp_error_reason(c->line, c->len, &v);
	ck_assert_int_eq(v.reason, VP_REASON_PROTOCOL);
	ck_assert_str_eq(v.reason_text, c->reason);
	ck_assert_msg(strstr(v.hint, c->hint) != NULL, "row %d: hint '%s'", _i, v.hint);
	ck_assert_uint_lt(strlen(v.hint), sizeof(v.hint) - 1);
	ck_assert(v.hint[strlen(v.hint) - 1] == '.');
}
END_TEST

/* ---- redis.c: the probe against a scripted server on loopback ---- */

#define CLOSE "\x01"         /* a reply that closes the connection instead */

struct probe_row {
	enum vp_kind kind;
	const char *username;
	const char *password;
	const char *on_connect;    /* sent at accept, before any command */
	const char *replies[2];    /* to the first and second command; NULL: silence */
	uint32_t timeout_ms;
	enum vp_verdict verdict;
	const char *reason;
	const char *detail;
	const char *commands;      /* what the server must have seen, "|"-joined */
};

static const struct probe_row probe_rows[] = {
	/* 0 */
	{ VP_KIND_REDIS, NULL, NULL, NULL, { "+PONG\r\n" }, 2000, VP_VERDICT_OK, "pong",
	  "Redis answered PING with +PONG without AUTH", "PING" },
	{ VP_KIND_REDIS, NULL, "s3cret", NULL, { "+OK\r\n", "+PONG\r\n" }, 2000, VP_VERDICT_OK,
	  "pong", "+PONG after AUTH +OK", "AUTH s3cret|PING" },
	{ VP_KIND_REDIS, "probe", "s3cret", NULL, { "+OK\r\n", "+PONG\r\n" }, 2000, VP_VERDICT_OK,
	  "pong", "after AUTH", "AUTH probe s3cret|PING" },
	{ VP_KIND_REDIS, NULL, "s3cret", NULL, { "-ERR AUTH <password> called without any "
	  "password configured for the default user. Are you sure your configuration is "
	  "correct?\r\n", "+PONG\r\n" }, 2000, VP_VERDICT_OK, "pong",
	  "AUTH is not enabled on this server", "AUTH s3cret|PING" },
	{ VP_KIND_REDIS, NULL, "s3cret", NULL, { "-ERR Client sent AUTH, but no password is "
	  "set\r\n", "+PONG\r\n" }, 2000, VP_VERDICT_OK, "pong", "AUTH is not enabled", NULL },
	/* 5: the server says no */
	{ VP_KIND_REDIS, NULL, NULL, NULL, { "-NOAUTH Authentication required.\r\n" }, 2000,
	  VP_VERDICT_PROTOCOL_ERROR, "auth_required",
	  "Redis answered PING with -NOAUTH Authentication required.", "PING" },
	{ VP_KIND_REDIS, NULL, "wrong", NULL, { "-WRONGPASS invalid username-password pair or "
	  "user is disabled.\r\n", "-NOAUTH Authentication required.\r\n" }, 2000,
	  VP_VERDICT_PROTOCOL_ERROR, "auth_failed", "Redis answered AUTH with -WRONGPASS", NULL },
	{ VP_KIND_REDIS, NULL, "wrong", NULL, { "-ERR invalid password\r\n" }, 2000,
	  VP_VERDICT_PROTOCOL_ERROR, "auth_failed", "-ERR invalid password", NULL },
	{ VP_KIND_REDIS, NULL, NULL, "-DENIED Redis is running in protected mode because "
	  "protected mode is enabled and no password is set for the default user.\r\n", { CLOSE },
	  2000, VP_VERDICT_PROTOCOL_ERROR, "protected_mode", "-DENIED Redis is running", NULL },
	{ VP_KIND_REDIS, NULL, "pw", "-DENIED Redis is running in protected mode\r\n", { CLOSE },
	  2000, VP_VERDICT_PROTOCOL_ERROR, "protected_mode", "-DENIED", NULL },
	/* 10 */
	{ VP_KIND_REDIS, NULL, NULL, NULL, { "-LOADING Redis is loading the dataset in "
	  "memory\r\n" }, 2000, VP_VERDICT_PROTOCOL_ERROR, "loading", "-LOADING", NULL },
	{ VP_KIND_REDIS, NULL, NULL, NULL, { "-MASTERDOWN Link with MASTER is down\r\n" }, 2000,
	  VP_VERDICT_PROTOCOL_ERROR, "masterdown", "-MASTERDOWN", NULL },
	{ VP_KIND_REDIS, NULL, NULL, "-ERR max number of clients reached\r\n", { CLOSE }, 2000,
	  VP_VERDICT_PROTOCOL_ERROR, "max_clients", "max number of clients", NULL },
	{ VP_KIND_REDIS, NULL, NULL, NULL, { "-BUSY Redis is busy\r\n" }, 2000,
	  VP_VERDICT_PROTOCOL_ERROR, "busy", "-BUSY", NULL },
	{ VP_KIND_REDIS, NULL, NULL, NULL, { "-\x1b]0;owned\x07\xff\r\n" }, 2000,
	  VP_VERDICT_PROTOCOL_ERROR, "____owned__", "with -\\x1b]0;owned\\x07\\xff", NULL },
	/* 15: not Redis, or not playing by its rules */
	{ VP_KIND_REDIS, NULL, NULL, NULL, { "HTTP/1.1 400 Bad Request\r\n" }, 2000,
	  VP_VERDICT_PROTOCOL_ERROR, "unexpected_reply",
	  "not RESP; it begins \"HTTP/1.1 400 Bad Request\\r\\n\"", NULL },
	{ VP_KIND_REDIS, NULL, NULL, NULL, { "+OK\r\n" }, 2000, VP_VERDICT_PROTOCOL_ERROR,
	  "unexpected_reply", "PING answered with something else than +PONG", NULL },
	{ VP_KIND_REDIS, NULL, NULL, NULL, { "$4\r\nPONG\r\n" }, 2000, VP_VERDICT_PROTOCOL_ERROR,
	  "unexpected_reply", "something else than +PONG", NULL },
	{ VP_KIND_REDIS, NULL, NULL, NULL, { "+PONG\n" }, 2000, VP_VERDICT_PROTOCOL_ERROR,
	  "unexpected_reply", "not RESP", NULL },
	{ VP_KIND_REDIS, NULL, NULL, NULL, { "$999999999\r\n" }, 2000, VP_VERDICT_PROTOCOL_ERROR,
	  "unexpected_reply", "not RESP", NULL },
	/* 20 */
	{ VP_KIND_REDIS, NULL, "pw", NULL, { "+PONG\r\n" }, 2000, VP_VERDICT_PROTOCOL_ERROR,
	  "unexpected_reply", "AUTH answered with neither +OK nor an error", NULL },
	{ VP_KIND_REDIS, NULL, NULL, NULL, { CLOSE }, 2000, VP_VERDICT_RESET, "closed_before_reply",
	  "closed", NULL },
	{ VP_KIND_REDIS, NULL, NULL, NULL, { NULL }, 300, VP_VERDICT_TIMEOUT, "reply_timeout", "",
	  NULL },
	{ VP_KIND_REDIS, NULL, NULL, NULL, { "+PONG" }, 300, VP_VERDICT_TIMEOUT, "reply_timeout",
	  "", NULL },  /* never finished */
	/* 25: rediss:// against a plaintext Redis (tests/test_tls.c has the rest) */
	{ VP_KIND_REDISS, NULL, "pw", "-ERR Protocol error\r\n", { NULL }, 2000,
	  VP_VERDICT_TLS_ERROR, "handshake_failure",
	  "not TLS; they begin \"-ERR Protocol error\\r\\n\"", "" },
	{ VP_KIND_REDISS, NULL, NULL, NULL, { NULL }, 300, VP_VERDICT_TIMEOUT, "tls_timeout",
	  "no complete TLS handshake within 300 ms", "" },
};

/* The fake server's state: what the probe sent, and the row's script. */
struct fake {
	const struct probe_row *row;
	int seen;
	char commands[256];       /* "AUTH pw|PING" */
};

/* One command as an array of bulk strings; returns its size, 0 when
 * incomplete. Written for what the probe sends, not for any client. */
static size_t command(const struct scripted *sc, char *out, size_t outlen)
{
	const char *s = (const char *)sc->in;
	const char *end = s + sc->inlen;
	char *stop;
	long argc;
	size_t used = 0;

	if (sc->inlen < 4 || memchr(s, '\n', sc->inlen) == NULL)
		return 0;
	if (s[0] != '*')
		return 0;   /* a TLS ClientHello (rediss://): not a command */
	argc = strtol(s + 1, &stop, 10);
	s = stop + 2;
	for (long i = 0; i < argc; i++) {
		long len;

		if (s >= end || memchr(s, '\n', (size_t)(end - s)) == NULL)
			return 0;
		ck_assert_int_eq(s[0], '$');
		len = strtol(s + 1, &stop, 10);
		s = stop + 2;
		if (end - s < len + 2)
			return 0;
		used += (size_t)snprintf(out + used, outlen - used, "%s%.*s", i ? " " : "", (int)len, s);
		s += len + 2;
	}
	return (size_t)(s - (const char *)sc->in);
}

static void fake_read(struct scripted *sc)
{
	struct fake *f = sc->data;
	char cmd[128];
	size_t n;

	while (sc->has_client && (n = command(sc, cmd, sizeof(cmd))) > 0) {
		const char *reply = f->seen < 2 ? f->row->replies[f->seen] : NULL;
		size_t used = strlen(f->commands);

		snprintf(f->commands + used, sizeof(f->commands) - used, "%s%s", used ? "|" : "", cmd);
		f->seen++;
		scripted_consume(sc, n);
		if (reply != NULL && strcmp(reply, CLOSE) == 0)
			scripted_close_client(sc);
		else if (reply != NULL)
			scripted_send_str(sc, reply);
	}
}

static void fake_connect(struct scripted *sc)
{
	struct fake *f = sc->data;

	if (f->row->on_connect != NULL)
		scripted_send_str(sc, f->row->on_connect);
}

START_TEST(test_probe)
{
	const struct probe_row *row = &probe_rows[_i];
	struct vp_target target = { .username = (char *)row->username,
	                            .password = (char *)row->password };
	struct fake f = { .row = row };
	struct scripted s = { .on_connect = fake_connect, .on_read = fake_read, .data = &f };
	struct vp_probe_req req = { .kind = row->kind, .target = &target,
	                            .timeout_ms = row->timeout_ms };
	struct scripted_run r;
	const struct vp_verdict_out *v = &r.res.v;

	target.password_len = row->password ? strlen(row->password) : 0;
	scripted_run_init(&r);
	scripted_run_probe(&r, &req, scripted_listen(&r.loop, &s));

	ck_assert_msg(v->verdict == row->verdict, "row %d: %s %s, expected %s: %s", _i,
	              vp_verdict_name(v->verdict), vp_verdict_reason(v),
	              vp_verdict_name(row->verdict), v->detail);
	ck_assert_msg(strcmp(vp_verdict_reason(v), row->reason) == 0, "row %d: reason %s: %s", _i,
	              vp_verdict_reason(v), v->detail);
	ck_assert_msg(strstr(v->detail, row->detail) != NULL, "row %d: detail '%s' lacks '%s'",
	              _i, v->detail, row->detail);
	assert_printable(v->detail, _i);
	assert_printable(v->hint, _i);
	if (row->verdict != VP_VERDICT_OK)
		ck_assert_msg(v->hint[0] != '\0', "row %d: no hint", _i);
	if (row->commands != NULL)
		ck_assert_str_eq(f.commands, row->commands);
	scripted_run_end(&r, &s);
}
END_TEST

static Suite *redis_suite(void)
{
	Suite *s = suite_create("redis");
	TCase *pure = tcase_create("resp");
	TCase *probe = tcase_create("probe");

	tcase_add_test(pure, test_command);
	tcase_add_loop_test(pure, test_parse, 0, N_ELEMS(parse_cases));
	tcase_add_test(pure, test_parse_long_line);
	tcase_add_loop_test(pure, test_error_reason, 0, N_ELEMS(reason_cases));
	tcase_set_timeout(probe, 30);
	tcase_add_loop_test(probe, test_probe, 0, N_ELEMS(probe_rows));
	suite_add_tcase(s, pure);
	suite_add_tcase(s, probe);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(redis_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

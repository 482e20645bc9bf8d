/* Unit tests for probes/pgwire.c and probes/wire.c (pure: bytes in, result
 * out), and for probes/postgres.c against a scripted PostgreSQL on
 * loopback, on the probe's own loop. Hostile input throughout: absurd
 * lengths, missing terminators, control bytes and invalid UTF-8. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/engine.h"
#include "config/config.h"
#include "probes/pgwire.h"
#include "probes/wire.h"
#include "scripted.h"

#define N_ELEMS(a) (int)(sizeof(a) / sizeof((a)[0]))
#define B(s) (const uint8_t *)(s), sizeof(s) - 1   /* a byte string and its length */

/* Every byte a detail may hold: printable ASCII, nothing a terminal acts on. */
static void assert_printable(const char *s, int row)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		ck_assert_msg(*p >= 0x20 && *p < 0x7f, "row %d: byte 0x%02x in '%s'", row, *p, s);
}

/* ---- wire.c: escaping ---- */

struct escape_case {
	const uint8_t *in;
	size_t len;
	size_t outlen;
	const char *out;
	size_t shown;
};

static const struct escape_case escape_cases[] = {
	{ B("plain text"), 64, "plain text", 10 },
	{ B("a\r\n\tb\\"), 64, "a\\r\\n\\tb\\\\", 6 },
	{ B("nul\0byte"), 64, "nul\\x00byte", 8 },
	{ B("\x1b[2J\x7f"), 64, "\\x1b[2J\\x7f", 5 },
	{ B("caf\xc3\xa9 \xff\xfe"), 64, "caf\\xc3\\xa9 \\xff\\xfe", 8 },
	{ B("abcdefghij"), 8, "abcd...", 4 },                 /* cut, with room for "..." */
	{ B("\x01\x02\x03"), 9, "\\x01...", 1 },
	{ B("abc"), 4, "abc", 3 },                            /* fits exactly */
	{ B("abcd"), 4, "...", 0 },
	{ B("abc"), 1, "", 0 },
	{ B(""), 8, "", 0 },
};

START_TEST(test_escape)
{
	const struct escape_case *c = &escape_cases[_i];
	char out[64];

	ck_assert_uint_eq(vp_escape(c->in, c->len, out, c->outlen), c->shown);
	ck_assert_str_eq(out, c->out);
	ck_assert_uint_lt(strlen(out), c->outlen);
}
END_TEST

START_TEST(test_preview)
{
	static uint8_t big[200];
	char out[VP_PREVIEW_BYTES * 4 + 8];

	vp_preview("HTTP/1.1 400 Bad Request\r\n", 26, out, sizeof(out));
	ck_assert_str_eq(out, "\"HTTP/1.1 400 Bad Request\\r\\n\"");
	memset(big, 0xff, sizeof(big));
	vp_preview(big, sizeof(big), out, sizeof(out));
	ck_assert_uint_eq(strlen(out), 2 + 4 * VP_PREVIEW_BYTES + 3);
	ck_assert_str_eq(out + strlen(out) - 4, "\"...");
	assert_printable(out, 0);
}
END_TEST

/* ---- pgwire.c: what vpcprobe sends ---- */

START_TEST(test_builders)
{
	static const uint8_t startup[] =
		"\0\0\0\x37\0\x03\0\0user\0vp\0database\0db\0application_name\0vpcprobe\0\0";
	uint8_t buf[256];
	char md5[VP_PG_MD5_LEN + 1];
	static const uint8_t salt[4] = { 1, 2, 3, 4 };

	vp_pg_ssl_request(buf);
	ck_assert_mem_eq(buf, "\0\0\0\x08\x04\xd2\x16\x2f", 8);
	vp_pg_terminate(buf);
	ck_assert_mem_eq(buf, "X\0\0\0\x04", 5);
	ck_assert_int_eq(vp_pg_startup(buf, sizeof(buf), "vp", "db", "vpcprobe"),
	                 (int)sizeof(startup) - 1);
	ck_assert_mem_eq(buf, startup, sizeof(startup) - 1);
	ck_assert_int_eq(vp_pg_startup(buf, sizeof(startup) - 2, "vp", "db", "vpcprobe"), -ENOSPC);
	ck_assert_int_eq(vp_pg_startup(buf, sizeof(buf), "", "db", NULL), -EINVAL);
	ck_assert_int_eq(vp_pg_password(buf, sizeof(buf), "secret", 6), 12);
	ck_assert_mem_eq(buf, "p\0\0\0\x0bsecret\0", 12);
	ck_assert_int_eq(vp_pg_password(buf, sizeof(buf), "sec\0ret", 7), -EINVAL);
	ck_assert_int_eq(vp_pg_password(buf, 11, "secret", 6), -ENOSPC);
	ck_assert_int_eq(vp_pg_sasl_initial(buf, sizeof(buf), "SCRAM-SHA-256", "n,,n=,r=x", 9), 32);
	ck_assert_mem_eq(buf, "p\0\0\0\x1fSCRAM-SHA-256\0\0\0\0\x09n,,n=,r=x", 32);
	ck_assert_int_eq(vp_pg_sasl_response(buf, sizeof(buf), "c=biws", 6), 11);
	ck_assert_mem_eq(buf, "p\0\0\0\x0a" "c=biws", 11);
	/* md5(md5("secret" "vp") hex + salt) hex, from Python's hashlib. */
	ck_assert_int_eq(vp_pg_md5_password("vp", "secret", 6, salt, md5), 0);
	ck_assert_str_eq(md5, "md5ebc1839eef15ef89838266a753818304");
}
END_TEST

/* ---- pgwire.c: framing ---- */

struct frame_case {
	const uint8_t *in;
	size_t len;
	int r;
	char type;
	size_t body_len;
};

static const struct frame_case frame_cases[] = {
	{ B("R\0\0\0\x08\0\0\0\0"), 9, 'R', 4 },
	{ B("R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I"), 9, 'R', 4 },  /* the first of two */
	{ B("Z\0\0\0\x04"), 5, 'Z', 0 },                     /* an empty body */
	{ B("R\0\0\0\x08\0\0\0"), 0, 0, 0 },                 /* one byte short */
	{ B("R\0\0\0"), 0, 0, 0 },
	{ B(""), 0, 0, 0 },
	{ B("R\0\0\0\x03\0"), -EBADMSG, 0, 0 },              /* below 4 */
	{ B("R\0\0\0\0"), -EBADMSG, 0, 0 },
	{ B("E\xff\xff\xff\xff"), -EBADMSG, 0, 0 },          /* 4 GiB */
	{ B("E\x80\0\0\0"), -EBADMSG, 0, 0 },                /* negative as int32 */
	{ B("E\0\x01\0\0"), -EBADMSG, 0, 0 },                /* 64 KiB: no room for the type byte */
	{ B("E\0\0\xff\xff"), 0, 0, 0 },                     /* 65535: fits, waits for the rest */
	{ B("HTTP/1.1 400"), -EBADMSG, 0, 0 },               /* 'TTP/' as a length */
};

START_TEST(test_frame)
{
	const struct frame_case *c = &frame_cases[_i];
	struct vp_pg_msg m = { 0 };

	ck_assert_int_eq(vp_pg_frame(c->in, c->len, &m), c->r);
	if (c->r > 0) {
		ck_assert_int_eq(m.type, c->type);
		ck_assert_uint_eq(m.len, c->body_len);
		ck_assert_ptr_eq(m.body, c->in + 5);
	}
}
END_TEST

/* ---- pgwire.c: Authentication messages ---- */

struct auth_case {
	char type;
	const uint8_t *body;
	size_t len;
	int r;
	uint32_t code;
	bool scram;
	const char *mechanisms;
};

static const struct auth_case auth_cases[] = {
	{ 'R', B("\0\0\0\0"), 0, VP_PG_AUTH_OK, false, "" },
	{ 'R', B("\0\0\0\x03"), 0, VP_PG_AUTH_CLEARTEXT, false, "" },
	{ 'R', B("\0\0\0\x05\x01\x02\x03\x04"), 0, VP_PG_AUTH_MD5, false, "" },
	{ 'R', B("\0\0\0\x05\x01\x02\x03"), -EBADMSG, 0, false, NULL },     /* salt cut */
	{ 'R', B("\0\0\0\x05\x01\x02\x03\x04\x05"), -EBADMSG, 0, false, NULL },
	{ 'R', B("\0\0\0\x0aSCRAM-SHA-256\0\0"), 0, VP_PG_AUTH_SASL, true, "SCRAM-SHA-256" },
	{ 'R', B("\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"), 0, VP_PG_AUTH_SASL, true,
	  "SCRAM-SHA-256-PLUS, SCRAM-SHA-256" },
	{ 'R', B("\0\0\0\x0aSCRAM-SHA-256-PLUS\0\0"), 0, VP_PG_AUTH_SASL, false,
	  "SCRAM-SHA-256-PLUS" },
	{ 'R', B("\0\0\0\x0aSCRAM-SHA-256\0"), -EBADMSG, 0, false, NULL },  /* no final "" */
	{ 'R', B("\0\0\0\x0aSCRAM-SHA-256"), -EBADMSG, 0, false, NULL },
	{ 'R', B("\0\0\0\x0a\x1b[31m\xff\0\0"), 0, VP_PG_AUTH_SASL, false, "\\x1b[31m\\xff" },
	{ 'R', B("\0\0\0\x0a\0"), 0, VP_PG_AUTH_SASL, false, "" },          /* an empty list */
	{ 'R', B("\0\0\0\x0b" "r=abc"), 0, VP_PG_AUTH_SASL_CONTINUE, false, "" },
	{ 'R', B("\0\0\0\x07"), 0, VP_PG_AUTH_GSS, false, "" },
	{ 'R', B("\xff\xff\xff\xff"), 0, 0xffffffffu, false, "" },         /* unknown: the probe decides */
	{ 'R', B("\0\0\0"), -EBADMSG, 0, false, NULL },
	{ 'R', B(""), -EBADMSG, 0, false, NULL },
	{ 'E', B("\0\0\0\0"), -EBADMSG, 0, false, NULL },
};

START_TEST(test_auth)
{
	const struct auth_case *c = &auth_cases[_i];
	struct vp_pg_msg m = { .type = (uint8_t)c->type, .body = c->body, .len = c->len };
	struct vp_pg_auth a;

	ck_assert_int_eq(vp_pg_parse_auth(&m, &a), c->r);
	if (c->r < 0)
		return;
	ck_assert_uint_eq(a.code, c->code);
	ck_assert(a.scram_sha_256 == c->scram);
	ck_assert_str_eq(a.mechanisms, c->mechanisms);
	if (c->code == VP_PG_AUTH_MD5)
		ck_assert_mem_eq(a.salt, "\x01\x02\x03\x04", 4);
	if (c->code == VP_PG_AUTH_SASL_CONTINUE)
		ck_assert_mem_eq(a.data, "r=abc", a.data_len);
}
END_TEST

/* ---- pgwire.c: ErrorResponse ---- */

struct error_case {
	const uint8_t *body;
	size_t len;
	int r;
	const char *severity;
	const char *sqlstate;
	const char *message;
	const char *reason;
};

static const struct error_case error_cases[] = {
	{ B("SFATAL\0VFATAL\0C28000\0Mpg_hba.conf rejects connection\0\0"), 0, "FATAL", "28000",
	  "pg_hba.conf rejects connection", "pg_hba_rejected" },
	{ B("SFATAL\0C28P01\0Mpassword authentication failed for user \"vp\"\0\0"), 0, "FATAL",
	  "28P01", "password authentication failed for user \"vp\"", "auth_failed" },
	{ B("SFATAL\0C57P03\0Mthe database system is starting up\0\0"), 0, "FATAL", "57P03",
	  "the database system is starting up", "starting_up" },
	{ B("SFATAL\0C53300\0Msorry, too many clients already\0\0"), 0, "FATAL", "53300",
	  "sorry, too many clients already", "too_many_connections" },
	{ B("SFATAL\0C3D000\0Mdatabase \"x\" does not exist\0\0"), 0, "FATAL", "3D000",
	  "database \"x\" does not exist", "database_missing" },
	{ B("SFATAL\0C42501\0Mpermission denied\0\0"), 0, "FATAL", "42501", "permission denied",
	  "sqlstate_42501" },
	{ B("Mno code at all\0\0"), 0, "", "", "no code at all", "sqlstate_missing" },
	{ B("C28p01\0Mlower case\0\0"), 0, "", "", "lower case", "sqlstate_missing" },
	{ B("C280000\0Msix characters\0\0"), 0, "", "", "six characters", "sqlstate_missing" },
	{ B("C28\xff" "00\0M\x1b]0;pwned\x07\xff\xfe\r\n\0\0"), 0, "", "",
	  "\\x1b]0;pwned\\x07\\xff\\xfe\\r\\n", "sqlstate_missing" },
	{ B("SFATAL\0C28000\0Mcut"), -EBADMSG, NULL, NULL, NULL, NULL },  /* field unterminated */
	{ B("SFATAL\0C28000\0"), -EBADMSG, NULL, NULL, NULL, NULL },      /* no final zero */
	{ B("S"), -EBADMSG, NULL, NULL, NULL, NULL },
	{ B(""), -EBADMSG, NULL, NULL, NULL, NULL },
	{ B("\0"), 0, "", "", "", "sqlstate_missing" },
	{ B("Xunknown field\0C28000\0\0"), 0, "", "28000", "", "pg_hba_rejected" },
	{ B("SERROR\0SFATAL\0C28000\0\0"), 0, "ERROR", "28000", "", "pg_hba_rejected" },
};

START_TEST(test_error)
{
	const struct error_case *c = &error_cases[_i];
	struct vp_pg_msg m = { .type = 'E', .body = c->body, .len = c->len };
	struct vp_verdict_out v = { 0 };
	struct vp_pg_error e;

	ck_assert_int_eq(vp_pg_parse_error(&m, &e), c->r);
	if (c->r < 0)
		return;
	ck_assert_str_eq(e.severity, c->severity);
	ck_assert_str_eq(e.sqlstate, c->sqlstate);
	ck_assert_str_eq(e.message, c->message);
	vp_pg_error_reason(&e, &v);
	ck_assert_int_eq(v.reason, VP_REASON_PROTOCOL);
	ck_assert_str_eq(v.reason_text, c->reason);
	/* Hints are whole sentences: never cut by the buffer. */
	ck_assert_uint_gt(strlen(v.hint), 40);
	ck_assert_uint_lt(strlen(v.hint), sizeof(v.hint) - 1);
	ck_assert(v.hint[strlen(v.hint) - 1] == '.');
}
END_TEST

/* A message of 10,000 bytes is cut to the field bound, escaped, marked. */
START_TEST(test_error_long)
{
	static uint8_t body[10010];
	struct vp_pg_msg m = { .type = 'E', .body = body, .len = sizeof(body) };
	struct vp_pg_error e;

	memset(body, 'A', sizeof(body));
	body[0] = 'M';
	body[sizeof(body) - 2] = '\0';
	body[sizeof(body) - 1] = '\0';
	ck_assert_int_eq(vp_pg_parse_error(&m, &e), 0);
	ck_assert_uint_eq(strlen(e.message), VP_PG_FIELD_MAX - 1);
	ck_assert_str_eq(e.message + strlen(e.message) - 3, "...");
}
END_TEST

/* ---- postgres.c: the probe against a scripted server on loopback ---- */

/* What the server does after each message from the client. */
enum act {
	A_END,          /* the script is over: nothing more is sent */
	A_S, A_N,       /* the answer to SSLRequest */
	A_N_EXTRA,      /* 'N' and, in the same write, an injected AuthenticationOk */
	A_OK_READY,     /* AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery */
	A_NOTICE_OK_READY,
	A_MD5, A_CLEAR, A_SASL, A_SASL_PLUS_ONLY, A_GSS,
	A_CHECK_MD5,    /* the 'p' must be md5 of vp/secret with salt 01020304 */
	A_CHECK_CLEAR,  /* the 'p' must be "secret" */
	A_SASL_CONTINUE,       /* a server-first that extends the client's nonce */
	A_SASL_CONTINUE_ALIEN, /* a server-first with another nonce */
	A_SASL_CONTINUE_SLOW,  /* 1,000,000 iterations */
	A_SASL_FINAL_BAD,      /* a signature of zeros */
	A_OK_ONLY,      /* AuthenticationOk, then nothing */
	A_E28000, A_E28P01, A_E57P03, A_E53300, A_E3D000, A_E42501,
	A_E_HOSTILE, A_E_CUT,
	A_HTTP, A_LEN3, A_LEN_HUGE, A_QUERY, A_CLOSE,
};

struct probe_row {
	enum vp_tls_mode tls;
	const char *password;
	enum act acts[5];
	uint32_t timeout_ms;
	enum vp_verdict verdict;
	const char *reason;
	const char *detail;      /* a substring of the detail */
};

#define PW "secret"

static const struct probe_row probe_rows[] = {
	/* 0 */ { VP_TLS_PREFER, NULL, { A_N, A_OK_READY }, 2000, VP_VERDICT_OK, "accepted",
	  "logged user \"vp\" in to database \"db\" without a password (trust); TLS not offered" },
	{ VP_TLS_DISABLE, NULL, { A_OK_READY }, 2000, VP_VERDICT_OK, "accepted", "TLS not asked" },
	/* 'S' and then silence: the handshake is TLS's (tests/test_tls.c has the rest) */
	{ VP_TLS_PREFER, NULL, { A_S }, 300, VP_VERDICT_TIMEOUT, "tls_timeout",
	  "no complete TLS handshake within 300 ms (0 bytes of it read)" },
	{ VP_TLS_REQUIRE, NULL, { A_N }, 2000, VP_VERDICT_TLS_ERROR, "tls_not_offered",
	  "tls is \"require\" and the server does not offer TLS ('N' to SSLRequest)" },
	{ VP_TLS_VERIFY_FULL, NULL, { A_N }, 2000, VP_VERDICT_TLS_ERROR, "tls_not_offered",
	  "tls is \"verify-full\"" },
	/* 5: asked for a password, none configured */
	{ VP_TLS_PREFER, NULL, { A_N, A_MD5 }, 2000, VP_VERDICT_OK, "accepted",
	  "accepts user \"vp\", database \"db\" at the pg_hba level and asked for an MD5 password "
	  "(no password_file" },
	{ VP_TLS_PREFER, NULL, { A_N, A_SASL }, 2000, VP_VERDICT_OK, "accepted",
	  "asked for SASL (SCRAM-SHA-256-PLUS, SCRAM-SHA-256) (no password_file" },
	{ VP_TLS_PREFER, NULL, { A_N, A_CLEAR }, 2000, VP_VERDICT_OK, "accepted",
	  "a cleartext password" },
	/* 8: the password is sent and checked */
	{ VP_TLS_PREFER, PW, { A_N, A_MD5, A_CHECK_MD5 }, 2000, VP_VERDICT_OK, "authenticated",
	  "logged user \"vp\" in to database \"db\" with an MD5 password" },
	{ VP_TLS_PREFER, "wrong", { A_N, A_MD5, A_CHECK_MD5 }, 2000, VP_VERDICT_PROTOCOL_ERROR,
	  "auth_failed", "FATAL 28P01: password authentication failed for user \"vp\"" },
	{ VP_TLS_PREFER, PW, { A_N, A_CLEAR, A_CHECK_CLEAR }, 2000, VP_VERDICT_OK, "authenticated",
	  "with a cleartext password" },
	{ VP_TLS_DISABLE, "wrong", { A_CLEAR, A_CHECK_CLEAR }, 2000, VP_VERDICT_PROTOCOL_ERROR,
	  "auth_failed", "28P01" },
	{ VP_TLS_PREFER, PW, { A_N, A_OK_READY }, 2000, VP_VERDICT_OK, "accepted",
	  "(trust): the password_file was not needed" },
	/* 13: SCRAM against a server that cannot prove itself */
	{ VP_TLS_PREFER, PW, { A_N, A_SASL, A_SASL_CONTINUE, A_SASL_FINAL_BAD }, 2000,
	  VP_VERDICT_PROTOCOL_ERROR, "server_signature_mismatch", "signature does not match" },
	{ VP_TLS_PREFER, PW, { A_N, A_SASL, A_SASL_CONTINUE, A_OK_READY }, 2000,
	  VP_VERDICT_PROTOCOL_ERROR, "server_signature_mismatch", "before its SCRAM signature" },
	{ VP_TLS_PREFER, PW, { A_N, A_SASL, A_SASL_CONTINUE_ALIEN }, 2000,
	  VP_VERDICT_PROTOCOL_ERROR, "unexpected_reply", "malformed SCRAM server-first" },
	{ VP_TLS_PREFER, PW, { A_N, A_SASL, A_SASL_CONTINUE_SLOW }, 2000,
	  VP_VERDICT_PROTOCOL_ERROR, "unexpected_reply", "iteration count outside 1..100000" },
	{ VP_TLS_PREFER, PW, { A_N, A_SASL, A_SASL_CONTINUE, A_E28P01 }, 2000,
	  VP_VERDICT_PROTOCOL_ERROR, "auth_failed", "28P01" },
	{ VP_TLS_PREFER, PW, { A_N, A_SASL_PLUS_ONLY }, 2000, VP_VERDICT_OK, "accepted",
	  "none of its mechanisms is SCRAM-SHA-256" },
	{ VP_TLS_PREFER, PW, { A_N, A_GSS }, 2000, VP_VERDICT_OK, "accepted",
	  "asked for GSSAPI (which vpcprobe cannot answer" },
	/* 20: the server says no */
	{ VP_TLS_PREFER, NULL, { A_N, A_E28000 }, 2000, VP_VERDICT_PROTOCOL_ERROR,
	  "pg_hba_rejected", "PostgreSQL refused user \"vp\", database \"db\": FATAL 28000: "
	  "pg_hba.conf rejects connection for host \"10.8.0.2\", user \"vp\", database \"db\", no "
	  "encryption; TLS not offered" },
	{ VP_TLS_PREFER, NULL, { A_N, A_E57P03 }, 2000, VP_VERDICT_PROTOCOL_ERROR, "starting_up",
	  "57P03: the database system is starting up" },
	{ VP_TLS_PREFER, NULL, { A_N, A_E53300 }, 2000, VP_VERDICT_PROTOCOL_ERROR,
	  "too_many_connections", "53300: sorry, too many clients already" },
	{ VP_TLS_PREFER, NULL, { A_N, A_OK_ONLY, A_END }, 2000, VP_VERDICT_TIMEOUT, "reply_timeout",
	  "no complete reply" },
	{ VP_TLS_DISABLE, PW, { A_MD5, A_CHECK_MD5 }, 2000, VP_VERDICT_OK, "authenticated", "MD5" },
	/* 25 */
	{ VP_TLS_PREFER, NULL, { A_N, A_E3D000 }, 2000, VP_VERDICT_PROTOCOL_ERROR,
	  "database_missing", "3D000: database \"db\" does not exist" },
	{ VP_TLS_PREFER, NULL, { A_N, A_E42501 }, 2000, VP_VERDICT_PROTOCOL_ERROR, "sqlstate_42501",
	  "42501" },
	{ VP_TLS_PREFER, NULL, { A_N, A_E_HOSTILE }, 2000, VP_VERDICT_PROTOCOL_ERROR,
	  "pg_hba_rejected", "FATAL 28000: \\x1b[2J\\xff\\xfe\\r\\n;" },
	{ VP_TLS_PREFER, NULL, { A_N, A_E_CUT }, 2000, VP_VERDICT_PROTOCOL_ERROR,
	  "unexpected_reply", "ErrorResponse without its terminator" },
	{ VP_TLS_PREFER, NULL, { A_E28000 }, 2000, VP_VERDICT_PROTOCOL_ERROR, "pg_hba_rejected",
	  "28000" },   /* an old server answers SSLRequest with an error */
	/* 30: not PostgreSQL, or not playing by its rules */
	{ VP_TLS_PREFER, NULL, { A_HTTP }, 2000, VP_VERDICT_PROTOCOL_ERROR, "unexpected_reply",
	  "neither 'S' nor 'N'; it begins \"HTTP/1.1 400 Bad Request\\r\\n\"" },
	{ VP_TLS_DISABLE, NULL, { A_HTTP }, 2000, VP_VERDICT_PROTOCOL_ERROR, "unexpected_reply",
	  "a message length outside 4..65535" },
	{ VP_TLS_PREFER, NULL, { A_N_EXTRA }, 2000, VP_VERDICT_PROTOCOL_ERROR, "unexpected_reply",
	  "bytes after the answer to SSLRequest" },
	{ VP_TLS_PREFER, NULL, { A_N, A_LEN3 }, 2000, VP_VERDICT_PROTOCOL_ERROR, "unexpected_reply",
	  "length outside" },
	{ VP_TLS_PREFER, NULL, { A_N, A_LEN_HUGE }, 2000, VP_VERDICT_PROTOCOL_ERROR,
	  "unexpected_reply", "it begins \"R\\x7f\\xff\\xff\\xff" },
	/* 35 */
	{ VP_TLS_PREFER, NULL, { A_N, A_QUERY }, 2000, VP_VERDICT_PROTOCOL_ERROR,
	  "unexpected_reply", "message type 'D' out of turn" },
	{ VP_TLS_PREFER, PW, { A_N, A_MD5, A_MD5 }, 2000, VP_VERDICT_PROTOCOL_ERROR,
	  "unexpected_reply", "Authentication request 5 out of turn" },
	{ VP_TLS_PREFER, NULL, { A_N, A_CLOSE }, 2000, VP_VERDICT_RESET, "closed_before_reply",
	  "closed" },
	{ VP_TLS_PREFER, NULL, { A_END }, 300, VP_VERDICT_TIMEOUT, "reply_timeout", "" },
	{ VP_TLS_PREFER, NULL, { A_N, A_NOTICE_OK_READY }, 2000, VP_VERDICT_OK, "accepted",
	  "trust" },
};

struct fake {
	struct scripted srv;
	const struct probe_row *row;
	int seen;                  /* client messages so far */
	bool typed;                /* past the StartupMessage: messages have a type byte */
	bool ssl_requested;
	char user[64];
	char database[64];
	char application[64];
	char nonce[128];           /* the client's, from SASLInitialResponse */
	bool terminated;           /* a Terminate came */
	uint8_t p[1024];           /* the body of the last 'p' */
	size_t plen;
};

/* Appends one message: type, length, body. */
static size_t msg(uint8_t *out, size_t at, char type, const void *body, size_t len)
{
	out[at] = (uint8_t)type;
	vp_put_be32(out + at + 1, (uint32_t)len + 4);
	memcpy(out + at + 5, body, len);
	return at + 5 + len;
}

static size_t auth(uint8_t *out, size_t at, uint32_t code, const void *data, size_t len)
{
	uint8_t body[256];

	vp_put_be32(body, code);
	memcpy(body + 4, data, len);
	return msg(out, at, 'R', body, len + 4);
}

/* An ErrorResponse ('E') or a NoticeResponse ('N'). */
static size_t report(uint8_t *out, size_t at, char type, const char *code, const char *text)
{
	uint8_t body[512];
	int n = snprintf((char *)body, sizeof(body), "SFATAL%cC%s%cM%s%c", 0, code, 0, text, 0);

	body[n] = '\0';
	return msg(out, at, type, body, (size_t)n + 1);
}

static size_t error(uint8_t *out, size_t at, const char *code, const char *text)
{
	return report(out, at, 'E', code, text);
}

static size_t ready(uint8_t *out, size_t at)
{
	at = auth(out, at, 0, "", 0);
	at = msg(out, at, 'S', "server_version\0" "15.18\0", 21);
	at = msg(out, at, 'K', "\0\0\0\x01\0\0\0\x02", 8);
	return msg(out, at, 'Z', "I", 1);
}

static size_t sasl_continue(struct fake *f, uint8_t *out, const char *nonce, const char *iter)
{
	char first[256];
	int n = snprintf(first, sizeof(first), "r=%sSRV,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=%s", nonce, iter);

	return auth(out, 0, VP_PG_AUTH_SASL_CONTINUE, first, (size_t)n);
}

static size_t check_password(struct fake *f, uint8_t *out, bool md5)
{
	const char *expect = md5 ? "md5ebc1839eef15ef89838266a753818304" : PW;

	if (f->plen == strlen(expect) + 1 && memcmp(f->p, expect, f->plen) == 0)
		return ready(out, 0);
	return error(out, 0, "28P01", "password authentication failed for user \"vp\"");
}

/* The bytes for one step of the script, into 'out'. */
static size_t act_bytes(struct fake *f, enum act a, uint8_t *out)
{
	static const char sasl[] = "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0";

	switch (a) {
	case A_S: out[0] = 'S'; return 1;
	case A_N: out[0] = 'N'; return 1;
	case A_N_EXTRA: out[0] = 'N'; return auth(out, 1, 0, "", 0);
	case A_OK_READY: return ready(out, 0);
	case A_NOTICE_OK_READY: return ready(out, report(out, 0, 'N', "01000", "a notice"));
	case A_MD5: return auth(out, 0, VP_PG_AUTH_MD5, "\x01\x02\x03\x04", 4);
	case A_CLEAR: return auth(out, 0, VP_PG_AUTH_CLEARTEXT, "", 0);
	case A_SASL: return auth(out, 0, VP_PG_AUTH_SASL, sasl, sizeof(sasl));
	case A_SASL_PLUS_ONLY: return auth(out, 0, VP_PG_AUTH_SASL, "SCRAM-SHA-256-PLUS\0", 20);
	case A_GSS: return auth(out, 0, VP_PG_AUTH_GSS, "", 0);
	case A_CHECK_MD5: return check_password(f, out, true);
	case A_CHECK_CLEAR: return check_password(f, out, false);
	case A_SASL_CONTINUE: return sasl_continue(f, out, f->nonce, "4096");
	case A_SASL_CONTINUE_ALIEN: return sasl_continue(f, out, "someone-else", "4096");
	case A_SASL_CONTINUE_SLOW: return sasl_continue(f, out, f->nonce, "1000000");
	case A_SASL_FINAL_BAD:
		return auth(out, 0, VP_PG_AUTH_SASL_FINAL,
		            "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 46);
	case A_OK_ONLY: return auth(out, 0, 0, "", 0);
	case A_E28000: return error(out, 0, "28000", "pg_hba.conf rejects connection for host "
	                            "\"10.8.0.2\", user \"vp\", database \"db\", no encryption");
	case A_E28P01: return error(out, 0, "28P01", "password authentication failed");
	case A_E57P03: return error(out, 0, "57P03", "the database system is starting up");
	case A_E53300: return error(out, 0, "53300", "sorry, too many clients already");
	case A_E3D000: return error(out, 0, "3D000", "database \"db\" does not exist");
	case A_E42501: return error(out, 0, "42501", "permission denied for database \"db\"");
	case A_E_HOSTILE:
		return msg(out, 0, 'E', "SFATAL\0C28000\0M\x1b[2J\xff\xfe\r\n\0\0", 25);
	case A_E_CUT: return msg(out, 0, 'E', "SFATAL\0C28000\0Mno end", 21);
	case A_HTTP: memcpy(out, "HTTP/1.1 400 Bad Request\r\n", 26); return 26;
	case A_LEN3: memcpy(out, "R\0\0\0\x03", 5); return 5;
	case A_LEN_HUGE: memcpy(out, "R\x7f\xff\xff\xff\0\0\0\0", 9); return 9;
	case A_QUERY: return msg(out, 0, 'D', "\0\0", 2);
	default: return 0;
	}
}

static void startup_params(struct fake *f, const uint8_t *body, size_t len)
{
	const char *s = (const char *)body + 4; /* after the protocol version */
	const char *end = (const char *)body + len;

	ck_assert_uint_eq(vp_be32(body), 0x00030000);
	while (s < end && *s != '\0') {
		const char *v = s + strlen(s) + 1;

		if (strcmp(s, "user") == 0)
			snprintf(f->user, sizeof(f->user), "%s", v);
		else if (strcmp(s, "database") == 0)
			snprintf(f->database, sizeof(f->database), "%s", v);
		else if (strcmp(s, "application_name") == 0)
			snprintf(f->application, sizeof(f->application), "%s", v);
		s = v + strlen(v) + 1;
	}
}

static void on_client_message(struct fake *f, uint8_t type, const uint8_t *body, size_t len)
{
	static uint8_t out[4096];
	enum act a = f->seen < 5 ? f->row->acts[f->seen] : A_END;
	size_t n;

	f->seen++;
	if (!f->typed && len == 4 && vp_be32(body) == 80877103) {
		f->ssl_requested = true;
	} else if (!f->typed) {
		f->typed = true;
		startup_params(f, body, len);
	} else if (type == 'X') {
		f->terminated = true;
		return;
	} else if (type == 'p') {
		f->plen = len < sizeof(f->p) ? len : sizeof(f->p);
		memcpy(f->p, body, f->plen);
		if (len > 14 && memcmp(body, "SCRAM-SHA-256\0", 14) == 0) {
			const char *r = memmem(body, len, ",r=", 3);
			ck_assert_ptr_nonnull(r);
			snprintf(f->nonce, sizeof(f->nonce), "%.*s",
			         (int)(len - (size_t)(r + 3 - (const char *)body)), r + 3);
		}
	}
	if (a == A_CLOSE) {
		scripted_close_client(&f->srv);
		return;
	}
	n = act_bytes(f, a, out);
	if (n > 0)
		scripted_send(&f->srv, out, n);
}

/* Frames what the client sent: the first messages have no type byte. */
static void fake_read(struct scripted *s)
{
	struct fake *f = s->data;

	for (;;) {
		size_t off = f->typed ? 1 : 0;
		uint32_t n;

		if (s->inlen < off + 4 || !s->has_client)
			return;
		n = vp_be32(s->in + off);
		ck_assert_uint_ge(n, 4);
		if (s->inlen < off + n)
			return;
		on_client_message(f, f->typed ? s->in[0] : 0, s->in + off + 4, n - 4);
		scripted_consume(s, off + n);
	}
}

START_TEST(test_probe)
{
	const struct probe_row *row = &probe_rows[_i];
	struct vp_target target = { .tls = row->tls, .user = "vp", .database = "db" };
	struct fake f = { .srv = { .on_read = fake_read, .data = &f }, .row = row };
	struct vp_probe_req req = { .kind = VP_KIND_POSTGRES, .target = &target,
	                            .timeout_ms = row->timeout_ms };
	struct scripted_run r;
	const struct vp_verdict_out *v = &r.res.v;

	target.password = (char *)row->password;
	target.password_len = row->password ? strlen(row->password) : 0;
	scripted_run_init(&r);
	scripted_run_probe(&r, &req, scripted_listen(&r.loop, &f.srv));

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
	ck_assert(f.ssl_requested == (row->tls != VP_TLS_DISABLE));
	if (f.typed) {
		ck_assert_str_eq(f.user, "vp");
		ck_assert_str_eq(f.database, "db");
		ck_assert_str_eq(f.application, "vpcprobe");
	}
	/* Let the Terminate arrive, then close everything. */
	uv_run(&r.loop, UV_RUN_NOWAIT);
	if (strcmp(row->reason, "authenticated") == 0 || strcmp(row->reason, "accepted") == 0)
		ck_assert(f.terminated == (v->detail[0] != '\0' && strstr(v->detail, "logged") != NULL));
	scripted_run_end(&r, &f.srv);
}
END_TEST

static Suite *postgres_suite(void)
{
	Suite *s = suite_create("postgres");
	TCase *wire = tcase_create("wire");
	TCase *pure = tcase_create("pgwire");
	TCase *probe = tcase_create("probe");

	tcase_add_loop_test(wire, test_escape, 0, N_ELEMS(escape_cases));
	tcase_add_test(wire, test_preview);
	tcase_add_test(pure, test_builders);
	tcase_add_loop_test(pure, test_frame, 0, N_ELEMS(frame_cases));
	tcase_add_loop_test(pure, test_auth, 0, N_ELEMS(auth_cases));
	tcase_add_loop_test(pure, test_error, 0, N_ELEMS(error_cases));
	tcase_add_test(pure, test_error_long);
	tcase_set_timeout(probe, 30);
	tcase_add_loop_test(probe, test_probe, 0, N_ELEMS(probe_rows));
	suite_add_tcase(s, wire);
	suite_add_tcase(s, pure);
	suite_add_tcase(s, probe);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(postgres_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

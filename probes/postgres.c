/* The PostgreSQL probe (issue 4): SSLRequest, StartupMessage, then the
 * login as far as the target's password allows.
 *
 * The server's first answer to the StartupMessage says whether pg_hba lets
 * this client in: any Authentication request means it does, an
 * ErrorResponse says why not. With a password_file the probe finishes the
 * login (cleartext, MD5 or SCRAM-SHA-256, checking the server's SCRAM
 * signature) so that a wrong password is told apart, and waits for
 * ReadyForQuery, since a missing database is only reported after the
 * password. Every byte of the reply goes through probes/pgwire.c.
 *
 * TLS (probes/tls.c) follows libpq's sslmode: after the server's 'S' the
 * handshake runs and the StartupMessage goes inside it. prefer and require
 * verify the chain only when a ca_file is given (libpq does so when a root
 * certificate exists), verify-full also the host name. Unlike libpq, prefer
 * does not retry in plaintext after a failed handshake: the failure is the
 * finding, and "tls": "disable" checks the plaintext path. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "probes/pgwire.h"
#include "probes/proto.h"
#include "probes/scram.h"
#include "probes/tls.h"
#include "probes/wire.h"

#define APPLICATION_NAME "vpcprobe"
#define SCRAM_MECHANISM "SCRAM-SHA-256"
#define NAME_SHOWN_MAX (VP_PG_NAME_MAX + 8) /* escaped user or database, cut */

extern const struct vp_proto vp_proto_postgres;

enum pg_step {
	PG_SSL,        /* SSLRequest sent: one byte, 'S' or 'N', comes back */
	PG_AUTH,       /* StartupMessage sent: an Authentication request or an error */
	PG_PASSWORD,   /* an answer to a request sent: the next request, OK or an error */
	PG_LOGIN,      /* AuthenticationOk came: parameters, then ReadyForQuery or an error */
};

struct pg {
	enum pg_step step;
	enum vp_tls_mode tls;
	bool tls_offered;          /* the server said 'S' to SSLRequest */
	const char *user;          /* borrowed from the target, or the default */
	const char *database;      /* borrowed from the target, or the default */
	const char *password;      /* borrowed from the target; NULL: stop at the first request */
	size_t password_len;
	uint32_t method;           /* the first Authentication request's code; 0 for trust */
	bool sasl;                 /* SCRAM began: AuthenticationOk needs the server's proof */
	bool sasl_verified;
	char user_shown[NAME_SHOWN_MAX];
	char database_shown[NAME_SHOWN_MAX];
	struct vp_scram scram;
};

/* "TLS not offered", or "over TLSv1.3" once a handshake finished. */
static const char *tls_note(const struct vp_tcp_probe *p, const struct pg *st, char *buf,
                            size_t len)
{
	if (st->tls == VP_TLS_DISABLE)
		return "TLS not asked for (tls disable)";
	if (!st->tls_offered)
		return "TLS not offered";
	vp_textf(buf, len, "over %s", vp_tls_version(p->tls));
	return buf;
}

static void decide_ok(struct vp_tcp_probe *p, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void decide_ok(struct vp_tcp_probe *p, const char *reason, const char *fmt, ...)
{
	struct vp_verdict_out v = { .verdict = VP_VERDICT_OK, .reason = VP_REASON_PROTOCOL };
	va_list ap;

	vp_textf(v.reason_text, sizeof(v.reason_text), "%s", reason);
	va_start(ap, fmt);
	(void)vsnprintf(v.detail, sizeof(v.detail), fmt, ap); /* a cut detail still reads */
	va_end(ap);
	vp_tcp_decide(p, &v);
}

/* The reply is not PostgreSQL's, or breaks its rules. */
static void decide_unexpected(struct vp_tcp_probe *p, const char *what, const uint8_t *bytes,
                              size_t len)
{
	struct vp_verdict_out v = { .verdict = VP_VERDICT_PROTOCOL_ERROR,
	                            .reason = VP_REASON_UNEXPECTED_REPLY };
	char preview[VP_PREVIEW_BYTES * 4 + 8];

	vp_preview(bytes, len, preview, sizeof(preview));
	vp_textf(v.detail, sizeof(v.detail), "not a PostgreSQL reply: %s; it begins %s", what,
	         preview);
	vp_textf(v.hint, sizeof(v.hint),
	         "Something answers on port %u, but not as PostgreSQL does: check that the port "
	         "belongs to PostgreSQL (Cloud SQL listens on 5432 of its private IP) and not to "
	         "another service, a proxy or a load balancer.", p->obs.port);
	vp_tcp_decide(p, &v);
}

static void decide_protocol(struct vp_tcp_probe *p, const char *reason, const char *hint,
                            const char *detail)
{
	struct vp_verdict_out v = { .verdict = VP_VERDICT_PROTOCOL_ERROR,
	                            .reason = VP_REASON_PROTOCOL };

	vp_textf(v.reason_text, sizeof(v.reason_text), "%s", reason);
	vp_textf(v.detail, sizeof(v.detail), "%s", detail);
	vp_textf(v.hint, sizeof(v.hint), "%s", hint);
	vp_tcp_decide(p, &v);
}

/* The agent could not send: its own failure, not the target's. */
static void decide_local(struct vp_tcp_probe *p, int r, const char *what)
{
	struct vp_verdict_out v = { .verdict = VP_VERDICT_LOCAL_ERROR, .err = -r,
	                            .reason = r == -ENOMEM || r == -ENOBUFS ? VP_REASON_NO_BUFFERS :
	                                      VP_REASON_LOCAL_OTHER };

	vp_textf(v.detail, sizeof(v.detail), "sending %s failed: %s", what, strerror(-r));
	vp_textf(v.hint, sizeof(v.hint), "The agent itself failed, not the target: check the "
	         "agent host's memory and limits, and its log.");
	vp_tcp_decide(p, &v);
}

/* tls require or verify-full, and the server answered 'N'. */
static void decide_tls_not_offered(struct vp_tcp_probe *p, const struct pg *st)
{
	struct vp_tls_obs o = { .event = VP_TLS_EV_NOT_OFFERED, .kind = VP_KIND_POSTGRES,
	                        .cert_days_left = VP_CERT_DAYS_UNKNOWN };
	struct vp_verdict_out v;

	vp_tls_classify(&o, &v);
	vp_textf(v.detail, sizeof(v.detail), "tls is \"%s\" and the server does not offer TLS ('N' "
	         "to SSLRequest), so the login was not tried", vp_tls_mode_name(st->tls));
	vp_tcp_decide(p, &v);
}

static void decide_error(struct vp_tcp_probe *p, const struct pg *st, const struct vp_pg_msg *m)
{
	struct vp_verdict_out v = { .verdict = VP_VERDICT_PROTOCOL_ERROR };
	struct vp_pg_error e;
	char note[48];

	if (vp_pg_parse_error(m, &e) < 0) {
		decide_unexpected(p, "an ErrorResponse without its terminator", m->body, m->len);
		return;
	}
	vp_pg_error_reason(&e, &v);
	vp_textf(v.detail, sizeof(v.detail), "PostgreSQL refused user \"%s\", database \"%s\": "
	         "%s %s: %s; %s", st->user_shown, st->database_shown,
	         e.severity[0] ? e.severity : "ERROR", e.sqlstate[0] ? e.sqlstate : "(no SQLSTATE)",
	         e.message[0] ? e.message : "(no message)", tls_note(p, st, note, sizeof(note)));
	vp_tcp_decide(p, &v);
}

/* The server asked for a password; without one (or for a method vpcprobe
 * cannot answer) the probe ends here: pg_hba let the client through. */
static void decide_asked(struct vp_tcp_probe *p, const struct pg *st, const char *method,
                         const char *why)
{
	char note[48];

	decide_ok(p, "accepted", "PostgreSQL accepts user \"%s\", database \"%s\" at the pg_hba "
	          "level and asked for %s (%s); %s", st->user_shown, st->database_shown, method, why,
	          tls_note(p, st, note, sizeof(note)));
}

static int send_startup(struct vp_tcp_probe *p, struct pg *st)
{
	uint8_t buf[512];
	int n = vp_pg_startup(buf, sizeof(buf), st->user, st->database, APPLICATION_NAME);

	if (n < 0)
		return n;
	st->step = PG_AUTH;
	return vp_tcp_send(p, buf, (size_t)n);
}

/* The TLS handshake is done: the StartupMessage goes inside it. */
static void on_tls_ready(struct vp_tcp_probe *p)
{
	int r = send_startup(p, p->proto_state);

	if (r < 0)
		decide_local(p, r, "the StartupMessage");
}

static void start_tls(struct vp_tcp_probe *p, const struct pg *st)
{
	const struct vp_target *t = p->target;
	struct vp_tls_opts o = { .ca_file = t ? t->ca_file : NULL, .offered = true,
	                         .host = t ? t->url.host : p->obs.address };

	if (st->tls == VP_TLS_VERIFY_FULL)
		o.verify = VP_VERIFY_HOST;
	else
		o.verify = o.ca_file ? VP_VERIFY_CHAIN : VP_VERIFY_NONE;
	vp_tls_start(p, &o, on_tls_ready);
}

/* The one byte that answers SSLRequest. */
static void on_ssl_answer(struct vp_tcp_probe *p, struct pg *st)
{
	int r;

	if (p->rbuf[0] == 'E') {
		/* A server that predates SSLRequest answers it with an error. */
		st->step = PG_AUTH;
		return;
	}
	if (p->rbuf[0] != 'S' && p->rbuf[0] != 'N') {
		decide_unexpected(p, "the answer to SSLRequest is neither 'S' nor 'N'", p->rbuf,
		                  p->rlen);
		return;
	}
	st->tls_offered = p->rbuf[0] == 'S';
	/* Bytes after the answer were sent before the server could know what we
	 * would do next: injected, as in CVE-2021-23214/23222. */
	if (p->rlen > 1) {
		decide_unexpected(p, "bytes after the answer to SSLRequest", p->rbuf, p->rlen);
		return;
	}
	vp_tcp_consume(p, 1);
	if (st->tls_offered) {
		st->step = PG_AUTH;    /* what comes next is the handshake's, then the login's */
		start_tls(p, st);
		return;
	}
	if (st->tls == VP_TLS_REQUIRE || st->tls == VP_TLS_VERIFY_FULL) {
		decide_tls_not_offered(p, st);
		return;
	}
	r = send_startup(p, st);
	if (r < 0)
		decide_local(p, r, "the StartupMessage");
}

/* SASL: SCRAM-SHA-256's client-first message. */
static int send_scram_first(struct vp_tcp_probe *p, struct pg *st, const struct vp_pg_auth *a)
{
	char first[VP_SCRAM_MSG_MAX];
	uint8_t buf[VP_SCRAM_MSG_MAX + 64];
	int n;

	if (!a->scram_sha_256) {
		decide_asked(p, st, "SASL", "none of its mechanisms is SCRAM-SHA-256, the one "
		             "vpcprobe speaks; the password was not checked");
		return 0;
	}
	/* PostgreSQL takes the user from the StartupMessage; n= stays empty. */
	n = vp_scram_client_first(&st->scram, "", NULL, first, sizeof(first));
	if (n >= 0)
		n = vp_pg_sasl_initial(buf, sizeof(buf), SCRAM_MECHANISM, first, (size_t)n);
	if (n < 0)
		return n;
	st->sasl = true;
	return vp_tcp_send(p, buf, (size_t)n);
}

static int send_scram_final(struct vp_tcp_probe *p, struct pg *st, const struct vp_pg_auth *a)
{
	char final[VP_SCRAM_MSG_MAX];
	uint8_t buf[VP_SCRAM_MSG_MAX + 64];
	int n;

	n = vp_scram_client_final(&st->scram, st->password, st->password_len,
	                          (const char *)a->data, a->data_len, final, sizeof(final));
	if (n == -ERANGE) {
		char what[80];

		snprintf(what, sizeof(what), "a SCRAM iteration count outside 1..%d",
		         VP_SCRAM_ITER_MAX);
		decide_unexpected(p, what, a->data, a->data_len);
		return 0;
	}
	if (n == -EBADMSG || n == -ENOTSUP) {
		decide_unexpected(p, "a malformed SCRAM server-first message", a->data, a->data_len);
		return 0;
	}
	if (n >= 0)
		n = vp_pg_sasl_response(buf, sizeof(buf), final, (size_t)n);
	if (n >= 0)
		n = vp_tcp_send(p, buf, (size_t)n);
	explicit_bzero(final, sizeof(final)); /* the proof */
	explicit_bzero(buf, sizeof(buf));
	return n < 0 ? n : 0;
}

static void check_scram_final(struct vp_tcp_probe *p, struct pg *st, const struct vp_pg_auth *a)
{
	int r = vp_scram_verify_final(&st->scram, (const char *)a->data, a->data_len);

	if (r == 0) {
		st->sasl_verified = true;
		return;
	}
	if (r == -EBADMSG) {
		decide_unexpected(p, "a malformed SCRAM server-final message", a->data, a->data_len);
		return;
	}
	decide_protocol(p, r == -EPERM ? "auth_failed" : "server_signature_mismatch",
	                r == -EPERM ? "The server refused the SCRAM proof: the password is wrong "
	                "for this user; compare the password_file with the Cloud SQL user's." :
	                "The server could not prove that it knows the password: something that is "
	                "not your PostgreSQL (a proxy or an impostor) answers on this address; "
	                "check what listens there before trusting it with a password.",
	                r == -EPERM ? "PostgreSQL sent a SCRAM error instead of its signature" :
	                "PostgreSQL's SCRAM server signature does not match the password");
}

/* Answers a password request: cleartext, MD5 or SCRAM's first message. */
static int send_password(struct vp_tcp_probe *p, struct pg *st, const struct vp_pg_auth *a)
{
	uint8_t buf[VP_PASSWORD_MAX + 16];
	char md5[VP_PG_MD5_LEN + 1];
	int n;

	st->step = PG_PASSWORD;
	if (a->code == VP_PG_AUTH_SASL)
		return send_scram_first(p, st, a);
	if (a->code == VP_PG_AUTH_MD5) {
		n = vp_pg_md5_password(st->user, st->password, st->password_len, a->salt, md5);
		if (n == 0)
			n = vp_pg_password(buf, sizeof(buf), md5, VP_PG_MD5_LEN);
		explicit_bzero(md5, sizeof(md5));
	} else {
		n = vp_pg_password(buf, sizeof(buf), st->password, st->password_len);
	}
	if (n >= 0)
		n = vp_tcp_send(p, buf, (size_t)n);
	explicit_bzero(buf, sizeof(buf));
	return n < 0 ? n : 0;
}

static bool answerable(uint32_t code)
{
	return code == VP_PG_AUTH_CLEARTEXT || code == VP_PG_AUTH_MD5 || code == VP_PG_AUTH_SASL;
}

/* AuthenticationOk: the password step is over; ReadyForQuery or an error
 * (a missing database, a full server) follows. */
static void on_auth_ok(struct vp_tcp_probe *p, struct pg *st)
{
	if (st->sasl && !st->sasl_verified) {
		decide_protocol(p, "server_signature_mismatch",
		                "The server skipped the proof that it knows the password: something "
		                "that is not your PostgreSQL answers on this address; check what "
		                "listens there.", "PostgreSQL sent AuthenticationOk before its SCRAM "
		                "signature");
		return;
	}
	st->step = PG_LOGIN;
}

/* An Authentication message ('R'). */
static void on_auth(struct vp_tcp_probe *p, struct pg *st, const struct vp_pg_msg *m)
{
	struct vp_pg_auth a;
	char method[128];
	int r = 0;

	if (vp_pg_parse_auth(m, &a) < 0) {
		decide_unexpected(p, "a malformed Authentication message", m->body, m->len);
		return;
	}
	if (a.code == VP_PG_AUTH_OK) {
		on_auth_ok(p, st);
		return;
	}
	if (st->step == PG_AUTH) {
		st->method = a.code;
		snprintf(method, sizeof(method), "%s%s%s%s", vp_pg_auth_method(a.code),
		         a.code == VP_PG_AUTH_SASL ? " (" : "", a.code == VP_PG_AUTH_SASL ?
		         a.mechanisms : "", a.code == VP_PG_AUTH_SASL ? ")" : "");
		if (st->password == NULL)
			decide_asked(p, st, method, "no password_file, so the password was not checked");
		else if (!answerable(a.code))
			decide_asked(p, st, method, "which vpcprobe cannot answer; the password was not "
			             "checked");
		else
			r = send_password(p, st, &a);
	} else if (st->sasl && a.code == VP_PG_AUTH_SASL_CONTINUE && !st->scram.have_signature) {
		r = send_scram_final(p, st, &a);
	} else if (st->sasl && a.code == VP_PG_AUTH_SASL_FINAL && !st->sasl_verified) {
		check_scram_final(p, st, &a);
	} else {
		snprintf(method, sizeof(method), "Authentication request %u out of turn", a.code);
		decide_unexpected(p, method, m->body, m->len);
	}
	if (r < 0)
		decide_local(p, r, "the password");
}

static void on_ready(struct vp_tcp_probe *p, struct pg *st)
{
	uint8_t x[VP_PG_TERMINATE_LEN];
	char note[48];

	/* libuv writes at once when nothing is queued, so the Terminate leaves
	 * before the close; should it not, the server logs an EOF, no more. */
	vp_pg_terminate(x);
	(void)vp_tcp_send(p, x, sizeof(x));
	if (st->method == VP_PG_AUTH_OK)
		decide_ok(p, "accepted", "PostgreSQL logged user \"%s\" in to database \"%s\" without "
		          "a password (trust)%s; %s", st->user_shown, st->database_shown,
		          st->password ? ": the password_file was not needed" : "",
		          tls_note(p, st, note, sizeof(note)));
	else
		decide_ok(p, "authenticated", "PostgreSQL logged user \"%s\" in to database \"%s\" "
		          "with %s; %s", st->user_shown, st->database_shown,
		          vp_pg_auth_method(st->method), tls_note(p, st, note, sizeof(note)));
}

static void on_message(struct vp_tcp_probe *p, struct pg *st, const struct vp_pg_msg *m)
{
	char what[64];

	switch (m->type) {
	case 'E':
		decide_error(p, st, m);
		return;
	case 'R':
		if (st->step != PG_LOGIN) {
			on_auth(p, st, m);
			return;
		}
		break;
	case 'N': /* NoticeResponse: may come at any time */
	case 'v': /* NegotiateProtocolVersion: 3.0 is all we ask for */
		return;
	case 'S': /* ParameterStatus */
	case 'K': /* BackendKeyData */
		if (st->step == PG_LOGIN)
			return;
		break;
	case 'Z': /* ReadyForQuery */
		if (st->step == PG_LOGIN) {
			on_ready(p, st);
			return;
		}
		break;
	default:
		break;
	}
	if (m->type > 0x20 && m->type < 0x7f)
		snprintf(what, sizeof(what), "message type '%c' out of turn", m->type);
	else
		snprintf(what, sizeof(what), "message type 0x%02x out of turn", m->type);
	decide_unexpected(p, what, p->rbuf, p->rlen); /* the message is at rbuf[0] */
}

static void pg_data(struct vp_tcp_probe *p)
{
	struct pg *st = p->proto_state;
	struct vp_pg_msg m;
	int n;

	if (st->step == PG_SSL)
		on_ssl_answer(p, st);
	while (!p->decided && st->step != PG_SSL && p->rlen > 0) {
		n = vp_pg_frame(p->rbuf, p->rlen, &m);
		if (n == 0)
			return;
		if (n < 0) {
			decide_unexpected(p, "a message length outside 4..65535", p->rbuf, p->rlen);
			return;
		}
		on_message(p, st, &m);
		vp_tcp_consume(p, (size_t)n);
	}
}

static void shown(const char *s, char *out, size_t outlen)
{
	(void)vp_escape(s, strlen(s), out, outlen); /* names from the config: cut is fine */
}

static int pg_start(struct vp_tcp_probe *p)
{
	const struct vp_target *t = p->target;
	struct pg *st = calloc(1, sizeof(*st));
	uint8_t req[VP_PG_SSL_REQUEST_LEN];

	if (st == NULL)
		return -ENOMEM;
	p->proto_state = st;
	st->tls = t ? t->tls : VP_TLS_PREFER;
	st->user = t && t->user ? t->user : VP_PG_DEFAULT_USER;
	st->database = t && t->database ? t->database : VP_PG_DEFAULT_DATABASE;
	st->password = t ? t->password : NULL;
	st->password_len = t ? t->password_len : 0;
	shown(st->user, st->user_shown, sizeof(st->user_shown));
	shown(st->database, st->database_shown, sizeof(st->database_shown));
	if (st->tls == VP_TLS_DISABLE)
		return send_startup(p, st);
	/* The record says whether the server offered TLS, whatever it says. */
	if (vp_tls_ask(p) < 0)
		return -ENOMEM;
	st->step = PG_SSL;
	vp_pg_ssl_request(req);
	return vp_tcp_send(p, req, sizeof(req));
}

static void pg_done(struct vp_tcp_probe *p)
{
	struct pg *st = p->proto_state;

	if (st == NULL)
		return;
	vp_scram_done(&st->scram);
	free(st);
	p->proto_state = NULL;
}

const struct vp_proto vp_proto_postgres = { "postgres", pg_start, pg_data, pg_done };

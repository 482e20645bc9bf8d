/* The Redis probe (issue 4): AUTH when the target has a password_file, then
 * PING. Both go out at once; the first reply that is not a success decides.
 * rediss:// (Memorystore's in-transit encryption, port 6378) sends them
 * after a TLS handshake (probes/tls.c) that verifies the chain up to
 * ca_file, or the system's CAs without one, and not the host name: like
 * redis-cli and hiredis, since Memorystore is reached by its IP address.
 * Every byte of the reply goes through probes/resp.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "probes/proto.h"
#include "probes/resp.h"
#include "probes/tls.h"
#include "probes/wire.h"

#define LINE_SHOWN_MAX 160   /* an escaped error line in the detail */

extern const struct vp_proto vp_proto_redis;

struct rd {
	bool auth_sent;        /* AUTH went before PING: the first reply is AUTH's */
	bool auth_unneeded;    /* AUTH said that the server has no password */
	unsigned replies;      /* replies read so far */
};

static void decide_unexpected(struct vp_tcp_probe *p, const char *what, const uint8_t *bytes,
                              size_t len)
{
	struct vp_verdict_out v = { .verdict = VP_VERDICT_PROTOCOL_ERROR,
	                            .reason = VP_REASON_UNEXPECTED_REPLY };
	char preview[VP_PREVIEW_BYTES * 4 + 8];

	vp_preview(bytes, len, preview, sizeof(preview));
	vp_textf(v.detail, sizeof(v.detail), "not a Redis reply: %s; it begins %s", what, preview);
	vp_textf(v.hint, sizeof(v.hint),
	         "Something answers on port %u, but not as Redis does: check that the port belongs "
	         "to Redis (Memorystore listens on 6379, or 6378 with in-transit encryption, which "
	         "needs rediss://) and not to another service or a proxy.", p->obs.port);
	vp_tcp_decide(p, &v);
}

static void decide_error(struct vp_tcp_probe *p, const char *command,
                         const struct vp_resp_reply *r)
{
	struct vp_verdict_out v = { .verdict = VP_VERDICT_PROTOCOL_ERROR };
	char line[LINE_SHOWN_MAX];

	vp_resp_error_reason(r->text, r->len, &v);
	(void)vp_escape(r->text, r->len, line, sizeof(line));
	vp_textf(v.detail, sizeof(v.detail), "Redis answered %s with -%s", command, line);
	vp_tcp_decide(p, &v);
}

/* Redis 6+ and Redis before 6 say so when AUTH is sent to a server that has
 * no password: the password_file is then merely unneeded. */
static bool no_password_set(const struct vp_resp_reply *r)
{
	static const char *const says[] = {
		"without any password configured", /* 6.0 and later */
		"but no password is set",          /* before 6.0 */
	};

	if (r->type != '-' || r->len < 4 || memcmp(r->text, "ERR ", 4) != 0)
		return false;
	for (size_t i = 0; i < sizeof(says) / sizeof(says[0]); i++)
		if (memmem(r->text, r->len, says[i], strlen(says[i])) != NULL)
			return true;
	return false;
}

static void on_auth_reply(struct vp_tcp_probe *p, struct rd *st, const struct vp_resp_reply *r)
{
	if (r->type == '+' && r->len == 2 && memcmp(r->text, "OK", 2) == 0)
		return;
	if (no_password_set(r)) {
		st->auth_unneeded = true;
		return;
	}
	if (r->type == '-')
		decide_error(p, "AUTH", r);
	else
		decide_unexpected(p, "AUTH answered with neither +OK nor an error", p->rbuf, p->rlen);
}

static void on_ping_reply(struct vp_tcp_probe *p, const struct rd *st,
                          const struct vp_resp_reply *r)
{
	struct vp_verdict_out v = { .verdict = VP_VERDICT_OK, .reason = VP_REASON_PROTOCOL };

	if (r->type == '-') {
		decide_error(p, "PING", r);
		return;
	}
	if (r->type != '+' || r->len != 4 || memcmp(r->text, "PONG", 4) != 0) {
		decide_unexpected(p, "PING answered with something else than +PONG", p->rbuf,
		                  p->rlen);
		return;
	}
	vp_textf(v.reason_text, sizeof(v.reason_text), "pong");
	vp_textf(v.detail, sizeof(v.detail), "Redis answered PING with +PONG%s%s%s",
	         !st->auth_sent ? " without AUTH" : st->auth_unneeded ?
	         "; AUTH is not enabled on this server, so the password_file is not needed" :
	         " after AUTH +OK", vp_tls_active(p->tls) ? ", over " : "",
	         vp_tls_version(p->tls));
	vp_tcp_decide(p, &v);
}

static void redis_data(struct vp_tcp_probe *p)
{
	struct rd *st = p->proto_state;
	struct vp_resp_reply r;
	int n;

	while (!p->decided && p->rlen > 0) {
		n = vp_resp_parse(p->rbuf, p->rlen, &r);
		if (n == 0)
			return;
		if (n < 0) {
			decide_unexpected(p, "not RESP", p->rbuf, p->rlen);
			return;
		}
		if (st->auth_sent && st->replies == 0)
			on_auth_reply(p, st, &r);
		else
			on_ping_reply(p, st, &r);
		st->replies++;
		vp_tcp_consume(p, (size_t)n);
	}
}

/* AUTH [username] password, then PING, as one write. */
static int send_commands(struct vp_tcp_probe *p, struct rd *st)
{
	static const char ping[] = "*1\r\n$4\r\nPING\r\n";
	const struct vp_target *t = p->target;
	uint8_t buf[VP_PASSWORD_MAX + VP_REDIS_USER_MAX + 64];
	const char *argv[3] = { "AUTH" };
	size_t lens[3] = { 4 };
	size_t argc = 1;
	int n = 0;

	if (t != NULL && t->password != NULL) {
		if (t->username != NULL) {
			argv[argc] = t->username;
			lens[argc++] = strlen(t->username);
		}
		argv[argc] = t->password;
		lens[argc++] = t->password_len;
		n = vp_resp_command(buf, sizeof(buf), argc, argv, lens);
		st->auth_sent = n > 0;
	}
	if (n >= 0 && (size_t)n + sizeof(ping) - 1 > sizeof(buf))
		n = -ENOSPC;
	if (n >= 0) {
		memcpy(buf + n, ping, sizeof(ping) - 1);
		n = vp_tcp_send(p, buf, (size_t)n + sizeof(ping) - 1);
	}
	explicit_bzero(buf, sizeof(buf));
	return n;
}

/* rediss: the handshake is done, the commands go inside it. */
static void on_tls_ready(struct vp_tcp_probe *p)
{
	struct vp_verdict_out v = { .verdict = VP_VERDICT_LOCAL_ERROR,
	                            .reason = VP_REASON_LOCAL_OTHER };
	int r = send_commands(p, p->proto_state);

	if (r >= 0)
		return;
	v.err = -r;
	vp_textf(v.detail, sizeof(v.detail), "sending AUTH and PING failed: %s", strerror(-r));
	vp_textf(v.hint, sizeof(v.hint), "The agent itself failed, not the target: check the "
	         "agent host's memory and limits, and its log.");
	vp_tcp_decide(p, &v);
}

static int redis_start(struct vp_tcp_probe *p)
{
	const struct vp_target *t = p->target;
	struct rd *st = calloc(1, sizeof(*st));
	struct vp_tls_opts o = { .ca_file = t ? t->ca_file : NULL, .verify = VP_VERIFY_CHAIN,
	                         .host = t ? t->url.host : p->obs.address };

	if (st == NULL)
		return -ENOMEM;
	p->proto_state = st;
	if (p->obs.kind != VP_KIND_REDISS)
		return send_commands(p, st);
	vp_tls_start(p, &o, on_tls_ready);
	return 0;
}

static void redis_done(struct vp_tcp_probe *p)
{
	free(p->proto_state);
	p->proto_state = NULL;
}

const struct vp_proto vp_proto_redis = { "redis", redis_start, redis_data, redis_done };
